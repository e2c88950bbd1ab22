"""unik-target-xen: unik applications as Xen PVH (or PV) guests."""

__version__ = "0.1.0"
