/*
 * unik_fdio._tap: the data path of TapNetwork, a Linux TAP device opened with
 * IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, so every frame read or written is preceded by a
 * 12-byte virtio-net header (TUNSETVNETHDRSZ 12).
 *
 *   read_frames(fd, limit, bufsize) -> (frames, malformed, completed)
 *       read() until EAGAIN or `limit` frames, strip the header, complete partial
 *       checksums (VIRTIO_NET_HDR_F_NEEDS_CSUM) in software;
 *   write_frame(fd, header, frame) -> bool
 *       one writev() of header + frame; False when the TAP queue is full (EAGAIN);
 *   complete_checksum(frame, csum_start, csum_offset) and internet_checksum(data).
 *
 * It also exports the ioctl numbers and flags TapNetwork needs, taken from the
 * kernel's uapi headers so they are right on every architecture.  The pure-Python
 * twin is _tap_pure.py; both raise OSError for failed system calls and ValueError
 * for bad arguments.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <net/if.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/if_tun.h>     /* TUNSETIFF, TUNGETIFF, IFF_TAP, IFF_NO_PI, IFF_VNET_HDR, TUN_F_* */
#include <linux/sockios.h>    /* SIOCGIFFLAGS, SIOCSIFFLAGS, SIOCGIFMTU */
#include <linux/virtio_net.h> /* struct virtio_net_hdr_v1, VIRTIO_NET_HDR_F_NEEDS_CSUM */

/* <linux/virtio_net.h>: struct virtio_net_hdr_v1 is flags u8, gso_type u8, hdr_len,
 * gso_size, csum_start, csum_offset, num_buffers (le16 each): 12 bytes. */
#define VNET_HDR_LEN 12
#define ETH_HDR_LEN 14 /* <linux/if_ether.h> ETH_HLEN */

_Static_assert(sizeof(struct virtio_net_hdr_v1) == VNET_HDR_LEN, "virtio_net_hdr_v1 is 12 bytes");

static inline uint16_t
le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

/* RFC 1071 ones' complement sum of `n` bytes as big-endian 16-bit words, folded to
 * 16 bits (not inverted).  Words are added in host order and swapped at the end,
 * which RFC 1071 section 2(B) shows gives the same result. */
static uint16_t
ones_sum(const uint8_t *p, size_t n)
{
    uint64_t sum = 0;
    while (n >= 4) {
        uint32_t w;
        memcpy(&w, p, 4);
        sum += w;
        p += 4;
        n -= 4;
    }
    if (n >= 2) {
        uint16_t w;
        memcpy(&w, p, 2);
        sum += w;
        p += 2;
        n -= 2;
    }
    if (n) { /* an odd last byte is the high byte of a zero-padded word */
        uint8_t pad[2] = {p[0], 0};
        uint16_t w;
        memcpy(&w, pad, 2);
        sum += w;
    }
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    uint16_t folded = (uint16_t)sum;
#if PY_BIG_ENDIAN
    return folded;
#else
    return (uint16_t)((folded >> 8) | (folded << 8));
#endif
}

/* Finish a partial checksum as the device would (virtio spec 5.1.6.2, Linux
 * skb_checksum_help): the field at csum_start + csum_offset holds the folded
 * pseudo-header sum; sum everything from csum_start, store the complement there.
 * A result of 0 is sent as 0xffff (CSUM_MANGLED_0; required for UDP, RFC 768).
 * Returns -1 if the offsets do not fit the frame. */
static int
complete(uint8_t *frame, size_t len, size_t start, size_t offset)
{
    if (start > len || offset > len - start || len - start - offset < 2)
        return -1;
    uint16_t c = (uint16_t)~ones_sum(frame + start, len - start);
    if (c == 0)
        c = 0xffff;
    frame[start + offset] = (uint8_t)(c >> 8);
    frame[start + offset + 1] = (uint8_t)c;
    return 0;
}

PyDoc_STRVAR(read_frames_doc,
"read_frames(fd, limit, bufsize, /) -> (frames, malformed, completed)\n\n"
"Read frames from a non-blocking TAP fd until EAGAIN or `limit` frames.  Each read\n"
"uses a `bufsize`-byte buffer; the virtio-net header is stripped and a partial\n"
"checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM) is completed.  `malformed` counts frames\n"
"dropped because they were too short or their checksum offsets did not fit;\n"
"`completed` counts checksums completed.  An error after some frames ends the batch\n"
"(the next call reports it); an error before any raises OSError.");

static PyObject *
read_frames(PyObject *Py_UNUSED(module), PyObject *args)
{
    int fd;
    Py_ssize_t limit, bufsize;
    if (!PyArg_ParseTuple(args, "inn:read_frames", &fd, &limit, &bufsize))
        return NULL;
    if (limit < 1) {
        PyErr_SetString(PyExc_ValueError, "limit must be at least 1");
        return NULL;
    }
    if (bufsize < VNET_HDR_LEN + ETH_HDR_LEN) {
        PyErr_SetString(PyExc_ValueError, "bufsize is smaller than a header and an Ethernet header");
        return NULL;
    }
    uint8_t *buf = PyMem_Malloc((size_t)bufsize);
    if (buf == NULL)
        return PyErr_NoMemory();
    PyObject *frames = PyList_New(0);
    if (frames == NULL) {
        PyMem_Free(buf);
        return NULL;
    }
    Py_ssize_t malformed = 0, completed = 0, seen = 0;
    while (seen < limit) {
        ssize_t n;
        Py_BEGIN_ALLOW_THREADS
        n = read(fd, buf, (size_t)bufsize);
        Py_END_ALLOW_THREADS
        if (n < 0) {
            if (errno == EINTR) {
                if (PyErr_CheckSignals() < 0)
                    goto fail;
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK || seen > 0)
                break;
            PyErr_SetFromErrno(PyExc_OSError);
            goto fail;
        }
        if (n == 0) /* the TAP never returns 0 for a frame; treat like an empty queue */
            break;
        seen++;
        if (n < VNET_HDR_LEN + ETH_HDR_LEN) {
            malformed++;
            continue;
        }
        uint8_t *frame = buf + VNET_HDR_LEN;
        size_t len = (size_t)n - VNET_HDR_LEN;
        if (buf[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
            if (complete(frame, len, le16(buf + 6), le16(buf + 8)) < 0) {
                malformed++;
                continue;
            }
            completed++;
        }
        PyObject *bytes = PyBytes_FromStringAndSize((const char *)frame, (Py_ssize_t)len);
        if (bytes == NULL)
            goto fail;
        int rc = PyList_Append(frames, bytes);
        Py_DECREF(bytes);
        if (rc < 0)
            goto fail;
    }
    PyMem_Free(buf);
    return Py_BuildValue("(Nnn)", frames, malformed, completed);
fail:
    PyMem_Free(buf);
    Py_DECREF(frames);
    return NULL;
}

PyDoc_STRVAR(write_frame_doc,
"write_frame(fd, header, frame, /) -> bool\n\n"
"Send header + frame with one writev(); False if the TAP queue is full (EAGAIN).");

static PyObject *
write_frame(PyObject *Py_UNUSED(module), PyObject *args)
{
    int fd;
    Py_buffer hdr, frame;
    if (!PyArg_ParseTuple(args, "iy*y*:write_frame", &fd, &hdr, &frame))
        return NULL;
    struct iovec iov[2] = {
        {.iov_base = hdr.buf, .iov_len = (size_t)hdr.len},
        {.iov_base = frame.buf, .iov_len = (size_t)frame.len},
    };
    size_t total = (size_t)hdr.len + (size_t)frame.len;
    PyObject *result = NULL;
    for (;;) {
        ssize_t n;
        Py_BEGIN_ALLOW_THREADS
        n = writev(fd, iov, 2);
        Py_END_ALLOW_THREADS
        if (n >= 0) {
            if ((size_t)n != total) { /* the TAP takes whole frames; never expected */
                PyErr_Format(PyExc_OSError, "short write to TAP: %zd of %zu bytes", n, total);
                break;
            }
            result = Py_NewRef(Py_True);
            break;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            result = Py_NewRef(Py_False);
            break;
        }
        if (errno != EINTR) {
            PyErr_SetFromErrno(PyExc_OSError);
            break;
        }
        if (PyErr_CheckSignals() < 0)
            break;
    }
    PyBuffer_Release(&hdr);
    PyBuffer_Release(&frame);
    return result;
}

PyDoc_STRVAR(complete_checksum_doc,
"complete_checksum(frame, csum_start, csum_offset, /) -> None\n\n"
"Complete, in place, a partial checksum as a NIC would for NEEDS_CSUM: sum the\n"
"writable frame from csum_start (the field at csum_start + csum_offset holds the\n"
"pseudo-header sum) and store the complement there; ValueError if out of range.");

static PyObject *
complete_checksum(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer view;
    Py_ssize_t start, offset;
    if (!PyArg_ParseTuple(args, "w*nn:complete_checksum", &view, &start, &offset))
        return NULL;
    int rc = -1;
    if (start >= 0 && offset >= 0)
        rc = complete(view.buf, (size_t)view.len, (size_t)start, (size_t)offset);
    PyBuffer_Release(&view);
    if (rc < 0) {
        PyErr_SetString(PyExc_ValueError, "checksum offsets outside the frame");
        return NULL;
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(internet_checksum_doc,
"internet_checksum(data, /) -> int\n\n"
"The RFC 1071 Internet checksum of data: the complement of its ones' complement sum.");

static PyObject *
internet_checksum(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*:internet_checksum", &view))
        return NULL;
    uint16_t c = (uint16_t)~ones_sum(view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return PyLong_FromLong(c);
}

static PyMethodDef tap_methods[] = {
    {"read_frames", read_frames, METH_VARARGS, read_frames_doc},
    {"write_frame", write_frame, METH_VARARGS, write_frame_doc},
    {"complete_checksum", complete_checksum, METH_VARARGS, complete_checksum_doc},
    {"internet_checksum", internet_checksum, METH_VARARGS, internet_checksum_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef tap_module = {
    PyModuleDef_HEAD_INIT,
    "unik_fdio._tap",
    "The TAP data path for TapNetwork (C; twin: unik_fdio._tap_pure).",
    -1,
    tap_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__tap(void)
{
    PyObject *m = PyModule_Create(&tap_module);
    if (m == NULL)
        return NULL;
    struct {
        const char *name;
        unsigned long value;
    } constants[] = {
        {"VNET_HDR_LEN", VNET_HDR_LEN},
        {"TUNSETIFF", TUNSETIFF},
        {"TUNSETOFFLOAD", TUNSETOFFLOAD},
        {"TUNGETIFF", TUNGETIFF},
        {"TUNSETVNETHDRSZ", TUNSETVNETHDRSZ},
        {"TUNSETVNETLE", TUNSETVNETLE},
        {"IFF_TAP", IFF_TAP},
        {"IFF_NO_PI", IFF_NO_PI},
        {"IFF_VNET_HDR", IFF_VNET_HDR},
        {"TUN_F_CSUM", TUN_F_CSUM},
        {"TUN_F_TSO4", TUN_F_TSO4},
        {"TUN_F_TSO6", TUN_F_TSO6},
        {"SIOCGIFFLAGS", SIOCGIFFLAGS},
        {"SIOCSIFFLAGS", SIOCSIFFLAGS},
        {"SIOCGIFMTU", SIOCGIFMTU},
        {"IFF_UP", IFF_UP},
        {"IFNAMSIZ", IFNAMSIZ},
        {"VIRTIO_NET_HDR_F_NEEDS_CSUM", VIRTIO_NET_HDR_F_NEEDS_CSUM},
        {"VIRTIO_NET_HDR_F_DATA_VALID", VIRTIO_NET_HDR_F_DATA_VALID},
        {"VIRTIO_NET_HDR_GSO_NONE", VIRTIO_NET_HDR_GSO_NONE},
        {"VIRTIO_NET_HDR_GSO_TCPV4", VIRTIO_NET_HDR_GSO_TCPV4},
        {"VIRTIO_NET_HDR_GSO_UDP", VIRTIO_NET_HDR_GSO_UDP},
        {"VIRTIO_NET_HDR_GSO_TCPV6", VIRTIO_NET_HDR_GSO_TCPV6},
        {"VIRTIO_NET_HDR_GSO_ECN", VIRTIO_NET_HDR_GSO_ECN},
    };
    for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++) {
        PyObject *v = PyLong_FromUnsignedLong(constants[i].value);
        if (v == NULL || PyModule_AddObject(m, constants[i].name, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(m);
            return NULL;
        }
    }
    return m;
}
