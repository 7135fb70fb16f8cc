/*
 * t_prefork_accept — a prefork server: one blocking listener, inherited by
 * 3 forked children; the parent and each child run 4 threads blocked in
 * accept() on it, plus a ticker thread that records the longest gap
 * between its 1 ms ticks. The parent's main thread connects 200 times in a
 * row (each connection: 1 byte in, the acceptor's pid back), then stays
 * quiet for 600 ms. Every connection is served exactly once; the accept
 * counts of the 4 processes add up to 200; and in every process the ticker
 * never stalled for as long as the quiet period: a thread that loses an
 * accept race to another process must not block the others (under greenld,
 * its hub) until the next connection comes.
 */
#include "test_support.h"

#include <sys/wait.h>

#define CHILDREN 3
#define ACCEPTORS 4
#define CONNECTIONS 200
#define QUIET_MS 600

static int g_listener;
static atomic_int g_accepted;
static atomic_int g_stop;
static atomic_long g_max_gap_ns;

static void *acceptor_main(void *arg)
{
    (void)arg;
    for (;;) {
        int c = accept(g_listener, NULL, NULL);
        CHECK(c >= 0, "accept");
        char byte;
        CHECK(read(c, &byte, 1) == 1, "read the request byte");
        int pid = (int)getpid();
        atomic_fetch_add(&g_accepted, 1); /* before the reply: the client counts after it */
        CHECK(write(c, &pid, sizeof pid) == (ssize_t)sizeof pid, "write the reply");
        close(c);
    }
    return NULL;
}

static void *gap_ticker_main(void *arg)
{
    (void)arg;
    int64_t last = now_ns();
    while (!atomic_load(&g_stop)) {
        sleep_ms(1);
        int64_t now = now_ns();
        if (now - last > atomic_load(&g_max_gap_ns)) atomic_store(&g_max_gap_ns, now - last);
        last = now;
    }
    return NULL;
}

/* The server side of one process: acceptors and the gap ticker. */
static pthread_t start_server(void)
{
    for (int i = 0; i < ACCEPTORS; ++i) {
        pthread_t t = spawn(acceptor_main, NULL);
        pthread_detach(t);
    }
    return spawn(gap_ticker_main, NULL);
}

struct report {
    int accepted;
    long max_gap_ns;
};

static void child(int control, int report)
{
    pthread_t ticker = start_server();
    char go;
    /* main stays native: it waits here for the parent's "stop". */
    CHECK(read(control, &go, 1) == 1, "child: read stop");
    atomic_store(&g_stop, 1);
    join(ticker);
    struct report r = {atomic_load(&g_accepted), atomic_load(&g_max_gap_ns)};
    CHECK(write(report, &r, sizeof r) == (ssize_t)sizeof r, "child: report");
    _exit(0);
}

int main(void)
{
    watchdog(20);
    struct sockaddr_in addr;
    g_listener = tcp_listener(&addr, 256);
    pid_t pids[CHILDREN];
    int control[CHILDREN], report[CHILDREN];
    set_phase("fork");
    for (int i = 0; i < CHILDREN; ++i) {
        int c[2], r[2];
        CHECK(pipe(c) == 0 && pipe(r) == 0, "pipe");
        pids[i] = fork();
        CHECK(pids[i] >= 0, "fork");
        if (pids[i] == 0) {
            close(c[1]);
            close(r[0]);
            for (int j = 0; j < i; ++j) {
                close(control[j]);
                close(report[j]);
            }
            child(c[0], r[1]);
        }
        close(c[0]);
        close(r[1]);
        control[i] = c[1];
        report[i] = r[0];
    }
    pthread_t ticker = start_server();
    sleep_ms(100); /* every process's acceptors are waiting */

    set_phase("connect 200 times");
    int served_by_parent = 0, served_by_child = 0;
    for (int i = 0; i < CONNECTIONS; ++i) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        CHECK(s >= 0, "socket");
        CHECK(connect(s, (struct sockaddr *)&addr, sizeof addr) == 0, "connect %d", i);
        CHECK(write(s, "x", 1) == 1, "request %d", i);
        int pid = 0;
        CHECK(read(s, &pid, sizeof pid) == (ssize_t)sizeof pid, "reply %d", i);
        if (pid == (int)getpid()) {
            ++served_by_parent;
        } else {
            int known = 0;
            for (int j = 0; j < CHILDREN; ++j) known |= pid == (int)pids[j];
            CHECK(known, "reply from unknown pid %d", pid);
            ++served_by_child;
        }
        close(s);
    }
    set_phase("quiet period");
    sleep_ms(QUIET_MS);

    set_phase("collect reports");
    atomic_store(&g_stop, 1);
    join(ticker);
    int total = atomic_load(&g_accepted);
    CHECK(total == served_by_parent, "parent counted %d, clients saw %d", total, served_by_parent);
    long parent_gap = atomic_load(&g_max_gap_ns);
    CHECK(parent_gap < QUIET_MS / 2 * 1000000L, "parent: the ticker stalled for %ld ms", parent_gap / 1000000);
    for (int i = 0; i < CHILDREN; ++i) {
        CHECK(write(control[i], "s", 1) == 1, "stop child %d", i);
        struct report r;
        CHECK(read(report[i], &r, sizeof r) == (ssize_t)sizeof r, "report of child %d", i);
        CHECK(r.max_gap_ns < QUIET_MS / 2 * 1000000L, "child %d: the ticker stalled for %ld ms", i,
              r.max_gap_ns / 1000000);
        total += r.accepted;
        int status;
        CHECK(waitpid(pids[i], &status, 0) == pids[i], "waitpid");
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d status %x", i, status);
    }
    CHECK(total == CONNECTIONS, "%d connections accepted in all, expected %d", total, CONNECTIONS);
    CHECK(served_by_parent + served_by_child == CONNECTIONS, "replies");
    printf("t_prefork_accept: ok (parent served %d, children %d)\n", served_by_parent, served_by_child);
    return 0;
}
