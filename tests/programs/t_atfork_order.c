/* t_atfork_order — pthread_atfork handlers that wait on other threads.
 * A prepare handler locks a mutex that another thread holds at fork time
 * (what jemalloc's prefork handler does with its arena locks, and what
 * redis' BGSAVE hits): the holder's unlock must be able to wake the
 * forking thread. One handler is registered before the first thread is
 * created (under greenld: before the hubs start), one after. Checked: the
 * fork completes, in the documented order (prepare handlers in reverse
 * order of registration, parent and child handlers in order), and the
 * child can lock, create threads and exit with its status; from the main
 * thread and from a created thread. Passes natively and under greenld. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_support.h"

static pthread_mutex_t g_early = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t g_late = PTHREAD_MUTEX_INITIALIZER;
static char g_order[64];
static int g_order_len;

static void note(char c)
{
    if (g_order_len < (int)sizeof g_order - 1) g_order[g_order_len++] = c;
}

/* "early" handlers (registered before any thread): lower-case letters. */
static void early_prepare(void) { pthread_mutex_lock(&g_early); note('p'); }
static void early_parent(void) { note('a'); pthread_mutex_unlock(&g_early); }
static void early_child(void) { note('c'); pthread_mutex_unlock(&g_early); }
/* "late" handlers (registered once threads run): upper-case. */
static void late_prepare(void) { pthread_mutex_lock(&g_late); note('P'); }
static void late_parent(void) { note('A'); pthread_mutex_unlock(&g_late); }
static void late_child(void) { note('C'); pthread_mutex_unlock(&g_late); }

struct holder {
    struct pipe_event held;
    int hold_ms;
};

/* Holds both mutexes across the fork: each prepare handler waits for it. */
static void *holder(void *arg)
{
    struct holder *h = arg;
    pthread_mutex_lock(&g_early);
    pthread_mutex_lock(&g_late);
    pipe_event_set(&h->held);
    sleep_ms(h->hold_ms);
    pthread_mutex_unlock(&g_late);
    sleep_ms(h->hold_ms);
    pthread_mutex_unlock(&g_early);
    return NULL;
}

static void *child_thread(void *arg)
{
    pthread_mutex_lock(&g_early);
    pthread_mutex_lock(&g_late);
    *(int *)arg = 42;
    pthread_mutex_unlock(&g_late);
    pthread_mutex_unlock(&g_early);
    return NULL;
}

static void fork_while_held(const char *phase)
{
    set_phase(phase);
    struct holder h = {.hold_ms = 100};
    pipe_event_init(&h.held);
    g_order_len = 0;
    pthread_t t = spawn(holder, &h);
    pipe_event_wait(&h.held);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        /* The child's handlers ran after the prepare ones: "Pp" then "cC". */
        if (g_order_len != 4 || memcmp(g_order, "PpcC", 4) != 0) _exit(10);
        int v = 0;
        pthread_t c;
        if (pthread_create(&c, NULL, child_thread, &v) != 0) _exit(11);
        if (pthread_join(c, NULL) != 0 || v != 42) _exit(12);
        _exit(7);
    }
    g_order[g_order_len] = 0;
    CHECK(strcmp(g_order, "PpaA") == 0, "parent: handlers ran in the order %s, expected PpaA", g_order);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7, "child status %#x (10: handler order, 11-12: threads)",
          status);
    join(t);
    pipe_event_destroy(&h.held);
}

static void *fork_from_thread(void *arg)
{
    (void)arg;
    fork_while_held("fork from a created thread while another holds the handlers' mutexes");
    return NULL;
}

int main(void)
{
    watchdog(30);
    set_phase("register the early handlers, before any thread");
    CHECK_RC(pthread_atfork(early_prepare, early_parent, early_child), 0);
    /* A first thread: under greenld the hubs start here. */
    int v = 0;
    join(spawn(child_thread, &v));
    CHECK_EQ(v, 42);
    set_phase("register the late handlers, with threads running");
    CHECK_RC(pthread_atfork(late_prepare, late_parent, late_child), 0);

    fork_while_held("fork from main while another thread holds the handlers' mutexes");
    join(spawn(fork_from_thread, NULL));
    printf("t_atfork_order: ok\n");
    return 0;
}
