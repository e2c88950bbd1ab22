"""Interop with dosfstools and mtools, both ways."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from fat_support import (
    FileBlock,
    assert_fsck_clean,
    mcopy_in,
    mcopy_out,
    mdir_names,
    mkfs_fat,
    needs_dosfstools,
    needs_mtools,
    run,
)
from unik_fat.formats import BootSector
from unik_fat.fs import FatFileSystem
from unik_fat.mkfs import MkfsError, geometry, mkfs

pytestmark = [needs_dosfstools, needs_mtools]

NAMES = [
    "README.TXT",
    "lower.txt",
    "A much longer file name with spaces.markdown",
    "MixedCase.Txt",
    "dots.in.the.name.tar.gz",
    "ünïcödé.txt",
    "+plus,comma;semi=eq[].x",
]

#: (mkfs.fat arguments, image size)
IMAGES = [
    (["-F", "12"], 1 << 20),
    (["-F", "12", "-S", "4096"], 8 << 20),
    (["-F", "16"], 20 << 20),
    (["-F", "16", "-s", "16"], 64 << 20),
    (["-F", "16", "-S", "4096"], 300 << 20),
    (["-F", "32"], 40 << 20),
    (["-F", "32", "-s", "8"], 300 << 20),
    (["-F", "32", "-S", "4096"], 300 << 20),
    ([], 600 << 20),
]


def _ss(args: list[str]) -> int:
    return int(args[args.index("-S") + 1]) if "-S" in args else 512


@pytest.mark.parametrize(("args", "size"), IMAGES, ids=lambda v: " ".join(v) if isinstance(v, list) else str(v))
def test_unik_writes_mkfs_fat_images(tmp_path: Path, args: list[str], size: int) -> None:
    img = tmp_path / "disk.img"
    mkfs_fat(img, size, *args)
    ss = _ss(args)
    payload = {name: (name.encode() * 50)[: 100 + 997 * i] for i, name in enumerate(NAMES)}

    async def go() -> None:
        block = FileBlock(img, ss)
        fs = await FatFileSystem.mount(block)
        await fs.mkdir("/Sub Directory")
        await fs.mkdir("/Sub Directory/deeper")
        for name, data in payload.items():
            f = await fs.open(f"/Sub Directory/{name}", "wb")
            await f.write(data)
            await f.close()
        f = await fs.open("/Sub Directory/deeper/big.bin", "wb")
        await f.write(bytes(range(256)) * 800)
        await f.close()
        await fs.rename("/Sub Directory/lower.txt", "/moved.txt")
        await fs.disconnect()
        await block.disconnect()

    run(go())
    assert_fsck_clean(img)
    listed = mdir_names(img, "/Sub Directory", ss)
    assert sorted(listed) == sorted(["deeper", *[n for n in NAMES if n != "lower.txt"]])
    assert "moved.txt" in mdir_names(img, "/", ss)
    for name, data in payload.items():
        if "[" in name:
            continue  # mcopy takes [] as a glob pattern and cannot name this file
        inner = "/moved.txt" if name == "lower.txt" else f"/Sub Directory/{name}"
        assert mcopy_out(img, inner, tmp_path / "out") == data
    assert mcopy_out(img, "/Sub Directory/deeper/big.bin", tmp_path / "out") == bytes(range(256)) * 800


@pytest.mark.parametrize(("fat", "size", "ss"), [(12, 2 << 20, 512), (16, 64 << 20, 512), (32, 100 << 20, 512),
                                                 (32, 300 << 20, 4096), (None, 520 << 20, 512)])
def test_tools_accept_unik_images(tmp_path: Path, fat: int | None, size: int, ss: int) -> None:
    img = tmp_path / "disk.img"
    with open(img, "wb") as f:
        f.truncate(size)
    files = {f"/d{i}/File number {j}.txt": f"{i}-{j}".encode() * (j * 40 + 1) for i in range(3) for j in range(12)}

    async def go() -> None:
        block = FileBlock(img, ss)
        await mkfs(block, fat_type=fat, label="UNIKTEST")
        fs = await FatFileSystem.mount(block)
        for path, data in files.items():
            await fs.mkdir(path.rsplit("/", 1)[0], exist_ok=True)
            f = await fs.open(path, "wb")
            await f.write(data)
            await f.close()
        await fs.remove("/d1/File number 3.txt")
        await fs.disconnect()
        await block.disconnect()

    run(go())
    del files["/d1/File number 3.txt"]
    assert_fsck_clean(img)
    assert sorted(mdir_names(img, "/d1", ss)) == sorted(p.rsplit("/", 1)[1] for p in files if p.startswith("/d1/"))
    for path in ["/d0/File number 0.txt", "/d2/File number 11.txt"]:
        assert mcopy_out(img, path, tmp_path / "o") == files[path]
    # FAT32: the backup boot sector matches the boot sector, FSInfo's free count is right
    raw = img.read_bytes()
    bs = BootSector.parse(raw[:ss])
    if bs.fat_type == 32:
        assert raw[bs.backup_boot_sector * ss:bs.backup_boot_sector * ss + ss] == raw[:ss]
        r = subprocess.run(["fsck.fat", "-n", "-v", str(img)], capture_output=True, text=True)
        assert "free cluster" not in r.stdout.lower() or "wrong" not in r.stdout.lower(), r.stdout


@pytest.mark.parametrize("args", [["-F", "12"], ["-F", "16"], ["-F", "32"], ["-F", "32", "-S", "4096"]])
def test_unik_reads_what_mtools_wrote(tmp_path: Path, args: list[str]) -> None:
    img = tmp_path / "disk.img"
    size = {"12": 1 << 20, "16": 20 << 20, "32": 64 << 20}[args[1]]
    if "-S" in args:
        size = 300 << 20  # mtools wants at least 65525 FAT32 clusters
    mkfs_fat(img, size, *args)
    ss = _ss(args)
    subprocess.run(["mmd", "-i", str(img), "::/Folder With Long Name"], check=True, capture_output=True)
    host = {}
    for i, name in enumerate(NAMES[:5]):
        p = tmp_path / name
        p.write_bytes(bytes([i]) * (i * 3000 + 5))
        mcopy_in(img, p, f"/Folder With Long Name/{name}")
        host[name] = p.read_bytes()

    async def go() -> None:
        block = FileBlock(img, ss, read_only=True)
        fs = await FatFileSystem.mount(block)
        names = await fs.listdir("/Folder With Long Name")
        assert sorted(names) == sorted(host)
        for name, data in host.items():
            f = await fs.open(f"/Folder With Long Name/{name}", "rb")
            assert await f.read() == data
            await f.close()
        assert await fs.check() == []
        await block.disconnect()
        # then change what mtools wrote: append, rename into a new directory, delete
        block = FileBlock(img, ss)
        fs = await FatFileSystem.mount(block)
        f = await fs.open(f"/Folder With Long Name/{NAMES[2]}", "ab")
        await f.write(b"+more")
        await f.close()
        await fs.mkdir("/New Dir")
        await fs.rename(f"/Folder With Long Name/{NAMES[0]}", "/New Dir/renamed file.txt")
        await fs.remove(f"/Folder With Long Name/{NAMES[1]}")
        await fs.disconnect()
        await block.disconnect()

    run(go())
    assert_fsck_clean(img)
    assert sorted(mdir_names(img, "/Folder With Long Name", ss)) == sorted([NAMES[2], NAMES[3], NAMES[4]])
    assert mcopy_out(img, f"/Folder With Long Name/{NAMES[2]}", tmp_path / "o") == host[NAMES[2]] + b"+more"
    assert mcopy_out(img, "/New Dir/renamed file.txt", tmp_path / "o") == host[NAMES[0]]


@pytest.mark.parametrize("ss", [512, 4096])
@pytest.mark.parametrize("kib", [360, 1440, 4096, 8192, 16384, 32768, 131072, 300000, 524288, 1048576])
@pytest.mark.parametrize("fat", [None, 12, 16, 32])
def test_mkfs_geometry_matches_mkfs_fat(tmp_path: Path, kib: int, ss: int, fat: int | None) -> None:
    img = tmp_path / "g.img"
    with open(img, "wb") as f:
        f.truncate(kib * 1024)
    r = subprocess.run(["mkfs.fat", "-S", str(ss), *(["-F", str(fat)] if fat else []), str(img)],
                       capture_output=True)
    if r.returncode:  # mkfs.fat refuses this size/type: so must we
        with pytest.raises(MkfsError):
            geometry(kib * 1024, sector_size=ss, fat_type=fat)
        return
    ref = BootSector.parse(img.read_bytes()[:ss])
    # mkfs.fat may trim the sector count to its CHS geometry; the decisions are compared
    # for the same count.
    ours = geometry(kib * 1024, total_sectors=ref.total_sectors, sector_size=ss, fat_type=fat).boot
    fields = ("sectors_per_cluster", "reserved_sectors", "num_fats", "root_entries", "fat_size", "fat_type",
              "media", "backup_boot_sector", "fs_info_sector", "root_cluster")
    assert {f: getattr(ours, f) for f in fields} == {f: getattr(ref, f) for f in fields}


@pytest.mark.parametrize("options", [
    {"fat_type": 16, "sectors_per_cluster": 8, "reserved_sectors": 8, "num_fats": 1, "root_entries": 1024},
    {"fat_type": 12, "sector_size": 4096},
    {"fat_type": 32, "sectors_per_cluster": 1, "reserved_sectors": 16, "label": "lower case"},
])
def test_mkfs_overrides_pass_fsck(tmp_path: Path, options: dict[str, object]) -> None:
    img = tmp_path / "o.img"
    with open(img, "wb") as f:
        f.truncate(40 << 20)
    ss = int(options.get("sector_size", 512))  # type: ignore[call-overload]

    async def go() -> tuple[int, int]:
        block = FileBlock(img, ss)
        bs = await mkfs(block, **options)  # type: ignore[arg-type]
        fs = await FatFileSystem.mount(block)
        f = await fs.open("/A file with a long name.txt", "wb")
        await f.write(b"x" * 10000)
        await f.close()
        await fs.disconnect()
        await block.disconnect()
        return bs.fat_type, bs.sectors_per_cluster

    fat_type, spc = run(go())
    assert fat_type == options["fat_type"]
    if "sectors_per_cluster" in options:
        assert spc == options["sectors_per_cluster"]
    assert_fsck_clean(img)
    assert mdir_names(img, "/", ss) == ["A file with a long name.txt"]
