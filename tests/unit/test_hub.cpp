#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <vector>

#include "support.h"

using namespace greenld;
using namespace greenld::test;

namespace greenld::test {
int canary_child() {
    spawn([] {
        memset(Hub::current_fiber()->stack.lo(), 0, 8);
        Hub::current()->yield();
    });
    for (;;) pause();
}
}  // namespace greenld::test

TEST_CASE("spawned fibers run to completion on the hubs, and are joinable") {
    std::atomic<int> ran{0};
    std::vector<Fiber*> fibers;
    for (int i = 0; i < 200; ++i) fibers.push_back(spawn([&] { ran.fetch_add(1); }));
    for (Fiber* f : fibers) join(f);
    CHECK(ran.load() == 200);
    CHECK(Runtime::get().hub_count() >= 1);
}

TEST_CASE("fibers are spread over all hubs and never migrate") {
    const int hubs = Runtime::get().started() ? Runtime::get().hub_count() : 0;
    std::atomic<int> migrated{0};
    std::vector<Fiber*> fibers;
    std::vector<Hub*> seen(64, nullptr);
    for (int i = 0; i < 64; ++i) {
        fibers.push_back(spawn([&, i] {
            Hub* first = Hub::current();
            seen[size_t(i)] = first;
            for (int k = 0; k < 50; ++k) {
                Hub::current()->yield();
                if (Hub::current() != first) migrated.fetch_add(1);
            }
        }));
    }
    for (Fiber* f : fibers) join(f);
    CHECK(migrated.load() == 0);
    std::set<Hub*> distinct(seen.begin(), seen.end());
    CHECK(int(distinct.size()) == (hubs ? hubs : Runtime::get().hub_count()));
}

TEST_CASE("park with a deadline times out; unpark from another thread wakes") {
    std::atomic<Fiber*> parked{nullptr};
    std::atomic<int> reason{-1};
    int64_t t0 = now_ms();
    Fiber* timed = spawn([&] { reason.store(int(Hub::current()->park(Deadline::after_ns(50000000)))); });
    join(timed);
    CHECK(reason.load() == int(WakeReason::timeout));
    CHECK(now_ms() - t0 >= 50);

    Fiber* sleeper = spawn([&] {
        Hub::current()->prepare_park();
        parked.store(Hub::current_fiber());
        reason.store(int(Hub::current()->park_prepared(Deadline::never())));
    });
    while (!parked.load()) sched_yield();
    // From this native thread: a cross-thread unpark.
    while (!Hub::unpark(parked.load(), WakeReason::woken)) sched_yield();
    join(sleeper);
    CHECK(reason.load() == int(WakeReason::woken));
}

TEST_CASE("unpark is exactly-once per park: a second unpark of the same park is refused") {
    std::atomic<Fiber*> parked{nullptr};
    std::atomic<int> wakes{0};
    Fiber* f = spawn([&] {
        Hub::current()->prepare_park();
        parked.store(Hub::current_fiber());
        Hub::current()->park_prepared(Deadline::never());
        wakes.fetch_add(1);
    });
    while (!parked.load()) sched_yield();
    while (!Hub::unpark(parked.load())) sched_yield();
    CHECK_FALSE(Hub::unpark(parked.load()));
    join(f);
    CHECK(wakes.load() == 1);
}

TEST_CASE("fibers on different hubs wake each other (cross-hub unpark)") {
    // A ring of fibers passes a token around 1000 times via futexes; with
    // several hubs, most hand-offs cross hubs.
    constexpr int kFibers = 8, kRounds = 1000;
    std::atomic<uint32_t> turn{0};
    std::vector<Fiber*> fibers;
    for (int i = 0; i < kFibers; ++i) {
        fibers.push_back(spawn([&, i] {
            for (int r = 0; r < kRounds; ++r) {
                uint32_t want = uint32_t(r * kFibers + i);
                for (uint32_t v; (v = turn.load()) != want;) futex_wait(&turn, v);
                turn.store(want + 1);
                futex_wake(&turn, kFibers);
            }
        }));
    }
    for (Fiber* f : fibers) join(f);
    CHECK(turn.load() == uint32_t(kFibers * kRounds));
}

TEST_CASE("errno is per fiber: saved at switch-out, restored at switch-in") {
    std::atomic<int> bad{0};
    std::vector<Fiber*> fibers;
    for (int i = 0; i < 32; ++i) {
        fibers.push_back(spawn([&, i] {
            for (int k = 0; k < 100; ++k) {
                errno = 1000 + i;
                Hub::current()->yield();
                if (errno != 1000 + i) bad.fetch_add(1);
                errno = 2000 + i;
                Hub::current()->park(Deadline::after_ns(10000));
                if (errno != 2000 + i) bad.fetch_add(1);
            }
        }));
    }
    for (Fiber* f : fibers) join(f);
    CHECK(bad.load() == 0);
}

TEST_CASE("a corrupted stack canary stops the process with a message naming the fiber") {
    // Checked in a death test style: the switch-out check calls abort().
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2);
        execl("/proc/self/exe", "unit_tests", "--child-canary", (char*)nullptr);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGABRT);
}
