"""Parse an xl configuration with xl's own parser (libxlutil), printing what it read as JSON.

``xl create -n`` needs a hypervisor (it opens libxc's handle before parsing), so on a
host without Xen the tests call the parser xl uses, from Debian's unpacked packages:
``xlu_cfg_readfile`` for the file, ``xlu_cfg_get_*`` for settings and lists, and
``xlu_disk_parse`` (libxl's disk specification grammar) for each ``disk`` entry.
Run with LD_LIBRARY_PATH pointing at the packages' libraries:
``python xl_parse.py CONFIG``.
"""

from __future__ import annotations

import ctypes
import json
import sys
from typing import Any

STRINGS = ("name", "type", "kernel", "ramdisk", "cmdline", "on_poweroff", "on_reboot", "on_crash", "tsc_mode")
LONGS = ("memory", "vcpus")
#: libxl_device_disk (libxl_types.idl, 4.17): backend_domid (uint32), then the pointers
#: backend_domname, pdev_path, vdev; the structure is larger than this, and zeroed.
DISK_STRUCT_BYTES = 1024
PDEV_PATH_OFFSET, VDEV_OFFSET = 16, 24


def main(path: str) -> int:
    libc = ctypes.CDLL(None)
    libc.fdopen.restype = ctypes.c_void_p
    xlu = ctypes.CDLL("libxlutil.so.4.17")
    xl = ctypes.CDLL("libxenlight.so.4.17")
    xlu.xlu_cfg_init.restype = ctypes.c_void_p
    xlu.xlu_cfg_init.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    xlu.xlu_cfg_readfile.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    xlu.xlu_cfg_get_string.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int]
    xlu.xlu_cfg_get_long.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_long), ctypes.c_int]
    xlu.xlu_cfg_get_list.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p),
                                     ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    xlu.xlu_cfg_get_listitem.restype = ctypes.c_char_p
    xlu.xlu_cfg_get_listitem.argtypes = [ctypes.c_void_p, ctypes.c_int]
    xlu.xlu_disk_parse.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p), ctypes.c_void_p]
    xl.libxl_device_disk_init.argtypes = [ctypes.c_void_p]

    cfg = xlu.xlu_cfg_init(libc.fdopen(2, b"w"), path.encode())
    err = xlu.xlu_cfg_readfile(cfg, path.encode())
    out: dict[str, Any] = {"readfile": err}
    if err:
        print(json.dumps(out))
        return 1
    for name in STRINGS:
        value = ctypes.c_char_p()
        if xlu.xlu_cfg_get_string(cfg, name.encode(), ctypes.byref(value), 1) == 0:
            out[name] = value.value.decode() if value.value is not None else None
    for name in LONGS:
        number = ctypes.c_long()
        if xlu.xlu_cfg_get_long(cfg, name.encode(), ctypes.byref(number), 1) == 0:
            out[name] = number.value
    for name in ("vif", "disk"):
        lst, count = ctypes.c_void_p(), ctypes.c_int()
        if xlu.xlu_cfg_get_list(cfg, name.encode(), ctypes.byref(lst), ctypes.byref(count), 1) == 0:
            out[name] = [xlu.xlu_cfg_get_listitem(lst, i).decode() for i in range(count.value)]
    disks = []
    for spec in out.get("disk", []):
        buf = ctypes.create_string_buffer(DISK_STRUCT_BYTES)
        xl.libxl_device_disk_init(buf)
        specs = (ctypes.c_char_p * 1)(spec.encode())
        rc = xlu.xlu_disk_parse(cfg, 1, specs, buf)
        raw = ctypes.addressof(buf)
        pdev = ctypes.c_char_p.from_address(raw + PDEV_PATH_OFFSET).value
        vdev = ctypes.c_char_p.from_address(raw + VDEV_OFFSET).value
        disks.append({"rc": rc, "target": pdev.decode() if pdev else None, "vdev": vdev.decode() if vdev else None})
    out["parsed_disks"] = disks
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
