// fiber_ids: a fiber's id names it from spawn until it ends, on its hub.
#include <vector>

#include "fiber_ids.h"
#include "support.h"

using namespace greenld;
using namespace greenld::test;

TEST_CASE("a fiber's id is listed from spawn until it ends, on the hub it runs on") {
    Latch started(16);
    std::atomic<bool> go{false};
    std::atomic<int> found_self{0};
    std::vector<Fiber*> fibers;
    for (int i = 0; i < 16; ++i) {
        fibers.push_back(spawn([&] {
            Fiber* self = Hub::current_fiber();
            if (fiber_ids::on_this_hub(self->id) == self && fiber_ids::hub_of(self->id) == Hub::current())
                found_self.fetch_add(1);
            started.count_down();
            while (!go.load()) Hub::current()->park(Deadline::after_ns(1000000));
        }));
    }
    started.wait();
    CHECK(found_self.load() == 16);
    for (Fiber* f : fibers) {
        CHECK(fiber_ids::hub_of(f->id) == f->hub);
        // Not the hub of the test's native thread: no pointer handed out.
        CHECK(fiber_ids::on_this_hub(f->id) == nullptr);
    }
    std::vector<uint32_t> ids;
    for (Fiber* f : fibers) ids.push_back(f->id);
    go.store(true);
    for (Fiber* f : fibers) join(f);
    for (uint32_t id : ids) CHECK(fiber_ids::hub_of(id) == nullptr);
    CHECK(fiber_ids::hub_of(kFirstFiberId - 1) == nullptr);
}
