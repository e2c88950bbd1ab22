"""A newcomer's mistakes, through the real `unik` command: one sentence naming the fix, before any work.

Each case is the user's input as typed; each checks the whole message, the exit
status, and that nothing was configured, built or booted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_support import Unik
from example_support import copy_example

IPV4_TRAPS = [
    ("--ipv4=foo", "--ipv4: 'foo' is not an IPv4 address/prefix such as 10.0.0.2/24"),
    ("--ipv4=10.0.0.300/24", "--ipv4: '10.0.0.300/24' is not an IPv4 address/prefix such as 10.0.0.2/24"),
    ("--ipv4=10.0.0.2/33", "--ipv4: '10.0.0.2/33' is not an IPv4 address/prefix such as 10.0.0.2/24"),
    ("--ipv4=10.0.0.2", "--ipv4: '10.0.0.2' needs a prefix length, e.g. 10.0.0.2/24"),
    ("--ipv4=10.0.0.0/24",
     "--ipv4: 10.0.0.0 is the network address of 10.0.0.0/24, not a host's: use one of 10.0.0.1-10.0.0.254"),
    ("--ipv4=10.0.0.255/24",
     "--ipv4: 10.0.0.255 is the broadcast address of 10.0.0.0/24, not a host's: use one of 10.0.0.1-10.0.0.254"),
]


def error_of(proc: object) -> str:
    """The one line `unik` printed on stderr (no traceback, no usage)."""
    stderr: str = proc.stderr  # type: ignore[attr-defined]
    assert proc.returncode == 1, stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("unik: error: ")
    return lines[0].removeprefix("unik: error: ")


@pytest.mark.parametrize(("option", "message"), IPV4_TRAPS)
def test_configure_refuses_a_bad_ipv4_for_virtio(tmp_path: Path, unik: Unik, option: str, message: str) -> None:
    app = copy_example("http", tmp_path)
    assert error_of(unik("configure", "-t", "virtio", option, cwd=app, check=False)) == message
    assert not (app / "_build" / "virtio").exists()


def test_configure_refuses_a_gateway_outside_the_subnet(tmp_path: Path, unik: Unik) -> None:
    app = copy_example("http", tmp_path)
    proc = unik("configure", "-t", "virtio", "--ipv4=10.0.0.2/24", "--ipv4-gateway=10.0.1.1", cwd=app, check=False)
    assert error_of(proc) == ("--ipv4-gateway: 10.0.1.1 is not in 10.0.0.0/24, the network of --ipv4 10.0.0.2/24: "
                              "a gateway must be reachable directly")
    proc = unik("configure", "-t", "virtio", "--ipv4-gateway=10.0.0.1", cwd=app, check=False)
    assert error_of(proc) == ("--ipv4-gateway: needs --ipv4 too (without --ipv4 the stack asks DHCP, "
                              "and the gateway comes from it)")


def test_a_bad_ipv4_in_pyproject_names_the_file_table_and_key(tmp_path: Path, unik: Unik) -> None:
    app = copy_example("http", tmp_path)
    pyproject = app / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + '\n[tool.unik.targets.virtio]\nipv4 = "10.0.0.300/24"\n')
    assert error_of(unik("configure", "-t", "virtio", cwd=app, check=False)) == (
        f"{pyproject}: [tool.unik.targets.virtio] ipv4: '10.0.0.300/24' is not an IPv4 address/prefix "
        "such as 10.0.0.2/24"
    )


def test_run_checks_an_override_before_building(tmp_path: Path, unik: Unik) -> None:
    app = copy_example("http", tmp_path)
    unik("configure", "-t", "unix", "--net=tap", "--ipv4=10.0.0.2/24", cwd=app)
    proc = unik("run", "--ipv4=10.0.0.2/24", "--ipv4-gateway=192.168.0.1", cwd=app, check=False)
    assert error_of(proc) == ("--ipv4-gateway: 192.168.0.1 is not in 10.0.0.0/24, the network of --ipv4 "
                              "10.0.0.2/24: a gateway must be reachable directly")
    proc = unik("run", "--ipv4=10.0.0.2", cwd=app, check=False)
    assert error_of(proc) == "--ipv4: '10.0.0.2' needs a prefix length, e.g. 10.0.0.2/24"
    assert not (app / "dist").exists()


def test_the_socket_stack_checks_its_bind_address(tmp_path: Path, unik: Unik) -> None:
    app = copy_example("http", tmp_path)
    assert error_of(unik("configure", "-t", "unix", "--ipv4=localhost", cwd=app, check=False)) == (
        "--ipv4: 'localhost' is not an IPv4 address (with an optional /PREFIX), e.g. 127.0.0.1"
    )


def test_a_misspelt_target_is_not_offered_to_configure(tmp_path: Path, unik: Unik) -> None:
    app = copy_example("hello", tmp_path)
    unik("configure", "-t", "unix", cwd=app)
    for command in ("build", "run", "describe", "configure"):
        message = error_of(unik(command, "-t", "virtoi", cwd=app, check=False))
        assert message.startswith("unknown target 'virtoi' (did you mean 'virtio'?); installed: "), message
        assert "configure -t virtoi" not in message


def test_a_misspelt_command_and_option_get_the_nearest(tmp_path: Path, unik: Unik) -> None:
    app = copy_example("http", tmp_path)
    message = error_of(unik("confgure", "-t", "unix", cwd=app, check=False))
    assert message.startswith("unknown command 'confgure' (did you mean 'configure'?); commands: new, configure")
    assert error_of(unik("configure", "--ipv5=10.0.0.2/24", cwd=app, check=False)) == (
        "unknown option --ipv5 for `unik configure` (did you mean '--ipv4' or '--ipv6'?); see `unik configure --help`"
    )
    assert error_of(unik("configure", "--prot", "81", cwd=app, check=False)) == (
        "unknown option --prot for `unik configure` (did you mean '--port'?); see `unik configure --help`"
    )
    message = error_of(unik("configure", "-t", "unix", "--mem", "1G", cwd=app, check=False))
    assert message.startswith("--mem is a key of target ") and "virtio, xen" in message  # and others with --mem
    assert message.endswith(", not of unix: see `unik configure -t unix --help` for the keys of unix")
    assert not (app / "_build").exists()


def test_a_binding_to_a_device_that_does_not_exist(tmp_path: Path, unik: Unik) -> None:
    app = copy_example("kv", tmp_path)
    message = error_of(unik("configure", "-t", "unix", "--block", "stroage=disk.img", cwd=app, check=False))
    assert message == ("--block: stroage=disk.img: this application has no device 'stroage' on target 'unix' "
                       "(did you mean 'storage'?) (devices that take it: storage)")
    unik("configure", "-t", "unix", cwd=app)
    message = error_of(unik("run", "--block", "stroage=other.img", cwd=app, check=False))
    assert "no device 'stroage'" in message and "(did you mean 'storage'?)" in message
    assert not (app / "dist").exists()


def test_a_table_for_a_target_that_does_not_exist(tmp_path: Path, unik: Unik) -> None:
    app = copy_example("http", tmp_path)
    pyproject = app / "pyproject.toml"
    original = pyproject.read_text()
    pyproject.write_text(original + '\n[tool.unik.targets.unx]\nnet = "socket"\n')
    assert error_of(unik("configure", "-t", "unix", cwd=app, check=False)) == (
        f"{pyproject}: [tool.unik.targets.unx]: there is no target 'unx' (did you mean 'unix'?); "
        "targets: hvt, spt, unix, virtio, xen"
    )
    pyproject.write_text(original + '\n[tool.unik.targets.virtio]\nmemory = "1G"\n')
    message = error_of(unik("configure", "-t", "virtio", cwd=app, check=False))
    assert message.startswith(f"{pyproject}: [tool.unik.targets.virtio] memory: unknown key (did you mean 'mem'?)")
    pyproject.write_text(original + '\n[tool.unik.targets.unix.devices.htdcs]\nsource = "htdocs"\n')
    assert error_of(unik("configure", "-t", "unix", cwd=app, check=False)) == (
        f"{pyproject}: [tool.unik.targets.unix.devices.htdcs]: 'htdcs' is not a device of this application on "
        "target 'unix' (did you mean 'htdocs'?) (devices: console, htdocs, stack)"
    )


def keys_in_help(text: str) -> set[str]:
    """The options listed in the keys section of a help text."""
    section = text.split("keys (from the target, its libraries and the application):", 1)[1]
    return {line.split()[0] for line in section.splitlines() if line.startswith("  --")}


def test_help_shows_the_keys_of_the_target_and_plan_only(tmp_path: Path, unik: Unik) -> None:
    app = copy_example("http", tmp_path)
    unix = keys_in_help(unik("configure", "-t", "unix", "--help", cwd=app).stdout)
    assert {"--net", "--ipv4", "--ipv4-gateway", "--port"} <= unix
    assert not unix & {"--mem", "--tls-cert", "--fd", "--xen-type"}  # other targets', an absent device's
    spt = keys_in_help(unik("configure", "-t", "spt", "--help", cwd=app).stdout)
    assert "--net" in spt and not spt & {"--fd", "--mtu", "--size"}  # the tender's own keys
    unik("configure", "-t", "virtio", cwd=app)
    run = keys_in_help(unik("run", "--help", cwd=app).stdout)
    assert {"--mem", "--accel", "--net", "--ipv4", "--port"} <= run
    assert not run & {"--tls-key", "--xen-type", "--fd"}
    targets = unik("targets", cwd=app).stdout
    assert "--fd " not in targets and "--mtu " not in targets and "--net-mac" in targets


@pytest.mark.parametrize(("target", "option", "message"), [
    ("virtio", "--mem=lots", "--mem: 'lots' is not a memory size: give MiB, or a number with a binary unit: "
                             "256, 256M, 256MB, 256MiB, 1G"),
    ("virtio", "--mem=0", "--mem: '0' is less than 1 MiB: give MiB, or a number with a binary unit: "
                          "256, 256M, 256MB, 256MiB, 1G"),
    ("xen", "--mem=lots", "--mem: 'lots' is not a memory size: give MiB, or a number with a binary unit: "
                          "256, 256M, 256MB, 256MiB, 1G"),
])
def test_a_memory_size_is_checked_at_configure(tmp_path: Path, unik: Unik, target: str, option: str,
                                               message: str) -> None:
    app = copy_example("hello", tmp_path)
    assert error_of(unik("configure", "-t", target, option, cwd=app, check=False)) == message
    assert not (app / "_build" / target).exists()


def test_a_misspelt_network_mode(tmp_path: Path, unik: Unik) -> None:
    app = copy_example("http", tmp_path)
    assert error_of(unik("configure", "-t", "unix", "--net=tpa", cwd=app, check=False)) == (
        "--net: 'tpa' is neither `socket`, `tap` nor DEVICE=TAP (e.g. service=tap0) (did you mean 'tap'?)"
    )
    pyproject = app / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + '\n[tool.unik.targets.unix]\nnet = "sockt"\n')
    assert error_of(unik("configure", "-t", "unix", cwd=app, check=False)) == (
        f"{pyproject}: [tool.unik.targets.unix] net: 'sockt' is neither `socket`, `tap` nor DEVICE=TAP "
        "(e.g. service=tap0) (did you mean 'socket'?)"
    )


def test_misspelt_options_of_unik_itself_and_of_other_commands(tmp_path: Path, unik: Unik) -> None:
    app = copy_example("hello", tmp_path)
    assert error_of(unik("--verison", cwd=app, check=False)) == (
        "unknown option --verison for `unik` (did you mean '--version'?); see `unik --help`"
    )
    assert error_of(unik("--qiet", "targets", cwd=app, check=False)) == (
        "unknown option --qiet for `unik` (did you mean '--quiet'?); see `unik --help`"
    )
    assert error_of(unik("build", "--dsit", "out", cwd=app, check=False)) == (
        "unknown option --dsit for `unik build` (did you mean '--dist'?); see `unik build --help`"
    )
    # Nothing near enough: no guess (the dashes alone do not make --count look like --net).
    unik("configure", "-t", "unix", cwd=app)
    assert error_of(unik("run", "--colour=1", cwd=app, check=False)) == (
        "unknown option --colour for `unik run`; see `unik run --help`"
    )


@pytest.mark.parametrize(("option", "message"), [
    ("--dns=dns.example", "--dns: 'dns.example' is not an IPv4 or IPv6 address: give servers as --dns=ADDR[,ADDR] "
                          "(e.g. --dns=10.0.0.1)"),
    ("--hosts=api.example", "--hosts: 'api.example' is not NAME=ADDR (e.g. --hosts api.example=10.0.0.5)"),
    ("--hosts=api.example=10.0.0.300", "--hosts: 'api.example=10.0.0.300': '10.0.0.300' is not an IPv4 or IPv6 "
                                       "address"),
    ("--dns-search=a..b", "--dns-search: search domain 'a..b' has an empty label (two dots in a row, or a leading "
                          "dot)"),
])
def test_configure_refuses_bad_resolver_keys(tmp_path: Path, unik: Unik, option: str, message: str) -> None:
    app = copy_example("http", tmp_path)
    assert error_of(unik("configure", "-t", "virtio", option, cwd=app, check=False)) == message
    assert not (app / "_build" / "virtio").exists()
