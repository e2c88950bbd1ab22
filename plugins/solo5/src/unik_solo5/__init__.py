"""unik-target-solo5: the application as a seccomp-sandboxed process (solo5's spt model)."""

__version__ = "0.1.0"
