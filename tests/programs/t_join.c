/* t_join: thread lifecycle and identity.
 *
 * join returns what the thread returned or passed to pthread_exit; detach,
 * tryjoin/timedjoin while running, self/equal, self-join, names,
 * pthread_getattr_np's stack, a 256 KiB stack that really holds 200 KiB,
 * detached creation, pthread_kill(t, 0); and, in a child process, main
 * calling pthread_exit while another thread still runs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_support.h"

static pthread_t spawn_attr(const pthread_attr_t *attr, void *(*fn)(void *), void *arg) {
    pthread_t t;
    int rc = pthread_create(&t, attr, fn, arg);
    CHECK(rc == 0, "pthread_create: %s", strerror(rc));
    return t;
}

/* ---- return values */

static void *return_value(void *arg) { return (char *)arg + 1; }

static __attribute__((noinline)) void exit_level2(void *value) {
    pthread_exit(value);
}

static __attribute__((noinline)) void exit_level1(void *value) {
    exit_level2(value);
    CHECK(0, "pthread_exit returned");
}

static void *exit_nested(void *arg) {
    exit_level1(arg);
    CHECK(0, "pthread_exit returned");
    return NULL;
}

static void test_results(void) {
    static char base[4];
    void *result = NULL;
    CHECK_RC(pthread_join(spawn(return_value, base), &result), 0);
    CHECK(result == base + 1, "join got %p, the thread returned %p", result, (void *)(base + 1));
    result = NULL;
    CHECK_RC(pthread_join(spawn(exit_nested, base + 2), &result), 0);
    CHECK(result == base + 2, "join got %p, the thread passed %p to pthread_exit", result, (void *)(base + 2));
    /* A NULL result pointer is allowed. */
    CHECK_RC(pthread_join(spawn(return_value, base), NULL), 0);
}

/* ---- a thread that runs until released */

struct controlled {
    struct pipe_event started, release, done;
    pthread_t self;        /* pthread_self() inside */
    pthread_t handle;      /* what pthread_create stored, handed in before release */
    int self_join_rc;      /* pthread_join(pthread_self()) inside */
    char name_inside[32];  /* pthread_getname_np(pthread_self()) after main named it */
    int name_rc;
    void *local_address;   /* address of a local variable of the thread */
    void *stack_addr;      /* pthread_getattr_np(pthread_self()) inside */
    size_t stack_size;
    int detach_state;
};

static void *controlled_thread(void *arg) {
    struct controlled *c = arg;
    volatile int local = 1;
    c->self = pthread_self();
    c->local_address = (void *)&local;
    pthread_attr_t a;
    CHECK_RC(pthread_getattr_np(pthread_self(), &a), 0);
    CHECK_RC(pthread_attr_getstack(&a, &c->stack_addr, &c->stack_size), 0);
    CHECK_RC(pthread_attr_getdetachstate(&a, &c->detach_state), 0);
    CHECK_RC(pthread_attr_destroy(&a), 0);
    c->self_join_rc = pthread_join(pthread_self(), NULL);
    pipe_event_set(&c->started);
    pipe_event_wait(&c->release);
    c->name_rc = pthread_getname_np(pthread_self(), c->name_inside, sizeof c->name_inside);
    CHECK(pthread_equal(pthread_self(), c->handle), "pthread_self() inside differs from pthread_create's handle");
    CHECK(pthread_equal(pthread_self(), c->self), "pthread_self() changed during the thread's life");
    CHECK(local == 1, "local variable changed");
    pipe_event_set(&c->done);
    return c;
}

static void controlled_init(struct controlled *c) {
    memset(c, 0, sizeof *c);
    pipe_event_init(&c->started);
    pipe_event_init(&c->release);
    pipe_event_init(&c->done);
}

static void controlled_destroy(struct controlled *c) {
    pipe_event_destroy(&c->started);
    pipe_event_destroy(&c->release);
    pipe_event_destroy(&c->done);
}

static void test_running_thread(void) {
    struct controlled c;
    controlled_init(&c);
    pthread_t t = spawn(controlled_thread, &c);
    c.handle = t;
    pipe_event_wait(&c.started);

    /* Identity. */
    CHECK(pthread_equal(c.self, t), "pthread_self() in the thread is not the pthread_t from pthread_create");
    CHECK(!pthread_equal(t, pthread_self()), "a created thread is pthread_equal to main");
    CHECK(pthread_equal(pthread_self(), pthread_self()), "pthread_equal(self, self) is false");
    CHECK(c.self_join_rc == EDEADLK, "pthread_join(pthread_self()) in a created thread returned %d (%s), "
          "expected EDEADLK", c.self_join_rc, strerror(c.self_join_rc));

    /* Still running: tryjoin, timedjoin. */
    CHECK_RC(pthread_tryjoin_np(t, NULL), EBUSY);
    const int64_t t0 = now_ns();
    struct timespec abs = abs_after_ms(CLOCK_REALTIME, 100);
    int rc = pthread_timedjoin_np(t, NULL, &abs);
    const int64_t ms = (now_ns() - t0) / 1000000;
    CHECK(rc == ETIMEDOUT, "pthread_timedjoin_np on a running thread returned %d (%s), expected ETIMEDOUT", rc,
          strerror(rc));
    CHECK(ms >= 99 && ms < 1000, "pthread_timedjoin_np(+100 ms) took %lld ms", (long long)ms);
    CHECK_RC(pthread_tryjoin_np(t, NULL), EBUSY);
    CHECK_RC(pthread_kill(t, 0), 0);

    /* Its stack, as pthread_getattr_np reports it, holds its locals. */
    const char *lo = c.stack_addr, *hi = lo + c.stack_size, *local = c.local_address;
    CHECK(local >= lo && local < hi, "pthread_getattr_np (inside): stack [%p, %p) does not contain the local %p",
          (void *)lo, (void *)hi, (void *)local);
    CHECK(c.detach_state == PTHREAD_CREATE_JOINABLE, "pthread_getattr_np: detach state %d, expected joinable",
          c.detach_state);
    pthread_attr_t a;
    CHECK_RC(pthread_getattr_np(t, &a), 0);
    void *addr = NULL;
    size_t size = 0;
    CHECK_RC(pthread_attr_getstack(&a, &addr, &size), 0);
    CHECK_RC(pthread_attr_destroy(&a), 0);
    lo = addr;
    hi = lo + size;
    CHECK(local >= lo && local < hi, "pthread_getattr_np (from main): stack [%p, %p) does not contain the local %p",
          (void *)lo, (void *)hi, (void *)local);

    /* Names. */
    CHECK_RC(pthread_setname_np(t, "worker-42"), 0);
    char name[32] = "";
    CHECK_RC(pthread_getname_np(t, name, sizeof name), 0);
    CHECK(strcmp(name, "worker-42") == 0, "pthread_getname_np from main: \"%s\", expected \"worker-42\"", name);
    CHECK_RC(pthread_setname_np(t, "a-name-of-16-chr"), ERANGE); /* 16 chars + NUL > 16 */
    CHECK_RC(pthread_getname_np(t, name, sizeof name), 0);
    CHECK(strcmp(name, "worker-42") == 0, "a rejected name changed the name to \"%s\"", name);

    pipe_event_set(&c.release);
    pipe_event_wait(&c.done);
    void *result = NULL;
    CHECK_RC(pthread_join(t, &result), 0);
    CHECK(result == &c, "join returned %p, expected %p", result, (void *)&c);
    CHECK_RC(c.name_rc, 0);
    CHECK(strcmp(c.name_inside, "worker-42") == 0, "pthread_getname_np inside: \"%s\", expected \"worker-42\"",
          c.name_inside);
    controlled_destroy(&c);

    /* The main thread's own identity. */
    CHECK_RC(pthread_join(pthread_self(), NULL), EDEADLK);
    CHECK_RC(pthread_kill(pthread_self(), 0), 0);
}

/* ---- detach */

static void *finish_after_release(void *arg) {
    struct controlled *c = arg;
    pipe_event_wait(&c->release);
    pipe_event_set(&c->done);
    return NULL;
}

static void *report_detach_state(void *arg) {
    struct controlled *c = arg;
    pthread_attr_t a;
    CHECK_RC(pthread_getattr_np(pthread_self(), &a), 0);
    CHECK_RC(pthread_attr_getdetachstate(&a, &c->detach_state), 0);
    CHECK_RC(pthread_attr_destroy(&a), 0);
    pipe_event_set(&c->done);
    return NULL;
}

static void test_detach(void) {
    struct controlled c;
    controlled_init(&c);
    pthread_t t = spawn(finish_after_release, &c);
    CHECK_RC(pthread_detach(t), 0);
    CHECK_RC(pthread_detach(t), EINVAL); /* still alive: the handle is valid, and no longer joinable */
    CHECK_RC(pthread_kill(t, 0), 0);
    pipe_event_set(&c.release);
    pipe_event_wait(&c.done);
    controlled_destroy(&c);

    /* Detaching a thread that has already finished (not yet joined) is
     * valid and frees it. */
    static char base[2];
    t = spawn(return_value, base);
    usleep(50 * 1000);
    CHECK_RC(pthread_detach(t), 0);

    /* Created detached. */
    controlled_init(&c);
    c.detach_state = -1;
    pthread_attr_t attr;
    CHECK_RC(pthread_attr_init(&attr), 0);
    CHECK_RC(pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED), 0);
    int state = -1;
    CHECK_RC(pthread_attr_getdetachstate(&attr, &state), 0);
    CHECK_EQ(state, PTHREAD_CREATE_DETACHED);
    spawn_attr(&attr, report_detach_state, &c);
    CHECK_RC(pthread_attr_destroy(&attr), 0);
    pipe_event_wait(&c.done);
    CHECK(c.detach_state == PTHREAD_CREATE_DETACHED,
          "pthread_getattr_np in a thread created detached: detach state %d, expected PTHREAD_CREATE_DETACHED",
          c.detach_state);
    controlled_destroy(&c);

    /* Many detached threads come and go; the process stays sound. */
    for (int i = 0; i < 200; ++i) {
        controlled_init(&c);
        CHECK_RC(pthread_attr_init(&attr), 0);
        CHECK_RC(pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED), 0);
        spawn_attr(&attr, report_detach_state, &c);
        CHECK_RC(pthread_attr_destroy(&attr), 0);
        pipe_event_wait(&c.done);
        controlled_destroy(&c);
    }
}

/* ---- an explicit stack size, really usable */

enum { STACK_SIZE = 256 * 1024, STACK_USE = 200 * 1024 };

static __attribute__((noinline)) long use_stack(void) {
    volatile char big[STACK_USE];
    for (size_t i = 0; i < sizeof big; i += 64) big[i] = (char)i;
    big[sizeof big - 1] = 1;
    long sum = 0;
    for (size_t i = 0; i < sizeof big; i += 64) sum += big[i];
    return sum + big[sizeof big - 1];
}

static __attribute__((noinline)) long recurse(int depth) {
    volatile char frame[1024];
    frame[0] = (char)depth;
    frame[sizeof frame - 1] = (char)depth;
    if (depth == 0) return frame[0];
    return recurse(depth - 1) + frame[sizeof frame - 1];
}

static long expected_use_stack(void) {
    long sum = 0;
    for (size_t i = 0; i < STACK_USE; i += 64) sum += (char)i;
    return sum + 1;
}

static void *stack_thread(void *arg) {
    long *out = arg;
    out[0] = use_stack();
    out[1] = recurse(150); /* ~150 KiB of frames */
    pthread_attr_t a;
    void *addr;
    size_t size;
    CHECK_RC(pthread_getattr_np(pthread_self(), &a), 0);
    CHECK_RC(pthread_attr_getstack(&a, &addr, &size), 0);
    CHECK_RC(pthread_attr_destroy(&a), 0);
    out[2] = (long)size;
    return NULL;
}

static void test_stack_size(void) {
    pthread_attr_t attr;
    CHECK_RC(pthread_attr_init(&attr), 0);
    CHECK_RC(pthread_attr_setstacksize(&attr, STACK_SIZE), 0);
    size_t size = 0;
    CHECK_RC(pthread_attr_getstacksize(&attr, &size), 0);
    CHECK_EQ(size, STACK_SIZE);
    long out[3] = {0, 0, 0};
    pthread_t t = spawn_attr(&attr, stack_thread, out);
    CHECK_RC(pthread_attr_destroy(&attr), 0);
    CHECK_RC(pthread_join(t, NULL), 0);
    CHECK(out[0] == expected_use_stack(), "200 KiB stack array: sum %ld, expected %ld", out[0],
          expected_use_stack());
    long want = 0;
    for (int d = 150; d >= 1; --d) want += (char)d;
    CHECK(out[1] == want, "recursion on a 256 KiB stack: %ld, expected %ld", out[1], want);
    CHECK(out[2] >= STACK_USE, "pthread_getattr_np reports a %ld-byte stack for a %d-byte request", out[2],
          STACK_SIZE);
}

/* ---- main calls pthread_exit while a thread runs (a child process) */

static int marker_fd;

static void *write_marker_later(void *arg) {
    (void)arg;
    usleep(300 * 1000);
    CHECK_EQ(write(marker_fd, "thread-done\n", 12), 12);
    return NULL;
}

static int main_exit_child(const char *fd_arg) {
    marker_fd = atoi(fd_arg);
    spawn(write_marker_later, NULL);
    CHECK_EQ(write(marker_fd, "main-exit\n", 10), 10);
    pthread_exit(NULL);
}

static void test_main_exit(const char *self) {
    int fd[2];
    CHECK_EQ(pipe(fd), 0); /* not CLOEXEC: the child writes to fd[1] */
    char fd_arg[16];
    snprintf(fd_arg, sizeof fd_arg, "%d", fd[1]);
    const int64_t t0 = now_ns();
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        close(fd[0]);
        execl(self, self, "main-exit", fd_arg, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    char buf[256];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd[0], buf + len, sizeof buf - 1 - len);
        CHECK(n >= 0, "read from the child: %s", strerror(errno));
        if (n == 0) break;
        len += (size_t)n;
        CHECK(len < sizeof buf - 1, "the child wrote too much");
    }
    buf[len] = 0;
    close(fd[0]);
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    const int64_t ms = (now_ns() - t0) / 1000000;
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "main-exit child: status 0x%x (exited %d code %d, signalled %d sig %d), expected exit 0", status,
          WIFEXITED(status), WIFEXITED(status) ? WEXITSTATUS(status) : -1, WIFSIGNALED(status),
          WIFSIGNALED(status) ? WTERMSIG(status) : -1);
    CHECK(strcmp(buf, "main-exit\nthread-done\n") == 0,
          "main-exit child wrote \"%s\", expected main's marker then the thread's", buf);
    CHECK(ms >= 300, "main-exit child finished after %lld ms, before its thread's 300 ms", (long long)ms);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "main-exit") == 0) return main_exit_child(argv[2]);
    const int under_shim = is_shim();
    /* First, before this process has any thread: fork() with fibers
     * around is not supported by greenld yet. */
    test_main_exit("/proc/self/exe");
    test_results();
    test_running_thread();
    test_detach();
    test_stack_size();
    printf("t_join: ok (%s)\n", under_shim ? "greenld" : "native");
    return 0;
}
