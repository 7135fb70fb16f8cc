// Helpers for runtime unit tests: run code as fibers and wait for them
// from the test's native thread.
#pragma once

#include <doctest/doctest.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>

#include "futex.h"
#include "hub.h"

namespace greenld::test {

// Counts down to zero; wait() returns when it gets there (fiber futex, so
// the test's native thread can wait on fibers).
class Latch {
public:
    explicit Latch(uint32_t n) : left_(n) {}
    void count_down() {
        if (left_.fetch_sub(1) == 1) futex_wake(&left_, 1 << 30);
    }
    void wait() {
        for (uint32_t v; (v = left_.load()) != 0;) futex_wait(&left_, v);
    }

private:
    std::atomic<uint32_t> left_;
};

// Spawns a fiber running fn; returns it (joinable: the caller reaps it
// with join()).
inline Fiber* spawn(std::function<void()> fn, size_t stack_size = 256 * 1024) {
    auto* boxed = new std::function<void()>(std::move(fn));
    FiberOptions opts;
    opts.stack_size = stack_size;
    Fiber* f = nullptr;
    int rc = Runtime::get().spawn(
        [](void* p) -> void* {
            auto* fn = static_cast<std::function<void()>*>(p);
            (*fn)();
            delete fn;
            return nullptr;
        },
        boxed, opts, &f);
    // Also used by child modes that run outside any doctest test case.
    if (rc != 0) {
        fprintf(stderr, "spawn failed: %d\n", rc);
        abort();
    }
    return f;
}

inline void join(Fiber* f) {
    while (f->exited.load() == 0) futex_wait(&f->exited, 0);
    Runtime::reap(f);
}

inline int64_t now_ms() { return int64_t(native::monotonic_ns() / 1000000); }

}  // namespace greenld::test
