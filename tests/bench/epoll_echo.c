/*
 * epoll_echo — the ceiling for tests/programs/echo_server.c: the same echo
 * protocol and command line, written the way one would by hand for speed:
 * one thread, nonblocking sockets, level-triggered epoll.
 *
 * Usage: epoll_echo [--host 127.0.0.1] [--port N] [--port-file PATH]
 *
 * Per request it makes one read and one write, plus its share of an
 * epoll_wait that returns many ready connections: the syscall floor a
 * runtime under echo_server can hope to approach.  Runs until killed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define LISTEN_BACKLOG 4096
#define IO_BUF_SIZE 4096
#define MAX_EVENTS 512

/* Bytes read but not yet written back (the peer's receive window was full):
 * while any are pending the connection waits for EPOLLOUT, not EPOLLIN. */
struct pending {
    char *buf;
    size_t off, len;
};

static struct pending *g_pending; /* indexed by fd */
static size_t g_pending_cap;
static int g_epfd;

static void usage(const char *prog)
{
    fprintf(stderr, "usage: %s [--host 127.0.0.1] [--port N] [--port-file PATH]\n", prog);
    exit(2);
}

static void write_port_file(const char *path, unsigned port)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        fprintf(stderr, "epoll_echo: --port-file path too long\n");
        exit(1);
    }
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%u\n", port) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "epoll_echo: cannot write %s: %s\n", path, strerror(errno));
        unlink(tmp);
        exit(1);
    }
}

static void close_conn(int fd)
{
    if ((size_t)fd < g_pending_cap) {
        free(g_pending[fd].buf);
        memset(&g_pending[fd], 0, sizeof g_pending[fd]);
    }
    close(fd); /* also removes it from the epoll set */
}

static int set_interest(int fd, uint32_t events, int op)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    return epoll_ctl(g_epfd, op, fd, &ev);
}

/* Writes buf[0..len); what the socket does not take now is kept and the
 * connection switches to waiting for EPOLLOUT.  -1: close the connection. */
static int send_or_keep(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            break;
        } else {
            return -1;
        }
    }
    if (len == 0)
        return 0;
    struct pending *p = &g_pending[fd];
    char *copy = malloc(len);
    if (!copy)
        return -1;
    memcpy(copy, buf, len);
    free(p->buf);
    p->buf = copy;
    p->off = 0;
    p->len = len;
    return set_interest(fd, EPOLLOUT, EPOLL_CTL_MOD);
}

static void on_readable(int fd)
{
    char buf[IO_BUF_SIZE];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return; /* level-triggered: we will hear again */
    if (n <= 0 || send_or_keep(fd, buf, (size_t)n) < 0)
        close_conn(fd);
}

static void on_writable(int fd)
{
    struct pending *p = &g_pending[fd];
    while (p->off < p->len) {
        ssize_t n = write(fd, p->buf + p->off, p->len - p->off);
        if (n > 0) {
            p->off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            return;
        } else {
            close_conn(fd);
            return;
        }
    }
    free(p->buf);
    memset(p, 0, sizeof *p);
    if (set_interest(fd, EPOLLIN, EPOLL_CTL_MOD) < 0)
        close_conn(fd);
}

static void on_listener(int lfd)
{
    for (;;) {
        int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
                return;
            /* EMFILE and friends: the listener stays readable; try later. */
            fprintf(stderr, "epoll_echo: accept: %s\n", strerror(errno));
            return;
        }
        if ((size_t)cfd >= g_pending_cap || set_interest(cfd, EPOLLIN, EPOLL_CTL_ADD) < 0) {
            close(cfd);
            continue;
        }
    }
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    const char *port_file = NULL;
    long port = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            char *end;
            errno = 0;
            port = strtol(argv[++i], &end, 10);
            if (errno || *end || end == argv[i] || port < 0 || port > 65535)
                usage(argv[0]);
        } else if (strcmp(argv[i], "--port-file") == 0 && i + 1 < argc) {
            port_file = argv[++i];
        } else {
            usage(argv[0]);
        }
    }
    signal(SIGPIPE, SIG_IGN);

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        rl.rlim_cur = 1 << 20;
    g_pending_cap = (size_t)rl.rlim_cur;
    g_pending = calloc(g_pending_cap, sizeof *g_pending);
    if (!g_pending) {
        perror("epoll_echo: calloc");
        return 1;
    }

    struct sockaddr_storage ss;
    socklen_t sslen;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        sslen = sizeof *sin;
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        sslen = sizeof *sin6;
    } else {
        fprintf(stderr, "epoll_echo: --host must be a numeric IPv4/IPv6 address: %s\n", host);
        return 2;
    }

    int lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(lfd, (struct sockaddr *)&ss, sslen) < 0 || listen(lfd, LISTEN_BACKLOG) < 0) {
        perror("epoll_echo: listen socket");
        return 1;
    }
    sslen = sizeof ss;
    if (getsockname(lfd, (struct sockaddr *)&ss, &sslen) < 0) {
        perror("epoll_echo: getsockname");
        return 1;
    }
    g_epfd = epoll_create1(EPOLL_CLOEXEC);
    if (g_epfd < 0 || set_interest(lfd, EPOLLIN, EPOLL_CTL_ADD) < 0) {
        perror("epoll_echo: epoll");
        return 1;
    }

    unsigned bound_port = ntohs(ss.ss_family == AF_INET ? sin->sin_port : sin6->sin6_port);
    if (port_file) {
        write_port_file(port_file, bound_port);
    } else {
        printf("PORT %u\n", bound_port);
        fflush(stdout);
    }

    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(g_epfd, evs, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_echo: epoll_wait");
            return 1;
        }
        for (int k = 0; k < n; k++) {
            int fd = evs[k].data.fd;
            if (fd == lfd)
                on_listener(lfd);
            else if (g_pending[fd].len > 0)
                on_writable(fd);
            else
                on_readable(fd);
        }
    }
}
