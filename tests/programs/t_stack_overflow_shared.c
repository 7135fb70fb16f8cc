/* t_stack_overflow_shared: a thread overflowing a stack that greenld carved
 * from a shared slab (what stacks beyond the vm.max_map_count budget are)
 * is reported, never a silent corruption of the stacks next to it.
 *
 * The child (this binary re-executed with "child") runs with
 * GREENLD_MAPPED_STACKS=0, so under greenld every stack is a slab slot. It
 * parks 8 threads of 64 KiB stacks in read() on a pipe, the stacks just
 * below the next one, then overflows a ninth. Natively and under greenld it
 * must die by SIGSEGV. Under greenld its stderr must announce the shared
 * stacks once and name the overflow and the stack size; where the kernel
 * offers no userfaultfd write protection (the library then says "have no
 * guard"), death by SIGABRT from the canary check is accepted too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_support.h"

enum { STACK_SIZE = 64 * 1024, NEIGHBOURS = 8 };

/* ---- the child */

static volatile long sink;
static volatile long stop_depth = -1; /* never reached: see t_stack_overflow */
static int park_pipe[2];
static atomic_int about_to_park;

static __attribute__((noinline)) long recurse_forever(long depth) {
    volatile char frame[512];
    frame[0] = (char)depth;
    frame[sizeof frame - 1] = (char)depth;
    if (depth == stop_depth) return 0;
    long below = recurse_forever(depth + 1);
    return below + frame[0] + frame[sizeof frame - 1];
}

static void *overflow_thread(void *arg) {
    (void)arg;
    sink = recurse_forever(0);
    return NULL;
}

static void *parked_thread(void *arg) {
    (void)arg;
    char c;
    atomic_fetch_add(&about_to_park, 1);
    ssize_t n = read(park_pipe[0], &c, 1);
    fprintf(stderr, "child: a parked thread's read returned %zd: nobody writes to that pipe\n", n);
    exit(4);
}

static int child(void) {
    CHECK_EQ(pipe(park_pipe), 0);
    pthread_attr_t attr;
    CHECK_EQ(pthread_attr_init(&attr), 0);
    CHECK_EQ(pthread_attr_setstacksize(&attr, STACK_SIZE), 0);
    pthread_t t;
    for (int i = 0; i < NEIGHBOURS; ++i) CHECK_EQ(pthread_create(&t, &attr, parked_thread, NULL), 0);
    while (atomic_load(&about_to_park) < NEIGHBOURS) usleep(1000);
    usleep(50 * 1000); /* into their read() */
    CHECK_EQ(pthread_create(&t, &attr, overflow_thread, NULL), 0);
    pthread_join(t, NULL);
    fprintf(stderr, "child: the overflowing thread was joined: it should have killed the process\n");
    return 3;
}

/* ---- the parent */

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "child") == 0) return child();
    const int under_shim = is_shim();
    watchdog(30);

    int err[2];
    CHECK_EQ(pipe(err), 0);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        setenv("GREENLD_MAPPED_STACKS", "0", 1);
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
    const int unguarded = strstr(out, "have no guard") != NULL;
    const int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    CHECK(sig == SIGSEGV || (under_shim && unguarded && sig == SIGABRT),
          "child overflowing a %d KiB thread stack next to %d parked ones: status 0x%x (exited %d code %d, "
          "signalled %d sig %d), expected death by SIGSEGV; its stderr:\n%s",
          STACK_SIZE / 1024, NEIGHBOURS, status, WIFEXITED(status), WIFEXITED(status) ? WEXITSTATUS(status) : -1,
          WIFSIGNALED(status), sig, out);
    if (under_shim) {
        CHECK(strstr(out, "greenld: 0 fiber stacks have a mapping") != NULL &&
                  strstr(out, "further stacks share mappings") != NULL,
              "the child's stderr does not announce the shared stacks:\n%s", out);
        CHECK(strstr(out, "overflowed its stack (64 KiB)") != NULL,
              "the child's stderr does not say \"overflowed its stack (64 KiB)\":\n%s", out);
    }
    printf("t_stack_overflow_shared: ok (%s%s)\n", under_shim ? "greenld" : "native",
           under_shim ? (unguarded ? ", unguarded slab" : ", userfaultfd-guarded slab") : "");
    return 0;
}
