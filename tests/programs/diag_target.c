/* diag_target — situations for the monitor's reports, driven by
 * tests/integration/test_diagnostics.sh (not a t_* program: what it checks
 * is the shim's stderr, not libc semantics).
 *
 *   diag_target spin      a thread computes for 1.5 s without yielding
 *                         (spin_without_yielding)
 *   diag_target nap       a thread calls usleep(1.5 s); run with
 *                         GREENLD_PATCH lacking "time", it blocks its hub
 *                         (nap_natively)
 *   diag_target dump SIG  sets SIG to SIG_DFL; four threads wait (pipe read, a
 *                         join of that reader, sleep, a mutex held by main),
 *                         then the process sends itself SIG (0: none)
 *   diag_target deadlock  two threads wait on semaphores nobody posts and
 *                         main joins them; after 3 s a SIGALRM handler posts
 *                         both, and the program exits 0
 *   diag_target rtmax     a thread raises SIGRTMAX, which the program handles
 *                         (the monitor uses that signal too)
 * Every mode exits 0 on its own within a few seconds.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static volatile unsigned long g_sink;

__attribute__((noinline)) static void spin_without_yielding(double seconds)
{
    double until = now() + seconds;
    unsigned long x = 1;
    while (now() < until)
        for (int i = 0; i < 10000; ++i) x = x * 6364136223846793005ul + 1442695040888963407ul;
    g_sink = x;
}

static void *spinner(void *arg)
{
    (void)arg;
    spin_without_yielding(1.5);
    return NULL;
}

__attribute__((noinline)) static void nap_natively(void)
{
    usleep(1500000);
    __asm__ volatile("" ::: "memory");  /* not a tail call: keep this frame */
}

static void *napper(void *arg)
{
    (void)arg;
    nap_natively();
    return NULL;
}

static int g_pipe[2];
static pthread_mutex_t g_held = PTHREAD_MUTEX_INITIALIZER;

__attribute__((noinline)) static void *read_the_pipe(void *arg)
{
    (void)arg;
    char c;
    if (read(g_pipe[0], &c, 1) != 1) abort();
    return NULL;
}

static pthread_t g_reader;

__attribute__((noinline)) static void *join_the_reader(void *arg)
{
    (void)arg;
    pthread_join(g_reader, NULL);
    return NULL;
}

__attribute__((noinline)) static void *sleep_a_while(void *arg)
{
    (void)arg;
    usleep(1500000);
    return NULL;
}

__attribute__((noinline)) static void *lock_the_held_mutex(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&g_held);
    pthread_mutex_unlock(&g_held);
    return NULL;
}

static sem_t g_sem[2];

__attribute__((noinline)) static void *wait_forever(void *arg)
{
    int i = (int)(long)arg;
    while (sem_wait(&g_sem[i]) != 0) {}
    return NULL;
}

static void on_alarm(int sig)
{
    (void)sig;
    sem_post(&g_sem[0]);
    sem_post(&g_sem[1]);
}

static volatile sig_atomic_t g_rtmax_handled;

static void on_rtmax(int sig)
{
    (void)sig;
    g_rtmax_handled = 1;
}

static void *raise_rtmax(void *arg)
{
    (void)arg;
    raise(SIGRTMAX);
    if (!g_rtmax_handled) return NULL;
    /* And process-directed: whichever thread the kernel picks. */
    g_rtmax_handled = 0;
    kill(getpid(), SIGRTMAX);
    for (int i = 0; i < 100 && !g_rtmax_handled; ++i) usleep(10000);
    return NULL;
}

static void run(void *(*fn)(void *), int n, void **args)
{
    pthread_t t[4];
    for (int i = 0; i < n; ++i)
        if (pthread_create(&t[i], NULL, fn, args ? args[i] : NULL) != 0) abort();
    for (int i = 0; i < n; ++i) pthread_join(t[i], NULL);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "spin") == 0) {
        run(spinner, 1, NULL);
    } else if (argc >= 2 && strcmp(argv[1], "nap") == 0) {
        run(napper, 1, NULL);
    } else if (argc >= 3 && strcmp(argv[1], "dump") == 0) {
        int sig = atoi(argv[2]);
        /* As daemons do at startup: the shim keeps its dump signal anyway. */
        if (sig) signal(sig, SIG_DFL);
        if (pipe(g_pipe) != 0) abort();
        pthread_mutex_lock(&g_held);
        pthread_t t[3];
        pthread_create(&g_reader, NULL, read_the_pipe, NULL);
        pthread_create(&t[0], NULL, join_the_reader, NULL);
        pthread_create(&t[1], NULL, sleep_a_while, NULL);
        pthread_create(&t[2], NULL, lock_the_held_mutex, NULL);
        usleep(300000);
        kill(getpid(), sig);
        usleep(500000);
        pthread_mutex_unlock(&g_held);
        if (write(g_pipe[1], "x", 1) != 1) abort();
        for (int i = 0; i < 3; ++i) pthread_join(t[i], NULL);
    } else if (argc >= 2 && strcmp(argv[1], "deadlock") == 0) {
        sem_init(&g_sem[0], 0, 0);
        sem_init(&g_sem[1], 0, 0);
        signal(SIGALRM, on_alarm);
        alarm(3);
        void *args[2] = {(void *)0L, (void *)1L};
        run(wait_forever, 2, args);
    } else if (argc >= 2 && strcmp(argv[1], "rtmax") == 0) {
        signal(SIGRTMAX, on_rtmax);
        run(raise_rtmax, 1, NULL);
        if (!g_rtmax_handled) {
            fprintf(stderr, "the SIGRTMAX handler did not run\n");
            return 1;
        }
    } else {
        fprintf(stderr, "usage: diag_target spin|nap|dump SIG|deadlock|rtmax\n");
        return 2;
    }
    puts("done");
    return 0;
}
