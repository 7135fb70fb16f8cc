/*
 * t_signal_connect.c — a blocking connect() interrupted by a signal handler,
 * exactly as Linux does it. The connect blocks because the listener's
 * accept queue is full (backlog 0 holds one connection; further SYNs are
 * dropped and retransmitted after ~1 s).
 *   - without SA_RESTART: -1/EINTR, the handshake goes on in the kernel; a
 *     non-blocking connect() then says EALREADY; once there is room, a
 *     blocking connect() waits for that same handshake and returns 0; one
 *     more connect() says EISCONN;
 *   - with SA_RESTART: the connect is restarted, continues the same
 *     attempt, and returns 0 once there is room.
 * The handler runs in the connecting thread; a ticker keeps ticking.
 */
#include "signal_support.h"

#include <fcntl.h>

static atomic_int g_hits;
static pthread_t g_handler_thread;
static atomic_int g_blocking;
static struct sockaddr_in g_addr;

static void on_usr1(int sig)
{
    (void)sig;
    g_handler_thread = pthread_self();
    atomic_fetch_add(&g_hits, 1);
}

static void set_nonblocking(int fd, int on_)
{
    int fl = fcntl(fd, F_GETFL);
    CHECK(fcntl(fd, F_SETFL, on_ ? fl | O_NONBLOCK : fl & ~O_NONBLOCK) == 0, "F_SETFL");
}

static void *connect_eintr(void *arg)
{
    int fd = *(int *)arg;
    int hits = atomic_load(&g_hits);
    atomic_store(&g_blocking, 1);
    errno = 0;
    int r = connect(fd, (struct sockaddr *)&g_addr, sizeof g_addr);
    CHECK(r == -1 && errno == EINTR, "connect returned %d, expected -1/EINTR", r);
    CHECK(atomic_load(&g_hits) == hits + 1 && pthread_equal(g_handler_thread, pthread_self()),
          "the handler did not run in the connecting thread");
    set_nonblocking(fd, 1);
    errno = 0;
    r = connect(fd, (struct sockaddr *)&g_addr, sizeof g_addr);
    CHECK(r == -1 && errno == EALREADY, "non-blocking connect after EINTR returned %d errno %d, expected EALREADY",
          r, errno);
    set_nonblocking(fd, 0);
    atomic_store(&g_blocking, 2);
    /* main makes room in the accept queue: the retransmitted SYN gets in. */
    r = connect(fd, (struct sockaddr *)&g_addr, sizeof g_addr);
    CHECK(r == 0, "blocking connect continuing the handshake returned %d errno %d", r, errno);
    errno = 0;
    r = connect(fd, (struct sockaddr *)&g_addr, sizeof g_addr);
    CHECK(r == -1 && errno == EISCONN, "connect on a connected socket returned %d errno %d", r, errno);
    return NULL;
}

static void *connect_restart(void *arg)
{
    int fd = *(int *)arg;
    int hits = atomic_load(&g_hits);
    atomic_store(&g_blocking, 1);
    int r = connect(fd, (struct sockaddr *)&g_addr, sizeof g_addr);
    CHECK(r == 0, "restarted connect returned %d errno %d", r, errno);
    CHECK(atomic_load(&g_hits) == hits + 1 && pthread_equal(g_handler_thread, pthread_self()),
          "the handler did not run in the connecting thread");
    return NULL;
}

int main(void)
{
    sig_watchdog(30);
    ticker_start();
    int l = tcp_listener(&g_addr, 0);
    int first = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(connect(first, (struct sockaddr *)&g_addr, sizeof g_addr) == 0, "first connect fills the queue");

    set_phase("connect interrupted, no SA_RESTART");
    on(SIGUSR1, on_usr1, 0);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    long ticks = ticker_ticks();
    pthread_t t = spawn(connect_eintr, &fd);
    wait_flag(&g_blocking);
    sleep_ms(100);
    CHECK(pthread_kill(t, SIGUSR1) == 0, "pthread_kill");
    while (atomic_load(&g_blocking) != 2) sleep_ms(1);
    sleep_ms(50);
    int s1 = accept(l, NULL, NULL);
    CHECK(s1 >= 0, "accept the first connection");
    join_within(t, 8000, "connect after EINTR");
    ticker_expect(ticks, 20, "interrupted connect");

    set_phase("connect interrupted, SA_RESTART");
    /* The queue holds fd's connection now: the next connect blocks. */
    on(SIGUSR1, on_usr1, SA_RESTART);
    int fd2 = socket(AF_INET, SOCK_STREAM, 0);
    atomic_store(&g_blocking, 0);
    ticks = ticker_ticks();
    t = spawn(connect_restart, &fd2);
    wait_flag(&g_blocking);
    sleep_ms(100);
    CHECK(pthread_kill(t, SIGUSR1) == 0, "pthread_kill");
    sleep_ms(100);
    int s2 = accept(l, NULL, NULL);
    CHECK(s2 >= 0, "accept the second connection");
    join_within(t, 8000, "restarted connect");
    ticker_expect(ticks, 20, "restarted connect");

    close(s1);
    close(s2);
    close(fd);
    close(fd2);
    close(first);
    close(l);
    ticker_stop();
    puts("ok");
    return 0;
}
