// Thread-specific data (pthread keys) per fiber. Compiled __thread variables
// belong to the OS thread and are shared by the fibers of a hub; pthread keys
// are the per-thread storage we can make per fiber.
//
// Keys carry a sequence number, as in glibc, so that a slot written under a
// deleted key reads as NULL once the key number is reused.
#pragma once

#include <cstdint>

namespace greenld::tsd {

constexpr unsigned kKeysMax = 1024;       // PTHREAD_KEYS_MAX
constexpr unsigned kBlock = 32;
constexpr unsigned kDestructorIterations = 4;  // PTHREAD_DESTRUCTOR_ITERATIONS

struct Slot {
    uint64_t seq = 0;
    void* data = nullptr;
};

class Table {
public:
    Table() = default;
    ~Table();
    Table(const Table&) = delete;
    Table& operator=(const Table&) = delete;

    void* get(unsigned key) const;
    int set(unsigned key, const void* value);  // 0 or EINVAL/ENOMEM
    // Runs destructors as pthread_exit does: up to kDestructorIterations
    // rounds while non-NULL values remain.
    void run_destructors();

private:
    Slot first_[kBlock];
    Slot* blocks_[kKeysMax / kBlock] = {};
};

int key_create(unsigned* key, void (*destructor)(void*));  // 0 or EAGAIN
int key_delete(unsigned key);                               // 0 or EINVAL

// The table of whatever is running: the current fiber's, or for a native
// thread, one in static thread-local storage, made without allocating.
// When this call made it, *created is set to true: the caller then arranges
// for native_table_exit(table) to run at the thread's exit (the runtime
// cannot: a thread_local destructor's registration allocates).
Table& current_table(bool* created = nullptr);
// Runs a native thread's key destructors (as pthread_exit would) and
// releases its table; it is made afresh if a key is set again after.
void native_table_exit(Table* table);

}  // namespace greenld::tsd
