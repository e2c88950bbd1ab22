"""Names: which names need a long-name entry, and the 8.3 alias of those that do.

The rules are fatgen103's "Name Limits and Character Sets" and "The Basis-Name
Generation Algorithm" / "The Numeric-Tail Generation Algorithm", with the case rule
Windows NT and Linux share: an 8.3 name whose base and extension are each entirely
upper or entirely lower case is stored without a long name, its case kept in
``DIR_NTRes``.
"""

from __future__ import annotations

import itertools
from collections.abc import Container
from dataclasses import dataclass

from .errors import InvalidName
from .formats import KANJI_E5, MAX_LFN_LENGTH, NTRES_LOWER_BASE, NTRES_LOWER_EXT

#: Characters never allowed in a name (fatgen103 "Name Limits"): also < 0x20.
_FORBIDDEN = frozenset('"*/:<>?\\|\x7f')
#: Allowed in long names but not in short names: replaced by "_" in the basis name.
_LONG_ONLY = frozenset("+,;=[]")
#: Allowed in short names besides A-Z and 0-9 (and bytes >= 0x80 on OEM code pages).
_SHORT_SPECIAL = frozenset("$%'-_@~`!(){}^#&")


def check_long_name(name: str) -> None:
    """Raise :class:`InvalidName` if ``name`` cannot be a FAT long name."""
    if name in ("", ".", ".."):
        raise InvalidName(f"invalid file name {name!r}")
    for ch in name:
        if ch in _FORBIDDEN or ord(ch) < 0x20:
            raise InvalidName(f"{name!r}: the character {ch!r} is not allowed in FAT names")
    # Trailing spaces and periods are ignored by Windows; refuse rather than mangle.
    if name[-1] in " .":
        raise InvalidName(f"{name!r}: FAT names cannot end with a space or a period")
    if len(name.encode("utf-16-le")) // 2 > MAX_LFN_LENGTH:
        raise InvalidName(f"{name!r}: longer than {MAX_LFN_LENGTH} UTF-16 code units")


def _short_char(ch: str) -> bool:
    return ("A" <= ch <= "Z") or ("0" <= ch <= "9") or ch in _SHORT_SPECIAL


@dataclass(frozen=True)
class ShortForm:
    """How a name is stored: the 11-byte short name, NT case bits, long name needed."""

    short: bytes
    nt_res: int
    needs_lfn: bool


def plain_short(name: str) -> ShortForm | None:
    """The 8.3 form of ``name`` when it needs no long name, else ``None``.

    That is a valid 8.3 name whose base and extension each have a single case.
    """
    if name.startswith(".") or name.count(".") > 1:
        return None
    base, _, ext = name.partition(".")
    if not base or len(base) > 8 or len(ext) > 3 or (not ext and name.endswith(".")):
        return None
    nt = 0
    for part, bit in ((base, NTRES_LOWER_BASE), (ext, NTRES_LOWER_EXT)):
        up = part.upper()
        if not all(_short_char(c) for c in up):
            return None
        if part != up:
            if part != part.lower():
                return None  # mixed case inside one part: needs a long name
            nt |= bit
    raw = bytearray(f"{base.upper():<8}{ext.upper():<3}".encode("ascii"))
    if raw[0] == 0xE5:
        raw[0] = KANJI_E5
    return ShortForm(bytes(raw), nt, False)


def basis_name(name: str) -> tuple[str, str, bool]:
    """fatgen103 "Basis-Name Generation": ``(base, ext, lossy)`` for a long name.

    1. upper-case; 2. characters with no short form become "_" (lossy); 3. strip all
    spaces; 4. strip leading periods; 5. up to 8 characters before the last period;
    6. up to 3 after it.
    """
    up = name.upper()
    lossy = False
    chars = []
    for ch in up:
        if ch == " ":
            lossy = True  # "strip all leading and embedded spaces"
            continue
        if ch == "." or _short_char(ch):
            chars.append(ch)
        else:
            chars.append("_")
            lossy = True
    s = "".join(chars)
    stripped = s.lstrip(".")
    if stripped != s:
        lossy = True
    s = stripped
    dot = s.rfind(".")
    if dot >= 0:
        base_full, ext_full = s[:dot].replace(".", ""), s[dot + 1:]
    else:
        base_full, ext_full = s, ""
    if dot >= 0 and "." in s[:dot]:
        lossy = True  # embedded periods are dropped
    base, ext = base_full[:8], ext_full[:3]
    if len(base_full) > 8 or len(ext_full) > 3:
        lossy = True
    return base, ext, lossy


def alias(name: str, taken: Container[bytes], tails: dict[str, int] | None = None) -> bytes:
    """The 11-byte 8.3 alias for a long name, unique among ``taken`` short names.

    fatgen103 "Numeric-Tail Generation": a "~N" tail is added when the conversion was
    lossy or the basis name is taken, with N counting up from 1 and the base cut so
    that base + "~N" fits in 8 characters.  ``tails`` (kept per directory by the
    caller) remembers the last N used for each basis, so that creating many names with
    one basis does not retry every earlier tail; the result is still checked against
    ``taken``.
    """
    base, ext, lossy = basis_name(name)
    if not base:
        base = "_"  # e.g. ".bashrc" -> "BASHRC"; a name of only periods/spaces is refused earlier
    ext_b = f"{ext:<3}".encode("ascii")
    if not lossy:
        plain = f"{base:<8}".encode("ascii") + ext_b
        if plain not in taken:
            return _kanji(plain)
    key = f"{base}.{ext}"
    first = tails.get(key, 0) + 1 if tails is not None else 1
    for n in itertools.chain(range(first, 1_000_000), range(1, first)):
        tail = f"~{n}"
        cand = f"{base[:8 - len(tail)]}{tail}".ljust(8).encode("ascii") + ext_b
        cand = _kanji(cand)
        if cand not in taken:
            if tails is not None:
                tails[key] = n
            return cand
    raise InvalidName(f"{name!r}: no free 8.3 alias left in the directory")


def _kanji(short: bytes) -> bytes:
    return bytes([KANJI_E5]) + short[1:] if short[0] == 0xE5 else short


def short_to_text(short: bytes) -> str:
    """``BASE.EXT`` of an 11-byte short name (no case bits applied)."""
    raw = bytearray(short)
    if raw[0] == KANJI_E5:
        raw[0] = 0xE5
    base = raw[:8].decode("latin-1").rstrip(" ")
    ext = raw[8:].decode("latin-1").rstrip(" ")
    return f"{base}.{ext}" if ext else base


def fold(name: str) -> str:
    """The key names are compared by: FAT names are case-insensitive."""
    return name.upper()
