/* Raw entropy sources of unik-lib-entropy, and the SP 800-90B health tests.
 *
 * cpu_features()        -> (has_rdrand, has_rdseed), from CPUID
 * rdrand(n), rdseed(n)  -> n bytes from the CPU's DRNG, with bounded retries
 * jitter(n)             -> n raw samples: the low byte of timer deltas around a memory walk
 * health_scan(...)      -> the repetition-count and adaptive-proportion tests over bytes
 *
 * The pure-Python twin, _sources_py.py, has the same functions (without RDRAND/RDSEED,
 * which Python cannot reach, and with perf_counter_ns for the timer).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#define UNIK_X86 1
#include <cpuid.h>
#endif

/* Intel's DRNG guide: 10 retries make an RDRAND failure a sign of a broken CPU.
 * RDSEED may legitimately run dry under load, so it gets more tries with a pause. */
#define RDRAND_RETRIES 10
#define RDSEED_RETRIES 128

static int has_rdrand(void) {
#ifdef UNIK_X86
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c >> 30) & 1;
#else
    return 0;
#endif
}

static int has_rdseed(void) {
#ifdef UNIK_X86
    unsigned int a, b, c, d;
    if (__get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    (void)a; (void)c; (void)d;
    return (b >> 18) & 1;
#else
    return 0;
#endif
}

#ifdef UNIK_X86
/* One 32-bit word (64-bit words would not exist on i386); 1 on success.  All-ones and
 * all-zeros words are refused: some AMD parts returned ~0 with CF set after resume. */
static int rdrand32(uint32_t *out) {
    for (int i = 0; i < RDRAND_RETRIES; i++) {
        uint32_t v; unsigned char ok;
        __asm__ volatile("rdrand %0; setc %1" : "=r"(v), "=qm"(ok) : : "cc");
        if (ok && v != 0xFFFFFFFFu && v != 0) { *out = v; return 1; }
    }
    return 0;
}

static int rdseed32(uint32_t *out) {
    for (int i = 0; i < RDSEED_RETRIES; i++) {
        uint32_t v; unsigned char ok;
        __asm__ volatile("rdseed %0; setc %1" : "=r"(v), "=qm"(ok) : : "cc");
        if (ok && v != 0xFFFFFFFFu && v != 0) { *out = v; return 1; }
        __asm__ volatile("pause");
    }
    return 0;
}
#endif

typedef int (*word_fn)(uint32_t *);

#ifndef UNIK_X86
static int rdrand32(uint32_t *out) { (void)out; return 0; }
static int rdseed32(uint32_t *out) { (void)out; return 0; }
#endif

static PyObject *drng_read(PyObject *args, int available, const char *name, int retries, word_fn fn) {
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "n", &n)) return NULL;
    if (n < 0) { PyErr_SetString(PyExc_ValueError, "n must be >= 0"); return NULL; }
    if (!available) {
        PyErr_Format(PyExc_OSError, "%s: not supported by this CPU", name);
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, n);
    if (!out) return NULL;
    unsigned char *p = (unsigned char *)PyBytes_AS_STRING(out);
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i += 4) {
        uint32_t w;
        if (!fn(&w)) { failed = 1; break; }
        Py_ssize_t k = n - i < 4 ? n - i : 4;
        memcpy(p + i, &w, (size_t)k);
    }
    Py_END_ALLOW_THREADS
    if (failed) {
        Py_DECREF(out);
        PyErr_Format(PyExc_OSError, "%s: no output after %d retries", name, retries);
        return NULL;
    }
    return out;
}

static PyObject *py_cpu_features(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    return Py_BuildValue("(OO)", has_rdrand() ? Py_True : Py_False, has_rdseed() ? Py_True : Py_False);
}

static PyObject *py_rdrand(PyObject *self, PyObject *args) {
    (void)self;
    return drng_read(args, has_rdrand(), "rdrand", RDRAND_RETRIES, rdrand32);
}

static PyObject *py_rdseed(PyObject *self, PyObject *args) {
    (void)self;
    return drng_read(args, has_rdseed(), "rdseed", RDSEED_RETRIES, rdseed32);
}

static inline uint64_t ticks(void) {
#ifdef UNIK_X86
    unsigned int lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#endif
}

#define WALK_SIZE (1024 * 1024)

/* n samples; each is the low byte of the time taken by a short memory walk whose
 * length and addresses depend on the previous delta, so cache and pipeline state
 * carry over from sample to sample (the CPU Jitter RNG's idea, much simplified). */
static PyObject *py_jitter(PyObject *self, PyObject *args) {
    (void)self;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "n", &n)) return NULL;
    if (n < 0) { PyErr_SetString(PyExc_ValueError, "n must be >= 0"); return NULL; }
    PyObject *out = PyBytes_FromStringAndSize(NULL, n);
    if (!out) return NULL;
    unsigned char *p = (unsigned char *)PyBytes_AS_STRING(out);
    unsigned char *mem = PyMem_RawCalloc(WALK_SIZE, 1);
    if (!mem) { Py_DECREF(out); return PyErr_NoMemory(); }
    Py_BEGIN_ALLOW_THREADS
    uint64_t prev = ticks(), delta = 0;
    size_t pos = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned steps = 64 + (unsigned)(delta & 63);
        for (unsigned s = 0; s < steps; s++) {
            pos = (pos * 33 + 4093 + (size_t)mem[pos] * 64 + (size_t)(delta & 255)) % WALK_SIZE;
            mem[pos] = (unsigned char)(mem[pos] + 1 + (unsigned char)delta);
        }
        uint64_t now = ticks();
        delta = now - prev;
        prev = now;
        p[i] = (unsigned char)delta;
    }
    Py_END_ALLOW_THREADS
    PyMem_RawFree(mem);
    return out;
}

/* SP 800-90B 4.4.1 (repetition count) and 4.4.2 (adaptive proportion) over the bytes
 * of data, continuing from state = (last, run, apt_ref, apt_count, apt_pos).
 * Returns (code, index, last, run, apt_ref, apt_count, apt_pos): code 0 passed,
 * 1 repetition-count failure, 2 adaptive-proportion failure at data[index]. */
static PyObject *py_health_scan(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer buf;
    int last, run, ref, count, apos, rct_cutoff, apt_cutoff, window;
    if (!PyArg_ParseTuple(args, "y*(iiiii)iii", &buf, &last, &run, &ref, &count, &apos,
                          &rct_cutoff, &apt_cutoff, &window))
        return NULL;
    const unsigned char *d = buf.buf;
    int code = 0;
    Py_ssize_t i;
    for (i = 0; i < buf.len; i++) {
        int x = d[i];
        /* 4.4.1: a run of C identical samples fails. */
        if (x == last) {
            if (++run >= rct_cutoff) { code = 1; break; }
        } else {
            last = x;
            run = 1;
        }
        /* 4.4.2: the window's first sample occurring C times in the window fails. */
        if (apos == 0) {
            ref = x;
            count = 1;
        } else if (x == ref) {
            if (++count >= apt_cutoff) { code = 2; break; }
        }
        if (++apos >= window) apos = 0;
    }
    PyBuffer_Release(&buf);
    return Py_BuildValue("(iniiiii)", code, code ? i : (Py_ssize_t)-1, last, run, ref, count, apos);
}

static PyMethodDef methods[] = {
    {"cpu_features", py_cpu_features, METH_NOARGS, "(has_rdrand, has_rdseed) from CPUID."},
    {"rdrand", py_rdrand, METH_VARARGS, "n bytes from RDRAND; OSError if unsupported or failing."},
    {"rdseed", py_rdseed, METH_VARARGS, "n bytes from RDSEED; OSError if unsupported or exhausted."},
    {"jitter", py_jitter, METH_VARARGS, "n raw timer-jitter samples (low byte of each delta)."},
    {"health_scan", py_health_scan, METH_VARARGS, "SP 800-90B RCT and APT over bytes, with state."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_sources", "Raw entropy sources and health tests (C).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__sources(void) { return PyModule_Create(&module); }
