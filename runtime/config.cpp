#include "config.h"

#include <signal.h>
#include <strings.h>
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
    const char* s = setting("GREENLD_PATCH");
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
                              setting("GREENLD_PATCH"), int(bad_len), bad);
        }
    }
    return (v & f) != 0;
}

int hubs() {
    const int fallback = native::usable_cpus() < Runtime::kMaxHubs ? native::usable_cpus() : Runtime::kMaxHubs;
    const char* s = setting("GREENLD_HUBS");
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
    const char* s = setting("GREENLD_POOL_SIZE");
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

int spin_us() {
    const char* s = setting("GREENLD_SPIN_US");
    if (!s) return kDefaultSpinUs;
    char* end = nullptr;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > kMaxSpinUs) {
        diag::message("GREENLD_SPIN_US='%s' is not an integer in 0..%d; using %d", s, kMaxSpinUs, kDefaultSpinUs);
        return kDefaultSpinUs;
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
    const char* s = setting("GREENLD_STACK_SIZE");
    if (!s) return fallback;
    size_t v = 0;
    if (!parse_size(s, &v) || v < kMin || v > kMax) {
        diag::message("GREENLD_STACK_SIZE='%s' is not a size between 16k and 1g; using %zu", s, fallback);
        return fallback;
    }
    return v;
}

long mapped_stacks() {
    const char* s = setting("GREENLD_MAPPED_STACKS");
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
    const char* s = setting("GREENLD_RESOLVER");
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

bool secure_execution() { return native::secure_execution(); }

const char* setting(const char* name) {
    if (secure_execution() && strcmp(name, "GREENLD_PATCH") != 0 && strcmp(name, "GREENLD_NO_INHERIT") != 0)
        return nullptr;
    return getenv(name);
}

namespace {

constexpr const char* kLevelNames[] = {"none", "error", "warning", "info", "debug"};
constexpr int kLevelUnread = -1;
constinit std::atomic<int> g_log_level{kLevelUnread};

}  // namespace

bool parse_log_level(const char* text, LogLevel* out) {
    for (int i = 0; i < 5; ++i)
        if (strcmp(text, kLevelNames[i]) == 0) {
            *out = LogLevel(i);
            return true;
        }
    if (strcmp(text, "warn") == 0) {
        *out = LogLevel::warning;
        return true;
    }
    return false;
}

LogLevel log_level() {
    int v = g_log_level.load(std::memory_order_relaxed);
    if (__builtin_expect(v != kLevelUnread, 1)) return LogLevel(v);
    const char* s = setting("GREENLD_LOG_LEVEL");
    LogLevel level = LogLevel::warning;
    const bool bad = s && !parse_log_level(s, &level);
    int expected = kLevelUnread;
    if (g_log_level.compare_exchange_strong(expected, int(level), std::memory_order_relaxed) && bad)
        diag::message("GREENLD_LOG_LEVEL='%s' is not one of none, error, warning, info, debug; using warning", s);
    return LogLevel(g_log_level.load(std::memory_order_relaxed));
}

bool parse_seconds(const char* text, uint64_t* ns) {
    // Digits with an optional fraction: no sign, exponent or hex (strtod
    // would take them), so "1e9" and "-1" are refused as the launcher does.
    const char* p = text;
    uint64_t whole = 0, frac = 0, scale = 1000000000;
    int digits = 0;
    for (; *p >= '0' && *p <= '9'; ++p, ++digits) {
        if (whole > 1000000) return false;
        whole = whole * 10 + uint64_t(*p - '0');
    }
    if (*p == '.') {
        ++p;
        for (; *p >= '0' && *p <= '9'; ++p, ++digits)
            if (scale > 1) {
                scale /= 10;
                frac += uint64_t(*p - '0') * scale;
            }
    }
    if (*p || !digits) return false;
    const uint64_t v = whole * 1000000000 + frac;
    if (v < 1000000 || v > 3600ull * 1000000000) return false;
    *ns = v;
    return true;
}

uint64_t max_blocking_time_ns() {
    const char* s = setting("GREENLD_MAX_BLOCKING_TIME");
    if (!s) return 0;
    uint64_t ns = 0;
    if (!parse_seconds(s, &ns)) {
        diag::message("GREENLD_MAX_BLOCKING_TIME='%s' is not a number of seconds in 0.001..3600; the blocked-hub "
                      "monitor stays off", s);
        return 0;
    }
    return ns;
}

bool parse_signal(const char* text, int* sig) {
    const char* p = text;
    if (strncasecmp(p, "SIG", 3) == 0) p += 3;
    int v = 0;
    if (*p >= '0' && *p <= '9') {
        char* end = nullptr;
        errno = 0;
        long n = strtol(p, &end, 10);
        if (errno || *end || n < 1 || n > 64 || p != text) return false;  // "SIG12" is not a name
        v = int(n);
    } else if (strncasecmp(p, "RTMIN", 5) == 0 || strncasecmp(p, "RTMAX", 5) == 0) {
        const bool min = strncasecmp(p, "RTMIN", 5) == 0;
        long off = 0;
        if (p[5]) {
            if (p[5] != (min ? '+' : '-') || !(p[6] >= '0' && p[6] <= '9')) return false;
            char* end = nullptr;
            off = strtol(p + 6, &end, 10);
            if (*end || off > 64) return false;
        }
        v = min ? SIGRTMIN + int(off) : SIGRTMAX - int(off);
        if (v < SIGRTMIN || v > SIGRTMAX) return false;
    } else {
        for (int i = 1; i < 32 && !v; ++i) {
            const char* abbrev = sigabbrev_np(i);
            if (abbrev && strcasecmp(abbrev, p) == 0) v = i;
        }
        if (!v) return false;
    }
    switch (v) {
        case SIGKILL: case SIGSTOP: case SIGSEGV: case SIGBUS: case SIGFPE: case SIGILL: case SIGTRAP:
        case SIGSYS: case 32: case 33: case kPoolKickSignal: case kSampleSignal:
            return false;
        default:
            *sig = v;
            return true;
    }
}

int dump_signal() {
    const char* s = setting("GREENLD_DUMP_SIGNAL");
    if (!s) return 0;
    int sig = 0;
    if (!parse_signal(s, &sig)) {
        diag::message("GREENLD_DUMP_SIGNAL='%s' is not a signal that can carry a dump (a name such as USR2 or "
                      "SIGUSR2, or a number; not KILL, STOP, a fault signal, 32, 33, 63 or 64); no dump signal", s);
        return 0;
    }
    return sig;
}

bool no_inherit() {
    const char* s = setting("GREENLD_NO_INHERIT");
    if (!s) return false;
    if (strcmp(s, "1") == 0) return true;
    if (strcmp(s, "0") != 0)
        diag::message("GREENLD_NO_INHERIT='%s' is not 0 or 1; children keep the shim", s);
    return false;
}

bool fiber_tls() {
    const char* s = setting("GREENLD_FIBER_TLS");
    if (!s) return false;
    if (strcmp(s, "1") == 0) return true;
    if (strcmp(s, "0") != 0)
        diag::message("GREENLD_FIBER_TLS='%s' is not 0 or 1; compiled thread-local variables stay per OS thread", s);
    return false;
}

}  // namespace greenld::config
