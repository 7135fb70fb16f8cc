/* Every timed and clock variant of the pthread and semaphore waits, with
 * glibc's exact answers: ETIMEDOUT after the deadline (never early, on the
 * clock asked for), at once for a deadline in the past or a negative
 * tv_sec, EINVAL for a tv_nsec out of range or an unsupported clock, and
 * what an uncontended call does with a bad timespec. Run in a thread, with
 * the objects held by the main thread. */
#include "test_support.h"

#include <semaphore.h>

static sem_t g_sem, g_sem_token;
static pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER, g_free_mutex = PTHREAD_MUTEX_INITIALIZER,
                       g_cond_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_rwlock_t g_rwlock = PTHREAD_RWLOCK_INITIALIZER, g_free_rwlock = PTHREAD_RWLOCK_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;

enum { SEM_TIMED, SEM_CLOCK, MUTEX_TIMED, MUTEX_CLOCK, RD_TIMED, RD_CLOCK, WR_TIMED, WR_CLOCK, COND_TIMED,
       COND_CLOCK, N_CALLS };
static const char *names[] = {"sem_timedwait", "sem_clockwait", "pthread_mutex_timedlock",
                              "pthread_mutex_clocklock", "pthread_rwlock_timedrdlock", "pthread_rwlock_clockrdlock",
                              "pthread_rwlock_timedwrlock", "pthread_rwlock_clockwrlock", "pthread_cond_timedwait",
                              "pthread_cond_clockwait"};

static int is_clock_variant(int call) { return call % 2 == 1; }

/* The call on a held object; an error number (sem_*: errno). */
static int call_held(int call, clockid_t clock, const struct timespec *ts)
{
    int rc;
    switch (call) {
        case SEM_TIMED: return sem_timedwait(&g_sem, ts) == 0 ? 0 : errno;
        case SEM_CLOCK: return sem_clockwait(&g_sem, clock, ts) == 0 ? 0 : errno;
        case MUTEX_TIMED: return pthread_mutex_timedlock(&g_mutex, ts);
        case MUTEX_CLOCK: return pthread_mutex_clocklock(&g_mutex, clock, ts);
        case RD_TIMED: return pthread_rwlock_timedrdlock(&g_rwlock, ts);
        case RD_CLOCK: return pthread_rwlock_clockrdlock(&g_rwlock, clock, ts);
        case WR_TIMED: return pthread_rwlock_timedwrlock(&g_rwlock, ts);
        case WR_CLOCK: return pthread_rwlock_clockwrlock(&g_rwlock, clock, ts);
        case COND_TIMED:
            pthread_mutex_lock(&g_cond_mutex);
            rc = pthread_cond_timedwait(&g_cond, &g_cond_mutex, ts);
            CHECK(pthread_mutex_trylock(&g_cond_mutex) == EBUSY, "cond wait returned without the mutex");
            pthread_mutex_unlock(&g_cond_mutex);
            return rc;
        case COND_CLOCK:
            pthread_mutex_lock(&g_cond_mutex);
            rc = pthread_cond_clockwait(&g_cond, &g_cond_mutex, clock, ts);
            CHECK(pthread_mutex_trylock(&g_cond_mutex) == EBUSY, "cond wait returned without the mutex");
            pthread_mutex_unlock(&g_cond_mutex);
            return rc;
    }
    return -1;
}

/* The same call on an available object (conds excluded): 0 or an error. */
static int call_free(int call, clockid_t clock, const struct timespec *ts)
{
    int rc = -1;
    switch (call) {
        case SEM_TIMED: rc = sem_timedwait(&g_sem_token, ts) == 0 ? 0 : errno; if (!rc) sem_post(&g_sem_token); break;
        case SEM_CLOCK: rc = sem_clockwait(&g_sem_token, clock, ts) == 0 ? 0 : errno; if (!rc) sem_post(&g_sem_token); break;
        case MUTEX_TIMED: rc = pthread_mutex_timedlock(&g_free_mutex, ts); if (!rc) pthread_mutex_unlock(&g_free_mutex); break;
        case MUTEX_CLOCK: rc = pthread_mutex_clocklock(&g_free_mutex, clock, ts); if (!rc) pthread_mutex_unlock(&g_free_mutex); break;
        case RD_TIMED: rc = pthread_rwlock_timedrdlock(&g_free_rwlock, ts); if (!rc) pthread_rwlock_unlock(&g_free_rwlock); break;
        case RD_CLOCK: rc = pthread_rwlock_clockrdlock(&g_free_rwlock, clock, ts); if (!rc) pthread_rwlock_unlock(&g_free_rwlock); break;
        case WR_TIMED: rc = pthread_rwlock_timedwrlock(&g_free_rwlock, ts); if (!rc) pthread_rwlock_unlock(&g_free_rwlock); break;
        case WR_CLOCK: rc = pthread_rwlock_clockwrlock(&g_free_rwlock, clock, ts); if (!rc) pthread_rwlock_unlock(&g_free_rwlock); break;
    }
    return rc;
}

static struct timespec in_ms(clockid_t clock, int ms)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    while (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    return ts;
}

static void check_call(int call, clockid_t clock)
{
    char phase[128];
    const char *cn = clock == CLOCK_MONOTONIC ? "CLOCK_MONOTONIC" : "CLOCK_REALTIME";
    snprintf(phase, sizeof phase, "%s (%s)", names[call], cn);
    set_phase(phase);
    const clockid_t deadline_clock = is_clock_variant(call) ? clock : CLOCK_REALTIME;

    struct timespec ts = in_ms(deadline_clock, 50);
    int64_t t0 = now_ns();
    int rc = call_held(call, clock, &ts);
    int64_t ms = (now_ns() - t0) / 1000000;
    CHECK(rc == ETIMEDOUT, "%s: deadline 50 ms away returned %d", phase, rc);
    CHECK(ms >= 45 && ms < 3000, "%s: timed out after %lld ms", phase, (long long)ms);
    struct timespec now;
    clock_gettime(deadline_clock, &now);
    CHECK(now.tv_sec > ts.tv_sec || (now.tv_sec == ts.tv_sec && now.tv_nsec >= ts.tv_nsec),
          "%s: returned ETIMEDOUT before the deadline on its clock", phase);

    struct timespec past = {1, 0};
    CHECK((rc = call_held(call, clock, &past)) == ETIMEDOUT, "%s: deadline in the past returned %d", phase, rc);
    struct timespec neg = {-1, 0};
    CHECK((rc = call_held(call, clock, &neg)) == ETIMEDOUT, "%s: tv_sec -1 returned %d", phase, rc);
    struct timespec big_ns = {0, 1000000000L}, neg_ns = {0, -1};
    CHECK((rc = call_held(call, clock, &big_ns)) == EINVAL, "%s: tv_nsec 1e9 returned %d", phase, rc);
    CHECK((rc = call_held(call, clock, &neg_ns)) == EINVAL, "%s: tv_nsec -1 returned %d", phase, rc);
    if (is_clock_variant(call)) {
        struct timespec soon = in_ms(CLOCK_MONOTONIC, 10);
        CHECK((rc = call_held(call, CLOCK_PROCESS_CPUTIME_ID, &soon)) == EINVAL,
              "%s: CLOCK_PROCESS_CPUTIME_ID returned %d", phase, rc);
    }
}

/* What an uncontended call does with a bad timespec, recorded natively
 * (glibc's answer) and compared under greenld: printed as a line. */
static void uncontended(char *out, size_t len)
{
    struct timespec big_ns = {0, 1000000000L};
    size_t off = 0;
    for (int call = SEM_TIMED; call <= WR_CLOCK; ++call) {
        int rc = call_free(call, CLOCK_MONOTONIC, &big_ns);
        off += (size_t)snprintf(out + off, len - off, "%s=%d ", names[call], rc);
        struct timespec soon = in_ms(CLOCK_MONOTONIC, 10);
        if (is_clock_variant(call)) {
            rc = call_free(call, CLOCK_PROCESS_CPUTIME_ID, &soon);
            off += (size_t)snprintf(out + off, len - off, "%s(cpu clock)=%d ", names[call], rc);
        }
    }
}

/* glibc 2.36's answers: an uncontended mutex lock succeeds without looking
 * at the timespec; semaphores and rwlocks check it first; the clock is
 * always checked. */
static const char *expected_uncontended =
    "sem_timedwait=22 sem_clockwait=22 sem_clockwait(cpu clock)=22 pthread_mutex_timedlock=0 "
    "pthread_mutex_clocklock=0 pthread_mutex_clocklock(cpu clock)=22 pthread_rwlock_timedrdlock=22 "
    "pthread_rwlock_clockrdlock=22 pthread_rwlock_clockrdlock(cpu clock)=22 pthread_rwlock_timedwrlock=22 "
    "pthread_rwlock_clockwrlock=22 pthread_rwlock_clockwrlock(cpu clock)=22 ";

static void *checker(void *arg)
{
    (void)arg;
    for (int call = 0; call < N_CALLS; ++call) {
        check_call(call, CLOCK_REALTIME);
        if (is_clock_variant(call)) check_call(call, CLOCK_MONOTONIC);
    }
    set_phase("uncontended calls with a bad timespec");
    char got[1024];
    uncontended(got, sizeof got);
    CHECK(strcmp(got, expected_uncontended) == 0, "got      '%s'\n  expected '%s'", got, expected_uncontended);
    return NULL;
}

int main(void)
{
    watchdog(60);
    CHECK(sem_init(&g_sem, 0, 0) == 0, "sem_init");
    CHECK(sem_init(&g_sem_token, 0, 1) == 0, "sem_init");
    CHECK(pthread_mutex_lock(&g_mutex) == 0, "lock");
    CHECK(pthread_rwlock_wrlock(&g_rwlock) == 0, "wrlock");
    ticker_start();
    long ticks = ticker_ticks();
    join(spawn(checker, NULL));
    ticker_expect(ticks, 50, "the timed waits");
    ticker_stop();
    pthread_mutex_unlock(&g_mutex);
    pthread_rwlock_unlock(&g_rwlock);
    printf("t_timed_variants: ok\n");
    return 0;
}
