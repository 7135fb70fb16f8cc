/* pthread_getattr_np(pthread_self()) + pthread_attr_getstack describe the
 * calling thread's own stack: a local variable lies inside it, the size is
 * what was asked for, and the guard size is reported. */
#include "test_support.h"

struct query {
    size_t want_size;
    int ok;
    void *want_lo; /* a stack given with pthread_attr_setstack: exactly it */
};

static void *query_own_stack(void *arg)
{
    struct query *q = arg;
    volatile char local = 1;
    pthread_attr_t attr;
    CHECK(pthread_getattr_np(pthread_self(), &attr) == 0, "pthread_getattr_np(self)");
    void *lo = NULL;
    size_t size = 0;
    CHECK(pthread_attr_getstack(&attr, &lo, &size) == 0, "pthread_attr_getstack");
    uintptr_t a = (uintptr_t)&local, l = (uintptr_t)lo;
    CHECK(a > l && a < l + size, "local %p outside the reported stack [%p, %p)", (void *)&local, lo,
          (void *)(l + size));
    if (q->want_size && !q->want_lo) CHECK(size >= q->want_size && size <= q->want_size + 65536, "stack size %zu, asked %zu",
                            size, q->want_size);
    if (q->want_lo) CHECK(lo == q->want_lo && size == q->want_size, "stack [%p, +%zu), given [%p, +%zu)", lo, size,
                          q->want_lo, q->want_size);
    size_t guard = 1;
    CHECK(pthread_attr_getguardsize(&attr, &guard) == 0, "getguardsize");
    int detach = -1;
    CHECK(pthread_attr_getdetachstate(&attr, &detach) == 0 && detach == PTHREAD_CREATE_JOINABLE,
          "detach state %d", detach);
    pthread_attr_destroy(&attr);
    (void)local;
    q->ok = 1;
    return NULL;
}

int main(void)
{
    watchdog(20);
    set_phase("default stack");
    struct query q = {0, 0, NULL};
    join(spawn(query_own_stack, &q));
    CHECK(q.ok, "query did not complete");

    set_phase("a 256 KiB stack from pthread_attr_setstacksize");
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    struct query q2 = {256 * 1024, 0, NULL};
    pthread_t t;
    CHECK(pthread_create(&t, &attr, query_own_stack, &q2) == 0, "pthread_create");
    join(t);
    CHECK(q2.ok, "query did not complete");

    set_phase("a stack given with pthread_attr_setstack");
    size_t sz = 512 * 1024;
    void *mem = NULL;
    CHECK(posix_memalign(&mem, 4096, sz) == 0, "posix_memalign");
    pthread_attr_t attr2;
    pthread_attr_init(&attr2);
    pthread_attr_setstack(&attr2, mem, sz);
    struct query q3 = {sz, 0, mem};
    CHECK(pthread_create(&t, &attr2, query_own_stack, &q3) == 0, "pthread_create");
    join(t);
    CHECK(q3.ok, "query did not complete");

    set_phase("the main thread");
    struct query q4 = {0, 0, NULL};
    query_own_stack(&q4);
    printf("t_stack_query: ok\n");
    return 0;
}
