#include "monitor.h"

#define UNW_LOCAL_ONLY
#include <dlfcn.h>
#include <ev.h>
#include <libunwind.h>
#include <signal.h>
#include <sys/syscall.h>
#include <ucontext.h>

#include <atomic>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "config.h"
#include "diag.h"
#include "fiber.h"
#include "futex.h"
#include "hub.h"
#include "io.h"
#include "native.h"
#include "pool.h"
#include "signals.h"

extern "C" char greenld_context_switch_end[];

namespace greenld::monitor {

namespace {

// ---------------------------------------------------------------- output

// Lines of a report after its "greenld:" heading: unprefixed, so that each
// fiber's line starts with "fiber <id>".
void raw_line(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void raw_line(const char* fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    size_t len = size_t(n) < sizeof buf - 1 ? size_t(n) : sizeof buf - 2;
    buf[len++] = '\n';
    native::sys(SYS_write, 2, reinterpret_cast<long>(buf), long(len));
}

// ---------------------------------------------------------------- libunwind

struct Unwinder {
    decltype(&unw_init_local2) init = nullptr;
    decltype(&unw_step) step = nullptr;
    decltype(&unw_get_reg) get_reg = nullptr;
    decltype(&unw_get_proc_name) proc_name = nullptr;
    bool tried = false;

    // On the monitor thread, on first need.
    bool load() {
        if (tried) return init != nullptr;
        tried = true;
        void* h = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            diag::message("cannot load libunwind.so.8 (%s): reports come without backtraces", dlerror());
            return false;
        }
        step = reinterpret_cast<decltype(step)>(dlsym(h, "_ULx86_64_step"));
        get_reg = reinterpret_cast<decltype(get_reg)>(dlsym(h, "_ULx86_64_get_reg"));
        proc_name = reinterpret_cast<decltype(proc_name)>(dlsym(h, "_ULx86_64_get_proc_name"));
        init = reinterpret_cast<decltype(init)>(dlsym(h, "_ULx86_64_init_local2"));
        if (!step || !get_reg || !proc_name) init = nullptr;
        if (!init) diag::message("libunwind.so.8 lacks unw_init_local2: reports come without backtraces");
        return init != nullptr;
    }
};
Unwinder g_unwind;

constexpr int kMaxFrames = 24;

const char* object_name(uintptr_t ip) {
    Dl_info dl{};
    if (!dladdr(reinterpret_cast<void*>(ip), &dl) || !dl.dli_fname || !*dl.dli_fname) return "?";
    const char* slash = strrchr(dl.dli_fname, '/');
    return slash ? slash + 1 : dl.dli_fname;
}

void print_backtrace(ucontext_t* uc, bool signal_frame) {
    if (!g_unwind.load()) return;
    unw_cursor_t c;
    if (g_unwind.init(&c, reinterpret_cast<unw_context_t*>(uc), signal_frame ? UNW_INIT_SIGNAL_FRAME : 0) < 0) {
        raw_line("    (no backtrace: libunwind cannot start from this context)");
        return;
    }
    for (int i = 0; i < kMaxFrames; ++i) {
        unw_word_t ip = 0, off = 0;
        if (g_unwind.get_reg(&c, UNW_REG_IP, &ip) < 0 || ip == 0) break;
        char name[200];
        if (g_unwind.proc_name(&c, name, sizeof name, &off) == 0)
            raw_line("    #%d 0x%" PRIxPTR " %s+0x%" PRIxPTR " (%s)", i, uintptr_t(ip), name, uintptr_t(off),
                     object_name(ip));
        else
            raw_line("    #%d 0x%" PRIxPTR " ?? (%s)", i, uintptr_t(ip), object_name(ip));
        if (g_unwind.step(&c) <= 0) break;
    }
}

// The registers a suspended fiber left on its stack (context_x86_64.S).
bool fiber_context(const Fiber* f, ucontext_t* uc) {
    auto* sp = static_cast<uint64_t*>(f->ctx.sp);
    if (!sp || !f->stack.contains(sp) || !f->stack.contains(sp + 7)) return false;
    memset(uc, 0, sizeof *uc);
    greg_t* r = uc->uc_mcontext.gregs;
    r[REG_R15] = greg_t(sp[1]);
    r[REG_R14] = greg_t(sp[2]);
    r[REG_R13] = greg_t(sp[3]);
    r[REG_R12] = greg_t(sp[4]);
    r[REG_RBX] = greg_t(sp[5]);
    r[REG_RBP] = greg_t(sp[6]);
    r[REG_RIP] = greg_t(sp[7]);
    r[REG_RSP] = greg_t(reinterpret_cast<uintptr_t>(sp + 8));
    return true;
}

// ---------------------------------------------------------------- stopping a hub

// The monitor stops a hub thread by sending it kSampleSignal; the handler
// publishes the interrupted context and waits until released (at most
// kMaxStop, so that a stuck monitor cannot stall the program for good).
enum : uint32_t { kIdle, kRequested, kStopped, kReleased };
struct Sample {
    std::atomic<uint32_t> state{kIdle};
    ucontext_t* uc = nullptr;
    Fiber* running = nullptr;
};
Sample g_samples[Runtime::kMaxHubs];
constexpr int64_t kMaxStop = 2000000000, kStopWait = 500000000;

// Held around every stop-read-release sequence: the monitor thread (dumps,
// blocked-hub reports) and hub 0 (the deadlock check) share g_samples.
native::Mutex g_stop_lock;

std::atomic<uint32_t> g_dump_requests{0};
int g_dump_signal = 0;

bool on_signal(int sig, siginfo_t* info, void* ucv) {
    if (sig == g_dump_signal) {
        g_dump_requests.fetch_add(1, std::memory_order_release);
        native::futex_wake(&g_dump_requests, 1);
        return true;
    }
    if (sig != config::kSampleSignal) return false;
    Hub* hub = Hub::current();
    // Ours only (queued by stop_hub with g_samples as its value); the
    // program's own use of the signal goes on as usual.
    if (!hub || info->si_code != SI_QUEUE || info->si_pid != native::sys(SYS_getpid) ||
        info->si_value.sival_ptr != static_cast<void*>(g_samples))
        return false;
    Sample& s = g_samples[hub->index()];
    // A stop given up before the signal arrived: nothing to do.
    if (s.state.load(std::memory_order_acquire) != kRequested) return true;
    s.uc = static_cast<ucontext_t*>(ucv);
    s.running = Hub::current_fiber();
    uint32_t expected = kRequested;
    if (!s.state.compare_exchange_strong(expected, kStopped, std::memory_order_acq_rel)) return true;
    native::futex_wake(&s.state, 1);
    const uint64_t until = native::monotonic_ns() + kMaxStop;
    while (s.state.load(std::memory_order_acquire) == kStopped) {
        const uint64_t now = native::monotonic_ns();
        if (now >= until) break;
        native::futex_wait(&s.state, kStopped, int64_t(until - now));
    }
    s.state.store(kIdle, std::memory_order_release);
    return true;
}

void release_hub(int i) {
    Sample& s = g_samples[i];
    uint32_t expected = kStopped;
    if (s.state.compare_exchange_strong(expected, kReleased, std::memory_order_acq_rel)) native::futex_wake(&s.state, 1);
}

bool in_switch(const Sample& s) {
    const auto pc = uintptr_t(s.uc->uc_mcontext.gregs[REG_RIP]);
    return pc >= reinterpret_cast<uintptr_t>(&greenld_context_switch) &&
           pc < reinterpret_cast<uintptr_t>(greenld_context_switch_end);
}

// Stops hub i; false if it did not stop in time (it blocks the signal, or
// sits in an uninterruptible kernel wait).
bool stop_hub(int i) {
    Hub* hub = Runtime::get().hub(i);
    const long tid = hub ? signals::hub_tid(hub) : 0;
    if (!tid) return false;
    Sample& s = g_samples[i];
    const long pid = native::sys(SYS_getpid);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_signo = config::kSampleSignal;
    si.si_code = SI_QUEUE;
    si.si_pid = int(pid);
    si.si_uid = unsigned(native::sys(SYS_getuid));
    si.si_value.sival_ptr = static_cast<void*>(g_samples);
    for (int attempt = 0; attempt < 20; ++attempt) {
        // The previous stop's handler may still be on its way out.
        for (int w = 0; w < 1000 && s.state.load(std::memory_order_acquire) != kIdle; ++w)
            native::futex_wait(&s.state, s.state.load(std::memory_order_acquire), 1000000);
        if (s.state.load(std::memory_order_acquire) != kIdle) return false;
        s.state.store(kRequested, std::memory_order_release);
        if (native::sys(SYS_rt_tgsigqueueinfo, pid, tid, config::kSampleSignal, reinterpret_cast<long>(&si)) != 0) {
            s.state.store(kIdle, std::memory_order_release);
            return false;
        }
        const uint64_t until = native::monotonic_ns() + kStopWait;
        while (s.state.load(std::memory_order_acquire) == kRequested) {
            const uint64_t now = native::monotonic_ns();
            if (now >= until) break;
            native::futex_wait(&s.state, kRequested, int64_t(until - now));
        }
        uint32_t expected = kRequested;
        if (s.state.compare_exchange_strong(expected, kIdle, std::memory_order_acq_rel)) return false;
        if (expected != kStopped) return false;
        // Stopped mid-switch: the saved stack pointers are not all current.
        if (!in_switch(s)) return true;
        release_hub(i);
    }
    return false;
}

// ---------------------------------------------------------------- the dump

const char* events_name(unsigned events) {
    const bool r = events & kWaitRead, w = events & kWaitWrite;
    return r && w ? "read and write" : w ? "write" : "read";
}

void print_fiber(Hub* hub, Fiber* f, bool running, double now) {
    char state[200];
    const WaitInfo& wi = f->waiting;
    if (running) {
        snprintf(state, sizeof state, "running");
    } else if (f->state.load(std::memory_order_relaxed) == FiberState::runnable) {
        snprintf(state, sizeof state, "runnable");
    } else {
        switch (wi.kind) {
            case WaitKind::fd: snprintf(state, sizeof state, "parked on fd %ld for %s", wi.fd, events_name(wi.events)); break;
            case WaitKind::fds: snprintf(state, sizeof state, "parked on %u fds (fd %ld first)", wi.events, wi.fd); break;
            case WaitKind::futex:
                if (wi.joining)
                    snprintf(state, sizeof state, "joining fiber %u", wi.joining);
                else
                    snprintf(state, sizeof state, "waiting on futex/mutex at %p", wi.addr);
                break;
            case WaitKind::sleep: snprintf(state, sizeof state, "sleeping"); break;
            case WaitKind::signal: snprintf(state, sizeof state, "waiting for a signal"); break;
            case WaitKind::offload: snprintf(state, sizeof state, "waiting for a call run on the blocking-call pool"); break;
            default: snprintf(state, sizeof state, "parked"); break;
        }
        size_t len = strlen(state);
        if (ev_is_active(&f->timer))
            len += size_t(snprintf(state + len, sizeof state - len, ", wakes in %.3f s",
                                   ev_timer_remaining(hub->loop(), &f->timer)));
        snprintf(state + len, sizeof state - len, ", for %.3f s", now - f->parked_since);
    }
    raw_line("fiber %u%s%s%s %s", f->id, f->name[0] ? " \"" : "", f->name, f->name[0] ? "\"" : "", state);
    ucontext_t uc;
    if (running)
        print_backtrace(g_samples[hub->index()].uc, true);
    else if (fiber_context(f, &uc))
        print_backtrace(&uc, false);
    else
        raw_line("    (no backtrace: its saved stack pointer is outside its stack)");
}

// Hub i is stopped.
void print_hub(int i) {
    Hub* hub = Runtime::get().hub(i);
    const Sample& s = g_samples[i];
    char what[64];
    if (s.running)
        snprintf(what, sizeof what, "running fiber %u", s.running->id);
    else
        snprintf(what, sizeof what, "%s", hub->polling.load(std::memory_order_relaxed) ? "idle" : "in its own code");
    raw_line("hub %d (thread %ld): %s; %" PRId64 " fibers alive, %" PRIu64 " switches, %" PRIu64 " parks", i,
             signals::hub_tid(hub), what, hub->fibers_alive.load(std::memory_order_relaxed),
             hub->switches.load(std::memory_order_relaxed), hub->parks.load(std::memory_order_relaxed));
    const double now = ev_time();
    if (s.running) print_fiber(hub, s.running, true, now);
    for (Fiber* f = signals::first_fiber(hub); f; f = f->sig.next)
        if (f != s.running) print_fiber(hub, f, false, now);
}

int hub_count() {
    Runtime& rt = Runtime::get();
    return rt.started() ? rt.hub_count() : 0;
}

void print_counters(const char* heading) {
    Runtime& rt = Runtime::get();
    uint64_t switches = 0, parks = 0;
    int64_t alive = 0;
    const int n = hub_count();
    for (int i = 0; i < n; ++i) {
        switches += rt.hub(i)->switches.load(std::memory_order_relaxed);
        parks += rt.hub(i)->parks.load(std::memory_order_relaxed);
        alive += rt.hub(i)->fibers_alive.load(std::memory_order_relaxed);
    }
    const int64_t natives = rt.program_threads.load(std::memory_order_relaxed) - alive;
    diag::write_line("%s: %d hubs; fibers created %" PRIu64 ", alive %" PRId64 "; switches %" PRIu64
                     ", parks %" PRIu64 ", offloaded calls %" PRIu64 "; native threads of the program %" PRId64
                     " (%d waiting on fiber locks with no deadline)",
                     heading, n, rt.fibers_created.load(std::memory_order_relaxed), alive, switches, parks,
                     BlockingPool::get().offloaded.load(std::memory_order_relaxed), natives,
                     futex_native_waiters_forever());
}

void dump(const char* heading) {
    native::LockGuard g(g_stop_lock);
    print_counters(heading);
    const int n = hub_count();
    for (int i = 0; i < n; ++i) {
        if (!stop_hub(i)) {
            raw_line("hub %d (thread %ld): did not stop within %.1f s; its fibers are not listed", i,
                     signals::hub_tid(Runtime::get().hub(i)), double(kStopWait) / 1e9);
            continue;
        }
        print_hub(i);
        release_hub(i);
    }
    diag::write_line("end of fiber dump");
}

// ---------------------------------------------------------------- blocked hubs

uint64_t g_max_blocking_ns = 0;

struct Watch {
    uint64_t switches = 0;
    uint64_t since_ns = 0;
    bool reported = false;
};
Watch g_watch[Runtime::kMaxHubs];

void report_blocked(int i, uint64_t blocked_ns) {
    Hub* hub = Runtime::get().hub(i);
    const long tid = signals::hub_tid(hub);
    const double secs = double(blocked_ns) / 1e9, max = double(g_max_blocking_ns) / 1e9;
    native::LockGuard g(g_stop_lock);
    if (!stop_hub(i)) {
        diag::write_line("hub %d (thread %ld) has not switched fibers for %.3f s (max blocking time %.3f s); it did "
                         "not stop to show a backtrace", i, tid, secs, max);
        return;
    }
    const Sample& s = g_samples[i];
    if (s.running)
        diag::write_line("hub %d (thread %ld) has not switched fibers for %.3f s (max blocking time %.3f s): fiber "
                         "%u%s%s%s runs without yielding (a CPU loop, or a call greenld does not make cooperative):",
                         i, tid, secs, max, s.running->id, s.running->name[0] ? " \"" : "", s.running->name,
                         s.running->name[0] ? "\"" : "");
    else
        diag::write_line("hub %d (thread %ld) has not switched fibers for %.3f s (max blocking time %.3f s), in its "
                         "own code:", i, tid, secs, max);
    print_backtrace(s.uc, true);
    release_hub(i);
}

void watch_hubs(uint64_t now) {
    const int n = hub_count();
    for (int i = 0; i < n; ++i) {
        Hub* hub = Runtime::get().hub(i);
        Watch& w = g_watch[i];
        const uint64_t sw = hub->switches.load(std::memory_order_relaxed);
        if (hub->polling.load(std::memory_order_relaxed) || sw != w.switches || !w.since_ns) {
            w.switches = sw;
            w.since_ns = now;
            w.reported = false;
            continue;
        }
        if (!w.reported && now - w.since_ns >= g_max_blocking_ns) {
            report_blocked(i, now - w.since_ns);
            w.reported = true;
        }
    }
}

// ---------------------------------------------------------------- deadlocks

// A check stops every hub, so it runs once per quiet spell: after the
// whole process has not switched for kQuiet, and not again until it has.
constexpr uint64_t kQuiet = 900000000;
uint64_t g_quiet_switches = ~0ull, g_quiet_since = 0, g_checked_switches = ~0ull;

// With every hub stopped: does each fiber wait on a futex with no deadline,
// and each native thread of the program on the fiber futex likewise?
bool deadlocked(int n, int64_t* fibers, int64_t* natives) {
    Runtime& rt = Runtime::get();
    int64_t listed = 0, alive = 0;
    for (int i = 0; i < n; ++i) {
        Hub* hub = rt.hub(i);
        if (g_samples[i].running || !hub->polling.load(std::memory_order_relaxed)) return false;
        alive += hub->fibers_alive.load(std::memory_order_relaxed);
        for (Fiber* f = signals::first_fiber(hub); f; f = f->sig.next) {
            ++listed;
            if (f->state.load(std::memory_order_acquire) != FiberState::parked) return false;
            if (f->waiting.kind != WaitKind::futex || ev_is_active(&f->timer)) return false;
        }
    }
    // Fibers not started yet are runnable.
    if (listed == 0 || listed != alive) return false;
    *fibers = listed;
    *natives = rt.program_threads.load(std::memory_order_acquire) - alive;
    return *natives == futex_native_waiters_forever();
}

// On hub `self` (in its own context, its fibers suspended): the other hubs
// are stopped around the census.
void check_deadlock(int self, uint64_t now) {
    const int n = hub_count();
    if (n == 0) return;
    Runtime& rt = Runtime::get();
    uint64_t total = 0;
    for (int i = 0; i < n; ++i) {
        if (!rt.hub(i)->polling.load(std::memory_order_relaxed)) {
            g_quiet_switches = ~0ull;
            return;
        }
        total += rt.hub(i)->switches.load(std::memory_order_relaxed);
    }
    if (total != g_quiet_switches) {
        g_quiet_switches = total;
        g_quiet_since = now;
        return;
    }
    if (now - g_quiet_since < kQuiet || total == g_checked_switches) return;
    g_checked_switches = total;
    native::LockGuard g(g_stop_lock);
    g_samples[self].running = nullptr;
    // Stopped one by one; all idle, so none can wake another meanwhile.
    bool all = true;
    for (int i = 0; i < n && all; ++i)
        if (i != self && !stop_hub(i)) all = false;
    int64_t fibers = 0, natives = 0;
    if (all && deadlocked(n, &fibers, &natives)) {
        diag::message("deadlock: all %" PRId64 " fibers and %" PRId64 " native threads of the program wait on locks "
                      "or joins with no deadline, and no fd, timer or signal wait can end them; the program is left "
                      "running (a signal handler may still release it)",
                      fibers, natives);
        if (config::log_level() >= config::LogLevel::warning) {
            print_counters("fiber dump (deadlock)");
            for (int i = 0; i < n; ++i) print_hub(i);
            diag::write_line("end of fiber dump");
        }
    }
    for (int i = 0; i < n; ++i)
        if (i != self) release_hub(i);
}

// ---------------------------------------------------------------- the thread

std::atomic<long> g_running_in{0};  // pid whose monitor thread runs

void* monitor_main(void*) {
    // Never a target for the program's process-directed signals.
    uint64_t all = ~0ull;
    native::sys(SYS_rt_sigprocmask, SIG_SETMASK, reinterpret_cast<long>(&all), 0, 8);
    uint64_t period = 250000000;
    if (g_max_blocking_ns && g_max_blocking_ns / 4 < period) period = g_max_blocking_ns / 4;
    uint32_t seen = g_dump_requests.load(std::memory_order_acquire);
    for (;;) {
        native::futex_wait(&g_dump_requests, seen, int64_t(period));
        const uint32_t requests = g_dump_requests.load(std::memory_order_acquire);
        if (requests != seen) {
            seen = requests;
            char heading[64];
            snprintf(heading, sizeof heading, "fiber dump (signal %d)", g_dump_signal);
            dump(heading);
        }
        const uint64_t now = native::monotonic_ns();
        if (g_max_blocking_ns) watch_hubs(now);
    }
    return nullptr;
}

void start_thread() {
    const long pid = native::sys(SYS_getpid);
    if (g_running_in.exchange(pid) == pid) return;
    for (Sample& s : g_samples) s.state.store(kIdle, std::memory_order_relaxed);
    for (Watch& w : g_watch) w = Watch{};
    int err = 0;
    if (!native::start_thread(monitor_main, nullptr, &err)) {
        g_running_in.store(0);
        diag::message("cannot start the monitor thread (errno %d): no blocked-hub reports, dumps or deadlock "
                      "warnings", err);
    }
}

std::atomic<bool> g_hooked{false};

void install_hook() {
    if (g_hooked.exchange(true)) return;
    signals::Mask mask = signals::bit(config::kSampleSignal);
    if (g_dump_signal) mask |= signals::bit(g_dump_signal);
    signals::set_diagnostic_hook(on_signal, mask);
}

}  // namespace

void start() {
    g_dump_signal = config::dump_signal();
    g_max_blocking_ns = config::max_blocking_time_ns();
    if (!g_dump_signal && !g_max_blocking_ns) return;
    install_hook();
    start_thread();
}

void hubs_starting() {
    install_hook();
    // Again in a fork child that starts hubs: the parent's monitor thread
    // did not survive the fork.
    if (g_dump_signal || g_max_blocking_ns) start_thread();
}

void deadlock_tick(Hub* hub) { check_deadlock(hub->index(), native::monotonic_ns()); }

}  // namespace greenld::monitor
