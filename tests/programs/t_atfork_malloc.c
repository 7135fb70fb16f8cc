/* t_atfork_malloc — nothing allocates between the program's fork prepare
 * handlers and the fork. A malloc that locks its arenas in a prepare
 * handler (jemalloc, hence redis' BGSAVE) deadlocks if anything calls it
 * after: under greenld our own prepare handler runs last, and must not
 * allocate even when it is the first to need the runtime's singletons.
 * This program's malloc family counts calls made while its prepare
 * handler's "arenas are locked" flag is set; it forks from the main thread
 * while threads have run (the hubs exist) and nothing has used the
 * blocking-call pool. Passes natively and under greenld. Calls made by
 * other threads meanwhile (they would wait on the locks) do not count. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_support.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

/* volatile: set and read around calls that reach malloc through libc.
 * Only the forking thread's calls count: another thread (under greenld a
 * hub thread freeing what an ended fiber left) may call malloc meanwhile,
 * and simply waits for the locked arenas, as it would natively. */
static volatile int g_arenas_locked;
static volatile int g_bad_calls;
static pthread_t g_forker;

static void count(void)
{
    if (g_arenas_locked && pthread_equal(pthread_self(), g_forker)) g_bad_calls++;
}
void *malloc(size_t n) { count(); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { count(); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { count(); return __libc_realloc(p, n); }
void *memalign(size_t a, size_t n) { count(); return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { count(); return __libc_memalign(a, n); }
int posix_memalign(void **out, size_t a, size_t n)
{
    count();
    void *p = __libc_memalign(a, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
void free(void *p) { count(); __libc_free(p); }

static void prepare(void)
{
    g_forker = pthread_self();
    g_arenas_locked = 1;
}
static void parent(void) { g_arenas_locked = 0; }
static void child(void) { g_arenas_locked = 0; }

static void *worker(void *arg) { return arg; }

int main(void)
{
    watchdog(20);
    set_phase("register the malloc's fork handlers first, as a malloc does at its start");
    CHECK_RC(pthread_atfork(prepare, parent, child), 0);
    set_phase("run threads (under greenld the hubs start)");
    for (int i = 0; i < 4; i++) join(spawn(worker, NULL));
    set_phase("fork from the main thread");
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) _exit(g_bad_calls == 0 ? 0 : 1);
    CHECK(g_bad_calls == 0, "%d malloc-family calls between the prepare handlers and the fork", g_bad_calls);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
    printf("t_atfork_malloc: ok\n");
    return 0;
}
