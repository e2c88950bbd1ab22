"""The host's side of a network device: TAPs that must exist, and TAPs ``--net DEVICE=auto`` makes.

A TAP named with ``--net DEVICE=TAP`` must exist: opening a missing one would create
a TAP that vanishes with the application and that has no address on the host, so the
unix, virtio and spt runners all refuse it with :func:`missing_tap`'s message (spt's
tender says the same).  ``--net DEVICE=auto`` asks the runner for a TAP:
:class:`AutoTap` creates one, gives the host side an address in the guest's subnet
(from ``--ipv4``: the gateway if it is given, else the subnet's first free address),
says what it did, and removes it when the run ends, however it ends.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from types import TracebackType
from typing import TYPE_CHECKING

from .errors import RunError

if TYPE_CHECKING:
    from .keys import KeyValues

#: ``--net DEVICE=auto``: the runner creates the TAP.
AUTO = "auto"
#: Names the runner gives the TAPs it creates: ``unik0``, ``unik1``...
AUTO_PREFIX = "unik"
_SYS_NET = "/sys/class/net"


def tap_exists(ifname: str) -> bool:
    """Whether a TAP (or TUN) interface ``ifname`` exists in this network namespace."""
    return os.path.exists(os.path.join(_SYS_NET, ifname, "tun_flags"))


def missing_tap(device: str, ifname: str) -> str:
    """The message for a ``--net DEVICE=TAP`` naming no TAP (as the spt tender words it)."""
    if os.path.exists(os.path.join(_SYS_NET, ifname)):
        return f"network device {device}: {ifname} is not a TAP device: give a TAP, or --net {device}=auto"
    return (f"network device {device}: there is no TAP {ifname} here: create it first "
            f"(ip tuntap add {ifname} mode tap; ip addr add ... dev {ifname}), or let unik make one: "
            f"--net {device}=auto")


def require_tap(device: str, ifname: str) -> None:
    """Raise :class:`RunError` with :func:`missing_tap`'s message unless ``ifname`` is a TAP here."""
    if not tap_exists(ifname):
        raise RunError(missing_tap(device, ifname))


def host_address(device: str, ipv4: str, gateway: str | None = None) -> ipaddress.IPv4Interface:
    """The host side's address for a guest at ``ipv4`` (``10.0.0.2/24`` gives ``10.0.0.1/24``).

    The gateway when one is given (the host is then the guest's router), else the
    subnet's first address that is not the guest's.
    """
    try:
        guest = ipaddress.IPv4Interface(ipv4)
    except ValueError:
        raise RunError(f"--ipv4: {ipv4!r} is not an IPv4 address/prefix such as 10.0.0.2/24") from None
    net = guest.network
    if gateway:
        try:
            gw = ipaddress.IPv4Address(gateway)
        except ValueError:
            raise RunError(f"--ipv4-gateway: {gateway!r} is not an IPv4 address") from None
        if gw in net and gw != guest.ip:
            return ipaddress.IPv4Interface(f"{gw}/{net.prefixlen}")
    if net.prefixlen > 30:
        raise RunError(f"--net {device}=auto: --ipv4={ipv4} leaves no address for the host side of the TAP: "
                       f"use a /30 or larger subnet, or create the TAP yourself")
    first, second = net.network_address + 1, net.network_address + 2
    return ipaddress.IPv4Interface(f"{second if guest.ip == first else first}/{net.prefixlen}")


def auto_address(device: str, keys: KeyValues) -> ipaddress.IPv4Interface | None:
    """The host side's address for ``--net DEVICE=auto``, from the application's ``--ipv4``.

    ``None`` when the application has no IPv4 stack (it sends raw frames).  Without
    ``--ipv4`` the guest's stack waits for DHCP, which nothing serves on a new TAP: refused.
    """
    if "ipv4" not in keys.keys:
        return None
    ipv4 = keys.raw("ipv4")
    if not ipv4:
        raise RunError(
            f"--net {device}=auto needs --ipv4: the host side of the new TAP gets an address in the guest's "
            f"subnet, and without --ipv4 the guest waits for a DHCP lease that nothing on a new TAP would give. "
            f"Pass e.g. --ipv4=10.0.0.2/24 (the host side then gets 10.0.0.1/24), or create a TAP with a DHCP "
            f"server on its link and pass --net {device}=TAP")
    gateway = keys.raw("ipv4_gateway") if "ipv4_gateway" in keys.keys else None
    return host_address(device, ipv4, gateway)


class AutoTap:
    """A TAP for one run: created with an address on the host side, removed on exit.

    Use as a context manager; :attr:`ifname` is the TAP's name and :attr:`summary`
    says what was done.  ``address`` ``None`` brings the TAP up without an address (an
    application without an IPv4 stack).
    """

    def __init__(self, device: str, address: ipaddress.IPv4Interface | None) -> None:
        self.device = device
        self.address = address
        self.ifname = ""

    def __enter__(self) -> AutoTap:
        ip = shutil.which("ip")
        if ip is None:
            raise RunError(f"--net {self.device}=auto needs the ip command: apt-get install iproute2")
        for i in range(256):
            name = f"{AUTO_PREFIX}{i}"
            if os.path.exists(os.path.join(_SYS_NET, name)):
                continue
            made = subprocess.run([ip, "tuntap", "add", name, "mode", "tap"], capture_output=True, text=True)
            if made.returncode == 0:
                self.ifname = name
                break
            if not os.path.exists(os.path.join(_SYS_NET, name)):  # not a race lost to another run
                why = made.stderr.strip()
                hint = " (creating a TAP needs root or CAP_NET_ADMIN)" if "ermission" in why else ""
                raise RunError(f"--net {self.device}=auto: cannot create TAP {name}: {why}{hint}")
        else:
            raise RunError(f"--net {self.device}=auto: no free TAP name {AUTO_PREFIX}0..{AUTO_PREFIX}255")
        try:
            if self.address is not None:
                _ip(ip, "addr", "add", str(self.address), "dev", self.ifname)
            _ip(ip, "link", "set", self.ifname, "up")
        except BaseException:
            self.remove()
            raise
        return self

    @property
    def summary(self) -> str:
        """One line for the user: the TAP's name, the host's address, its removal."""
        where = f"the host side at {self.address}" if self.address else "no address on the host side"
        return f"created TAP {self.ifname} with {where}; it is removed when the run ends"

    def remove(self) -> None:
        """Delete the TAP (nothing if it is gone)."""
        if self.ifname and os.path.exists(os.path.join(_SYS_NET, self.ifname)):
            subprocess.run(["ip", "link", "del", self.ifname], capture_output=True)

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.remove()


def _ip(ip: str, *args: str) -> None:
    done = subprocess.run([ip, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RunError(f"ip {' '.join(args)}: {done.stderr.strip()}")
