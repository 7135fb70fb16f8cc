// Fibers by id. gettid() in a fiber answers the fiber's id (above any kernel
// tid), which the kernel does not know: calls that name a thread by id
// (tgkill, tkill, rt_tgsigqueueinfo) are answered from this table, so that
// a signal sent to an id a fiber reported reaches that fiber, and one sent
// to the id of a thread that has ended fails with ESRCH, as the kernel does.
//
// An id is listed from Runtime::spawn (pthread_create has returned it by
// then) until the fiber leaves, on its hub, before it is marked dead. So:
//  - from any thread, hub_of(id) says where a live fiber runs (hubs are
//    never freed while the process runs);
//  - on the hub's own thread, on_this_hub(id) may return the Fiber*: the
//    fiber can only die on that thread, so the pointer stays valid until the
//    caller returns to the hub's loop or parks.
#pragma once

#include <cstddef>
#include <cstdint>

namespace greenld {

class Fiber;
class Hub;

namespace fiber_ids {

void add(Fiber* f);
void remove(Fiber* f);
Hub* hub_of(uint32_t id);
Fiber* on_this_hub(uint32_t id);
// From any thread: is the fiber parked (or gone)? A signal for it then
// needs no poke of its hub (signals.cpp).
bool parked(uint32_t id);
size_t count();

// fork(): held across it; the child keeps no fiber (its only thread goes on
// natively with a kernel tid), so its table starts empty.
void lock_for_fork();
void unlock_after_fork(bool child);

}  // namespace fiber_ids
}  // namespace greenld
