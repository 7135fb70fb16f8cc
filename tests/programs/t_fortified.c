/* The fortified variants glibc's headers substitute under _FORTIFY_SOURCE
 * (as Debian and most distributions build packages): __read_chk,
 * __pread_chk, __recv_chk, __recvfrom_chk, __poll_chk, __ppoll_chk,
 * __fgets_chk, __fread_chk, __fprintf_chk. This program is built with
 * _FORTIFY_SOURCE=2, checks that its own binary imports them, and calls
 * each where it must wait for a write made 30 ms later by another thread:
 * with GREENLD_HUBS=1 that thread shares the OS thread, so a call that
 * blocked it instead of parking would never return (the watchdog ends the
 * test). Results and errno are checked as for the plain calls. */
#undef _FORTIFY_SOURCE
#define _FORTIFY_SOURCE 2
#include "test_support.h"
#include "delayed_action.h"

#include <link.h>

static const char *const kImported[] = {"__read_chk", "__pread_chk", "__recv_chk", "__recvfrom_chk", "__poll_chk",
                                        "__ppoll_chk", "__fgets_chk", "__fread_chk", "__fprintf_chk"};

/* Each name is in this binary's dynamic string table (the names of the
 * symbols it imports; the literals above live elsewhere). */
static void check_imports(void)
{
    set_phase("the binary imports the fortified functions");
    const char *strtab = NULL;
    size_t strsz = 0;
    for (const ElfW(Dyn) *d = _DYNAMIC; d->d_tag != DT_NULL; ++d) {
        if (d->d_tag == DT_STRTAB) strtab = (const char *)d->d_un.d_ptr;
        if (d->d_tag == DT_STRSZ) strsz = d->d_un.d_val;
    }
    CHECK(strtab && strsz, "no dynamic string table");
    for (size_t i = 0; i < sizeof kImported / sizeof kImported[0]; ++i) {
        size_t n = strlen(kImported[i]) + 1; /* with its NUL */
        CHECK(memmem(strtab, strsz, kImported[i], n) != NULL, "%s is not imported: not fortified?", kImported[i]);
    }
}

int main(void)
{
    watchdog(30);
    check_imports();
    struct delayed d;
    /* A buffer of known size and lengths the compiler cannot see: the
     * calls below become their _chk variants. */
    char buf[16];
    volatile size_t len_v = sizeof buf;
    const size_t len = len_v;
    volatile int two_v = 2;
    const int two = two_v;

    set_phase("__read_chk on a pipe");
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    start_delayed(&d, 30, ACT_WRITE, p[1]);
    CHECK(read(p[0], buf, len) == 1 && buf[0] == 'x', "read");
    join(d.thread);

    set_phase("__poll_chk and __ppoll_chk");
    struct pollfd pfd[1] = {{p[0], POLLIN, 0}};
    start_delayed(&d, 30, ACT_WRITE, p[1]);
    CHECK(poll(pfd, (nfds_t)two - 1, 5000) == 1 && (pfd[0].revents & POLLIN), "poll");
    join(d.thread);
    CHECK(read(p[0], buf, len) == 1, "drain");
    struct timespec ts = {5, 0};
    start_delayed(&d, 30, ACT_WRITE, p[1]);
    CHECK(ppoll(pfd, (nfds_t)two - 1, &ts, NULL) == 1 && (pfd[0].revents & POLLIN), "ppoll");
    join(d.thread);
    CHECK(read(p[0], buf, len) == 1, "drain");
    ts.tv_sec = 0;
    ts.tv_nsec = 20 * 1000000L;
    CHECK(ppoll(pfd, (nfds_t)two - 1, &ts, NULL) == 0, "ppoll timeout");

    set_phase("__recv_chk and __recvfrom_chk");
    int a, b;
    tcp_pair(&a, &b);
    start_delayed(&d, 30, ACT_WRITE, a);
    CHECK(recv(b, buf, len, 0) == 1 && buf[0] == 'x', "recv");
    join(d.thread);
    start_delayed(&d, 30, ACT_WRITE, a);
    struct sockaddr_storage from;
    socklen_t fromlen = sizeof from;
    CHECK(recvfrom(b, buf, len, 0, (struct sockaddr *)&from, &fromlen) == 1, "recvfrom");
    join(d.thread);
    errno = 0;
    CHECK(recv(b, buf, len, MSG_DONTWAIT) == -1 && errno == EAGAIN, "recv MSG_DONTWAIT: errno %d", errno);

    set_phase("__pread_chk on a regular file");
    char path[] = "/tmp/t_fortified.XXXXXX";
    int f = mkstemp(path);
    CHECK(f >= 0, "mkstemp");
    unlink(path);
    write_exact(f, "0123456789", 10, "file");
    CHECK(pread(f, buf, len, 4) == 6 && memcmp(buf, "456789", 6) == 0, "pread");
    close(f);

    set_phase("__fgets_chk, __fread_chk and __fprintf_chk on a socket stream");
    int c, s;
    tcp_pair(&c, &s);
    FILE *in = fdopen(s, "r+");
    CHECK(in != NULL, "fdopen");
    start_delayed(&d, 30, ACT_WRITE, c);
    CHECK(fgets(buf, two, in) != NULL && buf[0] == 'x', "fgets");
    join(d.thread);
    start_delayed(&d, 30, ACT_WRITE, c);
    CHECK(fread(buf, 1, len - 15, in) == 1 && buf[0] == 'x', "fread");
    join(d.thread);
    CHECK(fprintf(in, "%s %d\n", "hello", 42) == 9 && fflush(in) == 0, "fprintf");
    char line[16] = {0};
    read_exact(c, line, 9, "the fprintf line");
    CHECK(memcmp(line, "hello 42\n", 9) == 0, "fprintf wrote '%.9s'", line);
    fclose(in);
    close(c);
    close(a);
    close(b);
    close(p[0]);
    close(p[1]);
    printf("t_fortified: ok\n");
    return 0;
}
