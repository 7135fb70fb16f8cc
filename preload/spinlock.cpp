// pthread spinlocks that cannot deadlock a hub.
//
// glibc's spinlock spins on its word forever. Under the shim the holder may
// be a fiber parked on the spinner's own hub (it took the lock and then slept
// or waited for I/O): that fiber runs again only when the spinner gives the
// hub back, so a pure spin never ends. We spin briefly, for a holder running
// on another OS thread, then yield: a fiber to the other fibers of its hub
// (and the hub's timers and I/O), a native thread to the kernel.
//
// The word keeps glibc's meaning (0 free, 1 held), so a process-shared
// spinlock still excludes a process that is not under the shim; nothing here
// needs glibc's code.
#include <pthread.h>
#include <sys/syscall.h>

#include <atomic>
#include <cerrno>

#include "../runtime/hub.h"
#include "../runtime/native.h"
#include "next.h"

using namespace greenld;

namespace {

// A few microseconds of pause instructions at most: long enough for a holder
// on another core to finish a short critical section, short against a switch.
constexpr int kSpinsBeforeYield = 100;

std::atomic<int>* word(pthread_spinlock_t* lock) {
    return reinterpret_cast<std::atomic<int>*>(const_cast<int*>(lock));
}

bool try_acquire(std::atomic<int>* w) {
    int free_value = 0;
    return w->compare_exchange_strong(free_value, 1, std::memory_order_acquire, std::memory_order_relaxed);
}

void yield_processor() {
    if (Fiber* f = Hub::current_fiber())
        f->hub->yield();
    else
        native::sys(SYS_sched_yield);
}

}  // namespace

GREENLD_EXPORT int pthread_spin_init(pthread_spinlock_t* lock, int /*pshared: the word works either way*/) {
    word(lock)->store(0, std::memory_order_relaxed);
    return 0;
}

GREENLD_EXPORT int pthread_spin_destroy(pthread_spinlock_t*) { return 0; }

GREENLD_EXPORT int pthread_spin_lock(pthread_spinlock_t* lock) {
    std::atomic<int>* w = word(lock);
    while (!try_acquire(w)) {
        // Read-only while it is held: no cache-line ping-pong with the holder.
        for (int i = 0; i < kSpinsBeforeYield && w->load(std::memory_order_relaxed) != 0; ++i)
            __builtin_ia32_pause();
        if (w->load(std::memory_order_relaxed) != 0) yield_processor();
    }
    return 0;
}

GREENLD_EXPORT int pthread_spin_trylock(pthread_spinlock_t* lock) { return try_acquire(word(lock)) ? 0 : EBUSY; }

GREENLD_EXPORT int pthread_spin_unlock(pthread_spinlock_t* lock) {
    word(lock)->store(0, std::memory_order_release);
    return 0;
}
