"""``unik tls selfsigned``: a development certificate and key for a TLS application."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``tls`` and its subcommands."""
    tls = subparsers.add_parser("tls", help="TLS certificates for applications (unik-lib-tls)")
    sub = tls.add_subparsers(dest="tls_command", required=True, metavar="COMMAND")
    p = sub.add_parser(
        "selfsigned", help="write a self-signed development certificate and key",
        description="Write a self-signed end-entity certificate (CA:FALSE, server authentication; "
        "`curl --cacert cert.pem` trusts it directly) and its private key, for development. "
        "Names may be DNS names or IP addresses.",
    )
    p.add_argument("-n", "--name", dest="names", action="append", metavar="NAME",
                   help="a DNS name or IP address the certificate covers (repeat; "
                   "default: localhost and 127.0.0.1)")
    p.add_argument("--days", type=int, default=30, help="validity in days (default 30)")
    p.add_argument("-o", "--out-dir", type=Path, default=Path("."), metavar="DIR",
                   help="directory for cert.pem and key.pem (default: the current one)")
    p.add_argument("--cert", type=Path, metavar="FILE", help="certificate path (default DIR/cert.pem)")
    p.add_argument("--key", type=Path, metavar="FILE", help="private key path (default DIR/key.pem)")
    p.add_argument("--key-type", choices=("ec", "rsa"), default="ec", help="P-256 (default) or RSA 3072")
    p.add_argument("-f", "--force", action="store_true", help="replace existing files")
    p.set_defaults(func=cmd_selfsigned)


def cmd_selfsigned(ns: argparse.Namespace) -> int:
    """Write the pair and say where."""
    names = ns.names or ["localhost", "127.0.0.1"]
    cert_path = ns.cert or ns.out_dir / "cert.pem"
    key_path = ns.key or ns.out_dir / "key.pem"
    try:
        from .certs import selfsigned, write_pair  # imports cryptography.x509: only when asked
    except ImportError as exc:
        print(f"unik tls selfsigned makes certificates with cryptography, which is not installed ({exc}): "
              f"pip install 'unik-lib-tls[certs]'", file=sys.stderr)
        return 1

    try:
        cert, key = selfsigned(names, days=ns.days, key_type=ns.key_type)
        write_pair(cert, key, cert_path, key_path, force=ns.force)
    except (ValueError, OSError) as exc:
        print(f"unik tls selfsigned: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {cert_path} and {key_path} (for {', '.join(names)}, {ns.days} days)")
    return 0
