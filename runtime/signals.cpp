#include "signals.h"

#include "hub.h"
#include <link.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <ucontext.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "config.h"
#include "context.h"
#include "diag.h"
#include "fd_table.h"
#include "fiber_ids.h"
#include "hub.h"
#include "io.h"
#include "native.h"
#include "pool.h"

namespace greenld::signals {

HubInbox g_inbox[64];

namespace {

// ---------------------------------------------------------------- kernel

// The kernel's struct sigaction (x86_64/aarch64 layout): what rt_sigaction
// takes, not glibc's larger struct.
struct KernelAction {
    void* handler;
    unsigned long flags;
    void* restorer;
    Mask mask;
};

long set_thread_mask(Mask m) { return native::sys(SYS_rt_sigprocmask, SIG_SETMASK, reinterpret_cast<long>(&m), 0, 8); }

void reset_kernel_action(int sig) {
    KernelAction ka{};
    ka.handler = reinterpret_cast<void*>(SIG_DFL);
    native::sys(SYS_rt_sigaction, sig, reinterpret_cast<long>(&ka), 0, 8);
}

void send_to_this_thread(int sig) {
    native::sys(SYS_tgkill, native::sys(SYS_getpid), native::gettid(), sig);
}

int lowest(Mask m) { return __builtin_ctzll(m) + 1; }

// Program handlers the trampoline runs may have interrupted malloc, so what
// they call of ours must not allocate or free (assign, take_directed and
// new_directed ask inside_handler()). Counted per fiber (a handler may
// park, and its hub then runs other fibers), per thread on native threads.
thread_local int t_native_in_handler = 0;

class InHandler {
public:
    InHandler() : f_(Hub::current_fiber()) {
        if (!f_) {
            ++t_native_in_handler;
        } else if (f_->sig.in_handler++ == 0) {
            f_->sig.handler_frame = __builtin_frame_address(0);
        }
        std::atomic_signal_fence(std::memory_order_seq_cst);
    }
    ~InHandler() {
        std::atomic_signal_fence(std::memory_order_seq_cst);
        if (!f_)
            --t_native_in_handler;
        else if (f_->sig.in_handler > 0)
            --f_->sig.in_handler;
    }
    InHandler(const InHandler&) = delete;
    InHandler& operator=(const InHandler&) = delete;

private:
    Fiber* f_;
};

// A handler that left by siglongjmp never decremented its count: a fiber
// whose code runs on its own stack above the outermost handler's frame (or
// whose handler ran on the alternate stack) is no longer inside it.
bool inside_handler() {
    Fiber* f = Hub::current_fiber();
    if (!f) return !Hub::current() && t_native_in_handler > 0;
    if (!f->sig.in_handler) return false;
    const void* here = __builtin_frame_address(0);
    if (f->stack.contains(here) && (!f->stack.contains(f->sig.handler_frame) || here > f->sig.handler_frame)) {
        f->sig.in_handler = 0;
        return false;
    }
    return true;
}

void on_signal(int sig, siginfo_t* info, void* ucv);

// Faults go to the thread that caused them: never blocked on a hub (a
// blocked fault kills the process) and never routed.
constexpr Mask kSynchronous = bit(SIGSEGV) | bit(SIGBUS) | bit(SIGFPE) | bit(SIGILL) | bit(SIGTRAP) | bit(SIGSYS);
constexpr Mask kNeverBlockOnHub = kSynchronous | kUnblockable;

bool ignored_by_default(int sig) {
    return sig == SIGCHLD || sig == SIGURG || sig == SIGWINCH || sig == SIGCONT;
}

// ---------------------------------------------------------------- records

// The program's dispositions. Atomics, read by the trampoline; a sigaction
// racing a delivery may pair an old handler with new flags, as a torn
// update would natively be impossible but no program can rely on the order.
std::atomic<void*> g_handler[kMaxSignal + 1];
std::atomic<Mask> g_mask[kMaxSignal + 1];
std::atomic<int> g_flags[kMaxSignal + 1];

// ---------------------------------------------------------------- hubs

struct HubSignals {
    // Filled by the trampoline (signal context), emptied on the hub thread;
    // which of them are set: g_inbox[hub].arrived.
    siginfo_t info[kMaxSignal];
    // Hub-thread only.
    int blocking[kMaxSignal];  // fibers of the hub blocking each signal
    int fibers = 0;
    Mask kernel_mask = 0;      // what the hub thread's kernel mask is
    long tid = 0;              // the hub thread's kernel id
    bool vforking = false;     // between vfork_begin and vfork_end
    uintptr_t alt_lo = 0, alt_hi = 0;  // the thread's kernel alternate stack
    Fiber* head = nullptr;     // the hub's started fibers
    // The kernel timer that pokes the hub thread (-1: none); armed from
    // any thread. poke_at: when it is armed to fire (monotonic ns, 0: not
    // armed), so that a later request does not postpone an earlier one.
    std::atomic<int> poke_timer{-1};
    std::atomic<uint64_t> poke_at{0};
};

HubSignals g_hubs[Runtime::kMaxHubs];
static_assert(Runtime::kMaxHubs == sizeof g_inbox / sizeof g_inbox[0]);

HubSignals& state(Hub* hub) { return g_hubs[hub->index()]; }
HubInbox& inbox(const HubSignals& hs) { return g_inbox[&hs - g_hubs]; }
std::atomic<Mask>& arrived(const HubSignals& hs) { return inbox(hs).arrived; }

// The value a poke carries (si_value), which nothing else sends.
char g_poke_marker;

// Pokes the hub thread after `ns` at the latest: async-signal-safe, from
// any thread. A sender pokes at once (1 ns); a flood of deferred signals
// does not keep pushing the poke back.
void poke(HubSignals& hs, int64_t ns) {
    const int timer = hs.poke_timer.load(std::memory_order_acquire);
    if (timer < 0) return;
    const uint64_t at = native::monotonic_ns() + uint64_t(ns);
    uint64_t armed = hs.poke_at.load(std::memory_order_relaxed);
    do {
        if (armed && armed <= at) return;
    } while (!hs.poke_at.compare_exchange_weak(armed, at, std::memory_order_relaxed));
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    its.it_value.tv_sec = ns / 1000000000;
    its.it_value.tv_nsec = ns % 1000000000;
    native::sys(SYS_timer_settime, timer, 0, reinterpret_cast<long>(&its), 0);
}

void create_poke_timer(HubSignals& hs) {
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = kPokeSignal;
    sev.sigev_value.sival_ptr = &g_poke_marker;
    sev._sigev_un._tid = int(hs.tid);
    int timer = -1;  // the kernel's timer_t is an int
    const long rc = native::sys(SYS_timer_create, CLOCK_MONOTONIC, reinterpret_cast<long>(&sev),
                                reinterpret_cast<long>(&timer));
    if (rc < 0) {
        diag::message("cannot create the timer that interrupts a hub for signals (errno %ld): a signal for a "
                      "fiber that computes waits for its next blocking call", -rc);
        return;
    }
    hs.poke_timer.store(timer, std::memory_order_release);
}

void count(HubSignals& hs, Mask from, Mask to) {
    for (Mask d = from ^ to; d; d &= d - 1) {
        int i = __builtin_ctzll(d);
        hs.blocking[i] += (to >> i) & 1 ? 1 : -1;
    }
}

std::atomic<DiagnosticHook> g_diag_hook{nullptr};
std::atomic<Mask> g_diag_mask{0};

Mask wanted_kernel_mask(const HubSignals& hs) {
    const Mask never = kNeverBlockOnHub | g_diag_mask.load(std::memory_order_relaxed);
    if (hs.fibers == 0) return ~never;
    Mask m = 0;
    for (int i = 0; i < kMaxSignal; ++i)
        if (hs.blocking[i] == hs.fibers) m |= Mask(1) << i;
    return m & ~never;
}

// Called on the hub thread. A hub left without fibers keeps its mask: a
// signal that lands there anyway is sent back to the process (route()).
void sync_kernel_mask(HubSignals& hs, bool even_without_fibers = false) {
    if (hs.fibers == 0 && !even_without_fibers) return;
    Mask m = wanted_kernel_mask(hs);
    if (m == hs.kernel_mask) return;
    hs.kernel_mask = m;
    set_thread_mask(m);
}

// The mask a fiber has, for counting and the kernel mask; no delivery.
void apply_mask(Fiber* f, Mask m) {
    m &= ~kUnblockable;
    if (f->sig.listed) {
        HubSignals& hs = state(f->hub);
        count(hs, f->sig.blocked, m);
        f->sig.blocked = m;
        sync_kernel_mask(hs);
    } else {
        f->sig.blocked = m;
    }
}

Mask accepted_by(const Fiber* f) { return ~(f->sig.blocked | f->sig.waiting); }

siginfo_t synthesized_info(int sig, int code) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    info.si_signo = sig;
    info.si_code = code;
    info.si_pid = int(native::sys(SYS_getpid));
    info.si_uid = unsigned(native::sys(SYS_getuid));
    return info;
}

// Makes `sig` pending for `f` with `info`. On f's hub thread. Inside a
// handler the trampoline runs, a fiber that never had a signal's info
// stored gets none (its handler sees what tgkill would give): the first
// needs malloc, which the handler may have interrupted.
constexpr int kFirstRealtime = 32;  // the kernel's SIGRTMIN (glibc keeps 32 and 33)

void assign(Fiber* f, int sig, const siginfo_t& info) {
    if (sig >= kFirstRealtime && (f->sig.pending.load(std::memory_order_relaxed) & bit(sig)) && f->sig.infos) {
        // A real-time signal already pending: this send queues behind it.
        if (!f->sig.rt_queue && !inside_handler()) {
            Critical in_malloc;
            f->sig.rt_queue = new (std::nothrow) RtQueue;
        }
        if (RtQueue* q = f->sig.rt_queue; q && q->count < RtQueue::kCapacity) {
            q->sig[q->count] = sig;
            q->info[q->count++] = info;
        }
        f->sig_hint = true;
        return;
    }
    if (!f->sig.infos && !inside_handler()) {
        Critical in_malloc;
        f->sig.infos = new (std::nothrow) siginfo_t[kMaxSignal];
    }
    if (f->sig.infos) f->sig.infos[sig - 1] = info;
    f->sig.pending.fetch_or(bit(sig), std::memory_order_relaxed);
    f->sig_hint = true;
}

siginfo_t info_of(const Fiber* f, int sig) {
    if (f->sig.infos) return f->sig.infos[sig - 1];
    return synthesized_info(sig, SI_USER);
}

// Takes pending `sig` from f and returns its info; a real-time send queued
// behind it becomes pending in its place. No allocation (signal context).
siginfo_t take_pending(Fiber* f, int sig) {
    const siginfo_t info = info_of(f, sig);
    if (RtQueue* q = f->sig.rt_queue) {
        for (int i = 0; i < q->count; ++i) {
            if (q->sig[i] != sig) continue;
            f->sig.infos[sig - 1] = q->info[i];
            for (int j = i + 1; j < q->count; ++j) {
                q->sig[j - 1] = q->sig[j];
                q->info[j - 1] = q->info[j];
            }
            --q->count;
            return info;
        }
    }
    f->sig.pending.fetch_and(~bit(sig), std::memory_order_relaxed);
    return info;
}

// Drops every pending send of `sig` (an ignored signal, as the kernel
// discards it).
void discard(Fiber* f, int sig) {
    while (f->sig.pending.load(std::memory_order_relaxed) & bit(sig)) take_pending(f, sig);
}

// Ends the fiber's park if `sig` (just made pending) will do something
// there: run a handler, take a default action, or end its sigwait. An
// ignored signal interrupts nothing, as the kernel discards it.
void interrupt(Fiber* f, int sig) {
    if (f->sig.waiting & bit(sig)) {
        Hub::unpark(f, WakeReason::interrupted);
        return;
    }
    if (f->sig.blocked & bit(sig)) return;
    void* h = g_handler[sig].load(std::memory_order_relaxed);
    if (h == reinterpret_cast<void*>(SIG_IGN) || (h == reinterpret_cast<void*>(SIG_DFL) && ignored_by_default(sig))) {
        discard(f, sig);
        return;
    }
    Hub::unpark(f, WakeReason::interrupted);
}

// Moves the hub's queued signals in `bits` to the fiber.
void claim(HubSignals& hs, Fiber* f, Mask bits) {
    for (; bits; bits &= bits - 1) {
        int sig = lowest(bits);
        if (!(arrived(hs).fetch_and(~bit(sig), std::memory_order_acq_rel) & bit(sig))) continue;
        assign(f, sig, hs.info[sig - 1]);
    }
}

// ---------------------------------------------------------------- alternate stacks

// Not in glibc's headers: the kernel's (Linux 4.7).
constexpr int kAutoDisarm = int(1u << 31);
// The kernel's MINSIGSTKSZ on x86_64 (glibc's macro may be a sysconf call).
constexpr size_t kMinAltStack = 2048;
constexpr size_t kHubAltStack = 64 * 1024;
// Below the interrupted stack pointer: the x86_64 ABI's red zone, which
// the kernel skips too.
constexpr uintptr_t kRedZone = 128;

// The kernel's on_sig_stack and sas_ss_flags, for a fiber's record.
bool on_alt(const AltStack& a, uintptr_t sp) {
    if (a.flags & kAutoDisarm) return false;
    return sp > uintptr_t(a.sp) && sp - uintptr_t(a.sp) <= a.size;
}

int alt_state(const AltStack& a, uintptr_t sp) {
    if (!a.size) return SS_DISABLE;
    return on_alt(a, sp) ? SS_ONSTACK : 0;
}

// The kernel's do_sigaltstack, setting part: 0 or an errno value.
int set_alt(AltStack& a, const stack_t& ss, uintptr_t sp) {
    if (on_alt(a, sp)) return EPERM;
    const int mode = ss.ss_flags & ~kAutoDisarm;
    if (mode != SS_DISABLE && mode != SS_ONSTACK && mode != 0) return EINVAL;
    if (a.sp == ss.ss_sp && a.size == ss.ss_size && a.flags == ss.ss_flags) return 0;
    if (mode == SS_DISABLE) {
        a = AltStack{nullptr, 0, ss.ss_flags};
        return 0;
    }
    if (ss.ss_size < kMinAltStack) return ENOMEM;
    a = AltStack{ss.ss_sp, ss.ss_size, ss.ss_flags};
    return 0;
}

// Each hub thread's own kernel alternate stack (signals.h).
void arm_hub_alt_stack(HubSignals& hs) {
    long mem = native::sys(SYS_mmap, 0, kHubAltStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem < 0 && mem > -4096) {
        diag::message("cannot map an alternate signal stack for a hub (errno %ld): a fiber's stack overflow "
                      "will not be reported", -mem);
        return;
    }
    stack_t ss{};
    ss.ss_sp = reinterpret_cast<void*>(mem);
    ss.ss_size = kHubAltStack;
    if (long rc = native::sys(SYS_sigaltstack, reinterpret_cast<long>(&ss), 0); rc != 0) {
        native::sys(SYS_munmap, mem, kHubAltStack);
        diag::message("cannot set a hub's alternate signal stack (errno %ld): a fiber's stack overflow will not "
                      "be reported", -rc);
        return;
    }
    hs.alt_lo = uintptr_t(mem);
    hs.alt_hi = uintptr_t(mem) + kHubAltStack;
}

// ---------------------------------------------------------------- handlers

void call_handler(int sig, const Action& a, siginfo_t* info, void* uc) {
    if (a.flags & SA_SIGINFO)
        reinterpret_cast<void (*)(int, siginfo_t*, void*)>(a.handler)(sig, info, uc);
    else
        reinterpret_cast<void (*)(int)>(a.handler)(sig);
}

struct HandlerCall {
    int sig;
    const Action* action;
    siginfo_t* info;
    void* uc;
};

void call_handler_on_stack(void* p) {
    auto* c = static_cast<HandlerCall*>(p);
    call_handler(c->sig, *c->action, c->info, c->uc);
}

// The top of the stack the kernel would run a handler with action `a` on
// for a thread with f's alternate stack, interrupted with stack pointer
// `isp`: f's alternate stack for SA_ONSTACK when it has one and is not on
// it; else 0, the interrupted stack.
uintptr_t alt_top_for(const Fiber* f, const Action& a, uintptr_t isp) {
    const AltStack& alt = f->sig.alt;
    if ((a.flags & SA_ONSTACK) && alt_state(alt, isp - kRedZone) == 0) return uintptr_t(alt.sp) + alt.size;
    return 0;
}

// Runs the program's handler for fiber f, interrupted with stack pointer
// `isp`, on the stack whose top is `top` (0: here). Around the call,
// uc_stack and f's record behave as the kernel's signal frame and
// sigreturn do for a thread's alternate stack: saved in the frame,
// disarmed if SS_AUTODISARM, restored from the frame after.
void call_on_fiber_stack(Fiber* f, int sig, const Action& a, siginfo_t* info, ucontext_t* uc, uintptr_t isp,
                         uintptr_t top) {
    AltStack& alt = f->sig.alt;
    const stack_t kernel_saved = uc->uc_stack;
    uc->uc_stack.ss_sp = alt.sp;
    uc->uc_stack.ss_size = alt.size;
    uc->uc_stack.ss_flags = alt.flags;
    if (alt.flags & kAutoDisarm) alt = AltStack{};
    if (top) {
        HandlerCall c{sig, &a, info, uc};
        greenld_call_on_stack(call_handler_on_stack, &c, reinterpret_cast<void*>(top));
    } else {
        call_handler(sig, a, info, uc);
    }
    // rt_sigreturn's restore_altstack, whose errors the kernel ignores.
    set_alt(alt, uc->uc_stack, isp);
    uc->uc_stack = kernel_saved;
}

bool on_hub_alt_stack(const HubSignals& hs) {
    const auto sp = uintptr_t(__builtin_frame_address(0));
    return sp >= hs.alt_lo && sp < hs.alt_hi;
}

uintptr_t interrupted_sp(void* ucv) {
    return uintptr_t(static_cast<ucontext_t*>(ucv)->uc_mcontext.gregs[REG_RSP]);
}

void reset_to_default(int sig) {
    g_handler[sig].store(reinterpret_cast<void*>(SIG_DFL), std::memory_order_relaxed);
    g_flags[sig].store(0, std::memory_order_relaxed);
    g_mask[sig].store(0, std::memory_order_relaxed);
    reset_kernel_action(sig);
}

// The default action of a signal we had caught (the program set SIG_DFL
// after it arrived, or SA_RESETHAND): re-raised for real on this thread,
// whose kernel mask lets it through, so the kernel terminates or stops the
// process exactly as it would have.
void default_action(int sig) {
    if (ignored_by_default(sig)) return;
    KernelAction cur{};
    native::sys(SYS_rt_sigaction, sig, 0, reinterpret_cast<long>(&cur), 8);
    if (cur.handler == reinterpret_cast<void*>(SIG_IGN)) return;
    if (cur.handler == reinterpret_cast<void*>(&on_signal)) {
        reset_kernel_action(sig);
    } else if (cur.handler != reinterpret_cast<void*>(SIG_DFL)) {
        return;  // a handler installed behind our back: the kernel calls it directly
    }
    send_to_this_thread(sig);
}

// Runs a handler for a fiber at a safe point, on the fiber's own stack,
// with the fiber's mask | sa_mask | sig applied, as the kernel would.
// Returns true if a handler function ran.
bool run_for_fiber(Fiber* f, int sig, siginfo_t* info) {
    Action a = action(sig);
    if (a.handler == reinterpret_cast<void*>(SIG_IGN)) return false;
    if (a.handler == reinterpret_cast<void*>(SIG_DFL)) {
        default_action(sig);
        return false;
    }
    const Mask saved = f->sig.blocked;
    apply_mask(f, saved | a.mask | ((a.flags & SA_NODEFER) ? 0 : bit(sig)));
    if (a.flags & SA_RESETHAND) reset_to_default(sig);
    // The third argument of a SA_SIGINFO handler: no register state (the
    // fiber was not interrupted by the kernel), but the mask it restores.
    ucontext_t uc;
    memset(&uc, 0, sizeof uc);
    memcpy(&uc.uc_sigmask, &saved, sizeof saved);
    const int saved_errno = errno;
    const auto here = uintptr_t(__builtin_frame_address(0));
    call_on_fiber_stack(f, sig, a, info, &uc, here, alt_top_for(f, a, here));
    errno = saved_errno;
    apply_mask(f, saved);
    return true;
}

// ---------------------------------------------------------------- directed signals

// pthread_kill and tgkill are async-signal-safe: a handler may send one
// while the interrupted code is inside malloc. DirectedSignals come from a
// fixed slab claimed by atomic bit operations; only when it is exhausted
// does the heap help.
constexpr int kSlabWords = 4;
DirectedSignal g_directed_slab[kSlabWords * 64];
std::atomic<uint64_t> g_directed_used[kSlabWords];

DirectedSignal* new_directed() {
    for (int w = 0; w < kSlabWords; ++w) {
        uint64_t used = g_directed_used[w].load(std::memory_order_relaxed);
        while (~used) {
            const int b = __builtin_ctzll(~used);
            if (g_directed_used[w].compare_exchange_weak(used, used | (uint64_t(1) << b), std::memory_order_acquire))
                return &g_directed_slab[w * 64 + b];
        }
    }
    // Not inside a handler: it may have interrupted malloc.
    return inside_handler() ? nullptr : new (std::nothrow) DirectedSignal;
}

bool from_slab(const DirectedSignal* d) {
    const ptrdiff_t i = d - g_directed_slab;
    return i >= 0 && i < kSlabWords * 64;
}

// Async-signal-safe for slab items only.
void free_directed(DirectedSignal* d) {
    const ptrdiff_t i = d - g_directed_slab;
    if (from_slab(d))
        g_directed_used[i / 64].fetch_and(~(uint64_t(1) << (i % 64)), std::memory_order_release);
    else
        delete d;
}

// Pushes the chain first..last (linked by next) on the inbox: any thread,
// async-signal-safe. Only the hub thread takes from it, always the whole
// list at once (exchange), so a node is never freed under a reader.
void push_directed(HubInbox& in, DirectedSignal* first, DirectedSignal* last) {
    DirectedSignal* head = in.directed.load(std::memory_order_relaxed);
    do {
        last->next = head;
    } while (!in.directed.compare_exchange_weak(head, first, std::memory_order_release, std::memory_order_relaxed));
}

// Hub thread, normal context (the hub's loop, a switch, a fiber's safe
// point): each directed signal becomes pending for its fiber, which is
// interrupted if parked. One whose fiber has ended is dropped, as the
// kernel drops a signal for a thread that exited.
void take_directed(HubSignals& hs) {
    HubInbox& in = inbox(hs);
    // Inside a handler the trampoline runs (a safe point it reaches, such
    // as a mask change) they stay: assign and free may allocate; a poke
    // takes the running fiber's (run_owed_inline).
    if (!in.directed.load(std::memory_order_relaxed) || inside_handler()) return;
    Critical in_libc;
    DirectedSignal* list = in.directed.exchange(nullptr, std::memory_order_acquire);
    DirectedSignal* fifo = nullptr;  // the inbox is newest first
    while (list) {
        DirectedSignal* next = list->next;
        list->next = fifo;
        fifo = list;
        list = next;
    }
    while (fifo) {
        DirectedSignal* next = fifo->next;
        if (fifo->sig) {
            if (Fiber* f = fiber_ids::on_this_hub(fifo->target)) {
                assign(f, fifo->sig, fifo->info);
                interrupt(f, fifo->sig);
            }
        }
        free_directed(fifo);
        fifo = next;
    }
}

// Signal context: is a directed signal that `f` accepts waiting for it?
// Safe to walk: nodes leave the inbox only on this thread, which is here.
bool directed_for(const HubInbox& in, const Fiber* f, Mask accept) {
    for (const DirectedSignal* d = in.directed.load(std::memory_order_acquire); d; d = d->next)
        if (d->sig && d->target == f->id && (accept & bit(d->sig))) return true;
    return false;
}

// ---------------------------------------------------------------- trampoline

// Executable ranges of our own code and libev's: a fiber interrupted there
// is inside the runtime (a lock, a run queue, the loop may be mid-change),
// so its handler waits for the next safe point instead of running inline.
struct TextRange {
    uintptr_t lo, hi;
};
TextRange g_runtime_text[8];
std::atomic<int> g_runtime_text_count{0};

bool in_runtime(uintptr_t pc) {
    const int n = g_runtime_text_count.load(std::memory_order_acquire);
    for (int i = 0; i < n; ++i)
        if (pc >= g_runtime_text[i].lo && pc < g_runtime_text[i].hi) return true;
    return false;
}

uintptr_t interrupted_pc(void* ucv) {
    auto* uc = static_cast<ucontext_t*>(ucv);
#if defined(__x86_64__)
    return uintptr_t(uc->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
    return uintptr_t(uc->uc_mcontext.pc);
#endif
}

// The running fiber `f` (if any) did not take the signal here: it blocks
// it (the hub routes it to a fiber that accepts it), or it is inside the
// runtime, and then the hub is poked until it is back in program code.
void queue_on_hub(Hub* hub, Fiber* f, int sig, const siginfo_t* info) {
    HubSignals& hs = state(hub);
    hs.info[sig - 1] = *info;
    arrived(hs).fetch_or(bit(sig), std::memory_order_release);
    hub->wake_from_signal();
    if (f && (accepted_by(f) & bit(sig))) poke(hs, kPokeDelayNs);
}

// In the trampoline: may the running fiber's handler run here? Not if the
// hub thread is inside the runtime (a lock, a run queue, the loop may be
// mid-change).
bool in_program_code(void* ucv) { return !native::t_critical && !in_runtime(interrupted_pc(ucv)); }

// The handler's part of run_inline, on the stack it runs on (`top`: 0 if
// here). The kernel has already blocked sa_mask|sig on the hub thread; the
// fiber's own mask says so too for the duration.
void handle_inline(Hub* hub, Fiber* f, int sig, const Action& a, siginfo_t* info, ucontext_t* uc, uintptr_t isp,
                   uintptr_t top) {
    HubSignals& hs = state(hub);
    const Mask saved = f->sig.blocked;
    const Mask kernel_before = hs.kernel_mask;
    const Mask during = (saved | a.mask | ((a.flags & SA_NODEFER) ? 0 : bit(sig))) & ~kUnblockable;
    count(hs, saved, during);
    f->sig.blocked = during;
    if (a.flags & SA_RESETHAND) reset_to_default(sig);
    {
        InHandler in_handler;
        call_on_fiber_stack(f, sig, a, info, uc, isp, top);
    }
    count(hs, f->sig.blocked, saved);
    f->sig.blocked = saved;
    // The kernel restores the interrupted mask at sigreturn; if the handler
    // changed masks meanwhile, restore what the hub needs now instead.
    const Mask now = wanted_kernel_mask(hs);
    if (hs.fibers && now != kernel_before) {
        hs.kernel_mask = now;
        memcpy(&uc->uc_sigmask, &now, sizeof now);
    }
}

// A signal frame moved off the hub's alternate stack (move_frame).
struct MovedSignal {
    Hub* hub;
    Fiber* f;
    Action action;  // as run_inline read it
    int sig;
    int saved_errno;
    siginfo_t* info;
    ucontext_t* uc;
    uintptr_t isp;
};

// Entered as the kernel enters a handler, on the moved frame: returning
// goes to the frame's restorer (rt_sigreturn), which reads the moved
// ucontext.
void run_moved(void* p) {
    const MovedSignal m = *static_cast<MovedSignal*>(p);
    handle_inline(m.hub, m.f, m.sig, m.action, m.info, m.uc, m.isp, 0);
    errno = m.saved_errno;
}

// The kernel ran the trampoline on the hub's alternate stack (SA_ONSTACK),
// but the program's handler belongs on another stack (`top`). Calling it
// from here would keep the hub's stack in use while program code runs, and
// the kernel, seeing the stack pointer elsewhere, would deliver the next
// SA_ONSTACK signal from the top of it, over our frames (and a handler
// that longjmps out would leave them there). So the whole signal frame
// (rt_sigframe: the restorer's address, ucontext, siginfo, then the FPU
// state, up to the top of the stack) moves below `top` and is entered
// there as the kernel would have: from then on the hub's stack is free.
// Returns only if the frame is not where the kernel puts it.
void move_frame(Hub* hub, Fiber* f, int sig, const Action& a, siginfo_t* info, ucontext_t* uc, uintptr_t isp,
                uintptr_t top, int saved_errno) {
    const HubSignals& hs = state(hub);
    const uintptr_t start = uintptr_t(uc) - sizeof(void*);
    if (start < hs.alt_lo || start >= hs.alt_hi) return;
    const size_t len = hs.alt_hi - start;
    // The same alignment modulo 64 (the FPU state's), below the top, with
    // room above it for MovedSignal.
    const uintptr_t want = top - len - sizeof(MovedSignal);
    const intptr_t delta = (intptr_t(want) - intptr_t(start)) & ~intptr_t(63);
    const uintptr_t dst = start + uintptr_t(delta);
    memcpy(reinterpret_cast<void*>(dst), reinterpret_cast<void*>(start), len);
    auto moved = [&](auto* p) {
        const auto a = uintptr_t(p);
        return a >= start && a < hs.alt_hi ? reinterpret_cast<decltype(p)>(a + uintptr_t(delta)) : p;
    };
    ucontext_t* muc = moved(uc);
    if (muc->uc_mcontext.fpregs) muc->uc_mcontext.fpregs = moved(muc->uc_mcontext.fpregs);
    auto* m = reinterpret_cast<MovedSignal*>(dst + len);
    *m = MovedSignal{hub, f, a, sig, saved_errno, moved(info), muc, isp};
    greenld_enter_signal_frame(run_moved, m, reinterpret_cast<void*>(dst));
}

// The running fiber accepts the signal and was in program code (or caused
// the fault): run the handler now, as the kernel interrupts a running
// thread, on the stack the kernel would have chosen for it.
void run_inline(Hub* hub, Fiber* f, int sig, siginfo_t* info, void* ucv, int saved_errno) {
    HubSignals& hs = state(hub);
    const Action a = action(sig);
    if (a.handler == reinterpret_cast<void*>(SIG_IGN)) return;
    if (a.handler == reinterpret_cast<void*>(SIG_DFL)) {
        default_action(sig);
        return;
    }
    auto* uc = static_cast<ucontext_t*>(ucv);
    const uintptr_t isp = interrupted_sp(ucv);
    uintptr_t top = alt_top_for(f, a, isp);
    if (on_hub_alt_stack(hs)) {
        if (!top) {
            // A fault that overflowed f's stack cannot run its handler
            // there: as the kernel then kills the process with SIGSEGV,
            // after greenld's report.
            if ((bit(sig) & kSynchronous) && diag::is_stack_overflow(f, info, uc)) {
                diag::die_of_overflow(f, info);
                return;
            }
            top = isp - kRedZone;
        }
        move_frame(hub, f, sig, a, info, uc, isp, top, saved_errno);
    }
    handle_inline(hub, f, sig, a, info, uc, isp, top);
}

// A poke found the running fiber in program code: it runs here, lowest
// signal first, the handlers it is owed (its own pending signals, those
// queued on the hub that it accepts, and those directed at it), as the
// kernel runs a running thread's. Nothing is held while a handler runs (it
// may siglongjmp out): the directed signals of other fibers, and those it
// blocks, are back in the inbox for the hub's loop by then.
void run_owed_inline(Hub* hub, Fiber* f, void* ucv, int saved_errno) {
    HubSignals& hs = state(hub);
    HubInbox& in = inbox(hs);
    for (;;) {
        const Mask accept = accepted_by(f);
        const Mask own = f->sig.pending.load(std::memory_order_relaxed) & accept;
        const Mask queued = arrived(hs).load(std::memory_order_acquire) & accept;
        DirectedSignal* list = in.directed.exchange(nullptr, std::memory_order_acquire);
        DirectedSignal** best = nullptr;
        DirectedSignal* last = nullptr;
        for (DirectedSignal** link = &list; *link; link = &(*link)->next) {
            last = *link;
            if (last->sig && last->target == f->id && (accept & bit(last->sig)) && (!best || last->sig < (*best)->sig))
                best = link;
        }
        const Mask ready = own | queued | (best ? bit((*best)->sig) : 0);
        const int sig = ready ? lowest(ready) : 0;
        siginfo_t info;
        bool take = sig != 0;
        if (sig && !(own & bit(sig)) && !(queued & bit(sig))) {
            DirectedSignal* d = *best;
            info = d->info;
            if (from_slab(d)) {
                *best = d->next;
                free_directed(d);
                last = nullptr;
                for (DirectedSignal* x = list; x; x = x->next) last = x;
            } else {
                d->sig = 0;  // freed by the hub thread later: no free() in signal context
            }
        }
        if (list) push_directed(in, list, last);
        if (!sig) break;
        if (own & bit(sig)) {
            info = take_pending(f, sig);
        } else if (queued & bit(sig)) {
            take = arrived(hs).fetch_and(~bit(sig), std::memory_order_acq_rel) & bit(sig);
            if (take) info = hs.info[sig - 1];
        }
        if (take) run_inline(hub, f, sig, &info, ucv, saved_errno);
    }
}

// The poke (a timer signal of the hub's own, kPokeSignal): something may be
// owed to the running fiber. Nothing runs in the hub's context: it looks
// before its next switch (switching_in), but it may have looked just
// before a sender's push whose poke lands here: then once more later.
void on_poke(void* ucv, int saved_errno) {
    Hub* hub = Hub::current();
    Fiber* f = Hub::current_fiber();
    if (!hub || !config::patched_if_known(config::kPatchSignal, true)) return;
    HubSignals& hs = state(hub);
    hs.poke_at.store(0, std::memory_order_relaxed);
    if (!f) {
        if (arrived(hs).load(std::memory_order_relaxed) || inbox(hs).directed.load(std::memory_order_relaxed))
            poke(hs, kPokeDelayNs);
        return;
    }
    const Mask accept = accepted_by(f);
    if (!((f->sig.pending.load(std::memory_order_relaxed) | arrived(hs).load(std::memory_order_acquire)) & accept) &&
        !directed_for(inbox(hs), f, accept))
        return;
    if (!in_program_code(ucv)) {
        poke(hs, kPokeDelayNs);
        return;
    }
    run_owed_inline(hub, f, ucv, saved_errno);
}

void on_signal(int sig, siginfo_t* info, void* ucv) {
    const int saved_errno = errno;
    if (sig == kPokeSignal && info->si_code == SI_TIMER && info->si_value.sival_ptr == &g_poke_marker) {
        on_poke(ucv, saved_errno);
        errno = saved_errno;
        return;
    }
    if (DiagnosticHook hook = g_diag_hook.load(std::memory_order_acquire); hook && hook(sig, info, ucv)) {
        errno = saved_errno;
        return;
    }
    Hub* hub = Hub::current();
    if (sig == kPoolKick && !hub && pool_kick_signal(info, ucv)) {
        errno = saved_errno;
        return;
    }
    Fiber* f = Hub::current_fiber();
    // A fault (caught with SA_ONSTACK: wraps_fault) is the running fiber's
    // and runs its handler now, wherever the fiber was; one in the hub's own
    // code is the thread's.
    const bool fault = bit(sig) & kSynchronous;
    if (!hub || !config::patched_if_known(config::kPatchSignal, true) || (fault && !f)) {
        // The main thread or another native thread (or the signal family is
        // not patched): as the kernel would.
        Action a = action(sig);
        if (a.handler == reinterpret_cast<void*>(SIG_DFL)) {
            default_action(sig);
        } else if (a.handler != reinterpret_cast<void*>(SIG_IGN)) {
            if (a.flags & SA_RESETHAND) reset_to_default(sig);
            InHandler in_handler;
            call_handler(sig, a, info, ucv);
        }
    } else if (fault || (f && (accepted_by(f) & bit(sig)) && in_program_code(ucv))) {
        run_inline(hub, f, sig, info, ucv, saved_errno);
    } else {
        queue_on_hub(hub, f, sig, info);
    }
    errno = saved_errno;
}

int note_text(dl_phdr_info* info, size_t, void*) {
    const uintptr_t ours = reinterpret_cast<uintptr_t>(&on_signal);
    const uintptr_t loop = reinterpret_cast<uintptr_t>(&ev_run);
    for (int pass = 0; pass < 2; ++pass) {
        bool holds = false;
        for (int i = 0; i < info->dlpi_phnum; ++i) {
            const ElfW(Phdr)& p = info->dlpi_phdr[i];
            if (p.p_type != PT_LOAD || !(p.p_flags & PF_X)) continue;
            uintptr_t lo = info->dlpi_addr + p.p_vaddr, hi = lo + p.p_memsz;
            if (pass == 0 && ((ours >= lo && ours < hi) || (loop >= lo && loop < hi))) holds = true;
            if (pass == 1) {
                int n = g_runtime_text_count.load(std::memory_order_relaxed);
                if (n < 8) {
                    g_runtime_text[n] = TextRange{lo, hi};
                    g_runtime_text_count.store(n + 1, std::memory_order_release);
                }
            }
        }
        if (!holds) break;
    }
    return 0;
}

// Routes a signal the hub's trampoline queued: a fiber waiting for it in
// sigwait, else one that accepts it (parked first: it is interrupted).
Fiber* choose(HubSignals& hs, int sig) {
    Fiber* parked = nullptr;
    Fiber* any = nullptr;
    for (Fiber* f = hs.head; f; f = f->sig.next) {
        if (f->sig.waiting & bit(sig)) return f;
        if (f->sig.blocked & bit(sig)) continue;
        if (!parked && f->state.load(std::memory_order_relaxed) == FiberState::parked) parked = f;
        if (!any) any = f;
    }
    return parked ? parked : any;
}

// Nobody on this hub accepts it any more (masks changed since the kernel
// chose this thread): block it here and give it back to the process, so
// the kernel picks another thread or keeps it pending for sigwait. The
// kernel refuses a queued signal claiming to come from kill() or tgkill()
// when not sent to the sender itself, so such info is re-marked SI_QUEUE
// (si_pid and si_uid keep their place).
void give_back(HubSignals& hs, int sig, siginfo_t info) {
    sync_kernel_mask(hs, true);
    if (!(hs.kernel_mask & bit(sig))) {
        hs.kernel_mask |= bit(sig);
        set_thread_mask(hs.kernel_mask);
    }
    if (info.si_code >= 0 || info.si_code == SI_TKILL) info.si_code = SI_QUEUE;
    long rc = native::sys(SYS_rt_sigqueueinfo, native::sys(SYS_getpid), sig, reinterpret_cast<long>(&info));
    if (rc < 0) native::sys(SYS_kill, native::sys(SYS_getpid), sig);
}

// A native caller's signal handler may itself send a signal: the sending
// path takes runtime locks, so it runs with the caller's signals blocked.
// (On a hub thread a handler never runs inside runtime code: in_runtime(),
// Critical.)
class SignalsHeld {
public:
    SignalsHeld() : active_(!Hub::current()) {
        if (!active_) return;
        const Mask all = ~Mask(0);
        native::sys(SYS_rt_sigprocmask, SIG_BLOCK, reinterpret_cast<long>(&all), reinterpret_cast<long>(&saved_), 8);
    }
    ~SignalsHeld() {
        if (active_) set_thread_mask(saved_);
    }
    SignalsHeld(const SignalsHeld&) = delete;
    SignalsHeld& operator=(const SignalsHeld&) = delete;

private:
    bool active_;
    Mask saved_ = 0;
};

// Delivers `sig` with `info` to the live fiber `id` of `hub`. On that hub's
// thread the fiber is acted on now; from elsewhere the signal goes into the
// hub's inbox, the hub's loop is woken (a parked fiber is interrupted
// there), and unless the fiber is parked, the hub is poked at once: it may
// be running it.
int deliver_to(Hub* hub, uint32_t id, int sig, const siginfo_t& info) {
    if (hub == Hub::current()) {
        Fiber* f = fiber_ids::on_this_hub(id);
        if (!f) return ESRCH;
        assign(f, sig, info);
        if (f == Hub::current_fiber())
            deliver_pending(f);
        else
            interrupt(f, sig);
        return 0;
    }
    DirectedSignal* d = new_directed();
    if (!d) return EAGAIN;
    d->target = id;
    d->sig = sig;
    d->info = info;
    HubSignals& hs = state(hub);
    push_directed(inbox(hs), d, d);
    hub->wake();
    // Read after the push (a locked instruction): a fiber seen parked here
    // is unparked later through a lock or a compare-and-swap, after which
    // its hub sees the push before switching to it (switching_in). By id,
    // not by Fiber*: a detached fiber may be gone by now.
    if (!fiber_ids::parked(id)) poke(hs, 1);
    return 0;
}

void forget(HubSignals& hs) {
    arrived(hs).store(0, std::memory_order_relaxed);
    // Pushed by threads that did not survive a fork, or freed with them.
    inbox(hs).directed.store(nullptr, std::memory_order_relaxed);
    // A fork child has none of its parent's timers.
    hs.poke_timer.store(-1, std::memory_order_relaxed);
    hs.poke_at.store(0, std::memory_order_relaxed);
    for (int& b : hs.blocking) b = 0;
    hs.fibers = 0;
    hs.kernel_mask = 0;
    hs.head = nullptr;
    hs.vforking = false;
    hs.alt_lo = hs.alt_hi = 0;
}

}  // namespace

// ---------------------------------------------------------------- records

bool intercepted(int sig) {
    if (sig < 1 || sig > kMaxSignal || sig == 32 || sig == 33) return false;
    return !(bit(sig) & (kSynchronous | bit(SIGKILL) | bit(SIGSTOP)));
}

Action action(int sig) {
    Action a;
    a.handler = g_handler[sig].load(std::memory_order_acquire);
    a.mask = g_mask[sig].load(std::memory_order_relaxed);
    a.flags = g_flags[sig].load(std::memory_order_relaxed);
    return a;
}

Action record(int sig, const Action& a) {
    Action old = action(sig);
    g_mask[sig].store(a.mask, std::memory_order_relaxed);
    g_flags[sig].store(a.flags, std::memory_order_relaxed);
    g_handler[sig].store(a.handler, std::memory_order_release);
    return old;
}

void* trampoline() { return reinterpret_cast<void*>(&on_signal); }

namespace {
std::atomic<long> g_owner_pid{0};  // the process whose records these are
}

bool in_memory_sharing_child() {
    const long owner = g_owner_pid.load(std::memory_order_relaxed);
    return owner && native::sys(SYS_getpid) != owner;
}

void prepare() {
    static std::atomic<int> done{0};
    int expected = 0;
    if (!done.compare_exchange_strong(expected, 1)) {
        while (done.load(std::memory_order_acquire) != 2) native::futex_wait(reinterpret_cast<std::atomic<uint32_t>*>(&done), 1, 1000000);
        return;
    }
    g_owner_pid.store(native::sys(SYS_getpid), std::memory_order_relaxed);
    dl_iterate_phdr(note_text, nullptr);
    // Dispositions inherited through exec (SIG_IGN survives it) were never
    // set through sigaction here: learn them from the kernel.
    for (int sig = 1; sig <= kMaxSignal; ++sig) {
        if (!intercepted(sig)) continue;
        KernelAction cur{};
        if (native::sys(SYS_rt_sigaction, sig, 0, reinterpret_cast<long>(&cur), 8) == 0 &&
            cur.handler == reinterpret_cast<void*>(SIG_IGN) && !g_handler[sig].load(std::memory_order_relaxed))
            g_handler[sig].store(cur.handler, std::memory_order_relaxed);
    }
    done.store(2, std::memory_order_release);
}

// ---------------------------------------------------------------- alternate stacks

int alt_stack(Fiber* f, const stack_t* ss, stack_t* old, uintptr_t sp) {
    // ss and old may be one object: read before writing, as the kernel.
    const stack_t want = ss ? *ss : stack_t{};
    const AltStack& a = f->sig.alt;
    if (old) {
        memset(old, 0, sizeof *old);
        old->ss_sp = a.sp;
        old->ss_size = a.size;
        old->ss_flags = alt_state(a, sp) | (a.flags & kAutoDisarm);
    }
    return ss ? set_alt(f->sig.alt, want, sp) : 0;
}

bool wraps_fault(int sig, int flags) {
    return sig >= 1 && sig <= kMaxSignal && (bit(sig) & kSynchronous) && (flags & SA_ONSTACK);
}

// ---------------------------------------------------------------- masks

Mask thread_mask() {
    Mask m = 0;
    native::sys(SYS_rt_sigprocmask, SIG_BLOCK, 0, reinterpret_cast<long>(&m), 8);
    return m;
}

Mask hub_thread_mask() {
    Hub* hub = Hub::current();
    return hub ? state(hub).kernel_mask : thread_mask();
}

bool set_mask(Fiber* f, Mask mask) {
    apply_mask(f, mask);
    return deliver_pending(f);
}

// ---------------------------------------------------------------- safe points

bool deliverable(const Fiber* f) {
    const Mask accept = accepted_by(f);
    return ((f->sig.pending.load(std::memory_order_relaxed) |
             g_inbox[f->hub->index()].arrived.load(std::memory_order_relaxed)) &
            accept) != 0;
}

bool deliver_pending(Fiber* f) {
    if (!f) return false;
    HubSignals& hs = state(f->hub);
    take_directed(hs);
    bool ran = false, restart = true;
    for (;;) {
        const Mask accept = accepted_by(f);
        if (Mask queued = arrived(hs).load(std::memory_order_acquire) & accept) claim(hs, f, queued);
        const Mask ready = f->sig.pending.load(std::memory_order_relaxed) & accept;
        if (!ready) break;
        const int sig = lowest(ready);
        siginfo_t info = take_pending(f, sig);
        const int flags = action(sig).flags;
        if (run_for_fiber(f, sig, &info)) {
            ran = true;
            restart = restart && (flags & SA_RESTART);
        }
    }
    if (ran) {
        f->sig.handler_ran = true;
        f->sig.handlers_restart = restart;
    }
    return ran;
}

bool restarts(Deadline deadline) {
    Fiber* f = Hub::current_fiber();
    if (!f) return false;
    // Interrupted with no handler run (ignored, a stop and continue):
    // nothing for the program to see, the call goes on.
    if (!f->sig.handler_ran) return true;
    return deadline.is_never() && f->sig.handlers_restart;
}

// ---------------------------------------------------------------- waits

int sleep_until(Deadline deadline) {
    Fiber* f = Hub::current_fiber();
    f->note_wait(WaitKind::sleep);
    while (!deadline.passed()) {
        f->hub->park(deadline);
        if (deliver_pending(f)) return EINTR;
    }
    return 0;
}

void suspend(Mask mask) {
    Fiber* f = Hub::current_fiber();
    const Mask saved = f->sig.blocked;
    apply_mask(f, mask);
    f->note_wait(WaitKind::signal);
    while (!deliver_pending(f)) f->hub->park();
    apply_mask(f, saved);
    deliver_pending(f);
}

int wait_for(Mask set, siginfo_t* info, Deadline deadline) {
    Fiber* f = Hub::current_fiber();
    HubSignals& hs = state(f->hub);
    set &= ~kUnblockable;
    int sfd = -1, result = 0;
    for (;;) {
        if (Mask queued = arrived(hs).load(std::memory_order_acquire) & set) claim(hs, f, queued);
        if (Mask own = f->sig.pending.load(std::memory_order_relaxed) & set) {
            result = lowest(own);
            const siginfo_t taken = take_pending(f, result);
            if (info) *info = taken;
            break;
        }
        // The process's pending signals (and the hub thread's): a signalfd
        // dequeues them, and the fiber parks on it like on any other fd.
        if (sfd < 0) {
            long fd = native::sys(SYS_signalfd4, -1, reinterpret_cast<long>(&set), 8, SFD_NONBLOCK | SFD_CLOEXEC);
            if (fd < 0) {
                diag::message("cannot create a signalfd for sigwait (errno %ld); waiting by polling", -fd);
                if (deadline.passed()) return -EAGAIN;
                Deadline tick = Deadline::after_ns(10000000);
                if (sleep_until(tick.mono_ns < deadline.mono_ns ? tick : deadline) == EINTR) return -EINTR;
                continue;
            }
            sfd = int(fd);
            if (FdEntry* e = FdTable::get().entry(sfd)) e->kind.store(FdKind::pollable, std::memory_order_release);
        }
        signalfd_siginfo ssi;
        if (native::sys(SYS_read, sfd, reinterpret_cast<long>(&ssi), sizeof ssi) == long(sizeof ssi)) {
            result = int(ssi.ssi_signo);
            if (info) {
                memset(info, 0, sizeof *info);
                info->si_signo = int(ssi.ssi_signo);
                info->si_errno = ssi.ssi_errno;
                info->si_code = ssi.ssi_code;
                info->si_pid = int(ssi.ssi_pid);
                info->si_uid = ssi.ssi_uid;
                if (ssi.ssi_signo == SIGCHLD) {
                    info->si_status = ssi.ssi_status;
                    info->si_utime = clock_t(ssi.ssi_utime);
                    info->si_stime = clock_t(ssi.ssi_stime);
                } else {
                    info->si_value.sival_ptr = reinterpret_cast<void*>(ssi.ssi_ptr);
                }
            }
            break;
        }
        f->sig.waiting = set;
        const int rc = wait_fd(sfd, kWaitRead, deadline);
        f->sig.waiting = 0;
        if (rc == EINTR) {
            result = -EINTR;
            break;
        }
        if (rc == ETIMEDOUT) {
            result = -EAGAIN;
            break;
        }
    }
    // glibc's sigwaitinfo/sigtimedwait report a tgkill()'s SI_TKILL as
    // SI_USER (raise() uses tgkill); so do we.
    if (result > 0 && info && info->si_code == SI_TKILL) info->si_code = SI_USER;
    if (sfd >= 0) {
        fd_closing(sfd);
        native::sys(SYS_close, sfd);
    }
    return result;
}

Mask pending_for(Fiber* f) {
    Mask k = 0;
    native::sys(SYS_rt_sigpending, reinterpret_cast<long>(&k), 8);
    return (f->sig.pending.load(std::memory_order_relaxed) | k) & f->sig.blocked;
}

int send_to_fiber(Fiber* f, int sig, const siginfo_t* info) {
    if (!intercepted(sig)) {
        // A fault signal or one we do not handle: the hub's thread, for real.
        long rc = native::sys(SYS_tgkill, native::sys(SYS_getpid), state(f->hub).tid, sig);
        return rc < 0 ? int(-rc) : 0;
    }
    const siginfo_t si = info ? *info : synthesized_info(sig, SI_TKILL);
    SignalsHeld held;
    return deliver_to(f->hub, f->id, sig, si);
}

int send_to_id(uint32_t id, int sig, const siginfo_t* info) {
    SignalsHeld held;
    Hub* hub = fiber_ids::hub_of(id);
    if (!hub) return ESRCH;
    if (sig == 0) return 0;
    if (!intercepted(sig)) {
        long rc = native::sys(SYS_tgkill, native::sys(SYS_getpid), state(hub).tid, sig);
        return rc < 0 ? int(-rc) : 0;
    }
    return deliver_to(hub, id, sig, info ? *info : synthesized_info(sig, SI_TKILL));
}

// ---------------------------------------------------------------- pool kick

namespace {
std::atomic<bool> g_pool_kick_installed{false};
}

bool pool_kick_ready() { return g_pool_kick_installed.load(std::memory_order_acquire); }
void set_pool_kick_installed() { g_pool_kick_installed.store(true, std::memory_order_release); }

// ---------------------------------------------------------------- exec

ChildMask child_mask_begin(bool keep_pending) {
    ChildMask cm;
    Fiber* f = Hub::current_fiber();
    if (!f || !f->sig.listed || !config::patched_if_known(config::kPatchSignal, true)) return cm;
    // A vfork child runs on its parent's fiber's memory but is its own
    // thread: its mask is what it set itself, and the fiber is not its.
    if (in_memory_sharing_child()) return cm;
    cm.fiber = f;
    // From here until child_mask_end a signal the fiber accepts still
    // reaches the trampoline, which queues it (the pc is in our code or
    // libc's exec, not the program's).
    set_thread_mask(f->sig.blocked);
    if (!keep_pending) return cm;
    const long pid = native::sys(SYS_getpid), tid = native::gettid();
    for (Mask m = f->sig.pending.load(std::memory_order_relaxed) & f->sig.blocked; m; m &= m - 1) {
        const int sig = lowest(m);
        // A thread may queue any info to itself (a real-time signal's
        // queue moves whole, in order).
        while (f->sig.pending.load(std::memory_order_relaxed) & bit(sig)) {
            siginfo_t info = info_of(f, sig);
            if (native::sys(SYS_rt_tgsigqueueinfo, pid, tid, sig, reinterpret_cast<long>(&info)) < 0) break;
            take_pending(f, sig);
            cm.moved |= bit(sig);
        }
    }
    return cm;
}

void child_mask_end(const ChildMask& cm) {
    Fiber* f = cm.fiber;
    if (!f) return;
    // The exec failed: the signals given to the kernel come back to the
    // fiber (they are blocked: rt_sigtimedwait with a zero timeout takes
    // each from the thread's pending set).
    for (Mask m = cm.moved; m; m &= m - 1) {
        const int sig = lowest(m);
        const Mask one = bit(sig);
        siginfo_t info;
        const struct timespec zero = {0, 0};
        while (native::sys(SYS_rt_sigtimedwait, reinterpret_cast<long>(&one), reinterpret_cast<long>(&info),
                           reinterpret_cast<long>(&zero), 8) == sig)
            assign(f, sig, info);
    }
    HubSignals& hs = state(f->hub);
    set_thread_mask(hs.kernel_mask);
}

void vfork_begin() {
    const ChildMask cm = child_mask_begin(false);
    if (cm.fiber) state(cm.fiber->hub).vforking = true;
}

void vfork_end() {
    Hub* hub = Hub::current();
    if (!hub) return;
    HubSignals& hs = state(hub);
    if (!hs.vforking || in_memory_sharing_child()) return;
    hs.vforking = false;
    set_thread_mask(hs.kernel_mask);
    // As natively, a signal that arrived during the vfork is handled before
    // it returns (here it was queued: the pc was in our code).
    deliver_pending(Hub::current_fiber());
}

// ---------------------------------------------------------------- hooks

void hub_thread_started(Hub* hub) {
    prepare();
    HubSignals& hs = state(hub);
    forget(hs);
    hs.tid = native::gettid();
    arm_hub_alt_stack(hs);
    create_poke_timer(hs);
    // Force the first write: the thread inherited its creator's mask.
    hs.kernel_mask = wanted_kernel_mask(hs);
    set_thread_mask(hs.kernel_mask);
}

void fiber_spawned(Fiber* f) {
    // pthread_create: the new thread starts with its creator's mask.
    if (Fiber* creator = Hub::current_fiber())
        f->sig.blocked = creator->sig.blocked;
    else
        f->sig.blocked = Hub::current() ? 0 : (thread_mask() & ~kUnblockable);
}

void fiber_started(Fiber* f) {
    HubSignals& hs = state(f->hub);
    f->sig.prev = nullptr;
    f->sig.next = hs.head;
    if (hs.head) hs.head->sig.prev = f;
    hs.head = f;
    f->sig.listed = true;
    hs.fibers += 1;
    count(hs, 0, f->sig.blocked);
    sync_kernel_mask(hs);
}

void fiber_exiting(Fiber* f) {
    if (!f->sig.listed) return;
    HubSignals& hs = state(f->hub);
    if (f->sig.prev)
        f->sig.prev->sig.next = f->sig.next;
    else
        hs.head = f->sig.next;
    if (f->sig.next) f->sig.next->sig.prev = f->sig.prev;
    f->sig.listed = false;
    count(hs, f->sig.blocked, 0);
    hs.fibers -= 1;
    sync_kernel_mask(hs);
}

void on_hub_wakeup(Hub* hub) {
    HubSignals& hs = state(hub);
    take_directed(hs);
    for (Mask m = arrived(hs).load(std::memory_order_acquire); m; m &= m - 1) {
        const int sig = lowest(m);
        if (!(arrived(hs).fetch_and(~bit(sig), std::memory_order_acq_rel) & bit(sig))) continue;
        const siginfo_t info = hs.info[sig - 1];
        if (Fiber* f = choose(hs, sig)) {
            assign(f, sig, info);
            interrupt(f, sig);
        } else {
            give_back(hs, sig, info);
        }
    }
}

void switching_in(Hub* hub, Fiber* f) {
    on_hub_wakeup(hub);
    // One it blocks needs no poke: unblocking it is a safe point.
    if (f->sig.pending.load(std::memory_order_relaxed) & ~f->sig.blocked)
        poke(state(hub), kPokeDelayNs);
    else
        f->sig_hint = false;
}

void reset_in_child(Fiber* forker) {
    if (g_owner_pid.load(std::memory_order_relaxed)) g_owner_pid.store(native::sys(SYS_getpid), std::memory_order_relaxed);
    for (HubSignals& hs : g_hubs) forget(hs);
    // Items posted to hubs that did not survive the fork are gone with them.
    for (auto& used : g_directed_used) used.store(0, std::memory_order_relaxed);
    // The child's only thread goes on natively, with the mask the forking
    // thread had, and (as fork does) no pending signals of its own.
    if (forker) {
        forker->sig.pending.store(0, std::memory_order_relaxed);
        if (forker->sig.rt_queue) forker->sig.rt_queue->count = 0;
        set_thread_mask(forker->sig.blocked);
        // And the alternate stack the forking thread had.
        stack_t ss{};
        ss.ss_sp = forker->sig.alt.sp;
        ss.ss_size = forker->sig.alt.size;
        ss.ss_flags = forker->sig.alt.size ? forker->sig.alt.flags : SS_DISABLE;
        native::sys(SYS_sigaltstack, reinterpret_cast<long>(&ss), 0);
    }
}

// ---------------------------------------------------------------- diagnostics

void set_diagnostic_hook(DiagnosticHook hook, Mask mask) {
    prepare();
    g_diag_hook.store(hook, std::memory_order_release);
    g_diag_mask.store(mask, std::memory_order_relaxed);
    for (int sig = 1; sig <= kMaxSignal; ++sig) {
        if (!(mask & bit(sig))) continue;
        KernelAction cur{};
        if (native::sys(SYS_rt_sigaction, sig, 0, reinterpret_cast<long>(&cur), 8) != 0) continue;
        if (cur.handler == trampoline()) continue;
        // The program's disposition so far (SIG_DFL, or SIG_IGN inherited
        // through exec) stays recorded: the trampoline applies it to the
        // signals the hook does not consume. libc's sigaction, not ours
        // (which would record the trampoline as the program's handler),
        // for the restorer x86_64 requires.
        struct sigaction sa{};
        sa.sa_sigaction = on_signal;
        sa.sa_flags = SA_SIGINFO | SA_RESTART | (sig == kPokeSignal ? 0 : SA_ONSTACK);
        sigemptyset(&sa.sa_mask);
        native::libc_sigaction(sig, &sa);
    }
}

bool diagnostic(int sig) {
    return sig >= 1 && sig <= kMaxSignal && (g_diag_mask.load(std::memory_order_relaxed) & bit(sig));
}

long hub_tid(Hub* hub) { return state(hub).tid; }

Fiber* first_fiber(Hub* hub) { return state(hub).head; }

}  // namespace greenld::signals
