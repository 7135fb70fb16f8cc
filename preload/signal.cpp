// Signals: dispositions, per-thread masks, thread-directed signals and
// signal waits, made per fiber (runtime/signals.h has the mechanism).
//
// - sigaction and the old-style setters (signal, bsd_signal, sysv_signal,
//   sigset, siginterrupt, sigignore) record the program's disposition and
//   give the kernel our trampoline for a caught signal; the old action
//   reported is exactly what the program set. Synchronous fault signals,
//   SIG_DFL and SIG_IGN go to the kernel untouched.
// - pthread_sigmask/sigprocmask (and sighold/sigrelse) in a fiber change
//   only that fiber's mask; new threads inherit their creator's.
// - pthread_kill/raise/tgkill aimed at a fiber: signal_send.cpp.
// - sigwait, sigwaitinfo, sigtimedwait, sigsuspend, pause, sigpause park
//   only the calling fiber; sigpending reports the fiber's view.
// - sigaltstack in a fiber sets and reports that fiber's alternate stack;
//   a caught fault signal with SA_ONSTACK also gets the trampoline, which
//   runs its handler on the faulting fiber's alternate stack.
// Outside a fiber every call is glibc's (only the disposition is recorded),
// so the native main thread behaves exactly as without the shim.
#include <pthread.h>
#include <signal.h>

#include <cerrno>
#include <cstring>

#include "../runtime/config.h"
#include "../runtime/hub.h"
#include "../runtime/signals.h"
#include "../runtime/native.h"
#include "next.h"
#include "offload.h"

using namespace greenld;
using signals::Mask;

namespace {

next::Symbol<decltype(::sigaction)> next_sigaction{"sigaction"};
next::Symbol<decltype(::signal)> next_signal{"signal"};
next::Symbol<decltype(::signal)> next_bsd_signal{"bsd_signal"};
next::Symbol<decltype(::signal)> next_sysv_signal{"sysv_signal"};
next::Symbol<decltype(::signal)> next___sysv_signal{"__sysv_signal"};
// Deprecated in glibc's headers: spelled out rather than decltype'd.
next::Symbol<void (*(int, void (*)(int)))(int)> next_sigset{"sigset"};
next::Symbol<int(int, int)> next_siginterrupt{"siginterrupt"};
next::Symbol<int(int)> next_sigignore{"sigignore"};
next::Symbol<decltype(::sigprocmask)> next_sigprocmask{"sigprocmask"};
next::Symbol<decltype(::pthread_sigmask)> next_pthread_sigmask{"pthread_sigmask"};
next::Symbol<int(int)> next_sighold{"sighold"};
next::Symbol<int(int)> next_sigrelse{"sigrelse"};
next::Symbol<decltype(::sigpending)> next_sigpending{"sigpending"};
next::Symbol<decltype(::sigsuspend)> next_sigsuspend{"sigsuspend"};
next::Symbol<decltype(::pause)> next_pause{"pause"};
next::Symbol<int(int, int)> next___sigpause{"__sigpause"};
next::Symbol<int(int)> next_sigpause{"sigpause"};
next::Symbol<int(int)> next___xpg_sigpause{"__xpg_sigpause"};
next::Symbol<decltype(::sigwait)> next_sigwait{"sigwait"};
next::Symbol<decltype(::sigwaitinfo)> next_sigwaitinfo{"sigwaitinfo"};
next::Symbol<decltype(::sigtimedwait)> next_sigtimedwait{"sigtimedwait"};
next::Symbol<decltype(::sigaltstack)> next_sigaltstack{"sigaltstack"};

// GREENLD_PATCH without "signal" (or without "thread": no fibers): glibc.
// So too in a vfork child, whose dispositions and mask are its own but
// whose memory (our records, the fiber's mask) is its parent's.
bool patched() {
    return config::patched(config::kPatchSignal) && config::patched(config::kPatchThread) &&
           !signals::in_memory_sharing_child();
}

// For the disposition setters: never the first to read GREENLD_PATCH (a
// program that never starts a thread must not report a bad value because
// it set a handler); the trampoline they install behaves as the kernel
// would on threads that are not hubs.
bool dispositions_patched() {
    return config::patched_if_known(config::kPatchSignal, true) &&
           config::patched_if_known(config::kPatchThread, true) && !signals::in_memory_sharing_child();
}

Fiber* fiber() {
    Fiber* f = Hub::current_fiber();
    return f && patched() ? f : nullptr;
}

Mask mask_of(const sigset_t* set) {
    Mask m;
    memcpy(&m, set, sizeof m);
    return m;
}

// glibc's sigset_t is 1024 bits but the kernel, and glibc's own calls,
// read and write only the first 64: the rest of the program's set is left
// as it was.
void store_mask(sigset_t* set, Mask m) { memcpy(set, &m, sizeof m); }

// Signals for which signal()/bsd_signal install without SA_RESTART
// (siginterrupt), as glibc's own _sigintr set.
std::atomic<Mask> g_interrupting{0};

bool valid_signal(int sig) { return sig >= 1 && sig < NSIG; }

// The pthread_sigmask core for a fiber: 0 or an errno value.
int fiber_sigmask(Fiber* f, int how, const sigset_t* set, sigset_t* old) {
    Mask now = f->sig.blocked, next = now;
    if (set) {
        const Mask m = mask_of(set);
        switch (how) {
            case SIG_BLOCK: next = now | m; break;
            case SIG_UNBLOCK: next = now & ~m; break;
            case SIG_SETMASK: next = m; break;
            default: return EINVAL;
        }
    }
    if (old) store_mask(old, now);
    if (set) signals::set_mask(f, next);
    return 0;
}

using Handler = void (*)(int);

Handler install(int sig, Handler handler, int flags, Mask mask) {
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    sigemptyset(&act.sa_mask);
    store_mask(&act.sa_mask, mask);
    act.sa_flags = flags;
    if (sigaction(sig, &act, &old) < 0) return SIG_ERR;
    return old.sa_handler;
}

// glibc's bsd_signal (signal): sa_mask {sig}, SA_RESTART unless
// siginterrupt(sig, 1) said otherwise.
Handler bsd_install(int sig, Handler handler) {
    if (handler == SIG_ERR || !valid_signal(sig)) {
        errno = EINVAL;
        return SIG_ERR;
    }
    const bool interrupting = g_interrupting.load(std::memory_order_relaxed) & signals::bit(sig);
    return install(sig, handler, interrupting ? 0 : SA_RESTART, signals::bit(sig));
}

// glibc's sysv_signal: one-shot, not deferred, interrupting.
constexpr int kSaInterrupt = 0x20000000;  // SA_INTERRUPT, a historical no-op glibc still sets
Handler sysv_install(int sig, Handler handler) {
    if (handler == SIG_ERR || !valid_signal(sig)) {
        errno = EINVAL;
        return SIG_ERR;
    }
    return install(sig, handler, SA_RESETHAND | SA_NODEFER | kSaInterrupt, 0);
}

int wait_result(int r, siginfo_t* info) {
    (void)info;
    if (r < 0) {
        errno = -r;
        return -1;
    }
    return r;
}

}  // namespace

// ---------------------------------------------------------------- dispositions

GREENLD_EXPORT int sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
    // The diagnostic signals (runtime/monitor.h) keep the trampoline in the
    // kernel whatever the program sets, even SIG_DFL.
    const bool diagnostic = signals::diagnostic(sig) && !signals::in_memory_sharing_child();
    // Fault signals keep plain kernel handling but for a handler with
    // SA_ONSTACK, which must reach the faulting fiber's alternate stack;
    // their records are kept so that the trampoline's is never reported.
    const bool fault = sig >= 1 && sig < NSIG && signals::wraps_fault(sig, SA_ONSTACK);
    if (!diagnostic && (!dispositions_patched() || !(signals::intercepted(sig) || fault)))
        return next_sigaction(sig, act, old);
    signals::prepare();
    struct sigaction kernel_act;
    const struct sigaction* to_kernel = act;
    const signals::Action before = signals::action(sig);
    if (act) {
        signals::Action a;
        a.handler = reinterpret_cast<void*>(act->sa_handler);
        a.mask = mask_of(&act->sa_mask);
        a.flags = act->sa_flags;
        const bool caught = act->sa_handler != SIG_DFL && act->sa_handler != SIG_IGN &&
                            (!fault || signals::wraps_fault(sig, act->sa_flags));
        // kPoolKick keeps the trampoline under SIG_DFL (it then acts as the
        // default would), so that pool calls stay interruptible.
        const bool kick_default = sig == signals::kPoolKick && act->sa_handler == SIG_DFL && signals::pool_kick_ready();
        if (caught || diagnostic || kick_default) {
            // SA_RESETHAND is applied by the trampoline's caller when the
            // handler really runs (it may run later, in another fiber).
            kernel_act = *act;
            kernel_act.sa_sigaction = reinterpret_cast<void (*)(int, siginfo_t*, void*)>(signals::trampoline());
            kernel_act.sa_flags = caught         ? (act->sa_flags | SA_SIGINFO) & ~SA_RESETHAND
                                  : kick_default ? SA_SIGINFO  // never SA_RESTART: the kick must interrupt
                                                 : SA_SIGINFO | SA_RESTART | SA_ONSTACK;
            if (sig == signals::kPokeSignal) kernel_act.sa_flags &= ~SA_ONSTACK;  // signals.h
            to_kernel = &kernel_act;
        }
        // Recorded before the kernel can call the trampoline with it.
        signals::record(sig, a);
    }
    struct sigaction kernel_old;
    if (next_sigaction(sig, to_kernel, &kernel_old) != 0) {
        if (act) signals::record(sig, before);
        return -1;
    }
    if (old) {
        *old = kernel_old;
        if (reinterpret_cast<void*>(kernel_old.sa_sigaction) == signals::trampoline()) {
            constexpr int kOurs = SA_SIGINFO | SA_RESETHAND;
            old->sa_handler = reinterpret_cast<Handler>(before.handler);
            old->sa_flags = (kernel_old.sa_flags & ~kOurs) | (before.flags & kOurs);
            if (sig == signals::kPokeSignal) old->sa_flags = (old->sa_flags & ~SA_ONSTACK) | (before.flags & SA_ONSTACK);
        }
    }
    return 0;
}

GREENLD_EXPORT Handler signal(int sig, Handler handler) {
    if (!dispositions_patched()) return next_signal(sig, handler);
    return bsd_install(sig, handler);
}

GREENLD_EXPORT Handler bsd_signal(int sig, Handler handler) {
    if (!dispositions_patched()) return next_bsd_signal(sig, handler);
    return bsd_install(sig, handler);
}

GREENLD_EXPORT Handler sysv_signal(int sig, Handler handler) {
    if (!dispositions_patched()) return next_sysv_signal(sig, handler);
    return sysv_install(sig, handler);
}

GREENLD_EXPORT Handler __sysv_signal(int sig, Handler handler) {
    if (!dispositions_patched()) return next___sysv_signal(sig, handler);
    return sysv_install(sig, handler);
}

GREENLD_EXPORT int siginterrupt(int sig, int flag) {
    if (!dispositions_patched()) return next_siginterrupt(sig, flag);
    struct sigaction action;
    if (!valid_signal(sig)) {
        errno = EINVAL;
        return -1;
    }
    if (sigaction(sig, nullptr, &action) < 0) return -1;
    if (flag) {
        g_interrupting.fetch_or(signals::bit(sig), std::memory_order_relaxed);
        action.sa_flags &= ~SA_RESTART;
    } else {
        g_interrupting.fetch_and(~signals::bit(sig), std::memory_order_relaxed);
        action.sa_flags |= SA_RESTART;
    }
    return sigaction(sig, &action, nullptr) < 0 ? -1 : 0;
}

GREENLD_EXPORT int sigignore(int sig) {
    if (!dispositions_patched()) return next_sigignore(sig);
    if (!valid_signal(sig)) {
        errno = EINVAL;
        return -1;
    }
    return install(sig, SIG_IGN, 0, 0) == SIG_ERR ? -1 : 0;
}

// The kernel disposition that lets the pool interrupt a call (offload.h):
// the trampoline for signals::kPoolKick, if the program left it SIG_DFL.
// The program still sees SIG_DFL, and a kPoolKick sent to it acts so.
// False if it cannot be (the program ignores or catches the signal).
bool greenld::ensure_pool_kick() {
    if (signals::pool_kick_ready()) return true;
    if (!dispositions_patched()) return false;
    static native::Mutex lock;
    native::LockGuard g(lock);
    if (signals::pool_kick_ready()) return true;
    signals::prepare();
    struct sigaction cur;
    if (next_sigaction(signals::kPoolKick, nullptr, &cur) != 0 || cur.sa_handler != SIG_DFL) return false;
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_sigaction = reinterpret_cast<void (*)(int, siginfo_t*, void*)>(signals::trampoline());
    act.sa_flags = SA_SIGINFO;  // never SA_RESTART: the kick must interrupt
    sigemptyset(&act.sa_mask);
    if (next_sigaction(signals::kPoolKick, &act, nullptr) != 0) return false;
    signals::set_pool_kick_installed();
    return true;
}

// ---------------------------------------------------------------- masks

GREENLD_EXPORT int pthread_sigmask(int how, const sigset_t* set, sigset_t* old) {
    Fiber* f = fiber();
    if (!f) return next_pthread_sigmask(how, set, old);
    return fiber_sigmask(f, how, set, old);
}

GREENLD_EXPORT int sigprocmask(int how, const sigset_t* set, sigset_t* old) {
    Fiber* f = fiber();
    if (!f) return next_sigprocmask(how, set, old);
    if (int rc = fiber_sigmask(f, how, set, old)) {
        errno = rc;
        return -1;
    }
    return 0;
}

// sigset (System V): SIG_HOLD blocks the signal; any other disposition is
// installed and unblocks it. Returns SIG_HOLD if it was blocked before.
GREENLD_EXPORT Handler sigset(int sig, Handler disp) {
    if (!dispositions_patched()) return next_sigset(sig, disp);
    sigset_t one, old;
    sigemptyset(&one);
    if (!valid_signal(sig) || sigaddset(&one, sig) < 0) {
        errno = EINVAL;
        return SIG_ERR;
    }
    if (disp == SIG_HOLD) {
        if (sigprocmask(SIG_BLOCK, &one, &old) < 0) return SIG_ERR;
        if (sigismember(&old, sig)) return SIG_HOLD;
        struct sigaction cur;
        if (sigaction(sig, nullptr, &cur) < 0) return SIG_ERR;
        return cur.sa_handler;
    }
    Handler prev = install(sig, disp, 0, 0);
    if (prev == SIG_ERR) return SIG_ERR;
    if (sigprocmask(SIG_UNBLOCK, &one, &old) < 0) return SIG_ERR;
    return sigismember(&old, sig) ? SIG_HOLD : prev;
}

GREENLD_EXPORT int sighold(int sig) {
    if (!fiber()) return next_sighold(sig);
    sigset_t one;
    sigemptyset(&one);
    if (sigaddset(&one, sig) < 0) return -1;
    return sigprocmask(SIG_BLOCK, &one, nullptr);
}

GREENLD_EXPORT int sigrelse(int sig) {
    if (!fiber()) return next_sigrelse(sig);
    sigset_t one;
    sigemptyset(&one);
    if (sigaddset(&one, sig) < 0) return -1;
    return sigprocmask(SIG_UNBLOCK, &one, nullptr);
}

GREENLD_EXPORT int sigpending(sigset_t* set) {
    Fiber* f = fiber();
    if (!f) return next_sigpending(set);
    store_mask(set, signals::pending_for(f));
    return 0;
}

// ---------------------------------------------------------------- waits

GREENLD_EXPORT int sigsuspend(const sigset_t* set) {
    Fiber* f = fiber();
    if (!f) return next_sigsuspend(set);
    signals::suspend(mask_of(set));
    errno = EINTR;
    return -1;
}

GREENLD_EXPORT int pause() {
    Fiber* f = fiber();
    if (!f) return next_pause();
    signals::suspend(f->sig.blocked);
    errno = EINTR;
    return -1;
}

// sigpause, as glibc's do_sigpause: X/Open (is_sig) suspends with the
// caller's mask minus `sig`; BSD with the mask given as an int (signals
// 1..32). glibc calls its internal sigsuspend, so each is wrapped.
static int sigpause_fiber(Fiber* f, int sig_or_mask, bool is_sig) {
    Mask m;
    if (is_sig) {
        if (sig_or_mask < 1 || sig_or_mask >= NSIG) {
            errno = EINVAL;
            return -1;
        }
        m = f->sig.blocked & ~signals::bit(sig_or_mask);
    } else {
        m = Mask(unsigned(sig_or_mask));
    }
    signals::suspend(m);
    errno = EINTR;
    return -1;
}

extern "C" int __sigpause(int sig_or_mask, int is_sig);
GREENLD_EXPORT int __sigpause(int sig_or_mask, int is_sig) {
    Fiber* f = fiber();
    if (!f) return next___sigpause(sig_or_mask, is_sig);
    return sigpause_fiber(f, sig_or_mask, is_sig != 0);
}

// <signal.h> renames sigpause to __xpg_sigpause under _GNU_SOURCE: the BSD
// symbol is defined under its own name.
extern "C" int greenld_bsd_sigpause(int mask) __asm__("sigpause");
GREENLD_EXPORT int greenld_bsd_sigpause(int mask) {
    Fiber* f = fiber();
    if (!f) return next_sigpause(mask);
    return sigpause_fiber(f, mask, false);
}

extern "C" int __xpg_sigpause(int sig);
GREENLD_EXPORT int __xpg_sigpause(int sig) {
    Fiber* f = fiber();
    if (!f) return next___xpg_sigpause(sig);
    return sigpause_fiber(f, sig, true);
}

GREENLD_EXPORT int sigwait(const sigset_t* set, int* sig) {
    if (!fiber()) return next_sigwait(set, sig);
    // glibc's sigwait goes on after a handler ran: it never fails with EINTR.
    for (;;) {
        int r = signals::wait_for(mask_of(set), nullptr, Deadline::never());
        if (r == -EINTR) continue;
        if (r < 0) return -r;
        *sig = r;
        return 0;
    }
}

GREENLD_EXPORT int sigwaitinfo(const sigset_t* set, siginfo_t* info) {
    if (!fiber()) return next_sigwaitinfo(set, info);
    return wait_result(signals::wait_for(mask_of(set), info, Deadline::never()), info);
}

GREENLD_EXPORT int sigtimedwait(const sigset_t* set, siginfo_t* info, const timespec* timeout) {
    if (!fiber()) return next_sigtimedwait(set, info, timeout);
    Deadline d = Deadline::never();
    if (timeout) {
        if (timeout->tv_nsec < 0 || timeout->tv_nsec >= 1000000000 || timeout->tv_sec < 0) {
            errno = EINVAL;
            return -1;
        }
        d = Deadline::after_ns(int64_t(timeout->tv_sec) * 1000000000 + timeout->tv_nsec);
    }
    return wait_result(signals::wait_for(mask_of(set), info, d), info);
}

// ---------------------------------------------------------------- alternate stack

GREENLD_EXPORT int sigaltstack(const stack_t* ss, stack_t* old) {
    Fiber* f = fiber();
    if (!f) return next_sigaltstack(ss, old);
    if (int rc = signals::alt_stack(f, ss, old, reinterpret_cast<uintptr_t>(__builtin_frame_address(0)))) {
        errno = rc;
        return -1;
    }
    return 0;
}
