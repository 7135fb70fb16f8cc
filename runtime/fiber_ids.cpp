#include "fiber_ids.h"

#include <new>
#include <unordered_map>

#include "fiber.h"
#include "hub.h"
#include "native.h"

namespace greenld::fiber_ids {

namespace {

// One lock: it is taken twice per thread lifetime and once per signal sent
// by id, never on a hot path.
struct Table {
    native::Mutex lock;
    std::unordered_map<uint32_t, Fiber*> by_id;
};

Table& table() {
    static Table* t = new Table();  // never destroyed: hubs outlive exit()
    return *t;
}

Fiber* find(Table& t, uint32_t id) {
    auto it = t.by_id.find(id);
    return it == t.by_id.end() ? nullptr : it->second;
}

}  // namespace

void add(Fiber* f) {
    Table& t = table();
    native::LockGuard g(t.lock);
    t.by_id[f->id] = f;
}

void remove(Fiber* f) {
    Table& t = table();
    native::LockGuard g(t.lock);
    t.by_id.erase(f->id);
}

Hub* hub_of(uint32_t id) {
    Table& t = table();
    native::LockGuard g(t.lock);
    Fiber* f = find(t, id);
    return f ? f->hub : nullptr;
}

Fiber* on_this_hub(uint32_t id) {
    Table& t = table();
    native::LockGuard g(t.lock);
    Fiber* f = find(t, id);
    return f && f->hub == Hub::current() ? f : nullptr;
}

bool parked(uint32_t id) {
    Table& t = table();
    native::LockGuard g(t.lock);
    Fiber* f = find(t, id);
    return !f || f->state.load(std::memory_order_acquire) == FiberState::parked;
}

size_t count() {
    Table& t = table();
    native::LockGuard g(t.lock);
    return t.by_id.size();
}

void lock_for_fork() { table().lock.lock(); }

void unlock_after_fork(bool child) {
    Table& t = table();
    if (child) t.by_id.clear();
    t.lock.unlock();
}

}  // namespace greenld::fiber_ids
