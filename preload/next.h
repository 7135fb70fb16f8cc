// The next definition of an interposed libc function (glibc's own),
// resolved on first use. Calls can arrive before any constructor of ours has
// run, and from several threads at once: the pointer is constant-initialised
// to null and resolution is idempotent, so a race only resolves twice.
#pragma once

#include <dlfcn.h>

#include <atomic>

namespace greenld::next {

void* resolve(const char* name, const char* version);

template <typename Fn>
class Symbol {
public:
    constexpr explicit Symbol(const char* name, const char* version = nullptr) : name_(name), version_(version) {}
    Fn* get() {
        Fn* f = fn_.load(std::memory_order_acquire);
        if (__builtin_expect(f == nullptr, 0)) {
            f = reinterpret_cast<Fn*>(resolve(name_, version_));
            fn_.store(f, std::memory_order_release);
        }
        return f;
    }
    template <typename... Args>
    auto operator()(Args... args) {
        return get()(args...);
    }

private:
    const char* name_;
    const char* version_;
    std::atomic<Fn*> fn_{nullptr};
};

}  // namespace greenld::next

// Exported wrappers: everything else in the library is hidden.
#define GREENLD_EXPORT extern "C" __attribute__((visibility("default")))
