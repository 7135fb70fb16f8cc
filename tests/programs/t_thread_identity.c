/*
 * t_thread_identity — what a thread can learn about itself.
 *
 *  1. gettid() and syscall(SYS_gettid) agree in every thread, differ
 *     between live threads, and only the main thread's equals getpid()
 *     (a recursive lock or a log line keyed by thread id must not see two
 *     threads as one).
 *  2. pthread_getcpuclockid() of a created thread gives a clock that
 *     clock_gettime() reads, and that does not go backwards while the
 *     thread computes; of the thread itself, the same.
 */
#include "test_support.h"

#define NTHREADS 16

static pthread_barrier_t g_all_started;
static pid_t g_tids[NTHREADS];

static void *report_tid(void *arg)
{
    long i = (long)arg;
    pid_t t = gettid();
    CHECK(t == (pid_t)syscall(SYS_gettid), "thread %ld: gettid() %d != syscall(SYS_gettid) %ld", i, t,
          syscall(SYS_gettid));
    CHECK(t != getpid(), "thread %ld: gettid() == getpid() in a created thread", i);
    g_tids[i] = t;
    /* Every thread is alive at once while the ids are compared. */
    pthread_barrier_wait(&g_all_started);
    return NULL;
}

static atomic_int g_stop;

static void *compute(void *arg)
{
    (void)arg;
    volatile unsigned long x = 0;
    while (!atomic_load(&g_stop)) {
        for (int i = 0; i < 100000; i++) x += (unsigned long)i;
        sched_yield();
    }
    return NULL;
}

static double read_clock(clockid_t c)
{
    struct timespec ts;
    CHECK(clock_gettime(c, &ts) == 0, "clock_gettime(cpu clock %d)", (int)c);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(void)
{
    watchdog(30);
    set_phase("thread ids");
    CHECK(gettid() == getpid(), "main thread: gettid() %d != getpid() %d", gettid(), getpid());
    pthread_barrier_init(&g_all_started, NULL, NTHREADS + 1);
    pthread_t t[NTHREADS];
    for (long i = 0; i < NTHREADS; i++) t[i] = spawn(report_tid, (void *)i);
    pthread_barrier_wait(&g_all_started);
    for (int i = 0; i < NTHREADS; i++) join(t[i]);
    for (int i = 0; i < NTHREADS; i++)
        for (int j = i + 1; j < NTHREADS; j++)
            CHECK(g_tids[i] != g_tids[j], "threads %d and %d have the same id %d", i, j, g_tids[i]);

    set_phase("per-thread CPU clocks");
    pthread_t c = spawn(compute, NULL);
    clockid_t cid;
    int rc = pthread_getcpuclockid(c, &cid);
    CHECK(rc == 0, "pthread_getcpuclockid(created thread) returned %d", rc);
    double a = read_clock(cid);
    sleep_ms(50);
    double b = read_clock(cid);
    CHECK(b >= a, "the CPU clock of a computing thread went backwards: %f then %f", a, b);
    atomic_store(&g_stop, 1);
    join(c);
    rc = pthread_getcpuclockid(pthread_self(), &cid);
    CHECK(rc == 0, "pthread_getcpuclockid(self) returned %d", rc);
    read_clock(cid);
    puts("t_thread_identity: ok");
    return 0;
}
