// pthread lifecycle: creation turns a thread into a fiber; join, detach,
// exit, identity, keys and once follow. A pthread_t we return is a Fiber*;
// handles of native threads (the main thread, threads glibc creates
// internally) go to glibc untouched.
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>

#include "../runtime/config.h"
#include "../runtime/diag.h"
#include "../runtime/futex.h"
#include "../runtime/hub.h"
#include "../runtime/tsd.h"
#include "cancel.h"
#include "next.h"

using namespace greenld;

namespace {

next::Symbol<decltype(::pthread_create)> next_create{"pthread_create"};
next::Symbol<decltype(::pthread_key_create)> next_key_create{"pthread_key_create"};
next::Symbol<decltype(::pthread_key_delete)> next_key_delete{"pthread_key_delete"};
next::Symbol<decltype(::pthread_getspecific)> next_getspecific{"pthread_getspecific"};
next::Symbol<decltype(::pthread_setspecific)> next_setspecific{"pthread_setspecific"};
next::Symbol<decltype(::pthread_once)> next_once{"pthread_once"};
next::Symbol<decltype(::pthread_join)> next_join{"pthread_join"};
next::Symbol<decltype(::pthread_tryjoin_np)> next_tryjoin{"pthread_tryjoin_np"};
next::Symbol<decltype(::pthread_timedjoin_np)> next_timedjoin{"pthread_timedjoin_np"};
next::Symbol<decltype(::pthread_clockjoin_np)> next_clockjoin{"pthread_clockjoin_np"};
next::Symbol<decltype(::pthread_detach)> next_detach{"pthread_detach"};
next::Symbol<decltype(::pthread_exit)> next_exit{"pthread_exit"};
next::Symbol<decltype(::pthread_self)> next_self{"pthread_self"};
next::Symbol<decltype(::pthread_setname_np)> next_setname{"pthread_setname_np"};
next::Symbol<decltype(::pthread_getname_np)> next_getname{"pthread_getname_np"};
next::Symbol<decltype(::pthread_getattr_np)> next_getattr{"pthread_getattr_np"};
next::Symbol<decltype(::pthread_setaffinity_np)> next_setaffinity{"pthread_setaffinity_np"};
next::Symbol<decltype(::pthread_getaffinity_np)> next_getaffinity{"pthread_getaffinity_np"};
next::Symbol<decltype(::pthread_setschedparam)> next_setschedparam{"pthread_setschedparam"};
next::Symbol<decltype(::pthread_getschedparam)> next_getschedparam{"pthread_getschedparam"};
next::Symbol<decltype(::pthread_setschedprio)> next_setschedprio{"pthread_setschedprio"};
next::Symbol<decltype(::pthread_getcpuclockid)> next_getcpuclockid{"pthread_getcpuclockid"};

// The stack size pthread_attr_init gives: a size different from it was
// asked for explicitly and is honoured; otherwise GREENLD_STACK_SIZE applies.
size_t default_attr_stack_size() {
    pthread_attr_t a;
    pthread_attr_init(&a);
    size_t s = 0;
    pthread_attr_getstacksize(&a, &s);
    pthread_attr_destroy(&a);
    return s;
}

FiberOptions options_from(const pthread_attr_t* attr) {
    FiberOptions o;
    if (!attr) return o;
    int detach = PTHREAD_CREATE_JOINABLE;
    pthread_attr_getdetachstate(attr, &detach);
    o.detached = detach == PTHREAD_CREATE_DETACHED;
    size_t size = 0;
    pthread_attr_getstacksize(attr, &size);
    // glibc reports (stack top - size): a null top, i.e. no stack set with
    // pthread_attr_setstack, comes back as -size.
    void* low = nullptr;
    size_t stack_size = 0;
    pthread_attr_getstack(attr, &low, &stack_size);
    if (reinterpret_cast<uintptr_t>(low) + stack_size != 0) {
        o.stack_addr = low;
        o.stack_size = stack_size;
    } else if (size != default_attr_stack_size()) {
        o.stack_size = size;
    }
    return o;
}

// Waits for a fiber to finish; 0, or ETIMEDOUT/EBUSY from the deadline.
// EINTR only when pthread_cancel interrupted the wait (the caller's
// CancelPoint then acts): pthread_join never fails with EINTR.
int join_fiber(Fiber* f, void** result, Deadline deadline, bool try_only) {
    Fiber* self = Hub::current_fiber();
    if (f == self) return EDEADLK;
    // For the fiber dump (runtime/monitor.h): what the futex wait is for.
    struct Joining {
        Fiber* self;
        Joining(Fiber* s, Fiber* target) : self(s) {
            if (self) self->waiting.joining = target->id;
        }
        ~Joining() {
            if (self) self->waiting.joining = 0;
        }
    } joining(self, f);
    while (f->exited.load(std::memory_order_acquire) == 0) {
        if (try_only) return EBUSY;
        const int rc = futex_wait(&f->exited, 0, deadline);
        if (rc == ETIMEDOUT && f->exited.load(std::memory_order_acquire) == 0) return ETIMEDOUT;
        if (rc == EINTR && self && cancel::delivered(self)) return EINTR;
    }
    if (result) *result = f->result;
    Runtime::reap(f);
    return 0;
}

bool valid_timespec(const timespec* ts) { return ts && ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000; }

// GREENLD_PATCH without "thread": threads stay native and every pthread
// call is glibc's.
bool threads_patched() { return config::patched(config::kPatchThread); }

}  // namespace

GREENLD_EXPORT int pthread_create(pthread_t* thread, const pthread_attr_t* attr, void* (*start)(void*), void* arg) {
    // pthread_create reports through its return value; errno is the caller's
    // (the first call starts the hubs, which parses settings and maps stacks).
    if (!threads_patched()) return next_create(thread, attr, start, arg);
    const int saved_errno = errno;
    Fiber* f = nullptr;
    int rc = Runtime::get().spawn(start, arg, options_from(attr), &f);
    if (rc == 0) *thread = reinterpret_cast<pthread_t>(f);
    errno = saved_errno;
    return rc;
}

GREENLD_EXPORT int pthread_join(pthread_t t, void** result) {
    CancelPoint cancel_point;
    Fiber* f = Fiber::from_handle(reinterpret_cast<void*>(t));
    if (!f) return next_join(t, result);
    return join_fiber(f, result, Deadline::never(), false);
}

GREENLD_EXPORT int pthread_tryjoin_np(pthread_t t, void** result) {
    Fiber* f = Fiber::from_handle(reinterpret_cast<void*>(t));
    if (!f) return next_tryjoin(t, result);
    return join_fiber(f, result, Deadline::never(), true);
}

GREENLD_EXPORT int pthread_clockjoin_np(pthread_t t, void** result, clockid_t clock, const timespec* abstime) {
    CancelPoint cancel_point;
    Fiber* f = Fiber::from_handle(reinterpret_cast<void*>(t));
    if (!f) return next_clockjoin(t, result, clock, abstime);
    if (abstime && !valid_timespec(abstime)) return EINVAL;
    if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC) return EINVAL;
    return join_fiber(f, result, abstime ? Deadline::from_abs(clock, *abstime) : Deadline::never(), false);
}

GREENLD_EXPORT int pthread_timedjoin_np(pthread_t t, void** result, const timespec* abstime) {
    Fiber* f = Fiber::from_handle(reinterpret_cast<void*>(t));
    if (!f) return next_timedjoin(t, result, abstime);
    return pthread_clockjoin_np(t, result, CLOCK_REALTIME, abstime);
}

GREENLD_EXPORT int pthread_detach(pthread_t t) {
    Fiber* f = Fiber::from_handle(reinterpret_cast<void*>(t));
    if (!f) return next_detach(t);
    if (f->lifecycle.load(std::memory_order_relaxed) & Fiber::kDetached) return EINVAL;
    Runtime::detach(f);
    return 0;
}

GREENLD_EXPORT void pthread_exit(void* result) {
    if (!threads_patched()) next_exit(result);
    // A fiber unwinds its stack (destructors, cleanup handlers), runs its
    // key destructors and ends (cancel.cpp).
    if (Fiber* f = Hub::current_fiber()) fiber_exit(f, result);
    // A native thread (the main thread): glibc would end the process when the
    // last thread leaves, but it counts our hub threads too, so we count.
    if (Runtime::get().program_threads.fetch_sub(1, std::memory_order_acq_rel) == 1) exit(0);
    next_exit(result);
    __builtin_unreachable();
}

GREENLD_EXPORT pthread_t pthread_self() {
    if (Fiber* f = Hub::identity()) return reinterpret_cast<pthread_t>(f);
    return next_self();
}

GREENLD_EXPORT int pthread_equal(pthread_t a, pthread_t b) { return a == b; }

// A converted thread has its own thread id, as it would have natively: the
// fiber id, above any kernel tid (pid_max is at most 2^22), so that ids
// taken as "which thread am I" (recursive locks, logs, Python's
// threading.get_native_id) stay distinct per thread. In a fork child the
// forking thread is the process's only OS thread and gettid() == getpid(),
// as natively.
GREENLD_EXPORT pid_t gettid() {
    if (Fiber* f = Hub::current_fiber()) return pid_t(f->id);
    return pid_t(native::gettid());
}

namespace {

// A native thread's key destructors must run at its exit, and nothing may
// allocate on the way (see tsd.cpp): one glibc key of our own holds the
// native thread's table, and glibc's own exit path (which runs key
// destructors without allocating) hands it back to us.
enum : int { exit_key_none, exit_key_creating, exit_key_ready, exit_key_failed };
std::atomic<int> g_exit_key_state{exit_key_none};
pthread_key_t g_exit_key;

void native_thread_exit(void* table) { tsd::native_table_exit(static_cast<tsd::Table*>(table)); }

void arrange_native_exit(tsd::Table* table) {
    int s = g_exit_key_state.load(std::memory_order_acquire);
    if (s == exit_key_none && g_exit_key_state.compare_exchange_strong(s, exit_key_creating)) {
        int rc = next_key_create(&g_exit_key, native_thread_exit);
        if (rc != 0)
            diag::message("pthread keys of native threads will not have their destructors run at thread exit "
                       "(pthread_key_create: %s)", strerror(rc));
        s = rc == 0 ? exit_key_ready : exit_key_failed;
        g_exit_key_state.store(s, std::memory_order_release);
    }
    while (s == exit_key_creating) s = g_exit_key_state.load(std::memory_order_acquire);
    if (s == exit_key_ready) next_setspecific(g_exit_key, table);
}

// The calling thread's key table; a native thread's first one is made here.
tsd::Table& table_of_caller() {
    bool created = false;
    tsd::Table& table = tsd::current_table(&created);
    if (created) arrange_native_exit(&table);
    return table;
}

}  // namespace

GREENLD_EXPORT int pthread_key_create(pthread_key_t* key, void (*destructor)(void*)) {
    if (!threads_patched()) return next_key_create(key, destructor);
    unsigned k = 0;
    int rc = tsd::key_create(&k, destructor);
    if (rc == 0) *key = k;
    return rc;
}

GREENLD_EXPORT int pthread_key_delete(pthread_key_t key) {
    if (!threads_patched()) return next_key_delete(key);
    return tsd::key_delete(key);
}

GREENLD_EXPORT void* pthread_getspecific(pthread_key_t key) {
    if (!threads_patched()) return next_getspecific(key);
    return table_of_caller().get(key);
}

GREENLD_EXPORT int pthread_setspecific(pthread_key_t key, const void* value) {
    if (!threads_patched()) return next_setspecific(key, value);
    return table_of_caller().set(key, value);
}

GREENLD_EXPORT int pthread_once(pthread_once_t* once, void (*init)()) {
    if (!threads_patched()) return next_once(once, init);
    // 0: not run, 1: running, 2: done (glibc's PTHREAD_ONCE_INIT is 0).
    auto* word = reinterpret_cast<std::atomic<uint32_t>*>(once);
    for (;;) {
        uint32_t v = word->load(std::memory_order_acquire);
        if (v == 2) return 0;
        if (v == 0 && word->compare_exchange_strong(v, 1, std::memory_order_acquire)) {
            init();
            word->store(2, std::memory_order_release);
            futex_wake(word, INT_MAX);
            return 0;
        }
        if (v == 1) futex_wait(word, 1);
    }
}

// ---- functions glibc would dereference a pthread_t in: answer for fibers.

GREENLD_EXPORT int pthread_setname_np(pthread_t t, const char* name) {
    Fiber* f = Fiber::from_handle(reinterpret_cast<void*>(t));
    if (!f) return next_setname(t, name);
    if (strlen(name) >= sizeof f->name) return ERANGE;
    strcpy(f->name, name);
    return 0;
}

GREENLD_EXPORT int pthread_getname_np(pthread_t t, char* buf, size_t len) {
    Fiber* f = Fiber::from_handle(reinterpret_cast<void*>(t));
    if (!f) return next_getname(t, buf, len);
    if (strlen(f->name) >= len) return ERANGE;
    strcpy(buf, f->name);
    return 0;
}

GREENLD_EXPORT int pthread_getattr_np(pthread_t t, pthread_attr_t* attr) {
    Fiber* f = Fiber::from_handle(reinterpret_cast<void*>(t));
    if (!f) return next_getattr(t, attr);
    pthread_attr_init(attr);
    pthread_attr_setstack(attr, f->stack.lo(), f->stack.usable);
    pthread_attr_setguardsize(attr, f->stack.guarded ? f->stack.guard : 0);
    if (f->lifecycle.load(std::memory_order_relaxed) & Fiber::kDetached)
        pthread_attr_setdetachstate(attr, PTHREAD_CREATE_DETACHED);
    return 0;
}

// pthread_kill: preload/signal.cpp.

GREENLD_EXPORT int pthread_setaffinity_np(pthread_t t, size_t size, const cpu_set_t* set) {
    if (!Fiber::from_handle(reinterpret_cast<void*>(t))) return next_setaffinity(t, size, set);
    return 0;  // a fiber runs where its hub runs
}

GREENLD_EXPORT int pthread_getaffinity_np(pthread_t t, size_t size, cpu_set_t* set) {
    Fiber* f = Fiber::from_handle(reinterpret_cast<void*>(t));
    if (!f) return next_getaffinity(t, size, set);
    return next_getaffinity(f->hub->native_handle(), size, set);
}

GREENLD_EXPORT int pthread_setschedparam(pthread_t t, int policy, const sched_param* param) {
    if (!Fiber::from_handle(reinterpret_cast<void*>(t))) return next_setschedparam(t, policy, param);
    return 0;
}

GREENLD_EXPORT int pthread_getschedparam(pthread_t t, int* policy, sched_param* param) {
    Fiber* f = Fiber::from_handle(reinterpret_cast<void*>(t));
    if (!f) return next_getschedparam(t, policy, param);
    return next_getschedparam(f->hub->native_handle(), policy, param);
}

GREENLD_EXPORT int pthread_setschedprio(pthread_t t, int prio) {
    if (!Fiber::from_handle(reinterpret_cast<void*>(t))) return next_setschedprio(t, prio);
    return 0;
}

GREENLD_EXPORT int pthread_getcpuclockid(pthread_t t, clockid_t* clock) {
    Fiber* f = Fiber::from_handle(reinterpret_cast<void*>(t));
    if (!f) return next_getcpuclockid(t, clock);
    // A fiber has no CPU-time clock of its own (reading one per switch would
    // cost a syscall): it answers with its hub's, as greenld(7) says.
    Hub* hub = f->hub;
    if (!hub) return ESRCH;
    return next_getcpuclockid(hub->native_handle(), clock);
}
