/*
 * unik_entropy._aesctr: the AES-256-CTR keystream of Fortuna's generator, through
 * OpenSSL's libcrypto (the EVP interface, so AES-NI/VAES are used where the CPU has
 * them).  CPython's own _hashlib and _ssl link the same libcrypto.so.3, so a VM image
 * that has TLS pays nothing more for it, and one that has not gains ~1.5 MB instead of
 * the ~5 MB of the `cryptography` package.
 *
 * Pure-Python twin: unik_entropy._aesctr_py (the same functions over `cryptography`).
 *
 *   keystream_into(key, iv, buf, n) -> new_key
 *       Write the first n bytes of the AES-256-CTR keystream under `key` (32 bytes)
 *       from the counter block `iv` (16 bytes, big-endian 128-bit counter) into the
 *       writable buffer `buf`, and return the next 32 keystream bytes (the generator's
 *       next key).  n is a multiple of 16.
 *   keystream(key, iv, n) -> (bytes, new_key)
 *       The same, into a new bytes object.
 *
 * The stack copies of key material are wiped (OPENSSL_cleanse); the EVP context is
 * freed, which wipes its key schedule.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>

#define KEY_SIZE 32
#define BLOCK 16
#define MAX_N (1 << 20)
/* Above this many bytes the GIL is released while AES runs. */
#define NOGIL_BYTES (64 * 1024)

static EVP_CIPHER *aes256ctr; /* fetched once */

static PyObject *
raise_openssl(const char *what)
{
    PyErr_Format(PyExc_RuntimeError, "libcrypto: %s failed", what);
    return NULL;
}

/* out[0:n] = keystream, newkey[0:32] = the following keystream; 0 on success. */
static int
run_ctr(const unsigned char *key, const unsigned char *iv, unsigned char *out, Py_ssize_t n,
        unsigned char *newkey)
{
    int ok = 0, len = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        return -1;
    if (EVP_EncryptInit_ex2(ctx, aes256ctr, key, iv, NULL) != 1)
        goto done;
    memset(out, 0, (size_t)n);
    if (n > 0 && (EVP_EncryptUpdate(ctx, out, &len, out, (int)n) != 1 || len != (int)n))
        goto done;
    memset(newkey, 0, KEY_SIZE);
    if (EVP_EncryptUpdate(ctx, newkey, &len, newkey, KEY_SIZE) != 1 || len != KEY_SIZE)
        goto done;
    ok = 1;
done:
    EVP_CIPHER_CTX_free(ctx);
    return ok ? 0 : -1;
}

static int
check_args(Py_buffer *key, Py_buffer *iv, Py_ssize_t n)
{
    if (key->len != KEY_SIZE) {
        PyErr_SetString(PyExc_ValueError, "key must be 32 bytes");
        return -1;
    }
    if (iv->len != BLOCK) {
        PyErr_SetString(PyExc_ValueError, "iv must be 16 bytes");
        return -1;
    }
    if (n < 0 || n > MAX_N || n % BLOCK) {
        PyErr_SetString(PyExc_ValueError, "n must be a multiple of 16 in [0, 1 MiB]");
        return -1;
    }
    return 0;
}

static PyObject *
keystream_into(PyObject *self, PyObject *args)
{
    Py_buffer key, iv, buf;
    Py_ssize_t n;
    unsigned char newkey[KEY_SIZE], k[KEY_SIZE], v[BLOCK];
    PyObject *result = NULL;
    int rc;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*w*n:keystream_into", &key, &iv, &buf, &n))
        return NULL;
    if (check_args(&key, &iv, n) < 0)
        goto out;
    if (buf.len < n) {
        PyErr_SetString(PyExc_ValueError, "buffer shorter than n");
        goto out;
    }
    memcpy(k, key.buf, KEY_SIZE);
    memcpy(v, iv.buf, BLOCK);
    if (n >= NOGIL_BYTES) {
        Py_BEGIN_ALLOW_THREADS
        rc = run_ctr(k, v, buf.buf, n, newkey);
        Py_END_ALLOW_THREADS
    } else {
        rc = run_ctr(k, v, buf.buf, n, newkey);
    }
    OPENSSL_cleanse(k, sizeof k);
    if (rc < 0)
        raise_openssl("AES-256-CTR");
    else
        result = PyBytes_FromStringAndSize((const char *)newkey, KEY_SIZE);
    OPENSSL_cleanse(newkey, sizeof newkey);
out:
    PyBuffer_Release(&key);
    PyBuffer_Release(&iv);
    PyBuffer_Release(&buf);
    return result;
}

static PyObject *
keystream(PyObject *self, PyObject *args)
{
    Py_buffer key, iv;
    Py_ssize_t n;
    unsigned char newkey[KEY_SIZE], k[KEY_SIZE], v[BLOCK];
    PyObject *out = NULL, *result = NULL;
    int rc;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*n:keystream", &key, &iv, &n))
        return NULL;
    if (check_args(&key, &iv, n) < 0)
        goto done;
    out = PyBytes_FromStringAndSize(NULL, n);
    if (out == NULL)
        goto done;
    memcpy(k, key.buf, KEY_SIZE);
    memcpy(v, iv.buf, BLOCK);
    unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(out);
    if (n >= NOGIL_BYTES) {
        Py_BEGIN_ALLOW_THREADS
        rc = run_ctr(k, v, dst, n, newkey);
        Py_END_ALLOW_THREADS
    } else {
        rc = run_ctr(k, v, dst, n, newkey);
    }
    OPENSSL_cleanse(k, sizeof k);
    if (rc < 0) {
        raise_openssl("AES-256-CTR");
    } else {
        PyObject *nk = PyBytes_FromStringAndSize((const char *)newkey, KEY_SIZE);
        if (nk != NULL) {
            result = PyTuple_Pack(2, out, nk);
            Py_DECREF(nk);
        }
    }
    OPENSSL_cleanse(newkey, sizeof newkey);
done:
    Py_XDECREF(out);
    PyBuffer_Release(&key);
    PyBuffer_Release(&iv);
    return result;
}

static PyMethodDef methods[] = {
    {"keystream_into", keystream_into, METH_VARARGS,
     "keystream_into(key, iv, buf, n) -> new_key: n bytes of AES-256-CTR keystream into buf."},
    {"keystream", keystream, METH_VARARGS,
     "keystream(key, iv, n) -> (bytes, new_key): n bytes of AES-256-CTR keystream."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_aesctr",
    "AES-256-CTR keystream for Fortuna's generator, through OpenSSL's libcrypto (EVP).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__aesctr(void)
{
    if (aes256ctr == NULL) {
        aes256ctr = EVP_CIPHER_fetch(NULL, "AES-256-CTR", NULL);
        if (aes256ctr == NULL) {
            PyErr_SetString(PyExc_ImportError, "libcrypto has no AES-256-CTR");
            return NULL;
        }
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddStringConstant(m, "BACKEND", OpenSSL_version(OPENSSL_VERSION)) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
