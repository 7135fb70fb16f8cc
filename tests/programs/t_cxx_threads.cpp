// C++ programs on converted threads: pthread_exit and pthread_cancel unwind
// the thread's stack (destructors run, catch(...) sees the unwind and must
// rethrow, C++ pthread_cleanup_push interleaves with destructors), and
// std::atomic::wait/notify and std::promise/future (syscall(SYS_futex)
// inside libstdc++) work between threads without stopping the others.
// Plain C++ with its own tiny harness: test_support.h is C.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <string>

#include "cxx_support.h"

namespace {

void sleep_ms(int ms) { usleep(useconds_t(ms) * 1000); }

// Destruction log: the order matters.
std::string g_log;
std::atomic<bool> g_started{false};

struct Logged {
    char mark;
    explicit Logged(char m) : mark(m) {}
    ~Logged() { g_log += mark; }
};

void cleanup_c(void* m) { g_log += *static_cast<const char*>(m); }

const char kMarkP = 'P';

[[noreturn]] void exit_deep() {
    Logged a('3');
    pthread_exit(reinterpret_cast<void*>(7));
}

void level2() {
    Logged a('2');
    pthread_cleanup_push(cleanup_c, const_cast<char*>(&kMarkP));
    exit_deep();
    pthread_cleanup_pop(0);
}

void* nested_exit(void*) {
    Logged a('1');
    try {
        level2();
    } catch (...) {
        g_log += 'c';  // the forced unwind passes through catch(...)...
        throw;         // ...which must rethrow it
    }
    return nullptr;
}

int g_pipe[2];

void* blocked_in_read(void*) {
    Logged a('r');
    g_started = true;
    char c;
    ssize_t n = read(g_pipe[0], &c, 1);
    g_log += 'X';  // never: the cancel acts inside read
    return reinterpret_cast<void*>(n);
}

void run_exit_and_cancel() {
    g_phase = "pthread_exit from nested frames runs destructors and cleanup handlers";
    g_log.clear();
    pthread_t t;
    CHECK(pthread_create(&t, nullptr, nested_exit, nullptr) == 0, "pthread_create");
    void* ret = nullptr;
    CHECK(pthread_join(t, &ret) == 0, "pthread_join");
    CHECK(ret == reinterpret_cast<void*>(7), "join result %p", ret);
    CHECK(g_log == "3P2c1", "unwind order '%s', expected '3P2c1'", g_log.c_str());

    g_phase = "pthread_cancel of a thread in read runs its destructors";
    g_log.clear();
    CHECK(pipe(g_pipe) == 0, "pipe");
    CHECK(pthread_create(&t, nullptr, blocked_in_read, nullptr) == 0, "pthread_create");
    while (!g_started) sleep_ms(1);
    sleep_ms(50);
    CHECK(pthread_cancel(t) == 0, "pthread_cancel");
    CHECK(pthread_join(t, &ret) == 0, "pthread_join");
    CHECK(ret == PTHREAD_CANCELED, "join result %p", ret);
    CHECK(g_log == "r", "log '%s', expected 'r'", g_log.c_str());
}

// ---- futex users from the standard library -----------------------------

std::atomic<long> g_ticks{0};
std::atomic<bool> g_stop{false};

void* ticker(void*) {
    while (!g_stop) {
        sleep_ms(1);
        ++g_ticks;
    }
    return nullptr;
}

std::atomic<int> g_word{0};

void* atomic_waiter(void*) {
    g_word.wait(0);
    return reinterpret_cast<void*>(long(g_word.load()));
}

std::promise<int>* g_promise;

void* promise_setter(void*) {
    sleep_ms(100);
    g_promise->set_value(42);
    return nullptr;
}

void* future_user(void*) {
    std::promise<int> p;
    g_promise = &p;
    std::future<int> f = p.get_future();
    // A timed wait that times out (FUTEX_WAIT_BITSET with an absolute time).
    auto t0 = std::chrono::steady_clock::now();
    CHECK(f.wait_for(std::chrono::milliseconds(30)) == std::future_status::timeout, "wait_for before set_value");
    CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(30), "wait_for returned early");
    pthread_t setter;
    CHECK(pthread_create(&setter, nullptr, promise_setter, nullptr) == 0, "pthread_create");
    long before = g_ticks;
    int v = f.get();
    CHECK(g_ticks - before >= 20, "the ticker stopped while a thread waited in future::get (%ld ticks)",
          long(g_ticks - before));
    pthread_join(setter, nullptr);
    return reinterpret_cast<void*>(long(v));
}

void run_futex_users() {
    pthread_t tick;
    CHECK(pthread_create(&tick, nullptr, ticker, nullptr) == 0, "pthread_create");

    g_phase = "std::atomic::wait in one thread, notify_one from another";
    pthread_t w;
    CHECK(pthread_create(&w, nullptr, atomic_waiter, nullptr) == 0, "pthread_create");
    sleep_ms(100);
    long before = g_ticks;
    g_word = 5;
    g_word.notify_one();
    void* ret = nullptr;
    pthread_join(w, &ret);
    CHECK(ret == reinterpret_cast<void*>(5), "waiter saw %p", ret);
    (void)before;

    g_phase = "std::promise / std::future across threads";
    pthread_t u;
    CHECK(pthread_create(&u, nullptr, future_user, nullptr) == 0, "pthread_create");
    pthread_join(u, &ret);
    CHECK(ret == reinterpret_cast<void*>(42), "future delivered %p", ret);

    g_stop = true;
    pthread_join(tick, nullptr);
}

}  // namespace

int main() {
    watchdog(30);
    run_exit_and_cancel();
    run_futex_users();
    printf("t_cxx_threads: ok\n");
    return 0;
}
