// Signals sent to one thread: pthread_kill, raise, pthread_sigqueue, and
// tgkill/tkill/rt_tgsigqueueinfo with a thread id, made per fiber.
//
// A fiber's pthread_t is its Fiber*, and the id gettid() gives it is above
// any kernel tid (thread.cpp): the kernel knows neither. A signal aimed at
// a fiber by handle or by id runs its handler in that fiber (or ends its
// sigwait), as the kernel would for a thread; an id no live fiber has
// fails with ESRCH, as the kernel answers for a thread that has ended.
// Ids of real threads (the main thread, other processes) go to the kernel.
#include "signal_send.h"

#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "../runtime/config.h"
#include "../runtime/fiber_ids.h"
#include "../runtime/hub.h"
#include "../runtime/native.h"
#include "../runtime/signals.h"
#include "next.h"

using namespace greenld;

namespace {

next::Symbol<decltype(::raise)> next_raise{"raise"};
next::Symbol<decltype(::pthread_kill)> next_pthread_kill{"pthread_kill"};
next::Symbol<decltype(::pthread_sigqueue)> next_pthread_sigqueue{"pthread_sigqueue"};
next::Symbol<int(pid_t, pid_t, int)> next_tgkill{"tgkill"};
next::Symbol<decltype(::pthread_self)> next_self{"pthread_self"};

// In a fork child the fiber that forked goes on as the process's native
// thread and keeps its handle (thread.cpp): a signal to it is a signal to
// this very thread, for the kernel to deliver.
bool forked_self(const Fiber* f) { return f == Hub::identity() && !Hub::current_fiber(); }

// As signal.cpp: GREENLD_PATCH without "signal" (or "thread"), or a vfork
// child sharing our memory, sends for real.
bool patched() {
    return config::patched(config::kPatchSignal) && config::patched(config::kPatchThread) &&
           !signals::in_memory_sharing_child();
}

bool fiber_id(long tid) { return tid >= long(kFirstFiberId) && tid <= long(UINT32_MAX); }

int this_process() { return int(native::sys(SYS_getpid)); }

// A signal number the kernel accepts (0 probes).
bool valid(int sig) { return sig >= 0 && sig <= signals::kMaxSignal; }

// To the fiber `id`, or for real to its hub's thread when signals are not
// patched: 0 or an errno value.
int send_to_id(uint32_t id, int sig, const siginfo_t* info) {
    if (!valid(sig)) return EINVAL;
    if (patched()) return signals::send_to_id(id, sig, info);
    Hub* hub = fiber_ids::hub_of(id);
    if (!hub) return ESRCH;
    return next_pthread_kill(hub->native_handle(), sig);
}

// rt_tgsigqueueinfo's rule: only a thread signalling itself may claim the
// kernel, kill() or tgkill() as the sender.
int queue_to_id(uint32_t id, int sig, siginfo_t info) {
    Fiber* self = Hub::current_fiber();
    if ((info.si_code >= 0 || info.si_code == SI_TKILL) && !(self && self->id == id)) return EPERM;
    info.si_signo = sig;
    return send_to_id(id, sig, &info);
}

long as_syscall(int rc) {
    if (rc == 0) return 0;
    errno = rc;
    return -1;
}

}  // namespace

GREENLD_EXPORT int pthread_kill(pthread_t t, int sig) {
    Fiber* f = Fiber::from_handle(reinterpret_cast<void*>(t));
    if (!f) return next_pthread_kill(t, sig);
    if (sig < 0 || sig >= NSIG) return EINVAL;
    if (f->exited.load(std::memory_order_acquire) || f->state.load() == FiberState::dead) return ESRCH;
    if (sig == 0) return 0;
    if (forked_self(f)) return next_pthread_kill(next_self(), sig);
    if (!patched()) return next_pthread_kill(f->hub->native_handle(), sig);
    return signals::send_to_fiber(f, sig);
}

GREENLD_EXPORT int pthread_sigqueue(pthread_t t, int sig, const union sigval value) {
    Fiber* f = Fiber::from_handle(reinterpret_cast<void*>(t));
    if (!f) return next_pthread_sigqueue(t, sig, value);
    if (sig < 0 || sig >= NSIG) return EINVAL;
    if (f->exited.load(std::memory_order_acquire) || f->state.load() == FiberState::dead) return ESRCH;
    if (sig == 0) return 0;
    if (forked_self(f)) return next_pthread_sigqueue(next_self(), sig, value);
    if (!patched()) return next_pthread_sigqueue(f->hub->native_handle(), sig, value);
    // What glibc's pthread_sigqueue gives rt_tgsigqueueinfo.
    siginfo_t info;
    memset(&info, 0, sizeof info);
    info.si_signo = sig;
    info.si_code = SI_QUEUE;
    info.si_pid = this_process();
    info.si_uid = getuid();
    info.si_value = value;
    return signals::send_to_fiber(f, sig, &info);
}

GREENLD_EXPORT int raise(int sig) {
    Fiber* f = Hub::current_fiber();
    if (!f || !patched()) return next_raise(sig);
    if (int rc = pthread_kill(reinterpret_cast<pthread_t>(f), sig)) {
        errno = rc;
        return -1;
    }
    return 0;
}

GREENLD_EXPORT int tgkill(pid_t tgid, pid_t tid, int sig) {
    if (!fiber_id(tid) || tgid != this_process()) return next_tgkill(tgid, tid, sig);
    return int(as_syscall(send_to_id(uint32_t(tid), sig, nullptr)));
}

namespace greenld::signal_send {

long thread_signal_syscall(long number, long a1, long a2, long a3, long a4, bool* handled) {
    *handled = false;
    switch (number) {
        case SYS_tkill:
            if (!fiber_id(a1)) return 0;
            *handled = true;
            return as_syscall(send_to_id(uint32_t(a1), int(a2), nullptr));
        case SYS_tgkill:
            if (!fiber_id(a2) || a1 != this_process()) return 0;
            *handled = true;
            return as_syscall(send_to_id(uint32_t(a2), int(a3), nullptr));
        case SYS_rt_tgsigqueueinfo: {
            if (!fiber_id(a2) || a1 != this_process()) return 0;
            *handled = true;
            const auto* info = reinterpret_cast<const siginfo_t*>(a4);
            if (!info) return as_syscall(EFAULT);
            return as_syscall(queue_to_id(uint32_t(a2), int(a3), *info));
        }
        default:
            return 0;
    }
}

}  // namespace greenld::signal_send
