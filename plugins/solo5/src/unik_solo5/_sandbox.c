/*
 * unik_solo5._sandbox: the inner half of the spt tender, run by the application's own
 * Python process once it has imported everything the plan needs.
 *
 * Before the application's modules are imported: isolate() (namespaces), a new root
 * built from mount_tmpfs(), bind_readonly() and pivot() (unik_solo5.root decides what
 * goes in it), then first_stage(program) (no_new_privs, the first filter).
 *
 * enter(keep, program, mountpoint), once the devices are connected, in this order
 *   - closes every descriptor not in `keep`;
 *   - enters a new mount namespace (the PID namespace was entered by the tender before
 *     Python started; network, IPC and UTS by isolate()) and makes an empty, read-only
 *     tmpfs the root;
 *   - makes the process non-dumpable (no core files, no ptrace by others);
 *   - puts SIGSYS back to its default action (fatal);
 *   - sets no_new_privs and installs the seccomp-BPF `program` (struct sock_filter[]).
 *
 * The filter answers SECCOMP_RET_TRAP to a refused call, so the kernel delivers SIGSYS
 * with the call's number in si_syscall.  Nothing in this process reports it: the
 * tender, which traces the process, reads that siginfo, kills the process and reports
 * the call (see tender.c); untraced, the process dies of SIGSYS all the same.
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

/* A new mount namespace in which an empty read-only tmpfs becomes "/".  The network, IPC
   and UTS namespaces are the first stage's (isolate()): new already, and nothing could
   be added to them since (no socket under the first filter); a second network namespace
   would only cost its creation and teardown. */
static int empty_root(const char *mountpoint)
{
    if (unshare(CLONE_NEWNS) < 0)
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
"enter(keep, program, mountpoint, /) -> None\n\n"
"Close every descriptor but `keep`, enter a new mount namespace with an empty root (a\n"
"tmpfs mounted on `mountpoint` then pivoted to), set no_new_privs and\n"
"install the seccomp `program` (bytes of struct sock_filter).  Irreversible.");

static PyObject *enter(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *keep_seq, *fast = NULL;
    Py_buffer prog_buf;
    const char *mountpoint;
    int *keep = NULL;
    Py_ssize_t n, i;
    struct sock_fprog prog;
    struct sigaction sa;
    struct rlimit no_core = {0, 0};

    if (!PyArg_ParseTuple(args, "Oy*s:enter", &keep_seq, &prog_buf, &mountpoint))
        return NULL;
    if (prog_buf.len == 0 || prog_buf.len % (Py_ssize_t)sizeof(struct sock_filter) ||
        prog_buf.len / (Py_ssize_t)sizeof(struct sock_filter) > BPF_MAXINSNS) {
        PyBuffer_Release(&prog_buf);
        return PyErr_Format(PyExc_ValueError, "program is not a whole number of BPF instructions (at most %d)",
                            BPF_MAXINSNS);
    }
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
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSYS, &sa, NULL) < 0) {
        fail("making SIGSYS fatal");
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

PyDoc_STRVAR(isolate_doc,
"isolate() -> None\n\n"
"Before the application's modules are imported: enter new mount (every mount made\n"
"private), IPC, UTS and network namespaces.  Irreversible.");

static PyObject *isolate(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(args))
{
    if (unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET) < 0)
        return fail("entering namespaces");
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return fail("making the mounts private");
    Py_RETURN_NONE;
}

PyDoc_STRVAR(mount_tmpfs_doc,
"mount_tmpfs(path, /) -> None\n\n"
"Mount an empty, writable tmpfs (nosuid, nodev, noexec; 1 MiB) on `path`: the new root,\n"
"filled with mount points and symbolic links, then made read-only by pivot().");

static PyObject *mount_tmpfs(PyObject *Py_UNUSED(module), PyObject *args)
{
    const char *path;

    if (!PyArg_ParseTuple(args, "s:mount_tmpfs", &path))
        return NULL;
    if (mount("unik-spt-root", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=1m,mode=0755") < 0)
        return fail("mounting the new root's tmpfs");
    Py_RETURN_NONE;
}

PyDoc_STRVAR(bind_readonly_doc,
"bind_readonly(fd, target, /) -> None\n\n"
"Bind the file or directory open as `fd` (O_PATH is enough, so the source may be hidden\n"
"by then) on `target`, read-only and nosuid, nodev; not noexec: shared libraries and\n"
"extension modules are mapped executable from it.");

static PyObject *bind_readonly(PyObject *Py_UNUSED(module), PyObject *args)
{
    int fd;
    const char *target;
    char source[64];

    if (!PyArg_ParseTuple(args, "is:bind_readonly", &fd, &target))
        return NULL;
    snprintf(source, sizeof source, "/proc/self/fd/%d", fd);
    if (mount(source, target, NULL, MS_BIND, NULL) < 0)
        return fail("binding a file of the new root");
    if (mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
        return fail("making a file of the new root read-only");
    Py_RETURN_NONE;
}

PyDoc_STRVAR(pivot_doc,
"pivot(path, /) -> None\n\n"
"Make the mount on `path` the root (the old one is detached: nothing of it stays in\n"
"reach) and remount it read-only; the working directory becomes the new \"/\".");

static PyObject *pivot(PyObject *Py_UNUSED(module), PyObject *args)
{
    const char *path;

    if (!PyArg_ParseTuple(args, "s:pivot", &path))
        return NULL;
    if (chdir(path) < 0)
        return fail("entering the new root");
    /* pivot_root(".", "."): the old root is stacked on the new one, then detached. */
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        return fail("pivot_root");
    if (umount2(".", MNT_DETACH) < 0)
        return fail("detaching the old root");
    if (chdir("/") < 0)
        return fail("chdir /");
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        return fail("making the new root read-only");
    Py_RETURN_NONE;
}

PyDoc_STRVAR(first_stage_doc,
"first_stage(program, /) -> None\n\n"
"Before the application's modules are imported, after isolate() and the new root:\n"
"set no_new_privs and install the first-stage seccomp `program`.  Irreversible;\n"
"enter() adds the empty root and the final filter later.");

static PyObject *first_stage(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer prog_buf;
    struct sock_fprog prog;
    PyObject *result = NULL;

    if (!PyArg_ParseTuple(args, "y*:first_stage", &prog_buf))
        return NULL;
    if (prog_buf.len == 0 || prog_buf.len % (Py_ssize_t)sizeof(struct sock_filter) ||
        prog_buf.len / (Py_ssize_t)sizeof(struct sock_filter) > BPF_MAXINSNS) {
        PyErr_SetString(PyExc_ValueError, "program is not a whole number of BPF instructions");
        goto out;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        fail("PR_SET_NO_NEW_PRIVS");
        goto out;
    }
    prog.len = (unsigned short)(prog_buf.len / (Py_ssize_t)sizeof(struct sock_filter));
    prog.filter = (struct sock_filter *)prog_buf.buf;
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) {
        fail("installing the first-stage seccomp filter");
        goto out;
    }
    Py_INCREF(Py_None);
    result = Py_None;
out:
    PyBuffer_Release(&prog_buf);
    return result;
}

PyDoc_STRVAR(attempt_thread_doc,
"attempt_thread() -> None\n\n"
"Ask the kernel for a thread as clone would (the call a thread starts with): under the\n"
"filter it is refused and the tender names `clone`.  The flags are invalid on purpose\n"
"(CLONE_THREAD without CLONE_SIGHAND): unsealed, the kernel refuses them (OSError).");

static PyObject *attempt_thread(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(args))
{
    syscall(SYS_clone, CLONE_VM | CLONE_THREAD, NULL, NULL, NULL, 0);
    return fail("clone");
}

static PyMethodDef methods[] = {
    {"enter", enter, METH_VARARGS, enter_doc},
    {"isolate", isolate, METH_NOARGS, isolate_doc},
    {"mount_tmpfs", mount_tmpfs, METH_VARARGS, mount_tmpfs_doc},
    {"bind_readonly", bind_readonly, METH_VARARGS, bind_readonly_doc},
    {"pivot", pivot, METH_VARARGS, pivot_doc},
    {"first_stage", first_stage, METH_VARARGS, first_stage_doc},
    {"attempt_thread", attempt_thread, METH_NOARGS, attempt_thread_doc},
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
