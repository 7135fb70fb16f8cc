/*
 * t_popen — popen/pclose from threads, as libc: the lines a command
 * writes, in order; pclose's status; a "w" stream feeding a command. Under
 * greenld a thread blocked in fgets on a popen stream waits alone: a
 * ticker keeps ticking while the command takes its time.
 *
 *  1. popen("... echo line$i; sleep 0.1 ...; exit 5", "r"): fgets line by
 *     line, the ticker ticking while fgets waits; pclose gives exit 5.
 *  2. popen("cat > FILE", "w"): fputs, pclose 0, the file holds the text.
 *  3. Bad modes are EINVAL; "re" keeps FD_CLOEXEC on our end, "r" not.
 *     A command can kill itself with SIGTERM (its signal mask is ours).
 *  4. Two streams open at once: the second child must not hold the
 *     first's pipe (POSIX), so closing the first ends its command.
 */
#include "test_support.h"

#include <fcntl.h>
#include <sys/wait.h>

static void *read_lines(void *arg)
{
    (void)arg;
    set_phase("popen r, fgets line by line");
    FILE *p = popen("for i in 1 2 3; do echo line$i; sleep 0.1; done; exit 5", "r");
    CHECK(p != NULL, "popen");
    char line[64];
    long before = ticker_ticks();
    for (int i = 1; i <= 3; i++) {
        char want[16];
        snprintf(want, sizeof want, "line%d\n", i);
        CHECK(fgets(line, sizeof line, p) != NULL, "fgets %d", i);
        CHECK(strcmp(line, want) == 0, "got '%s', expected '%s'", line, want);
    }
    CHECK(fgets(line, sizeof line, p) == NULL && feof(p), "EOF after the last line");
    ticker_expect(before, 60, "fgets on a popen stream");
    int status = pclose(p);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 5, "pclose status %#x", status);
    return NULL;
}

static void *write_lines(void *arg)
{
    (void)arg;
    set_phase("popen w");
    char path[64], cmd[128];
    snprintf(path, sizeof path, "/tmp/t_popen.%d", (int)getpid());
    snprintf(cmd, sizeof cmd, "sleep 0.1; cat > %s", path);
    FILE *p = popen(cmd, "w");
    CHECK(p != NULL, "popen w");
    CHECK(fputs("alpha\nbeta\n", p) >= 0, "fputs");
    CHECK(fprintf(p, "%d\n", 42) == 3, "fprintf");
    long before = ticker_ticks();
    CHECK(pclose(p) == 0, "pclose");
    ticker_expect(before, 30, "pclose waiting for the command");
    FILE *f = fopen(path, "r");
    char buf[64] = {0};
    CHECK(f && fread(buf, 1, sizeof buf - 1, f) == 14, "read back '%s'", buf);
    CHECK(strcmp(buf, "alpha\nbeta\n42\n") == 0, "got '%s'", buf);
    fclose(f);
    unlink(path);
    return NULL;
}

static void *modes(void *arg)
{
    (void)arg;
    set_phase("modes");
    errno = 0;
    CHECK(popen("true", "x") == NULL && errno == EINVAL, "mode x");
    errno = 0;
    CHECK(popen("true", "rw") == NULL && errno == EINVAL, "mode rw");
    errno = 0;
    CHECK(popen("true", "") == NULL && errno == EINVAL, "empty mode");
    FILE *p = popen("true", "re");
    CHECK(p != NULL, "popen re");
    CHECK(fcntl(fileno(p), F_GETFD) & FD_CLOEXEC, "'e' must keep FD_CLOEXEC");
    CHECK(pclose(p) == 0, "pclose re");
    p = popen("true", "r");
    CHECK(p != NULL, "popen r");
    CHECK(!(fcntl(fileno(p), F_GETFD) & FD_CLOEXEC), "'r' must clear FD_CLOEXEC");
    CHECK(pclose(p) == 0, "pclose r");

    set_phase("the child's signals");
    p = popen("kill -TERM $$", "r");
    CHECK(p != NULL, "popen kill");
    int status = pclose(p);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "the command could not kill itself: status %#x",
          status);

    set_phase("two streams");
    FILE *first = popen("cat", "w");
    CHECK(first != NULL, "popen cat");
    FILE *second = popen("sleep 0.3", "r");
    CHECK(second != NULL, "popen sleep");
    double t0 = now_ms();
    CHECK(pclose(first) == 0, "pclose cat");
    CHECK(now_ms() - t0 < 250, "closing the first stream did not end its command: the second child holds it");
    CHECK(pclose(second) == 0, "pclose sleep");
    return NULL;
}

int main(void)
{
    watchdog(30);
    ticker_start();
    join(spawn(read_lines, NULL));
    join(spawn(write_lines, NULL));
    join(spawn(modes, NULL));
    ticker_stop();
    printf("t_popen: ok\n");
    return 0;
}
