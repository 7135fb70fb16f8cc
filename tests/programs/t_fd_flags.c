/*
 * t_fd_flags — fcntl(F_GETFL) and ioctl(FIONBIO) report exactly the
 * O_NONBLOCK the program set, and the blocking mode the program believes in
 * is the one its calls get:
 *
 *  - a listening socket that several threads accept() on still reads back
 *    as blocking (F_GETFL == O_RDWR), from the threads and from main; a
 *    blocking accept() from the main thread afterwards waits for a
 *    connection instead of failing with EAGAIN;
 *  - accepted and connected sockets read back as O_RDWR; F_SETFL and
 *    ioctl(FIONBIO) round trips on sockets, listeners and pipes;
 *  - an fd the program made non-blocking returns -1/EAGAIN at once when
 *    empty (read, recv, accept), from main and from a created thread, and
 *    a blocking one waits again once the flag is cleared;
 *  - accept4(SOCK_NONBLOCK | SOCK_CLOEXEC), socket(SOCK_NONBLOCK),
 *    pipe2(O_NONBLOCK);
 *  - dup()/F_DUPFD copies share the open file description, hence its
 *    O_NONBLOCK: a change through one fd is seen through the other
 *    (POSIX: "file status flags ... shared by duplicated descriptors").
 *  - a listener that threads accepted on, inherited by an exec'ed child
 *    (this program re-executed): the child sees the blocking mode the
 *    parent believed in, in the kernel (raw fcntl) and through fcntl, and
 *    its blocking accept() waits for a connection (prefork servers and
 *    binary upgrades hand listeners down this way).
 *
 * The exact F_GETFL values asserted (O_RDWR for sockets, O_RDONLY/O_WRONLY
 * for pipe ends) are what Linux returns.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_support.h"

/* ---- helpers -------------------------------------------------------------- */

static struct sockaddr_in g_addr;

static int connect_client(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0, "socket");
    int rc = connect(fd, (struct sockaddr *)&g_addr, sizeof g_addr);
    CHECK(rc == 0, "connect returned %d", rc);
    return fd;
}

static int getfl(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    CHECK(fl >= 0, "fcntl(%d, F_GETFL) returned %d", fd, fl);
    return fl;
}

#define CHECK_FL(fd, expected, what)                                                                             \
    do {                                                                                                         \
        int fl_ = getfl(fd);                                                                                     \
        CHECK(fl_ == (expected), "%s: fcntl(%d, F_GETFL) = %#x, expected %#x (O_NONBLOCK %s)", what, fd, fl_,   \
              (expected), ((expected) & O_NONBLOCK) ? "set" : "clear");                                         \
    } while (0)

static void set_nonblock(int fd, int on)
{
    int fl = getfl(fd);
    CHECK(fcntl(fd, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK)) == 0, "fcntl(%d, F_SETFL)", fd);
}

static void fionbio(int fd, int on)
{
    int v = on;
    CHECK(ioctl(fd, FIONBIO, &v) == 0, "ioctl(%d, FIONBIO, %d)", fd, on);
}

/* A call on an empty non-blocking fd must fail with EAGAIN at once. */
enum op { OP_READ, OP_RECV, OP_ACCEPT };
static const char *op_name[] = {"read", "recv", "accept"};

struct eagain_probe {
    enum op op;
    int fd;
    const char *what;
};

static void expect_eagain_now(enum op op, int fd, const char *what)
{
    char buf[16];
    double t0 = now_ms();
    errno = 0;
    long r = op == OP_READ ? read(fd, buf, sizeof buf)
           : op == OP_RECV ? recv(fd, buf, sizeof buf, 0)
                           : accept(fd, NULL, NULL);
    int err = errno;
    double dt = now_ms() - t0;
    CHECK(r == -1 && (err == EAGAIN || err == EWOULDBLOCK),
          "%s: %s(%d) on an empty non-blocking fd returned %ld errno %d (%s), expected -1/EAGAIN", what, op_name[op],
          fd, r, err, strerror(err));
    CHECK(dt < 100, "%s: %s(%d) took %.0f ms to report EAGAIN, expected at once", what, op_name[op], fd, dt);
}

static void *eagain_thread(void *arg)
{
    struct eagain_probe *p = arg;
    expect_eagain_now(p->op, p->fd, p->what);
    return NULL;
}

/* From main and from a created thread. */
static void expect_eagain_everywhere(enum op op, int fd, const char *what)
{
    expect_eagain_now(op, fd, what);
    struct eagain_probe p = {op, fd, what};
    join_within(spawn(eagain_thread, &p), 2000, what);
}

/* A blocking call must wait until the event happens `delay` ms later. */
struct delayed {
    int delay_ms;
    int fd;          /* write 1 byte to it, or -1 to connect to g_addr */
    int conn;        /* the connection made */
};

static void *delayed_event(void *arg)
{
    struct delayed *d = arg;
    sleep_ms(d->delay_ms);
    if (d->fd >= 0)
        CHECK(write(d->fd, "x", 1) == 1, "delayed write");
    else
        d->conn = connect_client();
    return NULL;
}

struct blocking_probe {
    enum op op;
    int fd;
    const char *what;
    long ret;
    double elapsed;
};

static void *blocking_call(void *arg)
{
    struct blocking_probe *p = arg;
    char buf[16];
    double t0 = now_ms();
    errno = 0;
    p->ret = p->op == OP_READ ? read(p->fd, buf, sizeof buf)
           : p->op == OP_RECV ? recv(p->fd, buf, sizeof buf, 0)
                              : accept(p->fd, NULL, NULL);
    int err = errno;
    p->elapsed = now_ms() - t0;
    CHECK(p->ret >= 0, "%s: blocking %s(%d) returned %ld errno %d (%s), expected to wait for the event",
          p->what, op_name[p->op], p->fd, p->ret, err, strerror(err));
    CHECK(p->elapsed >= 150, "%s: blocking %s(%d) returned after %.0f ms, before the event at 200 ms", p->what,
          op_name[p->op], p->fd, p->elapsed);
    return NULL;
}

/* Blocking call (in main or a thread) while another thread makes the
 * event happen after 200 ms. Returns what the call returned. */
static long expect_blocks(enum op op, int fd, int event_fd, int in_thread, const char *what)
{
    struct delayed d = {200, event_fd, -1};
    pthread_t ev = spawn(delayed_event, &d);
    struct blocking_probe p = {op, fd, what, -1, 0};
    if (in_thread)
        join_within(spawn(blocking_call, &p), 2000, what);
    else
        blocking_call(&p);
    join(ev);
    if (d.conn >= 0) close(d.conn);
    return p.ret;
}

/* ---- the listener -------------------------------------------------------- */

static int g_listener;

static void *acceptor(void *arg)
{
    (void)arg;
    CHECK_FL(g_listener, O_RDWR, "listener seen from an acceptor thread before accept");
    int fd = accept(g_listener, NULL, NULL);
    CHECK(fd >= 0, "accept in a thread returned %d", fd);
    CHECK_FL(fd, O_RDWR, "socket accepted by a thread");
    CHECK_FL(g_listener, O_RDWR, "listener seen from an acceptor thread after accept");
    char c;
    ssize_t n = read(fd, &c, 1); /* blocking read on the accepted socket */
    CHECK(n == 1 && c == 'h', "read on the accepted socket returned %zd", n);
    close(fd);
    return NULL;
}

static void test_listener(void)
{
    set_phase("listener shared by accepting threads");
    g_listener = tcp_listener(&g_addr, 64);
    CHECK_FL(g_listener, O_RDWR, "new listener");
    pthread_t t[4];
    for (int i = 0; i < 4; i++) t[i] = spawn(acceptor, NULL);
    sleep_ms(50);
    for (int i = 0; i < 4; i++) {
        int c = connect_client();
        CHECK_FL(c, O_RDWR, "connected client socket");
        CHECK(write(c, "h", 1) == 1, "client write");
        close(c);
    }
    for (int i = 0; i < 4; i++) join(t[i]);
    CHECK_FL(g_listener, O_RDWR, "listener in main after threads accepted on it");

    set_phase("blocking accept() in main on a listener threads accepted on");
    long fd = expect_blocks(OP_ACCEPT, g_listener, -1, 0, "main thread accept");
    close((int)fd);
    set_phase("blocking accept() in a thread after main accepted");
    fd = expect_blocks(OP_ACCEPT, g_listener, -1, 1, "thread accept");
    close((int)fd);
    CHECK_FL(g_listener, O_RDWR, "listener after all accepts");

    set_phase("listener: ioctl(FIONBIO) round trip");
    fionbio(g_listener, 1);
    CHECK_FL(g_listener, O_RDWR | O_NONBLOCK, "listener after FIONBIO on");
    expect_eagain_everywhere(OP_ACCEPT, g_listener, "listener with FIONBIO on");
    fionbio(g_listener, 0);
    CHECK_FL(g_listener, O_RDWR, "listener after FIONBIO off");
    fd = expect_blocks(OP_ACCEPT, g_listener, -1, 1, "thread accept after FIONBIO off");
    close((int)fd);

    set_phase("listener: F_SETFL round trip");
    set_nonblock(g_listener, 1);
    CHECK_FL(g_listener, O_RDWR | O_NONBLOCK, "listener after F_SETFL O_NONBLOCK");
    expect_eagain_everywhere(OP_ACCEPT, g_listener, "listener with O_NONBLOCK");
    set_nonblock(g_listener, 0);
    CHECK_FL(g_listener, O_RDWR, "listener after clearing O_NONBLOCK");
    fd = expect_blocks(OP_ACCEPT, g_listener, -1, 0, "main accept after clearing O_NONBLOCK");
    close((int)fd);
}

/* ---- accept4 -------------------------------------------------------------- */

struct accept4_args {
    int flags;
    int fd;
};

static void *accept4_thread(void *arg)
{
    struct accept4_args *a = arg;
    a->fd = accept4(g_listener, NULL, NULL, a->flags);
    CHECK(a->fd >= 0, "accept4(flags %#x) in a thread returned %d", a->flags, a->fd);
    return NULL;
}

static void test_accept4(void)
{
    set_phase("accept4(SOCK_NONBLOCK) in a thread");
    struct accept4_args a = {SOCK_NONBLOCK, -1};
    pthread_t t = spawn(accept4_thread, &a);
    int c = connect_client();
    join(t);
    CHECK_FL(a.fd, O_RDWR | O_NONBLOCK, "socket from accept4(SOCK_NONBLOCK)");
    expect_eagain_everywhere(OP_READ, a.fd, "socket from accept4(SOCK_NONBLOCK), read");
    expect_eagain_everywhere(OP_RECV, a.fd, "socket from accept4(SOCK_NONBLOCK), recv");
    close(a.fd);
    close(c);

    set_phase("accept4(SOCK_CLOEXEC) in main");
    c = connect_client();
    int fd = accept4(g_listener, NULL, NULL, SOCK_CLOEXEC);
    CHECK(fd >= 0, "accept4(SOCK_CLOEXEC) returned %d", fd);
    CHECK_FL(fd, O_RDWR, "socket from accept4(SOCK_CLOEXEC)");
    int fdfl = fcntl(fd, F_GETFD);
    CHECK(fdfl == FD_CLOEXEC, "fcntl(F_GETFD) on accept4(SOCK_CLOEXEC) socket = %d", fdfl);
    /* It is blocking: a read from a thread waits for the peer's byte. */
    expect_blocks(OP_READ, fd, c, 1, "thread read on accept4(SOCK_CLOEXEC) socket");
    close(fd);
    close(c);
}

/* ---- connected sockets ------------------------------------------------------ */

static void test_connected(void)
{
    set_phase("connected socket flags");
    int c = connect_client();
    int s = accept(g_listener, NULL, NULL);
    CHECK(s >= 0, "accept");
    CHECK_FL(s, O_RDWR, "accepted socket");
    CHECK_FL(c, O_RDWR, "connected socket");

    set_phase("connected socket: F_SETFL O_NONBLOCK");
    set_nonblock(s, 1);
    CHECK_FL(s, O_RDWR | O_NONBLOCK, "after F_SETFL O_NONBLOCK");
    long raw = syscall(SYS_fcntl, s, F_GETFL);
    CHECK(raw >= 0 && (raw & O_NONBLOCK), "kernel flags (raw fcntl) %#lx lack the O_NONBLOCK the program set", raw);
    expect_eagain_everywhere(OP_READ, s, "O_NONBLOCK socket, read");
    expect_eagain_everywhere(OP_RECV, s, "O_NONBLOCK socket, recv");
    set_nonblock(s, 0);
    CHECK_FL(s, O_RDWR, "after clearing O_NONBLOCK");
    expect_blocks(OP_READ, s, c, 1, "thread read after clearing O_NONBLOCK");

    set_phase("connected socket: ioctl(FIONBIO)");
    fionbio(s, 1);
    CHECK_FL(s, O_RDWR | O_NONBLOCK, "after FIONBIO on");
    expect_eagain_everywhere(OP_RECV, s, "FIONBIO socket, recv");
    fionbio(s, 0);
    CHECK_FL(s, O_RDWR, "after FIONBIO off");
    expect_blocks(OP_RECV, s, c, 1, "thread recv after FIONBIO off");
    expect_blocks(OP_RECV, s, c, 0, "main recv after FIONBIO off");

    set_phase("dup shares O_NONBLOCK");
    int d = dup(s);
    CHECK(d >= 0, "dup");
    int d2 = fcntl(s, F_DUPFD_CLOEXEC, 0);
    CHECK(d2 >= 0, "F_DUPFD_CLOEXEC");
    set_nonblock(s, 1);
    CHECK_FL(d, O_RDWR | O_NONBLOCK, "dup() copy after O_NONBLOCK set through the original");
    CHECK_FL(d2, O_RDWR | O_NONBLOCK, "F_DUPFD copy after O_NONBLOCK set through the original");
    expect_eagain_everywhere(OP_READ, d, "dup() copy of an O_NONBLOCK socket");
    set_nonblock(d, 0);
    CHECK_FL(s, O_RDWR, "original after O_NONBLOCK cleared through the dup() copy");
    CHECK_FL(d2, O_RDWR, "F_DUPFD copy after O_NONBLOCK cleared through the dup() copy");
    expect_blocks(OP_READ, s, c, 1, "thread read on the original after the copy cleared O_NONBLOCK");
    fionbio(d2, 1);
    CHECK_FL(s, O_RDWR | O_NONBLOCK, "original after FIONBIO on through the F_DUPFD copy");
    expect_eagain_everywhere(OP_RECV, s, "original after FIONBIO on through the copy");
    fionbio(s, 0);
    CHECK_FL(d, O_RDWR, "dup() copy after FIONBIO off through the original");
    close(d2);
    close(d);
    close(s);
    close(c);

    set_phase("socket(SOCK_NONBLOCK)");
    int nb = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CHECK(nb >= 0, "socket(SOCK_NONBLOCK)");
    CHECK_FL(nb, O_RDWR | O_NONBLOCK, "socket(SOCK_NONBLOCK)");
    close(nb);
}

/* ---- pipes ----------------------------------------------------------------- */

static void test_pipes(void)
{
    set_phase("pipe flags");
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    CHECK_FL(p[0], O_RDONLY, "pipe read end");
    CHECK_FL(p[1], O_WRONLY, "pipe write end");
    set_nonblock(p[0], 1);
    CHECK_FL(p[0], O_RDONLY | O_NONBLOCK, "pipe read end after F_SETFL O_NONBLOCK");
    expect_eagain_everywhere(OP_READ, p[0], "O_NONBLOCK pipe");
    fionbio(p[0], 0);
    CHECK_FL(p[0], O_RDONLY, "pipe read end after FIONBIO off");
    expect_blocks(OP_READ, p[0], p[1], 1, "thread read on the pipe after FIONBIO off");
    close(p[0]);
    close(p[1]);

    set_phase("pipe2(O_NONBLOCK)");
    CHECK(pipe2(p, O_NONBLOCK) == 0, "pipe2");
    CHECK_FL(p[0], O_RDONLY | O_NONBLOCK, "pipe2(O_NONBLOCK) read end");
    CHECK_FL(p[1], O_WRONLY | O_NONBLOCK, "pipe2(O_NONBLOCK) write end");
    expect_eagain_everywhere(OP_READ, p[0], "pipe2(O_NONBLOCK) read end");
    set_nonblock(p[0], 0);
    CHECK_FL(p[0], O_RDONLY, "pipe2 read end after clearing O_NONBLOCK");
    expect_blocks(OP_READ, p[0], p[1], 1, "thread read on the pipe2 read end after clearing O_NONBLOCK");
    close(p[0]);
    close(p[1]);
}

/* ---- a listener handed to an exec'ed child ------------------------------- */

#define CHILD_ARG "--exec-child"

static int exec_child_main(int fd)
{
    set_phase("exec'ed child: inherited listener");
    long raw = syscall(SYS_fcntl, fd, F_GETFL);
    CHECK(raw == O_RDWR, "exec'ed child: kernel flags (raw fcntl) of the inherited listener = %#lx, expected %#x: the "
          "parent never set O_NONBLOCK", raw, O_RDWR);
    CHECK_FL(fd, O_RDWR, "exec'ed child: inherited listener");
    double t0 = now_ms();
    errno = 0;
    int s = accept(fd, NULL, NULL);
    int err = errno;
    double dt = now_ms() - t0;
    CHECK(s >= 0, "exec'ed child: blocking accept() on the inherited listener returned %d errno %d (%s), expected to "
          "wait for the parent's connection", s, err, strerror(err));
    CHECK(dt >= 150, "exec'ed child: accept returned after %.0f ms, before the connection at 200 ms", dt);
    close(s);
    return 0;
}

static void test_exec_inherit(void)
{
    set_phase("listener inherited by an exec'ed child");
    int fd = g_listener;
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        char arg[16];
        snprintf(arg, sizeof arg, "%d", fd);
        execl("/proc/self/exe", "t_fd_flags", CHILD_ARG, arg, (char *)NULL);
        _exit(121);
    }
    sleep_ms(200);
    int c = connect_client();
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "the exec'ed child failed its checks on the inherited listener: status %#x (exit %d)", status,
          WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    close(c);
    CHECK_FL(g_listener, O_RDWR, "listener in the parent after the child accepted on it");
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], CHILD_ARG) == 0) {
        watchdog(10);
        return exec_child_main(atoi(argv[2]));
    }
    watchdog(25);
    fprintf(stderr, "t_fd_flags: running %s\n", is_shim() ? "under greenld" : "natively");
    test_listener();
    test_exec_inherit();
    test_accept4();
    test_connected();
    test_pipes();
    close(g_listener);
    fprintf(stderr, "t_fd_flags: all checks passed\n");
    return 0;
}
