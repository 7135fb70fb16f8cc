#include <setjmp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "sanitizer.h"
#include "stack.h"
#include "deadline.h"
#include "hub.h"
#include "support.h"

using namespace greenld;

TEST_CASE("stacks have a PROT_NONE guard page below them and an intact canary") {
    Stack s;
    int err = 0;
    REQUIRE(stack_allocate(100 * 1024, &s, &err));
    CHECK(s.usable >= 100 * 1024);
    CHECK(s.canary_intact());
    CHECK(s.is_guard_hit(s.map));
    CHECK_FALSE(s.is_guard_hit(s.lo() + 64));
    // Writing the top of the usable area is fine.
    s.top()[-1] = 1;
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL);  // not doctest's crash handler, nor ours
        *reinterpret_cast<volatile char*>(s.map + 10) = 1;  // the guard: must fault
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGSEGV);
    stack_release(s);
}

TEST_CASE("a corrupted canary is detected") {
    Stack s;
    int err = 0;
    REQUIRE(stack_allocate(64 * 1024, &s, &err));
    CHECK(s.canary_intact());
    memset(s.lo(), 0, 8);
    CHECK_FALSE(s.canary_intact());
    stack_release(s);
}

TEST_CASE("released stacks are reused, and come back with a fresh canary") {
    Stack a;
    int err = 0;
    REQUIRE(stack_allocate(72 * 1024, &a, &err));
    char* map = a.map;
    memset(a.lo(), 0, 8);
    stack_release(a);
    Stack b;
    REQUIRE(stack_allocate(72 * 1024, &b, &err));
    CHECK(b.map == map);
    CHECK(b.canary_intact());
    stack_release(b);
}

namespace {
volatile int g_limit = 1 << 30;  // opaque to the compiler: no infinite-recursion warning
int recurse(int depth) {
    volatile char pad[512];
    pad[0] = char(depth);
    if (depth > g_limit) return 0;
    return recurse(depth + 1) + pad[0];
}
}  // namespace

namespace greenld::test {
int stack_overflow_child() {
    test::spawn([] { recurse(0); }, 64 * 1024);
    for (;;) pause();
}

// The overflowing fiber gets a slab stack with neighbours below it, which
// are the stacks of parked fibers.
int slab_stack_overflow_child(bool guarded) {
    stack_set_mapped_limit(0);
    stack_set_slab_guards(guarded);
    Fiber* parked[8];
    for (Fiber*& f : parked) f = test::spawn([] { Hub::current()->park(Deadline::never()); }, 64 * 1024);
    for (Fiber* f : parked)
        while (f->state.load() != FiberState::parked) usleep(1000);
    test::spawn([] { recurse(0); }, 64 * 1024);
    for (;;) pause();
}
}  // namespace greenld::test

namespace {
// Runs the unit-test binary in a child mode; returns its wait status and stderr.
int run_child(const char* mode, std::string* err) {
    int pipefd[2];
    REQUIRE(pipe(pipefd) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], 2);
        execl("/proc/self/exe", "unit_tests", mode, (char*)nullptr);
        _exit(127);
    }
    close(pipefd[1]);
    char buf[512];
    for (ssize_t n; (n = read(pipefd[0], buf, sizeof buf)) > 0;) err->append(buf, size_t(n));
    close(pipefd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

// Forces slab stacks for one test case, then puts the budget back.
struct SlabsOnly {
    size_t saved = stack_mapped_limit();
    SlabsOnly() { stack_set_mapped_limit(0); }
    ~SlabsOnly() {
        stack_set_mapped_limit(saved);
        stack_set_slab_guards(true);
    }
};

// Writes one byte at `addr` in this process (a forked child would not do:
// it loses the userfaultfd write protection); returns the signal it
// raised, 0 if none.
sigjmp_buf g_poke_jump;
volatile sig_atomic_t g_poke_signal;
void on_poke_fault(int sig) {
    g_poke_signal = sig;
    siglongjmp(g_poke_jump, 1);
}
int poke(char* addr) {
    struct sigaction sa{}, old_bus{}, old_segv{};
    sa.sa_handler = on_poke_fault;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &old_bus);
    sigaction(SIGSEGV, &sa, &old_segv);
    g_poke_signal = 0;
    if (sigsetjmp(g_poke_jump, 1) == 0) *reinterpret_cast<volatile char*>(addr) = 1;
    sigaction(SIGBUS, &old_bus, nullptr);
    sigaction(SIGSEGV, &old_segv, nullptr);
    return g_poke_signal;
}
}  // namespace

TEST_CASE("the mapped-stack budget is derived from vm.max_map_count: two mappings per stack, a quarter left over") {
    FILE* f = fopen("/proc/sys/vm/max_map_count", "r");
    REQUIRE(f);
    long maps = 0;
    REQUIRE(fscanf(f, "%ld", &maps) == 1);
    fclose(f);
    if (getenv("GREENLD_MAPPED_STACKS")) return;
    CHECK(stack_mapped_limit() == size_t((maps - maps / 4) / 2));
}

TEST_CASE("beyond the mapped-stack budget, stacks share one mapping, each above a guard gap that faults") {
    SlabsOnly slabs_only;
    const StackCounts before = stack_counts();
    Stack s[3];
    int err = 0;
    for (Stack& st : s) REQUIRE(stack_allocate(80 * 1024, &st, &err));
    const StackCounts during = stack_counts();
    CHECK(during.mapped == before.mapped);
    CHECK(during.slabs == before.slabs + 1);
    CHECK(during.slab_slots == before.slab_slots + 3);
    for (Stack& st : s) {
        CHECK(st.kind == StackKind::slab);
        CHECK(st.slab == s[0].slab);
        CHECK(st.usable == 80 * 1024);
        CHECK(st.lo() == st.map + st.guard);
        CHECK(st.guard == 64 * 1024);
        CHECK(st.canary_intact());
        st.top()[-1] = 1;  // usable to its top
    }
    // Consecutive slots: each stack's gap lies right above the one below.
    CHECK(s[1].map == s[0].map + s[0].map_size);
    CHECK(s[2].map == s[1].map + s[1].map_size);
    if (!s[0].guarded) {
        MESSAGE("userfaultfd write protection unavailable here: slab gaps are unguarded");
    } else {
        CHECK(during.guarded_slabs == before.guarded_slabs + 1);
        CHECK(s[1].is_guard_hit(s[1].map));
        CHECK(s[1].is_guard_hit(s[1].lo() - 1));
        CHECK_FALSE(s[1].is_guard_hit(s[1].lo()));
        CHECK_FALSE(s[1].is_guard_hit(s[0].top() - 1));
        // A write anywhere in a gap faults (SIGBUS from userfaultfd); the
        // neighbour's top, just below the gap, is ordinary memory.
        for (char* addr : {s[1].map, s[1].map + 30000, s[1].lo() - 8}) CHECK(poke(addr) == SIGBUS);
        CHECK(poke(s[1].lo()) == 0);
        CHECK(poke(s[0].top() - 1) == 0);
    }
    for (Stack& st : s) stack_release(st);
    CHECK(stack_counts().slab_slots == before.slab_slots);
}

TEST_CASE("slab slots are reused with a fresh canary; an emptied slab is unmapped unless it is the last with room") {
    SlabsOnly slabs_only;
    const size_t slabs0 = stack_counts().slabs;
    std::vector<Stack> s(65);
    int err = 0;
    for (Stack& st : s) REQUIRE(stack_allocate(88 * 1024, &st, &err));
    CHECK(stack_counts().slabs == slabs0 + 2);  // 64 slots per slab
    CHECK(s[64].slab != s[0].slab);
    char* map = s[10].map;
    memset(s[10].lo(), 0, 8);
    stack_release(s[10]);
    REQUIRE(stack_allocate(88 * 1024, &s[10], &err));
    CHECK(s[10].map == map);
    CHECK(s[10].canary_intact());
    for (Stack& st : s) stack_release(st);
    CHECK(stack_counts().slabs == slabs0 + 1);
}

TEST_CASE("an unguarded slab gap written below the canary is detected") {
    SlabsOnly slabs_only;
    stack_set_slab_guards(false);
    Stack s;
    int err = 0;
    REQUIRE(stack_allocate(96 * 1024, &s, &err));
    CHECK(s.kind == StackKind::slab);
    CHECK_FALSE(s.guarded);
    CHECK_FALSE(s.is_guard_hit(s.map));
    CHECK(stack_gap_intact(s));
    s.lo()[-100] = 1;  // a frame that jumped over the canary word
    CHECK(s.canary_intact());
    CHECK_FALSE(stack_gap_intact(s));
    s.lo()[-100] = 0;
    CHECK(stack_gap_intact(s));
    stack_release(s);
}

#ifdef GREENLD_ASAN
constexpr bool kAsan = true;  // ASan's own SIGSEGV handler reports the overflow
#else
constexpr bool kAsan = false;
#endif

TEST_CASE("a fiber overflowing its stack is reported with its id and stack size, then dies by SIGSEGV" *
          doctest::skip(kAsan)) {
    int pipefd[2];
    REQUIRE(pipe(pipefd) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], 2);
        execl("/proc/self/exe", "unit_tests", "--child-stack-overflow", (char*)nullptr);
        _exit(127);
    }
    close(pipefd[1]);
    std::string out;
    char buf[512];
    for (ssize_t n; (n = read(pipefd[0], buf, sizeof buf)) > 0;) out.append(buf, size_t(n));
    close(pipefd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGSEGV);
    CHECK(out.find("greenld: fiber ") != std::string::npos);
    CHECK(out.find("overflowed its stack (64 KiB)") != std::string::npos);
    CHECK(out.find("GREENLD_STACK_SIZE") != std::string::npos);
}

TEST_CASE("a fiber overflowing a shared (slab) stack is reported, and dies by SIGSEGV as natively" *
          doctest::skip(kAsan)) {
    std::string out;
    int status = run_child("--child-slab-overflow", &out);
    INFO("child stderr: " << out);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGSEGV);
    CHECK(out.find("further stacks share mappings") != std::string::npos);
    CHECK(out.find("overflowed its stack (64 KiB)") != std::string::npos);
}

TEST_CASE("a fiber overflowing an unguarded slab stack is still reported, never silent" * doctest::skip(kAsan)) {
    std::string out;
    int status = run_child("--child-unguarded-slab-overflow", &out);
    INFO("child stderr: " << out);
    CHECK(WIFSIGNALED(status));
    CHECK((WTERMSIG(status) == SIGSEGV || WTERMSIG(status) == SIGABRT));
    CHECK(out.find("shared fiber stacks have no guard") != std::string::npos);
    CHECK(out.find("overflowed its stack (64 KiB)") != std::string::npos);
}
