/* Calls that arrive early: an ELF constructor of the program runs before
 * main (and, under LD_PRELOAD, after the shim's own constructors but before
 * anything of ours was used) and creates a thread that sleeps, reads a
 * pipe, locks a mutex and waits on a condition variable. The thread it
 * created must work and be joinable from main. */
#include "test_support.h"

static pthread_t g_early;
static int g_pipe[2];
static pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;
static int g_stage;
static int g_ctor_rc = -1;

static void *early_thread(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 20 * 1000000L};
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

__attribute__((constructor)) static void early(void)
{
    if (pipe(g_pipe) != 0) return;
    pthread_mutex_lock(&g_mutex);
    pthread_mutex_unlock(&g_mutex);
    g_ctor_rc = pthread_create(&g_early, NULL, early_thread, NULL);
    struct timespec ts = {0, 1000000L};
    nanosleep(&ts, NULL);
    if (write(g_pipe[1], "x", 1) != 1) g_ctor_rc = -2;
}

int main(void)
{
    watchdog(20);
    set_phase("the thread a constructor created");
    CHECK(g_ctor_rc == 0, "pthread_create in a constructor returned %d", g_ctor_rc);
    pthread_mutex_lock(&g_mutex);
    while (g_stage != 1) pthread_cond_wait(&g_cond, &g_mutex);
    g_stage = 2;
    pthread_cond_broadcast(&g_cond);
    pthread_mutex_unlock(&g_mutex);
    void *ret = join_within(g_early, 3000, "the constructor's thread");
    CHECK(ret == (void *)42, "the constructor's thread returned %p", ret);
    printf("t_early_calls: ok\n");
    return 0;
}
