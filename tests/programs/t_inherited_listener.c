/* accept on a listening socket this process did not create, shared with
 * another process that accepts on it too (a listener inherited across
 * exec, as inetd, socket activation or a prefork master's exec'd workers
 * have it). Its file description is not the shim's to make non-blocking,
 * so each connection wakes both acceptors and one of them loses the race:
 * the loser's accept must go on blocking only itself. Here the listener
 * is created with a raw syscall, which the shim does not see, as it does
 * not see an inherited one; this process's acceptor thread and a forked
 * child take connections a byte each: every connection is taken exactly
 * once, the listener stays blocking in the kernel, and after every round a
 * probe thread (on the same hub with GREENLD_HUBS=1) must still answer,
 * though the next connection, which would release a wrongly blocked hub,
 * comes only after its answer. (The race is lost only when the other
 * process takes the connection between this hub's epoll_wait reporting it
 * and the accept: a window of microseconds, so a run catches a shim that
 * blocks there only sometimes, as under strace; t_fifo_readers, where the
 * window is wide, catches the same mistake for reads every time.) */
#include "test_support.h"

#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

enum { ROUNDS = 12 };

static struct probe probe;

static int g_listener, g_report;

static void accept_until_quit(char tag)
{
    for (;;) {
        int c = accept(g_listener, NULL, NULL);
        CHECK(c >= 0, "%c: accept", tag);
        char byte = 0;
        CHECK(read(c, &byte, 1) == 1, "%c: read", tag);
        close(c);
        char msg[2] = {tag, byte};
        CHECK(write(g_report, msg, 2) == 2, "report");
        if (byte == 'q') return;
    }
}

static void *acceptor(void *arg)
{
    (void)arg;
    accept_until_quit('T');
    return NULL;
}

static void connect_and_send(const struct sockaddr_in *addr, char byte)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(s >= 0, "socket");
    CHECK(connect(s, (const struct sockaddr *)addr, sizeof *addr) == 0, "connect");
    CHECK(write(s, &byte, 1) == 1, "send");
    close(s);
}

int main(void)
{
    watchdog(60);
    g_listener = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
    CHECK(g_listener >= 0, "socket (raw syscall)");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    CHECK(bind(g_listener, (struct sockaddr *)&addr, sizeof addr) == 0, "bind");
    CHECK(getsockname(g_listener, (struct sockaddr *)&addr, &len) == 0, "getsockname");
    CHECK(listen(g_listener, 16) == 0, "listen");
    int report[2];
    CHECK(pipe(report) == 0, "pipe");
    g_report = report[1];

    pid_t child = fork();
    CHECK(child >= 0, "fork");
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed check ends the test */
        accept_until_quit('C');
        _exit(0);
    }
    probe_start(&probe);
    pthread_t t = spawn(acceptor, NULL);
    sleep_ms(50); /* both acceptors blocked */

    set_phase("rounds");
    int got_thread = 0, got_child = 0;
    for (int i = 0; i < ROUNDS; ++i) {
        char c = (char)('a' + i);
        connect_and_send(&addr, c);
        char msg[2];
        read_exact(report[0], msg, 2, "report");
        CHECK(msg[1] == c, "round %d: '%c' reported, expected '%c'", i, msg[1], c);
        if (msg[0] == 'T') got_thread++;
        else got_child++;
        sleep_ms(30); /* the loser is accepting again: let it block */
        probe_expect(&probe, 5000, "an acceptor that lost the connection to the other process");
    }
    set_phase("quit");
    connect_and_send(&addr, 'q');
    connect_and_send(&addr, 'q');
    char msg[4];
    read_exact(report[0], msg, 4, "quit reports");
    CHECK(msg[1] == 'q' && msg[3] == 'q' && msg[0] != msg[2], "both acceptors quit: %.4s", msg);
    join_within(t, 2000, "the acceptor thread");
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "the child acceptor: status %#x", status);
    CHECK(!(fcntl(g_listener, F_GETFL) & O_NONBLOCK), "the shared listener reads as non-blocking");
    CHECK(!(syscall(SYS_fcntl, g_listener, F_GETFL) & O_NONBLOCK), "the shared listener was made non-blocking");
    probe_stop(&probe);
    printf("t_inherited_listener: ok (thread accepted %d, child %d)\n", got_thread, got_child);
    return 0;
}
