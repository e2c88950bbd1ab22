"""What the runner and the sandboxed guest (:mod:`unik_solo5.boot`) agree on; nothing to import."""

#: The environment variable naming the pipe on which the guest reports its devices.
REPORT_ENV = "UNIK_SPT_REPORT_FD"
#: solo5 device types by the kinds of unik devices the tender opens.
SOLO5_TYPES = {"network": "NET_BASIC", "block": "BLOCK_BASIC"}
