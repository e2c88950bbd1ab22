/*
 * unik_fdio._block: whole-request positioned I/O for FileBlock.
 *
 * Each function does a complete request in one call: it loops over short reads and
 * writes, retries on EINTR (after giving Python a chance to run signal handlers) and
 * releases the GIL around every system call.  The pure-Python twin is _block_pure.py;
 * both raise the same exceptions:
 *
 *   OSError   a system call failed (errno and strerror set);
 *   EOFError  the file ended before the request was satisfied.
 *
 * Offsets are byte offsets; off_t is 64 bits on every platform unik builds for
 * (setuptools compiles with _FILE_OFFSET_BITS=64 through Python.h's pyconfig.h).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

/* <linux/falloc.h>: FALLOC_FL_KEEP_SIZE 0x01, FALLOC_FL_PUNCH_HOLE 0x02. */
#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE 0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE 0x02
#endif

/* <limits.h>: IOV_MAX, at most this many iovecs per preadv/pwritev (1024 on Linux). */
#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

/* Largest single read/write Linux performs (fs/read_write.c MAX_RW_COUNT, ~2 GiB);
 * we ask for at most this much per call so a huge request cannot overflow ssize_t. */
#define CHUNK_MAX ((size_t)0x7ffff000)

/* Python 3.11: the "L" format gives long long; off_t is at least 64 bits here. */
static int
check_offset(long long offset)
{
    if (offset < 0) {
        PyErr_SetString(PyExc_ValueError, "negative offset");
        return -1;
    }
    return 0;
}

/* After an EINTR: run signal handlers (they may raise); 0 means "retry". */
static int
interrupted(void)
{
    return PyErr_CheckSignals();
}

static PyObject *
short_read(size_t got, size_t wanted, long long offset)
{
    PyErr_Format(PyExc_EOFError, "end of file after %zu of %zu bytes at offset %lld", got, wanted,
                 offset);
    return NULL;
}

/* What a pread/pwrite/pwritev that returned r means: 1, retry (interrupted, the signal
 * handlers ran); 0, go on; -1, failed with an exception set.  A write of nothing for a
 * non-empty request is ENOSPC; a read of nothing is the end of the file, the caller's to say. */
static int
io_result(ssize_t r, int writing)
{
    if (r < 0) {
        if (errno == EINTR)
            return interrupted() < 0 ? -1 : 1;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    if (r == 0 && writing) {
        errno = ENOSPC;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

/* Read (writing == 0) or write exactly n bytes at offset, however many calls it takes;
 * returns 0, or -1 with an exception set (EOFError when a read finds the file shorter). */
static int
transfer_all(int fd, char *buf, size_t n, long long offset, int writing)
{
    size_t done = 0;
    while (done < n) {
        size_t want = n - done > CHUNK_MAX ? CHUNK_MAX : n - done;
        off_t at = (off_t)(offset + (long long)done);
        ssize_t r;
        Py_BEGIN_ALLOW_THREADS
        r = writing ? pwrite(fd, buf + done, want, at) : pread(fd, buf + done, want, at);
        Py_END_ALLOW_THREADS
        int rc = io_result(r, writing);
        if (rc < 0)
            return -1;
        if (rc > 0)
            continue;
        if (r == 0) {
            short_read(done, n, offset);
            return -1;
        }
        done += (size_t)r;
    }
    return 0;
}

PyDoc_STRVAR(pread_exact_doc,
"pread_exact(fd, n, offset, /) -> bytes\n\n"
"Read exactly n bytes at offset; EOFError if the file is shorter.");

static PyObject *
pread_exact(PyObject *Py_UNUSED(module), PyObject *args)
{
    int fd;
    Py_ssize_t n;
    long long offset;
    if (!PyArg_ParseTuple(args, "inL:pread_exact", &fd, &n, &offset))
        return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "negative length");
        return NULL;
    }
    if (check_offset(offset) < 0)
        return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, n);
    if (out == NULL)
        return NULL;
    /* The new bytes object is not shared yet, so filling it without the GIL is safe. */
    if (transfer_all(fd, PyBytes_AS_STRING(out), (size_t)n, offset, 0) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

/* pread_into and pwrite_all: (fd, buffer, offset) in ``format``, the whole buffer read or written. */
static PyObject *
whole_buffer(PyObject *args, const char *format, int writing)
{
    int fd;
    Py_buffer view;
    long long offset;
    if (!PyArg_ParseTuple(args, format, &fd, &view, &offset))
        return NULL;
    int rc = check_offset(offset);
    if (rc == 0)
        rc = transfer_all(fd, view.buf, (size_t)view.len, offset, writing);
    /* The exported buffer cannot be resized or freed until released: safe without GIL. */
    PyBuffer_Release(&view);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(pread_into_doc,
"pread_into(fd, buffer, offset, /) -> None\n\n"
"Fill the writable buffer with bytes read at offset; EOFError if the file is shorter.");

static PyObject *
pread_into(PyObject *Py_UNUSED(module), PyObject *args)
{
    return whole_buffer(args, "iw*L:pread_into", 0);
}

PyDoc_STRVAR(pwrite_all_doc,
"pwrite_all(fd, buffer, offset, /) -> None\n\n"
"Write the whole buffer at offset, however many pwrite calls it takes.");

static PyObject *
pwrite_all(PyObject *Py_UNUSED(module), PyObject *args)
{
    return whole_buffer(args, "iy*L:pwrite_all", 1);
}

PyDoc_STRVAR(pwritev_all_doc,
"pwritev_all(fd, buffers, offset, /) -> None\n\n"
"Write a sequence of buffers back to back from offset with pwritev, resuming after\n"
"short writes.");

static PyObject *
pwritev_all(PyObject *Py_UNUSED(module), PyObject *args)
{
    int fd;
    PyObject *seq_in;
    long long offset;
    if (!PyArg_ParseTuple(args, "iOL:pwritev_all", &fd, &seq_in, &offset))
        return NULL;
    if (check_offset(offset) < 0)
        return NULL;
    PyObject *seq = PySequence_Fast(seq_in, "buffers must be a sequence of bytes-like objects");
    if (seq == NULL)
        return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    Py_buffer *views = PyMem_Calloc((size_t)(count ? count : 1), sizeof(Py_buffer));
    struct iovec *iov = PyMem_Calloc((size_t)(count ? count : 1), sizeof(struct iovec));
    Py_ssize_t held = 0;
    PyObject *result = NULL;
    if (views == NULL || iov == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (; held < count; held++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, held);
        if (PyObject_GetBuffer(item, &views[held], PyBUF_SIMPLE) < 0)
            goto done;
        iov[held].iov_base = views[held].buf;
        iov[held].iov_len = (size_t)views[held].len;
    }
    Py_ssize_t first = 0; /* first iovec not completely written */
    long long pos = offset;
    while (first < count) {
        if (iov[first].iov_len == 0) {
            first++;
            continue;
        }
        int batch = (int)(count - first > IOV_MAX ? IOV_MAX : count - first);
        ssize_t r;
        Py_BEGIN_ALLOW_THREADS
        r = pwritev(fd, &iov[first], batch, (off_t)pos);
        Py_END_ALLOW_THREADS
        int rc = io_result(r, 1);
        if (rc < 0)
            goto done;
        if (rc > 0)
            continue;
        pos += r;
        size_t left = (size_t)r;
        while (left > 0 && first < count) { /* skip what was written, trim the partial one */
            if (left >= iov[first].iov_len) {
                left -= iov[first].iov_len;
                iov[first].iov_len = 0;
                first++;
            } else {
                iov[first].iov_base = (char *)iov[first].iov_base + left;
                iov[first].iov_len -= left;
                left = 0;
            }
        }
    }
    result = Py_NewRef(Py_None);
done:
    if (views != NULL)
        for (Py_ssize_t i = 0; i < held; i++)
            PyBuffer_Release(&views[i]);
    PyMem_Free(views);
    PyMem_Free(iov);
    Py_DECREF(seq);
    return result;
}

PyDoc_STRVAR(punch_hole_doc,
"punch_hole(fd, offset, length, /) -> None\n\n"
"Deallocate a byte range, keeping the file size (fallocate(2) with\n"
"FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE); reads of the range then return zeros.");

static PyObject *
punch_hole(PyObject *Py_UNUSED(module), PyObject *args)
{
    int fd;
    long long offset, length;
    if (!PyArg_ParseTuple(args, "iLL:punch_hole", &fd, &offset, &length))
        return NULL;
    if (check_offset(offset) < 0)
        return NULL;
    if (length <= 0) {
        PyErr_SetString(PyExc_ValueError, "length must be positive");
        return NULL;
    }
    int r;
    for (;;) {
        Py_BEGIN_ALLOW_THREADS
        r = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)length);
        Py_END_ALLOW_THREADS
        if (r == 0)
            Py_RETURN_NONE;
        if (errno != EINTR)
            return PyErr_SetFromErrno(PyExc_OSError);
        if (interrupted() < 0)
            return NULL;
    }
}

static PyMethodDef block_methods[] = {
    {"pread_exact", pread_exact, METH_VARARGS, pread_exact_doc},
    {"pread_into", pread_into, METH_VARARGS, pread_into_doc},
    {"pwrite_all", pwrite_all, METH_VARARGS, pwrite_all_doc},
    {"pwritev_all", pwritev_all, METH_VARARGS, pwritev_all_doc},
    {"punch_hole", punch_hole, METH_VARARGS, punch_hole_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef block_module = {
    PyModuleDef_HEAD_INIT,
    "unik_fdio._block",
    "Whole-request pread/pwrite loops for FileBlock (C; twin: unik_fdio._block_pure).",
    -1,
    block_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__block(void)
{
    return PyModule_Create(&block_module);
}
