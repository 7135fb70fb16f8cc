// Calls that cannot be made non-blocking run on the blocking-call pool
// (runtime/pool.h) when a fiber makes them, so that only the fiber waits.
// They belong to the `os` family of GREENLD_PATCH: left out, they block
// the hub as plain libc would.
#pragma once

#include "../runtime/config.h"
#include "../runtime/pool.h"

namespace greenld {

// True when the caller is a fiber whose blocking calls must not block its hub.
inline bool fiber_must_not_block() {
    return Hub::current_fiber() != nullptr && config::patched(config::kPatchOs);
}

// call() on the pool if the caller is a fiber (and `os` is patched), else
// right here; errno as the call left it.
template <typename Call>
auto offload_if_fiber(JobKind kind, Call&& call) -> decltype(call()) {
    if (!fiber_must_not_block()) return call();
    return offload(kind, call);
}

}  // namespace greenld
