// Native (OS-thread level) primitives the runtime is built on: raw system
// calls, a futex-based lock, and native thread creation.
//
// Why raw syscalls: libgreenld.so exports wrappers named like libc functions,
// so a plain call to read() or pthread_mutex_lock() from inside the runtime
// would bind to our own wrapper. Everything here reaches the kernel directly.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

struct sigaction;

namespace greenld::native {

long syscall6(long nr, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0, long f = 0);

// Returns -errno on failure, like the kernel.
inline long sys(long nr, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0, long f = 0) {
    return syscall6(nr, a, b, c, d, e, f);
}

int gettid();
uint64_t monotonic_ns();
uint64_t realtime_ns();

// Kernel futex on a 32-bit word, private to the process.
// timeout_ns < 0 waits forever; returns 0, -EAGAIN, -ETIMEDOUT or -EINTR.
long futex_wait(std::atomic<uint32_t>* word, uint32_t expected, int64_t timeout_ns = -1);
void futex_wake(std::atomic<uint32_t>* word, int count);

// Sections of runtime code on this OS thread where no program signal handler
// may run, even if the interrupted pc is in libc (malloc called under a
// lock): every held Mutex, and signals::Critical. Read by the trampoline
// (signals.cpp).
extern thread_local int t_critical;

// A small lock for runtime-internal data shared between OS threads. Never
// held across a fiber switch. (Drepper's three-state futex mutex.) While
// held, the thread is critical (t_critical): a handler that takes the same
// lock again (one that sends a signal) cannot run inside it.
class Mutex {
public:
    void lock() {
        uint32_t c = 0;
        if (!word_.compare_exchange_strong(c, 1, std::memory_order_acquire)) lock_slow();
        ++t_critical;
        std::atomic_signal_fence(std::memory_order_seq_cst);
    }
    void unlock() {
        std::atomic_signal_fence(std::memory_order_seq_cst);
        --t_critical;
        if (word_.exchange(0, std::memory_order_release) == 2) futex_wake(&word_, 1);
    }
private:
    void lock_slow();
    std::atomic<uint32_t> word_{0};
};

class LockGuard {
public:
    explicit LockGuard(Mutex& m) : m_(m) { m_.lock(); }
    ~LockGuard() { m_.unlock(); }
    LockGuard(const LockGuard&) = delete;
    LockGuard& operator=(const LockGuard&) = delete;
private:
    Mutex& m_;
};

// A native thread owned by the runtime (hub threads, later the monitor and
// the blocking-call pool). Created with glibc's real pthread_create, never
// turned into a fiber. Returns false (errno-style code in *err) on failure.
bool start_thread(void* (*fn)(void*), void* arg, int* err);

// glibc's sigaction (never the program's view that preload/ gives): 0 or -1.
int libc_sigaction(int sig, const struct sigaction* act);

// AT_SECURE: the process runs setuid/setgid or with file capabilities.
bool secure_execution();

// Number of CPUs this process may run on (sched_getaffinity).
int usable_cpus();

// Reads a small file with raw system calls (no wrapper of ours, no stdio
// state) into `buf`: at most cap - 1 bytes, NUL-terminated. Stops at the
// end of the file or at a short read (the end, for regular and /proc
// files). Returns the length, or -1 if the file cannot be opened.
long read_file(const char* path, char* buf, size_t cap);

}  // namespace greenld::native
