#include "diag.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>

#include "config.h"
#include "fiber.h"
#include "hub.h"
#include "native.h"

namespace greenld::diag {

namespace {

void vmessage(const char* fmt, va_list ap) {
    char buf[512];
    int n = snprintf(buf, sizeof buf, "greenld: ");
    int m = vsnprintf(buf + n, sizeof buf - size_t(n) - 1, fmt, ap);
    if (m < 0) m = 0;
    size_t len = size_t(n) + (size_t(m) < sizeof buf - size_t(n) - 1 ? size_t(m) : sizeof buf - size_t(n) - 2);
    buf[len++] = '\n';
    native::sys(SYS_write, 2, reinterpret_cast<long>(buf), long(len));
}

void on_fault(int sig, siginfo_t* info, void* uctx) {
    Fiber* f = Hub::current_fiber();
    if (is_stack_overflow(f, info, uctx)) {
        die_of_overflow(f, info);
        return;
    }
    // Die as the program would have: default action, same signal.
    signal(sig, SIG_DFL);
    native::sys(SYS_tgkill, native::sys(SYS_getpid), native::gettid(), sig);
}

}  // namespace

#define GREENLD_DIAG_AT(name, level)                                  \
    void name(const char* fmt, ...) {                                 \
        if (config::log_level() < config::LogLevel::level) return;    \
        va_list ap;                                                   \
        va_start(ap, fmt);                                            \
        vmessage(fmt, ap);                                            \
        va_end(ap);                                                   \
    }
GREENLD_DIAG_AT(message, warning)
GREENLD_DIAG_AT(error, error)
GREENLD_DIAG_AT(info, info)
GREENLD_DIAG_AT(debug, debug)
#undef GREENLD_DIAG_AT

bool debugging() { return config::log_level() >= config::LogLevel::debug; }

void write_line(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap);
    va_end(ap);
}

void fatal(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap);
    va_end(ap);
    abort();
}

// A fault is an overflow of the running fiber's stack if it hit the guard,
// or if the stack pointer is already below the stack and the fault is at
// the stack pointer (a push, a frame's store): a frame larger than the
// guard, or a stack with no guard that faults only once the recursion ran
// through what lies below it (the other slots of a slab). Not a fault far
// from the stack pointer (a stray pointer in a handler on another stack).
bool is_stack_overflow(const Fiber* f, const siginfo_t* info, const void* uctx) {
    if (!f) return false;
    if (f->stack.is_guard_hit(info->si_addr)) return true;
    if (!f->stack.owned()) return false;
    constexpr uintptr_t kNear = 64 * 1024;
    auto sp = uintptr_t(static_cast<const ucontext_t*>(uctx)->uc_mcontext.gregs[REG_RSP]);
    auto lo = uintptr_t(f->stack.lo()), addr = uintptr_t(info->si_addr);
    return sp < lo && lo - sp <= (uintptr_t(1) << 30) && addr + kNear >= sp && addr <= sp + kNear;
}

void die_of_overflow(const Fiber* f, const siginfo_t* info) {
    error("fiber %u overflowed its stack (%zu KiB) at address %p; raise the stack size with "
          "GREENLD_STACK_SIZE or greenld --stack-size (pthread_attr_setstacksize is honoured)",
          f->id, f->stack.usable / 1024, info->si_addr);
    // A shared stack's guard reports SIGBUS (userfaultfd); natively, and on
    // a stack of its own, the overflow is a SIGSEGV. glibc's sigaction, not
    // the program-facing one: this is no disposition of the program's.
    struct sigaction dfl{};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    native::libc_sigaction(SIGSEGV, &dfl);
    native::sys(SYS_tgkill, native::sys(SYS_getpid), native::gettid(), SIGSEGV);
}

void install_overflow_reporter() {
    static std::atomic<bool> installed{false};
    if (installed.exchange(true)) return;
    for (int sig : {SIGSEGV, SIGBUS}) {
        struct sigaction old{};
        sigaction(sig, nullptr, &old);
        if (old.sa_handler != SIG_DFL) continue;  // the program's own handler wins
        struct sigaction sa{};
        sa.sa_sigaction = on_fault;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
        sigemptyset(&sa.sa_mask);
        // glibc's: the program-facing sigaction would take it for the
        // program's own handler (wraps_fault).
        native::libc_sigaction(sig, &sa);
    }
}

}  // namespace greenld::diag
