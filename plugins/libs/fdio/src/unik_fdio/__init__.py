"""unik-lib-fdio: devices over a file descriptor, for every target that runs on a Linux kernel or its shim.

* :mod:`unik_fdio.tap` — a TAP device as a ``network`` (unix; spt and hvt adopt the
  descriptor their tender or monitor opened);
* :mod:`unik_fdio.block` — a file or host block device as a ``block`` (unix, spt, hvt);
* :mod:`unik_fdio.packet` — an interface's AF_PACKET TPACKET_V3 ring as a ``network``
  (the VM guests' NIC).

Each data path is C with a pure-Python twin (``UNIK_PURE=1``).  The library registers
no plugin: targets' providers name these classes as their implementations.
"""

__version__ = "0.1.0"
