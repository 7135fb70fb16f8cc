/* t_sigaltstack_overflow: a program that catches its threads' stack
 * overflows itself, the way Rust's runtime and many C programs do: each
 * thread sets an alternate signal stack of its own, and a SIGSEGV handler
 * installed with SA_ONSTACK reports the overflow and exits.
 *
 * Each case runs in a child (this binary re-executed), whose stderr and
 * status the parent checks:
 *   own   the overflowing thread has its own alternate stack (and three
 *         other threads have set theirs since): the handler runs on that
 *         thread's alternate stack, where sigaltstack says SS_ONSTACK, and
 *         exits 42. Under greenld the program's handler wins: no
 *         "overflowed its stack" report.
 *   none  the overflowing thread has none (the others have): natively the
 *         kernel cannot run the handler on the overflowed stack and the
 *         process dies of SIGSEGV; so it does under greenld, after its
 *         report naming the fiber and the stack size.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_support.h"

enum { STACK_SIZE = 64 * 1024, ALT_SIZE = 64 * 1024, OTHERS = 3 };

static void *volatile g_alt; /* the overflowing thread's alternate stack */
static atomic_int g_others_set, g_others_stop;

static void say(const char *s) { syscall(SYS_write, 2, s, strlen(s)); }

static void on_segv(int sig, siginfo_t *info, void *uc)
{
    (void)sig;
    (void)info;
    (void)uc;
    volatile char local = 0;
    stack_t q;
    if (sigaltstack(NULL, &q) != 0) {
        say("handler: sigaltstack failed\n");
        _exit(43);
    }
    char *alt = g_alt;
    if (!alt || (uintptr_t)&local < (uintptr_t)alt || (uintptr_t)&local >= (uintptr_t)alt + ALT_SIZE) {
        say("handler: not running on the overflowing thread's alternate stack\n");
        _exit(43);
    }
    if (q.ss_flags != SS_ONSTACK || q.ss_sp != alt) {
        say("handler: sigaltstack does not report SS_ONSTACK on the thread's own stack\n");
        _exit(43);
    }
    say("handler: stack overflow caught on the thread's own alternate stack\n");
    _exit(42);
}

static volatile long sink;
static volatile long stop_depth = -1;

static __attribute__((noinline)) long recurse_forever(long depth)
{
    volatile char frame[512];
    frame[0] = (char)depth;
    frame[sizeof frame - 1] = (char)depth;
    if (depth == stop_depth) return 0;
    long below = recurse_forever(depth + 1);
    return below + frame[0] + frame[sizeof frame - 1];
}

static void *other(void *arg)
{
    (void)arg;
    stack_t ss = {.ss_sp = malloc(ALT_SIZE), .ss_size = ALT_SIZE, .ss_flags = 0};
    CHECK(ss.ss_sp && sigaltstack(&ss, NULL) == 0, "sigaltstack in another thread");
    atomic_fetch_add(&g_others_set, 1);
    while (!atomic_load(&g_others_stop)) sleep_ms(10);
    return NULL;
}

static void *overflow_thread(void *arg)
{
    int own = *(int *)arg;
    if (own) {
        void *alt = malloc(ALT_SIZE);
        stack_t ss = {.ss_sp = alt, .ss_size = ALT_SIZE, .ss_flags = 0};
        CHECK(alt && sigaltstack(&ss, NULL) == 0, "sigaltstack");
        g_alt = alt;
    }
    /* Threads that set their own alternate stacks after this one did. */
    for (int i = 0; i < OTHERS; ++i) spawn(other, NULL);
    while (atomic_load(&g_others_set) < OTHERS) sleep_ms(1);
    sink = recurse_forever(0);
    return NULL;
}

static int child(int own)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGSEGV, &sa, NULL) == 0, "sigaction(SIGSEGV)");
    pthread_attr_t attr;
    CHECK_EQ(pthread_attr_init(&attr), 0);
    CHECK_EQ(pthread_attr_setstacksize(&attr, STACK_SIZE), 0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, &attr, overflow_thread, &own), 0);
    pthread_join(t, NULL);
    say("child: the overflowing thread was joined\n");
    return 3;
}

/* Runs this program as `mode`; returns its status, its stderr in out. */
static int run_child(const char *self, const char *mode, char *out, size_t cap)
{
    int err[2];
    CHECK_EQ(pipe(err), 0);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        dup2(err[1], 2);
        close(err[0]);
        close(err[1]);
        execl("/proc/self/exe", self, mode, (char *)NULL);
        _exit(127);
    }
    close(err[1]);
    size_t len = 0;
    for (;;) {
        ssize_t n = read(err[0], out + len, cap - 1 - len);
        CHECK(n >= 0, "reading the child's stderr: %s", strerror(errno));
        if (n == 0) break;
        len += (size_t)n;
        if (len >= cap - 1) break;
    }
    out[len] = 0;
    close(err[0]);
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    return status;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "own") == 0) return child(1);
    if (argc == 2 && strcmp(argv[1], "none") == 0) return child(0);
    const int under_shim = is_shim();
    watchdog(60);
    static char out[8192];

    set_phase("own alternate stack: the program's handler catches the overflow");
    int status = run_child(argv[0], "own", out, sizeof out);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 42,
          "status 0x%x, expected exit 42 from the program's SIGSEGV handler; its stderr:\n%s", status, out);
    if (under_shim)
        CHECK(strstr(out, "overflowed its stack") == NULL, "greenld reported an overflow the program caught:\n%s",
              out);

    set_phase("no alternate stack: the handler cannot run, death by SIGSEGV");
    status = run_child(argv[0], "none", out, sizeof out);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
          "status 0x%x, expected death by SIGSEGV; its stderr:\n%s", status, out);
    if (under_shim) {
        CHECK(strstr(out, "greenld:") && strstr(out, "overflowed its stack") && strstr(out, "64 KiB"),
              "no greenld report naming the overflow and the stack size:\n%s", out);
    }
    printf("t_sigaltstack_overflow: ok (%s)\n", under_shim ? "greenld" : "native");
    return 0;
}
