#include "native.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <time.h>
#include <cerrno>

namespace greenld::native {

long syscall6(long nr, long a, long b, long c, long d, long e, long f) {
#if defined(__x86_64__)
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = nr;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
    return x0;
#else
#error "greenld: unsupported architecture"
#endif
}

int gettid() { return static_cast<int>(sys(SYS_gettid)); }

// clock_gettime goes through the vDSO: no syscall, and it is not a symbol we
// interpose, so calling libc here is safe.
uint64_t monotonic_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

uint64_t realtime_ns() {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

long futex_wait(std::atomic<uint32_t>* word, uint32_t expected, int64_t timeout_ns) {
    timespec ts;
    timespec* tp = nullptr;
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tp = &ts;
    }
    return sys(SYS_futex, reinterpret_cast<long>(word), FUTEX_WAIT_PRIVATE, expected,
               reinterpret_cast<long>(tp));
}

void futex_wake(std::atomic<uint32_t>* word, int count) {
    sys(SYS_futex, reinterpret_cast<long>(word), FUTEX_WAKE_PRIVATE, count);
}

static inline void cpu_relax() {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

thread_local int t_critical = 0;

void Mutex::lock_slow() {
    for (int spin = 0; spin < 64; ++spin) {
        uint32_t c = 0;
        if (word_.load(std::memory_order_relaxed) == 0 &&
            word_.compare_exchange_weak(c, 1, std::memory_order_acquire))
            return;
        cpu_relax();
    }
    while (word_.exchange(2, std::memory_order_acquire) != 0) futex_wait(&word_, 2);
}

bool start_thread(void* (*fn)(void*), void* arg, int* err) {
    using Create = int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);
    static std::atomic<Create> real{nullptr};
    Create create = real.load(std::memory_order_acquire);
    if (!create) {
        // RTLD_NEXT from this object: glibc's definition, not our wrapper.
        create = reinterpret_cast<Create>(dlsym(RTLD_NEXT, "pthread_create"));
        if (!create) create = reinterpret_cast<Create>(dlsym(RTLD_DEFAULT, "pthread_create"));
        real.store(create, std::memory_order_release);
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int rc = create(&t, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        *err = rc;
        return false;
    }
    return true;
}

int libc_sigaction(int sig, const struct sigaction* act) {
    using Fn = int (*)(int, const struct sigaction*, struct sigaction*);
    static std::atomic<Fn> real{nullptr};
    Fn fn = real.load(std::memory_order_acquire);
    if (!fn) {
        fn = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "sigaction"));
        if (!fn) fn = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "sigaction"));
        real.store(fn, std::memory_order_release);
    }
    return fn(sig, act, nullptr);
}

bool secure_execution() { return getauxval(AT_SECURE) != 0; }

int usable_cpus() {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
    int n = CPU_COUNT(&set);
    return n > 0 ? n : 1;
}

long read_file(const char* path, char* buf, size_t cap) {
    long fd = sys(SYS_openat, AT_FDCWD, reinterpret_cast<long>(path), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t len = 0;
    while (len + 1 < cap) {
        const long want = long(cap - 1 - len);
        const long r = sys(SYS_read, fd, reinterpret_cast<long>(buf + len), want);
        if (r <= 0) break;
        len += size_t(r);
        if (r < want) break;
    }
    sys(SYS_close, fd);
    if (cap) buf[len] = '\0';
    return long(len);
}

}  // namespace greenld::native
