/*
 * unik_fdio._packet: an AF_PACKET TPACKET_V3 memory-mapped receive ring bound to
 * one NIC, for unik's own TCP/IP stack inside a VM (pure twin: _packet_pure.py).
 *
 * The kernel fills blocks of frames in a ring shared with us; a block whose status has
 * TP_STATUS_USER belongs to us until we hand it back with TP_STATUS_KERNEL.  read()
 * copies up to `limit` frames out of the ring (one Python bytes each) and remembers
 * where it stopped inside a block.  Frames are sent with send(2).  Outgoing frames are
 * not looped back (PACKET_IGNORE_OUTGOING), and transmission bypasses the qdisc.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

typedef struct {
    PyObject_HEAD
    int fd;
    unsigned char *map;
    size_t map_size;
    unsigned int block_size;
    unsigned int block_count;
    unsigned int block;          /* the block being read */
    unsigned int left;           /* frames left in it (0: not started) */
    struct tpacket3_hdr *next;   /* the next frame in it */
} Ring;

static PyTypeObject RingType;

static struct tpacket_block_desc *block_at(Ring *r, unsigned int i)
{
    return (struct tpacket_block_desc *)(r->map + (size_t)i * r->block_size);
}

static int ring_ready(Ring *r)
{
    if (r->fd < 0) {
        PyErr_SetString(PyExc_ValueError, "the packet ring is closed");
        return 0;
    }
    return 1;
}

/* open(ifname, block_size, block_count, frame_size, timeout_ms) -> Ring */
static PyObject *ring_open(PyObject *Py_UNUSED(module), PyObject *args)
{
    const char *ifname;
    unsigned int block_size, block_count, frame_size, timeout_ms;
    if (!PyArg_ParseTuple(args, "sIIII", &ifname, &block_size, &block_count, &frame_size, &timeout_ms))
        return NULL;
    if (strlen(ifname) >= IFNAMSIZ) {
        PyErr_Format(PyExc_ValueError, "interface name %s is too long", ifname);
        return NULL;
    }
    if (block_size == 0 || block_size % (unsigned int)getpagesize() || frame_size < TPACKET_ALIGNMENT
        || block_count == 0 || block_size < frame_size) {
        PyErr_SetString(PyExc_ValueError, "bad ring geometry (block size: a multiple of the page size)");
        return NULL;
    }
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_ALL));
    if (fd < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    int version = TPACKET_V3, one = 1;
    struct tpacket_req3 req;
    memset(&req, 0, sizeof req);
    req.tp_block_size = block_size;
    req.tp_block_nr = block_count;
    req.tp_frame_size = frame_size;
    req.tp_frame_nr = (block_size / frame_size) * block_count;
    req.tp_retire_blk_tov = timeout_ms;
    struct sockaddr_ll addr;
    memset(&addr, 0, sizeof addr);
    addr.sll_family = AF_PACKET;
    addr.sll_protocol = htons(ETH_P_ALL);
    addr.sll_ifindex = (int)if_nametoindex(ifname);
    if (addr.sll_ifindex == 0
        || setsockopt(fd, SOL_PACKET, PACKET_VERSION, &version, sizeof version) != 0
        || setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) != 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        close(fd);
        return NULL;
    }
    /* Best effort: older kernels lack them, and the ring works without. */
    (void)setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
    (void)setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
    /* Every multicast frame too: the kernel's own stack joins no group on this NIC (IPv6 is
     * off in the guest), and IPv6 neighbour discovery, router advertisements and MLD are
     * multicast, so the NIC's filter must let them through to unik's stack. */
    struct packet_mreq mr;
    memset(&mr, 0, sizeof mr);
    mr.mr_ifindex = addr.sll_ifindex;
    mr.mr_type = PACKET_MR_ALLMULTI;
    (void)setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr);
    size_t size = (size_t)block_size * block_count;
    void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED, fd, 0);
    if (map == MAP_FAILED)
        map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        if (map != MAP_FAILED)
            munmap(map, size);
        close(fd);
        return NULL;
    }
    Ring *r = PyObject_New(Ring, &RingType);
    if (r == NULL) {
        munmap(map, size);
        close(fd);
        return NULL;
    }
    r->fd = fd;
    r->map = map;
    r->map_size = size;
    r->block_size = block_size;
    r->block_count = block_count;
    r->block = 0;
    r->left = 0;
    r->next = NULL;
    return (PyObject *)r;
}

/* read(limit) -> list[bytes]: frames already in the ring, at most limit. */
static PyObject *ring_read(Ring *r, PyObject *arg)
{
    long limit = PyLong_AsLong(arg);
    if (limit == -1 && PyErr_Occurred())
        return NULL;
    if (limit < 1) {
        PyErr_SetString(PyExc_ValueError, "limit must be at least 1");
        return NULL;
    }
    if (!ring_ready(r))
        return NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    /* Bounded: at most `limit` frames and one pass over the blocks. */
    for (unsigned int seen = 0; PyList_GET_SIZE(out) < limit && seen <= r->block_count;) {
        struct tpacket_block_desc *desc = block_at(r, r->block);
        if (r->left == 0) {
            if (!(__atomic_load_n(&desc->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER))
                break;
            r->left = desc->hdr.bh1.num_pkts;
            r->next = (struct tpacket3_hdr *)((unsigned char *)desc + desc->hdr.bh1.offset_to_first_pkt);
            if (r->left == 0) { /* an empty retired block */
                __atomic_store_n(&desc->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
                r->block = (r->block + 1) % r->block_count;
                seen++;
                continue;
            }
        }
        struct tpacket3_hdr *h = r->next;
        PyObject *frame = PyBytes_FromStringAndSize((const char *)h + h->tp_mac, h->tp_snaplen);
        if (frame == NULL || PyList_Append(out, frame) != 0) {
            Py_XDECREF(frame);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(frame);
        r->next = (struct tpacket3_hdr *)((unsigned char *)h + h->tp_next_offset);
        if (--r->left == 0) {
            __atomic_store_n(&desc->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
            r->block = (r->block + 1) % r->block_count;
            seen++;
        }
    }
    return out;
}

/* send(frame) -> bool: False when the NIC's queue is full (the frame is dropped). */
static PyObject *ring_send(Ring *r, PyObject *arg)
{
    Py_buffer buf;
    if (!ring_ready(r) || PyObject_GetBuffer(arg, &buf, PyBUF_SIMPLE) != 0)
        return NULL;
    ssize_t n;
    do
        n = send(r->fd, buf.buf, (size_t)buf.len, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    int err = errno;
    PyBuffer_Release(&buf);
    if (n >= 0)
        Py_RETURN_TRUE;
    if (err == EAGAIN || err == ENOBUFS)
        Py_RETURN_FALSE;
    errno = err;
    return PyErr_SetFromErrno(PyExc_OSError);
}

/* drops() -> int: frames the kernel dropped since the last call (ring full). */
static PyObject *ring_drops(Ring *r, PyObject *Py_UNUSED(ignored))
{
    struct tpacket_stats_v3 st;
    socklen_t len = sizeof st;
    if (!ring_ready(r))
        return NULL;
    if (getsockopt(r->fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromUnsignedLong(st.tp_drops);
}

static PyObject *ring_fileno(Ring *r, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLong(r->fd);
}

static void ring_release(Ring *r)
{
    if (r->map != NULL)
        munmap(r->map, r->map_size);
    if (r->fd >= 0)
        close(r->fd);
    r->map = NULL;
    r->fd = -1;
}

static PyObject *ring_close(Ring *r, PyObject *Py_UNUSED(ignored))
{
    ring_release(r);
    Py_RETURN_NONE;
}

static void ring_dealloc(Ring *r)
{
    ring_release(r);
    PyObject_Free(r);
}

/* interface(ifname) -> (mac, mtu).  The ioctls go through an AF_UNIX socket: closing an
 * AF_PACKET one waits for an RCU grace period (synchronize_net), ~10 ms under emulation. */
static PyObject *interface(PyObject *Py_UNUSED(module), PyObject *arg)
{
    const char *ifname = PyUnicode_AsUTF8(arg);
    if (ifname == NULL)
        return NULL;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    if (strlen(ifname) >= IFNAMSIZ) {
        PyErr_Format(PyExc_ValueError, "interface name %s is too long", ifname);
        return NULL;
    }
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    if (ioctl(s, SIOCGIFHWADDR, &ifr) != 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        close(s);
        return NULL;
    }
    PyObject *mac = PyBytes_FromStringAndSize(ifr.ifr_hwaddr.sa_data, 6);
    if (ioctl(s, SIOCGIFMTU, &ifr) != 0) {
        Py_XDECREF(mac);
        PyErr_SetFromErrno(PyExc_OSError);
        close(s);
        return NULL;
    }
    close(s);
    if (mac == NULL)
        return NULL;
    return Py_BuildValue("(Ni)", mac, ifr.ifr_mtu);
}

static PyMethodDef ring_methods[] = {
    {"read", (PyCFunction)ring_read, METH_O, "read(limit) -> frames already received, at most limit"},
    {"send", (PyCFunction)ring_send, METH_O, "send(frame) -> False if the queue was full"},
    {"drops", (PyCFunction)ring_drops, METH_NOARGS, "frames dropped by the kernel since the last call"},
    {"fileno", (PyCFunction)ring_fileno, METH_NOARGS, "the socket's file descriptor"},
    {"close", (PyCFunction)ring_close, METH_NOARGS, "unmap the ring and close the socket"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject RingType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "unik_fdio._packet.Ring",
    .tp_basicsize = sizeof(Ring),
    .tp_dealloc = (destructor)ring_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A TPACKET_V3 receive ring bound to one interface.",
    .tp_methods = ring_methods,
};

static PyMethodDef module_methods[] = {
    {"open", ring_open, METH_VARARGS, "open(ifname, block_size, block_count, frame_size, timeout_ms) -> Ring"},
    {"interface", interface, METH_O, "interface(ifname) -> (mac, mtu)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "unik_fdio._packet", "AF_PACKET TPACKET_V3 rings (C).", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__packet(void)
{
    if (PyType_Ready(&RingType) < 0)
        return NULL;
    return PyModule_Create(&module_def);
}
