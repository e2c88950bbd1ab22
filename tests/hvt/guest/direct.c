/* libc's system calls served by the runtime without a trap (hvt/direct.c): results and
 * errno as Linux gives them, and a stop signal still delivered to a guest that makes
 * only direct calls.  Argument "loop": print "looping" and read the archive's file until
 * SIGTERM's handler ran (bounded), then exit 0. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t stopped;
static void on_term(int sig) { stopped = sig; }

int main(int argc, char **argv)
{
    char buf[64];
    int ok = 1;
    for (int i = 0; i < 1000; i++) { /* what a served request does with a file of the store */
        struct stat st;
        int fd = open("/etc/motd", O_RDONLY | O_CLOEXEC);
        ok &= fd >= 0 && fstat(fd, &st) == 0 && st.st_size == 17 && stat("/etc/motd", &st) == 0;
        ok &= lseek(fd, 5, SEEK_SET) == 5 && read(fd, buf, sizeof buf) == 12 && close(fd) == 0;
    }
    printf("1000 opens, stats, seeks, reads and closes: %s\n", ok ? "ok" : "wrong");
    errno = 0;
    int missing = open("/etc/none", O_RDONLY);
    printf("open of a missing file: %d %s\n", missing, strerror(errno));
    errno = 0;
    ssize_t closed = read(77, buf, 1);
    printf("read of a closed descriptor: %zd %s\n", closed, strerror(errno));
    printf("isatty(1): %d, getpid: %d\n", isatty(1), getpid());
    struct sigaction sa = {0}, old;
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL); /* setting one traps: glibc's own, with its restorer */
    int seen = sigaction(SIGTERM, NULL, &old) == 0 && old.sa_handler == on_term
               && (old.sa_flags & 0x04000000 /* SA_RESTORER, glibc's */) && old.sa_restorer != NULL;
    int dfl = sigaction(SIGUSR1, NULL, &old) == 0 && old.sa_handler == SIG_DFL;
    errno = 0;
    int own = sigaction(32, NULL, &old) == -1 && errno == EINVAL;
    errno = 0;
    int bad = sigaction(65, NULL, &old) == -1 && errno == EINVAL;
    printf("sigaction's queries: %s %s %s %s\n", seen ? "ok" : "wrong", dfl ? "ok" : "wrong", own ? "ok" : "wrong",
           bad ? "ok" : "wrong");
    signal(SIGTERM, SIG_DFL);
    fflush(stdout);
    if (argc > 1 && strcmp(argv[1], "loop") == 0) {
        signal(SIGTERM, on_term);
        printf("looping\n");
        fflush(stdout); /* a write: the last trap-free call before the loop */
        int fd = open("/etc/motd", O_RDONLY);
        for (long i = 0; !stopped && i < 200000000L; i++)
            pread(fd, buf, 4, 0);
        printf("SIGTERM %s during direct calls\n", stopped == SIGTERM ? "delivered" : "never delivered");
    }
    return 0;
}
