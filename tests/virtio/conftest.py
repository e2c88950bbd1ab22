"""The virtio suite's applications, each built once per session (vm_support, shared with tests/xen).

* ``hello_app``: examples/hello;
* ``status_app``: an app with an entropy device (virtio-rng: modules, devtmpfs) that exits with --status;
* ``disk_app``: an app with a block device (virtio-blk: modules, devtmpfs, sysfs);
* ``http_app``: examples/http on TAP tapv0, with no --ipv4 (DHCP; tests give --ipv4 to `unik run`);
* ``ping_app``: an app with a network device (virtio-net, the TPACKET_V3 ring);
* ``deploy_app``: examples/http with every --image form (below: its address comes from deploy_support).
"""

from __future__ import annotations

from deploy_support import GUEST
from virtio_support import DISK_APP, PING_APP, STATUS_APP
from vm_support import app_fixture, example_fixture, tools_fixture

TARGET = "virtio"

tools = tools_fixture("virtio boot")
hello_app = example_fixture("hello_app", TARGET, "hello")
status_app = app_fixture("status_app", TARGET, "status", STATUS_APP)
disk_app = app_fixture("disk_app", TARGET, "disk", DISK_APP)
http_app = example_fixture("http_app", TARGET, "http", "--net", "service=tapv0")
ping_app = app_fixture("ping_app", TARGET, "ping", PING_APP)

deploy_app = example_fixture("deploy_app", TARGET, "http", "--ipv4", f"{GUEST}/24", "--image", "disk,qcow2,gce,oci")
