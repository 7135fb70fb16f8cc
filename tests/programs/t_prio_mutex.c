/*
 * t_prio_mutex.c — priority-inheritance and priority-protection mutexes,
 * process-private and process-shared, which keep the kernel's protocol.
 *   - contended between two threads of this process: the waiter does not
 *     get it while held, gets it after, and the other threads run
 *     meanwhile (a probe answers); a timed lock times out with ETIMEDOUT;
 *   - recursion and error checks between two threads of the process; a
 *     condition variable waited on with one;
 *   - process-shared: a counter two processes of three threads increment
 *     under it loses nothing; a thread waiting while another process holds
 *     it for 300 ms lets the probe answer;
 *   - robust priority inheritance: a thread that ends holding it, with or
 *     without another waiting, and a process that exits holding it while a
 *     thread here waits, leave EOWNERDEAD for the next locker.
 * Priority protection needs a real-time thread (glibc raises the thread
 * to the ceiling, which a SCHED_OTHER thread cannot reach): those parts
 * run under SCHED_FIFO priority 1 (ceiling 1), and are skipped with a note
 * where that is not permitted. Every part runs from the main thread, then
 * again from a created thread (so that, under greenld with one hub, every
 * party is a fiber of one OS thread); an argument runs one part: pi,
 * robust, pp.
 */
#include "test_support.h"

#include <sched.h>

#include "kernel_mutex_support.h"

struct page {
    pthread_mutex_t m[3];
    atomic_int child_holds;
    atomic_int parent_waits;
};

static struct page *g;

static struct kind kind_of(int protocol, int type, int pshared, int robust)
{
    struct kind k = {type, robust ? PTHREAD_MUTEX_ROBUST : PTHREAD_MUTEX_STALLED,
                     pshared ? PTHREAD_PROCESS_SHARED : PTHREAD_PROCESS_PRIVATE, protocol};
    return k;
}

static void make_fifo(void)
{
    struct sched_param sp = {.sched_priority = 1};
    CHECK(sched_setscheduler(0, SCHED_FIFO, &sp) == 0, "SCHED_FIFO");
}

static void each_kind(int protocol, const char *name)
{
    char what[160];
    for (int pshared = 0; pshared < 2; ++pshared) {
        const char *sh = pshared ? "shared" : "private";
        kind_init(&g->m[0], kind_of(protocol, PTHREAD_MUTEX_NORMAL, pshared, 0));
        snprintf(what, sizeof what, "%s %s: contended between two threads", name, sh);
        check_contended(&g->m[0], what);
        snprintf(what, sizeof what, "%s %s: timed lock times out", name, sh);
        check_timeout(&g->m[0], what);
        snprintf(what, sizeof what, "%s %s: a condition variable waited on with it", name, sh);
        check_condvar(&g->m[0], what);
        kind_init(&g->m[1], kind_of(protocol, PTHREAD_MUTEX_RECURSIVE, pshared, 0));
        kind_init(&g->m[2], kind_of(protocol, PTHREAD_MUTEX_ERRORCHECK, pshared, 0));
        snprintf(what, sizeof what, "%s %s: recursive and error checking between two threads", name, sh);
        check_ownership(&g->m[1], &g->m[2], what);
        snprintf(what, sizeof what, "%s %s recursive: contended between two threads", name, sh);
        check_contended(&g->m[1], what);
    }
    snprintf(what, sizeof what, "%s shared: held 300 ms by another process", name);
    kind_init(&g->m[0], kind_of(protocol, PTHREAD_MUTEX_NORMAL, 1, 0));
    check_held_by_other_process(&g->m[0], &g->child_holds, what);
    snprintf(what, sizeof what, "%s shared: a counter two processes of three threads share", name);
    check_counter(kind_of(protocol, PTHREAD_MUTEX_NORMAL, 1, 0), 3, what);
}

static void *hold_and_end(void *arg)
{
    CHECK_RC(pthread_mutex_lock(arg), 0);
    return NULL;
}

static void *hold_sleep_and_end(void *arg)
{
    CHECK_RC(pthread_mutex_lock(arg), 0);
    sleep_ms(200);
    return NULL;
}

static void robust_inherit(void)
{
    for (int pshared = 0; pshared < 2; ++pshared) {
        set_phase(pshared ? "robust PI shared: a thread ends holding it" : "robust PI private: a thread ends holding it");
        kind_init(&g->m[0], kind_of(PTHREAD_PRIO_INHERIT, PTHREAD_MUTEX_NORMAL, pshared, 1));
        join_within(spawn(hold_and_end, &g->m[0]), 5000, "holder");
        CHECK_RC(pthread_mutex_lock(&g->m[0]), EOWNERDEAD);
        CHECK_RC(pthread_mutex_consistent(&g->m[0]), 0);
        CHECK_RC(pthread_mutex_unlock(&g->m[0]), 0);
        check_contended(&g->m[0], pshared ? "robust PI shared: contended between two threads"
                                          : "robust PI private: contended between two threads");

        set_phase(pshared ? "robust PI shared: a thread ends holding it while another waits"
                          : "robust PI private: a thread ends holding it while another waits");
        pthread_t holder = spawn(hold_sleep_and_end, &g->m[0]);
        sleep_ms(50);
        struct probe p;
        probe_start(&p);
        struct locker l = {.m = &g->m[0]};
        pthread_t t = spawn(locker_main, &l);
        wait_started(&l);
        probe_expect(&p, 3000, "a thread waits for a thread that ends");
        join_within(holder, 5000, "holder");
        join_within(t, 5000, "the waiter after the owner ended");
        CHECK_RC(l.rc, EOWNERDEAD);
        CHECK_RC(pthread_mutex_trylock(&g->m[0]), 0);
        CHECK_RC(pthread_mutex_unlock(&g->m[0]), 0);
        probe_stop(&p);
    }

    set_phase("robust PI shared: the owner process exits while a thread waits");
    kind_init(&g->m[0], kind_of(PTHREAD_PRIO_INHERIT, PTHREAD_MUTEX_NORMAL, 1, 1));
    check_owner_process_dies(&g->m[0], &g->child_holds, &g->parent_waits);
    CHECK_RC(pthread_mutex_trylock(&g->m[0]), 0);
    CHECK_RC(pthread_mutex_unlock(&g->m[0]), 0);
}

static const char *g_only = "";
static int part(const char *name) { return !*g_only || !strcmp(g_only, name); }
static int g_fifo_permitted;

static void body(void)
{
    if (part("pi")) each_kind(PTHREAD_PRIO_INHERIT, "PI");
    if (part("robust")) robust_inherit();
    if (part("pp") && g_fifo_permitted) {
        g_thread_setup = make_fifo;
        make_fifo();
        each_kind(PTHREAD_PRIO_PROTECT, "PP");
        g_thread_setup = NULL;
    }
}

/* argv[1], to run one part: pi, robust, pp. */
int main(int argc, char **argv)
{
    if (argc > 1) g_only = argv[1];
    watchdog(90);
    g = shared_page(sizeof *g);

    struct sched_param sp = {.sched_priority = 1}, other = {.sched_priority = 0};
    g_fifo_permitted = sched_setscheduler(0, SCHED_FIFO, &sp) == 0;
    if (g_fifo_permitted)
        CHECK(sched_setscheduler(0, SCHED_OTHER, &other) == 0, "back to SCHED_OTHER");
    else
        fprintf(stderr, "t_prio_mutex: priority protection skipped: SCHED_FIFO not permitted (%s)\n",
                strerror(errno));

    body(); /* the main thread against created threads */
    /* Created threads only: under greenld with one hub, fibers of one OS
     * thread, which glibc alone takes for one owner. */
    run_in_created_thread("from a created thread", body);
    return 0;
}
