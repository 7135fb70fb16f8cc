/* t_poll_spin — a thread that spins on poll, select or epoll_wait calls
 * that return at once (a ready fd, with a zero or a long timeout) until another
 * thread has done its work: the other thread must get to run (natively the
 * kernel preempts the spinner). Under greenld with one hub both are fibers
 * of the same OS thread, and the spinner must give the hub back now and
 * then. The other thread sleeps first, so it needs the hub's timers too.
 * redis-benchmark --threads spins like this. Passes natively and under
 * greenld. */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <unistd.h>

#include "test_support.h"

static atomic_int g_done;
static int g_pipe[2];  /* the write end is always writable */
static int g_epfd;
static const char *g_kind;

static void *worker(void *arg)
{
    (void)arg;
    sleep_ms(20);
    atomic_store(&g_done, 1);
    return NULL;
}

static long spin_once(void)
{
    if (g_kind[0] == 'p' || g_kind[0] == 'P') {
        struct pollfd p = {.fd = g_pipe[1], .events = POLLOUT};
        return poll(&p, 1, g_kind[0] == 'P' ? 1000 : 0);
    }
    if (g_kind[0] == 's') {
        fd_set w;
        FD_ZERO(&w);
        FD_SET(g_pipe[1], &w);
        struct timeval tv = {0, 0};
        return select(g_pipe[1] + 1, NULL, &w, NULL, &tv);
    }
    struct epoll_event ev;
    return epoll_wait(g_epfd, &ev, 1, 0);
}

static void *spinner(void *arg)
{
    (void)arg;
    atomic_store(&g_done, 0);
    pthread_t t = spawn(worker, NULL);
    long calls = 0;
    while (!atomic_load(&g_done)) {
        CHECK(spin_once() == 1, "%s: the writable pipe is not reported", g_kind);
        calls++;
        CHECK(calls < 50000000, "%s: the other thread never ran", g_kind);
    }
    join(t);
    return NULL;
}

int main(void)
{
    watchdog(30);
    CHECK_EQ(pipe(g_pipe), 0);
    g_epfd = epoll_create1(0);
    CHECK(g_epfd >= 0, "epoll_create1");
    struct epoll_event ev = {.events = EPOLLOUT, .data.fd = g_pipe[1]};
    CHECK_EQ(epoll_ctl(g_epfd, EPOLL_CTL_ADD, g_pipe[1], &ev), 0);
    const char *kinds[] = {"poll with a ready fd", "Poll with a ready fd and a 1 s timeout",
                           "select with a ready fd", "epoll_wait with a ready fd"};
    for (int i = 0; i < 4; i++) {
        g_kind = kinds[i];
        set_phase(g_kind);
        join(spawn(spinner, NULL));
    }
    printf("t_poll_spin: ok\n");
    return 0;
}
