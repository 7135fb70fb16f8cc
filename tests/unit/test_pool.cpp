#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "pool.h"
#include "support.h"

using namespace greenld;
using namespace greenld::test;

namespace {

// Waits (sleeping) until cond() holds, at most ms; returns cond().
template <typename Cond>
bool eventually(Cond cond, int ms = 2000) {
    for (int64_t end = now_ms() + ms; !cond() && now_ms() < end;) usleep(1000);
    return cond();
}

}  // namespace

TEST_CASE("offload from a fiber runs on a pool thread and carries the result and errno back") {
    std::atomic<int> caller_tid{0}, call_tid{0}, result{0}, err_fail{0}, err_ok{0};
    join(spawn([&] {
        caller_tid = native::gettid();
        errno = 0;
        result = offload(JobKind::io, [&] {
            call_tid = native::gettid();
            errno = EIO;
            return -1;
        });
        err_fail = errno;
        // A call that succeeds leaves the caller's errno as it was.
        errno = ERANGE;
        offload(JobKind::io, [] { return 0; });
        err_ok = errno;
    }));
    CHECK(result.load() == -1);
    CHECK(err_fail.load() == EIO);
    CHECK(err_ok.load() == ERANGE);
    CHECK(call_tid.load() != caller_tid.load());
    CHECK(BlockingPool::get().threads() >= 1);
}

TEST_CASE("a native caller makes the call itself, without a hop") {
    const int me = native::gettid();
    int tid = offload(JobKind::io, [] { return native::gettid(); });
    CHECK(tid == me);
}

TEST_CASE("the hub keeps running other fibers while one waits for the pool") {
    std::atomic<bool> stop{false};
    std::atomic<long> ticks{0};
    std::atomic<Hub*> waiter_hub{nullptr};
    Fiber* waiter = spawn([&] {
        waiter_hub = Hub::current();
        offload(JobKind::io, [] { return usleep(100000); });
        stop = true;
    });
    while (!waiter_hub.load()) usleep(100);
    // Spawn tickers until one lands on the waiter's hub.
    std::vector<Fiber*> tickers;
    std::atomic<long> same_hub_ticks{0};
    for (int i = 0; i < Runtime::get().hub_count(); ++i) {
        tickers.push_back(spawn([&] {
            const bool same = Hub::current() == waiter_hub.load();
            while (!stop.load()) {
                ticks.fetch_add(1);
                if (same) same_hub_ticks.fetch_add(1);
                Hub::current()->park(Deadline::after_ns(1000000));
            }
        }));
    }
    join(waiter);
    for (Fiber* f : tickers) join(f);
    CHECK(ticks.load() > 10);
    if (Runtime::get().hub_count() == 1) CHECK(same_hub_ticks.load() > 10);
}

TEST_CASE("at most the pool size of io jobs run at once; rendezvous jobs get a thread beyond it") {
    BlockingPool& pool = BlockingPool::get();
    const int saved = pool.size();
    pool.set_size(1);

    std::atomic<int> running{0}, max_running{0}, finished{0};
    auto io_call = [&] {
        int now = running.fetch_add(1) + 1;
        for (int m = max_running.load(); now > m && !max_running.compare_exchange_weak(m, now);) {
        }
        usleep(20000);
        running.fetch_sub(1);
        finished.fetch_add(1);
        return 0;
    };
    std::vector<Fiber*> fibers;
    for (int i = 0; i < 4; ++i) fibers.push_back(spawn([&] { offload(JobKind::io, io_call); }));
    for (Fiber* f : fibers) join(f);
    CHECK(finished.load() == 4);
    CHECK(max_running.load() == 1);

    // A rendezvous job that waits for an io job must not starve it, even
    // with a pool of one: a lock holder that fsyncs before it unlocks.
    std::atomic<uint32_t> released{0};
    Fiber* waiter = spawn([&] {
        offload(JobKind::rendezvous, [&] {
            while (released.load() == 0) native::futex_wait(&released, 0, 2000000000);
            return 0;
        });
    });
    Fiber* holder = spawn([&] {
        usleep(20000);
        offload(JobKind::io, [&] {
            released = 1;
            native::futex_wake(&released, 1);
            return 0;
        });
    });
    int64_t t0 = now_ms();
    join(holder);
    join(waiter);
    CHECK(now_ms() - t0 < 1500);
    // Threads beyond the size end once idle.
    CHECK(eventually([&] { return pool.threads() <= 1; }));
    pool.set_size(saved);
}

TEST_CASE("after fork the child's pool is empty and starts again on first use") {
    join(spawn([] { offload(JobKind::io, [] { return 0; }); }));
    REQUIRE(BlockingPool::get().threads() >= 1);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int empty = BlockingPool::get().threads() == 0;
        std::atomic<int> tid{0};
        join(spawn([&] { tid = offload(JobKind::io, [] { return native::gettid(); }); }));
        const int after = BlockingPool::get().threads();
        if (!empty || tid.load() <= 0 || tid.load() == native::gettid() || after != 1) {
            fprintf(stderr, "child: empty %d, call tid %d (own %d), threads after %d\n", empty, tid.load(),
                    native::gettid(), after);
            _exit(1);
        }
        _exit(0);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("start runs a job with nobody parked on it: no unpark, done set last") {
    struct Job : PoolJob {
        std::atomic<int> tid{0};
    };
    // From the native thread.
    Job a;
    a.run = [](PoolJob* j) {
        usleep(10000);
        static_cast<Job*>(j)->tid = native::gettid();
    };
    REQUIRE(BlockingPool::get().start(&a));
    CHECK(eventually([&] { return a.done.load() == 1; }));
    CHECK(a.tid.load() != 0);
    CHECK(a.tid.load() != native::gettid());
    // From a fiber, which parks meanwhile for something else: the job's end
    // must not end that park.
    std::atomic<int> why{-1}, done_after{0};
    join(spawn([&] {
        Job b;
        b.run = [](PoolJob* j) { static_cast<Job*>(j)->tid = native::gettid(); };
        if (!BlockingPool::get().start(&b)) return;
        why = int(Hub::current()->park(Deadline::after_ns(200000000)));
        done_after = int(b.done.load());
    }));
    CHECK(why.load() == int(WakeReason::timeout));
    CHECK(done_after.load() == 1);
}

TEST_CASE("a fiber in a kickable pool wait is seen as waiting for the pool, not on a futex") {
    std::atomic<uint32_t> word{0};
    std::atomic<Fiber*> self{nullptr};
    Fiber* f = spawn([&] {
        self = Hub::current_fiber();
        futex_wait(&word, 0, Deadline::after_ns(1000000));  // leaves WaitKind::futex behind
        struct Job : PoolJob {
            std::atomic<uint32_t>* word;
        } job;
        job.kind = JobKind::rendezvous;
        job.word = &word;
        job.run = [](PoolJob* j) {
            auto* w = static_cast<Job*>(j)->word;
            while (w->load() == 0) native::futex_wait(w, 0, 1000000000);
        };
        BlockingPool::get().run_parked_kickable(&job, [](PoolJob*) {});
    });
    CHECK(eventually([&] {
        Fiber* s = self.load();
        return s && s->state.load() == FiberState::parked && s->waiting.kind == WaitKind::offload;
    }));
    word = 1;
    native::futex_wake(&word, 1);
    join(f);
}
