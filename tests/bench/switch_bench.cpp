// switch_bench — the runtime's scheduling primitives in nanoseconds, next to
// what the same hand-off costs between two native threads.
//
// Links runtime/ directly (like tests/unit) and drives its API; no LD_PRELOAD.
// Prints one line of key=value pairs on stdout:
//   switch_ns            one greenld_context_switch (register save/restore)
//   yield_ns             one Hub::yield hand-off between two fibers of one hub
//                        (fiber -> hub -> other fiber: two switches, plus the
//                        hub's non-blocking loop poll every kRunBudget runs)
//   park_same_hub_ns     park/unpark round trip A -> B -> A, one hub
//   park_cross_hub_ns    the same with A and B on different hubs (eventfd
//                        wake-ups through the hubs' loops); -1 with one hub
//   native_same_cpu_ns   futex hand-off round trip between two native threads
//                        pinned to one CPU (two kernel context switches)
//   native_cross_cpu_ns  the same pinned to two CPUs; -1 with one CPU
//
// Usage: switch_bench [--scale F]   (iteration counts times F, default 1)
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "context.h"
#include "futex.h"
#include "hub.h"
#include "native.h"

using namespace greenld;

namespace {

double g_scale = 1.0;

long iterations(long base) {
    long n = long(double(base) * g_scale);
    return n < 10 ? 10 : n;
}

// ------------------------------------------------------------ raw switch

Context g_main_ctx, g_co_ctx;

[[noreturn]] void bounce_forever(void*) {
    for (;;) greenld_context_switch(&g_co_ctx, &g_main_ctx);
}

double bench_raw_switch() {
    static char stack[64 * 1024] __attribute__((aligned(64)));
    context_make(&g_co_ctx, stack + sizeof stack, bounce_forever, nullptr);
    const long n = iterations(5000000);
    greenld_context_switch(&g_main_ctx, &g_co_ctx);  // first entry, not timed
    uint64_t t0 = native::monotonic_ns();
    for (long i = 0; i < n; ++i) greenld_context_switch(&g_main_ctx, &g_co_ctx);
    uint64_t t1 = native::monotonic_ns();
    return double(t1 - t0) / double(2 * n);
}

// ------------------------------------------------------------ fibers
//
// Fibers land on the least loaded hub, so the benchmark cannot ask for a
// placement; it spawns three workers instead (two hubs: two of them share a
// hub, and two do not) and hands each a command once it knows where they run.

enum Command : uint32_t { kIdle, kYield, kParkInitiator, kParkResponder, kExit };

struct Worker {
    std::atomic<uint32_t> command{kIdle};
    std::atomic<Hub*> hub{nullptr};
    std::atomic<Fiber*> fiber{nullptr};
    Worker* partner = nullptr;
    long n = 0;
    uint64_t elapsed_ns = 0;
};

std::atomic<uint32_t> g_pending{0};  // workers that have not finished the current command
std::atomic<uint32_t> g_responder_parked{0};
std::atomic<bool> g_park_done{false};

void finished() {
    if (g_pending.fetch_sub(1) == 1) futex_wake(&g_pending, 1 << 30);
}

void wait_all_finished() {
    for (uint32_t v; (v = g_pending.load()) != 0;) futex_wait(&g_pending, v);
}

// Every unpark below succeeds by construction: a fiber unparks its partner
// only after preparing its own park, and is itself woken only by a partner
// that did the same, so the partner is always parked (or prepared) by then.
void park_initiator(Worker* w) {
    Hub* hub = Hub::current();
    Fiber* other = w->partner->fiber.load();
    // On one hub the responder runs only when this fiber lets the hub go.
    while (g_responder_parked.load(std::memory_order_acquire) == 0) {
        if (other->hub == hub)
            hub->yield();
        else
            sched_yield();
    }
    uint64_t t0 = native::monotonic_ns();
    for (long i = 0; i < w->n; ++i) {
        hub->prepare_park();
        if (!Hub::unpark(other)) abort();
        hub->park_prepared(Deadline::never());
    }
    w->elapsed_ns = native::monotonic_ns() - t0;
    g_park_done.store(true, std::memory_order_release);
    if (!Hub::unpark(other)) abort();
}

void park_responder(Worker* w) {
    Hub* hub = Hub::current();
    Fiber* other = w->partner->fiber.load();
    hub->prepare_park();
    g_responder_parked.store(1, std::memory_order_release);
    hub->park_prepared(Deadline::never());
    while (!g_park_done.load(std::memory_order_acquire)) {
        hub->prepare_park();
        if (!Hub::unpark(other)) abort();
        hub->park_prepared(Deadline::never());
    }
}

void* worker_main(void* arg) {
    auto* w = static_cast<Worker*>(arg);
    w->fiber.store(Hub::current_fiber());
    w->hub.store(Hub::current());
    finished();
    for (;;) {
        uint32_t cmd;
        while ((cmd = w->command.load()) == kIdle) futex_wait(&w->command, kIdle);
        w->command.store(kIdle);
        if (cmd == kExit) break;
        if (cmd == kYield) {
            uint64_t t0 = native::monotonic_ns();
            for (long i = 0; i < w->n; ++i) Hub::current()->yield();
            w->elapsed_ns = native::monotonic_ns() - t0;
        } else if (cmd == kParkInitiator) {
            park_initiator(w);
        } else if (cmd == kParkResponder) {
            park_responder(w);
        }
        finished();
    }
    finished();
    return nullptr;
}

void run_pair(Worker* a, uint32_t cmd_a, Worker* b, uint32_t cmd_b, long n) {
    a->partner = b;
    b->partner = a;
    a->n = b->n = n;
    g_responder_parked.store(0);
    g_park_done.store(false);
    g_pending.store(2);
    b->command.store(cmd_b);
    futex_wake(&b->command, 1);
    a->command.store(cmd_a);
    futex_wake(&a->command, 1);
    wait_all_finished();
}

// ------------------------------------------------------------ native threads

struct NativePair {
    std::atomic<uint32_t> turn{0};  // 0: the initiator's move, 1: the responder's
    long n = 0;
    int cpu[2] = {0, 0};
};

void kernel_futex_wait(std::atomic<uint32_t>* w, uint32_t v) {
    syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, v, nullptr, nullptr, 0);
}
void kernel_futex_wake(std::atomic<uint32_t>* w) { syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0); }

bool pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
}

void* native_responder(void* arg) {
    auto* p = static_cast<NativePair*>(arg);
    pin(p->cpu[1]);
    for (long i = 0; i < p->n; ++i) {
        while (p->turn.load() == 0) kernel_futex_wait(&p->turn, 0);
        p->turn.store(0);
        kernel_futex_wake(&p->turn);
    }
    return nullptr;
}

// Round trip ns, or -1 if the threads could not be pinned as asked.
double bench_native(int cpu_a, int cpu_b) {
    NativePair p;
    p.n = iterations(20000);
    p.cpu[0] = cpu_a;
    p.cpu[1] = cpu_b;
    cpu_set_t saved;
    pthread_getaffinity_np(pthread_self(), sizeof saved, &saved);
    if (!CPU_ISSET(cpu_a, &saved) || !CPU_ISSET(cpu_b, &saved) || !pin(cpu_a)) return -1;
    pthread_t t;
    if (pthread_create(&t, nullptr, native_responder, &p) != 0) return -1;
    uint64_t t0 = native::monotonic_ns();
    for (long i = 0; i < p.n; ++i) {
        p.turn.store(1);
        kernel_futex_wake(&p.turn);
        while (p.turn.load() == 1) kernel_futex_wait(&p.turn, 1);
    }
    uint64_t t1 = native::monotonic_ns();
    pthread_join(t, nullptr);
    pthread_setaffinity_np(pthread_self(), sizeof saved, &saved);
    return double(t1 - t0) / double(p.n);
}

}  // namespace

int main(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc) {
            g_scale = atof(argv[++i]);
            if (g_scale <= 0) g_scale = 1.0;
        } else {
            fprintf(stderr, "usage: %s [--scale F]\n", argv[0]);
            return 2;
        }
    }
    // Two hubs, so that both placements exist (the default is one per CPU).
    setenv("GREENLD_HUBS", "2", 0);

    const double switch_ns = bench_raw_switch();
    const double native_same = bench_native(0, 0);
    const double native_cross = bench_native(0, 1);

    Worker workers[3];
    g_pending.store(3);
    for (Worker& w : workers) {
        FiberOptions opts;
        opts.stack_size = 64 * 1024;
        Fiber* f = nullptr;
        int rc = Runtime::get().spawn(worker_main, &w, opts, &f);
        if (rc != 0) {
            fprintf(stderr, "switch_bench: spawn failed: %s\n", strerror(rc));
            return 1;
        }
    }
    wait_all_finished();

    Worker *same_a = nullptr, *same_b = nullptr, *cross_a = nullptr, *cross_b = nullptr;
    for (int i = 0; i < 3; ++i)
        for (int j = i + 1; j < 3; ++j) {
            bool same = workers[i].hub.load() == workers[j].hub.load();
            if (same && !same_a) same_a = &workers[i], same_b = &workers[j];
            if (!same && !cross_a) cross_a = &workers[i], cross_b = &workers[j];
        }
    if (!same_a) {
        fprintf(stderr, "switch_bench: no two fibers share a hub\n");
        return 1;
    }

    const long n_yield = iterations(2000000);
    run_pair(same_a, kYield, same_b, kYield, n_yield);
    // Each worker's elapsed time spans both workers' yields.
    const double yield_ns = double(same_a->elapsed_ns) / double(2 * n_yield);

    const long n_same = iterations(1000000);
    run_pair(same_a, kParkInitiator, same_b, kParkResponder, n_same);
    const double park_same = double(same_a->elapsed_ns) / double(n_same);

    double park_cross = -1;
    if (cross_a) {
        const long n_cross = iterations(20000);
        run_pair(cross_a, kParkInitiator, cross_b, kParkResponder, n_cross);
        park_cross = double(cross_a->elapsed_ns) / double(n_cross);
    }

    g_pending.store(3);
    for (Worker& w : workers) {
        w.command.store(kExit);
        futex_wake(&w.command, 1);
    }
    wait_all_finished();

    printf("switch_ns=%.1f yield_ns=%.1f park_same_hub_ns=%.1f park_cross_hub_ns=%.1f "
           "native_same_cpu_ns=%.1f native_cross_cpu_ns=%.1f\n",
           switch_ns, yield_ns, park_same, park_cross, native_same, native_cross);
    return 0;
}
