/*
 * unik-spt: the outer half of unik's sandboxed-process tender (solo5's spt model).
 *
 *   unik-spt [--mem=MIB] [--as=MIB] [--cgroup=DIR] [--report-fd=FD] [--net:NAME=TAP [--net-mac:NAME=MAC]]...
 *            [--block:NAME=FILE]... -- PROGRAM [ARG]...
 *
 * In order, it
 *   1. opens exactly the devices named on its command line and nothing else: an
 *      existing TAP (/dev/net/tun, TUNSETIFF IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, no offloads,
 *      link up, non-blocking; never created on open, as solo5's tender) and block files
 *      (read-write, flock'ed, size taken); it picks each TAP's MAC (random, locally
 *      administered, unless --net-mac gives one);
 *   2. describes them to the program in UNIK_SPT_DEVICES, one device per line:
 *      "NAME\tnet\tFD\tMTU\tMAC\tIFNAME" or "NAME\tblock\tFD\tBYTES\t-\tPATH";
 *   3. enters a new PID namespace and forks: the child (PID 1 there, killed if the
 *      tender dies) is traced by the tender (PTRACE_SEIZE, before it execs), takes the
 *      tender's choices of what a process inherits -- an environment of
 *      UNIK_SPT_DEVICES, UNIK_PROG, UNIK_SPT_MEM_MIB and UNIK_SPT_FILES alone, "/" as working directory, /dev/null as
 *      stdin, no descriptor but stdin/stdout/stderr and the devices', the resource
 *      limits below (address space: --as MiB, else --mem MiB), and, with --cgroup, the
 *      memory cgroup `unik run` made (it joins it before it runs: cgroup.procs) --
 *      and execs PROGRAM: Python, which
 *      adopts the descriptors, imports what the plan needs and then seals itself
 *      (unik_solo5._sandbox: namespaces, empty root, no_new_privs, seccomp);
 *   4. forwards SIGINT and SIGTERM to the child (SIGHUP as SIGTERM: PID 1 of a namespace
 *      only gets the signals it handles; and SIGTERM when its own parent dies), and exits
 *      with its status (128 + the signal number when it was killed).
 *
 * A refused system call: the filter answers SECCOMP_RET_TRAP, so the kernel sends the
 * child a SIGSYS whose siginfo (si_code SYS_SECCOMP) carries the call's number. The
 * tender, as the child's tracer, sees that signal before the child does
 * (PTRACE_GETSIGINFO), kills the child and writes "NR\n" to --report-fd (a pipe from
 * `unik run` that the child never holds), or a sentence to stderr without one, and
 * exits 128 + SIGSYS. The report comes from the kernel, not from the application.
 *
 * Every error names the device and the file or TAP, and exits 125.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* From <net/if.h>, which cannot be included beside <linux/if.h>. */
extern unsigned int if_nametoindex(const char *ifname);

#define MAX_DEVICES 64
#define VNET_HDR_LEN 12
#define SYS_SECCOMP_CODE 1 /* si_code of a SIGSYS sent by a seccomp filter (<asm-generic/siginfo.h>) */
/* Descriptors the child may hold before its seal (Python opens its modules one at a time). */
#define CHILD_NOFILE 256

static volatile sig_atomic_t child_pid;

static void die(const char *what, const char *arg)
{
    fprintf(stderr, "unik-spt: %s%s%s: %s\n", what, arg ? " " : "", arg ? arg : "", strerror(errno));
    exit(125);
}

static void usage(const char *why)
{
    fprintf(stderr,
            "unik-spt: %s\nusage: unik-spt [--mem=MIB] [--as=MIB] [--cgroup=DIR] [--report-fd=FD] "
            "[--net:NAME=TAP [--net-mac:NAME=MAC]]... [--block:NAME=FILE]... -- PROGRAM [ARG]...\n",
            why);
    exit(125);
}

/* "02:00:00:00:00:01" into mac[6]: 0 when it is a unicast address. */
static int parse_mac(const char *text, unsigned char mac[6])
{
    unsigned int b[6];
    char end;
    int i;

    if (sscanf(text, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &end) != 6)
        return -1;
    for (i = 0; i < 6; i++)
        mac[i] = (unsigned char)b[i];
    return (mac[0] & 1) ? -1 : 0;
}

/* A random locally administered unicast MAC (IEEE 802: bit 1 set, bit 0 clear). */
static void random_mac(unsigned char mac[6])
{
    if (getrandom(mac, 6, 0) != 6)
        die("getrandom for a MAC address", NULL);
    mac[0] = (unsigned char)((mac[0] & 0xfc) | 0x02);
}

/* An existing TAP device as the unix target opens it: vnet header, no offloads, up, non-blocking. */
static int open_tap(const char *name, const char *ifname, int *mtu)
{
    struct ifreq ifr;
    int fd, s, hdr = VNET_HDR_LEN;

    if (strlen(ifname) >= IFNAMSIZ || strchr(ifname, '/'))
        usage("a TAP name is 1 to 15 bytes without '/'");
    /* TUNSETIFF would create a missing TAP, which would vanish with us and have no
       address on the host side: refuse, as solo5's tender does. */
    if (if_nametoindex(ifname) == 0) {
        fprintf(stderr, "unik-spt: network device %s: there is no TAP %s here: create it first "
                "(ip tuntap add %s mode tap; ip addr add ... dev %s)\n", name, ifname, ifname, ifname);
        exit(125);
    }
    fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK);
    if (fd < 0)
        die("cannot open /dev/net/tun for", ifname);
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        if (errno == EINVAL)
            fprintf(stderr, "unik-spt: network device %s: %s is not a TAP device\n", name, ifname);
        else if (errno == EBUSY)
            fprintf(stderr, "unik-spt: network device %s: TAP %s is in use by another process\n", name, ifname);
        else
            fprintf(stderr, "unik-spt: network device %s: TUNSETIFF %s: %s\n", name, ifname, strerror(errno));
        exit(125);
    }
    if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0)
        die("TUNSETVNETHDRSZ", ifname);
    if (ioctl(fd, TUNSETOFFLOAD, 0) < 0)
        die("TUNSETOFFLOAD", ifname);
    s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        die("socket for", ifname);
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
        die("SIOCGIFFLAGS", ifname);
    if (!(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
            die("bringing up", ifname);
    }
    if (ioctl(s, SIOCGIFMTU, &ifr) < 0)
        die("SIOCGIFMTU", ifname);
    *mtu = ifr.ifr_mtu;
    close(s);
    return fd;
}

/* A block file: read-write, exclusively flock'ed, a non-zero size. */
static int open_block(const char *name, const char *path, long long *size)
{
    struct stat st;
    off_t end;
    int fd = open(path, O_RDWR);

    if (fd < 0) {
        fprintf(stderr, "unik-spt: block device %s: cannot open %s read-write: %s\n", name, path, strerror(errno));
        exit(125);
    }
    if (fstat(fd, &st) < 0)
        die("fstat", path);
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        fprintf(stderr, "unik-spt: block device %s: %s is not a regular file or block device\n", name, path);
        exit(125);
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        fprintf(stderr, "unik-spt: block device %s: %s is in use by another process (flock: %s)\n", name, path,
                strerror(errno));
        exit(125);
    }
    end = lseek(fd, 0, SEEK_END);
    if (end < 0)
        die("lseek", path);
    *size = (long long)end;
    return fd;
}

static void forward(int sig)
{
    /* PID 1 of a namespace ignores the signals it has no handler for: Python handles
       SIGINT and SIGTERM, not SIGHUP. */
    if (child_pid > 0)
        kill(child_pid, sig == SIGHUP ? SIGTERM : sig);
}

/* The MAC given for the network device `name` with --net-mac:NAME=MAC, or NULL. */
static const char *mac_option(int argc, char **argv, const char *name)
{
    size_t len = strlen(name);
    int i;

    for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strncmp(argv[i], "--net-mac:", 10) == 0 && strncmp(argv[i] + 10, name, len) == 0 &&
            argv[i][10 + len] == '=')
            return argv[i] + 11 + len;
    }
    return NULL;
}

static int cmp_int(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

/* In the child: what it inherits is the tender's choice, then exec PROGRAM. */
static void start_child(char **argv, int *keep, int n, long mem_mib, long as_mib, int sync_fd)
{
    static char *envp[5];
    static char devices[MAX_DEVICES * 4200 + 32], prog[512], mem[48], files[8192];
    const char *env = getenv("UNIK_SPT_DEVICES"), *name = getenv("UNIK_PROG"), *given = getenv("UNIK_SPT_FILES");
    struct rlimit core = {0, 0}, nofile = {CHILD_NOFILE, CHILD_NOFILE};
    unsigned int lo = 3;
    char go;
    int i, null, e = 0;

    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        die("PR_SET_PDEATHSIG", NULL);
    /* Wait until the tender traces us: no instruction of PROGRAM runs untraced. */
    if (read(sync_fd, &go, 1) != 0)
        die("waiting for the tender", NULL);
    null = open("/dev/null", O_RDONLY);
    if (null < 0 || dup2(null, 0) < 0)
        die("/dev/null as stdin", NULL);
    if (chdir("/") < 0)
        die("chdir /", NULL);
    qsort(keep, (size_t)n, sizeof *keep, cmp_int);
    for (i = 0; i < n; i++) {
        if ((unsigned int)keep[i] > lo && syscall(SYS_close_range, lo, (unsigned int)keep[i] - 1, 0) < 0)
            die("close_range", NULL);
        if ((unsigned int)keep[i] + 1 > lo)
            lo = (unsigned int)keep[i] + 1;
    }
    if (syscall(SYS_close_range, lo, ~0U, 0) < 0)
        die("close_range", NULL);
    if (setrlimit(RLIMIT_CORE, &core) < 0 || setrlimit(RLIMIT_NOFILE, &nofile) < 0)
        die("setrlimit", NULL);
    if (as_mib > 0 || mem_mib > 0) {
        rlim_t bytes = (rlim_t)(as_mib > 0 ? as_mib : mem_mib) << 20;
        struct rlimit as = {bytes, bytes};
        if (setrlimit(RLIMIT_AS, &as) < 0)
            die("setrlimit RLIMIT_AS", NULL);
    }
    /* The environment: the devices, the program's name and its memory limit; nothing of the caller's. */
    snprintf(devices, sizeof devices, "UNIK_SPT_DEVICES=%s", env ? env : "");
    envp[e++] = devices;
    if (name && strlen(name) < sizeof prog - 10) {
        snprintf(prog, sizeof prog, "UNIK_PROG=%s", name);
        envp[e++] = prog;
    }
    if (mem_mib > 0) {
        snprintf(mem, sizeof mem, "UNIK_SPT_MEM_MIB=%ld", mem_mib);
        envp[e++] = mem;
    }
    /* Host files the run names (--tls-cert...): the only ones besides the artifact's that
       its read-only root will hold (unik_solo5.root). */
    if (given && *given) {
        if (strlen(given) >= sizeof files - 16) {
            errno = ENAMETOOLONG;
            die("UNIK_SPT_FILES", NULL);
        }
        snprintf(files, sizeof files, "UNIK_SPT_FILES=%s", given);
        envp[e++] = files;
    }
    envp[e] = NULL;
    execve(argv[0], argv, envp);
    die("cannot run", argv[0]);
}

/* Write `pid` to DIR/cgroup.procs: the process joins that cgroup (v1 and v2 alike). */
static int join_cgroup(const char *dir, pid_t pid)
{
    char path[4096], line[32];
    int fd, len, ok;

    snprintf(path, sizeof path, "%s/cgroup.procs", dir);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    len = snprintf(line, sizeof line, "%d\n", (int)pid);
    ok = write(fd, line, (size_t)len) == len;
    close(fd);
    return ok ? 0 : -1;
}

/* Wait for the traced child; a seccomp SIGSYS is recorded in *refused and kills it. */
static int supervise(pid_t pid, long *refused)
{
    int status, sig;
    siginfo_t info;

    for (;;) {
        if (waitpid(pid, &status, __WALL) < 0) {
            if (errno == EINTR)
                continue;
            die("waitpid", NULL);
        }
        if (WIFEXITED(status) || WIFSIGNALED(status))
            return status;
        if (!WIFSTOPPED(status))
            continue;
        sig = WSTOPSIG(status);
        if (status >> 16 == PTRACE_EVENT_STOP) { /* a group-stop: the child is not stopped by others */
            ptrace(PTRACE_CONT, pid, 0, 0);
            continue;
        }
        if (sig == SIGSYS && ptrace(PTRACE_GETSIGINFO, pid, 0, &info) == 0 && info.si_code == SYS_SECCOMP_CODE) {
            *refused = info.si_syscall;
            kill(pid, SIGKILL);
            ptrace(PTRACE_CONT, pid, 0, 0);
            continue;
        }
        ptrace(PTRACE_CONT, pid, 0, sig); /* deliver every other signal as it came */
    }
}

int main(int argc, char **argv)
{
    static char env[MAX_DEVICES * 4200];
    int fds[MAX_DEVICES], n = 0, i, status, sig, report_fd = -1, sync[2];
    long mem_mib = 0, as_mib = 0, refused = -1;
    const char *cgroup = NULL;
    size_t used = 0;
    struct sigaction sa;
    pid_t pid, parent = getppid();

    /* If whoever started us (unik run) dies, end the application as a Ctrl-C would. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
        die("PR_SET_PDEATHSIG", NULL);
    if (getppid() != parent)
        return 128 + SIGTERM;
    for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        char *arg = argv[i], *name, *eq, *end;
        int is_net = strncmp(arg, "--net:", 6) == 0, is_block = strncmp(arg, "--block:", 8) == 0;

        if (strncmp(arg, "--net-mac:", 10) == 0)
            continue; /* read with its --net: */
        if (strncmp(arg, "--mem=", 6) == 0) {
            mem_mib = strtol(arg + 6, &end, 10);
            if (*end || mem_mib < 1 || mem_mib > (1L << 30))
                usage("--mem=MIB: the memory limit in MiB, a positive whole number");
            continue;
        }
        if (strncmp(arg, "--as=", 5) == 0) {
            as_mib = strtol(arg + 5, &end, 10);
            if (*end || as_mib < 1 || as_mib > (1L << 30))
                usage("--as=MIB: the address-space limit in MiB, a positive whole number");
            continue;
        }
        if (strncmp(arg, "--cgroup=", 9) == 0) {
            cgroup = arg + 9;
            if (*cgroup != '/' || strlen(cgroup) > 3800)
                usage("--cgroup=DIR: the absolute path of a cgroup directory");
            continue;
        }
        if (strncmp(arg, "--report-fd=", 12) == 0) {
            report_fd = (int)strtol(arg + 12, &end, 10);
            if (*end || report_fd < 3 || fcntl(report_fd, F_SETFD, FD_CLOEXEC) < 0)
                usage("--report-fd=FD: an open descriptor above 2");
            continue;
        }
        if (!is_net && !is_block)
            usage("unknown option");
        if (n == MAX_DEVICES)
            usage("too many devices");
        name = arg + (is_net ? 6 : 8);
        eq = strchr(name, '=');
        if (!eq || eq == name || !eq[1])
            usage("a device is given as --net:NAME=TAP or --block:NAME=FILE");
        *eq = '\0';
        if (strpbrk(name, "\t\n") || strpbrk(eq + 1, "\t\n"))
            usage("device names and files may not contain tabs or newlines");
        if (is_net) {
            int mtu = 0;
            unsigned char mac[6];
            const char *given = mac_option(argc, argv, name);

            if (given && parse_mac(given, mac) < 0)
                usage("--net-mac: a MAC is six hex bytes, e.g. 02:00:00:00:00:01, and not a multicast address");
            if (!given)
                random_mac(mac);
            fds[n] = open_tap(name, eq + 1, &mtu);
            used += (size_t)snprintf(env + used, sizeof env - used,
                                     "%s\tnet\t%d\t%d\t%02x:%02x:%02x:%02x:%02x:%02x\t%s\n", name, fds[n], mtu,
                                     mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], eq + 1);
        } else {
            long long size = 0;
            fds[n] = open_block(name, eq + 1, &size);
            used += (size_t)snprintf(env + used, sizeof env - used, "%s\tblock\t%d\t%lld\t-\t%s\n", name, fds[n],
                                     size, eq + 1);
        }
        if (used >= sizeof env)
            usage("device descriptions too long");
        n++;
    }
    if (i + 1 >= argc)
        usage("no program after --");
    if (setenv("UNIK_SPT_DEVICES", env, 1) < 0)
        die("setenv", NULL);

    if (unshare(CLONE_NEWPID) < 0)
        die("cannot enter a new PID namespace (root or CAP_SYS_ADMIN needed)", NULL);
    if (pipe2(sync, O_CLOEXEC) < 0)
        die("pipe", NULL);
    pid = fork();
    if (pid < 0)
        die("fork", NULL);
    if (pid == 0) {
        close(sync[1]);
        start_child(argv + i + 1, fds, n, mem_mib, as_mib, sync[0]);
    }
    child_pid = pid;
    close(sync[0]);
    /* Into the run's memory cgroup before a single instruction of PROGRAM runs. */
    if (cgroup && join_cgroup(cgroup, pid) < 0) {
        kill(pid, SIGKILL);
        die("cannot put the application in its memory cgroup", cgroup);
    }
    /* Trace the child (it waits for this): the kernel's account of a refused call is
       read here, where the application cannot reach. EXITKILL: it dies with us. */
    if (ptrace(PTRACE_SEIZE, pid, 0, PTRACE_O_EXITKILL) < 0) {
        kill(pid, SIGKILL);
        die("cannot trace the application (ptrace; kernel.yama.ptrace_scope must be below 3)", NULL);
    }
    close(sync[1]);
    for (i = 0; i < n; i++)
        close(fds[i]);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    status = supervise(pid, &refused);
    if (refused >= 0) {
        char line[32];
        int len = snprintf(line, sizeof line, "%ld\n", refused);
        if (report_fd < 0 || write(report_fd, line, (size_t)len) != len)
            fprintf(stderr, "unik-spt: seccomp refused system call number %ld: the application is killed\n",
                    refused);
        return 128 + SIGSYS;
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    return 128 + sig;
}
