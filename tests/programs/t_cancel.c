/* pthread_cancel and pthread_exit: deferred cancellation at cancellation
 * points (a thread blocked in read, nanosleep, pthread_cond_wait, sem_wait,
 * poll, accept, pthread_join), cancel state and type, pthread_testcancel,
 * cleanup handlers (pthread_cleanup_push, innermost first, in nested
 * frames) then key destructors, join result PTHREAD_CANCELED. */
#include "test_support.h"

#include <poll.h>
#include <semaphore.h>

static pthread_key_t g_key;
static char g_log[256];
static atomic_int g_log_len;

static void log_event(char c)
{
    int i = atomic_fetch_add(&g_log_len, 1);
    if (i < (int)sizeof g_log - 1) g_log[i] = c;
}

static void log_reset(void)
{
    memset(g_log, 0, sizeof g_log);
    atomic_store(&g_log_len, 0);
}

static void cleanup_log(void *arg) { log_event(*(const char *)arg); }
static void key_destructor(void *v) { log_event(*(const char *)v); }

static atomic_int g_started;

/* ---- blocked in a cancellation point ------------------------------------ */

enum blocker { IN_READ, IN_NANOSLEEP, IN_SEM_WAIT, IN_POLL, IN_ACCEPT, IN_COND_WAIT, IN_JOIN, IN_RECV };
static const char *blocker_name[] = {"read", "nanosleep", "sem_wait", "poll", "accept", "pthread_cond_wait",
                                     "pthread_join", "recv"};

static int g_pipe[2];
static sem_t g_sem;
static int g_listener, g_sock[2];
static pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;
static pthread_t g_forever;
static atomic_int g_returned_from_block;

static void *forever(void *arg)
{
    (void)arg;
    char c;
    read(g_pipe[0], &c, 1); /* until the end of the test: never written */
    return NULL;
}

static void unlock_mutex(void *m)
{
    log_event('m');
    pthread_mutex_unlock(m);
}

static void *blocked(void *arg)
{
    enum blocker b = (enum blocker)(intptr_t)arg;
    static const char key_mark = 'k', outer = 'o';
    pthread_setspecific(g_key, &key_mark);
    pthread_cleanup_push(cleanup_log, (void *)&outer);
    atomic_store(&g_started, 1);
    char c;
    switch (b) {
        case IN_READ: read(g_pipe[0], &c, 1); break;
        case IN_NANOSLEEP: {
            struct timespec ts = {20, 0};
            nanosleep(&ts, NULL);
            break;
        }
        case IN_SEM_WAIT: sem_wait(&g_sem); break;
        case IN_POLL: {
            struct pollfd p = {g_pipe[0], POLLIN, 0};
            poll(&p, 1, 20000);
            break;
        }
        case IN_ACCEPT: accept(g_listener, NULL, NULL); break;
        case IN_RECV: recv(g_sock[1], &c, 1, 0); break;
        case IN_COND_WAIT:
            pthread_mutex_lock(&g_mutex);
            pthread_cleanup_push(unlock_mutex, &g_mutex);
            for (;;) pthread_cond_wait(&g_cond, &g_mutex);
            pthread_cleanup_pop(1);
            break;
        case IN_JOIN: pthread_join(g_forever, NULL); break;
    }
    atomic_store(&g_returned_from_block, 1);
    pthread_cleanup_pop(0);
    return (void *)1;
}

static void cancel_blocked(enum blocker b)
{
    char phase[96];
    snprintf(phase, sizeof phase, "cancel a thread blocked in %s", blocker_name[b]);
    set_phase(phase);
    log_reset();
    atomic_store(&g_started, 0);
    atomic_store(&g_returned_from_block, 0);
    pthread_t t = spawn(blocked, (void *)(intptr_t)b);
    while (!atomic_load(&g_started)) sleep_ms(1);
    sleep_ms(100); /* let it block */
    long ticks = ticker_ticks();
    int64_t t0 = now_ns();
    CHECK(pthread_cancel(t) == 0, "pthread_cancel");
    void *ret = join_within(t, 3000, phase);
    CHECK(ret == PTHREAD_CANCELED, "%s: join result %p, expected PTHREAD_CANCELED", blocker_name[b], ret);
    CHECK(!atomic_load(&g_returned_from_block), "%s returned to its caller: the cancel was not acted on inside it",
          blocker_name[b]);
    int64_t ms = (now_ns() - t0) / 1000000;
    CHECK(ms < 2000, "cancel took %lld ms", (long long)ms);
    /* Cleanup handlers innermost first, then key destructors. */
    const char *want = b == IN_COND_WAIT ? "mok" : "ok";
    CHECK(strcmp(g_log, want) == 0, "%s: cleanup order '%s', expected '%s'", blocker_name[b], g_log, want);
    (void)ticks;
}

/* ---- state, type, testcancel ------------------------------------------- */

static atomic_int g_go;

static void *disabled_then_enabled(void *arg)
{
    (void)arg;
    int old = -1;
    CHECK(pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old) == 0 && old == PTHREAD_CANCEL_ENABLE,
          "setcancelstate(DISABLE) old %d", old);
    atomic_store(&g_started, 1);
    int64_t t0 = now_ns();
    sleep_ms(200); /* cancelled meanwhile: not acted on, the sleep is whole */
    CHECK(now_ns() - t0 >= 195000000, "a sleep with cancellation disabled was cut short");
    CHECK(pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old) == 0 && old == PTHREAD_CANCEL_DISABLE,
          "setcancelstate(ENABLE) old %d", old);
    log_event('e'); /* enabling (deferred type) does not act */
    pthread_testcancel();
    log_event('X');
    return NULL;
}

static void *pending_before_point(void *arg)
{
    (void)arg;
    atomic_store(&g_started, 1);
    while (!atomic_load(&g_go)) {
    } /* no cancellation point while the request arrives */
    log_event('r');
    char c;
    read(g_pipe[0], &c, 1); /* acted on at entry: never blocks */
    log_event('X');
    return NULL;
}

static void *async_self(void *arg)
{
    (void)arg;
    int old = -1;
    CHECK(pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, &old) == 0 && old == PTHREAD_CANCEL_DEFERRED,
          "setcanceltype(ASYNCHRONOUS) old %d", old);
    log_event('a');
    pthread_cancel(pthread_self()); /* asynchronous: ends here */
    log_event('X');
    return NULL;
}

static void state_and_type(void)
{
    set_phase("cancel state: disabled, then enabled and tested");
    log_reset();
    atomic_store(&g_started, 0);
    pthread_t t = spawn(disabled_then_enabled, NULL);
    while (!atomic_load(&g_started)) sleep_ms(1);
    sleep_ms(20);
    CHECK(pthread_cancel(t) == 0, "pthread_cancel");
    void *ret = join_within(t, 3000, "disabled thread");
    CHECK(ret == PTHREAD_CANCELED, "join result %p", ret);
    CHECK(strcmp(g_log, "e") == 0, "log '%s', expected 'e'", g_log);

    set_phase("a request pending before the cancellation point");
    log_reset();
    atomic_store(&g_started, 0);
    atomic_store(&g_go, 0);
    t = spawn(pending_before_point, NULL);
    while (!atomic_load(&g_started)) sleep_ms(1);
    CHECK(pthread_cancel(t) == 0, "pthread_cancel");
    atomic_store(&g_go, 1);
    ret = join_within(t, 3000, "pending request");
    CHECK(ret == PTHREAD_CANCELED && strcmp(g_log, "r") == 0, "join result %p log '%s'", ret, g_log);

    set_phase("asynchronous type, cancelling itself");
    log_reset();
    t = spawn(async_self, NULL);
    ret = join_within(t, 3000, "async self-cancel");
    CHECK(ret == PTHREAD_CANCELED && strcmp(g_log, "a") == 0, "join result %p log '%s'", ret, g_log);

    set_phase("bad arguments");
    int old;
    CHECK(pthread_setcancelstate(7, &old) == EINVAL, "setcancelstate(7)");
    CHECK(pthread_setcanceltype(7, &old) == EINVAL, "setcanceltype(7)");
}

/* ---- pthread_exit from nested frames ------------------------------------ */

static const char mark_a = 'a', mark_b = 'b', mark_c = 'c', mark_k = 'k', mark_p = 'p';

static void level0(void)
{
    pthread_cleanup_push(cleanup_log, (void *)&mark_c);
    pthread_exit((void *)42);
    pthread_cleanup_pop(0);
}

static void level1(void)
{
    pthread_cleanup_push(cleanup_log, (void *)&mark_c);
    level0();
    pthread_cleanup_pop(0);
}

static void level2(void)
{
    pthread_cleanup_push(cleanup_log, (void *)&mark_c);
    level1();
    pthread_cleanup_pop(0);
}

static void *nested_exit(void *arg)
{
    (void)arg;
    pthread_setspecific(g_key, &mark_k);
    pthread_cleanup_push(cleanup_log, (void *)&mark_a);
    pthread_cleanup_push(cleanup_log, (void *)&mark_p);
    pthread_cleanup_pop(1); /* runs now */
    pthread_cleanup_push(cleanup_log, (void *)&mark_b);
    pthread_cleanup_push(cleanup_log, (void *)&mark_p);
    pthread_cleanup_pop(0); /* does not run */
    level2();
    pthread_cleanup_pop(0);
    pthread_cleanup_pop(0);
    return NULL;
}

int main(void)
{
    watchdog(60);
    CHECK(pipe(g_pipe) == 0, "pipe");
    CHECK(sem_init(&g_sem, 0, 0) == 0, "sem_init");
    g_listener = tcp_listener(NULL, 4);
    tcp_pair(&g_sock[0], &g_sock[1]);
    CHECK(pthread_key_create(&g_key, key_destructor) == 0, "pthread_key_create");
    ticker_start();
    g_forever = spawn(forever, NULL);

    for (int b = IN_READ; b <= IN_RECV; ++b) cancel_blocked((enum blocker)b);

    set_phase("the mutex the cancelled condvar waiter unlocked is free");
    CHECK(pthread_mutex_trylock(&g_mutex) == 0, "mutex still held after the cancelled waiter's cleanup");
    pthread_mutex_unlock(&g_mutex);

    state_and_type();

    set_phase("pthread_exit from nested frames runs every cleanup handler, then key destructors");
    log_reset();
    void *ret = join_within(spawn(nested_exit, NULL), 3000, "nested exit");
    CHECK(ret == (void *)42, "join result %p", ret);
    CHECK(strcmp(g_log, "pcccbak") == 0, "order '%s', expected 'pcccbak'", g_log);

    set_phase("cancelling an exited, unjoined thread");
    pthread_t t = spawn(async_self, NULL);
    sleep_ms(50);
    int rc = pthread_cancel(t);
    CHECK(rc == 0, "pthread_cancel of an exited thread returned %d", rc);
    join(t);

    set_phase("wrap up");
    long ticks = ticker_ticks();
    sleep_ms(50);
    ticker_expect(ticks, 10, "the ticker after the cancellations");
    ticker_stop();
    CHECK(write(g_pipe[1], "x", 1) == 1, "write");
    join_within(g_forever, 2000, "the thread reading the pipe");
    printf("t_cancel: ok\n");
    return 0;
}
