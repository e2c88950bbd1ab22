/* The whole-frame TCP builder that _fastpath.c offers unik-lib-tcpip's other extensions
 * (tcp/_predict.c's transmit path) as a capsule: its type, the capsule's name, and the import.
 *
 * One home for what both sides must agree on: _fastpath.c defines build_frame with this type and
 * exports it under TCP_FRAME_CAPSULE; an extension that sends whole frames calls
 * import_tcp_frame() once, in its PyInit.  Both are compiled from this distribution's own
 * sources (setup.py lists this header in each extension's depends, so a change rebuilds both).
 *
 * build_frame: link (14 bytes, or NULL for zero headroom), the IPv4 or IPv6 header (alen 4 or
 * 16), the TCP header with NOP, NOP, Timestamps when tsval >= 0, options (padded), payload, and
 * the checksum (the pseudo-header's sum when partial).  The caller checked the ranges; a new
 * bytearray, or NULL with an exception.
 */
#ifndef UNIK_TCPIP_TCPFRAME_H
#define UNIK_TCPIP_TCPFRAME_H

#include <Python.h>

#define TCP_FRAME_MODULE "unik_tcpip._fastpath"
#define TCP_FRAME_CAPSULE TCP_FRAME_MODULE ".tcp_frame_c"

typedef PyObject *(*TcpFrameFn)(const unsigned char *link, const unsigned char *src, const unsigned char *dst,
                                Py_ssize_t alen, unsigned sport, unsigned dport, unsigned long seq,
                                unsigned long ack, unsigned flags, unsigned window, long long tsval,
                                long long tsecr, const unsigned char *options, Py_ssize_t opt_len,
                                const unsigned char *payload, Py_ssize_t payload_len, unsigned ident,
                                unsigned ttl, int partial);

/* The builder, from _fastpath's capsule; NULL with an exception.  PyCapsule_Import finds a
 * submodule's attribute only once the submodule is imported, hence the import first. */
static inline TcpFrameFn
import_tcp_frame(void)
{
    PyObject *module = PyImport_ImportModule(TCP_FRAME_MODULE);
    if (module == NULL)
        return NULL;
    Py_DECREF(module);
    return (TcpFrameFn)PyCapsule_Import(TCP_FRAME_CAPSULE, 0);
}

#endif
