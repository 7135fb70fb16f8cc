/* Programs linked against either version of glibc's condition variables:
 * pthread_cond_* exist at GLIBC_2.3.2 (the default) and at GLIBC_2.2.5 (the
 * pre-2.3.2 ABI: glibc's compat functions keep a pointer to a separately
 * allocated condvar in the first word). This program binds both sets, the
 * old one with .symver as a program linked in 2002 would, and checks each
 * works between threads: signal, broadcast, timed wait, while the other
 * threads keep running. Then the same through dlvsym() lookups of both
 * versions (as sanitizer runtimes and other interposers find them), and
 * that dlvsym of each version of a function finds it where dlsym finds
 * the default one: in libc natively, in the shim under greenld. */
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

enum { N_APIS = 4 };

static void *run_in_thread(void *arg)
{
    const struct cond_api *apis = arg;
    for (int i = 0; i < N_APIS; ++i) {
        exercise(&apis[i], 0);
        exercise(&apis[i], 1);
    }
    return NULL;
}

static void *vsym(const char *name, const char *version)
{
    void *p = dlvsym(RTLD_DEFAULT, name, version);
    CHECK(p != NULL, "dlvsym(%s, %s): %s", name, version, dlerror());
    return p;
}

static struct cond_api dlvsym_api(const char *label, const char *version)
{
    struct cond_api api = {label,
                           vsym("pthread_cond_init", version),
                           vsym("pthread_cond_destroy", version),
                           vsym("pthread_cond_wait", version),
                           vsym("pthread_cond_timedwait", version),
                           vsym("pthread_cond_signal", version),
                           vsym("pthread_cond_broadcast", version)};
    return api;
}

/* The object that defines p. */
static const char *object_of(void *p)
{
    Dl_info info;
    CHECK(dladdr(p, &info) != 0 && info.dli_fname, "dladdr(%p)", p);
    return info.dli_fname;
}

/* dlvsym(name, version) is found in the same object as dlsym(name). */
static void expect_with_default(const char *name, const char *version)
{
    void *def = dlsym(RTLD_DEFAULT, name);
    CHECK(def != NULL, "dlsym(%s)", name);
    const char *want = object_of(def), *got = object_of(vsym(name, version));
    CHECK(strcmp(want, got) == 0, "%s@%s is in %s, the default version in %s", name, version, got, want);
}

int main(void)
{
    watchdog(60);
    const struct cond_api apis[N_APIS] = {
        {"GLIBC_2.3.2", pthread_cond_init, pthread_cond_destroy, pthread_cond_wait, pthread_cond_timedwait,
         pthread_cond_signal, pthread_cond_broadcast},
        {"GLIBC_2.2.5", old_cond_init, old_cond_destroy, old_cond_wait, old_cond_timedwait, old_cond_signal,
         old_cond_broadcast},
        dlvsym_api("dlvsym GLIBC_2.3.2", "GLIBC_2.3.2"),
        dlvsym_api("dlvsym GLIBC_2.2.5", "GLIBC_2.2.5"),
    };
    ticker_start();
    /* From the main (native) thread, then from a converted thread. */
    for (int i = 0; i < N_APIS; ++i) {
        exercise(&apis[i], 0);
        exercise(&apis[i], 1);
    }
    join(spawn(run_in_thread, (void *)apis));

    set_phase("dlvsym finds every version where dlsym finds the default");
    expect_with_default("pthread_cond_wait", "GLIBC_2.2.5");
    expect_with_default("pthread_cond_wait", "GLIBC_2.3.2");
    expect_with_default("pthread_create", "GLIBC_2.2.5"); /* before libpthread merged into libc */
    expect_with_default("pthread_create", "GLIBC_2.34");
    expect_with_default("pthread_kill", "GLIBC_2.2.5");
    expect_with_default("sem_wait", "GLIBC_2.2.5");
    expect_with_default("sem_wait", "GLIBC_2.34");
    expect_with_default("clock_nanosleep", "GLIBC_2.2.5"); /* once librt's */
    expect_with_default("clock_nanosleep", "GLIBC_2.17");
    expect_with_default("recv", "GLIBC_2.2.5");
    expect_with_default("poll", "GLIBC_2.2.5");
    expect_with_default("pthread_getaffinity_np", "GLIBC_2.3.4");
    /* The pre-2.3.4 ABI without a size argument stays glibc's. */
    const char *libc = object_of(dlsym(RTLD_DEFAULT, "malloc_usable_size"));
    CHECK(strcmp(object_of(vsym("pthread_getaffinity_np", "GLIBC_2.3.3")), libc) == 0,
          "pthread_getaffinity_np@GLIBC_2.3.3 is not glibc's");
    ticker_stop();
    printf("t_versioned_symbols: ok\n");
    return 0;
}
