/* Programs linked against either version of glibc's condition variables:
 * pthread_cond_* exist at GLIBC_2.3.2 (the default) and at GLIBC_2.2.5 (the
 * pre-2.3.2 ABI: glibc's compat functions keep a pointer to a separately
 * allocated condvar in the first word). This program binds both sets, the
 * old one with .symver as a program linked in 2002 would, and checks each
 * works between threads: signal, broadcast, timed wait, while the other
 * threads keep running. Also dlvsym lookups of both versions. */
#include "test_support.h"

#include <limits.h>

__asm__(".symver old_cond_init, pthread_cond_init@GLIBC_2.2.5");
__asm__(".symver old_cond_destroy, pthread_cond_destroy@GLIBC_2.2.5");
__asm__(".symver old_cond_wait, pthread_cond_wait@GLIBC_2.2.5");
__asm__(".symver old_cond_timedwait, pthread_cond_timedwait@GLIBC_2.2.5");
__asm__(".symver old_cond_signal, pthread_cond_signal@GLIBC_2.2.5");
__asm__(".symver old_cond_broadcast, pthread_cond_broadcast@GLIBC_2.2.5");
int old_cond_init(pthread_cond_t *, const pthread_condattr_t *);
int old_cond_destroy(pthread_cond_t *);
int old_cond_wait(pthread_cond_t *, pthread_mutex_t *);
int old_cond_timedwait(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);
int old_cond_signal(pthread_cond_t *);
int old_cond_broadcast(pthread_cond_t *);

struct cond_api {
    const char *name;
    int (*init)(pthread_cond_t *, const pthread_condattr_t *);
    int (*destroy)(pthread_cond_t *);
    int (*wait)(pthread_cond_t *, pthread_mutex_t *);
    int (*timedwait)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);
    int (*signal)(pthread_cond_t *);
    int (*broadcast)(pthread_cond_t *);
};

static const struct cond_api *g_api;
static pthread_cond_t g_cond;
static pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;
static int g_generation, g_woken;

static void *waiter(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&g_mutex);
    int gen = g_generation;
    while (g_generation == gen) CHECK(g_api->wait(&g_cond, &g_mutex) == 0, "%s wait", g_api->name);
    g_woken++;
    pthread_mutex_unlock(&g_mutex);
    return NULL;
}

static void wait_woken(int n)
{
    int64_t end = now_ns() + 3000000000LL;
    for (;;) {
        pthread_mutex_lock(&g_mutex);
        int w = g_woken;
        pthread_mutex_unlock(&g_mutex);
        if (w >= n) return;
        CHECK(now_ns() < end, "%s: %d waiters woke, expected %d", g_api->name, w, n);
        sleep_ms(1);
    }
}

static void exercise(const struct cond_api *api, int static_init)
{
    char phase[96];
    g_api = api;
    snprintf(phase, sizeof phase, "%s condvar (%s)", api->name, static_init ? "static" : "init");
    set_phase(phase);
    if (static_init)
        memset(&g_cond, 0, sizeof g_cond); /* PTHREAD_COND_INITIALIZER of both ABIs */
    else
        CHECK(api->init(&g_cond, NULL) == 0, "%s init", api->name);
    g_woken = 0;

    long ticks = ticker_ticks();
    pthread_t t[3];
    for (int i = 0; i < 3; ++i) t[i] = spawn(waiter, NULL);
    sleep_ms(100);
    pthread_mutex_lock(&g_mutex);
    g_generation++;
    CHECK(api->signal(&g_cond) == 0, "%s signal", api->name);
    pthread_mutex_unlock(&g_mutex);
    wait_woken(1);
    pthread_mutex_lock(&g_mutex);
    CHECK(api->broadcast(&g_cond) == 0, "%s broadcast", api->name);
    pthread_mutex_unlock(&g_mutex);
    wait_woken(3);
    for (int i = 0; i < 3; ++i) join_within(t[i], 2000, "waiter");
    ticker_expect(ticks, 30, "threads waiting on the condvar");

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 50000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_mutex_lock(&g_mutex);
    int rc = api->timedwait(&g_cond, &g_mutex, &ts);
    pthread_mutex_unlock(&g_mutex);
    CHECK(rc == ETIMEDOUT, "%s timedwait returned %d", api->name, rc);
    CHECK(api->destroy(&g_cond) == 0, "%s destroy", api->name);
}

static void *run_in_thread(void *arg)
{
    const struct cond_api *apis = arg;
    for (int i = 0; i < 2; ++i) {
        exercise(&apis[i], 0);
        exercise(&apis[i], 1);
    }
    return NULL;
}

int main(void)
{
    watchdog(60);
    const struct cond_api apis[2] = {
        {"GLIBC_2.3.2", pthread_cond_init, pthread_cond_destroy, pthread_cond_wait, pthread_cond_timedwait,
         pthread_cond_signal, pthread_cond_broadcast},
        {"GLIBC_2.2.5", old_cond_init, old_cond_destroy, old_cond_wait, old_cond_timedwait, old_cond_signal,
         old_cond_broadcast},
    };
    ticker_start();
    /* From the main (native) thread, then from a converted thread. */
    for (int i = 0; i < 2; ++i) {
        exercise(&apis[i], 0);
        exercise(&apis[i], 1);
    }
    join(spawn(run_in_thread, (void *)apis));

    set_phase("dlvsym finds both versions");
    CHECK(dlvsym(RTLD_DEFAULT, "pthread_cond_wait", "GLIBC_2.3.2") != NULL, "dlvsym GLIBC_2.3.2");
    CHECK(dlvsym(RTLD_DEFAULT, "pthread_cond_wait", "GLIBC_2.2.5") != NULL, "dlvsym GLIBC_2.2.5");
    ticker_stop();
    printf("t_versioned_symbols: ok\n");
    return 0;
}
