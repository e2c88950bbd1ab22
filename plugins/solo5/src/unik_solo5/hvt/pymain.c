/* The hvt unikernel's main: CPython (Debian's static libpython3.11.a) over the in-memory
 * filesystem.  The standard library is at /lib/python3.11, the application (the
 * generated main.py and its packages) at /app; the interpreter runs /app/main.py with
 * the guest's arguments.  No site, no environment, no bytecode writing, UTF-8 mode.
 *
 * Built-in modules are those Debian links into libpython3.11.a (posix, _io, _socket,
 * select, math, _struct, ...), _contextvars, defined here over the core's context types
 * (Debian builds it as a shared module, and asyncio imports it), and the artifact's own
 * C extension modules, compiled from their sources by unik build and registered by
 * hvt_register_builtins (a generated file).
 *
 * Pre-initialisation (unik-hvt --save-snapshot, which unik build runs): when the boot
 * pre-initialises, CPython imports what main.py imports and more (unik_solo5.hvt_preinit) and
 * the guest is saved at the snapshot point (hvt_abi.h's HVT_SYS_SNAPSHOT), before main.py
 * reads its arguments or connects a device.  Each guest restored from that snapshot goes on
 * from there with this run's arguments, renews what CPython holds from before the save, and
 * runs main.py as a cold boot does, its imports already done. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hvt_abi.h"

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

/* This run's arguments, from the boot information, as a list of bytes (a restored guest's
 * process stack holds the arguments of the boot that was saved). */
static PyObject *boot_arguments(void)
{
    const struct hvt_boot_info *bi = (const struct hvt_boot_info *)HVT_BOOT_INFO;
    const char *at = (const char *)HVT_ARGS, *end = at + bi->args_len;
    PyObject *args = PyList_New(0);
    for (uint64_t i = 0; args && i < bi->argc && at < end; i++) {
        size_t n = strnlen(at, (size_t)(end - at));
        PyObject *arg = PyBytes_FromStringAndSize(at, (Py_ssize_t)n);
        if (!arg || PyList_Append(args, arg) < 0)
            Py_CLEAR(args);
        Py_XDECREF(arg);
        at += n + 1;
    }
    return args;
}

/* Pre-initialise when this boot does (0: it does not; -1: it failed, the error printed); in a
 * guest restored from the snapshot, renew and go on with this run's arguments (1). */
static PyObject *preinit_module;

static int preinitialise(void)
{
    if (syscall(HVT_SYS_SNAPSHOT, 0) != 1)
        return 0;
    PyObject *module = PyImport_ImportModule("unik_solo5.hvt_preinit");
    PyObject *done = module ? PyObject_CallMethod(module, "prepare", "s", "/app/main.py") : NULL;
    if (!done) {
        PyErr_Print();
        Py_XDECREF(module);
        return -1;
    }
    Py_DECREF(done);
    if (syscall(HVT_SYS_SNAPSHOT, 1) != 1) { /* the snapshot point: each restored guest goes on from here */
        fprintf(stderr, "unik-hvt: the monitor did not save this pre-initialising boot\n");
        Py_DECREF(module);
        return -1;
    }
    PyObject *args = boot_arguments();
    done = args ? PyObject_CallMethod(module, "resumed", "O", args) : NULL;
    Py_XDECREF(args);
    if (!done) {
        PyErr_Print();
        Py_DECREF(module);
        return -1;
    }
    Py_DECREF(done);
    preinit_module = module;
    return 1;
}

/* A restored guest runs main.py as Py_RunMain would, from its byte code compiled before the save:
 * an uncaught exception exits 1, SystemExit its status (PyErr_Print exits), a normal end 0. */
static int run_restored(void)
{
    int status = 0;
    PyObject *done = PyObject_CallMethod(preinit_module, "run_main", NULL);
    if (!done) {
        PyErr_Print();
        status = 1;
    }
    Py_XDECREF(done);
    Py_CLEAR(preinit_module);
    if (Py_FinalizeEx() < 0 && status == 0)
        status = 120;
    return status;
}

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
    if (getenv("UNIK_HVT_IMPORT_TIME")) { /* unik-hvt --profile-imports: -X importtime */
        config.import_time = 1;
        setvbuf(stderr, NULL, _IOFBF, 1 << 16); /* its lines in a few console exits (about 100 us each), not 150 */
    }
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
    int restored = preinitialise();
    if (restored < 0)
        return 120;
    return restored ? run_restored() : Py_RunMain();
}
