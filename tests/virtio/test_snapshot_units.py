"""The host's side of snapshots without QEMU: the manifest, what binds a snapshot, what a mismatch says."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from unik.errors import RunError
from unik_vmimage import snapshot

BINDING = snapshot.Binding("d" * 64, "6.1.0-57-cloud-amd64", "7.2.22", "q35", "tcg", "256M",
                           ("virtio-net,netdev=net-service,guest_csum=off", "virtio-rng"), ("--port", "8080"),
                           (("storage", 16 << 20),))


def test_the_manifest_round_trips_and_refuses_unknown_fields(tmp_path: Path) -> None:
    manifest = snapshot.SnapshotManifest(BINDING, {"service": "52:54:00:00:00:01"}, state_bytes=5, user_networks=1)
    data = json.loads(json.dumps(manifest.to_json()))
    assert snapshot.SnapshotManifest.from_json(data) == manifest
    with pytest.raises(ValueError, match="unknown field 'extra'"):
        snapshot.SnapshotManifest.from_json({**data, "extra": 1})
    with pytest.raises(ValueError, match="format 2"):
        snapshot.SnapshotManifest.from_json({**data, "format": 2})
    # On disk: no manifest, or a state file gone, is no snapshot; a broken one says what to do.
    assert snapshot.load(tmp_path) is None
    (tmp_path / "snapshot").mkdir()
    (tmp_path / "snapshot" / "snapshot.json").write_text(json.dumps(data))
    assert snapshot.load(tmp_path) is None
    (tmp_path / "snapshot" / "state.bin").write_bytes(b"QEVM")
    assert snapshot.load(tmp_path) == manifest
    (tmp_path / "snapshot" / "snapshot.json").write_text("{")
    with pytest.raises(RunError, match="save a snapshot again"):
        snapshot.load(tmp_path)


def test_a_mismatch_names_what_differs() -> None:
    assert snapshot.mismatch(BINDING, BINDING) == []
    other = dataclasses.replace(BINDING, mem="512M", args=("--port", "8081"), qemu="8.0.0")
    assert snapshot.mismatch(BINDING, other) == [
        "QEMU's version (7.2.22 in the snapshot, 8.0.0 now)", "the memory (--mem) (256M in the snapshot, 512M now)",
        "the application's arguments and keys (--port 8080 in the snapshot, --port 8081 now)"]
    assert snapshot.mismatch(BINDING, dataclasses.replace(BINDING, image="e" * 64)) == [
        "the image (kernel and initramfs)"]


def test_the_binding_leaves_out_what_each_instance_has_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  ) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    kernel, initramfs = tmp_path / "vmlinuz", tmp_path / "initramfs"
    kernel.write_bytes(b"kernel")
    initramfs.write_bytes(b"initramfs")
    monkeypatch.setattr(snapshot, "qemu_version", lambda qemu: "7.2.22")

    def binding(mac: str, disk: str) -> snapshot.Binding:
        return snapshot.session_binding(
            kernel=kernel, initramfs=initramfs, kernel_version="6.1", qemu="qemu", machine="q35", accel="tcg",
            mem="256M", devices=[f"virtio-net,netdev=net-service,mac={mac},guest_csum=off"],
            drives=[f"file={disk},if=none,id=disk-storage,format=raw"], args=[], disks=[("storage", 1)])

    one, two = binding("52:54:00:00:00:01", "/a.img"), binding("02:00:00:00:00:02", "/b.img")
    assert one == two  # MACs and disk files differ per instance
    assert one.devices == ("virtio-net,netdev=net-service,guest_csum=off", "if=none,id=disk-storage,format=raw")
    initramfs.write_bytes(b"rebuilt")
    assert binding("52:54:00:00:00:01", "/a.img").image != one.image


def test_spare_user_networks_take_the_state_of_those_the_snapshot_had() -> None:
    assert snapshot.spare_user_networks(0) == [] and snapshot.spare_user_networks(-1) == []
    assert snapshot.spare_user_networks(2) == ["-netdev", "user,id=unik-snapshot-spare0,restrict=on",
                                                "-netdev", "user,id=unik-snapshot-spare1,restrict=on"]
    assert snapshot.control_args(Path("/run/c.sock")) == [
        "-chardev", "socket,id=unik-ctl,path=/run/c.sock", "-device", "isa-serial,chardev=unik-ctl"]
    assert snapshot.generation_id_args("q35") == ["-device", "vmgenid"]
    assert snapshot.generation_id_args("microvm") == []
