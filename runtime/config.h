// Settings read from GREENLD_* environment variables. A malformed value is
// reported once with a "greenld:" warning naming the variable, and the
// default is used: the library must never refuse to run a program.
#pragma once

#include <cstddef>
#include <cstdint>

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

// GREENLD_SPIN_US: how long, in microseconds, a hub that ran out of work
// polls without sleeping before it blocks in epoll_wait, when its recent
// waits were that short (Hub::idle). 0..kMaxSpinUs; 0: never spins.
constexpr int kDefaultSpinUs = 50, kMaxSpinUs = 1000;
int spin_us();

// GREENLD_RESOLVER: how a fiber's host lookups are answered. ares (the
// default): glibc's NSS with its dns source on the hub's c-ares channel;
// thread: the whole glibc call on the blocking-call pool; block: plain
// glibc in the fiber (blocks its hub). A bad value: one warning, ares.
enum class ResolverMode { ares, thread, block };
ResolverMode resolver_mode();

// Parses "123", "64k", "8M", "1g" (powers of 1024). False if malformed.
bool parse_size(const char* text, size_t* out);

// The value of a GREENLD_* variable, or null. Under secure execution
// (AT_SECURE: setuid/setgid/capabilities) the variables that would raise
// limits (hubs, stacks, pool threads) or print the program's internals to
// whoever started it (diagnostics, log level) read as unset, as glibc
// ignores LD_LIBRARY_PATH there; GREENLD_PATCH and GREENLD_NO_INHERIT,
// which only make the shim do less, still apply.
const char* setting(const char* name);
bool secure_execution();

// GREENLD_LOG_LEVEL: which diag messages are printed (diag.h).
enum class LogLevel : int { none = 0, error = 1, warning = 2, info = 3, debug = 4 };
LogLevel log_level();
bool parse_log_level(const char* text, LogLevel* out);

// GREENLD_MAX_BLOCKING_TIME, in seconds (a decimal number, 0.001..3600):
// the blocked-hub monitor reports a hub that has not switched for that
// long. 0: off (the default).
uint64_t max_blocking_time_ns();
bool parse_seconds(const char* text, uint64_t* ns);

// GREENLD_DUMP_SIGNAL: the signal that prints every hub and fiber; a name
// with or without SIG (USR2, SIGUSR2, RTMIN+1) or a number. 0: off.
int dump_signal();
// Parses a signal; false if unknown, or one that cannot carry a dump
// (uncatchable, a fault, glibc-internal, or kSampleSignal).
bool parse_signal(const char* text, int* sig);
// The signal the monitor sends a hub thread to take its backtrace; in use
// (and refused as a dump signal) only while diagnostics are on. Each hub's
// timer also sends it to poke the hub for signals (signals.h, kPokeSignal).
constexpr int kSampleSignal = 64;  // SIGRTMAX on Linux/glibc
// The signal that interrupts a blocking-call pool thread's call (signals.h).
constexpr int kPoolKickSignal = 63;  // SIGRTMAX-1

// GREENLD_NO_INHERIT=1: programs this one execs run without the shim.
bool no_inherit();

// GREENLD_FIBER_TLS=1: each fiber gets its own copy of the program's and
// its libraries' compiled static TLS (fiber_tls.h). Default 0.
bool fiber_tls();

}  // namespace greenld::config
