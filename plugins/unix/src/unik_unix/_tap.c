/* unik_unix._tap: TAP frame I/O for TapNetwork (work in progress). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static struct PyModuleDef tap_module = {
    PyModuleDef_HEAD_INIT, "unik_unix._tap", "TAP frame I/O for TapNetwork.", -1, NULL,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__tap(void) { return PyModule_Create(&tap_module); }
