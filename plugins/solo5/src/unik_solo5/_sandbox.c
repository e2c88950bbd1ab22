/*
 * unik_solo5._sandbox: the inner half of the spt tender, run by the application's own
 * Python process once it has imported everything the plan needs.
 *
 * enter(keep, program, names, report_fd, tripwire, mountpoint) in this order
 *   - closes every descriptor not in `keep`;
 *   - enters new mount, IPC, UTS and network namespaces (the PID namespace was entered
 *     by the tender before Python started) and makes an empty, read-only tmpfs the root;
 *   - makes the process non-dumpable (no core files, no ptrace by others);
 *   - installs the SIGSYS handler that reports a refused system call;
 *   - sets no_new_privs and installs the seccomp-BPF `program` (struct sock_filter[]).
 *
 * The filter answers SECCOMP_RET_TRAP to a refused call, so the kernel delivers SIGSYS
 * with the call's number in si_syscall.  The handler writes "NR NAME\n" to report_fd
 * (or a sentence to stderr when there is none), then makes the `tripwire` call, which
 * the filter refuses too: SIGSYS is blocked inside its own handler, so the kernel resets
 * it to its default action and the process dies of SIGSYS.  The handler can only
 * report; it can never let the refused call or the program go on.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_NAMES 1024

static const char *names[MAX_NAMES];
static int report_fd = -1;
static long tripwire = -1;

static size_t put(char *buf, size_t at, const char *s)
{
    while (*s && at < 255)
        buf[at++] = *s++;
    return at;
}

static size_t put_number(char *buf, size_t at, long v)
{
    char digits[24];
    int n = 0;

    if (v < 0) {
        buf[at++] = '-';
        v = -v;
    }
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < 20);
    while (n && at < 255)
        buf[at++] = digits[--n];
    return at;
}

/* Async-signal-safe: formats with put()/put_number(), writes once, then dies. */
static void on_sigsys(int sig, siginfo_t *info, void *ctx)
{
    char buf[256];
    size_t at = 0;
    int nr = info->si_syscall;
    const char *name = (nr >= 0 && nr < MAX_NAMES && names[nr]) ? names[nr] : "?";
    ssize_t ignored;

    (void)sig;
    (void)ctx;
    if (report_fd >= 0) {
        at = put_number(buf, at, nr);
        at = put(buf, at, " ");
        at = put(buf, at, name);
        at = put(buf, at, "\n");
        ignored = write(report_fd, buf, at);
    } else {
        at = put(buf, at, "unik-spt: seccomp refused system call ");
        at = put(buf, at, name);
        at = put(buf, at, " (");
        at = put_number(buf, at, nr);
        at = put(buf, at, "): the application is killed\n");
        ignored = write(2, buf, at);
    }
    (void)ignored;
    syscall(tripwire);
    _exit(128 + SIGSYS); /* not reached: the tripwire is refused and SIGSYS is fatal now */
}

static PyObject *fail(const char *step)
{
    int err = errno;
    return PyErr_Format(PyExc_OSError, "spt sandbox: %s: %s", step, strerror(err));
}

static int cmp_int(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

/* Close every descriptor outside `keep` (sorted), with close_range over the gaps. */
static int close_others(int *keep, Py_ssize_t n)
{
    unsigned int lo = 0;
    Py_ssize_t i;

    qsort(keep, (size_t)n, sizeof *keep, cmp_int);
    for (i = 0; i < n; i++) {
        if ((unsigned int)keep[i] > lo && syscall(SYS_close_range, lo, (unsigned int)keep[i] - 1, 0) < 0)
            return -1;
        lo = (unsigned int)keep[i] + 1;
    }
    return (int)syscall(SYS_close_range, lo, ~0U, 0);
}

/* New mount/IPC/UTS/network namespaces; an empty read-only tmpfs becomes "/". */
static int empty_root(const char *mountpoint)
{
    if (unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET) < 0)
        return -1;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return -1;
    if (mount("unik-spt", mountpoint, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,nr_inodes=1,mode=0555") < 0)
        return -1;
    if (chdir(mountpoint) < 0)
        return -1;
    /* pivot_root(".", "."): the old root is stacked on the new one, then detached. */
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        return -1;
    if (umount2(".", MNT_DETACH) < 0)
        return -1;
    if (chdir("/") < 0)
        return -1;
    return mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
}

PyDoc_STRVAR(enter_doc,
"enter(keep, program, names, report_fd, tripwire, mountpoint, /) -> None\n\n"
"Close every descriptor but `keep`, enter new mount/IPC/UTS/network namespaces with an\n"
"empty root (a tmpfs mounted on `mountpoint` then pivoted to), set no_new_privs and\n"
"install the seccomp `program` (bytes of struct sock_filter).  `names[nr]` names system\n"
"calls for the report written to `report_fd` (-1: stderr).  Irreversible.");

static PyObject *enter(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *keep_seq, *names_seq, *fast = NULL;
    Py_buffer prog_buf;
    const char *mountpoint;
    int fd_report, *keep = NULL;
    long trip;
    Py_ssize_t n, i;
    struct sock_fprog prog;
    struct sigaction sa;
    struct rlimit no_core = {0, 0};

    if (!PyArg_ParseTuple(args, "Oy*Oils:enter", &keep_seq, &prog_buf, &names_seq, &fd_report, &trip, &mountpoint))
        return NULL;
    if (prog_buf.len == 0 || prog_buf.len % (Py_ssize_t)sizeof(struct sock_filter) ||
        prog_buf.len / (Py_ssize_t)sizeof(struct sock_filter) > BPF_MAXINSNS) {
        PyBuffer_Release(&prog_buf);
        return PyErr_Format(PyExc_ValueError, "program is not a whole number of BPF instructions (at most %d)",
                            BPF_MAXINSNS);
    }
    /* Copy the names into C memory that lives for the rest of the process. */
    fast = PySequence_Fast(names_seq, "names must be a sequence");
    if (!fast)
        goto error;
    for (i = 0; i < PySequence_Fast_GET_SIZE(fast) && i < MAX_NAMES; i++) {
        const char *s = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(fast, i));
        if (!s)
            goto error;
        names[i] = *s ? strdup(s) : NULL;
    }
    Py_CLEAR(fast);
    fast = PySequence_Fast(keep_seq, "keep must be a sequence of descriptors");
    if (!fast)
        goto error;
    n = PySequence_Fast_GET_SIZE(fast);
    keep = PyMem_Calloc((size_t)n + 1, sizeof *keep);
    if (!keep) {
        PyErr_NoMemory();
        goto error;
    }
    for (i = 0; i < n; i++) {
        keep[i] = (int)PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, i));
        if (keep[i] == -1 && PyErr_Occurred())
            goto error;
    }
    report_fd = fd_report;
    tripwire = trip;

    if (close_others(keep, n) < 0) {
        fail("closing descriptors");
        goto error;
    }
    if (empty_root(mountpoint) < 0) {
        fail("entering namespaces with an empty root");
        goto error;
    }
    if (setrlimit(RLIMIT_CORE, &no_core) < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
        fail("disabling core dumps");
        goto error;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    sigfillset(&sa.sa_mask);
    if (sigaction(SIGSYS, &sa, NULL) < 0) {
        fail("installing the SIGSYS handler");
        goto error;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        fail("PR_SET_NO_NEW_PRIVS");
        goto error;
    }
    prog.len = (unsigned short)(prog_buf.len / (Py_ssize_t)sizeof(struct sock_filter));
    prog.filter = (struct sock_filter *)prog_buf.buf;
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) {
        fail("installing the seccomp filter");
        goto error;
    }
    PyMem_Free(keep);
    PyBuffer_Release(&prog_buf);
    Py_RETURN_NONE;

error:
    Py_XDECREF(fast);
    PyMem_Free(keep);
    PyBuffer_Release(&prog_buf);
    return NULL;
}

static PyMethodDef methods[] = {
    {"enter", enter, METH_VARARGS, enter_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_sandbox", "The inner half of unik's spt tender (see enter()).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__sandbox(void)
{
    return PyModule_Create(&module);
}
