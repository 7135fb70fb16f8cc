/*
 * t_robust_shared.c — robust process-shared mutexes (normal, recursive,
 * error checking), which keep the kernel's robust-futex protocol. Every
 * part runs from the main thread, then again from a created thread (so
 * that, under greenld with one hub, every party is a fiber of one OS
 * thread); an argument runs one part: threads, ownership, processes, died.
 *   - contended between two threads of this process: the waiter does not
 *     get it while held, gets it after, and the other threads run
 *     meanwhile (a probe answers); a timed lock times out with ETIMEDOUT; a
 *     condition variable waited on with one;
 *   - recursion and error checks between two threads of the process:
 *     another thread's trylock is EBUSY, its unlock EPERM, its timed lock
 *     times out; the owner's relock EDEADLK (error checking) or counts;
 *   - contended across a fork()ed process: a counter two processes of
 *     three threads increment under it loses nothing; a thread waiting
 *     while the other process holds it for 300 ms lets the probe answer;
 *   - owner died: a process that exits holding it, before or while a
 *     thread here waits, leaves EOWNERDEAD; so does a thread that ends
 *     holding it, with or without a waiter; unlocked without
 *     pthread_mutex_consistent it is ENOTRECOVERABLE; after a thread ended holding
 *     two, the kernel still finds those others hold when their process
 *     exits (the robust list of an OS thread that fibers share intact).
 */
#include "test_support.h"

#include "kernel_mutex_support.h"

static const struct kind kNormal = {PTHREAD_MUTEX_NORMAL, PTHREAD_MUTEX_ROBUST, PTHREAD_PROCESS_SHARED,
                                    PTHREAD_PRIO_NONE};

struct page {
    pthread_mutex_t m[4];
    atomic_int child_holds;
    atomic_int parent_waits;
};

static struct page *g;

static struct kind with_type(int type)
{
    struct kind k = kNormal;
    k.type = type;
    return k;
}

static void *hold_and_end(void *arg)
{
    pthread_mutex_t *m = arg;
    CHECK_RC(pthread_mutex_lock(m), 0);
    return NULL; /* ends holding it */
}

static void *hold_sleep_and_end(void *arg)
{
    pthread_mutex_t *m = arg;
    CHECK_RC(pthread_mutex_lock(m), 0);
    sleep_ms(200);
    return NULL;
}

static void *hold_forever(void *arg)
{
    pthread_mutex_t *m = arg;
    CHECK_RC(pthread_mutex_lock(m), 0);
    atomic_store(&g->child_holds, 1);
    for (;;) sleep_ms(1000);
    return NULL;
}

static void *hold_two_and_end(void *arg)
{
    pthread_mutex_t **two = arg;
    CHECK_RC(pthread_mutex_lock(two[0]), 0);
    CHECK_RC(pthread_mutex_lock(two[1]), 0);
    return NULL;
}

static void expect_owner_died(pthread_mutex_t *m, int try)
{
    CHECK_RC(try ? pthread_mutex_trylock(m) : pthread_mutex_lock(m), EOWNERDEAD);
    CHECK_RC(pthread_mutex_consistent(m), 0);
    CHECK_RC(pthread_mutex_unlock(m), 0);
    CHECK_RC(pthread_mutex_trylock(m), 0);
    CHECK_RC(pthread_mutex_unlock(m), 0);
}

static void across_processes(void)
{
    kind_init(&g->m[0], kNormal);
    check_held_by_other_process(&g->m[0], &g->child_holds, "robust shared: held 300 ms by another process");

    check_counter(kNormal, 3, "robust shared: a counter two processes of three threads share");
}

static void owner_process_dies(void)
{
    set_phase("robust shared: the owner process exits before the lock");
    kind_init(&g->m[0], kNormal);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        CHECK_RC(pthread_mutex_lock(&g->m[0]), 0);
        _exit(0);
    }
    CHECK_EQ(wait_exit(pid), 0);
    expect_owner_died(&g->m[0], 1);

    set_phase("robust shared: the owner process exits while a thread waits");
    check_owner_process_dies(&g->m[0], &g->child_holds, &g->parent_waits);
}

static void owner_thread_ends(void)
{
    for (int type = 0; type < 3; ++type) {
        set_phase("robust shared: a thread ends holding it");
        static const int types[] = {PTHREAD_MUTEX_NORMAL, PTHREAD_MUTEX_RECURSIVE, PTHREAD_MUTEX_ERRORCHECK};
        kind_init(&g->m[0], with_type(types[type]));
        join_within(spawn(hold_and_end, &g->m[0]), 5000, "holder");
        expect_owner_died(&g->m[0], type == 1);
    }

    set_phase("robust shared: unlocked without pthread_mutex_consistent");
    kind_init(&g->m[0], kNormal);
    join_within(spawn(hold_and_end, &g->m[0]), 5000, "holder");
    CHECK_RC(pthread_mutex_lock(&g->m[0]), EOWNERDEAD);
    CHECK_RC(pthread_mutex_unlock(&g->m[0]), 0);
    struct locker late = {.m = &g->m[0]};
    join_within(spawn(locker_main, &late), 5000, "locker");
    CHECK_RC(late.rc, ENOTRECOVERABLE);
    CHECK_RC(pthread_mutex_trylock(&g->m[0]), ENOTRECOVERABLE);

    set_phase("robust shared: a thread ends holding it while another waits");
    kind_init(&g->m[0], kNormal);
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
    probe_stop(&p);

    set_phase("robust shared: the kernel still finds a held one after a thread ended holding others");
    for (int i = 0; i < 4; ++i) kind_init(&g->m[i], kNormal);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        /* One thread holds m[2] to the end; another locks m[0] and m[1]
         * after it (with one hub, all three sit on that OS thread's robust
         * list) and ends holding them. */
        atomic_store(&g->child_holds, 0);
        spawn(hold_forever, &g->m[2]);
        while (!atomic_load(&g->child_holds)) sleep_ms(1);
        pthread_mutex_t *two[2] = {&g->m[0], &g->m[1]};
        join_within(spawn(hold_two_and_end, two), 5000, "holder of two");
        expect_owner_died(&g->m[1], 0);
        expect_owner_died(&g->m[0], 1);
        CHECK_RC(pthread_mutex_lock(&g->m[3]), 0);
        _exit(0); /* holding m[3], and m[2] in the other thread */
    }
    CHECK_EQ(wait_exit(pid), 0);
    CHECK_RC(pthread_mutex_trylock(&g->m[0]), 0);
    CHECK_RC(pthread_mutex_unlock(&g->m[0]), 0);
    expect_owner_died(&g->m[2], 1);
    expect_owner_died(&g->m[3], 0);
}

static const char *g_only = "";
static int part(const char *name) { return !*g_only || !strcmp(g_only, name); }

static void body(void)
{
    if (part("threads")) {
        kind_init(&g->m[0], kNormal);
        check_contended(&g->m[0], "robust shared: contended between two threads");
        check_timeout(&g->m[0], "robust shared: timed lock times out");
        check_condvar(&g->m[0], "robust shared: a condition variable waited on with it");
    }
    if (part("ownership")) {
        kind_init(&g->m[1], with_type(PTHREAD_MUTEX_RECURSIVE));
        kind_init(&g->m[2], with_type(PTHREAD_MUTEX_ERRORCHECK));
        check_ownership(&g->m[1], &g->m[2], "robust shared: recursive and error checking between two threads");
        check_contended(&g->m[1], "robust shared recursive: contended between two threads");
    }
    if (part("processes")) across_processes();
    if (part("died")) {
        owner_process_dies();
        owner_thread_ends();
    }
}

/* argv[1], to run one part: threads, ownership, processes, died. */
int main(int argc, char **argv)
{
    if (argc > 1) g_only = argv[1];
    watchdog(60);
    g = shared_page(sizeof *g);
    body(); /* the main thread against created threads */
    /* Created threads only: under greenld with one hub, fibers of one OS
     * thread, which glibc alone takes for one owner. */
    run_in_created_thread("from a created thread", body);
    return 0;
}
