/* t_fiber_tls: compiled thread-local variables (__thread) are per thread,
 * across every kind of park, in the program and in a library it links.
 *
 * Under greenld they are per fiber only with GREENLD_FIBER_TLS=1 (else the
 * fibers of a hub share them, greenld(7)): run without the variable, the
 * program re-executes itself with GREENLD_FIBER_TLS=1, so that it checks
 * per-thread TLS natively, under greenld and with one hub alike. Run with
 * GREENLD_FIBER_TLS=0 under greenld and one hub, it fails (the documented
 * default; tests/integration/test_diagnostics.sh checks that).
 *
 * 48 threads each write values of their own to the variables, park in one
 * of several ways (sleep, yield, contended mutex, condition variable) and
 * check the values and the variables' addresses after every park; halfway
 * 16 more threads start and must find the initial values: .tdata's
 * initialisers and .tbss's zeros, whatever the others wrote. Then a
 * thread forks while another keeps writing: the child has the forker's.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_support.h"

long *lib_tls_data_addr(void); /* tests/programs/lib/fiber_tls.c */
long *lib_tls_zero_addr(void);
enum { LIB_ZERO_LEN = 8, EXE_ZERO_LEN = 16 };

static __thread long exe_data = 777;          /* .tdata */
static __thread long exe_zero[EXE_ZERO_LEN];  /* .tbss */

enum { NFIRST = 48, NLATE = 16, ROUNDS = 40, NKINDS = 4 };

static pthread_mutex_t contended = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t cond_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static long cond_ticks;
static struct gate halfway; /* the first wave and main, when the late wave starts */

static long value(int idx, int round) { return 1000000L * (idx + 1) + round; }

static void check_initial(int idx)
{
    long *ld = lib_tls_data_addr(), *lz = lib_tls_zero_addr();
    CHECK(exe_data == 777, "thread %d starts with exe_data %ld, not its initialiser 777", idx, exe_data);
    CHECK(*ld == 4242, "thread %d starts with the library's lib_tls_data %ld, not its initialiser 4242", idx, *ld);
    for (int i = 0; i < EXE_ZERO_LEN; ++i)
        CHECK(exe_zero[i] == 0, "thread %d starts with exe_zero[%d] = %ld, not 0 (.tbss)", idx, i, exe_zero[i]);
    for (int i = 0; i < LIB_ZERO_LEN; ++i)
        CHECK(lz[i] == 0, "thread %d starts with the library's lib_tls_zero[%d] = %ld, not 0 (.tbss)", idx, i, lz[i]);
}

static void write_values(long v)
{
    long *ld = lib_tls_data_addr(), *lz = lib_tls_zero_addr();
    exe_data = v;
    *ld = v * 3;
    for (int i = 0; i < EXE_ZERO_LEN; ++i) exe_zero[i] = v + i;
    for (int i = 0; i < LIB_ZERO_LEN; ++i) lz[i] = v - i;
}

static void check_values(int idx, int round, long v, const char *after)
{
    long *ld = lib_tls_data_addr(), *lz = lib_tls_zero_addr();
    CHECK(exe_data == v, "thread %d round %d: exe_data after %s is %ld, expected %ld (another thread's?)", idx,
          round, after, exe_data, v);
    CHECK(*ld == v * 3, "thread %d round %d: the library's lib_tls_data after %s is %ld, expected %ld", idx, round,
          after, *ld, v * 3);
    for (int i = 0; i < EXE_ZERO_LEN; ++i)
        CHECK(exe_zero[i] == v + i, "thread %d round %d: exe_zero[%d] after %s is %ld, expected %ld", idx, round, i,
              after, exe_zero[i], v + i);
    for (int i = 0; i < LIB_ZERO_LEN; ++i)
        CHECK(lz[i] == v - i, "thread %d round %d: the library's lib_tls_zero[%d] after %s is %ld, expected %ld", idx,
              round, i, after, lz[i], v - i);
}

static const char *park(int kind)
{
    switch (kind) {
    case 0:
        CHECK_EQ(usleep(200), 0);
        return "usleep";
    case 1:
        for (int i = 0; i < 3; ++i) CHECK_EQ(sched_yield(), 0);
        return "sched_yield";
    case 2:
        CHECK_RC(pthread_mutex_lock(&contended), 0);
        CHECK_EQ(usleep(50), 0); /* held across a park: the others queue */
        CHECK_RC(pthread_mutex_unlock(&contended), 0);
        return "a contended mutex";
    default: {
        CHECK_RC(pthread_mutex_lock(&cond_mutex), 0);
        long seen = cond_ticks;
        struct timespec until = abs_after_ms(CLOCK_REALTIME, 2);
        while (cond_ticks == seen) {
            int rc = pthread_cond_timedwait(&cond, &cond_mutex, &until);
            if (rc == ETIMEDOUT) break;
            CHECK_RC(rc, 0);
        }
        cond_ticks++;
        CHECK_RC(pthread_cond_broadcast(&cond), 0);
        CHECK_RC(pthread_mutex_unlock(&cond_mutex), 0);
        return "a condition variable";
    }
    }
}

static void *worker(void *arg)
{
    const int idx = (int)(intptr_t)arg;
    check_initial(idx);
    long *const addrs[4] = {&exe_data, exe_zero, lib_tls_data_addr(), lib_tls_zero_addr()};
    for (int round = 0; round < ROUNDS; ++round) {
        const long v = value(idx, round);
        write_values(v);
        if (idx < NFIRST && round == ROUNDS / 2) gate_wait(&halfway);
        const char *after = park((round + idx) % NKINDS);
        check_values(idx, round, v, after);
        long *const now[4] = {&exe_data, exe_zero, lib_tls_data_addr(), lib_tls_zero_addr()};
        CHECK(memcmp(addrs, now, sizeof addrs) == 0, "thread %d round %d: a variable's address changed after %s",
              idx, round, after);
    }
    return NULL;
}

/* fork() from a thread that parked while another thread wrote its own
 * values: the child, whose only thread it becomes, has its values. */
static void *forker(void *arg)
{
    const int idx = (int)(intptr_t)arg;
    const long v = value(idx, 0);
    write_values(v);
    for (int i = 0; i < 5; ++i) park(1);
    check_values(idx, 0, v, "sched_yield before fork");
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        check_values(idx, 0, v, "fork, in the child");
        _exit(0);
    }
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the fork child found other values (status %#x)", status);
    check_values(idx, 0, v, "fork, in the parent");
    return NULL;
}

static void *writer(void *arg)
{
    const int idx = (int)(intptr_t)arg;
    for (int round = 0; round < 10; ++round) {
        write_values(value(idx, round));
        park(1);
        check_values(idx, round, value(idx, round), "sched_yield");
    }
    return NULL;
}

/* `t_fiber_tls futex`: a thread waits (1 ms, times out) on a futex word
 * that is a __thread variable: greenld warns that another thread's wake-up
 * written at that address could be lost (test_diagnostics.sh reads it). */
static __thread uint32_t tls_futex_word;

static void *futex_in_tls(void *arg)
{
    (void)arg;
    struct timespec ms = {0, 1000000};
    long rc = syscall(SYS_futex, &tls_futex_word, FUTEX_WAIT_PRIVATE, 0, &ms, NULL, 0);
    CHECK(rc == -1 && errno == ETIMEDOUT, "futex wait on a __thread word: rc %ld", rc);
    return NULL;
}

int main(int argc, char **argv)
{
    if (!getenv("GREENLD_FIBER_TLS")) {
        setenv("GREENLD_FIBER_TLS", "1", 1);
        execv("/proc/self/exe", argv);
        CHECK(0, "cannot re-execute itself with GREENLD_FIBER_TLS=1");
    }
    watchdog(50);
    if (argc > 1 && strcmp(argv[1], "futex") == 0) {
        join(spawn(futex_in_tls, NULL));
        puts("ok");
        return 0;
    }
    set_phase("main's own values");
    write_values(-5);
    gate_init(&halfway, NFIRST + 1);

    set_phase("the first wave");
    pthread_t threads[NFIRST + NLATE];
    for (int i = 0; i < NFIRST; ++i) threads[i] = spawn(worker, (void *)(intptr_t)i);
    gate_wait(&halfway);
    set_phase("the late wave, started while the first wave holds values of its own");
    for (int i = NFIRST; i < NFIRST + NLATE; ++i) threads[i] = spawn(worker, (void *)(intptr_t)i);
    for (int i = 0; i < NFIRST + NLATE; ++i) join(threads[i]);

    set_phase("fork from a thread while another writes its own values");
    pthread_t f = spawn(forker, (void *)(intptr_t)100), w = spawn(writer, (void *)(intptr_t)101);
    join(f);
    join(w);

    set_phase("main's own values, after the threads");
    check_values(-1, 0, -5, "the threads ran");
    gate_destroy(&halfway);
    puts("ok");
    return 0;
}
