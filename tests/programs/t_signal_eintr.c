/*
 * t_signal_eintr.c — a signal handler interrupts a blocked call
 * (signal(7), "Interruption of system calls and library functions by signal
 * handlers"): the handler runs in the thread the signal was sent to, while
 * that thread is blocked; then the call fails with EINTR or, under
 * SA_RESTART, goes on — as Linux decides per call:
 *   read on a pipe, accept: EINTR, or restarted with SA_RESTART;
 *   recv with SO_RCVTIMEO set: EINTR even with SA_RESTART;
 *   poll, select, epoll_wait, nanosleep, clock_nanosleep, usleep, sleep:
 *     always EINTR (with the time left where the call reports it);
 *   sem_wait: EINTR, restarted with SA_RESTART; sem_timedwait: always EINTR;
 *   pthread_mutex_lock: never EINTR, the handler still runs.
 * Then the classic alarm pattern: a timer's SIGALRM around a blocking read in
 * the main thread, and in a thread while every other thread blocks SIGALRM
 * (so the kernel can only pick that thread). A ticker thread proves that
 * every blocked call parked only its caller.
 */
#include "signal_support.h"

#include <poll.h>
#include <semaphore.h>
#include <sys/epoll.h>
#include <sys/select.h>

static atomic_int g_hits;
static pthread_t g_handler_thread;
static atomic_int g_blocking;

static void on_signal(int sig)
{
    (void)sig;
    g_handler_thread = pthread_self();
    atomic_fetch_add(&g_hits, 1);
}

/* Each case: a thread makes a blocking call; the main thread waits until it
 * is about to block, sends it SIGUSR1 100 ms later, then (optionally)
 * satisfies the call. The case checks its own result. */
struct scase {
    const char *name;
    void *(*body)(void *);
    void (*after_signal)(struct scase *);
    int restart;  /* SA_RESTART for SIGUSR1 */
    int fds[2];
    sem_t sem;
    pthread_mutex_t mutex;
    struct sockaddr_in addr;
};

static void enter_block(void) { atomic_store(&g_blocking, 1); }

static void expect_handler_ran_here(const char *what, int hits_before)
{
    CHECK(atomic_load(&g_hits) == hits_before + 1, "%s: the handler ran %d times, expected once", what,
          atomic_load(&g_hits) - hits_before);
    CHECK(pthread_equal(g_handler_thread, pthread_self()), "%s: the handler ran in another thread", what);
}

static void run_case(struct scase *c)
{
    set_phase(c->name);
    on(SIGUSR1, on_signal, c->restart ? SA_RESTART : 0);
    atomic_store(&g_blocking, 0);
    long ticks = ticker_ticks();
    pthread_t t = spawn(c->body, c);
    wait_flag(&g_blocking);
    sleep_ms(100);
    CHECK(pthread_kill(t, SIGUSR1) == 0, "pthread_kill");
    if (c->after_signal) {
        sleep_ms(100);
        c->after_signal(c);
    }
    join_within(t, 5000, c->name);
    ticker_expect(ticks, 20, c->name);
}

/* ---- read on a pipe ---- */

static void *read_pipe(void *arg)
{
    struct scase *c = arg;
    int hits = atomic_load(&g_hits);
    char buf[16];
    enter_block();
    errno = 0;
    ssize_t n = read(c->fds[0], buf, sizeof buf);
    expect_handler_ran_here(c->name, hits);
    if (c->restart) {
        CHECK(n == 5 && memcmp(buf, "hello", 5) == 0, "restarted read returned %zd", n);
    } else {
        CHECK(n == -1 && errno == EINTR, "read returned %zd, expected -1/EINTR", n);
    }
    return NULL;
}

static void write_hello(struct scase *c) { CHECK(write(c->fds[1], "hello", 5) == 5, "write"); }

/* ---- recv with SO_RCVTIMEO: never restarted ---- */

static void *recv_with_timeout(void *arg)
{
    struct scase *c = arg;
    int hits = atomic_load(&g_hits);
    struct timeval tv = {5, 0};
    CHECK(setsockopt(c->fds[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0, "SO_RCVTIMEO");
    char buf[16];
    enter_block();
    errno = 0;
    ssize_t n = recv(c->fds[0], buf, sizeof buf, 0);
    expect_handler_ran_here(c->name, hits);
    CHECK(n == -1 && errno == EINTR, "recv with SO_RCVTIMEO under SA_RESTART returned %zd, expected EINTR", n);
    return NULL;
}

/* ---- accept ---- */

static void *accept_call(void *arg)
{
    struct scase *c = arg;
    int hits = atomic_load(&g_hits);
    enter_block();
    errno = 0;
    int fd = accept(c->fds[0], NULL, NULL);
    expect_handler_ran_here(c->name, hits);
    if (c->restart) {
        CHECK(fd >= 0, "restarted accept failed");
        close(fd);
    } else {
        CHECK(fd == -1 && errno == EINTR, "accept returned %d, expected -1/EINTR", fd);
    }
    return NULL;
}

static void connect_to_listener(struct scase *c)
{
    c->fds[1] = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(connect(c->fds[1], (struct sockaddr *)&c->addr, sizeof c->addr) == 0, "connect");
}

/* ---- calls that never restart ---- */

static void *never_restarted(void *arg)
{
    struct scase *c = arg;
    int hits = atomic_load(&g_hits);
    enter_block();
    errno = 0;
    if (strstr(c->name, "epoll")) {
        int ep = epoll_create1(0);
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = c->fds[0]};
        CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, c->fds[0], &ev) == 0, "epoll_ctl");
        int n = epoll_wait(ep, &ev, 1, 5000);
        CHECK(n == -1 && errno == EINTR, "epoll_wait returned %d, expected -1/EINTR", n);
        close(ep);
    } else if (strstr(c->name, "poll")) {
        struct pollfd p = {c->fds[0], POLLIN, 0};
        int r = poll(&p, 1, 5000);
        CHECK(r == -1 && errno == EINTR, "poll returned %d, expected -1/EINTR", r);
    } else if (strstr(c->name, "select")) {
        fd_set r;
        FD_ZERO(&r);
        FD_SET(c->fds[0], &r);
        struct timeval tv = {5, 0};
        int n = select(c->fds[0] + 1, &r, NULL, NULL, &tv);
        CHECK(n == -1 && errno == EINTR, "select returned %d, expected -1/EINTR", n);
        CHECK(FD_ISSET(c->fds[0], &r), "select changed the read set on EINTR");
        CHECK(tv.tv_sec >= 3 && tv.tv_sec < 5, "select left %ld s in the timeout, expected the time not slept",
              (long)tv.tv_sec);
    } else if (strstr(c->name, "clock_nanosleep")) {
        struct timespec req = {2, 0}, rem = {0, 0};
        int rc = clock_nanosleep(CLOCK_MONOTONIC, 0, &req, &rem);
        CHECK(rc == EINTR, "clock_nanosleep returned %d, expected EINTR", rc);
        CHECK(rem.tv_sec == 1, "clock_nanosleep: %ld.%09ld s left, expected 1.x", (long)rem.tv_sec, rem.tv_nsec);
    } else if (strstr(c->name, "nanosleep")) {
        struct timespec req = {2, 0}, rem = {0, 0};
        int r = nanosleep(&req, &rem);
        CHECK(r == -1 && errno == EINTR, "nanosleep returned %d, expected -1/EINTR", r);
        CHECK(rem.tv_sec == 1, "nanosleep: %ld.%09ld s left, expected 1.x", (long)rem.tv_sec, rem.tv_nsec);
    } else if (strstr(c->name, "usleep")) {
        int r = usleep(2000000);
        CHECK(r == -1 && errno == EINTR, "usleep returned %d, expected -1/EINTR", r);
    } else if (strstr(c->name, "sleep")) {
        unsigned left = sleep(3);
        CHECK(left == 2, "sleep(3) interrupted after ~0.1 s returned %u, expected 2", left);
        CHECK(errno == EINTR, "sleep: errno %d, expected EINTR", errno);
    } else if (strstr(c->name, "sem_timedwait")) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 5;
        int r = sem_timedwait(&c->sem, &ts);
        CHECK(r == -1 && errno == EINTR, "sem_timedwait returned %d, expected -1/EINTR", r);
    }
    expect_handler_ran_here(c->name, hits);
    return NULL;
}

/* ---- sem_wait ---- */

static void *sem_wait_call(void *arg)
{
    struct scase *c = arg;
    int hits = atomic_load(&g_hits);
    enter_block();
    errno = 0;
    int r = sem_wait(&c->sem);
    expect_handler_ran_here(c->name, hits);
    if (c->restart)
        CHECK(r == 0, "restarted sem_wait returned %d", r);
    else
        CHECK(r == -1 && errno == EINTR, "sem_wait returned %d, expected -1/EINTR", r);
    return NULL;
}

static void post_sem(struct scase *c) { sem_post(&c->sem); }

/* ---- pthread_mutex_lock: the handler runs, the lock is not interrupted ---- */

static void *mutex_lock_call(void *arg)
{
    struct scase *c = arg;
    int hits = atomic_load(&g_hits);
    enter_block();
    int r = pthread_mutex_lock(&c->mutex);
    CHECK(r == 0, "pthread_mutex_lock returned %d", r);
    expect_handler_ran_here(c->name, hits);
    pthread_mutex_unlock(&c->mutex);
    return NULL;
}

static void unlock_mutex(struct scase *c) { pthread_mutex_unlock(&c->mutex); }

/* ---- SIGALRM around a blocking read ---- */

static atomic_int g_alarm_reader_ready;

static void *alarm_reader(void *arg)
{
    int *p = arg;
    unblock(SIGALRM);
    int hits = atomic_load(&g_hits);
    itimer_ms(100, 0);
    atomic_store(&g_alarm_reader_ready, 1);
    char buf[8];
    errno = 0;
    ssize_t n = read(p[0], buf, sizeof buf);
    CHECK(n == -1 && errno == EINTR, "read in a thread around SIGALRM returned %zd, expected -1/EINTR", n);
    expect_handler_ran_here("alarm in a thread", hits);
    return NULL;
}

int main(void)
{
    sig_watchdog(40);
    /* Only the threads that unblock SIGALRM themselves can take it. */
    block(SIGALRM);
    ticker_start();

    struct scase c;
    memset(&c, 0, sizeof c);

    for (int restart = 0; restart < 2; ++restart) {
        c.restart = restart;
        CHECK(pipe(c.fds) == 0, "pipe");
        c.name = restart ? "read on a pipe, SA_RESTART" : "read on a pipe";
        c.body = read_pipe;
        c.after_signal = restart ? write_hello : NULL;
        run_case(&c);
        close(c.fds[0]);
        close(c.fds[1]);

        int l = tcp_listener(&c.addr, 4);
        c.fds[0] = l;
        c.fds[1] = -1;
        c.name = restart ? "accept, SA_RESTART" : "accept";
        c.body = accept_call;
        c.after_signal = restart ? connect_to_listener : NULL;
        run_case(&c);
        close(l);
        if (c.fds[1] >= 0) close(c.fds[1]);

        CHECK(sem_init(&c.sem, 0, 0) == 0, "sem_init");
        c.name = restart ? "sem_wait, SA_RESTART" : "sem_wait";
        c.body = sem_wait_call;
        c.after_signal = restart ? post_sem : NULL;
        run_case(&c);
        sem_destroy(&c.sem);
    }

    c.restart = 1;
    unix_pair(c.fds, SOCK_STREAM);
    c.name = "recv with SO_RCVTIMEO, SA_RESTART";
    c.body = recv_with_timeout;
    c.after_signal = NULL;
    run_case(&c);
    close(c.fds[0]);
    close(c.fds[1]);

    static const char *never[] = {"poll", "select", "epoll_wait", "nanosleep", "clock_nanosleep", "usleep", "sleep",
                                  "sem_timedwait"};
    CHECK(pipe(c.fds) == 0, "pipe");
    CHECK(sem_init(&c.sem, 0, 0) == 0, "sem_init");
    for (size_t i = 0; i < sizeof never / sizeof never[0]; ++i) {
        char name[64];
        snprintf(name, sizeof name, "%s, SA_RESTART", never[i]);
        c.name = name;
        c.body = never_restarted;
        run_case(&c);
    }
    close(c.fds[0]);
    close(c.fds[1]);

    pthread_mutex_init(&c.mutex, NULL);
    pthread_mutex_lock(&c.mutex);
    c.restart = 0;
    c.name = "pthread_mutex_lock";
    c.body = mutex_lock_call;
    c.after_signal = unlock_mutex;
    run_case(&c);

    /* The classic pattern in the main thread: the only one not blocking
     * SIGALRM while it reads. */
    set_phase("alarm around a read in the main thread");
    on(SIGALRM, on_signal, 0);
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    unblock(SIGALRM);
    int hits = atomic_load(&g_hits);
    itimer_ms(100, 0);
    char buf[8];
    errno = 0;
    ssize_t n = read(p[0], buf, sizeof buf);
    CHECK(n == -1 && errno == EINTR, "read in main around SIGALRM returned %zd, expected -1/EINTR", n);
    expect_handler_ran_here("alarm in main", hits);
    block(SIGALRM);

    /* The same in a thread: main and the ticker block SIGALRM, so the
     * kernel can deliver the process-directed SIGALRM only to the reader. */
    set_phase("alarm around a read in a thread");
    long ticks = ticker_ticks();
    pthread_t t = spawn(alarm_reader, p);
    wait_flag(&g_alarm_reader_ready);
    join_within(t, 5000, "alarm reader");
    ticker_expect(ticks, 20, "alarm in a thread");
    close(p[0]);
    close(p[1]);

    ticker_stop();
    puts("ok");
    return 0;
}
