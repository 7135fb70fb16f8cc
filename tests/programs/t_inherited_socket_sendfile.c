/* sendfile and splice to a socket this process did not create: inetd and
 * socket activation hand a server its connection as an inherited fd, whose
 * file description the shim must not switch to O_NONBLOCK. The program
 * re-runs itself with one end of a TCP connection as fd 3; a thread sends
 * a 4 MiB file with sendfile, then 1 MiB through a pipe with splice, while
 * the parent reads slowly. The blocking calls complete in full, and the
 * ticker thread (on the same hub with GREENLD_HUBS=1) keeps ticking while
 * they sleep on the socket. */
#include "test_support.h"

#include <sys/sendfile.h>
#include <sys/wait.h>

enum { FILE_BYTES = 4 << 20, SPLICE_BYTES = 1 << 20, CHUNK = 64 << 10 };

static unsigned char pattern(size_t i) { return (unsigned char)(i * 7 + (i >> 13)); }

static void *sender(void *arg)
{
    (void)arg;
    const int sock = 3;
    set_phase("sendfile to the inherited socket");
    char tmpl[] = "/tmp/t_inherited_sendfile.XXXXXX";
    int file = mkstemp(tmpl);
    CHECK(file >= 0, "mkstemp");
    unlink(tmpl);
    unsigned char *buf = malloc(FILE_BYTES);
    CHECK(buf != NULL, "malloc");
    for (size_t i = 0; i < FILE_BYTES; ++i) buf[i] = pattern(i);
    write_exact(file, buf, FILE_BYTES, "the file");
    off_t off = 0;
    long ticks = ticker_ticks();
    ssize_t n = sendfile(sock, file, &off, FILE_BYTES);
    CHECK(n == FILE_BYTES && off == FILE_BYTES, "sendfile returned %zd, offset %lld", n, (long long)off);
    ticker_expect(ticks, 50, "sendfile sleeping on a slow peer");

    set_phase("splice to the inherited socket");
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    size_t sent = 0;
    ticks = ticker_ticks();
    while (sent < SPLICE_BYTES) {
        /* One pipe load (64 KiB) at a time: write it, splice it all. */
        size_t part = SPLICE_BYTES - sent < CHUNK ? SPLICE_BYTES - sent : CHUNK;
        write_exact(p[1], buf + sent, part, "the pipe");
        ssize_t r = splice(p[0], NULL, sock, NULL, part, 0);
        CHECK(r == (ssize_t)part, "splice returned %zd of %zu", r, part);
        sent += part;
    }
    ticker_expect(ticks, 10, "splice sleeping on a slow peer");
    free(buf);
    return NULL;
}

static int child_main(void)
{
    watchdog(60);
    int type = 0;
    socklen_t len = sizeof type;
    CHECK(getsockopt(3, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM, "fd 3 is not a socket");
    ticker_start();
    join_within(spawn(sender, NULL), 30000, "the sender");
    ticker_stop();
    CHECK(fcntl(3, F_GETFL) >= 0 && !(fcntl(3, F_GETFL) & O_NONBLOCK), "fd 3 was left non-blocking");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "child") == 0) return child_main();
    watchdog(60);
    int a, b;
    tcp_pair(&a, &b);
    int small = 64 << 10;
    setsockopt(a, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(b, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        /* The connection as fd 3, created by another process image. */
        if (dup2(a, 3) != 3) _exit(126);
        execl("/proc/self/exe", argv[0], "child", (char *)NULL);
        _exit(127);
    }
    close(a);
    set_phase("slow reader");
    unsigned char *buf = malloc(CHUNK);
    CHECK(buf != NULL, "malloc");
    size_t got = 0;
    const size_t total = FILE_BYTES + SPLICE_BYTES;
    while (got < total) {
        ssize_t r = read(b, buf, CHUNK);
        CHECK(r > 0, "read returned %zd after %zu bytes", r, got);
        for (ssize_t i = 0; i < r; ++i) {
            size_t at = got + (size_t)i;
            size_t want = at < FILE_BYTES ? at : at - FILE_BYTES;
            CHECK(buf[i] == pattern(want), "byte %zu differs", at);
        }
        got += (size_t)r;
        sleep_ms(2); /* a slow peer: ~0.3 s for the whole transfer */
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the sender process: status %#x", status);
    free(buf);
    printf("t_inherited_socket_sendfile: ok\n");
    return 0;
}
