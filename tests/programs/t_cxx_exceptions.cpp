// C++ exception state is per thread: libstdc++ keeps the chain of caught
// exceptions (what `throw;` rethrows and std::current_exception returns)
// and the count behind std::uncaught_exceptions() in thread-local storage.
// Under greenld the fibers of a hub share their OS thread's, so each fiber's
// must travel with it: here several threads (one hub in the greenld-1hub
// run) park inside catch blocks and inside destructors run by unwinding,
// interleaved, and each must find its own exception when it resumes.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>

#include "cxx_support.h"

namespace {

struct Tagged : std::runtime_error {
    int tag;
    explicit Tagged(int t) : std::runtime_error("tagged " + std::to_string(t)), tag(t) {}
};

constexpr int kThreads = 4;

// Catches its own exception, parks (usleep: the others run and catch
// theirs), then checks the caught chain and rethrows with `throw;`.
void* catcher(void* arg) {
    const int me = static_cast<int>(reinterpret_cast<intptr_t>(arg));
    for (int round = 0; round < 20; ++round) {
        try {
            try {
                throw Tagged(me * 1000 + round);
            } catch (const Tagged& t) {
                usleep(1000 + 500 * me);
                CHECK(std::uncaught_exceptions() == 0, "thread %d: %d uncaught exceptions inside a catch block",
                      me, std::uncaught_exceptions());
                std::exception_ptr p = std::current_exception();
                try {
                    std::rethrow_exception(p);
                } catch (const Tagged& again) {
                    CHECK(again.tag == t.tag, "thread %d: current_exception is %d, caught %d", me, again.tag,
                          t.tag);
                }
                usleep(700);
                throw;  // must rethrow this thread's own exception
            }
        } catch (const Tagged& outer) {
            CHECK(outer.tag == me * 1000 + round, "thread %d: `throw;` rethrew %d, not %d", me, outer.tag,
                  me * 1000 + round);
        }
        CHECK(!std::current_exception(), "thread %d: an exception still caught after its catch block", me);
    }
    return nullptr;
}

// A destructor run by unwinding parks: std::uncaught_exceptions() must be
// this thread's count (1) throughout, and 0 for the others meanwhile.
struct ParkingGuard {
    int me;
    ~ParkingGuard() {
        CHECK(std::uncaught_exceptions() == 1, "thread %d: %d uncaught before parking", me,
              std::uncaught_exceptions());
        usleep(2000);
        CHECK(std::uncaught_exceptions() == 1, "thread %d: %d uncaught after parking in a destructor", me,
              std::uncaught_exceptions());
    }
};

void* unwinder(void* arg) {
    const int me = static_cast<int>(reinterpret_cast<intptr_t>(arg));
    for (int round = 0; round < 10; ++round) {
        if (me % 2) {
            try {
                ParkingGuard g{me};
                throw Tagged(me);
            } catch (const Tagged& t) {
                CHECK(t.tag == me, "thread %d: caught %d", me, t.tag);
            }
        } else {
            for (int i = 0; i < 4; ++i) {
                CHECK(std::uncaught_exceptions() == 0, "thread %d: sees %d uncaught exceptions (another's)", me,
                      std::uncaught_exceptions());
                usleep(500);
            }
        }
    }
    return nullptr;
}

void run(const char* phase, void* (*fn)(void*)) {
    g_phase = phase;
    pthread_t t[kThreads];
    for (int i = 0; i < kThreads; ++i)
        CHECK(pthread_create(&t[i], nullptr, fn, reinterpret_cast<void*>(intptr_t(i + 1))) == 0, "create");
    for (auto& th : t) CHECK(pthread_join(th, nullptr) == 0, "join");
}

}  // namespace

int main() {
    watchdog(30);
    run("catch blocks that park", catcher);
    run("destructors that park during unwinding", unwinder);
    printf("t_cxx_exceptions: ok\n");
    return 0;
}
