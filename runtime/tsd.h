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
// thread, one kept in a thread-local and freed at thread exit.
Table& current_table();

}  // namespace greenld::tsd
