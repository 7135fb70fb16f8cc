#include "robust_mutex.h"

#include <atomic>
#include <climits>

#include "../runtime/fiber.h"
#include "../runtime/futex.h"
#include "../runtime/hub.h"
#include "kernel_mutex.h"
#include "next.h"

using namespace greenld;

namespace greenld::robust {

namespace {

// The list is doubly linked through __list.__prev/__next, which point at
// the neighbouring pthread_mutex_t; the head is Fiber::robust_list. Only
// the holder touches its list, on its own hub thread.
using Node = __pthread_internal_list;
pthread_mutex_t* next_of(pthread_mutex_t* m) { return reinterpret_cast<pthread_mutex_t*>(m->__data.__list.__next); }
pthread_mutex_t* prev_of(pthread_mutex_t* m) { return reinterpret_cast<pthread_mutex_t*>(m->__data.__list.__prev); }
void set_next(pthread_mutex_t* m, pthread_mutex_t* n) { m->__data.__list.__next = reinterpret_cast<Node*>(n); }
void set_prev(pthread_mutex_t* m, pthread_mutex_t* p) { m->__data.__list.__prev = reinterpret_cast<Node*>(p); }

// The fiber ends holding these: each is released as "owner died" and one
// waiter woken, who will take it and see EOWNERDEAD.
void release_all(Fiber* f) {
    kernel_mutex::release_held(f);
    auto* m = static_cast<pthread_mutex_t*>(f->robust_list);
    f->robust_list = nullptr;
    while (m) {
        pthread_mutex_t* next = next_of(m);
        set_next(m, nullptr);
        set_prev(m, nullptr);
        if (state(m) != kNotRecoverable) set_state(m, kOwnerDied);
        __atomic_store_n(&m->__data.__owner, 0, __ATOMIC_RELAXED);
        m->__data.__count = 0;
        auto* word = reinterpret_cast<std::atomic<uint32_t>*>(&m->__data.__lock);
        if (word->exchange(0, std::memory_order_release) == 2) futex_wake(word, 1);
        m = next;
    }
}

}  // namespace

void link(pthread_mutex_t* m) {
    Fiber* f = Hub::identity();
    if (!f) return;  // native threads: their exit is the process's, in practice
    auto* head = static_cast<pthread_mutex_t*>(f->robust_list);
    set_prev(m, nullptr);
    set_next(m, head);
    if (head) set_prev(head, m);
    f->robust_list = m;
}

void unlink(pthread_mutex_t* m) {
    Fiber* f = Hub::identity();
    if (!f) return;
    pthread_mutex_t* prev = prev_of(m);
    pthread_mutex_t* next = next_of(m);
    if (prev)
        set_next(prev, next);
    else if (f->robust_list == m)
        f->robust_list = next;
    if (next) set_prev(next, prev);
    set_next(m, nullptr);
    set_prev(m, nullptr);
}

void install() {
    static std::atomic<bool> done{false};
    if (!done.load(std::memory_order_acquire) && !done.exchange(true)) Hub::set_exit_hook(release_all);
}

}  // namespace greenld::robust
