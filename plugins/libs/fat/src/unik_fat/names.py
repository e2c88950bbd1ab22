"""Names: comparing them, which need a long-name entry, the 8.3 alias of those that do.

The rules are fatgen103's "Name Limits and Character Sets" and "The Basis-Name
Generation Algorithm" / "The Numeric-Tail Generation Algorithm", with the case rule
Windows NT and Linux share: an ASCII 8.3 name whose base and extension are each entirely
upper or entirely lower case is stored without a long name, its case kept in
``DIR_NTRes``.  Every other name gets a long name, so a name is never stored altered.

Case.  Names are compared as Windows' file systems compare them: each UTF-16 code unit
upper-cased through a one-to-one table (:func:`fold`), never expanded into several
characters as :meth:`str.upper` does (``"ß".upper() == "SS"``, ``"ﬁ".upper() == "FI"``),
which made ``straße.txt`` and ``STRASSE.TXT`` one file.  The table is Unicode's upper
case of each code unit where that is one code unit, except for three characters that
Windows' table (NTFS's ``$UpCase``, which its FAT driver uses too) keeps as they are:
U+0131 dotless i and U+017F long s (Unicode maps them into ASCII, onto ``I`` and ``S``)
and U+00B5 micro sign (onto U+039C Greek capital mu).  Characters outside the Basic
Multilingual Plane (surrogate pairs) are compared exactly.  mtools folds with the C
library's ``towupper``, which maps U+0131 and U+017F as well: it takes a dotless-i
``.txt`` and ``I.TXT`` for one name, Windows and unik for two.

Code pages.  Short names are bytes in an OEM code page (cp437 by default, as mtools and
Linux's ``codepage=437``): :func:`short_to_text` decodes them with the one given, and
:func:`alias` encodes with it: ``ärger.txt`` gets the short name ``ÄRGER.TXT`` (0x8E in
cp437), as mtools and Windows write it; a character the code page lacks becomes ``_``
and the alias gets a numeric tail (``日本.txt`` -> ``__~1.TXT``).  Unlike mtools and
Windows, which store ``ärger.txt`` as that short name alone with the NT lower-case bits,
unik also writes a long name for every non-ASCII name: the short name alone would read
back differently under another code page, and a name is never stored altered.
"""

from __future__ import annotations

import codecs
import encodings.cp437  # noqa: F401 - the default code page: VM images keep only the codecs imported
import itertools
from collections.abc import Container
from dataclasses import dataclass
from functools import lru_cache

from .errors import InvalidName
from .formats import KANJI_E5, MAX_LFN_LENGTH, NTRES_LOWER_BASE, NTRES_LOWER_EXT

#: The OEM code page of short names unless told otherwise (mtools' and Linux's default).
DEFAULT_CODEPAGE = "cp437"
# Long names are UTF-16-LE, short ones cp437 by default: codecs CPython imports on first
# use.  Looked up now, while modules can be read: under spt's sandbox no file can be once
# the application runs (its devices connect after the filter is on).
codecs.lookup("utf-16-le")
codecs.lookup(DEFAULT_CODEPAGE)

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

    That is an ASCII 8.3 name whose base and extension each have a single case: stored
    as 8.3 alone it reads back exactly as given.
    """
    if not name.isascii() or name.startswith(".") or name.count(".") > 1:
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


def _oem_char(ch: str, codepage: str) -> bool:
    """Whether the non-ASCII ``ch`` is one byte (0x80 and up) of the OEM ``codepage``."""
    try:
        return ch.encode(codepage)[0] >= 0x80
    except UnicodeEncodeError:
        return False


def basis_name(name: str, codepage: str = DEFAULT_CODEPAGE) -> tuple[str, str, bool]:
    """fatgen103 "Basis-Name Generation": ``(base, ext, lossy)`` for a long name.

    1. upper-case (:func:`fold`); 2. characters with no short form become "_" (lossy;
    a non-ASCII character has one when the OEM ``codepage`` holds it); 3. strip all
    spaces; 4. strip leading periods; 5. up to 8 characters before the last period;
    6. up to 3 after it.
    """
    up = fold(name)
    lossy = False
    chars = []
    for ch in up:
        if ch == " ":
            lossy = True  # "strip all leading and embedded spaces"
            continue
        if ch == "." or _short_char(ch) or (ch >= "\x80" and _oem_char(ch, codepage)):
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


def alias(name: str, taken: Container[bytes], tails: dict[str, int] | None = None,
          codepage: str = DEFAULT_CODEPAGE) -> bytes:
    """The 11-byte 8.3 alias for a long name, unique among ``taken`` short names.

    Encoded with the OEM ``codepage`` (see :func:`basis_name`).

    fatgen103 "Numeric-Tail Generation": a "~N" tail is added when the conversion was
    lossy or the basis name is taken, with N counting up from 1 and the base cut so
    that base + "~N" fits in 8 characters.  ``tails`` (kept per directory by the
    caller) remembers the last N used for each basis, so that creating many names with
    one basis does not retry every earlier tail; the result is still checked against
    ``taken``.
    """
    base, ext, lossy = basis_name(name, codepage)
    if not base:
        base = "_"  # e.g. ".bashrc" -> "BASHRC"; a name of only periods/spaces is refused earlier
    ext_b = f"{ext:<3}".encode(codepage)
    if not lossy:
        plain = f"{base:<8}".encode(codepage) + ext_b
        if plain not in taken:
            return _kanji(plain)
    key = f"{base}.{ext}"
    first = tails.get(key, 0) + 1 if tails is not None else 1
    for n in itertools.chain(range(first, 1_000_000), range(1, first)):
        tail = f"~{n}"
        cand = f"{base[:8 - len(tail)]}{tail}".ljust(8).encode(codepage) + ext_b
        cand = _kanji(cand)
        if cand not in taken:
            if tails is not None:
                tails[key] = n
            return cand
    raise InvalidName(f"{name!r}: no free 8.3 alias left in the directory")


def _kanji(short: bytes) -> bytes:
    return bytes([KANJI_E5]) + short[1:] if short[0] == 0xE5 else short


def short_to_text(short: bytes, codepage: str = DEFAULT_CODEPAGE) -> str:
    """``BASE.EXT`` of an 11-byte short name (no case bits applied), decoded with ``codepage``."""
    if short.isascii() and short[0] != KANJI_E5:  # code pages agree on ASCII: CPython's fast decoder
        base, ext = short[:8].decode("ascii").rstrip(" "), short[8:].decode("ascii").rstrip(" ")
    else:
        raw = bytearray(short)
        if raw[0] == KANJI_E5:
            raw[0] = 0xE5
        base = raw[:8].decode(codepage, errors="replace").rstrip(" ")
        ext = raw[8:].decode(codepage, errors="replace").rstrip(" ")
    return f"{base}.{ext}" if ext else base


def check_codepage(codepage: str) -> str:
    """``codepage`` if Python has it as a single-byte codec; else :class:`ValueError` naming the fix."""
    import codecs

    try:
        info = codecs.lookup(codepage)
        ok = len(bytes(range(0x20, 0x100)).decode(info.name, errors="strict")) == 0xE0
    except (LookupError, UnicodeDecodeError):
        ok = False
    if not ok:
        raise ValueError(f"OEM code page {codepage!r} is not a single-byte codec Python knows: "
                         "use one such as cp437 (the default), cp850, cp852 or cp866")
    return codepage


#: Code units Windows' upper-case table leaves alone although Unicode upper-cases them to one unit.
_KEPT = frozenset({0x0131, 0x017F, 0x00B5})


@lru_cache(maxsize=1)
def _upcase_table() -> dict[int, int]:
    """The one-to-one upper-case table of :func:`fold` (built on the first non-ASCII name)."""
    table = {unit: unit - 32 for unit in range(ord("a"), ord("z") + 1)}
    for unit in range(0x80, 0x10000):
        if 0xD800 <= unit <= 0xDFFF or unit in _KEPT:
            continue  # surrogates: halves of characters outside the BMP, compared exactly
        up = chr(unit).upper()
        if len(up) == 1 and up != chr(unit) and ord(up) < 0x10000:
            table[unit] = ord(up)
    return table


def fold(name: str) -> str:
    """The key names are compared by: each UTF-16 code unit upper-cased one-to-one (see above)."""
    if name.isascii():
        return name.upper()
    return name.translate(_upcase_table())


#: Bytes never valid in a short name on disk (fsck.fat's list, with the period outside
#: the "." and ".." entries), besides those below 0x20 and 0x7F.
_BAD_SHORT = frozenset(b'*?<>|"\\/:.')


def short_name_problem(short: bytes) -> str | None:
    """Why an 11-byte short name read from disk is invalid, or ``None``."""
    if short[0] == 0x20:
        return "the short name starts with a space"
    for i, b in enumerate(short):
        if b == 0 and any(short[i:]):
            return "the short name has bytes after a NUL"
        if (b < 0x20 and not (i == 0 and b == KANJI_E5)) or b == 0x7F:
            return f"the short name holds the control byte 0x{b:02x}"
        if b in _BAD_SHORT:
            return f"the short name holds {chr(b)!r}"
    return None


def long_name_problem(name: str) -> str | None:
    r"""Why a long name read from disk is invalid (``.``, ``..``, ``/``, ``\\``, control characters), or ``None``."""
    if name in (".", ".."):
        return f"a long name {name!r} (only the first two entries of a subdirectory are . and ..)"
    for ch in name:
        if ch in "/\\":
            return f"the long name holds {ch!r}"
        if ord(ch) < 0x20 or ch == "\x7f":
            return f"the long name holds the control character {ch!r}"
    return None

