"""What the runner and the sandboxed guest (:mod:`unik_solo5.boot`) agree on; nothing to import."""

#: solo5 device types by the kinds of unik devices the tender opens.
SOLO5_TYPES = {"network": "NET_BASIC", "block": "BLOCK_BASIC"}
#: The environment variable in which the tender gives the application its memory limit (MiB).
MEM_ENV = "UNIK_SPT_MEM_MIB"
#: The exit status of an application that ran out of its memory limit.
OUT_OF_MEMORY = 1
