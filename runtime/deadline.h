// Absolute deadlines on CLOCK_MONOTONIC. Every timeout in the runtime is one
// of these, so a timeout that spans several parks (a partial send, a futex
// retry) is never restarted from scratch.
#pragma once

#include <cstdint>
#include <ctime>

#include "native.h"

namespace greenld {

struct Deadline {
    static constexpr int64_t kNever = INT64_MAX;
    int64_t mono_ns = kNever;

    static Deadline never() { return {}; }
    static Deadline at(int64_t mono_ns) { return Deadline{mono_ns}; }
    static Deadline after_ns(int64_t ns) {
        if (ns <= 0) return Deadline{int64_t(native::monotonic_ns())};
        int64_t now = int64_t(native::monotonic_ns());
        return Deadline{ns > kNever - now ? kNever : now + ns};
    }
    // An absolute time on `clock` (CLOCK_REALTIME or CLOCK_MONOTONIC, as
    // pthread_cond_timedwait and clock_nanosleep take them).
    static Deadline from_abs(clockid_t clock, const timespec& ts) {
        int64_t t = int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
        if (clock == CLOCK_MONOTONIC) return Deadline{t};
        int64_t delta = t - int64_t(native::realtime_ns());
        return after_ns(delta);
    }

    bool is_never() const { return mono_ns == kNever; }
    bool passed() const { return !is_never() && int64_t(native::monotonic_ns()) >= mono_ns; }
    int64_t remaining_ns() const {
        if (is_never()) return -1;
        int64_t r = mono_ns - int64_t(native::monotonic_ns());
        return r > 0 ? r : 0;
    }
};

}  // namespace greenld
