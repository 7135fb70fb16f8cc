/* t_tsd_native — pthread keys in threads that are not fibers: the main
 * thread, and a thread made by glibc's own pthread_create (as jemalloc
 * makes its background threads, through dlsym). Checked: the first
 * pthread_setspecific of a key below 32 and pthread_getspecific allocate
 * nothing (a malloc implementation calls them while it boots: an
 * allocation re-enters it; jemalloc then registered its fork handlers
 * twice and the next fork deadlocked), values are per thread, and the
 * key's destructor runs when such a thread exits. This program's own
 * malloc family counts the calls. Passes natively and under greenld. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

/* volatile: the calls in between reach our malloc through libc and the shim. */
static _Thread_local volatile int t_counting;
static _Thread_local volatile int t_allocations;

void *malloc(size_t n) { t_allocations += t_counting; return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { t_allocations += t_counting; return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { t_allocations += t_counting; return __libc_realloc(p, n); }
void *memalign(size_t a, size_t n) { t_allocations += t_counting; return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { t_allocations += t_counting; return __libc_memalign(a, n); }
int posix_memalign(void **out, size_t a, size_t n)
{
    t_allocations += t_counting;
    void *p = __libc_memalign(a, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
void free(void *p) { __libc_free(p); }

static pthread_key_t g_key;
static atomic_int g_destroyed;
static int g_values[2];

static void destroy(void *v)
{
    CHECK(v == &g_values[1], "destructor got %p, expected the native thread's value %p", v, (void *)&g_values[1]);
    atomic_fetch_add(&g_destroyed, 1);
}

/* Sets and reads the key with the allocation counter on. */
static void set_without_allocating(int *value, const char *who)
{
    t_allocations = 0;
    t_counting = 1;
    void *before = pthread_getspecific(g_key);
    int rc = pthread_setspecific(g_key, value);
    void *after = pthread_getspecific(g_key);
    t_counting = 0;
    CHECK_RC(rc, 0);
    CHECK(before == NULL, "%s: a fresh thread's value is %p, not NULL", who, before);
    CHECK(after == value, "%s: read back %p, set %p", who, after, (void *)value);
    CHECK(t_allocations == 0, "%s: pthread_getspecific/setspecific allocated %d times", who, t_allocations);
}

static void *native_thread(void *arg)
{
    (void)arg;
    set_without_allocating(&g_values[1], "glibc-created thread");
    return NULL;
}

int main(void)
{
    watchdog(20);
    set_phase("create a key with a destructor");
    CHECK_RC(pthread_key_create(&g_key, destroy), 0);
    CHECK(g_key < 32, "key %u", (unsigned)g_key);

    set_phase("main thread: first set and get allocate nothing");
    set_without_allocating(&g_values[0], "main thread");

    set_phase("a thread made by glibc's own pthread_create");
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    CHECK(libc != NULL, "dlopen libc.so.6: %s", dlerror());
    int (*libc_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *) =
        (int (*)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *))dlsym(libc, "pthread_create");
    int (*libc_join)(pthread_t, void **) = (int (*)(pthread_t, void **))dlsym(libc, "pthread_join");
    CHECK(libc_create && libc_join, "dlsym pthread_create/pthread_join in libc");
    pthread_t t;
    CHECK_RC(libc_create(&t, NULL, native_thread, NULL), 0);
    CHECK_RC(libc_join(t, NULL), 0);
    set_phase("the native thread's exit ran its key destructor, once");
    CHECK_EQ(atomic_load(&g_destroyed), 1);
    CHECK(pthread_getspecific(g_key) == &g_values[0], "main thread's value changed");

    set_phase("a created thread (a fiber under greenld) still runs its destructor");
    CHECK_RC(pthread_create(&t, NULL, native_thread, NULL), 0);
    join(t);
    CHECK_EQ(atomic_load(&g_destroyed), 2);
    printf("t_tsd_native: ok\n");
    return 0;
}
