/* Two processes read one FIFO, then one terminal (a pty in raw mode),
 * through a shared file description, a byte at a time: this process's
 * reader thread and a forked child. Each byte
 * written wakes both; one gets it, and the other's read must go on
 * blocking only itself, as natively. FIFOs (like ttys) refuse a per-call
 * non-blocking read, so under greenld the reader waits for readiness and
 * then reads where a lost race cannot block its hub: after every round a
 * probe thread (on the same hub with GREENLD_HUBS=1) must still answer,
 * though the next byte, which would release a wrongly blocked hub, is
 * written only after its answer; and every byte is read exactly once. */
#include "test_support.h"

#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>

enum { ROUNDS = 12 };

static struct probe probe;

static int g_fifo_read, g_report;

/* Reads single bytes until 'q', reporting each on the report pipe with
 * a tag saying who read it. */
static void read_until_quit(char tag)
{
    for (;;) {
        char c;
        ssize_t n = read(g_fifo_read, &c, 1);
        CHECK(n == 1, "%c: read from the FIFO returned %zd", tag, n);
        char msg[2] = {tag, c};
        CHECK(write(g_report, msg, 2) == 2, "report");
        if (c == 'q') return;
    }
}

static void *reader_thread(void *arg)
{
    (void)arg;
    read_until_quit('T');
    return NULL;
}

/* The rounds against one file: `rd` shared by both readers, `w` the
 * writing end. */
static void run_case(const char *name, int rd, int w)
{
    set_phase(name);
    g_fifo_read = rd;
    int report[2];
    CHECK(pipe(report) == 0, "pipe");
    g_report = report[1];

    pid_t child = fork();
    CHECK(child >= 0, "fork");
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed check ends the test */
        read_until_quit('C');
        _exit(0);
    }
    pthread_t reader = spawn(reader_thread, NULL);
    sleep_ms(50); /* both readers blocked */

    int got_thread = 0, got_child = 0;
    for (int i = 0; i < ROUNDS; ++i) {
        char c = (char)('a' + i);
        CHECK(write(w, &c, 1) == 1, "%s: write", name);
        char msg[2];
        read_exact(report[0], msg, 2, "report");
        CHECK(msg[1] == c, "%s round %d: '%c' reported, expected '%c'", name, i, msg[1], c);
        if (msg[0] == 'T') got_thread++;
        else got_child++;
        /* The loser has woken and is reading again: give it time to block. */
        sleep_ms(30);
        probe_expect(&probe, 5000, "a reader that lost the byte to the other process");
    }
    CHECK(write(w, "qq", 2) == 2, "%s: write the two quits", name);
    char msg[4];
    read_exact(report[0], msg, 4, "quit reports");
    CHECK(msg[1] == 'q' && msg[3] == 'q' && msg[0] != msg[2], "%s: both readers quit: %.4s", name, msg);
    join_within(reader, 2000, "the reader thread");
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "%s: the child reader: status %#x", name, status);
    close(report[0]);
    close(report[1]);
    printf("%s: thread read %d bytes, child %d\n", name, got_thread, got_child);
}

int main(void)
{
    watchdog(60);
    probe_start(&probe);

    char path[] = "/tmp/t_fifo_readers.XXXXXX";
    CHECK(mkdtemp(path) != NULL, "mkdtemp");
    char fifo[sizeof path + 8];
    snprintf(fifo, sizeof fifo, "%s/fifo", path);
    CHECK(mkfifo(fifo, 0600) == 0, "mkfifo");
    /* O_RDWR first so neither open blocks; then the real ends. */
    int keep = open(fifo, O_RDWR);
    CHECK(keep >= 0, "open O_RDWR");
    int rd = open(fifo, O_RDONLY);
    CHECK(rd >= 0, "open O_RDONLY");
    int w = open(fifo, O_WRONLY);
    CHECK(w >= 0, "open O_WRONLY");
    close(keep);
    run_case("FIFO", rd, w);
    close(rd);
    close(w);
    unlink(fifo);
    rmdir(path);

    int master = posix_openpt(O_RDWR | O_NOCTTY);
    CHECK(master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0, "posix_openpt");
    int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
    CHECK(slave >= 0, "open the pty");
    struct termios tio;
    CHECK(tcgetattr(slave, &tio) == 0, "tcgetattr");
    cfmakeraw(&tio); /* VMIN 1: a byte at a time, no echo */
    CHECK(tcsetattr(slave, TCSANOW, &tio) == 0, "tcsetattr");
    run_case("pty", slave, master);
    close(slave);
    close(master);

    probe_stop(&probe);
    printf("t_fifo_readers: ok\n");
    return 0;
}
