/* t_stack_overflow: a thread that overflows its stack kills the process
 * with SIGSEGV, and under greenld says so clearly first.
 *
 * The overflow happens in a child (this binary re-executed with "child"),
 * whose stderr the parent captures: it must die by SIGSEGV, natively too.
 * Under greenld only, its stderr must name the problem and the configured
 * stack size ("greenld: ... overflowed its stack (64 KiB) ..."), not be a
 * silent crash. fork() happens before this process has any thread: fork
 * with fibers around is not supported by greenld yet.
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
#include <time.h>
#include <unistd.h>

#include "test_support.h"

enum { STACK_SIZE = 64 * 1024 };

/* ---- the child: overflow a 64 KiB stack */

static volatile long sink;
/* Never reached; being volatile, it keeps the compiler from calling the
 * recursion infinite (a -Werror warning) or removing it. */
static volatile long stop_depth = -1;

static __attribute__((noinline)) long recurse_forever(long depth) {
    volatile char frame[512];
    frame[0] = (char)depth;
    frame[sizeof frame - 1] = (char)depth;
    if (depth == stop_depth) return 0;
    /* The add after the call keeps it from being a tail call (a loop). */
    long below = recurse_forever(depth + 1);
    return below + frame[0] + frame[sizeof frame - 1];
}

static void *overflow_thread(void *arg) {
    (void)arg;
    sink = recurse_forever(0);
    return NULL;
}

static int child(void) {
    pthread_attr_t attr;
    CHECK_EQ(pthread_attr_init(&attr), 0);
    CHECK_EQ(pthread_attr_setstacksize(&attr, STACK_SIZE), 0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, &attr, overflow_thread, NULL), 0);
    pthread_join(t, NULL);
    fprintf(stderr, "child: the overflowing thread was joined: it should have killed the process\n");
    return 3;
}

/* ---- the parent */

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "child") == 0) return child();
    const int under_shim = is_shim();

    int err[2];
    CHECK_EQ(pipe(err), 0);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* No core file for an expected crash. */
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        dup2(err[1], 2);
        close(err[0]);
        close(err[1]);
        execl("/proc/self/exe", argv[0], "child", (char *)NULL);
        _exit(127);
    }
    close(err[1]);
    char out[8192];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(err[0], out + len, sizeof out - 1 - len);
        CHECK(n >= 0, "reading the child's stderr: %s", strerror(errno));
        if (n == 0 || len + (size_t)n >= sizeof out - 1) {
            len += (size_t)(n > 0 ? n : 0);
            break;
        }
        len += (size_t)n;
    }
    out[len] = 0;
    close(err[0]);
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
          "child overflowing a %d KiB thread stack: status 0x%x (exited %d code %d, signalled %d sig %d), "
          "expected death by SIGSEGV; its stderr:\n%s",
          STACK_SIZE / 1024, status, WIFEXITED(status), WIFEXITED(status) ? WEXITSTATUS(status) : -1,
          WIFSIGNALED(status), WIFSIGNALED(status) ? WTERMSIG(status) : -1, out);
    if (under_shim) {
        CHECK(strstr(out, "greenld:") != NULL, "the child's stderr has no \"greenld:\" diagnostic:\n%s", out);
        CHECK(strstr(out, "overflowed its stack") != NULL, "the child's stderr does not say \"overflowed its "
              "stack\":\n%s", out);
        CHECK(strstr(out, "64 KiB") != NULL, "the child's stderr does not name the stack size \"64 KiB\":\n%s", out);
    }
    printf("t_stack_overflow: ok (%s)\n", under_shim ? "greenld" : "native");
    return 0;
}
