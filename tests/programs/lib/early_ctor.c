/* A library preloaded before (or after) libgreenld.so, as a program's own
 * LD_PRELOAD list may put one: its constructor runs before the shim's own
 * constructors when it comes first, and starts a thread that sleeps, reads
 * a pipe, takes a mutex and waits on a condition variable before main runs.
 * t_preload_order reads the outcome through early_ctor_report(). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

static pthread_t g_thread;
static int g_pipe[2] = {-1, -1};
static pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;
static int g_stage, g_ctor_error, g_was_fiber = -1;

static void *early_thread(void *arg)
{
    (void)arg;
    /* Under the shim, a thread is a fiber whenever it was created. */
    int (*is_fiber)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "greenld_is_fiber");
    g_was_fiber = is_fiber ? is_fiber() : 0;
    struct timespec ts = {0, 10 * 1000000L};
    nanosleep(&ts, NULL);
    char c = 0;
    if (read(g_pipe[0], &c, 1) != 1 || c != 'x') return (void *)1;
    pthread_mutex_lock(&g_mutex);
    g_stage = 1;
    pthread_cond_broadcast(&g_cond);
    while (g_stage != 2) pthread_cond_wait(&g_cond, &g_mutex);
    pthread_mutex_unlock(&g_mutex);
    return (void *)42;
}

__attribute__((constructor)) static void early_ctor(void)
{
    if (pipe(g_pipe) != 0) {
        g_ctor_error = 1;
        return;
    }
    if (pthread_create(&g_thread, NULL, early_thread, NULL) != 0) {
        g_ctor_error = 2;
        return;
    }
    struct timespec ts = {0, 1000000L};
    nanosleep(&ts, NULL);
    if (write(g_pipe[1], "x", 1) != 1) g_ctor_error = 3;
}

/* 0 once the thread the constructor started has woken main and been
 * released and joined with its result; else a code naming the step. */
__attribute__((visibility("default"))) int early_ctor_report(void)
{
    if (g_ctor_error) return 10 + g_ctor_error;
    pthread_mutex_lock(&g_mutex);
    while (g_stage != 1) pthread_cond_wait(&g_cond, &g_mutex);
    g_stage = 2;
    pthread_cond_broadcast(&g_cond);
    pthread_mutex_unlock(&g_mutex);
    void *result = NULL;
    if (pthread_join(g_thread, &result) != 0) return 20;
    return result == (void *)42 ? 0 : 30;
}

/* 1 if the constructor's thread ran as a fiber of the shim, 0 if not. */
__attribute__((visibility("default"))) int early_ctor_was_fiber(void)
{
    return g_was_fiber;
}
