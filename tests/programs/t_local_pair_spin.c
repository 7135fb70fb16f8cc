/*
 * t_local_pair_spin — two threads talking over a socketpair and over a pipe
 * this process made (under greenld, the hubs of fibers that do so spin for
 * each other's writes for a few microseconds before they sleep):
 *
 *  1. 3,000 one-byte round trips over a socketpair, then 3,000 over a pair
 *     of pipes, every byte verified; meanwhile a third thread sleeps 2 ms
 *     50 times: its sleeps end on time (< 2 s in all), the spinning hubs do
 *     not hold timers back.
 *  2. Once the talk stops, both threads blocked in read() and the main
 *     thread asleep for 400 ms, the process uses less than 100 ms of CPU:
 *     no hub keeps spinning when the writes stop.
 *  3. The blocked readers still wake for a byte written after that idle
 *     time, and at EOF.
 */
#define _GNU_SOURCE
#include <sys/resource.h>

#include "test_support.h"

enum { kRoundTrips = 3000 };
static int g_ab[2]; /* initiator end, echoer end */
static int g_p1[2], g_p2[2];
static int g_use_pipes;

static int rd_fd(int side) { return g_use_pipes ? (side ? g_p1[0] : g_p2[0]) : g_ab[side]; }
static int wr_fd(int side) { return g_use_pipes ? (side ? g_p2[1] : g_p1[1]) : g_ab[side]; }

static void *echoer(void *arg)
{
    (void)arg;
    char c;
    for (int i = 0; i < kRoundTrips; i++) {
        read_exact(rd_fd(1), &c, 1, "echoer: ping");
        c ^= 0x55;
        write_exact(wr_fd(1), &c, 1, "echoer: pong");
    }
    return NULL;
}

static void *initiator(void *arg)
{
    (void)arg;
    for (int i = 0; i < kRoundTrips; i++) {
        char c = (char)(i & 0x7f);
        write_exact(wr_fd(0), &c, 1, "initiator: ping");
        read_exact(rd_fd(0), &c, 1, "initiator: pong");
        CHECK_EQ(c, (char)((i & 0x7f) ^ 0x55));
    }
    return NULL;
}

static void *sleeper(void *arg)
{
    (void)arg;
    int64_t t0 = now_ns();
    for (int i = 0; i < 50; i++) usleep(2000);
    int64_t took = now_ns() - t0;
    CHECK(took >= 100000000, "50 sleeps of 2 ms took %lld ns", (long long)took);
    CHECK(took < 2000000000, "50 sleeps of 2 ms took %lld ns: timers held back", (long long)took);
    return NULL;
}

static void talk(int use_pipes, const char *phase)
{
    set_phase(phase);
    g_use_pipes = use_pipes;
    pthread_t s = spawn(sleeper, NULL);
    pthread_t e = spawn(echoer, NULL), i = spawn(initiator, NULL);
    join_within(i, 30000, "initiator");
    join_within(e, 30000, "echoer");
    join_within(s, 30000, "sleeper");
}

static int64_t cpu_ns(void)
{
    struct rusage ru;
    CHECK_EQ(getrusage(RUSAGE_SELF, &ru), 0);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

static atomic_int g_woken;
static void *blocked_reader(void *arg)
{
    int fd = *(int *)arg;
    char c;
    CHECK_EQ(read(fd, &c, 1), 1);
    CHECK_EQ(c, 'w');
    atomic_fetch_add(&g_woken, 1);
    CHECK_EQ(read(fd, &c, 1), 0);
    return NULL;
}

int main(void)
{
    watchdog(60);
    unix_pair(g_ab, SOCK_STREAM);
    CHECK_EQ(pipe(g_p1), 0);
    CHECK_EQ(pipe(g_p2), 0);
    talk(0, "3000 round trips over a socketpair, a sleeper beside");
    talk(1, "3000 round trips over two pipes, a sleeper beside");

    set_phase("idle after the talk: two readers blocked, main asleep");
    int r0 = g_ab[1], r1 = g_p1[0];
    pthread_t a = spawn(blocked_reader, &r0), b = spawn(blocked_reader, &r1);
    sleep_ms(100); /* both blocked */
    int64_t cpu0 = cpu_ns();
    sleep_ms(400);
    int64_t used = cpu_ns() - cpu0;
    CHECK(used < 100000000, "%lld ns of CPU in 400 ms with every thread blocked", (long long)used);

    set_phase("idle readers wake for a byte, then at EOF");
    write_exact(g_ab[0], "w", 1, "socketpair byte");
    write_exact(g_p1[1], "w", 1, "pipe byte");
    for (int i = 0; i < 5000 && atomic_load(&g_woken) < 2; i++) sleep_ms(1);
    CHECK_EQ(atomic_load(&g_woken), 2);
    CHECK_EQ(shutdown(g_ab[0], SHUT_WR), 0);
    close(g_p1[1]);
    join_within(a, 5000, "socketpair reader");
    join_within(b, 5000, "pipe reader");
    printf("t_local_pair_spin: ok\n");
    return 0;
}
