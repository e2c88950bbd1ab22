/*
 * unik-init: the first process of a unik VM image.
 *
 * It prepares only what the image's /unik/init.conf asks for, runs Python as its
 * child, and turns Python's exit status into the VM's:
 *
 *   mount TYPE DIR        mount a pseudo filesystem (devtmpfs /dev, proc /proc)
 *   module PATH           load a kernel module (finit_module); parameters given on
 *                         the kernel command line as NAME.PARAM=VALUE are passed on
 *   link IFNAME|MAC       bring a network interface up, with no IP address
 *   links N               bring every interface but lo up, with no IP address, once N
 *                         are there (each instance of an image has its own MACs, given
 *                         to the program at boot: the image names none)
 *   env NAME=VALUE        set a variable in Python's (otherwise empty) environment
 *   chdir DIR             Python's working directory
 *   exec PATH ARG...      the program to run; arguments after `--` on the kernel
 *                         command line are appended
 *
 * Before running Python it seeds the kernel's entropy pool with 32 bytes read from
 * /dev/hwrng: the host's randomness through virtio-rng (loaded by then), which only this
 * guest can read.  Nothing secret travels on the kernel command line: it is in the host's
 * process list (QEMU's argv) and in /proc/cmdline.  Without a hardware RNG (Xen) nothing
 * is credited; the kernel's own sources (RDRAND, jitter) seed it.
 * On exit it drains the console, writes the status to QEMU's isa-debug-exit port
 * (0xf4: QEMU then exits with ((status + 1) << 1) | 1) and, if the VM is still running,
 * powers off (or reboots with unik_exit=reboot, for monitors without power-off such as
 * Firecracker).  A status above 125 cannot travel through isa-debug-exit: it is sent
 * as 126 and printed on the console.  With unik_exit=poweroff (Xen, which has no
 * isa-debug-exit) every status is printed and the VM powers off.
 *
 * With unik_probe=1 it exits at once with status 42 (the host's KVM probe).
 * With unik_snapshot=1 (a boot to be snapshotted) Python's environment says so
 * (UNIK_SNAPSHOT=1): unik_vmguest.snapshot then waits for the host on COM2 once the
 * application serves.
 *
 * A shutdown request reaches the program as SIGTERM, so that its devices disconnect
 * (a FAT disk is flushed) before the VM powers off: an ACPI power-button press (QEMU's
 * system_powerdown), read from the kernel's "acpi_event" generic-netlink group (no
 * acpid, no evdev), and SIGTERM, SIGINT or SIGPWR sent to the init.  Xen's shutdown
 * request (xl shutdown) makes the guest kernel run /sbin/poweroff, a link to this
 * program: run so (not as PID 1), it sends SIGTERM to the init.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/random.h>
#include <linux/reboot.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define CONF "/unik/init.conf"
#define DEBUG_EXIT_PORT 0xf4
#define MAX_ARGS 256
#define MAX_ENV 64
#define MAX_LINE 4096

static char *py_argv[MAX_ARGS + 1];
static int py_argc;
static char *py_env[MAX_ENV + 1];
static int py_envc;
static char cmdline[MAX_LINE];
static int modules_loaded;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof buf - 2)
        n = sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t ignored = write(2, buf, (size_t)n);
    (void)ignored;
}

static double uptime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Console on fds 0-2 (the kernel opens /dev/console for us when it exists). */
static void console(void)
{
    if (fcntl(2, F_GETFD) >= 0)
        return;
    int fd = open("/dev/console", O_RDWR | O_NOCTTY);
    if (fd < 0)
        return;
    for (int i = 0; i < 3; i++)
        if (fd != i)
            dup2(fd, i);
    if (fd > 2)
        close(fd);
}

static void read_cmdline(void)
{
    int mounted = 0;
    if (access("/proc/cmdline", R_OK) != 0) {
        mkdir("/proc", 0555);
        if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
            return;
        mounted = 1;
    }
    int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, cmdline, sizeof cmdline - 1);
        cmdline[n > 0 ? n : 0] = '\0';
        close(fd);
    }
    if (mounted)
        umount("/proc");
}

/* The NAME.PARAM=VALUE words of the kernel command line for module NAME. */
static void module_params(const char *name, char *out, size_t size)
{
    size_t len = strlen(name), used = 0;
    out[0] = '\0';
    for (char *p = cmdline; *p;) {
        while (*p == ' ' || *p == '\n')
            p++;
        char *end = p;
        while (*end && *end != ' ' && *end != '\n')
            end++;
        size_t wlen = (size_t)(end - p);
        if (wlen > len + 1 && strncmp(p, name, len) == 0 && p[len] == '.'
            && used + wlen - len + 1 < size) {
            if (used)
                out[used++] = ' ';
            memcpy(out + used, p + len + 1, wlen - len - 1);
            used += wlen - len - 1;
            out[used] = '\0';
        }
        p = end;
    }
}

static void load_module(const char *path)
{
    char name[128], params[1024];
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t i;
    for (i = 0; base[i] && base[i] != '.' && i < sizeof name - 1; i++)
        name[i] = base[i] == '-' ? '_' : base[i];
    name[i] = '\0';
    if (!cmdline[0])
        read_cmdline();
    module_params(name, params, sizeof params);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        say("unik-init: cannot open module %s: %s", path, strerror(errno));
        return;
    }
    if (syscall(SYS_finit_module, fd, params, 0) != 0 && errno != EEXIST)
        say("unik-init: cannot load module %s: %s", path, strerror(errno));
    else
        modules_loaded++;
    close(fd);
}

static void do_mount(const char *type, const char *dir)
{
    mkdir(dir, 0755);
    if (mount(type, dir, type, MS_NOSUID | MS_NOEXEC, NULL) != 0 && errno != EBUSY)
        say("unik-init: cannot mount %s on %s: %s", type, dir, strerror(errno));
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The interface whose MAC address is MAC (aa:bb:cc:dd:ee:ff), or 0. */
static int find_by_mac(int s, const char *mac, char *ifname)
{
    unsigned char want[6];
    for (int i = 0; i < 6; i++) {
        int hi = hexval(mac[3 * i]), lo = hexval(mac[3 * i + 1]);
        if (hi < 0 || lo < 0)
            return 0;
        want[i] = (unsigned char)(hi << 4 | lo);
    }
    struct if_nameindex *all = if_nameindex(), *p;
    int found = 0;
    for (p = all; p && p->if_index && !found; p++) {
        struct ifreq ifr;
        memset(&ifr, 0, sizeof ifr);
        strncpy(ifr.ifr_name, p->if_name, IFNAMSIZ - 1);
        if (ioctl(s, SIOCGIFHWADDR, &ifr) == 0 && memcmp(ifr.ifr_hwaddr.sa_data, want, 6) == 0) {
            strncpy(ifname, p->if_name, IFNAMSIZ - 1);
            found = 1;
        }
    }
    if (all)
        if_freenameindex(all);
    return found;
}

/* Bring an interface (by name, or by MAC address) up without an address; the device
 * may take a moment to appear. */
static void link_up(const char *which)
{
    /* Interface ioctls work on any socket; closing an AF_PACKET one would wait for an RCU
     * grace period (synchronize_net), ~10 ms under emulation. */
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        say("unik-init: socket: %s", strerror(errno));
        return;
    }
    int by_mac = strlen(which) == 17 && which[2] == ':';
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    if (!by_mac)
        strncpy(ifr.ifr_name, which, IFNAMSIZ - 1);
    int tries;
    for (tries = 0; tries < 200; tries++) { /* 2 s at most */
        if ((!by_mac || find_by_mac(s, which, ifr.ifr_name)) && ioctl(s, SIOCGIFFLAGS, &ifr) == 0)
            break;
        usleep(10000);
    }
    if (tries == 200) {
        say("unik-init: no network interface %s", which);
    } else {
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
            say("unik-init: cannot bring %s up: %s", ifr.ifr_name, strerror(errno));
    }
    close(s);
}

/* Bring every interface but the loopback up, with no address, once WANT of them exist
 * (they may take a moment to appear; 2 s at most). */
static void links_up(int want)
{
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        say("unik-init: socket: %s", strerror(errno));
        return;
    }
    int found = 0;
    for (int tries = 0; tries < 200; tries++) { /* 2 s at most */
        struct if_nameindex *all = if_nameindex(), *p;
        found = 0;
        for (p = all; p && p->if_index; p++)
            found += strcmp(p->if_name, "lo") != 0;
        if (found >= want || tries == 199) {
            for (p = all; p && p->if_index; p++) {
                struct ifreq ifr;
                memset(&ifr, 0, sizeof ifr);
                strncpy(ifr.ifr_name, p->if_name, IFNAMSIZ - 1);
                if (strcmp(p->if_name, "lo") == 0 || ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
                    continue;
                ifr.ifr_flags |= IFF_UP;
                if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
                    say("unik-init: cannot bring %s up: %s", ifr.ifr_name, strerror(errno));
            }
            if (all)
                if_freenameindex(all);
            break;
        }
        if (all)
            if_freenameindex(all);
        usleep(10000);
    }
    if (found < want)
        say("unik-init: %d of %d network interfaces found", found, want);
    close(s);
}

static void woken(int signum)
{
    (void)signum;
}

/* Credit 32 bytes of the hardware RNG (virtio-rng: the host's randomness, private to this
 * guest) to the kernel's pool, so getrandom never blocks.  A read that takes more than two
 * seconds is given up (SIGALRM interrupts it); no device, nothing credited. */
static size_t seed_entropy(void)
{
    struct {
        struct rand_pool_info info;
        unsigned char buf[32];
    } seed;
    int rng = open("/dev/hwrng", O_RDONLY | O_CLOEXEC);
    if (rng < 0)
        return 0; /* no hardware RNG (Xen, or a monitor without virtio-rng) */
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = woken; /* no SA_RESTART: the alarm ends a stuck read with EINTR */
    sigaction(SIGALRM, &act, &old);
    alarm(2);
    size_t n = 0;
    while (n < sizeof seed.buf) {
        ssize_t got = read(rng, seed.buf + n, sizeof seed.buf - n);
        if (got <= 0)
            break;
        n += (size_t)got;
    }
    alarm(0);
    sigaction(SIGALRM, &old, NULL);
    close(rng);
    if (n < sizeof seed.buf) {
        say("unik-init: the hardware RNG gave %zu of %zu bytes: nothing credited", n, sizeof seed.buf);
        memset(&seed, 0, sizeof seed);
        return 0;
    }
    seed.info.entropy_count = (int)(n * 8);
    seed.info.buf_size = (int)n;
    int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        say("unik-init: cannot open /dev/urandom to seed it: %s", strerror(errno));
        memset(&seed, 0, sizeof seed);
        return 0;
    }
    int ok = ioctl(fd, RNDADDENTROPY, &seed) == 0;
    if (!ok)
        say("unik-init: cannot seed the entropy pool: %s", strerror(errno));
    close(fd);
    memset(&seed, 0, sizeof seed);
    return ok ? n : 0;
}

static char *next_word(char **p)
{
    while (**p == ' ' || **p == '\t')
        (*p)++;
    if (!**p)
        return NULL;
    char *w = *p;
    while (**p && **p != ' ' && **p != '\t')
        (*p)++;
    if (**p)
        *(*p)++ = '\0';
    return w;
}

static int read_config(void)
{
    static char text[65536];
    int fd = open(CONF, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        say("unik-init: cannot open " CONF ": %s", strerror(errno));
        return -1;
    }
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0) {
        say("unik-init: cannot read " CONF);
        return -1;
    }
    text[n] = '\0';
    for (char *line = text, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *p = line, *verb = next_word(&p);
        if (!verb || verb[0] == '#')
            continue;
        if (strcmp(verb, "mount") == 0) {
            char *type = next_word(&p), *dir = next_word(&p);
            if (type && dir)
                do_mount(type, dir);
        } else if (strcmp(verb, "module") == 0) {
            char *path = next_word(&p);
            if (path)
                load_module(path);
        } else if (strcmp(verb, "link") == 0) {
            char *ifname = next_word(&p);
            if (ifname)
                link_up(ifname);
        } else if (strcmp(verb, "links") == 0) {
            char *count = next_word(&p);
            if (count)
                links_up(atoi(count));
        } else if (strcmp(verb, "env") == 0) {
            char *kv = next_word(&p);
            if (kv && py_envc < MAX_ENV)
                py_env[py_envc++] = kv;
        } else if (strcmp(verb, "chdir") == 0) {
            char *dir = next_word(&p);
            if (dir && chdir(dir) != 0)
                say("unik-init: chdir %s: %s", dir, strerror(errno));
        } else if (strcmp(verb, "exec") == 0) {
            for (char *w; (w = next_word(&p)) && py_argc < MAX_ARGS;)
                py_argv[py_argc++] = w;
        } else {
            say("unik-init: " CONF ": unknown directive %s", verb);
        }
    }
    if (py_argc == 0) {
        say("unik-init: " CONF " has no exec line");
        return -1;
    }
    return 0;
}

/* The attributes of a generic-netlink message (or of a nested attribute): calls
 * found(type, payload, length) for each. */
static void each_attr(const char *p, size_t len, void (*found)(unsigned, const char *, size_t, void *), void *arg)
{
    while (len >= NLA_HDRLEN) {
        const struct nlattr *a = (const struct nlattr *)p;
        if (a->nla_len < NLA_HDRLEN || a->nla_len > len)
            return;
        found(a->nla_type & NLA_TYPE_MASK, p + NLA_HDRLEN, a->nla_len - NLA_HDRLEN, arg);
        size_t step = NLA_ALIGN(a->nla_len);
        if (step >= len)
            return;
        p += step;
        len -= step;
    }
}

struct group_search {
    const char *name;
    uint32_t id, found;
};

static void group_attr(unsigned type, const char *p, size_t len, void *arg)
{
    struct group_search *g = arg;
    if (type == CTRL_ATTR_MCAST_GRP_ID && len >= 4)
        memcpy(&g->id, p, 4);
    else if (type == CTRL_ATTR_MCAST_GRP_NAME && strnlen(p, len) < len && strcmp(p, g->name) == 0)
        g->found = 1;
}

static void group_entry(unsigned type, const char *p, size_t len, void *arg)
{
    struct group_search *g = arg, one = {g->name, 0, 0};
    (void)type;
    each_attr(p, len, group_attr, &one);
    if (one.found)
        *g = one;
}

static void family_attr(unsigned type, const char *p, size_t len, void *arg)
{
    if (type == CTRL_ATTR_MCAST_GROUPS)
        each_attr(p, len, group_entry, arg);
}

/* A socket on the kernel's ACPI event group (button presses), or -1 without ACPI. */
static int acpi_events(void)
{
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
    if (s < 0)
        return -1;
    static const char family[] = "acpi_event";
    struct {
        struct nlmsghdr n;
        struct genlmsghdr g;
        struct nlattr a;
        char name[sizeof family + 3];
    } req;
    memset(&req, 0, sizeof req);
    req.a.nla_type = CTRL_ATTR_FAMILY_NAME;
    req.a.nla_len = (unsigned short)(NLA_HDRLEN + sizeof family);
    memcpy(req.name, family, sizeof family);
    req.n.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN + NLA_ALIGN(req.a.nla_len));
    req.n.nlmsg_type = GENL_ID_CTRL;
    req.n.nlmsg_flags = NLM_F_REQUEST;
    req.n.nlmsg_seq = 1;
    req.g.cmd = CTRL_CMD_GETFAMILY;
    req.g.version = 1;
    static char reply[8192];
    struct group_search group = {"acpi_mc_group", 0, 0};
    if (send(s, &req, req.n.nlmsg_len, 0) < 0)
        goto fail;
    ssize_t n = recv(s, reply, sizeof reply, 0);
    const struct nlmsghdr *h = (const struct nlmsghdr *)reply;
    if (n < (ssize_t)NLMSG_HDRLEN || h->nlmsg_type != GENL_ID_CTRL || h->nlmsg_len > (size_t)n
        || h->nlmsg_len < NLMSG_LENGTH(GENL_HDRLEN))
        goto fail; /* an NLMSG_ERROR: the kernel has no ACPI event family */
    each_attr(reply + NLMSG_LENGTH(GENL_HDRLEN), h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN), family_attr, &group);
    if (!group.found || setsockopt(s, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group.id, sizeof group.id) != 0)
        goto fail;
    return s;
fail:
    close(s);
    return -1;
}

static void event_attr(unsigned type, const char *p, size_t len, void *arg)
{
    /* ACPI_GENL_ATTR_EVENT: struct acpi_genl_event, whose first field is
     * char device_class[20] ("button/power" for the power button). */
    static const char power[] = "button/power";
    if (type == 1 && len >= sizeof power && strncmp(p, power, sizeof power) == 0)
        *(int *)arg = 1;
}

/* Whether the pending ACPI events include a power-button press. */
static int power_button(int s)
{
    static char buf[8192];
    int pressed = 0;
    ssize_t n;
    while ((n = recv(s, buf, sizeof buf, MSG_DONTWAIT)) > 0) {
        size_t left = (size_t)n;
        const char *p = buf;
        while (left >= NLMSG_HDRLEN) {
            const struct nlmsghdr *h = (const struct nlmsghdr *)p;
            if (h->nlmsg_len < NLMSG_LENGTH(GENL_HDRLEN) || h->nlmsg_len > left)
                break;
            each_attr(p + NLMSG_LENGTH(GENL_HDRLEN), h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN), event_attr, &pressed);
            size_t step = NLMSG_ALIGN(h->nlmsg_len);
            if (step >= left)
                break;
            p += step;
            left -= step;
        }
    }
    return pressed;
}

static void finish(int status, int reboot_instead) __attribute__((noreturn));
static int status_on_console; /* unik_exit=poweroff: print the status, no isa-debug-exit */

static void finish(int status, int reboot_instead)
{
    /* isa-debug-exit makes QEMU exit with (value << 1) | 1, and QEMU's own errors exit
     * with 1: sending status + 1 keeps the two apart, for statuses 0 to 125. */
    if (status_on_console)
        say("unik-init: exit status %d", status);
    else if (status > 125)
        say("unik-init: exit status %d (reported to the host as 126)", status);
    tcdrain(1);
    tcdrain(2);
    sync();
    /* Under Xen a PV guest's port write would fault (no I/O privilege): not tried. */
    if (!status_on_console && ioperm(DEBUG_EXIT_PORT, 1, 1) == 0)
        outb((unsigned char)((status > 125 ? 126 : status) + 1), DEBUG_EXIT_PORT);
    /* Still here: no isa-debug-exit device (Firecracker, or QEMU without it). */
    reboot(reboot_instead ? LINUX_REBOOT_CMD_RESTART : LINUX_REBOOT_CMD_POWER_OFF);
    for (;;)
        pause();
}

static void nothing(int signum)
{
    (void)signum;
}

int main(int argc, char **argv)
{
    double started = uptime();
    if (getpid() != 1) {
        /* Run as /sbin/poweroff by the kernel (Xen's shutdown request): ask the init. */
        const char *base = strrchr(argv[0], '/');
        if (strcmp(base ? base + 1 : argv[0], "poweroff") == 0)
            return kill(1, SIGTERM) == 0 ? 0 : 1;
        say("unik-init: run as PID 1 by the kernel (or as /sbin/poweroff)");
        return 2;
    }
    console();
    const char *exit_mode = getenv("unik_exit");
    int reboot_instead = exit_mode && strcmp(exit_mode, "reboot") == 0;
    status_on_console = exit_mode && strcmp(exit_mode, "poweroff") == 0;
    if (getenv("unik_probe"))
        finish(42, reboot_instead);
    if (read_config() != 0)
        finish(125, reboot_instead);
    size_t seeded = seed_entropy(); /* after read_config: virtio_rng is loaded */
    const char *snapshot = getenv("unik_snapshot");
    if (snapshot && strcmp(snapshot, "1") == 0 && py_envc < MAX_ENV)
        py_env[py_envc++] = "UNIK_SNAPSHOT=1";
    /* Arguments after `--` on the kernel command line go to the program. */
    for (int i = 1; i < argc && py_argc < MAX_ARGS; i++)
        py_argv[py_argc++] = argv[i];
    py_argv[py_argc] = NULL;
    py_env[py_envc] = NULL;
    double up = uptime();
    say("unik-init: up at %.3f s (kernel %.3f s, init %.3f s), %d modules loaded, %zu seed bytes from the "
        "hardware RNG, starting %s", up, started, up - started, modules_loaded, seeded, py_argv[0]);

    /* Shutdown requests and the child's end arrive through a signalfd; handlers make
     * sure the kernel does not drop them (PID 1 never gets a signal left at SIG_DFL). */
    sigset_t mask;
    sigemptyset(&mask);
    int watched[] = {SIGCHLD, SIGTERM, SIGINT, SIGPWR};
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_handler = nothing;
    for (size_t i = 0; i < sizeof watched / sizeof watched[0]; i++) {
        sigaddset(&mask, watched[i]);
        sigaction(watched[i], &act, NULL);
    }
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    int acpi = acpi_events();

    pid_t child = fork();
    if (child < 0) {
        say("unik-init: fork: %s", strerror(errno));
        finish(125, reboot_instead);
    }
    if (child == 0) {
        sigprocmask(SIG_UNBLOCK, &mask, NULL);
        setsid();
        ioctl(0, TIOCSCTTY, 1);
        execve(py_argv[0], py_argv, py_env);
        say("unik-init: cannot run %s: %s", py_argv[0], strerror(errno));
        _exit(127);
    }
    /* PID 1 reaps every orphan until Python itself exits, and passes shutdown requests on. */
    int requests = 0;
    for (;;) {
        int wstatus;
        pid_t pid;
        while ((pid = waitpid(-1, &wstatus, WNOHANG)) > 0) {
            if (pid != child)
                continue;
            if (WIFEXITED(wstatus))
                finish(WEXITSTATUS(wstatus), reboot_instead);
            if (WIFSIGNALED(wstatus)) {
                say("unik-init: %s killed by signal %d", py_argv[0], WTERMSIG(wstatus));
                finish(128 + WTERMSIG(wstatus), reboot_instead);
            }
        }
        if (pid < 0 && errno != EINTR) {
            say("unik-init: wait: %s", strerror(errno));
            finish(125, reboot_instead);
        }
        struct pollfd fds[2] = {{sfd, POLLIN, 0}, {acpi, POLLIN, 0}};
        if (poll(fds, acpi >= 0 ? 2 : 1, sfd >= 0 ? -1 : 100) < 0 && errno != EINTR) {
            say("unik-init: poll: %s", strerror(errno));
            finish(125, reboot_instead);
        }
        const char *why = NULL;
        if (fds[0].revents & POLLIN) {
            struct signalfd_siginfo info;
            while (read(sfd, &info, sizeof info) == (ssize_t)sizeof info)
                if (info.ssi_signo != SIGCHLD)
                    why = "a shutdown request";
        }
        if (acpi >= 0 && (fds[1].revents & POLLIN) && power_button(acpi))
            why = "the power button";
        if (why) {
            /* The runtime takes a repeat a second or more later as "stop at once". */
            say("unik-init: %s: stopping %s%s", why, py_argv[0], requests++ ? " (again)" : "");
            kill(child, SIGTERM);
        }
    }
}
