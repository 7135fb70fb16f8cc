#include <pthread.h>

#include <cerrno>
#include <vector>

#include "support.h"

using namespace greenld;
using namespace greenld::test;

TEST_CASE("futex_wait returns EAGAIN at once when the value differs") {
    std::atomic<uint32_t> word{5};
    CHECK(futex_wait(&word, 4) == EAGAIN);
    std::atomic<int> rc{-1};
    Fiber* f = spawn([&] { rc.store(futex_wait(&word, 4)); });
    join(f);
    CHECK(rc.load() == EAGAIN);
}

TEST_CASE("futex_wait times out after its deadline, in a fiber and in a native thread") {
    std::atomic<uint32_t> word{0};
    int64_t t0 = now_ms();
    CHECK(futex_wait(&word, 0, Deadline::after_ns(60000000)) == ETIMEDOUT);
    int64_t native_ms = now_ms() - t0;
    CHECK(native_ms >= 60);
    CHECK(native_ms < 1000);
    std::atomic<int> rc{-1};
    std::atomic<int64_t> elapsed{0};
    Fiber* f = spawn([&] {
        int64_t s = now_ms();
        rc.store(futex_wait(&word, 0, Deadline::after_ns(60000000)));
        elapsed.store(now_ms() - s);
    });
    join(f);
    CHECK(rc.load() == ETIMEDOUT);
    CHECK(elapsed.load() >= 60);
    CHECK(elapsed.load() < 1000);
    CHECK(futex_waiters(&word) == 0);
}

TEST_CASE("futex_wake wakes at most the number asked, oldest first, fibers and native threads alike") {
    std::atomic<uint32_t> word{0};
    std::atomic<int> woken{0};
    std::vector<Fiber*> fibers;
    for (int i = 0; i < 10; ++i)
        fibers.push_back(spawn([&] {
            while (futex_wait(&word, 0) != 0 || word.load() == 0) {
            }
            woken.fetch_add(1);
        }));
    pthread_t native;
    pthread_create(
        &native, nullptr,
        [](void* p) -> void* {
            auto* w = static_cast<std::atomic<uint32_t>*>(p);
            while (w->load() == 0) futex_wait(w, 0);
            return nullptr;
        },
        &word);
    while (futex_waiters(&word) < 11) sched_yield();
    word.store(1);
    CHECK(futex_wake(&word, 3) == 3);
    CHECK(futex_wake(&word, 100) == 8);
    for (Fiber* f : fibers) join(f);
    pthread_join(native, nullptr);
    CHECK(woken.load() == 10);
    CHECK(futex_wake(&word, 1) == 0);
}

TEST_CASE("a wake racing a timeout is never lost: every wake is counted by a waiter") {
    // Many short timed waits and wakes on one word: futex_wake's count must
    // equal the number of waits that returned 0 because of it.
    std::atomic<uint32_t> word{0};
    std::atomic<int> woken_waits{0};
    std::atomic<bool> stop{false};
    std::vector<Fiber*> fibers;
    for (int i = 0; i < 8; ++i)
        fibers.push_back(spawn([&] {
            while (!stop.load())
                if (futex_wait(&word, 0, Deadline::after_ns(20000)) == 0) woken_waits.fetch_add(1);
        }));
    int wakes = 0;
    for (int i = 0; i < 20000; ++i) wakes += futex_wake(&word, 1);
    stop.store(true);
    for (Fiber* f : fibers) join(f);
    CHECK(woken_waits.load() == wakes);
}

TEST_CASE("a mutex built on the futex keeps a shared counter exact across hubs and native threads") {
    std::atomic<uint32_t> lock{0};
    long counter = 0;
    auto acquire = [&] {
        uint32_t c = 0;
        if (lock.compare_exchange_strong(c, 1)) return;
        while (lock.exchange(2) != 0) futex_wait(&lock, 2);
    };
    auto release = [&] {
        if (lock.exchange(0) == 2) futex_wake(&lock, 1);
    };
    std::vector<Fiber*> fibers;
    for (int i = 0; i < 8; ++i)
        fibers.push_back(spawn([&] {
            for (int k = 0; k < 20000; ++k) {
                acquire();
                ++counter;
                if (k % 64 == 0) Hub::current()->yield();  // hold it across a switch
                release();
            }
        }));
    for (int k = 0; k < 20000; ++k) {
        acquire();
        ++counter;
        release();
    }
    for (Fiber* f : fibers) join(f);
    CHECK(counter == 9 * 20000);
}
