#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "sanitizer.h"
#include "stack.h"
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
}  // namespace greenld::test

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
