/* Frame parsing and building fast paths for the TCP/IPv4 segments that make up nearly
 * all of a busy stack's traffic.  Pure-Python twin: _fastpath_py.py (same functions,
 * same results; the tests compare them).
 *
 *   tcp4_parse(frame, verify_checksum) -> Tcp4Fields | None
 *       One call instead of the Ethernet, IPv4, TCP and TCP-option parsers for the
 *       common case: an Ethernet II frame holding an unfragmented IPv4 datagram without
 *       options holding a TCP segment without options or with exactly NOP, NOP,
 *       Timestamps (RFC 7323 appendix A).  Anything else, or anything the full parsers
 *       would reject, returns None: the caller then runs the full parsers, which name
 *       the reason for a drop.  Tcp4Fields is a named tuple (a struct sequence):
 *       (dst_mac, src, dst, sport, dport, seq, ack, flags, window, urgent,
 *        tcp_start, tcp_end, header_len, tsval, tsecr); tsval is -1 without
 *       timestamps.
 *   tcp6_parse(frame, verify_checksum) -> Tcp4Fields | None
 *       The same for IPv6 without extension headers (src and dst are 16 bytes; tcp_start
 *       is 54).
 *   tcp_segment(src, dst, sport, dport, seq, ack, flags, window, tsval, tsecr,
 *               options, payload, headroom, partial) -> bytearray
 *       A TCP segment after headroom zero bytes: the NOP, NOP, Timestamps option when
 *       tsval >= 0, then options (padded to 4 bytes), then payload; the checksum over
 *       the pseudo-header (IPv4 or, with 16-byte addresses, IPv6), or only the pseudo-header's sum for a
 *       NIC to complete when partial is true.
 *   ipv4_header(buf, offset, src, dst, proto, payload_len, ident, ttl, df) -> None
 *       Writes a 20-byte IPv4 header (RFC 791 3.1) with its checksum at offset.
 *   tcp_frame(link, src, dst, sport, dport, seq, ack, flags, window, tsval, tsecr,
 *             options, payload, ident, ttl, partial) -> bytearray
 *       A whole frame in one call: the 14-byte link header (an established connection
 *       keeps its peer's), the IPv4 header (DF set, ident, ttl; with 16-byte addresses
 *       the IPv6 header with ttl as its hop limit) and the segment tcp_segment builds.
 *       An empty link leaves the link and IP headers as zero headroom: the segment
 *       tcp_segment(..., headroom=14 + IP header, partial) gives, for the IP layer to fill.
 *       The same builder is offered to other extensions (tcp/_predict.c) as the capsule
 *       unik_tcpip._fastpath.tcp_frame_c (TcpFrameFn, in _tcpframe.h).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_tcpframe.h"

#define ETH_LEN 14
#define IP_LEN 20
#define TCP_LEN 20
#define IP6_LEN 40

static unsigned
be16(const unsigned char *p)
{
    return ((unsigned)p[0] << 8) | p[1];
}

static unsigned long
be32(const unsigned char *p)
{
    return ((unsigned long)p[0] << 24) | ((unsigned long)p[1] << 16) | ((unsigned long)p[2] << 8) | p[3];
}

static void
put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static void
put32(unsigned char *p, unsigned long v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* The one's-complement sum of big-endian 16-bit words (RFC 1071), 32 bits a step into a
 * 64-bit accumulator; an odd trailing byte is padded with zero (RFC 1071 4.1). */
static uint64_t
sum_be(uint64_t acc, const unsigned char *p, Py_ssize_t n)
{
    while (n >= 4) {
        acc += ((uint64_t)p[0] << 24) | ((uint64_t)p[1] << 16) | ((uint64_t)p[2] << 8) | p[3];
        p += 4;
        n -= 4;
    }
    if (n >= 2) {
        acc += ((uint64_t)p[0] << 8) | p[1];
        p += 2;
        n -= 2;
    }
    if (n)
        acc += (uint64_t)p[0] << 8;
    return acc;
}

static unsigned
fold(uint64_t acc)
{
    while (acc >> 16)
        acc = (acc & 0xffffu) + (acc >> 16);
    return (unsigned)acc;
}

/* The sum of the pseudo-header: IPv4 (RFC 9293 3.1, 4-byte addresses) or IPv6 (RFC 8200
 * 8.1, 16-byte addresses); both come to src + dst + protocol + length. */
static uint64_t
pseudo_sum(const unsigned char *src, const unsigned char *dst, Py_ssize_t alen, unsigned proto,
           Py_ssize_t length)
{
    uint64_t acc = sum_be(0, src, alen);
    acc = sum_be(acc, dst, alen);
    return acc + proto + (uint64_t)(length & 0xffff) + (uint64_t)(length >> 16);
}

static PyTypeObject *Tcp4Fields;

static PyStructSequence_Field tcp4_fields[] = {
    {"dst_mac", "the destination MAC address (6 bytes)"},
    {"src", "the source address (4 bytes from tcp4_parse, 16 from tcp6_parse)"},
    {"dst", "the destination address (4 or 16 bytes)"},
    {"sport", "the source port"},
    {"dport", "the destination port"},
    {"seq", "the sequence number"},
    {"ack", "the acknowledgment number"},
    {"flags", "the TCP flags byte"},
    {"window", "the window field (unscaled)"},
    {"urgent", "the urgent pointer"},
    {"tcp_start", "where the TCP header starts in the frame"},
    {"tcp_end", "where the segment ends in the frame"},
    {"header_len", "the TCP header length"},
    {"tsval", "the timestamp value, -1 without the option"},
    {"tsecr", "the timestamp echo reply, -1 without the option"},
    {NULL, NULL},
};

static PyStructSequence_Desc tcp4_desc = {
    "unik_tcpip._fastpath.Tcp4Fields",
    "The fields of a plain TCP frame that tcp4_parse (IPv4) or tcp6_parse (IPv6) found.",
    tcp4_fields, 15,
};

/* The record both parsers return (a new reference, or NULL with an exception set). */
static PyObject *
tcp_fields(const unsigned char *f, const unsigned char *src, const unsigned char *dst, Py_ssize_t alen,
           const unsigned char *tcp, Py_ssize_t start, Py_ssize_t end, unsigned hlen, long tsval, long tsecr)
{
    PyObject *items[15] = {
        PyBytes_FromStringAndSize((const char *)f, 6),
        PyBytes_FromStringAndSize((const char *)src, alen),
        PyBytes_FromStringAndSize((const char *)dst, alen),
        PyLong_FromUnsignedLong(be16(tcp)), PyLong_FromUnsignedLong(be16(tcp + 2)),
        PyLong_FromUnsignedLong(be32(tcp + 4)), PyLong_FromUnsignedLong(be32(tcp + 8)),
        PyLong_FromUnsignedLong(tcp[13]), PyLong_FromUnsignedLong(be16(tcp + 14)),
        PyLong_FromUnsignedLong(be16(tcp + 18)),
        PyLong_FromSsize_t(start), PyLong_FromSsize_t(end),
        PyLong_FromUnsignedLong(hlen), PyLong_FromLong(tsval), PyLong_FromLong(tsecr),
    };
    PyObject *result = PyStructSequence_New(Tcp4Fields);
    for (int i = 0; i < 15; i++) {
        if (items[i] == NULL || result == NULL) {
            for (int j = i; j < 15; j++)
                Py_XDECREF(items[j]);
            Py_XDECREF(result);
            return NULL;
        }
        PyStructSequence_SET_ITEM(result, i, items[i]);
    }
    return result;
}

/* The TCP header's checks shared by both families: a header length inside the segment,
 * non-zero ports, no SYN with FIN or RST, and no option but NOP, NOP, Timestamps.
 * Returns 0 (and the header length and timestamps) when the segment may take the fast
 * path. */
static int
tcp_header_ok(const unsigned char *tcp, Py_ssize_t tcp_len, unsigned *hlen, long *tsval, long *tsecr)
{
    *hlen = (tcp[12] >> 4) * 4u;
    unsigned flags = tcp[13];
    if (*hlen < TCP_LEN || (Py_ssize_t)*hlen > tcp_len)
        return -1;
    if (be16(tcp) == 0 || be16(tcp + 2) == 0 || ((flags & 0x02) && (flags & 0x05)))
        return -1;
    *tsval = *tsecr = -1;
    if (*hlen == TCP_LEN + 12 && tcp[20] == 1 && tcp[21] == 1 && tcp[22] == 8 && tcp[23] == 10) {
        *tsval = (long)be32(tcp + 24);
        *tsecr = (long)be32(tcp + 28);
    }
    else if (*hlen != TCP_LEN)
        return -1;
    return 0;
}

PyDoc_STRVAR(tcp4_parse_doc,
"tcp4_parse(frame, verify_checksum, /) -> Tcp4Fields | None\n\n"
"The fields of a plain TCP/IPv4 frame, or None for anything the full parsers must see.");

static PyObject *
tcp4_parse(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer view;
    int verify;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "y*p:tcp4_parse", &view, &verify))
        return NULL;
    const unsigned char *f = view.buf;
    Py_ssize_t n = view.len;
    if (n < ETH_LEN + IP_LEN + TCP_LEN || be16(f + 12) != 0x0800)
        goto slow;
    const unsigned char *ip = f + ETH_LEN;
    unsigned total = be16(ip + 2);
    /* Version 4, no options; a total length inside the frame; no reserved flag, MF or
     * offset (DF may be set); protocol TCP. */
    if (ip[0] != 0x45 || total < IP_LEN + TCP_LEN || (Py_ssize_t)total > n - ETH_LEN)
        goto slow;
    if ((be16(ip + 6) & 0xbfff) != 0 || ip[9] != 6)
        goto slow;
    if (verify && fold(sum_be(0, ip, IP_LEN)) != 0xffff)
        goto slow;
    const unsigned char *tcp = ip + IP_LEN;
    Py_ssize_t tcp_len = (Py_ssize_t)total - IP_LEN;
    unsigned hlen;
    long tsval, tsecr;
    if (tcp_header_ok(tcp, tcp_len, &hlen, &tsval, &tsecr) < 0)
        goto slow;
    if (verify && fold(sum_be(pseudo_sum(ip + 12, ip + 16, 4, 6, tcp_len), tcp, tcp_len)) != 0xffff)
        goto slow;
    result = tcp_fields(f, ip + 12, ip + 16, 4, tcp, ETH_LEN + IP_LEN, ETH_LEN + (Py_ssize_t)total, hlen, tsval,
                        tsecr);
    PyBuffer_Release(&view);
    return result;
slow:
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(tcp6_parse_doc,
"tcp6_parse(frame, verify_checksum, /) -> Tcp4Fields | None\n\n"
"The fields of a plain TCP/IPv6 frame (16-byte src and dst), or None for anything the full parsers\n"
"must see: extension headers, a payload length past the frame, a bad checksum, unusual options.");

static PyObject *
tcp6_parse(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer view;
    int verify;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "y*p:tcp6_parse", &view, &verify))
        return NULL;
    const unsigned char *f = view.buf;
    Py_ssize_t n = view.len;
    if (n < ETH_LEN + IP6_LEN + TCP_LEN || be16(f + 12) != 0x86dd)
        goto slow;
    const unsigned char *ip = f + ETH_LEN;
    Py_ssize_t tcp_len = (Py_ssize_t)be16(ip + 4);
    /* Version 6, next header TCP (no extension headers), a payload inside the frame. */
    if ((ip[0] >> 4) != 6 || ip[6] != 6 || tcp_len < TCP_LEN || tcp_len > n - ETH_LEN - IP6_LEN)
        goto slow;
    const unsigned char *tcp = ip + IP6_LEN;
    unsigned hlen;
    long tsval, tsecr;
    if (tcp_header_ok(tcp, tcp_len, &hlen, &tsval, &tsecr) < 0)
        goto slow;
    if (verify && fold(sum_be(pseudo_sum(ip + 8, ip + 24, 16, 6, tcp_len), tcp, tcp_len)) != 0xffff)
        goto slow;
    result = tcp_fields(f, ip + 8, ip + 24, 16, tcp, ETH_LEN + IP6_LEN, ETH_LEN + IP6_LEN + tcp_len, hlen, tsval,
                        tsecr);
    PyBuffer_Release(&view);
    return result;
slow:
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

/* Header length of a TCP segment: NOP, NOP, Timestamps when tsval >= 0, then opt_len bytes of
 * options padded to 4. */
static Py_ssize_t
tcp_header_len(long long tsval, Py_ssize_t opt_len)
{
    return TCP_LEN + (tsval >= 0 ? 12 : 0) + (opt_len + 3) / 4 * 4;
}

/* A TCP segment at t (its header's bytes zeroed by the caller): the header, NOP, NOP, Timestamps
 * when tsval >= 0, options, payload, and the checksum over the pseudo-header of src and dst
 * (alen 4 or 16), or only the pseudo-header's sum for a NIC to complete when partial.  What
 * tcp_segment and the whole-frame builder share. */
static void
put_segment(unsigned char *t, const unsigned char *src, const unsigned char *dst, Py_ssize_t alen, unsigned sport,
            unsigned dport, unsigned long seq, unsigned long ack, unsigned flags, unsigned window, long long tsval,
            long long tsecr, const unsigned char *options, Py_ssize_t opt_len, const unsigned char *payload,
            Py_ssize_t payload_len, int partial)
{
    Py_ssize_t hlen = tcp_header_len(tsval, opt_len);
    Py_ssize_t length = hlen + payload_len;
    put16(t, sport);
    put16(t + 2, dport);
    put32(t + 4, seq & 0xffffffffu);
    put32(t + 8, ack & 0xffffffffu);
    t[12] = (unsigned char)((hlen / 4) << 4);
    t[13] = (unsigned char)flags;
    put16(t + 14, window);
    unsigned char *o = t + TCP_LEN;
    if (tsval >= 0) {
        o[0] = 1;
        o[1] = 1;
        o[2] = 8;
        o[3] = 10;
        put32(o + 4, (unsigned long)(tsval & 0xffffffff));
        put32(o + 8, (unsigned long)(tsecr & 0xffffffff));
        o += 12;
    }
    if (opt_len)
        memcpy(o, options, (size_t)opt_len);
    if (payload_len)
        memcpy(t + hlen, payload, (size_t)payload_len);
    uint64_t acc = pseudo_sum(src, dst, alen, 6, length);
    put16(t + 16, partial ? fold(acc) : ~fold(sum_be(acc, t, length)) & 0xffffu);
}

/* The whole-frame builder behind tcp_frame and, through the capsule TCP_FRAME_CAPSULE, the
 * transmit path of tcp/_predict.c (its type and contract: _tcpframe.h). */
static PyObject *
build_frame(const unsigned char *link, const unsigned char *src, const unsigned char *dst, Py_ssize_t alen,
            unsigned sport, unsigned dport, unsigned long seq, unsigned long ack, unsigned flags, unsigned window,
            long long tsval, long long tsecr, const unsigned char *options, Py_ssize_t opt_len,
            const unsigned char *payload, Py_ssize_t payload_len, unsigned ident, unsigned ttl, int partial)
{
    Py_ssize_t headroom = ETH_LEN + (alen == 4 ? IP_LEN : IP6_LEN);
    Py_ssize_t hlen = tcp_header_len(tsval, opt_len);
    Py_ssize_t length = hlen + payload_len;
    PyObject *out = PyByteArray_FromStringAndSize(NULL, headroom + length);
    if (out == NULL)
        return NULL;
    unsigned char *b = (unsigned char *)PyByteArray_AS_STRING(out);
    memset(b, 0, (size_t)(headroom + hlen));
    if (link != NULL) {
        unsigned char *h = b + ETH_LEN;
        memcpy(b, link, ETH_LEN);
        if (alen == 4) {
            /* RFC 791 3.1; DF set (RFC 1191 path MTU discovery). */
            h[0] = 0x45;
            put16(h + 2, (unsigned)(IP_LEN + length));
            put16(h + 4, ident & 0xffffu);
            put16(h + 6, 0x4000u);
            h[8] = (unsigned char)ttl;
            h[9] = 6;
            memcpy(h + 12, src, 4);
            memcpy(h + 16, dst, 4);
            put16(h + 10, ~fold(sum_be(0, h, IP_LEN)) & 0xffffu);
        }
        else {
            /* RFC 8200 3: version 6, no traffic class or flow label. */
            h[0] = 0x60;
            put16(h + 4, (unsigned)length);
            h[6] = 6;
            h[7] = (unsigned char)ttl;
            memcpy(h + 8, src, 16);
            memcpy(h + 24, dst, 16);
        }
    }
    put_segment(b + headroom, src, dst, alen, sport, dport, seq, ack, flags, window, tsval, tsecr, options, opt_len,
                payload, payload_len, partial);
    return out;
}

PyDoc_STRVAR(tcp_frame_doc,
"tcp_frame(link, src, dst, sport, dport, seq, ack, flags, window, tsval, tsecr, options, payload,\n"
"          ident, ttl, partial, /) -> bytearray\n\n"
"A whole Ethernet/IPv4 (or IPv6) frame of a TCP segment; an empty link leaves the link and\n"
"IP headers as zeros.");

static PyObject *
tcp_frame(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer link, src, dst, options, payload;
    unsigned sport, dport, flags, window, ident, ttl;
    unsigned long seq, ack;
    long long tsval, tsecr;
    int partial;
    if (!PyArg_ParseTuple(args, "y*y*y*IIkkIILLy*y*IIp:tcp_frame", &link, &src, &dst, &sport, &dport, &seq, &ack,
                          &flags, &window, &tsval, &tsecr, &options, &payload, &ident, &ttl, &partial))
        return NULL;
    PyObject *out = NULL;
    if ((src.len != 4 && src.len != 16) || dst.len != src.len)
        PyErr_SetString(PyExc_ValueError, "tcp_frame: addresses are 4 (IPv4) or 16 (IPv6) bytes");
    else if (link.len != 0 && link.len != ETH_LEN)
        PyErr_SetString(PyExc_ValueError, "tcp_frame: the link header is 14 bytes (or empty)");
    else if (sport > 0xffff || dport > 0xffff || window > 0xffff || flags > 0xff || ttl > 0xff)
        PyErr_SetString(PyExc_ValueError, "tcp_frame: a field is out of range");
    else if (tcp_header_len(tsval, options.len) > TCP_LEN + 40)
        PyErr_SetString(PyExc_ValueError, "TCP options longer than 40 bytes");
    else if (link.len && (src.len == 4 ? IP_LEN : 0) + TCP_LEN + 40 + payload.len > 0xffff)
        PyErr_SetString(PyExc_ValueError, "tcp_frame: the IP length field holds at most 65535 bytes");
    else
        out = build_frame(link.len ? link.buf : NULL, src.buf, dst.buf, src.len, sport, dport, seq, ack, flags,
                          window, tsval, tsecr, options.buf, options.len, payload.buf, payload.len, ident, ttl,
                          partial);
    PyBuffer_Release(&link);
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    PyBuffer_Release(&options);
    PyBuffer_Release(&payload);
    return out;
}

PyDoc_STRVAR(tcp_segment_doc,
"tcp_segment(src, dst, sport, dport, seq, ack, flags, window, tsval, tsecr, options, payload,\n"
"            headroom, partial, /) -> bytearray\n\n"
"A TCP segment with its checksum (or, with partial, the pseudo-header sum) after headroom\n"
"zero bytes.");

static PyObject *
tcp_segment(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer src, dst, options, payload;
    unsigned sport, dport, flags, window;
    unsigned long seq, ack;
    long long tsval, tsecr;
    Py_ssize_t headroom;
    int partial;
    if (!PyArg_ParseTuple(args, "y*y*IIkkIILLy*y*np:tcp_segment", &src, &dst, &sport, &dport, &seq, &ack,
                          &flags, &window, &tsval, &tsecr, &options, &payload, &headroom, &partial))
        return NULL;
    PyObject *out = NULL;
    if ((src.len != 4 && src.len != 16) || dst.len != src.len) {
        PyErr_SetString(PyExc_ValueError, "tcp_segment: addresses are 4 (IPv4) or 16 (IPv6) bytes");
        goto done;
    }
    if (headroom < 0 || sport > 0xffff || dport > 0xffff || window > 0xffff || flags > 0xff) {
        PyErr_SetString(PyExc_ValueError, "tcp_segment: a field is out of range");
        goto done;
    }
    if (tcp_header_len(tsval, options.len) > TCP_LEN + 40) {
        PyErr_SetString(PyExc_ValueError, "TCP options longer than 40 bytes");
        goto done;
    }
    Py_ssize_t hlen = tcp_header_len(tsval, options.len);
    out = PyByteArray_FromStringAndSize(NULL, headroom + hlen + payload.len);
    if (out == NULL)
        goto done;
    unsigned char *b = (unsigned char *)PyByteArray_AS_STRING(out);
    memset(b, 0, (size_t)(headroom + hlen));
    put_segment(b + headroom, src.buf, dst.buf, src.len, sport, dport, seq, ack, flags, window, tsval, tsecr,
                options.buf, options.len, payload.buf, payload.len, partial);
done:
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    PyBuffer_Release(&options);
    PyBuffer_Release(&payload);
    return out;
}

PyDoc_STRVAR(ipv4_header_doc,
"ipv4_header(buf, offset, src, dst, proto, payload_len, ident, ttl, df, /) -> None\n\n"
"Write a 20-byte IPv4 header with its checksum into buf at offset.");

static PyObject *
ipv4_header(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer buf, src, dst;
    Py_ssize_t offset, payload_len;
    unsigned proto, ident, ttl;
    int df;
    if (!PyArg_ParseTuple(args, "w*ny*y*InIIp:ipv4_header", &buf, &offset, &src, &dst, &proto, &payload_len,
                          &ident, &ttl, &df))
        return NULL;
    PyObject *result = NULL;
    if (src.len != 4 || dst.len != 4) {
        PyErr_SetString(PyExc_ValueError, "ipv4_header: addresses are 4 bytes");
        goto done;
    }
    if (offset < 0 || offset + IP_LEN > buf.len || payload_len < 0 || payload_len + IP_LEN > 0xffff
            || proto > 0xff || ttl > 0xff) {
        PyErr_SetString(PyExc_ValueError, "ipv4_header: a field is out of range");
        goto done;
    }
    unsigned char *h = (unsigned char *)buf.buf + offset;
    h[0] = 0x45;
    h[1] = 0;
    put16(h + 2, (unsigned)(IP_LEN + payload_len));
    put16(h + 4, ident & 0xffffu);
    put16(h + 6, df ? 0x4000u : 0u);
    h[8] = (unsigned char)ttl;
    h[9] = (unsigned char)proto;
    h[10] = h[11] = 0;
    memcpy(h + 12, src.buf, 4);
    memcpy(h + 16, dst.buf, 4);
    put16(h + 10, ~fold(sum_be(0, h, IP_LEN)) & 0xffffu);
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&buf);
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    return result;
}

static PyMethodDef methods[] = {
    {"tcp4_parse", tcp4_parse, METH_VARARGS, tcp4_parse_doc},
    {"tcp6_parse", tcp6_parse, METH_VARARGS, tcp6_parse_doc},
    {"tcp_segment", tcp_segment, METH_VARARGS, tcp_segment_doc},
    {"ipv4_header", ipv4_header, METH_VARARGS, ipv4_header_doc},
    {"tcp_frame", tcp_frame, METH_VARARGS, tcp_frame_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastpath",
    "Frame parsing and building fast paths for TCP/IPv4 in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__fastpath(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Tcp4Fields = PyStructSequence_NewType(&tcp4_desc);
    if (Tcp4Fields == NULL || PyModule_AddObjectRef(m, "Tcp4Fields", (PyObject *)Tcp4Fields) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    TcpFrameFn exported = build_frame; /* the compiler checks the definition against _tcpframe.h */
    PyObject *capsule = PyCapsule_New((void *)exported, TCP_FRAME_CAPSULE, NULL);
    if (capsule == NULL || PyModule_AddObject(m, "tcp_frame_c", capsule) < 0) {
        Py_XDECREF(capsule);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
