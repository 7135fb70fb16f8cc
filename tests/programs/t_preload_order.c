/* Calls that arrive before the shim's constructors ran, or from inside the
 * loader:
 * - a library preloaded next to libgreenld.so whose constructor starts a
 *   thread that sleeps, reads a pipe, locks and waits before main runs
 *   (tests/programs/lib/early_ctor.c). glibc runs the constructors of
 *   LD_PRELOAD=libgreenld.so:early.so in the order early, greenld: so the
 *   program re-runs itself with the library after, then before, the shim
 *   (natively: with the library alone);
 * - an IFUNC resolver of this program, which the loader calls while it
 *   relocates the program, before any constructor: it takes a mutex, reads
 *   the clock, sleeps and creates a pipe. */
#include "test_support.h"

#include <libgen.h>
#include <sys/wait.h>
#include <limits.h>

static pthread_mutex_t g_resolver_mutex = PTHREAD_MUTEX_INITIALIZER;
static int g_resolver_ok = -1;

static int answer_fast(void) { return 42; }

typedef int answer_fn(void);

/* Runs inside the loader (relocation of this executable). */
static answer_fn *resolve_answer(void)
{
    int ok = 1;
    struct timespec t0, t1, pause = {0, 1000000L};
    ok &= pthread_mutex_lock(&g_resolver_mutex) == 0;
    ok &= clock_gettime(CLOCK_MONOTONIC, &t0) == 0;
    ok &= nanosleep(&pause, NULL) == 0;
    ok &= clock_gettime(CLOCK_MONOTONIC, &t1) == 0;
    ok &= (t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec) >= 1000000L;
    int p[2];
    if (pipe(p) == 0) {
        char c = 0;
        ok &= write(p[1], "r", 1) == 1 && read(p[0], &c, 1) == 1 && c == 'r';
        close(p[0]);
        close(p[1]);
    } else {
        ok = 0;
    }
    ok &= pthread_mutex_unlock(&g_resolver_mutex) == 0;
    g_resolver_ok = ok;
    return answer_fast;
}

int answer(void) __attribute__((ifunc("resolve_answer")));

static void check_early_library(const char *order)
{
    set_phase(order);
    int (*report)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "early_ctor_report");
    int (*was_fiber)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "early_ctor_was_fiber");
    CHECK(report && was_fiber, "the early library is not loaded");
    int r = report();
    CHECK(r == 0, "the constructor's thread failed at step %d", r);
    CHECK(was_fiber() == is_shim(), "the constructor's thread was%s a fiber", was_fiber() ? "" : " not");
}

int main(int argc, char **argv)
{
    watchdog(30);
    set_phase("IFUNC resolver");
    CHECK(g_resolver_ok == 1, "calls from the IFUNC resolver failed (%d)", g_resolver_ok);
    CHECK(answer() == 42, "the IFUNC resolved to the wrong function");
    if (argc > 1) { /* re-run with the library preloaded */
        check_early_library(argv[1]);
        printf("t_preload_order (%s): ok\n", argv[1]);
        return 0;
    }

    char exe[PATH_MAX], lib[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    CHECK(n > 0, "readlink /proc/self/exe");
    exe[n] = 0;
    snprintf(lib, sizeof lib, "%s/lib/libearly_ctor.so", dirname(strdup(exe)));
    CHECK(access(lib, R_OK) == 0, "%s", lib);

    const char *shim = getenv("LD_PRELOAD");
    const char *orders[2] = {"library after the shim", "library before the shim"};
    int runs = is_shim() && shim && *shim ? 2 : 1;
    for (int i = 0; i < runs; ++i) {
        char preload[2 * PATH_MAX + 64];
        if (runs == 1)
            snprintf(preload, sizeof preload, "%s", lib);
        else if (i == 0)
            snprintf(preload, sizeof preload, "%s:%s", shim, lib); /* early's constructor runs first */
        else
            snprintf(preload, sizeof preload, "%s:%s", lib, shim);
        set_phase(orders[i]);
        pid_t pid = fork();
        CHECK(pid >= 0, "fork");
        if (pid == 0) {
            setenv("LD_PRELOAD", preload, 1);
            execl(exe, exe, runs == 1 ? "library preloaded" : orders[i], (char *)NULL);
            _exit(127);
        }
        int status = 0;
        CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: status %#x", preload, status);
    }
    printf("t_preload_order: ok\n");
    return 0;
}
