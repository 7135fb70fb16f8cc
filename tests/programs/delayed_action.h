/*
 * delayed_action.h — something happens to an fd after a delay, in another
 * created thread: what the readiness tests (t_poll, t_select,
 * t_epoll_loops) wait for. Include after test_support.h.
 *
 *   struct delayed d;
 *   start_delayed(&d, 50, ACT_WRITE, fd);   returns at once
 *   ... block on fd ...                     d.at_ns: the clock just before
 *   join(d.thread);                         the action, to prove the wait
 *                                           did not return before it
 */
#ifndef GREENLD_DELAYED_ACTION_H
#define GREENLD_DELAYED_ACTION_H

#include "test_support.h"

enum action {
    ACT_WRITE,   /* one byte */
    ACT_CLOSE,
    ACT_SHUT_WR, /* shutdown(SHUT_WR) */
    ACT_OOB,     /* one byte of TCP urgent data */
    ACT_DRAIN,   /* read and discard n bytes */
    ACT_CONNECT, /* a TCP connection to addr */
    ACT_EVENTFD, /* add 1 to an eventfd */
};

struct delayed {
    int ms;
    enum action act;
    int fd;
    size_t n;                 /* ACT_DRAIN: bytes to read */
    struct sockaddr_in addr;  /* ACT_CONNECT */
    int64_t at_ns;            /* clock just before the action */
    int made_fd;              /* ACT_CONNECT: the connected socket */
    pthread_t thread;
};

static void *delayed_main(void *arg)
{
    struct delayed *d = arg;
    sleep_ms(d->ms);
    d->at_ns = now_ns();
    uint64_t one = 1;
    switch (d->act) {
    case ACT_WRITE:
        CHECK(write(d->fd, "x", 1) == 1, "delayed write to fd %d", d->fd);
        break;
    case ACT_CLOSE:
        CHECK(close(d->fd) == 0, "delayed close of fd %d", d->fd);
        break;
    case ACT_SHUT_WR:
        CHECK(shutdown(d->fd, SHUT_WR) == 0, "delayed shutdown of fd %d", d->fd);
        break;
    case ACT_OOB:
        CHECK(send(d->fd, "!", 1, MSG_OOB) == 1, "delayed send(MSG_OOB) on fd %d", d->fd);
        break;
    case ACT_DRAIN:
        discard_exact(d->fd, d->n);
        break;
    case ACT_CONNECT:
        d->made_fd = socket(AF_INET, SOCK_STREAM, 0);
        CHECK(d->made_fd >= 0, "socket");
        CHECK(connect(d->made_fd, (struct sockaddr *)&d->addr, sizeof d->addr) == 0, "delayed connect");
        break;
    case ACT_EVENTFD:
        CHECK(write(d->fd, &one, 8) == 8, "delayed eventfd write to fd %d", d->fd);
        break;
    }
    return NULL;
}

/* Fields other than ms, act and fd (n, addr) are set by the caller first. */
static __attribute__((unused)) void start_delayed(struct delayed *d, int ms, enum action act, int fd)
{
    d->ms = ms;
    d->act = act;
    d->fd = fd;
    d->at_ns = 0;
    d->made_fd = -1;
    d->thread = spawn(delayed_main, d);
}

#endif
