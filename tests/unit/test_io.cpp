#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "fd_table.h"
#include "io.h"
#include "support.h"

using namespace greenld;
using namespace greenld::test;

namespace {
struct Pair {
    int fd[2];
    Pair() {
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, fd) == 0);
        FdTable::get().reset(fd[0], FdKind::stream, false, true);
        FdTable::get().reset(fd[1], FdKind::stream, false, true);
    }
    ~Pair() {
        for (int f : fd)
            if (f >= 0) {
                fd_closing(f);
                close(f);
            }
    }
};
}  // namespace

TEST_CASE("wait_fd wakes a fiber when its fd becomes readable") {
    Pair p;
    std::atomic<int> rc{-1};
    std::atomic<bool> waiting{false};
    Fiber* f = spawn([&] {
        waiting.store(true);
        rc.store(wait_fd(p.fd[0], kWaitRead, Deadline::never()));
    });
    while (!waiting.load()) sched_yield();
    usleep(20000);
    CHECK(rc.load() == -1);  // still parked
    REQUIRE(write(p.fd[1], "x", 1) == 1);
    join(f);
    CHECK(rc.load() == 0);
}

TEST_CASE("wait_fd times out, in a fiber and in a native thread") {
    Pair p;
    std::atomic<int> rc{-1};
    Fiber* f = spawn([&] { rc.store(wait_fd(p.fd[0], kWaitRead, Deadline::after_ns(30000000))); });
    join(f);
    CHECK(rc.load() == ETIMEDOUT);
    CHECK(wait_fd(p.fd[0], kWaitRead, Deadline::after_ns(30000000)) == ETIMEDOUT);
    CHECK(wait_fd(p.fd[1], kWaitWrite, Deadline::after_ns(30000000)) == 0);
}

TEST_CASE("cancel_wait wakes every waiter of the fd, on every hub, with the given errno") {
    Pair p;
    std::atomic<int> errors{0}, started{0};
    std::vector<Fiber*> fibers;
    for (int i = 0; i < 6; ++i)
        fibers.push_back(spawn([&] {
            started.fetch_add(1);
            if (wait_fd(p.fd[0], kWaitRead, Deadline::after_ns(5000000000)) == ECONNRESET) errors.fetch_add(1);
        }));
    while (started.load() < 6) sched_yield();
    usleep(30000);
    cancel_wait(p.fd[0], ECONNRESET);
    for (Fiber* f : fibers) join(f);
    CHECK(errors.load() == 6);
}

TEST_CASE("closing a waited fd wakes its waiters with EBADF, and a reuse of the number is not seen by them") {
    Pair p;
    std::atomic<int> rc{-1};
    std::atomic<bool> waiting{false};
    Fiber* f = spawn([&] {
        waiting.store(true);
        rc.store(wait_fd(p.fd[0], kWaitRead, Deadline::after_ns(5000000000)));
    });
    while (!waiting.load()) sched_yield();
    usleep(20000);
    int number = p.fd[0];
    fd_closing(number);
    close(number);
    p.fd[0] = -1;
    // Reuse the number with a readable fd: the stale waiter must not take it.
    int q[2];
    REQUIRE(pipe(q) == 0);
    int reused = q[0] == number ? q[0] : dup2(q[0], number);
    FdTable::get().reset(reused, FdKind::pipe, false, true);
    REQUIRE(write(q[1], "y", 1) == 1);
    join(f);
    CHECK(rc.load() == EBADF);
    // And a new waiter on the new file behind the number works.
    std::atomic<int> rc2{-1};
    Fiber* g = spawn([&] { rc2.store(wait_fd(reused, kWaitRead, Deadline::after_ns(2000000000))); });
    join(g);
    CHECK(rc2.load() == 0);
    close(q[1]);
    if (reused != q[0]) close(q[0]);
    fd_closing(reused);
    close(reused);
}

TEST_CASE("readiness is reported to a fiber repeatedly: a long request/response exchange never stalls") {
    Pair p;
    constexpr int kRounds = 2000;
    Fiber* echo = spawn([&] {
        char c;
        for (int i = 0; i < kRounds; ++i) {
            REQUIRE(wait_fd(p.fd[0], kWaitRead, Deadline::after_ns(5000000000)) == 0);
            REQUIRE(read(p.fd[0], &c, 1) == 1);
            REQUIRE(write(p.fd[0], &c, 1) == 1);
        }
    });
    Fiber* client = spawn([&] {
        char c = 'a';
        for (int i = 0; i < kRounds; ++i) {
            REQUIRE(write(p.fd[1], &c, 1) == 1);
            REQUIRE(wait_fd(p.fd[1], kWaitRead, Deadline::after_ns(5000000000)) == 0);
            REQUIRE(read(p.fd[1], &c, 1) == 1);
        }
    });
    join(echo);
    join(client);
}

TEST_CASE("a readiness event wakes every watching waiter but one exclusive waiter per hub") {
    Pair p;
    constexpr int kExclusive = 10, kWatching = 2;
    std::atomic<int> wakeups{0}, got{0}, watched{0}, waiting{0};
    std::vector<Fiber*> fibers;
    for (int i = 0; i < kExclusive; ++i)
        fibers.push_back(spawn([&] {
            waiting.fetch_add(1);
            for (;;) {
                REQUIRE(wait_fd(p.fd[0], kWaitRead | kWaitExclusive, Deadline::after_ns(10000000000)) == 0);
                wakeups.fetch_add(1);
                char c;
                if (recv(p.fd[0], &c, 1, MSG_DONTWAIT) == 1) break;  // else another hub's waiter took it
            }
            got.fetch_add(1);
        }));
    for (int i = 0; i < kWatching; ++i)
        fibers.push_back(spawn([&] {
            waiting.fetch_add(1);
            REQUIRE(wait_fd(p.fd[0], kWaitRead, Deadline::after_ns(10000000000)) == 0);
            watched.fetch_add(1);
        }));
    while (waiting.load() < kExclusive + kWatching) sched_yield();
    usleep(50000);
    for (int i = 0; i < kExclusive; ++i) {
        REQUIRE(write(p.fd[1], "x", 1) == 1);
        for (int64_t t0 = now_ms(); got.load() < i + 1 && now_ms() - t0 < 5000;) usleep(1000);
        CHECK(got.load() == i + 1);
        usleep(20000);  // a wrong extra wake-up would show by now
    }
    for (Fiber* f : fibers) join(f);
    CHECK(watched.load() == kWatching);
    // One exclusive waiter woken per hub and byte: at most 10 per hub. Waking
    // all of them made 30 here with 2 hubs (5 + 5 + 4 + 4 + ... + 1 + 1).
    CHECK(wakeups.load() <= kExclusive * Runtime::get().hub_count());
}
