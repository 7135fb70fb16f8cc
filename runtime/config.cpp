#include "config.h"

#include <sys/resource.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

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

namespace {

struct FamilyName {
    const char* name;
    unsigned bit;
};
constexpr FamilyName kFamilies[] = {{"socket", kPatchSocket}, {"thread", kPatchThread}, {"time", kPatchTime},
                                    {"select", kPatchSelect}, {"dns", kPatchDns},       {"os", kPatchOs},
                                    {"signal", kPatchSignal}, {"all", kPatchAll}};

constexpr unsigned kUnparsed = 1u << 31;
// Constant-initialised and parsed on first use: wrappers may run before
// any constructor, and the environment is already in place then.
constinit std::atomic<unsigned> g_patch{kUnparsed};

// Returns the families; *bad is set when the value was malformed.
unsigned load_patch(const char** bad, size_t* bad_len) {
    const char* s = getenv("GREENLD_PATCH");
    unsigned v = kPatchAll;
    if (s && !parse_patch(s, &v, bad, bad_len)) v = kPatchAll;
    return v;
}

}  // namespace

bool parse_patch(const char* text, unsigned* out, const char** bad, size_t* bad_len) {
    unsigned v = 0;
    const char* p = text;
    for (;;) {
        const char* end = p;
        while (*end && *end != ',') ++end;
        size_t len = size_t(end - p);
        if (len) {
            unsigned bit = 0;
            for (const FamilyName& f : kFamilies)
                if (strlen(f.name) == len && strncmp(f.name, p, len) == 0) bit = f.bit;
            if (!bit) {
                *bad = p;
                *bad_len = len;
                return false;
            }
            v |= bit;
        }
        if (!*end) break;
        p = end + 1;
    }
    *out = v;
    return true;
}

bool patched_if_known(Family f, bool unknown) {
    unsigned v = g_patch.load(std::memory_order_relaxed);
    if (v & kUnparsed) return unknown;
    return (v & f) != 0;
}

bool patched(Family f) {
    unsigned v = g_patch.load(std::memory_order_relaxed);
    if (__builtin_expect(v & kUnparsed, 0)) {
        const char* bad = nullptr;
        size_t bad_len = 0;
        unsigned parsed = load_patch(&bad, &bad_len);
        // Only the thread that publishes the answer reports a bad value.
        if (g_patch.compare_exchange_strong(v, parsed, std::memory_order_relaxed)) {
            v = parsed;
            if (bad)
                diag::message("GREENLD_PATCH='%s': unknown family '%.*s' (known: socket, thread, time, select, dns, "
                              "os, signal, all); patching everything",
                              getenv("GREENLD_PATCH"), int(bad_len), bad);
        }
    }
    return (v & f) != 0;
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

int pool_size() {
    const char* s = getenv("GREENLD_POOL_SIZE");
    if (!s) return kDefaultPoolSize;
    char* end = nullptr;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > kMaxPoolSize) {
        diag::message("GREENLD_POOL_SIZE='%s' is not an integer in 1..%d; using %d", s, kMaxPoolSize,
                      kDefaultPoolSize);
        return kDefaultPoolSize;
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

long mapped_stacks() {
    const char* s = getenv("GREENLD_MAPPED_STACKS");
    if (!s) return -1;
    char* end = nullptr;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > (1l << 30)) {
        diag::message("GREENLD_MAPPED_STACKS='%s' is not an integer in 0..%ld; using the default", s, 1l << 30);
        return -1;
    }
    return v;
}

ResolverMode resolver_mode() {
    // Read once: every lookup asks, and the warning must appear once.
    static constinit std::atomic<int> cached{-1};
    int v = cached.load(std::memory_order_relaxed);
    if (__builtin_expect(v >= 0, 1)) return ResolverMode(v);
    ResolverMode mode = ResolverMode::ares;
    const char* s = getenv("GREENLD_RESOLVER");
    bool bad = false;
    if (s) {
        if (strcmp(s, "ares") == 0)
            mode = ResolverMode::ares;
        else if (strcmp(s, "thread") == 0)
            mode = ResolverMode::thread;
        else if (strcmp(s, "block") == 0)
            mode = ResolverMode::block;
        else
            bad = true;
    }
    int expected = -1;
    if (cached.compare_exchange_strong(expected, int(mode), std::memory_order_relaxed) && bad)
        diag::message("GREENLD_RESOLVER='%s' is not one of ares, thread, block; using ares", s);
    return ResolverMode(cached.load(std::memory_order_relaxed));
}

}  // namespace greenld::config
