"""The addresses of one interface, with their states and lifetimes (RFC 4862 5.5.4), and source selection.

An address is TENTATIVE while duplicate address detection runs (RFC 4862 5.4: it
receives nothing but DAD's own messages and is never a source), PREFERRED, then
DEPRECATED once its preferred lifetime passed (still accepted, not chosen for new
communication), and removed when its valid lifetime ends.  :meth:`AddressTable.source_for`
applies the rules of RFC 6724 5 that matter on one interface: same scope (link-local to
link-local), preferred over deprecated, then the longest common prefix.
"""

from __future__ import annotations

from collections.abc import Iterator

from . import wire

TENTATIVE, PREFERRED, DEPRECATED = "tentative", "preferred", "deprecated"
#: A lifetime that never ends (0xFFFFFFFF seconds in a router advertisement).
FOREVER = 1 << 62


class Address:
    """One address of ours."""

    __slots__ = ("address", "dad_at", "dad_left", "origin", "preferred_until", "prefix_len", "state",
                 "valid_until")

    def __init__(self, address: bytes, prefix_len: int, origin: str, valid_until: int, preferred_until: int) -> None:
        self.address, self.prefix_len = address, prefix_len
        #: ``"link-local"``, ``"static"`` (``--ipv6``) or ``"slaac"`` (RFC 4862 from a router advertisement).
        self.origin = origin
        self.state = TENTATIVE
        #: Deadlines in the stack's nanoseconds (:data:`FOREVER`: none).
        self.valid_until, self.preferred_until = valid_until, preferred_until
        #: DAD: solicitations still to send and when the next step is due.
        self.dad_left = 0
        self.dad_at = 0

    def __repr__(self) -> str:
        from ..addr import ip_text

        return f"<Address {ip_text(self.address)}/{self.prefix_len} {self.origin} {self.state}>"


class AddressTable:
    """The interface's addresses, at most ``limit`` (bogus router advertisements cannot add more)."""

    def __init__(self, limit: int = 16) -> None:
        self.limit = limit
        self.entries: dict[bytes, Address] = {}

    def __iter__(self) -> Iterator[Address]:
        """The entries (a copy: the caller may add and remove while iterating)."""
        return iter(list(self.entries.values()))

    def get(self, address: bytes) -> Address | None:
        """The entry of ``address``, whatever its state."""
        return self.entries.get(address)

    def add(self, entry: Address) -> bool:
        """Add a tentative address; ``False`` when the table is full or holds it already."""
        if entry.address in self.entries or len(self.entries) >= self.limit:
            return False
        self.entries[entry.address] = entry
        return True

    def remove(self, address: bytes) -> Address | None:
        """Forget ``address``."""
        return self.entries.pop(address, None)

    def owns(self, address: bytes) -> bool:
        """Whether ``address`` is ours and usable (preferred or deprecated, not tentative)."""
        entry = self.entries.get(address)
        return entry is not None and entry.state != TENTATIVE

    def link_local(self) -> bytes | None:
        """Our usable link-local address, if any."""
        for entry in self.entries.values():
            if entry.origin == "link-local" and entry.state != TENTATIVE:
                return entry.address
        return None

    def source_for(self, dst: bytes) -> bytes | None:
        """The source address for ``dst`` (RFC 6724 5, rules 2, 3 and 8 on one interface)."""
        if wire.is_link_local(dst) or (wire.is_multicast(dst) and dst[1] & 0xF <= 2):
            return self.link_local()
        best: Address | None = None
        best_key = (-1, -1)
        for entry in self.entries.values():
            if entry.state == TENTATIVE or wire.is_link_local(entry.address):
                continue
            key = (entry.state == PREFERRED, wire.common_prefix_len(entry.address, dst))
            if key > best_key:
                best, best_key = entry, key
        return best.address if best is not None else None

    def expire(self, now_ns: int) -> list[Address]:
        """Deprecate addresses past their preferred lifetime; remove and return those past their valid one."""
        gone = []
        for entry in list(self.entries.values()):
            if now_ns >= entry.valid_until:
                del self.entries[entry.address]
                gone.append(entry)
            elif now_ns >= entry.preferred_until and entry.state == PREFERRED:
                entry.state = DEPRECATED
        return gone
