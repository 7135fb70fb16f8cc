// Signals for fibers: a program must not be able to tell that its threads
// are fibers when signals arrive (DESIGN.md hazard 6).
//
// The kernel knows only OS threads: the native main thread, the hubs (each
// running many fibers) and our own helper threads. The mechanism:
//
//  - Dispositions. The program's sigaction is recorded here; for a caught
//    signal the kernel gets our trampoline instead (same sa_mask, same
//    SA_RESTART/SA_ONSTACK/SA_NODEFER, so native threads see no difference).
//  - Masks. Each fiber has its own mask (FiberSignals::blocked). A hub's
//    real kernel mask blocks a signal only when every fiber of the hub
//    blocks it (per-hub, per-signal counts), so a process-directed signal
//    that some fiber accepts is still delivered to that hub, and one that
//    every thread blocks stays pending in the kernel for sigwait/signalfd.
//  - Delivery. The trampoline on a hub thread runs the program's handler at
//    once if the running fiber accepts the signal and was interrupted in
//    program code (as the kernel interrupts a running thread). Otherwise it
//    only records the signal in the hub's async-signal-safe queue and wakes
//    the hub: the hub hands it to a fiber that accepts it (a sigwaiter, else
//    a parked fiber), which it unparks with WakeReason::interrupted.
//  - Safe points. A fiber runs the handlers of its pending signals at a
//    safe point: the end of a runtime wait (after the wait is undone), a
//    mask change, a yield. A wait during which a handler ran returns EINTR;
//    whether the blocking call then restarts is one rule (restarts()).
//  - Pokes. A fiber that computes reaches no safe point, so a signal that
//    is owed to a fiber not parked also pokes its hub thread: a per-hub
//    POSIX timer (SIGEV_THREAD_ID) sends kPokeSignal to it, and the
//    trampoline, finding the running fiber in program code, runs the owed
//    handlers there as for a signal the kernel delivered; finding it in the
//    runtime, it re-arms the timer (kPokeDelayNs). Owed is: sent by another
//    thread to a fiber not parked (pthread_kill, tgkill, sigqueue: poked at
//    once), queued because the fiber was in the runtime when the kernel
//    delivered it, or pending for a fiber the hub switches to. Nothing on
//    the hot paths but one test in the switch (switch_in_owed()).
//
// Nothing here calls a libc function we interpose: the kernel is reached
// with raw system calls.
#pragma once

#include "config.h"

#include <signal.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "deadline.h"
#include "native.h"

namespace greenld {

class Fiber;
class Hub;

namespace signals {

// Signals 1..64 as bits (bit sig-1), the kernel's sigset layout.
using Mask = uint64_t;
constexpr int kMaxSignal = 64;
constexpr Mask bit(int sig) { return Mask(1) << (sig - 1); }

// A thread's alternate signal stack as the kernel keeps it (sigaltstack(2)):
// size 0 is disabled; flags are as the program set them (SS_AUTODISARM).
struct AltStack {
    void* sp = nullptr;
    size_t size = 0;
    int flags = SS_DISABLE;
};

// Per-fiber signal state (Fiber::sig). Touched only on the fiber's own hub
// thread; `pending` also from the trampoline on that thread, hence atomic.
struct FiberSignals {
    Mask blocked = 0;               // the mask pthread_sigmask reports
    std::atomic<Mask> pending{0};   // directed at this fiber, not yet handled
    Mask waiting = 0;               // sigwait set while in sigwait (else 0)
    // Why the last wait was interrupted: a handler ran, and whether every
    // handler that ran had SA_RESTART. (A pthread_cancel request flag
    // belongs next to these.)
    bool handler_ran = false;       // cleared by Hub::prepare_park
    bool handlers_restart = false;
    bool listed = false;            // in its hub's fiber list
    AltStack alt;                   // its sigaltstack (never the kernel's)
    int in_handler = 0;             // handlers the trampoline runs for it (signals.cpp)
    const void* handler_frame = nullptr;  // the outermost one's frame
    siginfo_t* infos = nullptr;     // info of each pending signal, on first need
    struct RtQueue* rt_queue = nullptr;  // real-time sends behind a pending one
    Fiber* prev = nullptr;          // the hub's fiber list (routing)
    Fiber* next = nullptr;

    FiberSignals() = default;
    ~FiberSignals();
    FiberSignals(const FiberSignals&) = delete;
    FiberSignals& operator=(const FiberSignals&) = delete;
};

// A signal another thread directs at a fiber: its hub's lock-free inbox
// holds it until the hub thread takes it, in its loop, before a switch, at
// the fiber's safe point, or in the trampoline for the running fiber.
struct DirectedSignal {
    DirectedSignal* next;
    uint32_t target;  // the fiber's id (it may end before the hub looks)
    int sig;          // 0: delivered from signal context, only to be freed
    siginfo_t info;
};

// Per hub, read before every switch (hub.cpp): signals queued on the hub
// that no fiber took yet, and directed signals not yet taken.
struct alignas(64) HubInbox {
    std::atomic<Mask> arrived{0};
    std::atomic<DirectedSignal*> directed{nullptr};
};
extern HubInbox g_inbox[64];

// The signal of the pokes (the monitor's SIGRTMAX, told apart by its
// si_code SI_TIMER and value) and how long a poke waits behind a deferral.
// Its kernel disposition never has SA_ONSTACK: the handlers a poke runs
// must run on the fiber's stack, not on the alternate stack its hub's
// fibers share (one of them may park in a handler).
constexpr int kPokeSignal = config::kSampleSignal;
constexpr int64_t kPokeDelayNs = 200000;

// Runtime code that calls into libc (malloc) with signal state mid-change
// (a held native::Mutex counts already): the trampoline treats the hub
// thread as inside the runtime whatever its pc says (in_runtime() sees
// only pcs). Cold paths only (a signal's routing, the first signal info).
class Critical {
public:
    Critical() {
        ++native::t_critical;
        std::atomic_signal_fence(std::memory_order_seq_cst);
    }
    ~Critical() {
        std::atomic_signal_fence(std::memory_order_seq_cst);
        --native::t_critical;
    }
    Critical(const Critical&) = delete;
    Critical& operator=(const Critical&) = delete;
};

// Real-time signals queue (signal(7)): a send of one already pending for
// the fiber waits here, in order, and becomes pending when the one before
// it is taken. Bounded as the kernel bounds a thread's queue
// (RLIMIT_SIGPENDING): beyond it a send is folded into the pending one.
struct RtQueue {
    static constexpr int kCapacity = 32;
    int count = 0;
    int sig[kCapacity];
    siginfo_t info[kCapacity];
};

inline FiberSignals::~FiberSignals() {
    delete[] infos;
    delete rt_queue;
}

// ---- dispositions (the sigaction wrappers) ----

// Signals that go through the trampoline when caught. Synchronous faults
// (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS) always hit the thread
// that caused them, i.e. the running fiber: they keep plain kernel
// handling. SIGKILL, SIGSTOP and glibc's internal 32/33 cannot be caught.
bool intercepted(int sig);

struct Action {
    void* handler = nullptr;  // SIG_DFL, SIG_IGN or the program's function
    Mask mask = 0;            // sa_mask, signals 1..64
    int flags = 0;            // sa_flags as the program gave them
};
Action action(int sig);
// Records the program's action; returns the previous record.
Action record(int sig, const Action& a);
// The kernel handler for caught signals (a SA_SIGINFO function).
void* trampoline();
// Must run once before the trampoline is first installed.
void prepare();
// True in the child of a vfork (or clone(CLONE_VM)) made by this process:
// it shares our memory but not our signal dispositions or masks, so its
// sigaction and sigprocmask calls must not touch our records (Python's
// subprocess resets every handler there before exec). A fork child has
// its own copy of memory and is the owner of its records.
bool in_memory_sharing_child();

// The signal that interrupts a kickable pool job's call (pool.h): the
// second highest real-time signal (SIGRTMAX-1), which a program is
// unlikely to use; SIGRTMAX itself stops hubs for the monitor
// (config::kSampleSignal). Its
// kernel disposition is our trampoline whenever the program's is SIG_DFL
// (recorded and reported as SIG_DFL), so that it can interrupt a pool
// thread's call; a program that catches it itself keeps its handler.
constexpr int kPoolKick = config::kPoolKickSignal;
// Whether the trampoline is the kernel's disposition for kPoolKick (the
// preload layer installs it, with libc's sigaction, and says so).
bool pool_kick_ready();
void set_pool_kick_installed();

// ---- alternate signal stacks ----
//
// Every hub thread has a kernel alternate stack of its own, on which the
// kernel runs the trampoline for a SA_ONSTACK handler, and greenld's
// overflow report. A fiber's sigaltstack is only recorded (AltStack: a
// switch costs nothing more); the trampoline, and deferred delivery, then
// run the program's handler where the kernel would have for a thread: on
// the fiber's own alternate stack for SA_ONSTACK if it has one and is not
// on it, otherwise on the interrupted stack below its red zone. Leaving
// the hub's stack, the trampoline moves the kernel's signal frame along,
// so that no program code ever runs with the hub's stack in use. The
// kernel's save of the thread's alternate stack in the frame (uc_stack),
// its disarming (SS_AUTODISARM) and its restore at sigreturn are done for
// the fiber. Synchronous faults whose handler has SA_ONSTACK go through
// the trampoline for this too (a program's own overflow handler runs on
// the faulting fiber's alternate stack).

// sigaltstack(2) for fiber f whose stack pointer is `sp`: 0 or an errno
// value (EPERM, EINVAL, ENOMEM), exactly as the kernel for a thread.
int alt_stack(Fiber* f, const stack_t* ss, stack_t* old, uintptr_t sp);
// Does the sigaction wrapper give the kernel our trampoline for a caught
// fault signal whose handler has these flags?
bool wraps_fault(int sig, int flags);

// ---- masks ----

// Signals no mask can hold: the kernel drops SIGKILL/SIGSTOP, glibc 32/33.
constexpr Mask kUnblockable = bit(SIGKILL) | bit(SIGSTOP) | bit(32) | bit(33);

// Sets the calling fiber's mask (updating its hub's kernel mask if needed)
// and runs the handlers it unblocked, before returning; true if one ran.
bool set_mask(Fiber* f, Mask mask);
// The calling OS thread's kernel mask.
Mask thread_mask();
// The kernel mask the runtime keeps on the calling hub thread (what its
// fibers' masks need), or thread_mask() on another thread.
Mask hub_thread_mask();

// ---- safe points ----

// Has the fiber a signal to handle (its own, or one queued on its hub that
// it accepts)? A park with one returns at once (Hub::park_prepared).
bool deliverable(const Fiber* f);

// Runs the handlers of the fiber's pending signals that it does not block
// (taking from its hub's queue what it accepts). True if a handler ran: the
// blocking call around the safe point was interrupted.
bool deliver_pending(Fiber* f);

// signal(7): may a blocking call of the calling fiber whose wait just
// returned EINTR go on waiting? Yes if no handler ran during that park
// (FiberSignals::handler_ran is cleared by every park); otherwise only if
// every handler that ran had SA_RESTART and no timeout bounds the call
// (`deadline`: SO_RCVTIMEO/SO_SNDTIMEO, sem_timedwait's). Calls that never
// restart (poll, sleeps, sigtimedwait) do not ask.
bool restarts(Deadline deadline);

// ---- interruptible waits built on park ----

// Parks until the deadline or until a handler ran: 0 or EINTR.
int sleep_until(Deadline deadline);
// sigsuspend: runs with `mask` until a handler ran, then restores the mask.
void suspend(Mask mask);
// sigwait family: the fiber's own pending signals first, then the process's
// (through a signalfd the fiber parks on). Returns the signal, -EAGAIN at
// the deadline or -EINTR if a handler ran.
int wait_for(Mask set, siginfo_t* info, Deadline deadline);
// sigpending: the fiber's pending signals and the process's, as blocked by it.
Mask pending_for(Fiber* f);

// pthread_kill (or pthread_sigqueue, with its `info`) of a live fiber: 0,
// or an errno value. Null info: as tgkill() would fill it (SI_TKILL).
int send_to_fiber(Fiber* f, int sig, const siginfo_t* info = nullptr);
// tgkill/tkill/rt_tgsigqueueinfo naming a fiber by the id gettid() gave it:
// 0, ESRCH if no live fiber has that id, or an errno value. sig 0 only
// checks that the fiber exists.
int send_to_id(uint32_t id, int sig, const siginfo_t* info = nullptr);

// ---- exec and spawn from a fiber ----

// The kernel gives a new program (execve) or a spawned child (posix_spawn
// without POSIX_SPAWN_SETSIGMASK) the calling OS thread's mask, which on a
// hub is not the fiber's. For the duration of the call the hub thread's
// kernel mask becomes the fiber's; for an exec (`keep_pending`), the
// signals pending for the fiber that it blocks are made pending on the
// thread too, so the new program finds them pending as natively.
// child_mask_end() undoes both when the call returned (it failed, or the
// spawn is done).
struct ChildMask {
    Fiber* fiber = nullptr;
    Mask moved = 0;  // pending signals handed to the kernel
};
ChildMask child_mask_begin(bool keep_pending);
void child_mask_end(const ChildMask& cm);

// vfork (preload/vfork_x86_64.S): the child starts with the calling OS
// thread's mask, so for the call the hub thread's becomes the fiber's.
// vfork_begin runs before the system call; vfork_end in the parent after
// it (the child has exec'd or exited): the hub's own mask comes back and
// the fiber runs the handlers of signals that arrived meanwhile. Both do
// nothing outside a fiber and in a vfork child (which shares our memory:
// the hub's record of a vfork in flight is its parent's).
void vfork_begin();
void vfork_end();

// ---- diagnostics (monitor.cpp) ----

// A hook the trampoline calls first for every signal, on any thread; true
// if it consumed the signal. The signals of `mask` get the trampoline in
// the kernel now and whatever the program later sets, and hub threads
// never block them. Call before the hubs start.
using DiagnosticHook = bool (*)(int sig, siginfo_t* info, void* ucontext);
void set_diagnostic_hook(DiagnosticHook hook, Mask mask);
bool diagnostic(int sig);
// The hub's kernel thread id, and its started fibers (follow sig.next):
// read by the monitor while the hub is stopped.
long hub_tid(Hub* hub);
Fiber* first_fiber(Hub* hub);

// ---- hooks of the hub (hub.cpp) and fork (fork.cpp) ----

void hub_thread_started(Hub* hub);
// Hub context, before switching to `f`: is anything owed that it must look
// at? Inline: it runs on every switch.
inline bool switch_in_owed(int hub_index, bool fiber_hint) {
    const HubInbox& in = g_inbox[hub_index];
    return fiber_hint | (in.arrived.load(std::memory_order_relaxed) != 0) |
           (in.directed.load(std::memory_order_relaxed) != nullptr);
}
// ... and if so: routes what the hub holds, and pokes the hub after
// kPokeDelayNs if `f` has a handler to run (it will be in program code by then).
void switching_in(Hub* hub, Fiber* f);
void fiber_spawned(Fiber* f);   // on the creator's thread: inherit its mask
void fiber_started(Fiber* f);   // on the hub, before the start routine
void fiber_exiting(Fiber* f);   // on the hub
void on_hub_wakeup(Hub* hub);   // hub context: route queued signals
void reset_in_child(Fiber* forker);

}  // namespace signals
}  // namespace greenld
