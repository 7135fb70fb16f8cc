#include "tsd.h"

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <new>

#include "hub.h"

namespace greenld::tsd {

namespace {

struct KeyInfo {
    // Odd while the key is allocated; bumped on create and on delete.
    std::atomic<uint64_t> seq{0};
    std::atomic<void (*)(void*)> destructor{nullptr};
};

KeyInfo g_keys[kKeysMax];

// A native thread's table, in static thread-local storage and trivially
// constructible and destructible: setting a key must not allocate (neither
// `new` nor the registration of a thread_local destructor, which callocs),
// because malloc implementations call pthread_setspecific while they boot.
// jemalloc did, and re-entered its own initialisation from our calloc: its
// pthread_atfork handlers were registered twice and redis' BGSAVE fork
// deadlocked in the second prefork. Destruction at thread exit is arranged
// by the caller (see current_table).
struct NativeTable {
    alignas(Table) unsigned char storage[sizeof(Table)];
    bool constructed;
};

thread_local NativeTable t_native;

}  // namespace

int key_create(unsigned* key, void (*destructor)(void*)) {
    for (unsigned k = 0; k < kKeysMax; ++k) {
        uint64_t s = g_keys[k].seq.load(std::memory_order_relaxed);
        if (s & 1) continue;
        // Exhaustion of a key's sequence space would make stale values
        // visible again: retire the number instead of wrapping.
        if (s + 2 < s) continue;
        g_keys[k].destructor.store(destructor, std::memory_order_relaxed);
        if (g_keys[k].seq.compare_exchange_strong(s, s + 1, std::memory_order_acq_rel)) {
            *key = k;
            return 0;
        }
    }
    return EAGAIN;
}

int key_delete(unsigned key) {
    if (key >= kKeysMax) return EINVAL;
    uint64_t s = g_keys[key].seq.load(std::memory_order_relaxed);
    if (!(s & 1)) return EINVAL;
    if (!g_keys[key].seq.compare_exchange_strong(s, s + 1, std::memory_order_acq_rel)) return EINVAL;
    return 0;
}

Table::~Table() {
    for (Slot* b : blocks_) free(b);
}

void* Table::get(unsigned key) const {
    if (key >= kKeysMax) return nullptr;
    const Slot* slot;
    if (key < kBlock) {
        slot = &first_[key];
    } else {
        const Slot* block = blocks_[key / kBlock];
        if (!block) return nullptr;
        slot = &block[key % kBlock];
    }
    uint64_t s = g_keys[key].seq.load(std::memory_order_relaxed);
    return (slot->seq == s) ? slot->data : nullptr;
}

int Table::set(unsigned key, const void* value) {
    if (key >= kKeysMax) return EINVAL;
    uint64_t s = g_keys[key].seq.load(std::memory_order_relaxed);
    if (!(s & 1)) return EINVAL;
    Slot* slot;
    if (key < kBlock) {
        slot = &first_[key];
    } else {
        Slot*& block = blocks_[key / kBlock];
        if (!block) {
            block = static_cast<Slot*>(calloc(kBlock, sizeof(Slot)));
            if (!block) return ENOMEM;
        }
        slot = &block[key % kBlock];
    }
    slot->seq = s;
    slot->data = const_cast<void*>(value);
    return 0;
}

void Table::run_destructors() {
    for (unsigned round = 0; round < kDestructorIterations; ++round) {
        bool any = false;
        for (unsigned k = 0; k < kKeysMax; ++k) {
            Slot* slot;
            if (k < kBlock) {
                slot = &first_[k];
            } else {
                Slot* block = blocks_[k / kBlock];
                if (!block) {
                    k += kBlock - 1 - (k % kBlock);
                    continue;
                }
                slot = &block[k % kBlock];
            }
            if (!slot->data) continue;
            uint64_t s = g_keys[k].seq.load(std::memory_order_acquire);
            void (*d)(void*) = g_keys[k].destructor.load(std::memory_order_relaxed);
            void* v = slot->data;
            slot->data = nullptr;
            if (slot->seq != s || !(s & 1) || !d) continue;
            any = true;
            d(v);
        }
        if (!any) return;
    }
}

Table& current_table(bool* created) {
    if (Fiber* f = Hub::identity()) return f->tsd;
    auto* table = reinterpret_cast<Table*>(t_native.storage);
    if (!t_native.constructed) {
        new (table) Table();
        t_native.constructed = true;
        if (created) *created = true;
    }
    return *table;
}

void native_table_exit(Table* table) {
    if (table != reinterpret_cast<Table*>(t_native.storage) || !t_native.constructed) return;
    table->run_destructors();
    t_native.constructed = false;
    table->~Table();
}

}  // namespace greenld::tsd
