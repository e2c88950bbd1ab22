/* unik_unix._block: pread/pwrite loops for FileBlock (work in progress). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static struct PyModuleDef block_module = {
    PyModuleDef_HEAD_INIT, "unik_unix._block", "pread/pwrite loops for FileBlock.", -1, NULL,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__block(void) { return PyModule_Create(&block_module); }
