/* many_parked: N threads (default 100,000) alive at once, each parked in a
 * blocking call, then released and joined. greenld only: natively threads
 * stop near kernel.pid_max (32,768 here), so run without the shim it says
 * so and exits 77 (skipped). tests/integration/many_parked.sh runs it.
 *
 *   many_parked [N]
 *
 * Threads use the default attributes (so the default stack size, as an
 * unmodified program would). A third wait in pthread_cond_wait on one
 * condvar, a third in sem_wait on one semaphore, a third in read() on one
 * of PIPES pipes (so the fd limit is not the limit: 10,000 descriptors,
 * the soft limit is raised to the hard one if needed).
 * Each fills a buffer on its own stack before parking and checks it after:
 * stacks that overlapped would show. While all are parked, every one must
 * answer pthread_kill(t, 0) and none may have returned. Then the condvar is
 * broadcast, every pipe gets one byte per reader, the semaphore one post per
 * waiter, and all are joined, each returning its index. Prints the time of each phase and the memory used
 * (MemAvailable delta, VmRSS, VmHWM) and the mappings counted in
 * /proc/self/maps at the peak.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "test_support.h"

/* 7 readers per pipe at 100,000 threads: a byte written wakes every
 * reader of its pipe, so fewer pipes would cost a herd of wake-ups each. */
enum { PIPES = 5000, STACK_CHECK_BYTES = 1024 };

static int pipes[PIPES][2];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int released;
static sem_t sem;
static atomic_int parked, returned;

static void fill(unsigned char *buf, int idx) {
    for (int i = 0; i < STACK_CHECK_BYTES; ++i) buf[i] = (unsigned char)(idx * 31 + i);
}

static void *parked_thread(void *arg) {
    const int idx = (int)(intptr_t)arg;
    volatile unsigned char mine[STACK_CHECK_BYTES];
    fill((unsigned char *)mine, idx);
    if (idx % 3 == 0) {
        CHECK_RC(pthread_mutex_lock(&lock), 0);
        atomic_fetch_add(&parked, 1);
        while (!released) CHECK_RC(pthread_cond_wait(&cond, &lock), 0);
        CHECK_RC(pthread_mutex_unlock(&lock), 0);
    } else if (idx % 3 == 1) {
        unsigned char c = 0;
        atomic_fetch_add(&parked, 1);
        ssize_t n;
        do n = read(pipes[(idx / 3) % PIPES][0], &c, 1);
        while (n < 0 && errno == EINTR);
        CHECK(n == 1, "thread %d: read returned %zd (%s)", idx, n, n < 0 ? strerror(errno) : "EOF");
    } else {
        atomic_fetch_add(&parked, 1);
        int rc;
        do rc = sem_wait(&sem);
        while (rc != 0 && errno == EINTR);
        CHECK(rc == 0, "thread %d: sem_wait: %s", idx, strerror(errno));
    }
    unsigned char want[STACK_CHECK_BYTES];
    fill(want, idx);
    for (int i = 0; i < STACK_CHECK_BYTES; ++i)
        CHECK(mine[i] == want[i], "thread %d: byte %d of its stack buffer changed while it was parked (%u, not %u)",
              idx, i, mine[i], want[i]);
    atomic_fetch_add(&returned, 1);
    return (void *)(intptr_t)(idx + 1);
}

static long meminfo_kib(const char *key) {
    FILE *f = fopen("/proc/meminfo", "r");
    CHECK(f != NULL, "open /proc/meminfo");
    char line[256];
    long v = -1;
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') v = atol(line + klen + 1);
    fclose(f);
    return v;
}

static long status_kib(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    CHECK(f != NULL, "open /proc/self/status");
    char line[256];
    long v = -1;
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') v = atol(line + klen + 1);
    fclose(f);
    return v;
}

static long map_count(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    CHECK(f != NULL, "open /proc/self/maps");
    long n = 0;
    int c;
    while ((c = getc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

int main(int argc, char **argv) {
    long n_arg = argc > 1 ? strtol(argv[1], NULL, 10) : 100000;
    CHECK(n_arg >= 2 && n_arg <= 1000000, "usage: many_parked [N], N in 2..1000000 (got '%s')", argv[1]);
    const int n = (int)n_arg;
    if (!is_shim()) {
        printf("many_parked: skipped: needs greenld (native threads stop near kernel.pid_max)\n");
        return 77;
    }
    watchdog(120);
    set_phase("pipes");
    struct rlimit rl;
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < 2 * PIPES + 64) {
        CHECK(rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= 2 * PIPES + 64,
              "RLIMIT_NOFILE hard limit %llu is too low for %d pipes", (unsigned long long)rl.rlim_max, PIPES);
        rl.rlim_cur = 2 * PIPES + 64;
        CHECK_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    for (int i = 0; i < PIPES; ++i) CHECK_EQ(pipe2(pipes[i], O_CLOEXEC), 0);
    CHECK_EQ(sem_init(&sem, 0, 0), 0);
    const long avail0 = meminfo_kib("MemAvailable");
    const int64_t t0 = now_ns();

    set_phase("creating threads");
    pthread_t *threads = calloc((size_t)n, sizeof *threads);
    CHECK(threads != NULL, "calloc");
    for (int i = 0; i < n; ++i) {
        int rc = pthread_create(&threads[i], NULL, parked_thread, (void *)(intptr_t)i);
        CHECK(rc == 0, "pthread_create #%d of %d: %s", i, n, strerror(rc));
    }
    const int64_t t_created = now_ns();

    set_phase("waiting for every thread to park");
    while (atomic_load(&parked) < n) sleep_ms(5);
    sleep_ms(100); /* the last ones to count themselves get into their call */
    const int64_t t_parked = now_ns();
    CHECK(atomic_load(&returned) == 0, "%d threads returned before being released", atomic_load(&returned));
    set_phase("pthread_kill(t, 0) on every thread");
    for (int i = 0; i < n; ++i) CHECK_RC(pthread_kill(threads[i], 0), 0);
    const long avail1 = meminfo_kib("MemAvailable");
    const long rss = status_kib("VmRSS"), maps = map_count();
    const int os_threads = os_thread_count();

    set_phase("releasing");
    CHECK_RC(pthread_mutex_lock(&lock), 0);
    released = 1;
    CHECK_RC(pthread_cond_broadcast(&cond), 0);
    CHECK_RC(pthread_mutex_unlock(&lock), 0);
    static char ones[4096];
    memset(ones, 'x', sizeof ones);
    for (int p = 0; p < PIPES; ++p) {
        int readers = 0;
        for (int i = 1; i < n; i += 3) readers += (i / 3) % PIPES == p;
        for (int left = readers; left > 0;) {
            int chunk = left < (int)sizeof ones ? left : (int)sizeof ones;
            ssize_t w = write(pipes[p][1], ones, (size_t)chunk);
            CHECK(w > 0, "write to pipe %d: %s", p, strerror(errno));
            left -= (int)w;
        }
    }
    const int64_t t_released = now_ns();
    for (int i = 2; i < n; i += 3) CHECK_EQ(sem_post(&sem), 0);
    set_phase("joining");
    for (int i = 0; i < n; ++i) {
        void *r = NULL;
        CHECK_RC(pthread_join(threads[i], &r), 0);
        CHECK(r == (void *)(intptr_t)(i + 1), "thread %d returned %p", i, r);
    }
    const int64_t t_done = now_ns();
    CHECK_EQ(atomic_load(&returned), n);
    free(threads);
    printf("many_parked: ok: %d threads parked at once (%d OS threads); created in %.2f s, all parked after "
           "%.2f s, released in %.2f s, joined in %.2f s; MemAvailable -%ld MiB (%.1f KiB per thread), VmRSS %ld MiB, "
           "VmHWM %ld MiB, %ld mappings\n",
           n, os_threads, (double)(t_created - t0) / 1e9, (double)(t_parked - t0) / 1e9,
           (double)(t_released - t_parked) / 1e9, (double)(t_done - t_released) / 1e9, (avail0 - avail1) / 1024, (double)(avail0 - avail1) / n, rss / 1024,
           status_kib("VmHWM") / 1024, maps);
    return 0;
}
