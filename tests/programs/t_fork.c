/* t_fork — fork() while threads (fibers) run on several hubs: the child
 * keeps only the calling thread, whether that was the main thread or a
 * created one; it can close fds other threads were waiting on, create and
 * join threads of its own, lock mutexes and exit with its own status.
 * fork+exec from a thread works too. In a child forked from a created
 * thread, that thread keeps its identity: pthread_self() is the handle it
 * had, its thread-specific data are still its own, and gettid() ==
 * getpid() as the process's only thread. (Ownership of an error-checking
 * mutex is not checked: glibc keys it by kernel tid, which fork changes.)
 * Passes natively and under greenld. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_support.h"

#define NWAITERS 16
static int g_pairs[NWAITERS][2];
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static long g_counter;

static void *waiter(void *arg)
{
    int i = (int)(long)arg;
    char c;
    /* Blocks until the parent releases it at the end. */
    CHECK(read(g_pairs[i][0], &c, 1) == 1, "waiter %d read", i);
    return NULL;
}

static void *adder(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10000; i++) {
        pthread_mutex_lock(&g_lock);
        g_counter++;
        pthread_mutex_unlock(&g_lock);
    }
    return NULL;
}

/* What a child does: it is alone now. */
static int child_work(void)
{
    /* Close the fds that (vanished) threads were waiting on. */
    for (int i = 0; i < NWAITERS; i++) {
        if (close(g_pairs[i][0]) != 0) return 10;
        if (close(g_pairs[i][1]) != 0) return 11;
    }
    /* Its own threads. */
    g_counter = 0;
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        if (pthread_create(&t[i], NULL, adder, NULL) != 0) return 12;
    for (int i = 0; i < 4; i++)
        if (pthread_join(t[i], NULL) != 0) return 13;
    if (g_counter != 40000) return 14;
    /* Blocking I/O between its own threads. */
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 15;
    if (write(sv[1], "ok", 2) != 2) return 16;
    char buf[2];
    if (read(sv[0], buf, 2) != 2 || memcmp(buf, "ok", 2) != 0) return 17;
    usleep(1000);
    return 42;
}

static void check_child(pid_t pid, const char *what)
{
    CHECK(pid > 0, "fork (%s): %s", what, strerror(errno));
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid (%s)", what);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 42, "%s: child status %#x (exit %d)", what, status,
          WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

static pthread_key_t g_key;

/* The forking thread's identity survives into the child. */
static void fork_keeps_identity(void)
{
    CHECK(pthread_key_create(&g_key, NULL) == 0, "key_create");
    CHECK(pthread_setspecific(g_key, &g_key) == 0, "setspecific");
    pthread_t self = pthread_self();
    pid_t pid = fork();
    if (pid == 0) {
        if (!pthread_equal(pthread_self(), self)) _exit(20);
        if (pthread_getspecific(g_key) != &g_key) _exit(21);
        if (gettid() != getpid()) _exit(24);
        _exit(42);
    }
    check_child(pid, "identity of the forking thread in the child");
    pthread_key_delete(g_key);
}

static void *forker(void *arg)
{
    (void)arg;
    fork_keeps_identity();
    pid_t pid = fork();
    if (pid == 0) _exit(child_work());
    check_child(pid, "fork from a created thread");
    /* A child that returns from the thread function instead of exiting. */
    pid = fork();
    if (pid == 0) {
        int rc = child_work();
        if (rc != 42) _exit(rc);
        return NULL; /* the last thread returns: the process exits 0 */
    }
    CHECK(pid > 0, "fork");
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child returning from its thread: status %#x", status);
    /* fork + exec from a thread. */
    pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", "exit 42", (char *)NULL);
        _exit(127);
    }
    check_child(pid, "fork+exec from a created thread");
    return NULL;
}

int main(void)
{
    for (int i = 0; i < NWAITERS; i++) CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, g_pairs[i]) == 0, "socketpair");
    pthread_t w[NWAITERS];
    for (int i = 0; i < NWAITERS; i++) CHECK(pthread_create(&w[i], NULL, waiter, (void *)(long)i) == 0, "create");
    pthread_t busy[4];
    for (int i = 0; i < 4; i++) CHECK(pthread_create(&busy[i], NULL, adder, NULL) == 0, "create");
    usleep(20000);
    for (int round = 0; round < 20; round++) {
        pid_t pid = fork();
        if (pid == 0) _exit(child_work());
        check_child(pid, "fork from the main thread while threads run");
    }
    pthread_t f;
    CHECK(pthread_create(&f, NULL, forker, NULL) == 0, "create forker");
    CHECK(pthread_join(f, NULL) == 0, "join forker");
    for (int i = 0; i < 4; i++) pthread_join(busy[i], NULL);
    for (int i = 0; i < NWAITERS; i++) CHECK(write(g_pairs[i][1], "x", 1) == 1, "release waiter %d", i);
    for (int i = 0; i < NWAITERS; i++) pthread_join(w[i], NULL);
    fprintf(stderr, "t_fork: ok\n");
    return 0;
}
