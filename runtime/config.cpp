#include "config.h"

#include <sys/resource.h>

#include <cerrno>
#include <cstdlib>

#include "diag.h"
#include "hub.h"
#include "native.h"

namespace greenld::config {

bool parse_size(const char* text, size_t* out) {
    if (!text || !*text) return false;
    errno = 0;
    char* end = nullptr;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text || text[0] == '-') return false;
    unsigned shift = 0;
    switch (*end) {
        case '\0': break;
        case 'k': case 'K': shift = 10; ++end; break;
        case 'm': case 'M': shift = 20; ++end; break;
        case 'g': case 'G': shift = 30; ++end; break;
        default: return false;
    }
    if (*end != '\0') return false;
    if (shift && v > (~0ull >> shift)) return false;
    *out = size_t(v << shift);
    return true;
}

int hubs() {
    const int fallback = native::usable_cpus() < Runtime::kMaxHubs ? native::usable_cpus() : Runtime::kMaxHubs;
    const char* s = getenv("GREENLD_HUBS");
    if (!s) return fallback;
    char* end = nullptr;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > Runtime::kMaxHubs) {
        diag::message("GREENLD_HUBS='%s' is not an integer in 1..%d; using %d", s, Runtime::kMaxHubs, fallback);
        return fallback;
    }
    return int(v);
}

size_t stack_size() {
    constexpr size_t kMin = 16 * 1024, kMax = size_t(1) << 30;
    // glibc sizes new thread stacks by RLIMIT_STACK, 8 MiB when unlimited.
    size_t fallback = 8u << 20;
    struct rlimit rl;
    if (getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= kMin &&
        rl.rlim_cur <= kMax)
        fallback = size_t(rl.rlim_cur);
    const char* s = getenv("GREENLD_STACK_SIZE");
    if (!s) return fallback;
    size_t v = 0;
    if (!parse_size(s, &v) || v < kMin || v > kMax) {
        diag::message("GREENLD_STACK_SIZE='%s' is not a size between 16k and 1g; using %zu", s, fallback);
        return fallback;
    }
    return v;
}

}  // namespace greenld::config
