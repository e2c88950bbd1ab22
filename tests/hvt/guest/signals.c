/* Signals under hvt's runtime, from an unmodified static glibc program: a handler
 * installed with sigaction runs when the monitor is sent SIGTERM, interrupting a sleep
 * (EINTR), and the interrupted code's registers and SSE values survive; raise() runs
 * a handler at once; a blocked signal waits for its unblocking.  With "default" as
 * argument no handler is installed: SIGTERM ends the program with status 143. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t got_term, got_usr1;

static void on_term(int sig) { got_term = sig; }
static void on_usr1(int sig, siginfo_t *info, void *uc)
{
    (void)uc;
    got_usr1 = info->si_signo == sig ? sig : -1;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "default") != 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_term;
        sigaction(SIGTERM, &sa, NULL);
        sa.sa_sigaction = on_usr1;
        sa.sa_flags = SA_SIGINFO;
        sigaction(SIGUSR1, &sa, NULL);
    }
    volatile double kept = 2.5;
    double x = kept * argc; /* held in an SSE register across the sleep */
    printf("ready\n");
    fflush(stdout);
    int interrupted = 0;
    for (int i = 0; i < 60 && !got_term; i++) {
        struct timespec ts = {10, 0};
        if (nanosleep(&ts, NULL) < 0 && errno == EINTR)
            interrupted++;
    }
    printf("SIGTERM handled: %d, sleep interrupted: %d, x = %.1f\n", got_term, interrupted, x);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    raise(SIGUSR1);
    printf("blocked: %d\n", got_usr1);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    printf("unblocked: %d\n", got_usr1);
    return 7;
}
