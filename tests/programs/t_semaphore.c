/* t_semaphore: unnamed POSIX semaphores keep their POSIX/glibc semantics.
 *
 * A bounded queue built from two semaphores with 4 producers and 4
 * consumers, every item consumed exactly once; a waiter woken by a post from
 * another thread 10 ms later (it once hung a single hub) in both directions
 * between the native main thread and a created thread; trywait and
 * timedwait/clockwait on both clocks with their errno; sem_getvalue; the
 * SEM_VALUE_MAX limits; and a process-shared semaphore (left to glibc), used
 * across threads and across fork.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_support.h"

/* For the sem_* functions: they return 0 or -1 with errno. `want_errno` 0
 * means success is expected. */
#define CHECK_SEM(expr, want_errno)                                                                     \
    do {                                                                                                \
        errno = 0;                                                                                      \
        int rc_ = (expr), errno_ = errno, want_ = (want_errno);                                         \
        if (want_ == 0 ? rc_ != 0 : (rc_ != -1 || errno_ != want_)) {                                   \
            fprintf(stderr, "%s:%d: %s returned %d, errno %d (%s); expected %s%s\n", __FILE__, __LINE__, \
                    #expr, rc_, errno_, strerror(errno_), want_ ? "-1 with errno " : "0",               \
                    want_ ? strerror(want_) : "");                                                      \
            _exit(1);                                                                                   \
        }                                                                                               \
    } while (0)

static int value_of(sem_t *s) {
    int v = -1;
    CHECK_SEM(sem_getvalue(s, &v), 0);
    return v;
}

/* ---- producer/consumer: `slots` counts free places, `items` filled ones */

enum { PRODUCERS = 4, CONSUMERS = 4, ITEMS_PER_PRODUCER = 20000, QUEUE_CAP = 16 };
enum { TOTAL_ITEMS = PRODUCERS * ITEMS_PER_PRODUCER };

static struct {
    sem_t slots, items;
    pthread_mutex_t m; /* guards the ring indices */
    int ring[QUEUE_CAP];
    int head, tail;
} q = {.m = PTHREAD_MUTEX_INITIALIZER};

static atomic_uchar seen[TOTAL_ITEMS];
static atomic_long consumed_by[CONSUMERS];

static void queue_put(int item) {
    CHECK_SEM(sem_wait(&q.slots), 0);
    pthread_mutex_lock(&q.m);
    q.ring[q.tail] = item;
    q.tail = (q.tail + 1) % QUEUE_CAP;
    pthread_mutex_unlock(&q.m);
    CHECK_SEM(sem_post(&q.items), 0);
}

static int queue_get(void) {
    CHECK_SEM(sem_wait(&q.items), 0);
    pthread_mutex_lock(&q.m);
    int item = q.ring[q.head];
    q.head = (q.head + 1) % QUEUE_CAP;
    pthread_mutex_unlock(&q.m);
    CHECK_SEM(sem_post(&q.slots), 0);
    return item;
}

static void *producer(void *arg) {
    const int p = (int)(intptr_t)arg;
    for (int i = 0; i < ITEMS_PER_PRODUCER; ++i) queue_put(p * ITEMS_PER_PRODUCER + i);
    return NULL;
}

static void *consumer(void *arg) {
    const int c = (int)(intptr_t)arg;
    for (;;) {
        int item = queue_get();
        if (item < 0) return NULL; /* the end marker */
        CHECK(item < TOTAL_ITEMS, "consumer %d got item %d, out of range", c, item);
        unsigned char before = atomic_fetch_add(&seen[item], 1);
        CHECK(before == 0, "item %d consumed twice", item);
        atomic_fetch_add(&consumed_by[c], 1);
    }
}

static void test_producer_consumer(void) {
    CHECK_SEM(sem_init(&q.slots, 0, QUEUE_CAP), 0);
    CHECK_SEM(sem_init(&q.items, 0, 0), 0);
    pthread_t prod[PRODUCERS], cons[CONSUMERS];
    for (int i = 0; i < CONSUMERS; ++i) cons[i] = spawn(consumer, (void *)(intptr_t)i);
    for (int i = 0; i < PRODUCERS; ++i) prod[i] = spawn(producer, (void *)(intptr_t)i);
    for (int i = 0; i < PRODUCERS; ++i) join(prod[i]);
    /* The native main thread is the last producer: one end marker each. */
    for (int i = 0; i < CONSUMERS; ++i) queue_put(-1);
    for (int i = 0; i < CONSUMERS; ++i) join(cons[i]);
    long total = 0;
    for (int i = 0; i < CONSUMERS; ++i) total += atomic_load(&consumed_by[i]);
    CHECK(total == TOTAL_ITEMS, "consumed %ld items, expected %d", total, TOTAL_ITEMS);
    for (int i = 0; i < TOTAL_ITEMS; ++i) CHECK(atomic_load(&seen[i]) == 1, "item %d consumed %d times", i, seen[i]);
    CHECK_EQ(value_of(&q.items), 0);
    CHECK_EQ(value_of(&q.slots), QUEUE_CAP);
    CHECK_SEM(sem_destroy(&q.slots), 0);
    CHECK_SEM(sem_destroy(&q.items), 0);
}

/* ---- a wait ended by a post from another thread */

struct late_post {
    sem_t *s;
    int delay_ms;
    atomic_llong posted_ns;
};

static void *post_later(void *arg) {
    struct late_post *lp = arg;
    usleep(lp->delay_ms * 1000);
    atomic_store(&lp->posted_ns, now_ns());
    CHECK_SEM(sem_post(lp->s), 0);
    return NULL;
}

static void *wait_for_post(void *arg) {
    struct late_post *lp = arg;
    CHECK_SEM(sem_wait(lp->s), 0);
    CHECK(atomic_load(&lp->posted_ns) != 0, "sem_wait returned before the post");
    return NULL;
}

static void test_wait_then_post(void) {
    sem_t s;
    CHECK_SEM(sem_init(&s, 0, 0), 0);

    /* A created thread waits; the native main thread posts 10 ms later. */
    struct late_post lp = {&s, 10, 0};
    pthread_t t = spawn(wait_for_post, &lp);
    usleep(10 * 1000);
    atomic_store(&lp.posted_ns, now_ns());
    CHECK_SEM(sem_post(&s), 0);
    join(t);

    /* A created thread waits; another created thread posts 10 ms later. */
    atomic_store(&lp.posted_ns, 0);
    t = spawn(wait_for_post, &lp);
    pthread_t poster = spawn(post_later, &lp);
    join(t);
    join(poster);

    /* The native main thread waits; a created thread posts 10 ms later. */
    atomic_store(&lp.posted_ns, 0);
    poster = spawn(post_later, &lp);
    int64_t t0 = now_ns();
    CHECK_SEM(sem_wait(&s), 0);
    CHECK(atomic_load(&lp.posted_ns) != 0, "main's sem_wait returned before the post");
    CHECK((now_ns() - t0) >= 5000000, "main's sem_wait returned too early");
    join(poster);

    CHECK_EQ(value_of(&s), 0);
    CHECK_SEM(sem_destroy(&s), 0);
}

/* ---- ping-pong between the native main thread and a created thread */

enum { PING_ROUNDS = 2000 };

struct ping {
    sem_t ping, pong;
    int ball; /* handed over by the semaphores, not atomic */
};

static void *pong_player(void *arg) {
    struct ping *p = arg;
    for (int i = 0; i < PING_ROUNDS; ++i) {
        CHECK_SEM(sem_wait(&p->ping), 0);
        CHECK_EQ(p->ball, 2 * i + 1);
        p->ball++;
        CHECK_SEM(sem_post(&p->pong), 0);
    }
    return NULL;
}

static void test_ping_pong(void) {
    struct ping p = {.ball = 0};
    CHECK_SEM(sem_init(&p.ping, 0, 0), 0);
    CHECK_SEM(sem_init(&p.pong, 0, 0), 0);
    pthread_t t = spawn(pong_player, &p);
    for (int i = 0; i < PING_ROUNDS; ++i) {
        p.ball++;
        CHECK_SEM(sem_post(&p.ping), 0);
        CHECK_SEM(sem_wait(&p.pong), 0);
        CHECK_EQ(p.ball, 2 * i + 2);
    }
    join(t);
    CHECK_SEM(sem_destroy(&p.ping), 0);
    CHECK_SEM(sem_destroy(&p.pong), 0);
}

/* ---- trywait, getvalue, limits */

static void test_values(void) {
    sem_t s;
    CHECK_SEM(sem_init(&s, 0, 2), 0);
    CHECK_EQ(value_of(&s), 2);
    CHECK_SEM(sem_trywait(&s), 0);
    CHECK_SEM(sem_wait(&s), 0);
    CHECK_EQ(value_of(&s), 0);
    CHECK_SEM(sem_trywait(&s), EAGAIN);
    CHECK_EQ(value_of(&s), 0);
    for (int i = 0; i < 5; ++i) CHECK_SEM(sem_post(&s), 0);
    CHECK_EQ(value_of(&s), 5);
    CHECK_SEM(sem_destroy(&s), 0);

    CHECK_SEM(sem_init(&s, 0, (unsigned)SEM_VALUE_MAX + 1), EINVAL);
    CHECK_SEM(sem_init(&s, 0, SEM_VALUE_MAX), 0);
    CHECK_EQ(value_of(&s), SEM_VALUE_MAX);
    CHECK_SEM(sem_post(&s), EOVERFLOW);
    CHECK_EQ(value_of(&s), SEM_VALUE_MAX);
    CHECK_SEM(sem_trywait(&s), 0);
    CHECK_SEM(sem_post(&s), 0);
    CHECK_SEM(sem_destroy(&s), 0);
}

/* ---- timeouts */

static void timeouts_on(sem_t *s, const char *who) {
    struct {
        const char *name;
        clockid_t clock; /* -1: sem_timedwait */
    } cases[] = {{"sem_timedwait", -1}, {"sem_clockwait(REALTIME)", CLOCK_REALTIME},
                 {"sem_clockwait(MONOTONIC)", CLOCK_MONOTONIC}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        clockid_t abs_clock = cases[i].clock == -1 ? CLOCK_REALTIME : cases[i].clock;
        int64_t t0 = now_ns();
        struct timespec abs = abs_after_ms(abs_clock, 100);
        errno = 0;
        int rc = cases[i].clock == -1 ? sem_timedwait(s, &abs) : sem_clockwait(s, cases[i].clock, &abs);
        int err = errno;
        int64_t ms = (now_ns() - t0) / 1000000;
        CHECK(rc == -1 && err == ETIMEDOUT, "%s: %s(+100 ms) returned %d errno %d (%s), expected ETIMEDOUT", who,
              cases[i].name, rc, err, strerror(err));
        CHECK(ms >= 99 && ms < 1000, "%s: %s(+100 ms) took %lld ms", who, cases[i].name, (long long)ms);
    }

    /* An abstime in the past times out at once. */
    int64_t t0 = now_ns();
    struct timespec past = abs_after_ms(CLOCK_REALTIME, -1000);
    CHECK_SEM(sem_timedwait(s, &past), ETIMEDOUT);
    past = abs_after_ms(CLOCK_MONOTONIC, -1000);
    CHECK_SEM(sem_clockwait(s, CLOCK_MONOTONIC, &past), ETIMEDOUT);
    CHECK((now_ns() - t0) < 100000000, "%s: waits with a past abstime took too long", who);

    /* Bad timeouts and clocks are EINVAL. */
    struct timespec bad = abs_after_ms(CLOCK_REALTIME, 100);
    bad.tv_nsec = 1000000000;
    CHECK_SEM(sem_timedwait(s, &bad), EINVAL);
    bad.tv_nsec = -1;
    CHECK_SEM(sem_timedwait(s, &bad), EINVAL);
    bad = abs_after_ms(CLOCK_MONOTONIC, 100);
    bad.tv_nsec = 1000000000;
    CHECK_SEM(sem_clockwait(s, CLOCK_MONOTONIC, &bad), EINVAL);
    struct timespec ok = abs_after_ms(CLOCK_REALTIME, 100);
    CHECK_SEM(sem_clockwait(s, CLOCK_PROCESS_CPUTIME_ID, &ok), EINVAL);
}

static void *timeouts_in_thread(void *arg) {
    timeouts_on(arg, "created thread");
    return NULL;
}

static void test_timeouts(void) {
    sem_t s;
    CHECK_SEM(sem_init(&s, 0, 0), 0);
    timeouts_on(&s, "main thread");
    join(spawn(timeouts_in_thread, &s));

    /* glibc checks the timeout before taking: EINVAL even with a token. */
    CHECK_SEM(sem_post(&s), 0);
    struct timespec bad = abs_after_ms(CLOCK_REALTIME, 100);
    bad.tv_nsec = 1000000000;
    CHECK_SEM(sem_timedwait(&s, &bad), EINVAL);
    CHECK_EQ(value_of(&s), 1);

    /* With a token, every timed wait succeeds at once. */
    struct timespec abs = abs_after_ms(CLOCK_REALTIME, 100);
    CHECK_SEM(sem_timedwait(&s, &abs), 0);
    CHECK_SEM(sem_post(&s), 0);
    abs = abs_after_ms(CLOCK_MONOTONIC, -1000); /* even a past one */
    CHECK_SEM(sem_clockwait(&s, CLOCK_MONOTONIC, &abs), 0);
    CHECK_EQ(value_of(&s), 0);

    /* A timed wait posted in time succeeds, late. */
    struct late_post lp = {&s, 10, 0};
    pthread_t poster = spawn(post_later, &lp);
    abs = abs_after_ms(CLOCK_MONOTONIC, 5000);
    int64_t t0 = now_ns();
    CHECK_SEM(sem_clockwait(&s, CLOCK_MONOTONIC, &abs), 0);
    CHECK(atomic_load(&lp.posted_ns) != 0, "sem_clockwait returned before the post");
    CHECK((now_ns() - t0) < 2000000000LL, "sem_clockwait posted in time waited too long");
    join(poster);
    CHECK_SEM(sem_destroy(&s), 0);
}

/* ---- process-shared: glibc's semaphore */

static void test_process_shared(void) {
    sem_t *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(s != MAP_FAILED, "mmap: %s", strerror(errno));
    CHECK_SEM(sem_init(s, 1, (unsigned)SEM_VALUE_MAX + 1), EINVAL);
    CHECK_SEM(sem_init(s, 1, 1), 0);
    CHECK_EQ(value_of(s), 1);
    CHECK_SEM(sem_trywait(s), 0);
    CHECK_SEM(sem_trywait(s), EAGAIN);
    struct timespec past = abs_after_ms(CLOCK_REALTIME, -1000);
    CHECK_SEM(sem_timedwait(s, &past), ETIMEDOUT);

    /* The native main thread waits; a created thread posts. */
    struct late_post lp = {s, 10, 0};
    pthread_t poster = spawn(post_later, &lp);
    CHECK_SEM(sem_wait(s), 0);
    CHECK(atomic_load(&lp.posted_ns) != 0, "sem_wait on a shared semaphore returned before the post");
    join(poster);

    /* Another process posts. */
    pid_t child = fork();
    CHECK(child >= 0, "fork: %s", strerror(errno));
    if (child == 0) {
        usleep(10 * 1000);
        _exit(sem_post(s) == 0 ? 0 : 1);
    }
    CHECK_SEM(sem_wait(s), 0);
    int status = 0;
    CHECK_EQ(waitpid(child, &status, 0), child);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
    CHECK_EQ(value_of(s), 0);
    CHECK_SEM(sem_destroy(s), 0);
    munmap(s, sizeof *s);
}

int main(void) {
    const int under_shim = is_shim();
    test_values();
    test_wait_then_post();
    test_ping_pong();
    test_producer_consumer();
    test_timeouts();
    test_process_shared();
    printf("t_semaphore: ok (%s)\n", under_shim ? "greenld" : "native");
    return 0;
}
