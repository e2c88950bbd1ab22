"""OpenSSL inside the hvt unikernel: CPython's _ssl and _hashlib built in from Debian's source; memory files."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
from pathlib import Path

from hvt_support import build_app, needs_build_tools, needs_kvm, unik
from unik_solo5.hvt_stdlib import deb_src_entries, upstream


def test_hashlib_takes_openssl_and_ssl_loads_in_the_guest(tmp_path: Path) -> None:
    needs_kvm()
    needs_build_tools()
    app = build_app(tmp_path, "digests", head="import hashlib, hmac, os, ssl\n", body="""\
        console.log(ssl.OPENSSL_VERSION)
        for name in ("sha256", "md5"):
            h = getattr(hashlib, name)(b"unik")
            console.log(f"{name} {type(h).__module__} {h.hexdigest()}")
        console.log("sha512_256 " + hashlib.new("sha512_256", b"unik").hexdigest())
        console.log("pbkdf2 " + hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", 1000).hex())
        console.log("hmac " + hmac.digest(b"key", b"unik", "sha256").hex())
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        console.log(f"tls {ssl.HAS_TLSv1_3} {ctx.minimum_version.name}")
        # memory files, as unik-lib-tls hands OpenSSL its key: /proc/self/fd/N opens one again
        fd = os.memfd_create("key")
        os.write(fd, b"secret")
        os.ftruncate(fd, 8)
        with open(f"/proc/self/fd/{fd}", "rb") as f:
            data = f.read()
        console.log(f"memfd {os.path.isdir('/proc/self/fd')} {data!r} {os.fstat(fd).st_size} "
                    f"{os.path.exists('/proc/self/status')}")
        os.close(fd)
        console.log(f"closed {os.path.exists(f'/proc/self/fd/{fd}')}")
        """)
    out = unik(app, "run", "-t", "hvt").stdout.splitlines()
    libssl = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libssl-dev"], capture_output=True, text=True,
                            check=True).stdout
    assert out[0].startswith(f"OpenSSL {upstream(libssl)} ")  # libssl-dev's static libraries
    assert out[1:] == [
        f"sha256 _hashlib {hashlib.sha256(b'unik').hexdigest()}",
        f"md5 _hashlib {hashlib.md5(b'unik').hexdigest()}",
        f"sha512_256 {hashlib.new('sha512_256', b'unik').hexdigest()}",
        f"pbkdf2 {hashlib.pbkdf2_hmac('sha256', b'pw', b'salt', 1000).hex()}",
        f"hmac {hmac.digest(b'key', b'unik', 'sha256').hex()}",
        "tls True MINIMUM_SUPPORTED",  # as Debian's own _ssl: pyconfig.h's PY_SSL_DEFAULT_CIPHERS 2 (OpenSSL's)
        "memfd True b'secret\\x00\\x00' 8 False",
        "closed False",
    ]


def test_the_hosts_debian_entries_become_deb_src_and_others_are_left_out(tmp_path: Path) -> None:
    debian = tmp_path / "debian.sources"
    debian.write_text("Types: deb\n# a snapshot\nURIs: http://deb.debian.org/debian\n"
                      "Suites: bookworm bookworm-updates\nComponents: main\n"
                      "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
                      "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n"
                      "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    other = tmp_path / "node.sources"
    other.write_text("Types: deb\nURIs: https://example.invalid/node\nSuites: nodistro\nComponents: main\n"
                     "Signed-By: /usr/share/keyrings/nodesource.gpg\n")
    text = deb_src_entries([debian, other])
    stanzas = text.strip().split("\n\n")
    assert len(stanzas) == 2 and all(s.startswith("Types: deb-src\n") for s in stanzas)
    assert "debian-security" in stanzas[1] and "#" not in text and "node" not in text
    assert deb_src_entries([other]) == ""
    assert upstream("3.11.2-6+deb12u6") == "3.11.2" and upstream("1:2.3-1") == "2.3"


def test_one_line_sources_lists_are_read_too(tmp_path: Path) -> None:
    """Debian 12's installer writes /etc/apt/sources.list in the one-line format: its Debian lines count."""
    listing = tmp_path / "sources.list"
    listing.write_text("# deb cdrom:[Debian GNU/Linux 12]/ bookworm main\n"
                       "deb http://deb.debian.org/debian/ bookworm main non-free-firmware\n"
                       "deb-src http://deb.debian.org/debian/ bookworm main\n"
                       "deb http://security.debian.org/debian-security bookworm-security main  # updates\n"
                       "deb [arch=amd64 signed-by=/usr/share/keyrings/docker.gpg] "
                       "https://download.docker.com/linux/debian bookworm stable\n"
                       "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example/debian "
                       "bookworm main\n"
                       "deb https://download.docker.com/linux/debian bookworm stable\n")
    stanzas = deb_src_entries([listing]).strip().split("\n\n")
    assert stanzas == [
        "Types: deb-src\nURIs: http://deb.debian.org/debian/\nSuites: bookworm\nComponents: main non-free-firmware",
        "Types: deb-src\nURIs: http://security.debian.org/debian-security\nSuites: bookworm-security\n"
        "Components: main",
        "Types: deb-src\nURIs: http://mirror.example/debian\nSuites: bookworm\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg",
    ]


def test_openssls_generator_differs_in_every_restore_of_a_snapshot(tmp_path: Path) -> None:
    """Import-time code that draws from OpenSSL's DRBG runs before the build's snapshot: each restore reseeds it."""
    needs_kvm()
    needs_build_tools()
    app = build_app(tmp_path, "draws", head="""\
        import ssl
        AT_IMPORT = ssl.RAND_bytes(8).hex()  # the snapshot's, in every restore
        """, body="""\
        console.log(f"{AT_IMPORT} {ssl.RAND_bytes(16).hex()}")
        """)
    assert (app / "dist" / "draws-hvt" / "draws.snap").is_file()
    runs = [unik(app, "run", "-t", "hvt").stdout.split() for _ in range(3)]
    assert len({r[0] for r in runs}) == 1  # computed at import: documented as the snapshot's
    assert len({r[1] for r in runs}) == 3, runs
