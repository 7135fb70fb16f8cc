/* syscall(SYS_futex, ...) made by the program itself (what std::atomic::wait,
 * std::future and hand-written locks do): return values and errno exactly as
 * the kernel's, wakes crossing between threads and fibers, bitsets,
 * WAKE_OP, CMP_REQUEUE, and a shared futex woken from another process. */
#include "test_support.h"

#include <limits.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/wait.h>

static long futex(void *addr, int op, unsigned val, const struct timespec *ts, void *addr2, unsigned val3)
{
    return syscall(SYS_futex, addr, op, val, ts, addr2, val3);
}

static long futex_wake_n(void *addr, int op, int n) { return futex(addr, op, (unsigned)n, NULL, NULL, 0); }

/* ---- errors and timeouts, checked in the calling thread ---------------- */

static void check_errors_and_timeouts(const char *who)
{
    static _Alignas(8) unsigned words[2];
    unsigned *w = &words[0];
    *w = 7;
    char phase[128];

    snprintf(phase, sizeof phase, "%s: EAGAIN when the word differs", who);
    set_phase(phase);
    errno = 0;
    CHECK(futex(w, FUTEX_WAIT_PRIVATE, 6, NULL, NULL, 0) == -1 && errno == EAGAIN, "FUTEX_WAIT on a changed word");
    errno = 0;
    CHECK(futex(w, FUTEX_WAIT, 6, NULL, NULL, 0) == -1 && errno == EAGAIN, "shared FUTEX_WAIT on a changed word");
    errno = 0;
    CHECK(futex(w, FUTEX_WAIT_BITSET_PRIVATE, 6, NULL, NULL, FUTEX_BITSET_MATCH_ANY) == -1 && errno == EAGAIN,
          "FUTEX_WAIT_BITSET on a changed word");

    snprintf(phase, sizeof phase, "%s: EINVAL for bad timespecs, bitsets, alignment", who);
    set_phase(phase);
    struct timespec bad_ns = {0, 1000000000L}, neg_sec = {-1, 0}, neg_ns = {0, -1};
    errno = 0;
    CHECK(futex(w, FUTEX_WAIT_PRIVATE, 7, &bad_ns, NULL, 0) == -1 && errno == EINVAL, "tv_nsec = 1e9");
    errno = 0;
    CHECK(futex(w, FUTEX_WAIT_PRIVATE, 7, &neg_sec, NULL, 0) == -1 && errno == EINVAL, "tv_sec = -1");
    errno = 0;
    CHECK(futex(w, FUTEX_WAIT_PRIVATE, 7, &neg_ns, NULL, 0) == -1 && errno == EINVAL, "tv_nsec = -1");
    /* The timeout is checked before the value. */
    errno = 0;
    CHECK(futex(w, FUTEX_WAIT_PRIVATE, 6, &bad_ns, NULL, 0) == -1 && errno == EINVAL, "bad timeout, stale value");
    errno = 0;
    CHECK(futex(w, FUTEX_WAIT_BITSET_PRIVATE, 7, NULL, NULL, 0) == -1 && errno == EINVAL, "zero wait bitset");
    errno = 0;
    CHECK(futex(w, FUTEX_WAKE_BITSET_PRIVATE, 1, NULL, NULL, 0) == -1 && errno == EINVAL, "zero wake bitset");
    errno = 0;
    CHECK(futex((char *)w + 1, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0) == -1 && errno == EINVAL, "misaligned wake");
    errno = 0;
    CHECK(futex((char *)w + 2, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0) == -1 && errno == EINVAL, "misaligned wait");
    errno = 0;
    CHECK(futex(w, FUTEX_WAKE_PRIVATE | FUTEX_CLOCK_REALTIME, 1, NULL, NULL, 0) == -1 && errno == ENOSYS,
          "FUTEX_CLOCK_REALTIME on FUTEX_WAKE");
    errno = 0;
    CHECK(futex(w, 99 | FUTEX_PRIVATE_FLAG, 1, NULL, NULL, 0) == -1 && errno == ENOSYS, "unknown operation");

    snprintf(phase, sizeof phase, "%s: wakes with nobody waiting, errno untouched", who);
    set_phase(phase);
    errno = 1234;
    CHECK(futex_wake_n(w, FUTEX_WAKE_PRIVATE, 1) == 0, "wake nobody (private)");
    CHECK(futex_wake_n(w, FUTEX_WAKE, INT_MAX) == 0, "wake nobody (shared)");
    CHECK(errno == 1234, "errno changed by successful wakes: %d", errno);

    snprintf(phase, sizeof phase, "%s: relative FUTEX_WAIT times out", who);
    set_phase(phase);
    struct timespec rel = {0, 60 * 1000000L};
    int64_t t0 = now_ns();
    errno = 0;
    CHECK(futex(w, FUTEX_WAIT_PRIVATE, 7, &rel, NULL, 0) == -1 && errno == ETIMEDOUT, "FUTEX_WAIT 60 ms");
    int64_t ms = (now_ns() - t0) / 1000000;
    CHECK(ms >= 59 && ms < 2000, "FUTEX_WAIT 60 ms took %lld ms", (long long)ms);

    snprintf(phase, sizeof phase, "%s: absolute FUTEX_WAIT_BITSET times out on both clocks", who);
    set_phase(phase);
    struct timespec abs;
    clock_gettime(CLOCK_MONOTONIC, &abs);
    abs.tv_nsec += 50 * 1000000L;
    if (abs.tv_nsec >= 1000000000L) abs.tv_sec++, abs.tv_nsec -= 1000000000L;
    t0 = now_ns();
    errno = 0;
    CHECK(futex(w, FUTEX_WAIT_BITSET_PRIVATE, 7, &abs, NULL, FUTEX_BITSET_MATCH_ANY) == -1 && errno == ETIMEDOUT,
          "FUTEX_WAIT_BITSET monotonic");
    ms = (now_ns() - t0) / 1000000;
    CHECK(ms >= 49 && ms < 2000, "monotonic deadline 50 ms away took %lld ms", (long long)ms);
    clock_gettime(CLOCK_REALTIME, &abs);
    abs.tv_nsec += 50 * 1000000L;
    if (abs.tv_nsec >= 1000000000L) abs.tv_sec++, abs.tv_nsec -= 1000000000L;
    t0 = now_ns();
    errno = 0;
    CHECK(futex(w, FUTEX_WAIT_BITSET | FUTEX_CLOCK_REALTIME, 7, &abs, NULL, FUTEX_BITSET_MATCH_ANY) == -1 &&
              errno == ETIMEDOUT,
          "FUTEX_WAIT_BITSET realtime");
    ms = (now_ns() - t0) / 1000000;
    CHECK(ms >= 45 && ms < 2000, "realtime deadline 50 ms away took %lld ms", (long long)ms);
    /* A deadline in the past: ETIMEDOUT at once, but EAGAIN wins if the value differs. */
    struct timespec past = {1, 0};
    errno = 0;
    CHECK(futex(w, FUTEX_WAIT_BITSET_PRIVATE, 7, &past, NULL, FUTEX_BITSET_MATCH_ANY) == -1 && errno == ETIMEDOUT,
          "past deadline");
    errno = 0;
    CHECK(futex(w, FUTEX_WAIT_BITSET_PRIVATE, 6, &past, NULL, FUTEX_BITSET_MATCH_ANY) == -1 && errno == EAGAIN,
          "past deadline, stale value");
}

static void *errors_thread(void *arg)
{
    (void)arg;
    check_errors_and_timeouts("thread");
    return NULL;
}

/* ---- wakes ------------------------------------------------------------- */

struct waiter {
    unsigned *word;
    int op;
    unsigned bitset;
    atomic_int done;
    long rc;
    int err;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    errno = 0;
    if ((w->op & FUTEX_CMD_MASK) == FUTEX_WAIT_BITSET)
        w->rc = futex(w->word, w->op, 0, NULL, NULL, w->bitset);
    else
        w->rc = futex(w->word, w->op, 0, NULL, NULL, 0);
    w->err = errno;
    atomic_store(&w->done, 1);
    return NULL;
}

static int count_done(struct waiter *w, int n)
{
    int d = 0;
    for (int i = 0; i < n; ++i) d += atomic_load(&w[i].done);
    return d;
}

static void wait_done(struct waiter *w, int n, int want, const char *what)
{
    int64_t end = now_ns() + 3000000000LL;
    while (count_done(w, n) < want && now_ns() < end) sleep_ms(1);
    CHECK(count_done(w, n) == want, "%s: %d of %d waiters returned, expected %d", what, count_done(w, n), n, want);
}

/* Three waiters on one word; wake 2, then the rest. The waker is the
 * caller: a thread in main, a fiber otherwise. */
static void wake_counts(const char *who, int op_wait, int op_wake)
{
    char phase[128];
    snprintf(phase, sizeof phase, "%s: FUTEX_WAKE returns the number woken", who);
    set_phase(phase);
    static _Alignas(8) unsigned word;
    word = 0;
    struct waiter w[3];
    pthread_t t[3];
    for (int i = 0; i < 3; ++i) {
        w[i] = (struct waiter){.word = &word, .op = op_wait};
        t[i] = spawn(waiter_main, &w[i]);
    }
    sleep_ms(150); /* let them reach the futex */
    CHECK(count_done(w, 3) == 0, "waiters returned before any wake (rc %ld errno %d)", w[0].rc, w[0].err);
    long r = futex_wake_n(&word, op_wake, 2);
    CHECK(r == 2, "FUTEX_WAKE(2) with 3 waiters returned %ld", r);
    wait_done(w, 3, 2, "after FUTEX_WAKE(2)");
    r = futex_wake_n(&word, op_wake, INT_MAX);
    CHECK(r == 1, "FUTEX_WAKE(INT_MAX) with 1 waiter returned %ld", r);
    wait_done(w, 3, 3, "after FUTEX_WAKE(INT_MAX)");
    for (int i = 0; i < 3; ++i) {
        join(t[i]);
        CHECK(w[i].rc == 0, "woken waiter returned %ld errno %d", w[i].rc, w[i].err);
    }
}

static void *wake_counts_thread(void *arg)
{
    (void)arg;
    wake_counts("fiber waker, private", FUTEX_WAIT_PRIVATE, FUTEX_WAKE_PRIVATE);
    wake_counts("fiber waker, shared", FUTEX_WAIT, FUTEX_WAKE);
    return NULL;
}

/* The main thread (native) waits in the futex; a thread wakes it. */
static unsigned g_native_word;
static void *wake_main_later(void *arg)
{
    (void)arg;
    sleep_ms(100);
    long ticks = ticker_ticks();
    (void)ticks;
    __atomic_store_n(&g_native_word, 1, __ATOMIC_SEQ_CST);
    long r = futex_wake_n(&g_native_word, FUTEX_WAKE_PRIVATE, 1);
    return (void *)r;
}

static void bitsets(void)
{
    set_phase("WAKE_BITSET wakes only waiters sharing a bit");
    static _Alignas(8) unsigned word;
    word = 0;
    struct waiter w[2] = {{.word = &word, .op = FUTEX_WAIT_BITSET_PRIVATE, .bitset = 1},
                          {.word = &word, .op = FUTEX_WAIT_BITSET_PRIVATE, .bitset = 2}};
    pthread_t t0 = spawn(waiter_main, &w[0]);
    sleep_ms(50);
    pthread_t t1 = spawn(waiter_main, &w[1]);
    sleep_ms(100);
    long r = futex(&word, FUTEX_WAKE_BITSET_PRIVATE, 1, NULL, NULL, 2);
    CHECK(r == 1, "WAKE_BITSET(2) returned %ld", r);
    wait_done(&w[1], 1, 1, "bitset-2 waiter after WAKE_BITSET(2)");
    sleep_ms(30);
    CHECK(!atomic_load(&w[0].done), "the bitset-1 waiter (oldest) was woken by a bitset-2 wake");
    r = futex(&word, FUTEX_WAKE_BITSET_PRIVATE, INT_MAX, NULL, NULL, 4);
    CHECK(r == 0, "WAKE_BITSET(4) woke %ld", r);
    r = futex_wake_n(&word, FUTEX_WAKE_PRIVATE, 5);
    CHECK(r == 1, "plain FUTEX_WAKE returned %ld for the bitset-1 waiter", r);
    wait_done(&w[0], 1, 1, "bitset-1 waiter after FUTEX_WAKE");
    join(t0);
    join(t1);
}

static void wake_op(void)
{
    set_phase("FUTEX_WAKE_OP");
    static _Alignas(8) unsigned words[2];
    words[0] = words[1] = 0;
    struct waiter w[2] = {{.word = &words[0], .op = FUTEX_WAIT_PRIVATE}, {.word = &words[1], .op = FUTEX_WAIT_PRIVATE}};
    pthread_t t0 = spawn(waiter_main, &w[0]);
    pthread_t t1 = spawn(waiter_main, &w[1]);
    sleep_ms(150);
    /* words[1] += 5; wake 1 on words[0]; wake 1 on words[1] if old == 0. */
    unsigned op = FUTEX_OP(FUTEX_OP_ADD, 5, FUTEX_OP_CMP_EQ, 0);
    long r = futex(&words[0], FUTEX_WAKE_OP_PRIVATE, 1, (const struct timespec *)1, &words[1], op);
    CHECK(r == 2, "FUTEX_WAKE_OP returned %ld", r);
    CHECK(words[1] == 5, "FUTEX_WAKE_OP left %u", words[1]);
    wait_done(w, 2, 2, "FUTEX_WAKE_OP waiters");
    /* Comparison false: only the first word's waiters; op with a shift. */
    op = FUTEX_OP((FUTEX_OP_OR | FUTEX_OP_OPARG_SHIFT), 4, FUTEX_OP_CMP_GT, 100);
    r = futex(&words[0], FUTEX_WAKE_OP_PRIVATE, 1, (const struct timespec *)1, &words[1], op);
    CHECK(r == 0 && words[1] == (5 | 16), "FUTEX_WAKE_OP (or 1<<4): r %ld word %u", r, words[1]);
    join(t0);
    join(t1);
}

static void requeue(void)
{
    set_phase("FUTEX_CMP_REQUEUE");
    static _Alignas(8) unsigned words[2];
    words[0] = words[1] = 0;
    errno = 0;
    CHECK(futex(&words[0], FUTEX_CMP_REQUEUE_PRIVATE, 1, (const struct timespec *)1, &words[1], 3) == -1 &&
              errno == EAGAIN,
          "CMP_REQUEUE with a stale val3");
    struct waiter w[3];
    pthread_t t[3];
    for (int i = 0; i < 3; ++i) {
        w[i] = (struct waiter){.word = &words[0], .op = FUTEX_WAIT_PRIVATE};
        t[i] = spawn(waiter_main, &w[i]);
    }
    sleep_ms(150);
    /* Wake 1, requeue at most 1: the kernel reports woken + requeued. */
    long r = futex(&words[0], FUTEX_CMP_REQUEUE_PRIVATE, 1, (const struct timespec *)1, &words[1], 0);
    CHECK(r == 2, "CMP_REQUEUE(1, 1) with 3 waiters returned %ld", r);
    /* Everyone left must still be reachable through one of the words. */
    futex_wake_n(&words[1], FUTEX_WAKE_PRIVATE, INT_MAX);
    futex_wake_n(&words[0], FUTEX_WAKE_PRIVATE, INT_MAX);
    wait_done(w, 3, 3, "requeued waiters");
    for (int i = 0; i < 3; ++i) join(t[i]);
}

/* A shared futex in shared memory: a child process changes the word and
 * wakes it with the kernel's own call. */
static void cross_process(void)
{
    set_phase("shared futex woken by another process");
    unsigned *word = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(word != MAP_FAILED, "mmap");
    *word = 0;
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
        __atomic_store_n(word, 1, __ATOMIC_SEQ_CST);
        syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
        _exit(0);
    }
    long ticks = ticker_ticks();
    int64_t t0 = now_ns();
    while (__atomic_load_n(word, __ATOMIC_SEQ_CST) == 0) {
        long r = futex(word, FUTEX_WAIT, 0, NULL, NULL, 0);
        CHECK(r == 0 || errno == EAGAIN || errno == EINTR, "shared FUTEX_WAIT: %ld", r);
    }
    int64_t ms = (now_ns() - t0) / 1000000;
    CHECK(ms < 2000, "woken %lld ms after the child's wake", (long long)ms);
    ticker_expect(ticks, 20, "shared FUTEX_WAIT in a thread");
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
    munmap(word, 4096);
}

static void *cross_process_thread(void *arg)
{
    (void)arg;
    cross_process();
    return NULL;
}

/* A fiber waiting in FUTEX_WAIT parks only itself. */
static void *long_waiter(void *arg)
{
    unsigned *word = arg;
    while (__atomic_load_n(word, __ATOMIC_SEQ_CST) == 0) futex(word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    return NULL;
}

int main(void)
{
    watchdog(30);
    ticker_start();

    check_errors_and_timeouts("main");
    join(spawn(errors_thread, NULL));

    join(spawn(wake_counts_thread, NULL));
    wake_counts("native waker, private", FUTEX_WAIT_PRIVATE, FUTEX_WAKE_PRIVATE);

    set_phase("a thread wakes the main thread sleeping in the kernel");
    pthread_t waker = spawn(wake_main_later, NULL);
    while (__atomic_load_n(&g_native_word, __ATOMIC_SEQ_CST) == 0)
        futex(&g_native_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    long woke = (long)join(waker);
    CHECK(woke == 1 || woke == 0, "wake of the main thread returned %ld", woke);

    set_phase("a waiting thread does not stop the others");
    static unsigned long_word;
    long ticks = ticker_ticks();
    pthread_t lw = spawn(long_waiter, &long_word);
    sleep_ms(200);
    ticker_expect(ticks, 50, "FUTEX_WAIT in another thread");
    __atomic_store_n(&long_word, 1, __ATOMIC_SEQ_CST);
    CHECK(futex_wake_n(&long_word, FUTEX_WAKE_PRIVATE, 1) == 1, "wake of the long waiter");
    join_within(lw, 2000, "long waiter");

    bitsets();
    wake_op();
    requeue();
    join(spawn(cross_process_thread, NULL));

    ticker_stop();
    printf("t_futex_syscall: ok\n");
    return 0;
}
