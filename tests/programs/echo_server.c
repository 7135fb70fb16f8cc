/*
 * echo_server — a deliberately old-fashioned thread-per-connection TCP echo
 * server, i.e. the kind of legacy blocking daemon greenld is meant to run
 * unchanged.  Every socket call here is a plain blocking call and every
 * connection gets its own pthread; that is the whole point, so do not
 * "modernise" it with epoll or a thread pool.
 *
 * Usage: echo_server [--host 127.0.0.1] [--port N] [--port-file PATH]
 *
 * Port 0 (the default) picks an ephemeral port.  Once listening, the chosen
 * port is written as "<n>\n" to PATH (atomically, via rename) or, without
 * --port-file, printed as "PORT <n>" on stdout.  Runs until killed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LISTEN_BACKLOG 4096
#define IO_BUF_SIZE 4096
/* Small stacks keep 2,000 native threads cheap; 64 KiB is ample for a 4 KiB
 * buffer plus libc's needs. */
#define THREAD_STACK_SIZE (64 * 1024)

static void usage(const char *prog)
{
    fprintf(stderr, "usage: %s [--host 127.0.0.1] [--port N] [--port-file PATH]\n", prog);
    exit(2);
}

/* Write all of buf, retrying on partial writes and EINTR. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static void *connection_thread(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[IO_BUF_SIZE];

    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* EOF or error: the client is gone either way */
        if (write_all(fd, buf, (size_t)n) < 0)
            break;
    }
    close(fd);
    return NULL;
}

/* Publish the port so a reader never sees a partially written file. */
static void write_port_file(const char *path, unsigned port)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        fprintf(stderr, "echo_server: --port-file path too long\n");
        exit(1);
    }
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "echo_server: cannot create %s: %s\n", tmp, strerror(errno));
        exit(1);
    }
    fprintf(f, "%u\n", port);
    if (fclose(f) != 0) {
        fprintf(stderr, "echo_server: cannot write %s: %s\n", tmp, strerror(errno));
        unlink(tmp);
        exit(1);
    }
    if (rename(tmp, path) != 0) {
        fprintf(stderr, "echo_server: cannot rename %s to %s: %s\n", tmp, path, strerror(errno));
        unlink(tmp);
        exit(1);
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

    /* A client that disconnects mid-write must cost us one thread, not the
     * whole process. */
    signal(SIGPIPE, SIG_IGN);

    /* One fd per connection: allow as many as the hard limit permits. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
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
        fprintf(stderr, "echo_server: --host must be a numeric IPv4/IPv6 address: %s\n", host);
        return 2;
    }

    int lfd = socket(ss.ss_family, SOCK_STREAM, 0);
    if (lfd < 0) {
        perror("echo_server: socket");
        return 1;
    }
    int one = 1;
    if (setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) {
        perror("echo_server: setsockopt(SO_REUSEADDR)");
        return 1;
    }
    if (bind(lfd, (struct sockaddr *)&ss, sslen) < 0) {
        perror("echo_server: bind");
        return 1;
    }
    if (listen(lfd, LISTEN_BACKLOG) < 0) {
        perror("echo_server: listen");
        return 1;
    }

    sslen = sizeof ss;
    if (getsockname(lfd, (struct sockaddr *)&ss, &sslen) < 0) {
        perror("echo_server: getsockname");
        return 1;
    }
    unsigned bound_port = ntohs(ss.ss_family == AF_INET ? sin->sin_port : sin6->sin6_port);
    if (port_file) {
        write_port_file(port_file, bound_port);
    } else {
        printf("PORT %u\n", bound_port);
        fflush(stdout);
    }

    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc == 0)
        rc = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (rc == 0)
        rc = pthread_attr_setstacksize(&attr, THREAD_STACK_SIZE);
    if (rc != 0) {
        fprintf(stderr, "echo_server: pthread_attr setup: %s\n", strerror(rc));
        return 1;
    }

    for (;;) {
        int cfd = accept(lfd, NULL, NULL);
        if (cfd < 0) {
            int err = errno;
            switch (err) {
            case EINTR:
            case ECONNABORTED:
                fprintf(stderr, "echo_server: accept: %s (continuing)\n", strerror(err));
                continue;
            case EMFILE:
            case ENFILE:
            case ENOBUFS:
            case ENOMEM: {
                /* Out of fds or memory: back off briefly so connections can
                 * close, instead of spinning on accept(). */
                fprintf(stderr, "echo_server: accept: %s (retrying in 10 ms)\n", strerror(err));
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep(&ts, NULL);
                continue;
            }
            default:
                fprintf(stderr, "echo_server: accept: %s\n", strerror(err));
                return 1;
            }
        }

        pthread_t tid;
        rc = pthread_create(&tid, &attr, connection_thread, (void *)(intptr_t)cfd);
        if (rc != 0) {
            /* Dropping one connection beats taking the whole daemon down. */
            fprintf(stderr, "echo_server: pthread_create: %s (dropping connection)\n", strerror(rc));
            close(cfd);
        }
    }
}
