/* C accelerator of unik-lib-fat: FAT scanning and long-name encoding.
 *
 * Every function has a pure-Python twin in _accel_py.py with the same arguments and
 * results; the tests run both.  `fat` is the whole FAT (a bytearray), `fat_type` 12,
 * 16 or 32, clusters are numbered 2..max_cluster.  Callers guarantee (the BPB checks
 * in formats.py) that the FAT buffer has an entry for every cluster up to max_cluster;
 * the functions check it again and raise ValueError rather than read out of bounds.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum { ST_OK = 0, ST_LOOP = 1, ST_OUT_OF_RANGE = 2, ST_FREE = 3, ST_BAD = 4 };

static uint32_t eoc_of(int t) { return t == 12 ? 0xFF8u : t == 16 ? 0xFFF8u : 0x0FFFFFF8u; }
static uint32_t bad_of(int t) { return t == 12 ? 0xFF7u : t == 16 ? 0xFFF7u : 0x0FFFFFF7u; }
static uint32_t mark_of(int t) { return t == 12 ? 0xFFFu : t == 16 ? 0xFFFFu : 0x0FFFFFFFu; }

static inline uint32_t get(const uint8_t *f, int t, uint32_t n)
{
    if (t == 16)
        return (uint32_t)f[2 * n] | (uint32_t)f[2 * n + 1] << 8;
    if (t == 32) {
        const uint8_t *p = f + 4 * (size_t)n;
        return ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24) & 0x0FFFFFFFu;
    }
    size_t off = n + (n >> 1);
    uint32_t v = (uint32_t)f[off] | (uint32_t)f[off + 1] << 8;
    return (n & 1) ? v >> 4 : v & 0xFFF;
}

static inline void put(uint8_t *f, int t, uint32_t n, uint32_t v)
{
    if (t == 16) {
        f[2 * n] = v & 0xFF;
        f[2 * n + 1] = (v >> 8) & 0xFF;
    } else if (t == 32) {
        uint8_t *p = f + 4 * (size_t)n;
        p[0] = v & 0xFF;
        p[1] = (v >> 8) & 0xFF;
        p[2] = (v >> 16) & 0xFF;
        p[3] = (uint8_t)((p[3] & 0xF0) | ((v >> 24) & 0x0F)); /* keep the reserved nibble */
    } else {
        size_t off = n + (n >> 1);
        if (n & 1) {
            f[off] = (uint8_t)((f[off] & 0x0F) | ((v << 4) & 0xF0));
            f[off + 1] = (v >> 4) & 0xFF;
        } else {
            f[off] = v & 0xFF;
            f[off + 1] = (uint8_t)((f[off + 1] & 0xF0) | ((v >> 8) & 0x0F));
        }
    }
}

/* Whether a FAT of `len` bytes has an entry for every cluster up to `max_cluster`. */
static int check_fat(Py_ssize_t len, int t, unsigned long max_cluster)
{
    if (t != 12 && t != 16 && t != 32) {
        PyErr_SetString(PyExc_ValueError, "fat_type must be 12, 16 or 32");
        return -1;
    }
    unsigned long long need = t == 12 ? ((unsigned long long)max_cluster * 3 + 3) / 2 + 1
                                      : ((unsigned long long)max_cluster + 1) * (unsigned)(t / 8);
    if ((unsigned long long)len < need) {
        PyErr_SetString(PyExc_ValueError, "FAT buffer too small for max_cluster");
        return -1;
    }
    return 0;
}

static uint32_t find_free_raw(const uint8_t *f, int t, uint32_t start, uint32_t end)
{
    uint32_t n = start;
    if (t == 32) {
        for (; n < end; n++) {
            const uint8_t *p = f + 4 * (size_t)n;
            if (p[0] == 0 && p[1] == 0 && p[2] == 0 && (p[3] & 0x0F) == 0)
                return n;
        }
        return 0;
    }
    if (t == 16) {
        for (; n < end; n++)
            if (f[2 * n] == 0 && f[2 * n + 1] == 0)
                return n;
        return 0;
    }
    for (; n < end; n++)
        if (get(f, t, n) == 0)
            return n;
    return 0;
}

static PyObject *py_find_free(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer buf;
    int t;
    unsigned long start, end;
    if (!PyArg_ParseTuple(args, "y*ikk", &buf, &t, &start, &end))
        return NULL;
    if (end > 0 && check_fat(buf.len, t, end - 1) < 0) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    uint32_t r = start < end ? find_free_raw(buf.buf, t, (uint32_t)start, (uint32_t)end) : 0;
    PyBuffer_Release(&buf);
    return PyLong_FromUnsignedLong(r);
}

static PyObject *py_count_free(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer buf;
    int t;
    unsigned long maxc;
    if (!PyArg_ParseTuple(args, "y*ik", &buf, &t, &maxc))
        return NULL;
    if (check_fat(buf.len, t, maxc) < 0) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    unsigned long count = 0;
    const uint8_t *f = buf.buf;
    for (uint32_t n = 2; n <= maxc; n++)
        if (get(f, t, n) == 0)
            count++;
    PyBuffer_Release(&buf);
    return PyLong_FromUnsignedLong(count);
}

static PyObject *py_walk_chain(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer buf;
    int t;
    unsigned long first, maxc;
    if (!PyArg_ParseTuple(args, "y*ikk", &buf, &t, &first, &maxc))
        return NULL;
    if (check_fat(buf.len, t, maxc) < 0) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (!out) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    const uint8_t *f = buf.buf;
    uint32_t eoc = eoc_of(t), bad = bad_of(t);
    unsigned long limit = maxc >= 1 ? maxc - 1 : 0, len = 0;
    unsigned long n = first;
    int status = ST_OK;
    for (;;) {
        if (n < 2 || n > maxc) { status = ST_OUT_OF_RANGE; break; }
        if (len >= limit) { status = ST_LOOP; break; }
        PyObject *v = PyLong_FromUnsignedLong(n);
        if (!v || PyList_Append(out, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(out);
            PyBuffer_Release(&buf);
            return NULL;
        }
        Py_DECREF(v);
        len++;
        uint32_t nxt = get(f, t, (uint32_t)n);
        if (nxt >= eoc) break;
        if (nxt == 0) { status = ST_FREE; break; }
        if (nxt == bad) { status = ST_BAD; break; }
        n = nxt;
    }
    PyBuffer_Release(&buf);
    return Py_BuildValue("(Ni)", out, status);
}

static PyObject *py_alloc(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer buf;
    int t;
    unsigned long hint, count, maxc;
    if (!PyArg_ParseTuple(args, "w*ikkk", &buf, &t, &hint, &count, &maxc))
        return NULL;
    if (check_fat(buf.len, t, maxc) < 0) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    if (hint < 2 || hint > maxc)
        hint = 2;
    uint8_t *f = buf.buf;
    uint32_t *found = count ? PyMem_Malloc(count * sizeof(uint32_t)) : NULL;
    if (count && !found) {
        PyBuffer_Release(&buf);
        return PyErr_NoMemory();
    }
    unsigned long got = 0;
    unsigned long ranges[2][2] = {{hint, maxc + 1}, {2, hint}};
    for (int r = 0; r < 2 && got < count; r++) {
        uint32_t n = (uint32_t)ranges[r][0], hi = (uint32_t)ranges[r][1];
        while (got < count && n < hi) {
            n = find_free_raw(f, t, n, hi);
            if (n == 0)
                break;
            found[got++] = n++;
        }
    }
    PyObject *out = PyList_New(0);
    if (out && got == count && count) {
        for (unsigned long i = 0; i + 1 < count; i++)
            put(f, t, found[i], found[i + 1]);
        put(f, t, found[count - 1], mark_of(t));
        for (unsigned long i = 0; i < count; i++) {
            PyObject *v = PyLong_FromUnsignedLong(found[i]);
            if (!v || PyList_Append(out, v) < 0) {
                Py_XDECREF(v);
                Py_CLEAR(out);
                break;
            }
            Py_DECREF(v);
        }
    }
    PyMem_Free(found);
    PyBuffer_Release(&buf);
    return out;
}

static PyObject *py_lfn_entries(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer name;
    int checksum;
    if (!PyArg_ParseTuple(args, "y*i", &name, &checksum))
        return NULL;
    Py_ssize_t units = name.len / 2;
    Py_ssize_t count = (units + 12) / 13;
    if (units > 255 * 2) {
        PyBuffer_Release(&name);
        PyErr_SetString(PyExc_ValueError, "name too long");
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, count * 32);
    if (!out) {
        PyBuffer_Release(&name);
        return NULL;
    }
    uint8_t *o = (uint8_t *)PyBytes_AS_STRING(out);
    const uint8_t *src = name.buf;
    static const int offs[13] = {1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30};
    for (Py_ssize_t seq = count; seq >= 1; seq--) {
        uint8_t *e = o + (count - seq) * 32;
        memset(e, 0, 32);
        e[0] = (uint8_t)(seq | (seq == count ? 0x40 : 0));
        e[11] = 0x0F;
        e[13] = (uint8_t)checksum;
        for (int i = 0; i < 13; i++) {
            Py_ssize_t u = (seq - 1) * 13 + i;
            uint8_t lo, hi;
            if (u < units) { lo = src[2 * u]; hi = src[2 * u + 1]; }
            else if (u == units) { lo = 0; hi = 0; }          /* terminator */
            else { lo = 0xFF; hi = 0xFF; }                    /* padding */
            e[offs[i]] = lo;
            e[offs[i] + 1] = hi;
        }
    }
    PyBuffer_Release(&name);
    return out;
}

static PyObject *py_contiguous(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *list;
    Py_ssize_t start, end;
    if (!PyArg_ParseTuple(args, "O!nn", &PyList_Type, &list, &start, &end))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(list);
    if (start < 0 || start >= n || end < start) {
        PyErr_SetString(PyExc_IndexError, "contiguous: start out of range");
        return NULL;
    }
    if (end >= n)
        end = n - 1;
    long prev = PyLong_AsLong(PyList_GET_ITEM(list, start));
    if (prev == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t i = start;
    while (i < end) {
        long next = PyLong_AsLong(PyList_GET_ITEM(list, i + 1));
        if (next == -1 && PyErr_Occurred())
            return NULL;
        if (next != prev + 1)
            break;
        prev = next;
        i++;
    }
    return PyLong_FromSsize_t(i);
}

static PyMethodDef methods[] = {
    {"contiguous", py_contiguous, METH_VARARGS, "Last index j <= end with clusters[start..j] consecutive."},
    {"find_free", py_find_free, METH_VARARGS, "First free cluster in [start, end), or 0."},
    {"count_free", py_count_free, METH_VARARGS, "Free clusters among 2..max_cluster."},
    {"walk_chain", py_walk_chain, METH_VARARGS, "(clusters, status) of the chain from first."},
    {"alloc", py_alloc, METH_VARARGS, "Take and link count free clusters from hint; [] if too few."},
    {"lfn_entries", py_lfn_entries, METH_VARARGS, "Long-name entries for a UTF-16-LE name."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_accel", "C accelerator of unik-lib-fat.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__accel(void) { return PyModule_Create(&module); }
