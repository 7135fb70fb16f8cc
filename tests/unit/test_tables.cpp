#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "config.h"
#include "fd_table.h"
#include "support.h"
#include "tsd.h"

using namespace greenld;
using namespace greenld::test;

TEST_CASE("fd table classifies sockets, listeners, pipes and files, and records O_NONBLOCK as found") {
    FdTable& t = FdTable::get();
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    int dg[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, dg) == 0);
    int pp[2];
    REQUIRE(pipe(pp) == 0);
    int file = open("/proc/self/exe", O_RDONLY);
    int lst = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(listen(lst, 1) == 0);
    struct Case {
        int fd;
        FdKind kind;
        bool nonblock;
    } cases[] = {{sv[0], FdKind::stream, false}, {dg[0], FdKind::datagram, true}, {pp[0], FdKind::pipe, false},
                 {file, FdKind::file, false},    {lst, FdKind::listener, false}};
    for (const Case& c : cases) {
        FdEntry* e = t.entry(c.fd);
        REQUIRE(e);
        e->kind.store(FdKind::unknown);
        CHECK(t.classify(c.fd, e) == c.kind);
        CHECK(e->user_nonblock.load() == c.nonblock);
    }
    for (int fd : {sv[0], sv[1], dg[0], dg[1], pp[0], pp[1], file, lst}) close(fd);
}

TEST_CASE("fd table: reset bumps the generation and clears state; duplicate copies the program's view") {
    FdTable& t = FdTable::get();
    FdEntry* e = t.entry(900);
    REQUIRE(e);
    uint32_t g = e->generation.load();
    e->rcv_timeout_ns.store(5);
    e->rd_hint.store(ReadHint::empty);
    e->rd_filled_misses.store(3);
    t.reset(900, FdKind::stream, true, true);
    CHECK(e->generation.load() == g + 1);
    CHECK(e->rcv_timeout_ns.load() == 0);
    CHECK(e->rd_hint.load() == ReadHint::ready);
    CHECK(e->rd_filled_misses.load() == 0);
    CHECK(e->user_nonblock.load());
    e->snd_timeout_ns.store(77);
    e->kernel_nonblock.store(true);
    t.duplicate(900, 901);
    FdEntry* d = t.entry(901);
    CHECK(d->kind.load() == FdKind::stream);
    CHECK(d->user_nonblock.load());
    CHECK(d->kernel_nonblock.load());
    CHECK(d->snd_timeout_ns.load() == 77);
    CHECK(t.entry(-1) == nullptr);
    CHECK(t.entry(FdTable::kMaxFds) == nullptr);
}

TEST_CASE("sizes parse with k/m/g suffixes and reject garbage") {
    size_t v = 0;
    CHECK(config::parse_size("4096", &v));
    CHECK(v == 4096);
    CHECK(config::parse_size("64k", &v));
    CHECK(v == 65536);
    CHECK(config::parse_size("8M", &v));
    CHECK(v == 8u << 20);
    CHECK(config::parse_size("1g", &v));
    CHECK(v == 1u << 30);
    for (const char* bad : {"", "abc", "12x", "-5", "1.5M", "k", "99999999999999999999999g"})
        CHECK_FALSE(config::parse_size(bad, &v));
}

TEST_CASE("pthread-key tables: values per table, sequence numbers hide deleted keys, destructors run") {
    unsigned k1 = 0, k2 = 0;
    static int destroyed = 0;
    REQUIRE(tsd::key_create(&k1, [](void*) { ++destroyed; }) == 0);
    REQUIRE(tsd::key_create(&k2, nullptr) == 0);
    CHECK(k1 != k2);
    tsd::Table a, b;
    int x = 1, y = 2;
    CHECK(a.set(k1, &x) == 0);
    CHECK(b.set(k1, &y) == 0);
    CHECK(a.get(k1) == &x);
    CHECK(b.get(k1) == &y);
    CHECK(a.get(k2) == nullptr);
    CHECK(tsd::key_delete(k2) == 0);
    CHECK(tsd::key_delete(k2) == EINVAL);
    CHECK(a.set(k2, &x) == EINVAL);
    // A key number reused after delete must not show the old value.
    CHECK(a.set(k1, &x) == 0);
    CHECK(tsd::key_delete(k1) == 0);
    unsigned k3 = 0;
    REQUIRE(tsd::key_create(&k3, nullptr) == 0);
    CHECK(a.get(k3) == nullptr);
    // A high key number lives in a lazily allocated block.
    CHECK(a.get(1000) == nullptr);
    unsigned k4 = 0;
    REQUIRE(tsd::key_create(&k4, [](void*) { ++destroyed; }) == 0);
    destroyed = 0;
    CHECK(b.set(k4, &y) == 0);
    b.run_destructors();
    CHECK(destroyed == 1);
    CHECK(b.get(k4) == nullptr);
    tsd::key_delete(k3);
    tsd::key_delete(k4);
}

TEST_CASE("fibers have their own pthread-key values") {
    unsigned key = 0;
    REQUIRE(tsd::key_create(&key, nullptr) == 0);
    std::atomic<int> bad{0};
    std::vector<Fiber*> fibers;
    for (intptr_t i = 1; i <= 20; ++i)
        fibers.push_back(spawn([&, i] {
            tsd::current_table().set(key, reinterpret_cast<void*>(i));
            for (int k = 0; k < 20; ++k) {
                Hub::current()->yield();
                if (tsd::current_table().get(key) != reinterpret_cast<void*>(i)) bad.fetch_add(1);
            }
        }));
    for (Fiber* f : fibers) join(f);
    CHECK(bad.load() == 0);
    tsd::key_delete(key);
}
