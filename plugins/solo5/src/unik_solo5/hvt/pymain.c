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
    Py_DECREF(module);
    return 1;
}

/* ---- the run of main.py (a cold boot's, and a restored guest's) ----------------------- */

#define MAIN_PY "/app/main.py"
#define MAIN_PYC "/app/__pycache__/main.cpython-311.pyc" /* unik build's, an unchecked-hash pyc */

/* The whole of a file of the archive (NULL: none), its size in *size. */
static char *read_file(const char *path, long *size)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    if (f && fseek(f, 0, SEEK_END) == 0 && (*size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0
        && (data = malloc((size_t)*size + 1)) != NULL) {
        if (fread(data, 1, (size_t)*size, f) != (size_t)*size) {
            free(data);
            data = NULL;
        } else {
            data[*size] = 0;
        }
    }
    if (f)
        fclose(f);
    return data;
}

/* main.py's code: the byte code unik build compiled for this CPython (its magic number, an
 * unchecked hash: the archive cannot change after the build), else compiled from the source
 * as Py_RunMain does. */
static PyObject *main_code(void)
{
    long size;
    char *pyc = read_file(MAIN_PYC, &size);
    long magic = PyImport_GetMagicNumber();
    PyObject *code = NULL;
    if (pyc && size > 16 && memcmp(pyc, &magic, 4) == 0 && pyc[4] == 1 && !pyc[5] && !pyc[6] && !pyc[7]) {
        code = PyMarshal_ReadObjectFromString(pyc + 16, size - 16);
        if (code && !PyCode_Check(code))
            Py_CLEAR(code);
        PyErr_Clear(); /* a damaged pyc: the source */
    }
    free(pyc);
    if (code)
        return code;
    char *source = read_file(MAIN_PY, &size);
    if (!source) {
        PyErr_Format(PyExc_FileNotFoundError, "%s is not in the unikernel's archive", MAIN_PY);
        return NULL;
    }
    code = Py_CompileString(source, MAIN_PY, Py_file_input);
    free(source);
    return code;
}

/* The exit status of the exception main.py ended with, printed as Py_RunMain prints it:
 * SystemExit's code (None 0, an integer itself, anything else printed and 1), a traceback
 * and 1 for any other, 130 for KeyboardInterrupt (the status of a SIGINT). */
static int exception_status(void)
{
    if (!PyErr_ExceptionMatches(PyExc_SystemExit)) {
        int interrupted = PyErr_ExceptionMatches(PyExc_KeyboardInterrupt);
        PyErr_Print();
        return interrupted ? 128 + 2 : 1;
    }
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject *code = value ? PyObject_GetAttrString(value, "code") : NULL;
    int status = 1;
    if (code == NULL || code == Py_None) {
        status = code ? 0 : 1;
    } else if (PyLong_Check(code)) {
        status = (int)PyLong_AsLong(code);
    } else {
        PyObject *err = PySys_GetObject("stderr");
        if (err && err != Py_None && PyFile_WriteObject(code, err, Py_PRINT_RAW) == 0)
            PyFile_WriteString("\n", err);
    }
    PyErr_Clear();
    Py_XDECREF(code);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return status;
}

/* Flush a standard stream; 0 when it failed (CPython's exit status is 120 then). */
static int flushed(const char *name)
{
    PyObject *stream = PySys_GetObject(name), *r = NULL;
    if (stream == NULL || stream == Py_None)
        return 1;
    r = PyObject_CallMethod(stream, "flush", NULL);
    if (r == NULL) {
        PyErr_Clear();
        return 0;
    }
    Py_DECREF(r);
    return 1;
}

/* /app/main.py as Py_RunMain runs it (in __main__, its exit status as CPython's),
 * then what the interpreter's finalisation does that anyone can see (the atexit functions,
 * the standard streams flushed) and exit, without tearing the interpreter down: the guest's
 * memory goes with it, and examples/hello spent 6 ms of its 45 in Py_FinalizeEx (unik-hvt
 * --profile, rdtsc-stamped). */
static int run_main_py(void)
{
    PyObject *main_module = PyImport_AddModule("__main__"); /* borrowed */
    PyObject *globals = main_module ? PyModule_GetDict(main_module) : NULL;
    PyObject *file = PyUnicode_FromString(MAIN_PY), *result = NULL, *code = NULL;
    /* The cyclic garbage collector is off while the application starts; unik_solo5.hvt_gc, which
     * main.py imports, turns it back on when the devices are connected (it says why). */
    PyGC_Disable();
    if (globals && file && PyDict_SetItemString(globals, "__file__", file) == 0
        && PyDict_SetItemString(globals, "__cached__", Py_None) == 0 && (code = main_code()) != NULL)
        result = PyEval_EvalCode(code, globals, globals);
    Py_XDECREF(file);
    Py_XDECREF(code);
    int status = result ? 0 : exception_status();
    Py_XDECREF(result);
    PyObject *atexit = PyImport_ImportModule("atexit");
    PyObject *done = atexit ? PyObject_CallMethod(atexit, "_run_exitfuncs", NULL) : NULL;
    if (!done)
        PyErr_Print();
    Py_XDECREF(done);
    Py_XDECREF(atexit);
    if ((!flushed("stdout") || !flushed("stderr")) && status == 0)
        status = 120;
    return status; /* main's return: exit() flushes libc's streams */
}

static void fail(PyStatus status)
{
    if (PyStatus_IsExit(status))
        exit(status.exitcode);
    Py_ExitStatusException(status);
}

/* glibc's lookups of users, groups, hosts and services ask nscd first, over an AF_UNIX socket;
 * the guest has no nscd (and the runtime no socket: ENOSYS, logged), so its name service
 * switch goes straight to its files, as glibc's own __nss_disable_nscd does (not in the static
 * libc).  CPython asks at import: sysconfig's user base is expanduser("~"), which without HOME
 * is getpwuid (zoneinfo reads sysconfig). */
extern int __nss_not_use_nscd_passwd, __nss_not_use_nscd_group, __nss_not_use_nscd_hosts,
    __nss_not_use_nscd_services, __nss_not_use_nscd_netgroup;

static void no_nscd(void)
{
    /* negative: never (a positive count retries nscd after 100 lookups) */
    __nss_not_use_nscd_passwd = __nss_not_use_nscd_group = __nss_not_use_nscd_hosts = -1;
    __nss_not_use_nscd_services = __nss_not_use_nscd_netgroup = -1;
}

int main(int argc, char **argv)
{
    no_nscd();
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
    if (preinitialise() < 0)
        return 120;
    return run_main_py(); /* a restored guest too: its imports are done, main.py runs as in a cold boot */
}
