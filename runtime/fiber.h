// A fiber: what a converted pthread becomes. It lives on one hub for life
// (compilers cache TLS addresses such as &errno across calls, so a fiber
// must never resume on another OS thread).
#pragma once

#include <ev.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "cancel.h"
#include "context.h"
#include "signals.h"
#include "stack.h"
#include "tsd.h"

namespace greenld {

class Hub;

enum class FiberState : uint32_t {
    running,   // executing on its hub
    runnable,  // in its hub's run queue (or on the way there)
    parked,    // waiting; exactly one unpark() moves it to runnable
    dead,      // its start routine returned or it called pthread_exit
};

enum class WakeReason : uint8_t {
    none,
    woken,      // by unpark(): I/O ready, futex wake, join, spawn
    timeout,    // its park deadline passed
    cancelled,  // cancel_wait() or the fd was closed: see wake_error
    interrupted,  // a signal or pthread_cancel for this fiber arrived during the park
};

// What a parked fiber waits for, for the fiber dump (monitor.cpp). Set by
// each kind of wait around its park with plain stores; read only while the
// fiber's hub is stopped by the monitor.
enum class WaitKind : uint8_t { none, fd, fds, futex, sleep, signal, offload };
struct WaitInfo {
    WaitKind kind = WaitKind::none;
    unsigned events = 0;      // fd: kWaitRead/kWaitWrite (io.h); fds: how many
    long fd = -1;             // fd, fds: the (first) descriptor
    const void* addr = nullptr;  // futex: the word
    uint32_t joining = 0;     // in pthread_join: the fiber it waits for (kept across note_wait)
};

// Node of a hub's cross-thread queue. `run` is called on the target hub.
struct RemoteItem {
    RemoteItem* next = nullptr;
    void (*run)(Hub* hub, RemoteItem* item) = nullptr;
};

class Fiber {
public:
    // First word of every Fiber. A pthread_t we hand out is a Fiber*; glibc's
    // own pthread_t points at a struct pthread whose first word points to
    // itself, so this magic tells the two apart without a registry.
    static constexpr uint64_t kMagic = 0x21646c6e65657267ull;  // "greenld!"
    const uint64_t magic = kMagic;

    static Fiber* from_handle(const void* handle) {
        auto* f = static_cast<const Fiber*>(handle);
        return (f && f->magic == kMagic) ? const_cast<Fiber*>(f) : nullptr;
    }

    uint32_t id = 0;          // also the owner id stored in mutexes
    Hub* hub = nullptr;
    Context ctx;
    Stack stack;

    std::atomic<FiberState> state{FiberState::runnable};
    WakeReason wake_reason = WakeReason::none;
    // A signal may be pending for it (signals.cpp sets it with sig.pending,
    // its hub clears it when none is owed): what the switch reads, on the
    // cache line it touches anyway, rather than sig.
    bool sig_hint = false;
    int wake_error = 0;
    ev_timer timer;           // the deadline of the current park
    RemoteItem remote;        // how another hub hands it back to its own hub
    Fiber* runq_next = nullptr;

    void* (*start)(void*) = nullptr;
    void* arg = nullptr;
    void* result = nullptr;

    // Set to 1 (and futex-woken) once the fiber is dead and its stack freed:
    // what pthread_join waits on.
    std::atomic<uint32_t> exited{0};
    static constexpr uint32_t kDetached = 1, kFinished = 2;
    std::atomic<uint32_t> lifecycle{0};

    signals::FiberSignals sig;  // mask, pending signals, why a wait was interrupted
    cancel::FiberCancel cancel;  // pthread_cancel request, cancel state/type, cleanup buffers
    tsd::Table tsd;
    // Robust mutexes the fiber holds, released as "owner died" if it ends
    // holding them (preload/robust_mutex.cpp), as the kernel does for a
    // thread's robust list.
    void* robust_list = nullptr;
    // How many robust mutexes of glibc's protocol (process-shared or
    // priority-inheritance) it holds: those sit on its hub thread's own
    // robust list (preload/kernel_mutex.cpp).
    uint32_t kernel_robust_held = 0;
    // Its copy of the compiled static TLS (fiber_tls.h), with
    // GREENLD_FIBER_TLS=1; null otherwise.
    void* tls_image = nullptr;
    char name[16] = {};
    uint64_t created_ns = 0;
    WaitInfo waiting;
    double parked_since = 0;  // its hub's ev_now() when it last parked

    void note_wait(WaitKind kind, long fd = -1, unsigned events = 0, const void* addr = nullptr) {
        waiting.kind = kind;
        waiting.fd = fd;
        waiting.events = events;
        waiting.addr = addr;
    }

    Fiber() = default;
    Fiber(const Fiber&) = delete;
    Fiber& operator=(const Fiber&) = delete;
};

// Fiber ids live above any Linux tid (pid_max is at most 2^22), so a mutex
// owner field can hold either without ambiguity.
constexpr uint32_t kFirstFiberId = 0x40000000u;

}  // namespace greenld
