/* forkloop: the floor the supervisors are compared with in bench/compare.py, the least a
 * program can do to start processes.
 *
 *   forkloop spawn N PROGRAM [ARGS...]
 *       fork+exec N copies of PROGRAM back to back, then wait for SIGTERM; on it, SIGKILL
 *       the copies, reap them and exit.
 *   forkloop direct N PROGRAM [ARGS...]
 *       N times: note CLOCK_MONOTONIC, fork+exec PROGRAM, give it 50 ms, SIGKILL and reap
 *       it; print each noted time (ns) on a line. PROGRAM reports its own start time
 *       (supervise-testapp --report-start), so the difference is fork+exec's latency.
 *   forkloop respawn N PROGRAM [ARGS...]
 *       the least a supervisor can do: start PROGRAM, and each time it dies, start it
 *       again at once (a blocking waitpid, then fork+exec), N times; when the copy after
 *       the N-th restart dies, exit. The respawn baseline: the same kill -9 as the
 *       supervisors get, measured the same way.
 *   forkloop serial SECONDS PROGRAM [ARGS...]
 *       run PROGRAM, wait for it, run it again, for SECONDS; print the number of runs and
 *       the CPU seconds this loop used (user + system, its own, not the children's).
 *
 * Built by compare.py with `cc -O2` into its scratch folder. Every loop is bounded.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static pid_t start(char **argv) {
    pid_t pid = fork();
    if (pid == 0) {
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: forkloop spawn|direct N PROGRAM [ARGS...] | serial SECONDS PROGRAM [ARGS...]\n");
        return 2;
    }
    if (strcmp(argv[1], "spawn") == 0) {
        long n = atol(argv[2]);
        if (n < 1 || n > 100000) return 2;
        pid_t *pids = calloc(n, sizeof(pid_t));
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigprocmask(SIG_BLOCK, &set, NULL);
        for (long i = 0; i < n; i++) pids[i] = start(argv + 3);
        int sig;
        sigwait(&set, &sig);
        for (long i = 0; i < n; i++)
            if (pids[i] > 0) kill(pids[i], SIGKILL);
        for (long i = 0; i < n; i++)
            if (pids[i] > 0) waitpid(pids[i], NULL, 0);
        return 0;
    }
    if (strcmp(argv[1], "direct") == 0) {
        long n = atol(argv[2]);
        if (n < 1 || n > 10000) return 2;
        for (long i = 0; i < n; i++) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            pid_t pid = start(argv + 3);
            if (pid < 0) return 1;
            printf("%lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
            struct timespec pause = {0, 50 * 1000 * 1000};
            nanosleep(&pause, NULL);
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
        return 0;
    }
    if (strcmp(argv[1], "respawn") == 0) {
        long n = atol(argv[2]);
        if (n < 1 || n > 10000) return 2;
        pid_t pid = start(argv + 3);
        for (long i = 0; pid > 0; i++) {
            if (waitpid(pid, NULL, 0) < 0) return 1;
            pid = i < n ? start(argv + 3) : 0;
        }
        return pid < 0;
    }
    if (strcmp(argv[1], "serial") == 0) {
        double seconds = atof(argv[2]);
        if (seconds <= 0 || seconds > 3600) return 2;
        double end = now() + seconds;
        long runs = 0;
        while (now() < end) {
            pid_t pid = start(argv + 3);
            if (pid < 0) break;
            waitpid(pid, NULL, 0);
            runs++;
        }
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("%ld %.3f\n", runs,
               ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
                   ru.ru_stime.tv_usec / 1e6);
        return 0;
    }
    return 2;
}
