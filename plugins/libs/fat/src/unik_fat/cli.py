"""``unik fat``: look into and change FAT images from the command line."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from unik.errors import UnikError
from unik.progress import counted

if TYPE_CHECKING:  # the image code loads when a command runs, not with every `unik` command
    from .image import FatImage

_SUFFIX = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def _size(text: str) -> int:
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = _SUFFIX.get(t[-1:], 1)
    try:
        return int(t[:-1] if t[-1:] in _SUFFIX else t) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 64M)") from None


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``fat`` and its subcommands."""
    fat = subparsers.add_parser("fat", help="inspect and change FAT images (unik-lib-fat)")
    fat.add_argument("--codepage", default="cp437", metavar="CODEPAGE",
                     help="OEM code page of 8.3 names (default cp437, as mtools; e.g. cp850)")
    sub = fat.add_subparsers(dest="fat_command", required=True, metavar="COMMAND")

    p = sub.add_parser("ls", help="list a directory")
    p.add_argument("image")
    p.add_argument("path", nargs="?", default="/")
    p.add_argument("-l", "--long", action="store_true", help="sizes, times and short names")
    p.add_argument("-R", "--recursive", action="store_true")
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser("cat", help="print a file")
    p.add_argument("image")
    p.add_argument("path")
    p.set_defaults(func=cmd_cat)

    p = sub.add_parser("cp", help="copy files in or out: paths inside the image start with '::'")
    p.add_argument("image")
    p.add_argument("sources", nargs="+")
    p.add_argument("dest")
    p.add_argument("-r", "--recursive", action="store_true")
    p.set_defaults(func=cmd_cp)

    p = sub.add_parser("mkdir", help="create directories")
    p.add_argument("image")
    p.add_argument("paths", nargs="+")
    p.add_argument("-p", "--parents", action="store_true")
    p.set_defaults(func=cmd_mkdir)

    p = sub.add_parser("rm", help="remove files (and directories with -r)")
    p.add_argument("image")
    p.add_argument("paths", nargs="+")
    p.add_argument("-r", "--recursive", action="store_true")
    p.set_defaults(func=cmd_rm)

    p = sub.add_parser("mv", help="move or rename")
    p.add_argument("image")
    p.add_argument("source")
    p.add_argument("dest")
    p.set_defaults(func=cmd_mv)

    p = sub.add_parser("fsck", help="check an image (read-only); exit status 1 if it has problems")
    p.add_argument("image")
    p.set_defaults(func=cmd_fsck)

    p = sub.add_parser("mkfs", help="create and format an image (mkfs.fat's geometry)")
    p.add_argument("image")
    p.add_argument("--size", type=_size, help="create the file with this size (e.g. 64M)")
    p.add_argument("-F", "--fat-type", type=int, choices=(12, 16, 32))
    p.add_argument("-S", "--sector-size", type=int, default=512)
    p.add_argument("-s", "--sectors-per-cluster", type=int)
    p.add_argument("-n", "--label", default="")
    p.set_defaults(func=cmd_mkfs)


def _open(ns: argparse.Namespace, read_only: bool = False) -> FatImage:
    from .image import FatImage

    return FatImage(ns.image, read_only=read_only, codepage=ns.codepage)


def _warn_invalid(img: FatImage, path: str) -> None:
    """Say which entries of ``path`` were skipped because their names are invalid on disk."""
    for problem in img.invalid_entries(path):
        print(f"unik fat: warning: skipped {problem} (`unik fat fsck` lists every problem)", file=sys.stderr)


def _fmt_time(ns_: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ns_ // 1_000_000_000))


def cmd_ls(ns: argparse.Namespace) -> int:
    """List a directory."""
    with _open(ns, read_only=True) as img:
        tops = [t for t, _d, _f in img.walk(ns.path)] if ns.recursive else [ns.path]
        for top in tops:
            if ns.recursive:
                print(f"{top}:")
            _warn_invalid(img, top)
            for st in img.scandir(top):
                if ns.long:
                    kind = "<DIR>" if st.is_dir else f"{st.size:>10}"
                    print(f"{kind:>10} {_fmt_time(st.mtime_ns)} {st.attributes['short_name']:<12} {st.name}")
                else:
                    print(st.name + ("/" if st.is_dir else ""))
    return 0


def cmd_cat(ns: argparse.Namespace) -> int:
    """Print a file's bytes."""
    with _open(ns, read_only=True) as img:
        img.copy_out(ns.path, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    return 0


def _copy_in(img: FatImage, src: Path, dest: str, recursive: bool) -> None:
    if src.is_dir():
        if not recursive:
            raise UnikError(f"{src} is a directory (use -r)")
        img.mkdir(dest, exist_ok=True)
        for child in sorted(src.iterdir()):
            _copy_in(img, child, f"{dest.rstrip('/')}/{child.name}", recursive)
    else:
        with src.open("rb") as f:
            img.copy_in(f, dest, os.fstat(f.fileno()).st_size)  # the size is checked before reading


def _copy_out(img: FatImage, src: str, dest: Path, recursive: bool) -> None:
    """Copy ``src`` out of the image; a directory tree iteratively, each directory once."""
    if not img.stat(src).is_dir:
        with dest.open("wb") as f:
            img.copy_out(src, f)
        return
    if not recursive:
        raise UnikError(f"::{src} is a directory (use -r)")
    seen: set[int] = set()
    todo = [(src, dest)]
    while todo:
        inner, outer = todo.pop()
        cluster = img.stat(inner).attributes["cluster"]
        if cluster in seen:
            raise UnikError(f"::{inner} is a directory already copied (the image's tree loops; "
                            "`unik fat fsck` says more)")
        seen.add(cluster)
        outer.mkdir(exist_ok=True)
        _warn_invalid(img, inner)
        for st in img.scandir(inner):
            child, target = f"{inner.rstrip('/')}/{st.name}", outer / st.name
            if st.is_dir:
                todo.append((child, target))
            else:
                with target.open("wb") as f:
                    img.copy_out(child, f)


def cmd_cp(ns: argparse.Namespace) -> int:
    """Copy host files into the image (``::DEST``) or image files out (``::SRC``)."""
    into = ns.dest.startswith("::")
    with _open(ns, read_only=not into) as img:
        for src in ns.sources:
            if into == src.startswith("::"):
                raise UnikError("copy between the host and the image: exactly one side starts with '::'")
            if into:
                dest = ns.dest[2:] or "/"
                name = Path(src).name
                if img.exists(dest) and img.stat(dest).is_dir:
                    dest = f"{dest.rstrip('/')}/{name}"
                _copy_in(img, Path(src), dest, ns.recursive)
            else:
                inner = src[2:] or "/"
                target = Path(ns.dest)
                if target.is_dir():
                    target = target / (inner.rstrip("/").rsplit("/", 1)[-1] or "root")
                _copy_out(img, inner, target, ns.recursive)
    return 0


def cmd_mkdir(ns: argparse.Namespace) -> int:
    """Create directories."""
    with _open(ns) as img:
        for p in ns.paths:
            img.mkdir(p, parents=ns.parents, exist_ok=ns.parents)
    return 0


def cmd_rm(ns: argparse.Namespace) -> int:
    """Remove files or trees."""
    with _open(ns) as img:
        for p in ns.paths:
            if img.stat(p).is_dir:
                if not ns.recursive:
                    raise UnikError(f"{p} is a directory (use -r)")
                for top, _dirs, files in reversed(list(img.walk(p))):
                    for f in files:
                        img.remove(f"{top.rstrip('/')}/{f}")
                    img.rmdir(top)
            else:
                img.remove(p)
    return 0


def cmd_mv(ns: argparse.Namespace) -> int:
    """Move or rename."""
    with _open(ns) as img:
        img.rename(ns.source, ns.dest)
    return 0


def cmd_fsck(ns: argparse.Namespace) -> int:
    """Check the image without changing it."""
    try:
        img = _open(ns, read_only=True)
    except UnikError as exc:
        print(f"{ns.image}: {exc}")
        return 1
    with img:
        problems = img.check()
        v = img.fs.statvfs()
    for p in problems:
        print(f"{ns.image}: {p}")
    used = v["clusters"] - v["free_clusters"]
    print(f"{ns.image}: FAT{v['fat_type']}, {used}/{v['clusters']} clusters used, "
          f"{'clean' if not problems else counted(len(problems), 'problem')}")
    return 1 if problems else 0


def cmd_mkfs(ns: argparse.Namespace) -> int:
    """Create and format an image."""
    from .formats import FAT32
    from .image import FatImage
    from .mkfs import MkfsError

    if ns.size is None and not os.path.exists(ns.image):
        raise UnikError(f"{ns.image} does not exist: give --size to create it")
    size = ns.size if ns.size is not None else os.path.getsize(ns.image)
    try:
        img = FatImage.format(ns.image, size, sector_size=ns.sector_size,
                              fat_type=ns.fat_type, sectors_per_cluster=ns.sectors_per_cluster, label=ns.label)
    except MkfsError as exc:
        raise UnikError(f"mkfs: {exc}") from None
    with img:
        v = img.fs.statvfs()
    kind = "FAT32" if v["fat_type"] == FAT32 else f"FAT{v['fat_type']}"
    print(f"{ns.image}: {kind}, {v['clusters']} clusters of {v['cluster_size']} bytes")
    return 0
