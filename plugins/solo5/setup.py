"""unik-target-solo5's C parts: the spt sandbox (an extension), the spt tender, and hvt's monitor and guest runtime."""

import os
import shlex
import subprocess
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

CFLAGS = ["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"]
TENDER = "unik-spt"
MONITOR = "unik-hvt"
RUNTIME = "hvt/unik-hvt-runtime.o"
DIRECT = "hvt/unik-hvt-direct.o"
PROBE = "hvt/probe.elf"
# The guest runtime runs before libc has resolved its ifuncs or set up TLS, and in a
# system call libc may keep values in SSE registers: no libc calls, no SSE of its own.
RUNTIME_CFLAGS = ["-O2", "-Wall", "-Wextra", "-ffreestanding", "-fno-builtin", "-fno-tree-loop-distribute-patterns",
                  "-fno-stack-protector", "-fno-pie", "-mgeneral-regs-only", "-fcf-protection=none",
                  "-fno-asynchronous-unwind-tables"]


VDSO_FLAGS = ["-O2", "-Wall", "-Wextra", "-fPIC", "-ffreestanding", "-fno-stack-protector", "-mgeneral-regs-only",
              "-fcf-protection=none", "-fno-asynchronous-unwind-tables", "-nostdlib", "-shared",
              "-Wl,-soname=linux-vdso.so.1", "-Wl,--hash-style=both", "-Wl,--build-id=none", "-Wl,-z,noexecstack"]


class BuildWithTender(build_ext):
    """build_ext that also builds ``unik-spt``, ``unik-hvt`` and hvt's guest runtime object beside the package."""

    def run(self) -> None:
        """Build the extension, then the executables and the runtime object beside it."""
        super().run()
        out_dir = Path(self.get_ext_fullpath("unik_solo5._sandbox")).parent
        out_dir.mkdir(parents=True, exist_ok=True)
        # the monitor's build ID binds the snapshots it makes (hvt/snapshot.h)
        for sources, name in ((["src/unik_solo5/tender.c"], TENDER),
                              (["src/unik_solo5/hvt/monitor.c", "src/unik_solo5/hvt/snapshot.c"], MONITOR)):
            objects = self.compiler.compile(sources, output_dir=self.build_temp, extra_postargs=CFLAGS)
            self.compiler.link_executable(objects, name, output_dir=str(out_dir), extra_postargs=["-Wl,--build-id"])
        cc = shlex.split(os.environ.get("CC", "cc"))
        src = Path("src/unik_solo5/hvt")
        tmp = Path(self.build_temp) / "hvt"
        tmp.mkdir(parents=True, exist_ok=True)
        subprocess.check_call([*cc, *RUNTIME_CFLAGS, "-c", str(src / "runtime.c"), "-o", str(tmp / "runtime.o")])
        subprocess.check_call([*cc, "-c", str(src / "boot.S"), "-o", str(tmp / "boot.o")])
        # the vDSO (clock_gettime without a system call) and the object that embeds it
        subprocess.check_call([*cc, *VDSO_FLAGS, f"-Wl,-T,{src / 'vdso.lds'}", "-o", str(tmp / "vdso.so"),
                               str(src / "vdso.c")])
        subprocess.check_call([*cc, f'-DVDSO_SO="{tmp / "vdso.so"}"', "-c", str(src / "vdso_image.S"), "-o",
                               str(tmp / "vdso_image.o")])
        (out_dir / "hvt").mkdir(exist_ok=True)
        subprocess.check_call(["ld", "-r", "-o", str(out_dir / RUNTIME), str(tmp / "runtime.o"), str(tmp / "boot.o"),
                               str(tmp / "vdso_image.o")])
        # libc's system-call wrappers that call the runtime instead of trapping (programs linked with glibc)
        subprocess.check_call([*cc, *CFLAGS, "-fno-pie", "-c", str(src / "direct.c"), "-o", str(out_dir / DIRECT)])
        subprocess.check_call([*cc, "-nostdlib", "-static", "-no-pie", "-o", str(out_dir / PROBE),
                               str(src / "probe.S")])


setup(
    ext_modules=[Extension("unik_solo5._sandbox", ["src/unik_solo5/_sandbox.c"], extra_compile_args=CFLAGS)],
    cmdclass={"build_ext": BuildWithTender},
)
