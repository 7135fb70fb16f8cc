// Settings read from GREENLD_* environment variables. A malformed value is
// reported once with a "greenld:" warning naming the variable, and the
// default is used: the library must never refuse to run a program.
#pragma once

#include <cstddef>

namespace greenld::config {

// The families of calls made cooperative (GREENLD_PATCH, a comma-separated
// list, like gevent's patch_all flags). A family left out behaves exactly
// as plain libc. Default: all.
enum Family : unsigned {
    kPatchSocket = 1u << 0,  // socket I/O, accept, connect; stdio on sockets
    kPatchThread = 1u << 1,  // pthread_create makes fibers; pthread sync on the fiber futex
    kPatchTime = 1u << 2,    // sleep, usleep, nanosleep, clock_nanosleep, sched_yield
    kPatchSelect = 1u << 3,  // poll, select, epoll_wait and their variants
    kPatchDns = 1u << 4,     // name resolution
    kPatchOs = 1u << 5,      // pipes, FIFOs, ttys and other pollable fds
    kPatchSignal = 1u << 6,  // signal waits
    kPatchAll = (1u << 7) - 1,
};
bool patched(Family f);
// As patched(), but `unknown` while GREENLD_PATCH has not been read yet,
// without reading it: for calls that must not be the first to (sigaction
// in a program that never starts a thread must not report a bad value),
// and for signal handlers (reading it is not async-signal-safe).
bool patched_if_known(Family f, bool unknown);
// Parses a GREENLD_PATCH value; false (and *bad names the culprit) if an
// entry is unknown.
bool parse_patch(const char* text, unsigned* out, const char** bad, size_t* bad_len);

int hubs();                 // GREENLD_HUBS, default: CPUs this process may use
size_t stack_size();        // GREENLD_STACK_SIZE, default: as glibc (RLIMIT_STACK)
// GREENLD_MAPPED_STACKS: how many fiber stacks may have a mapping (and a
// PROT_NONE guard page) of their own; -1 when unset (stack.h derives it
// from vm.max_map_count).
long mapped_stacks();
// GREENLD_POOL_SIZE: threads of the blocking-call pool (pool.h) that run
// io jobs at once, 1..kMaxPoolSize, default kDefaultPoolSize.
constexpr int kDefaultPoolSize = 4, kMaxPoolSize = 256;
int pool_size();

// GREENLD_RESOLVER: how a fiber's host lookups are answered. ares (the
// default): glibc's NSS with its dns source on the hub's c-ares channel;
// thread: the whole glibc call on the blocking-call pool; block: plain
// glibc in the fiber (blocks its hub). A bad value: one warning, ares.
enum class ResolverMode { ares, thread, block };
ResolverMode resolver_mode();

// Parses "123", "64k", "8M", "1g" (powers of 1024). False if malformed.
bool parse_size(const char* text, size_t* out);

}  // namespace greenld::config
