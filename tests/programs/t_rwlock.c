/* t_rwlock: pthread read-write locks keep their POSIX/glibc semantics.
 *
 * Exact counters with 8 writers, 4 readers and the native main thread, for
 * statically initialised, default and writer-preferring locks (readers check
 * they never see a half-done write); readers really share the lock; writer
 * preference (a waiting writer holds back new readers, and lets them in when
 * it gives up) against the default reader preference; EDEADLK, EBUSY and
 * EINVAL as glibc returns them; timed read and write locks on both clocks;
 * the native main thread and a created thread blocking on each other; and a
 * process-shared lock (left to glibc).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "test_support.h"

static void init_kind(pthread_rwlock_t *l, int kind) {
    pthread_rwlockattr_t a;
    CHECK_RC(pthread_rwlockattr_init(&a), 0);
    CHECK_RC(pthread_rwlockattr_setkind_np(&a, kind), 0);
    CHECK_RC(pthread_rwlock_init(l, &a), 0);
    CHECK_RC(pthread_rwlockattr_destroy(&a), 0);
}

/* Waits (up to 5 s) until `cond` holds, sleeping 1 ms between looks so that
 * the threads it waits for run even on a single hub. */
#define WAIT_UNTIL(cond, ...)                                                   \
    do {                                                                        \
        int64_t deadline_ = now_ns() + 5000000000LL;             \
        while (!(cond)) {                                                       \
            CHECK(now_ns() < deadline_, __VA_ARGS__);            \
            usleep(1000);                                                       \
        }                                                                       \
    } while (0)

/* ---- exact counters under contention */

enum { WRITERS = 8, READERS = 4, WRITE_ITERS = 20000, READ_ITERS = 20000 };

struct counter {
    pthread_rwlock_t *l;
    long a, b; /* a writer bumps both; a reader must never see them differ */
};

static void *count_writer(void *arg) {
    struct counter *c = arg;
    for (int i = 0; i < WRITE_ITERS; ++i) {
        CHECK_RC(pthread_rwlock_wrlock(c->l), 0);
        long v = c->a;
        __asm__ volatile("" ::: "memory"); /* widen the window a lost update needs */
        c->a = v + 1;
        __asm__ volatile("" ::: "memory");
        c->b = c->b + 1;
        CHECK_RC(pthread_rwlock_unlock(c->l), 0);
    }
    return NULL;
}

static void *count_reader(void *arg) {
    struct counter *c = arg;
    for (int i = 0; i < READ_ITERS; ++i) {
        /* Every third read uses tryrdlock, falling back to rdlock. */
        if (i % 3 != 0 || pthread_rwlock_tryrdlock(c->l) != 0) CHECK_RC(pthread_rwlock_rdlock(c->l), 0);
        long a = c->a;
        __asm__ volatile("" ::: "memory");
        long b = c->b;
        CHECK(a == b, "a reader saw a half-done write: a=%ld b=%ld", a, b);
        CHECK_RC(pthread_rwlock_unlock(c->l), 0);
    }
    return NULL;
}

static void count_with(pthread_rwlock_t *l, const char *what) {
    struct counter c = {l, 0, 0};
    pthread_t w[WRITERS], r[READERS];
    for (int i = 0; i < READERS; ++i) r[i] = spawn(count_reader, &c);
    for (int i = 0; i < WRITERS; ++i) w[i] = spawn(count_writer, &c);
    /* The native main thread writes too. */
    count_writer(&c);
    for (int i = 0; i < WRITERS; ++i) join(w[i]);
    for (int i = 0; i < READERS; ++i) join(r[i]);
    const long want = (long)(WRITERS + 1) * WRITE_ITERS;
    CHECK(c.a == want && c.b == want, "%s: counters %ld/%ld, expected %ld", what, c.a, c.b, want);
}

static pthread_rwlock_t static_rwlock = PTHREAD_RWLOCK_INITIALIZER;
static pthread_rwlock_t static_writer_pref = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;

static void test_counting(void) {
    count_with(&static_rwlock, "PTHREAD_RWLOCK_INITIALIZER");
    count_with(&static_writer_pref, "PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP");
    pthread_rwlock_t l;
    CHECK_RC(pthread_rwlock_init(&l, NULL), 0);
    count_with(&l, "pthread_rwlock_init(NULL)");
    CHECK_RC(pthread_rwlock_destroy(&l), 0);
    init_kind(&l, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    count_with(&l, "PREFER_WRITER_NONRECURSIVE_NP");
    CHECK_RC(pthread_rwlock_destroy(&l), 0);
}

/* ---- readers share */

enum { SHARING_READERS = 8 };

struct sharing {
    pthread_rwlock_t *l;
    atomic_int inside;
};

static void *sharing_reader(void *arg) {
    struct sharing *s = arg;
    CHECK_RC(pthread_rwlock_rdlock(s->l), 0);
    atomic_fetch_add(&s->inside, 1);
    /* Everyone holds the read lock at once, or this never ends. */
    WAIT_UNTIL(atomic_load(&s->inside) == SHARING_READERS + 1, "only %d of %d readers got in together",
               atomic_load(&s->inside), SHARING_READERS + 1);
    CHECK_RC(pthread_rwlock_unlock(s->l), 0);
    return NULL;
}

static void test_readers_share(void) {
    pthread_rwlock_t l = PTHREAD_RWLOCK_INITIALIZER;
    struct sharing s = {&l, 0};
    pthread_t t[SHARING_READERS];
    for (int i = 0; i < SHARING_READERS; ++i) t[i] = spawn(sharing_reader, &s);
    sharing_reader(&s); /* the native main thread reads too */
    for (int i = 0; i < SHARING_READERS; ++i) join(t[i]);
    /* All left: a writer gets in. */
    CHECK_RC(pthread_rwlock_trywrlock(&l), 0);
    CHECK_RC(pthread_rwlock_unlock(&l), 0);
}

/* ---- writer preference */

struct preference {
    pthread_rwlock_t *l;
    atomic_int next;                /* order of acquisition */
    atomic_int writer_at, reader_at; /* 1-based positions; 0: not yet */
    int writer_timeout_ms;          /* 0: the writer blocks */
    atomic_int writer_rc;
};

static void *preference_writer(void *arg) {
    struct preference *p = arg;
    int rc;
    if (p->writer_timeout_ms) {
        struct timespec abs = abs_after_ms(CLOCK_MONOTONIC, p->writer_timeout_ms);
        rc = pthread_rwlock_clockwrlock(p->l, CLOCK_MONOTONIC, &abs);
    } else {
        rc = pthread_rwlock_wrlock(p->l);
    }
    atomic_store(&p->writer_rc, rc);
    if (rc != 0) return NULL;
    atomic_store(&p->writer_at, atomic_fetch_add(&p->next, 1) + 1);
    usleep(20 * 1000);
    CHECK_RC(pthread_rwlock_unlock(p->l), 0);
    return NULL;
}

static void *preference_reader(void *arg) {
    struct preference *p = arg;
    CHECK_RC(pthread_rwlock_rdlock(p->l), 0);
    atomic_store(&p->reader_at, atomic_fetch_add(&p->next, 1) + 1);
    CHECK_RC(pthread_rwlock_unlock(p->l), 0);
    return NULL;
}

static void *tryrdlock_expect_busy(void *arg) {
    CHECK_RC(pthread_rwlock_tryrdlock(arg), EBUSY);
    return NULL;
}

static void *tryrdlock_expect_ok(void *arg) {
    CHECK_RC(pthread_rwlock_tryrdlock(arg), 0);
    CHECK_RC(pthread_rwlock_unlock(arg), 0);
    return NULL;
}

/* With writer preference, new readers get EBUSY from tryrdlock as soon as a
 * writer waits: that is how we see the writer waiting. */
static void wait_for_waiting_writer(pthread_rwlock_t *l) {
    int64_t deadline = now_ns() + 5000000000LL;
    int rc;
    while ((rc = pthread_rwlock_tryrdlock(l)) == 0) {
        CHECK_RC(pthread_rwlock_unlock(l), 0);
        CHECK(now_ns() < deadline, "the writer never started waiting");
        usleep(1000);
    }
    CHECK_RC(rc, EBUSY);
}

static void writer_preferred(pthread_rwlock_t *l, const char *what) {
    struct preference p = {.l = l};
    /* Main reads; a writer queues behind it. */
    CHECK_RC(pthread_rwlock_rdlock(l), 0);
    pthread_t w = spawn(preference_writer, &p);
    wait_for_waiting_writer(l);
    /* New readers queue behind the writer, in every way of asking. */
    join(spawn(tryrdlock_expect_busy, l));
    struct timespec abs = abs_after_ms(CLOCK_REALTIME, 50);
    CHECK_RC(pthread_rwlock_timedrdlock(l, &abs), ETIMEDOUT);
    pthread_t r = spawn(preference_reader, &p);
    usleep(50 * 1000);
    CHECK(atomic_load(&p.reader_at) == 0, "%s: a reader got in while a writer waited", what);
    CHECK(atomic_load(&p.writer_at) == 0, "%s: the writer got in while main read", what);
    CHECK_RC(pthread_rwlock_unlock(l), 0);
    join(w);
    join(r);
    CHECK_RC(atomic_load(&p.writer_rc), 0);
    CHECK(atomic_load(&p.writer_at) == 1 && atomic_load(&p.reader_at) == 2,
          "%s: writer got in %d-th, reader %d-th; expected the writer first", what, atomic_load(&p.writer_at),
          atomic_load(&p.reader_at));

    /* A writer that gives up lets the readers it held back in, while main
     * still reads. */
    struct preference q = {.l = l, .writer_timeout_ms = 100};
    CHECK_RC(pthread_rwlock_rdlock(l), 0);
    w = spawn(preference_writer, &q);
    wait_for_waiting_writer(l);
    r = spawn(preference_reader, &q);
    join(w);
    CHECK_RC(atomic_load(&q.writer_rc), ETIMEDOUT);
    join(r);
    CHECK(atomic_load(&q.reader_at) == 1, "%s: the held-back reader did not get in after the writer gave up", what);
    join(spawn(tryrdlock_expect_ok, l));
    CHECK_RC(pthread_rwlock_unlock(l), 0);
}

static void test_writer_preference(void) {
    writer_preferred(&static_writer_pref, "PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP");
    pthread_rwlock_t l;
    init_kind(&l, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    writer_preferred(&l, "PREFER_WRITER_NONRECURSIVE_NP");
    CHECK_RC(pthread_rwlock_destroy(&l), 0);
}

/* Reader preference (the default, and PREFER_WRITER_NP, which glibc treats
 * the same): a waiting writer does not hold new readers back. */
static void reader_preferred(pthread_rwlock_t *l, const char *what) {
    struct preference p = {.l = l};
    CHECK_RC(pthread_rwlock_rdlock(l), 0);
    pthread_t w = spawn(preference_writer, &p);
    usleep(50 * 1000); /* the writer is waiting by now (if not, still no reader may be refused) */
    join(spawn(tryrdlock_expect_ok, l));
    pthread_t r = spawn(preference_reader, &p);
    join(r);
    CHECK(atomic_load(&p.reader_at) == 1, "%s: a reader was held back by a waiting writer", what);
    CHECK(atomic_load(&p.writer_at) == 0, "%s: the writer got in while main read", what);
    CHECK_RC(pthread_rwlock_unlock(l), 0);
    join(w);
    CHECK_EQ(atomic_load(&p.writer_at), 2);
}

static void test_reader_preference(void) {
    reader_preferred(&static_rwlock, "PTHREAD_RWLOCK_INITIALIZER");
    pthread_rwlock_t l;
    init_kind(&l, PTHREAD_RWLOCK_PREFER_WRITER_NP);
    reader_preferred(&l, "PREFER_WRITER_NP");
    CHECK_RC(pthread_rwlock_destroy(&l), 0);
}

/* ---- error codes */

static void *trylocks_expect(void *arg) {
    pthread_rwlock_t *l = arg;
    CHECK_RC(pthread_rwlock_tryrdlock(l), EBUSY);
    CHECK_RC(pthread_rwlock_trywrlock(l), EBUSY);
    return NULL;
}

static void *trywrlock_expect_busy(void *arg) {
    CHECK_RC(pthread_rwlock_trywrlock(arg), EBUSY);
    return NULL;
}

static void errors_on(pthread_rwlock_t *l) {
    struct timespec ok = abs_after_ms(CLOCK_REALTIME, 100), bad = ok;
    bad.tv_nsec = 1000000000;
    struct timespec bad_neg = ok;
    bad_neg.tv_nsec = -1;

    /* glibc checks the clock and timeout first: EINVAL even when free. */
    CHECK_RC(pthread_rwlock_timedrdlock(l, &bad), EINVAL);
    CHECK_RC(pthread_rwlock_timedwrlock(l, &bad), EINVAL);
    CHECK_RC(pthread_rwlock_timedwrlock(l, &bad_neg), EINVAL);
    CHECK_RC(pthread_rwlock_clockrdlock(l, CLOCK_MONOTONIC, &bad), EINVAL);
    CHECK_RC(pthread_rwlock_clockwrlock(l, CLOCK_MONOTONIC, &bad_neg), EINVAL);
    CHECK_RC(pthread_rwlock_clockrdlock(l, CLOCK_PROCESS_CPUTIME_ID, &ok), EINVAL);
    CHECK_RC(pthread_rwlock_clockwrlock(l, CLOCK_PROCESS_CPUTIME_ID, &ok), EINVAL);

    /* Held for writing by the caller. */
    CHECK_RC(pthread_rwlock_wrlock(l), 0);
    CHECK_RC(pthread_rwlock_wrlock(l), EDEADLK);
    CHECK_RC(pthread_rwlock_rdlock(l), EDEADLK);
    CHECK_RC(pthread_rwlock_timedwrlock(l, &ok), EDEADLK);
    CHECK_RC(pthread_rwlock_timedrdlock(l, &ok), EDEADLK);
    struct timespec mono = abs_after_ms(CLOCK_MONOTONIC, 100);
    CHECK_RC(pthread_rwlock_clockwrlock(l, CLOCK_MONOTONIC, &mono), EDEADLK);
    CHECK_RC(pthread_rwlock_clockrdlock(l, CLOCK_MONOTONIC, &mono), EDEADLK);
    CHECK_RC(pthread_rwlock_timedwrlock(l, &bad), EINVAL); /* EINVAL comes first */
    CHECK_RC(pthread_rwlock_trywrlock(l), EBUSY);
    CHECK_RC(pthread_rwlock_tryrdlock(l), EBUSY);
    join(spawn(trylocks_expect, l));
    CHECK_RC(pthread_rwlock_unlock(l), 0);

    /* Held for reading, twice (recursive reads are fine without a waiting
     * writer). */
    CHECK_RC(pthread_rwlock_rdlock(l), 0);
    CHECK_RC(pthread_rwlock_tryrdlock(l), 0);
    CHECK_RC(pthread_rwlock_trywrlock(l), EBUSY);
    join(spawn(trywrlock_expect_busy, l));
    join(spawn(tryrdlock_expect_ok, l));
    CHECK_RC(pthread_rwlock_unlock(l), 0);
    join(spawn(trywrlock_expect_busy, l)); /* one read lock left */
    CHECK_RC(pthread_rwlock_unlock(l), 0);

    /* Free again: every way of locking succeeds at once. */
    CHECK_RC(pthread_rwlock_trywrlock(l), 0);
    CHECK_RC(pthread_rwlock_unlock(l), 0);
    CHECK_RC(pthread_rwlock_timedwrlock(l, &ok), 0);
    CHECK_RC(pthread_rwlock_unlock(l), 0);
    CHECK_RC(pthread_rwlock_clockrdlock(l, CLOCK_MONOTONIC, &mono), 0);
    CHECK_RC(pthread_rwlock_unlock(l), 0);
}

static void *errors_in_thread(void *arg) {
    errors_on(arg);
    return NULL;
}

static void test_errors(void) {
    pthread_rwlockattr_t a;
    CHECK_RC(pthread_rwlockattr_init(&a), 0);
    CHECK_RC(pthread_rwlockattr_setkind_np(&a, 7), EINVAL);
    CHECK_RC(pthread_rwlockattr_destroy(&a), 0);

    errors_on(&static_rwlock);
    join(spawn(errors_in_thread, &static_rwlock));
    pthread_rwlock_t l;
    CHECK_RC(pthread_rwlock_init(&l, NULL), 0);
    errors_on(&l);
    join(spawn(errors_in_thread, &l));
    CHECK_RC(pthread_rwlock_destroy(&l), 0);
}

/* ---- timeouts */

struct holder {
    pthread_rwlock_t *l;
    int write;
    atomic_int locked, release;
};

static void *hold_until_released(void *arg) {
    struct holder *h = arg;
    CHECK_RC(h->write ? pthread_rwlock_wrlock(h->l) : pthread_rwlock_rdlock(h->l), 0);
    atomic_store(&h->locked, 1);
    WAIT_UNTIL(atomic_load(&h->release), "the holder was never told to release");
    CHECK_RC(pthread_rwlock_unlock(h->l), 0);
    return NULL;
}

static pthread_t start_holder(struct holder *h, pthread_rwlock_t *l, int write) {
    h->l = l;
    h->write = write;
    atomic_store(&h->locked, 0);
    atomic_store(&h->release, 0);
    pthread_t t = spawn(hold_until_released, h);
    WAIT_UNTIL(atomic_load(&h->locked), "the holder never locked");
    return t;
}

static void stop_holder(struct holder *h, pthread_t t) {
    atomic_store(&h->release, 1);
    join(t);
}

enum { TIMED_RDLOCK, CLOCK_RDLOCK, TIMED_WRLOCK, CLOCK_WRLOCK };

static int timed_lock(pthread_rwlock_t *l, int how, clockid_t clock, const struct timespec *abs) {
    switch (how) {
    case TIMED_RDLOCK: return pthread_rwlock_timedrdlock(l, abs);
    case CLOCK_RDLOCK: return pthread_rwlock_clockrdlock(l, clock, abs);
    case TIMED_WRLOCK: return pthread_rwlock_timedwrlock(l, abs);
    default: return pthread_rwlock_clockwrlock(l, clock, abs);
    }
}

static const char *timed_name(int how) {
    static const char *names[] = {"timedrdlock", "clockrdlock", "timedwrlock", "clockwrlock"};
    return names[how];
}

/* Times out in `how` on both clocks, then with a past abstime. */
static void times_out(pthread_rwlock_t *l, int how, const char *who) {
    const clockid_t clocks[] = {CLOCK_REALTIME, CLOCK_MONOTONIC};
    for (int c = 0; c < 2; ++c) {
        if ((how == TIMED_RDLOCK || how == TIMED_WRLOCK) && clocks[c] != CLOCK_REALTIME) continue;
        int64_t t0 = now_ns();
        struct timespec abs = abs_after_ms(clocks[c], 100);
        int rc = timed_lock(l, how, clocks[c], &abs);
        int64_t ms = (now_ns() - t0) / 1000000;
        CHECK(rc == ETIMEDOUT, "%s: %s(%s, +100 ms) returned %d (%s), expected ETIMEDOUT", who, timed_name(how),
              clocks[c] == CLOCK_REALTIME ? "REALTIME" : "MONOTONIC", rc, strerror(rc));
        CHECK(ms >= 99 && ms < 1000, "%s: %s(%s, +100 ms) took %lld ms", who, timed_name(how),
              clocks[c] == CLOCK_REALTIME ? "REALTIME" : "MONOTONIC", (long long)ms);
    }
    int64_t t0 = now_ns();
    struct timespec past = abs_after_ms(CLOCK_REALTIME, -1000);
    int rc = timed_lock(l, how, CLOCK_REALTIME, &past);
    CHECK(rc == ETIMEDOUT, "%s: %s with a past abstime returned %d (%s)", who, timed_name(how), rc, strerror(rc));
    CHECK((now_ns() - t0) < 100000000, "%s: %s with a past abstime took too long", who,
          timed_name(how));
}

struct timeout_case {
    pthread_rwlock_t *l;
    int writer_holds;
};

static void timeouts_on(struct timeout_case *tc, const char *who) {
    times_out(tc->l, TIMED_WRLOCK, who);
    times_out(tc->l, CLOCK_WRLOCK, who);
    if (tc->writer_holds) {
        times_out(tc->l, TIMED_RDLOCK, who);
        times_out(tc->l, CLOCK_RDLOCK, who);
    } else {
        /* Read-held: timed read locks succeed at once. */
        struct timespec abs = abs_after_ms(CLOCK_MONOTONIC, 100);
        CHECK_RC(pthread_rwlock_clockrdlock(tc->l, CLOCK_MONOTONIC, &abs), 0);
        CHECK_RC(pthread_rwlock_unlock(tc->l), 0);
        abs = abs_after_ms(CLOCK_REALTIME, 100);
        CHECK_RC(pthread_rwlock_timedrdlock(tc->l, &abs), 0);
        CHECK_RC(pthread_rwlock_unlock(tc->l), 0);
    }
}

static void *timeouts_in_thread(void *arg) {
    timeouts_on(arg, "created thread");
    return NULL;
}

static void test_timeouts(void) {
    pthread_rwlock_t l = PTHREAD_RWLOCK_INITIALIZER;
    struct holder h;
    for (int write = 1; write >= 0; --write) {
        struct timeout_case tc = {&l, write};
        pthread_t t = start_holder(&h, &l, write);
        /* A created thread times out alongside the native main thread. */
        pthread_t other = spawn(timeouts_in_thread, &tc);
        timeouts_on(&tc, write ? "main thread, writer holds" : "main thread, reader holds");
        join(other);
        stop_holder(&h, t);
    }

    /* A timed lock that the holder releases in time succeeds, late. */
    pthread_t t = start_holder(&h, &l, 1);
    atomic_store(&h.release, 1);
    struct timespec abs = abs_after_ms(CLOCK_MONOTONIC, 5000);
    CHECK_RC(pthread_rwlock_clockwrlock(&l, CLOCK_MONOTONIC, &abs), 0);
    CHECK_RC(pthread_rwlock_unlock(&l), 0);
    join(t);
    t = start_holder(&h, &l, 1);
    atomic_store(&h.release, 1);
    abs = abs_after_ms(CLOCK_REALTIME, 5000);
    CHECK_RC(pthread_rwlock_timedrdlock(&l, &abs), 0);
    CHECK_RC(pthread_rwlock_unlock(&l), 0);
    join(t);
}

/* ---- the native main thread and a created thread block on each other */

struct handoff {
    pthread_rwlock_t *l;
    atomic_int started, released, acquired;
    int write; /* how the created thread locks */
};

static void *created_holds(void *arg) {
    struct handoff *h = arg;
    CHECK_RC(pthread_rwlock_wrlock(h->l), 0);
    atomic_store(&h->started, 1);
    usleep(100 * 1000);
    atomic_store(&h->released, 1);
    CHECK_RC(pthread_rwlock_unlock(h->l), 0);
    return NULL;
}

static void *created_waits(void *arg) {
    struct handoff *h = arg;
    atomic_store(&h->started, 1);
    CHECK_RC(h->write ? pthread_rwlock_wrlock(h->l) : pthread_rwlock_rdlock(h->l), 0);
    CHECK(atomic_load(&h->released), "created thread got a lock main still held for writing");
    atomic_store(&h->acquired, 1);
    CHECK_RC(pthread_rwlock_unlock(h->l), 0);
    return NULL;
}

static void test_native_and_created(void) {
    pthread_rwlock_t l = PTHREAD_RWLOCK_INITIALIZER;

    /* A created thread writes; the native main thread blocks to read, then to write. */
    for (int main_writes = 0; main_writes < 2; ++main_writes) {
        struct handoff h = {.l = &l};
        pthread_t t = spawn(created_holds, &h);
        WAIT_UNTIL(atomic_load(&h.started), "the created thread never locked");
        int64_t t0 = now_ns();
        CHECK_RC(main_writes ? pthread_rwlock_wrlock(&l) : pthread_rwlock_rdlock(&l), 0);
        int64_t ms = (now_ns() - t0) / 1000000;
        CHECK(atomic_load(&h.released), "main got a lock the created thread still held for writing");
        CHECK(ms >= 50, "main waited only %lld ms for a lock held for 100 ms", (long long)ms);
        CHECK_RC(pthread_rwlock_unlock(&l), 0);
        join(t);
    }

    /* The native main thread writes; a created thread blocks to read, then to write. */
    for (int write = 0; write < 2; ++write) {
        struct handoff h = {.l = &l, .write = write};
        CHECK_RC(pthread_rwlock_wrlock(&l), 0);
        pthread_t t = spawn(created_waits, &h);
        WAIT_UNTIL(atomic_load(&h.started), "the created thread never started");
        usleep(50 * 1000);
        CHECK(!atomic_load(&h.acquired), "created thread got a lock main holds for writing");
        atomic_store(&h.released, 1);
        CHECK_RC(pthread_rwlock_unlock(&l), 0);
        join(t);
        CHECK(atomic_load(&h.acquired), "created thread never got the lock");
    }
}

/* ---- process-shared: glibc's lock */

static void test_process_shared(void) {
    pthread_rwlockattr_t a;
    CHECK_RC(pthread_rwlockattr_init(&a), 0);
    CHECK_RC(pthread_rwlockattr_setpshared(&a, PTHREAD_PROCESS_SHARED), 0);
    pthread_rwlock_t l;
    CHECK_RC(pthread_rwlock_init(&l, &a), 0);
    CHECK_RC(pthread_rwlockattr_destroy(&a), 0);
    CHECK_RC(pthread_rwlock_wrlock(&l), 0);
    CHECK_RC(pthread_rwlock_rdlock(&l), EDEADLK);
    join(spawn(trylocks_expect, &l));
    CHECK_RC(pthread_rwlock_unlock(&l), 0);
    CHECK_RC(pthread_rwlock_rdlock(&l), 0);
    join(spawn(trywrlock_expect_busy, &l));
    join(spawn(tryrdlock_expect_ok, &l));
    CHECK_RC(pthread_rwlock_unlock(&l), 0);
    struct timespec abs = abs_after_ms(CLOCK_MONOTONIC, 100);
    CHECK_RC(pthread_rwlock_clockwrlock(&l, CLOCK_MONOTONIC, &abs), 0);
    CHECK_RC(pthread_rwlock_unlock(&l), 0);
    CHECK_RC(pthread_rwlock_destroy(&l), 0);
}

int main(void) {
    const int under_shim = is_shim();
    test_errors();
    test_readers_share();
    test_reader_preference();
    test_writer_preference();
    test_timeouts();
    test_native_and_created();
    test_process_shared();
    test_counting();
    printf("t_rwlock: ok (%s)\n", under_shim ? "greenld" : "native");
    return 0;
}
