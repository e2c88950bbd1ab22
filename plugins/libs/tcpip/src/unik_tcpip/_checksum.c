/* The Internet checksum (RFC 1071) with wide accumulation, and its incremental
 * update (RFC 1624).  Pure-Python twin: _checksum_py.py (same functions).
 *
 * The one's-complement sum is independent of byte order (RFC 1071 section 2(B)):
 * words are summed in native order, 32 bits at a time into a 64-bit accumulator
 * (carries collect in the upper half), then folded to 16 bits and byte-swapped to
 * network order at the end.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static uint64_t
add_bytes(uint64_t acc, const unsigned char *p, Py_ssize_t n)
{
    /* Eight bytes per step into two accumulators: each 32-bit add leaves room for
     * 2^32 carries, far more than any buffer Python can hold. */
    uint64_t acc2 = 0;
    while (n >= 16) {
        uint32_t w[4];
        memcpy(w, p, 16);
        acc += (uint64_t)w[0] + w[1];
        acc2 += (uint64_t)w[2] + w[3];
        p += 16;
        n -= 16;
    }
    acc += acc2;
    while (n >= 4) {
        uint32_t w;
        memcpy(&w, p, 4);
        acc += w;
        p += 4;
        n -= 4;
    }
    if (n >= 2) {
        uint16_t w;
        memcpy(&w, p, 2);
        acc += w;
        p += 2;
        n -= 2;
    }
    if (n) {
        /* RFC 1071 4.1: a trailing odd byte is padded with a zero byte. */
        unsigned char last[2] = {p[0], 0};
        uint16_t w;
        memcpy(&w, last, 2);
        acc += w;
    }
    return acc;
}

static uint16_t
fold(uint64_t acc)
{
    acc = (acc & 0xffffffffu) + (acc >> 32);
    acc = (acc & 0xffffffffu) + (acc >> 32);
    acc = (acc & 0xffffu) + (acc >> 16);
    acc = (acc & 0xffffu) + (acc >> 16);
    return (uint16_t)acc;
}

static uint16_t
to_native(unsigned long value)
{
    unsigned char b[2] = {(unsigned char)(value >> 8), (unsigned char)value};
    uint16_t w;
    memcpy(&w, b, 2);
    return w;
}

static unsigned long
to_int(uint16_t native)
{
    unsigned char b[2];
    memcpy(b, &native, 2);
    return ((unsigned long)b[0] << 8) | b[1];
}

PyDoc_STRVAR(sum16_doc,
"sum16(data, initial=0) -> int\n\n"
"The 16-bit one's-complement sum of data (a bytes-like object) added to initial,\n"
"not complemented (RFC 1071).");

static PyObject *
sum16(PyObject *self, PyObject *args)
{
    Py_buffer buf;
    unsigned long initial = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*|k:sum16", &buf, &initial))
        return NULL;
    uint64_t acc = to_native(initial & 0xffffu);
    acc += to_native((initial >> 16) & 0xffffu);
    Py_BEGIN_ALLOW_THREADS
    acc = add_bytes(acc, (const unsigned char *)buf.buf, buf.len);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buf);
    return PyLong_FromUnsignedLong(to_int(fold(acc)));
}

PyDoc_STRVAR(checksum_doc,
"checksum(data, initial=0) -> int\n\n"
"The Internet checksum of data: the complement of sum16(data, initial).");

static PyObject *
checksum(PyObject *self, PyObject *args)
{
    Py_buffer buf;
    unsigned long initial = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*|k:checksum", &buf, &initial))
        return NULL;
    uint64_t acc = to_native(initial & 0xffffu);
    acc += to_native((initial >> 16) & 0xffffu);
    acc = add_bytes(acc, (const unsigned char *)buf.buf, buf.len);
    PyBuffer_Release(&buf);
    return PyLong_FromUnsignedLong(to_int((uint16_t)~fold(acc)));
}

PyDoc_STRVAR(update16_doc,
"update16(checksum, old, new) -> int\n\n"
"The checksum after one 16-bit word of the data changed from old to new\n"
"(RFC 1624 equation 3: HC' = ~(~HC + ~m + m')).");

static PyObject *
update16(PyObject *self, PyObject *args)
{
    unsigned long hc, m, m2;
    (void)self;
    if (!PyArg_ParseTuple(args, "kkk:update16", &hc, &m, &m2))
        return NULL;
    uint64_t acc = (~hc & 0xffffu) + (~m & 0xffffu) + (m2 & 0xffffu);
    return PyLong_FromUnsignedLong((unsigned long)(uint16_t)~fold(acc));
}

static PyMethodDef methods[] = {
    {"sum16", sum16, METH_VARARGS, sum16_doc},
    {"checksum", checksum, METH_VARARGS, checksum_doc},
    {"update16", update16, METH_VARARGS, update16_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_checksum",
    "The Internet checksum (RFC 1071, RFC 1624) in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__checksum(void)
{
    return PyModule_Create(&module);
}
