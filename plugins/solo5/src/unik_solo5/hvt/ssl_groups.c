/* The hvt unikernel's _ssl: CPython's own Modules/_ssl.c (from Debian's source package,
 * unik_solo5.hvt_stdlib), compiled in this file so that one more built-in module can use
 * its context type: _unik_ssl_groups.set_groups(context, groups) calls OpenSSL's
 * SSL_CTX_set1_groups_list on an ssl.SSLContext.  The ssl module sets one ECDH curve at
 * most; unik-lib-tls sets its key-exchange groups (X25519, P-256, P-384) through ctypes
 * where ctypes exists, and through this in hvt, which has no ctypes. */
#include "_ssl.c"

PyDoc_STRVAR(unik_set_groups_doc,
             "set_groups(context, groups) -> bool\n\n"
             "SSL_CTX_set1_groups_list on an ssl.SSLContext: True if OpenSSL took the list.");

static PyObject *unik_set_groups(PyObject *self, PyObject *args)
{
    PyObject *context;
    const char *groups;
    (void)self;
    if (!PyArg_ParseTuple(args, "Os:set_groups", &context, &groups))
        return NULL;
    PyObject *ssl = PyImport_ImportModule("_ssl");
    if (ssl == NULL)
        return NULL;
    int is_context = PyObject_TypeCheck(context, get_ssl_state(ssl)->PySSLContext_Type);
    Py_DECREF(ssl);
    if (!is_context) {
        PyErr_Format(PyExc_TypeError, "set_groups() takes an ssl.SSLContext, not %.200s", Py_TYPE(context)->tp_name);
        return NULL;
    }
    return PyBool_FromLong(SSL_CTX_set1_groups_list(((PySSLContext *)context)->ctx, groups) == 1);
}

static PyMethodDef unik_ssl_groups_methods[] = {
    {"set_groups", unik_set_groups, METH_VARARGS, unik_set_groups_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef unik_ssl_groups_module = {
    PyModuleDef_HEAD_INIT, "_unik_ssl_groups", "OpenSSL's key-exchange groups on an ssl.SSLContext (hvt).", -1,
    unik_ssl_groups_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__unik_ssl_groups(void);

PyMODINIT_FUNC PyInit__unik_ssl_groups(void)
{
    return PyModule_Create(&unik_ssl_groups_module);
}
