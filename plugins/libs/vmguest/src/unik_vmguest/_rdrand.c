/*
 * unik_vmguest._rdrand: the CPU's RDRAND instruction as an entropy source
 * (pure twin: _rdrand_pure.py, which reports it unavailable).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>

static int has_rdrand(void)
{
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    return (c >> 30) & 1;
}

/* One 64-bit value; RDRAND may transiently fail, so retry a bounded number of times. */
static int rdrand64(uint64_t *out)
{
    for (int i = 0; i < 10; i++) {
        unsigned char ok;
        uint64_t v;
        __asm__ volatile("rdrand %0; setc %1" : "=r"(v), "=qm"(ok) : : "cc");
        if (ok) {
            *out = v;
            return 1;
        }
    }
    return 0;
}
#else
static int has_rdrand(void) { return 0; }
static int rdrand64(uint64_t *out) { (void)out; return 0; }
#endif

static PyObject *available(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(has_rdrand());
}

/* read(n) -> bytes: n bytes from RDRAND; OSError if the CPU has none or it keeps failing. */
static PyObject *read_bytes(PyObject *Py_UNUSED(module), PyObject *arg)
{
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "n must not be negative");
        return NULL;
    }
    if (!has_rdrand()) {
        PyErr_SetString(PyExc_OSError, "this CPU has no RDRAND");
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, n);
    if (out == NULL)
        return NULL;
    char *p = PyBytes_AS_STRING(out);
    for (Py_ssize_t done = 0; done < n; done += 8) {
        uint64_t v;
        if (!rdrand64(&v)) {
            Py_DECREF(out);
            PyErr_SetString(PyExc_OSError, "RDRAND failed ten times in a row");
            return NULL;
        }
        memcpy(p + done, &v, (size_t)(n - done < 8 ? n - done : 8));
    }
    return out;
}

static PyMethodDef methods[] = {
    {"available", available, METH_NOARGS, "whether the CPU has RDRAND"},
    {"read", read_bytes, METH_O, "read(n) -> n bytes from RDRAND"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "unik_vmguest._rdrand", "RDRAND (C).", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__rdrand(void)
{
    return PyModule_Create(&module_def);
}
