"""QEMU's user-mode network for a guest NIC: no root, no TAP, ports published like ``docker run -p``.

``unik run --net service=user --publish 8080:8080`` gives the NIC QEMU's ``-netdev user``
(slirp): QEMU itself terminates the guest's TCP and UDP flows and opens host sockets for
them, so nothing needs root, a TAP or a bridge.  The guest is on 10.0.2.0/24; slirp's
DHCP server hands it 10.0.2.15 (the address host forwards go to), its gateway 10.0.2.2
and a DNS forwarder 10.0.2.3, so unik's stack is configured without ``--ipv4``.

Why slirp rather than passt: the QEMU packaged here is built with slirp (``-netdev
help`` lists ``user``), so it needs no other program, no second process to start, watch
and stop, and no socket path to share; passt is faster but this network is for
development and for hosts without root, where a few MB/s are not the limit.

slirp has no virtio-net header: QEMU then withholds the checksum and segmentation
offloads from the guest, so the frames the guest's ring reads carry full checksums,
as the TAP path gets by turning the guest offloads off.
"""

from __future__ import annotations

import errno
import ipaddress
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from unik.errors import RunError
from unik.keys import KeyValues
from unik.target import RunContext, given_bindings

#: The ``--net DEVICE=VALUE`` value that selects this network.
USER = "user"
#: What slirp's DHCP server gives the guest first (and where forwards go).
GUEST_ADDRESS = "10.0.2.15"
_SPEC = re.compile(r"^(?:(?P<ip>[0-9.]+):)?(?P<host>[0-9]+):(?P<guest>[0-9]+)(?:/(?P<proto>[a-z]+))?$")


@dataclass(frozen=True)
class Publish:
    """One ``--publish [HOST_IP:]HOST:GUEST[/tcp|/udp]``: a host port forwarded to the guest."""

    host_ip: str
    host_port: int
    guest_port: int
    proto: str = "tcp"

    def __str__(self) -> str:
        ip = f"{self.host_ip}:" if self.host_ip != "0.0.0.0" else ""
        return f"{ip}{self.host_port}:{self.guest_port}/{self.proto}"

    def hostfwd(self, guest: str = "") -> str:
        """QEMU's ``hostfwd=`` rule (no ``guest`` address: slirp's first DHCP address)."""
        return f"hostfwd={self.proto}:{self.host_ip}:{self.host_port}-{guest}:{self.guest_port}"


def parse_publish(text: str) -> Publish:
    """``8080:80``, ``127.0.0.1:8080:80/tcp`` or ``5353:53/udp``, or a one-sentence :class:`RunError`."""
    m = _SPEC.match(text.strip())
    if not m:
        raise RunError(f"--publish {text}: write [HOST_IP:]HOST_PORT:GUEST_PORT[/tcp|/udp], e.g. --publish 8080:8080")
    proto = m["proto"] or "tcp"
    if proto not in ("tcp", "udp"):
        raise RunError(f"--publish {text}: the protocol is tcp or udp, not {proto}")
    ip = m["ip"] or "0.0.0.0"
    try:
        ipaddress.IPv4Address(ip)
    except ValueError:
        raise RunError(f"--publish {text}: {ip} is not an IPv4 address (QEMU forwards IPv4 only)") from None
    host, guest = int(m["host"]), int(m["guest"])
    for what, port in (("host", host), ("guest", guest)):
        if not 1 <= port <= 65535:
            raise RunError(f"--publish {text}: the {what} port {port} is not between 1 and 65535")
    return Publish(ip, host, guest, proto)


def parse_all(value: str | None) -> list[Publish]:
    """Every rule of a ``--publish`` value (repeated options arrive comma-separated); duplicates refused."""
    rules = [parse_publish(t) for t in (value or "").split(",") if t.strip()]
    seen: dict[tuple[str, int], Publish] = {}
    for rule in rules:
        clash = seen.get((rule.proto, rule.host_port))
        if clash is not None:
            raise RunError(f"--publish {clash} and --publish {rule} use the same host port: give each its own")
        seen[(rule.proto, rule.host_port)] = rule
    return rules


def check_free(rule: Publish) -> None:
    """Refuse a host port another program holds, before anything boots (QEMU would fail later)."""
    kind = socket.SOCK_STREAM if rule.proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as QEMU binds: TIME_WAIT is no clash
        try:
            s.bind((rule.host_ip, rule.host_port))
        except OSError as exc:
            where = "" if rule.host_ip == "0.0.0.0" else f" on {rule.host_ip}"
            if exc.errno == errno.EADDRINUSE:
                raise RunError(f"--publish {rule}: {rule.proto} port {rule.host_port}{where} is already in use "
                               f"on this host: choose another host port, e.g. --publish "
                               f"{rule.host_port + 1}:{rule.guest_port}") from None
            if exc.errno == errno.EACCES:
                raise RunError(f"--publish {rule}: host port {rule.host_port} needs root (ports below 1024 are "
                               f"privileged): choose a host port of 1024 or more, e.g. --publish "
                               f"{8000 + rule.host_port}:{rule.guest_port}") from None
            raise RunError(f"--publish {rule}: cannot use {rule.proto} port {rule.host_port}{where}: "
                           f"{exc.strerror}") from None


def check_guest_ports(rules: list[Publish], listening: dict[str, int]) -> None:
    """Refuse a TCP forward to a port the application does not listen on.

    ``listening`` maps the application's port keys (``port``, ``admin_port``) to their
    values; an application without such keys is not checked (its ports are not knowable).
    """
    if not listening:
        return
    ports = set(listening.values())
    for rule in rules:
        if rule.proto == "tcp" and rule.guest_port not in ports:
            keys = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in sorted(listening.items()))
            first = next(iter(sorted(ports)))
            name = next(iter(listening)).replace("_", "-") if len(listening) == 1 else "PORT-KEY"
            raise RunError(f"--publish {rule}: the application listens on {keys}, not on {rule.guest_port}: "
                           f"publish that port (--publish {rule.host_port}:{first}) or run it with "
                           f"--{name} {rule.guest_port}")


def netdev(device: str, rules: list[Publish], ipv4: str | None = None, gateway: str | None = None) -> str:
    """The ``-netdev`` value for ``device`` on QEMU's user network with ``rules``.

    A guest with a static ``--ipv4`` gets a user network around its subnet: slirp's
    side is the ``--ipv4-gateway`` (else the subnet's first other address) and forwards
    go to the guest's address.
    """
    opts = [f"user,id=net-{device}"]
    guest = ""
    if ipv4:
        try:
            iface = ipaddress.IPv4Interface(ipv4)
            gw = ipaddress.IPv4Address(gateway) if gateway else None
        except ValueError as exc:
            raise RunError(f"--ipv4 {ipv4}: {exc}") from None
        hosts = [h for h in iface.network.hosts() if h != iface.ip][:3]
        if len(hosts) < 2:
            raise RunError(f"--ipv4 {ipv4}: QEMU's user network needs a subnet with room for the host and its "
                           f"DNS forwarder beside the guest (/29 or larger), or no --ipv4 (DHCP)")
        host = gw if gw is not None else hosts[0]
        if host not in iface.network:
            raise RunError(f"--ipv4-gateway {gateway} is outside the guest's subnet {iface.network}")
        dns = next(h for h in hosts if h != host)
        guest = str(iface.ip)
        opts += [f"net={iface.network}", f"host={host}", f"dns={dns}", f"dhcpstart={guest}"]
    return ",".join([*opts, *(r.hostfwd(guest) for r in rules)])


def app_option(app_keys: KeyValues, extra: Sequence[str], name: str) -> str | None:
    """An application key's value, the last ``--name V``/``--name=V`` after ``--`` winning."""
    option = "--" + name.replace("_", "-")
    value = app_keys.raw(name) if name in app_keys.keys else None
    for i, arg in enumerate(extra):
        if arg == option and i + 1 < len(extra):
            value = extra[i + 1]
        elif arg.startswith(option + "="):
            value = arg[len(option) + 1:]
    return value


def port_keys(app_keys: KeyValues) -> dict[str, int]:
    """The application's integer keys named ``port`` or ``*_port`` and their values: where it listens."""
    out: dict[str, int] = {}
    for name, key in app_keys.keys.items():
        if key.type == "int" and (name == "port" or name.endswith("_port")):
            value = app_keys.get(name)
            if isinstance(value, int):
                out[name] = value
    return out


def prepare(value: str | None, app_keys: KeyValues, extra: Sequence[str]) -> list[Publish]:
    """The ``--publish`` rules, checked before anything boots: syntax, duplicates, guest and host ports.

    ``extra`` are the application's arguments after ``--``: one may name another port,
    so the guest ports are only checked without them.
    """
    rules = parse_all(value)
    if rules and not extra:
        check_guest_ports(rules, port_keys(app_keys))
    for rule in rules:
        check_free(rule)
    return rules


def describe(rules: list[Publish], static: bool) -> str:
    """What the runner says about a NIC on the user network."""
    ports = ", ".join(f"{r.host_ip}:{r.host_port} -> {r.guest_port}/{r.proto}" for r in rules)
    return ("QEMU's user network" + ("" if static else f" (DHCP gives the guest {GUEST_ADDRESS})") + "; "
            + (f"published: {ports}" if ports else "no port published (--publish HOST:GUEST)"))


def run_option(name: str, keys: KeyValues, ctx: RunContext) -> str | None:
    """A runner key's value: given to `unik run`, else configured, else ``None``."""
    if ctx.options.is_set(name):
        return ctx.options.raw(name)
    return keys.raw(name) if name in keys.keys else None


def preflight(keys: KeyValues, ctx: RunContext, nics: Sequence[str], target_keys: set[str]) -> list[Publish]:
    """Check ``--net DEVICE=user`` and ``--publish`` before anything is built or booted (also for ``run -d``).

    ``nics`` are the plan's network devices QEMU can attach; ``target_keys`` the
    target's own keys (the others are the application's, where its ports are).
    """
    nets = given_bindings("net", keys, ctx)
    users = [n for n in nics if nets.get(n) == USER]
    rules = parse_all(run_option("publish", keys, ctx))
    if rules and not users:
        raise RunError("--publish forwards host ports to a NIC on QEMU's user network: add --net DEVICE=user "
                       f"(e.g. --net {nics[0] if nics else 'service'}=user)")
    if rules and len(users) > 1:
        raise RunError(f"--publish: network devices {', '.join(users)} are all on QEMU's user network; "
                       "forwards would be ambiguous: give the others a TAP")
    app_keys = KeyValues([k for k in keys.keys.values() if k.name not in target_keys],
                         {n: v for n, v in keys.values.items() if n not in target_keys})
    return prepare(",".join(map(str, rules)), app_keys, ctx.extra_args)
