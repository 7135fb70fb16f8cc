/*
 * t_signal_tid.c — signals sent to a thread by the id gettid() gave it.
 *   - tgkill(getpid(), tid, sig), syscall(SYS_tgkill), syscall(SYS_tkill)
 *     from another thread interrupt the target's blocking read (EINTR, no
 *     SA_RESTART) and run the handler in the target thread itself (its
 *     gettid() and pthread_self() are the target's), while a ticker thread
 *     keeps ticking; the sender may be the main thread or a created one;
 *   - pthread_sigqueue and syscall(SYS_rt_tgsigqueueinfo) deliver si_code
 *     SI_QUEUE and the value sent to a SA_SIGINFO handler in the target;
 *   - a signal the target blocks stays pending for it (sigpending) and its
 *     sigwait takes it; sig 0 probes a live thread;
 *   - after the thread is joined its id is gone: ESRCH, as the kernel says;
 *     invalid signal numbers: EINVAL;
 *   - threads that exit while tgkill is aimed at them: every call returns 0
 *     or ESRCH, nothing crashes;
 *   - in the child of a fork made by a created thread, pthread_kill and
 *     pthread_sigqueue to pthread_self() run the handler before returning.
 */
#include "signal_support.h"

#include <sys/wait.h>

static atomic_int g_hits;
static atomic_int g_handler_tid;
static pthread_t g_handler_thread;
static atomic_int g_queued_value;
static atomic_int g_queued_code;

static void on_usr1(int sig)
{
    (void)sig;
    atomic_store(&g_handler_tid, gettid());
    g_handler_thread = pthread_self();
    atomic_fetch_add(&g_hits, 1);
}

static void on_rt(int sig, siginfo_t *info, void *uc)
{
    (void)sig;
    (void)uc;
    atomic_store(&g_handler_tid, gettid());
    atomic_store(&g_queued_code, info->si_code);
    atomic_store(&g_queued_value, info->si_value.sival_int);
    atomic_fetch_add(&g_hits, 1);
}

/* The target: publishes its id, then blocks in read() on a pipe nobody
 * writes until it is interrupted. */
struct target {
    int fd[2];
    atomic_int tid;
    pthread_t self;
    int read_errno;
    int handler_tid;
    int handler_in_self;
};

static void *reader(void *arg)
{
    struct target *t = arg;
    t->self = pthread_self();
    atomic_store(&t->tid, gettid());
    char c;
    ssize_t n = read(t->fd[0], &c, 1);
    t->read_errno = n < 0 ? errno : 0;
    t->handler_tid = atomic_load(&g_handler_tid);
    t->handler_in_self = pthread_equal(g_handler_thread, pthread_self());
    return NULL;
}

enum how { TGKILL, SYSCALL_TGKILL, SYSCALL_TKILL, RT_TGSIGQUEUEINFO, PTHREAD_SIGQUEUE };

static long send_one(enum how how, struct target *t, int sig)
{
    int tid = atomic_load(&t->tid);
    switch (how) {
    case TGKILL: return tgkill(getpid(), tid, sig);
    case SYSCALL_TGKILL: return syscall(SYS_tgkill, getpid(), tid, sig);
    case SYSCALL_TKILL: return syscall(SYS_tkill, tid, sig);
    case RT_TGSIGQUEUEINFO: {
        siginfo_t info;
        memset(&info, 0, sizeof info);
        info.si_signo = sig;
        info.si_code = SI_QUEUE;
        info.si_pid = getpid();
        info.si_uid = getuid();
        info.si_value.sival_int = 4242;
        return syscall(SYS_rt_tgsigqueueinfo, getpid(), tid, sig, &info);
    }
    case PTHREAD_SIGQUEUE: {
        union sigval v = {.sival_int = 777};
        int rc = pthread_sigqueue(t->self, sig, v);
        if (rc) errno = rc;
        return rc ? -1 : 0;
    }
    }
    return -1;
}

struct send_args {
    enum how how;
    struct target *t;
    int sig;
};

static void *sender(void *arg)
{
    struct send_args *a = arg;
    return (void *)send_one(a->how, a->t, a->sig);
}

/* Starts a reader, waits until it sleeps in read(), sends `sig` the way
 * `how` says (from a created thread if `from_thread`), and checks that the
 * read failed with EINTR and the handler ran in the reader. */
static void interrupt_reader(const char *phase, enum how how, int sig, int from_thread)
{
    set_phase(phase);
    struct target t;
    memset(&t, 0, sizeof t);
    CHECK_EQ(pipe(t.fd), 0);
    atomic_store(&g_handler_tid, 0);
    int hits = atomic_load(&g_hits);
    long ticks = ticker_ticks();
    pthread_t r = spawn(reader, &t);
    while (!atomic_load(&t.tid)) sleep_ms(1);
    sleep_ms(200); /* it blocks in read() meanwhile */
    long rc;
    if (from_thread) {
        struct send_args a = {how, &t, sig};
        rc = (long)join(spawn(sender, &a));
    } else {
        rc = send_one(how, &t, sig);
    }
    CHECK(rc == 0, "sending to thread id %d returned %ld", atomic_load(&t.tid), rc);
    join_within(r, 5000, phase);
    CHECK(atomic_load(&g_hits) == hits + 1, "the handler ran %d times", atomic_load(&g_hits) - hits);
    CHECK(t.read_errno == EINTR, "read ended with errno %d, expected EINTR", t.read_errno);
    CHECK(t.handler_tid == atomic_load(&t.tid), "the handler ran with gettid() %d, the target is %d",
          t.handler_tid, atomic_load(&t.tid));
    if (how != RT_TGSIGQUEUEINFO && how != PTHREAD_SIGQUEUE)
        CHECK(t.handler_in_self, "the handler ran in another thread");
    ticker_expect(ticks, 20, phase);

    set_phase("the id of a joined thread is gone");
    int tid = atomic_load(&t.tid);
    errno = 0;
    CHECK(tgkill(getpid(), tid, 0) == -1 && errno == ESRCH, "tgkill(dead tid, 0): errno %d", errno);
    errno = 0;
    CHECK(syscall(SYS_tkill, tid, SIGUSR1) == -1 && errno == ESRCH, "tkill(dead tid): errno %d", errno);
    close(t.fd[0]);
    close(t.fd[1]);
}

/* ---- a blocked signal stays pending for the target ---- */

static atomic_int g_blocker_tid;
static atomic_int g_blocker_stage;

static void *blocker(void *arg)
{
    (void)arg;
    block(SIGUSR2);
    atomic_store(&g_blocker_tid, gettid());
    while (atomic_load(&g_blocker_stage) != 1) sleep_ms(1);
    sigset_t pending;
    CHECK(sigpending(&pending) == 0, "sigpending");
    CHECK(sigismember(&pending, SIGUSR2), "the signal sent to this thread's id is not pending for it");
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    int sig = 0;
    CHECK_RC(sigwait(&set, &sig), 0);
    CHECK_EQ(sig, SIGUSR2);
    CHECK(sigpending(&pending) == 0 && !sigismember(&pending, SIGUSR2), "still pending after sigwait");
    return NULL;
}

static void *quick(void *arg)
{
    atomic_store((atomic_int *)arg, gettid());
    return NULL;
}

static void *fork_and_signal_self(void *arg)
{
    (void)arg;
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        int hits = atomic_load(&g_hits);
        if (pthread_kill(pthread_self(), SIGUSR1) != 0 || atomic_load(&g_hits) != hits + 1) _exit(1);
        union sigval v = {.sival_int = 99};
        if (pthread_sigqueue(pthread_self(), SIGRTMIN, v) != 0 || atomic_load(&g_hits) != hits + 2 ||
            atomic_load(&g_queued_value) != 99)
            _exit(2);
        _exit(0);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the fork child's own signals: status %#x", status);
    return NULL;
}

int main(void)
{
    sig_watchdog(60);
    on(SIGUSR1, on_usr1, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_rt;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGRTMIN, &sa, NULL) == 0, "sigaction(SIGRTMIN)");
    ticker_start();

    interrupt_reader("tgkill from main", TGKILL, SIGUSR1, 0);
    interrupt_reader("tgkill from a thread", TGKILL, SIGUSR1, 1);
    interrupt_reader("syscall(SYS_tgkill) from a thread", SYSCALL_TGKILL, SIGUSR1, 1);
    interrupt_reader("syscall(SYS_tkill) from main", SYSCALL_TKILL, SIGUSR1, 0);
    interrupt_reader("syscall(SYS_tkill) from a thread", SYSCALL_TKILL, SIGUSR1, 1);

    atomic_store(&g_queued_value, 0);
    interrupt_reader("rt_tgsigqueueinfo from a thread", RT_TGSIGQUEUEINFO, SIGRTMIN, 1);
    CHECK(atomic_load(&g_queued_code) == SI_QUEUE, "si_code %d, expected SI_QUEUE", atomic_load(&g_queued_code));
    CHECK_EQ(atomic_load(&g_queued_value), 4242);
    interrupt_reader("pthread_sigqueue from main", PTHREAD_SIGQUEUE, SIGRTMIN, 0);
    CHECK(atomic_load(&g_queued_code) == SI_QUEUE, "si_code %d, expected SI_QUEUE", atomic_load(&g_queued_code));
    CHECK_EQ(atomic_load(&g_queued_value), 777);

    set_phase("a blocked signal sent by id stays pending for the thread");
    pthread_t b = spawn(blocker, NULL);
    while (!atomic_load(&g_blocker_tid)) sleep_ms(1);
    int btid = atomic_load(&g_blocker_tid);
    CHECK(tgkill(getpid(), btid, 0) == 0, "tgkill(live tid, 0)");
    errno = 0;
    CHECK(tgkill(getpid(), btid, 65) == -1 && errno == EINVAL, "tgkill(sig 65): errno %d", errno);
    errno = 0;
    CHECK(tgkill(getpid(), btid, -1) == -1 && errno == EINVAL, "tgkill(sig -1): errno %d", errno);
    CHECK(tgkill(getpid(), btid, SIGUSR2) == 0, "tgkill(SIGUSR2)");
    atomic_store(&g_blocker_stage, 1);
    join_within(b, 5000, "blocker");

    set_phase("signals aimed at threads while they exit");
    on(SIGUSR2, on_usr1, SA_RESTART);
    for (int round = 0; round < 200; ++round) {
        atomic_int tid = 0;
        pthread_t q = spawn(quick, &tid);
        while (!atomic_load(&tid)) {
        }
        for (int i = 0; i < 20; ++i) {
            errno = 0;
            int rc = tgkill(getpid(), atomic_load(&tid), SIGUSR2);
            CHECK(rc == 0 || errno == ESRCH, "tgkill of an exiting thread: rc %d errno %d", rc, errno);
        }
        join(q);
    }

    set_phase("pthread_kill(pthread_self()) in a fork child of a thread");
    join_within(spawn(fork_and_signal_self, NULL), 10000, "fork child");

    ticker_stop();
    printf("ok\n");
    return 0;
}
