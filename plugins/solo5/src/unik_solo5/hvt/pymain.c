/* The hvt unikernel's main: CPython (Debian's static libpython3.11.a) over the in-memory
 * filesystem.  The standard library is at /lib/python3.11, the application (the
 * generated main.py and its packages) at /app; the interpreter runs /app/main.py with
 * the guest's arguments.  No site, no environment, no bytecode writing, UTF-8 mode.
 *
 * Built-in modules are those Debian links into libpython3.11.a (posix, _io, _socket,
 * select, math, _struct, ...), _contextvars, defined here over the core's context types
 * (Debian builds it as a shared module, and asyncio imports it), and the artifact's own
 * C extension modules, compiled from their sources by unik build and registered by
 * hvt_register_builtins (a generated file). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *copy_context(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyContext_CopyCurrent();
}

static PyMethodDef contextvars_methods[] = {
    {"copy_context", copy_context, METH_NOARGS, "A copy of the current context."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef contextvars_module = {
    PyModuleDef_HEAD_INIT, "_contextvars", "Context variables (hvt's built-in).", -1, contextvars_methods,
    NULL, NULL, NULL, NULL,
};

static PyObject *init_contextvars(void)
{
    PyObject *m = PyModule_Create(&contextvars_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Context", (PyObject *)&PyContext_Type) < 0
        || PyModule_AddObjectRef(m, "ContextVar", (PyObject *)&PyContextVar_Type) < 0
        || PyModule_AddObjectRef(m, "Token", (PyObject *)&PyContextToken_Type) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

void hvt_register_builtins(void) __attribute__((weak));

static void fail(PyStatus status)
{
    if (PyStatus_IsExit(status))
        exit(status.exitcode);
    Py_ExitStatusException(status);
}

int main(int argc, char **argv)
{
    PyPreConfig pre;
    PyPreConfig_InitIsolatedConfig(&pre);
    pre.utf8_mode = 1;
    PyStatus status = Py_PreInitialize(&pre);
    if (PyStatus_Exception(status))
        fail(status);
    if (PyImport_AppendInittab("_contextvars", init_contextvars) < 0)
        return 120;
    if (hvt_register_builtins)
        hvt_register_builtins();

    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    config.site_import = 0;
    config.write_bytecode = 0;
    config.install_signal_handlers = 1;
    config.module_search_paths_set = 1;
    status = PyWideStringList_Append(&config.module_search_paths, L"/app");
    if (!PyStatus_Exception(status))
        status = PyWideStringList_Append(&config.module_search_paths, L"/lib/python3.11");
    if (!PyStatus_Exception(status))
        status = PyConfig_SetString(&config, &config.home, L"/");
    if (!PyStatus_Exception(status))
        status = PyConfig_SetString(&config, &config.executable, L"/app/main.py");
    if (!PyStatus_Exception(status))
        status = PyConfig_SetString(&config, &config.run_filename, L"/app/main.py");
    if (!PyStatus_Exception(status))
        status = PyConfig_SetBytesArgv(&config, argc, argv);
    if (!PyStatus_Exception(status))
        status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status))
        fail(status);
    /* BuiltinImporter finds only top-level built-ins: the artifact's extension modules
     * live in packages (unik_entropy._aesctr), so a finder ahead of it serves those. */
    if (PyRun_SimpleString(
            "def _hvt_builtins():\n"
            "    import sys, _imp\n"
            "    from importlib.machinery import BuiltinImporter, ModuleSpec\n"
            "    class HvtBuiltins:\n"
            "        @classmethod\n"
            "        def find_spec(cls, name, path=None, target=None):\n"
            "            if '.' in name and _imp.is_builtin(name):\n"
            "                return ModuleSpec(name, BuiltinImporter, origin='built-in')\n"
            "    sys.meta_path.insert(0, HvtBuiltins)\n"
            "_hvt_builtins()\n"
            "del _hvt_builtins\n") != 0)
        return 120;
    return Py_RunMain();
}
