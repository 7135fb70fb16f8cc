// fiber_tls.h: which modules keep their TLS per OS thread, and the layout
// that copies the others' blocks in and out of a thread's static TLS (here
// a buffer standing in for the area below the thread pointer).
#include <cstdlib>
#include <cstring>
#include <string>

#include "config.h"
#include "fiber_tls.h"
#include "support.h"

using namespace greenld;

TEST_CASE("the runtime libraries keep their TLS per OS thread; the program and its own libraries do not") {
    for (const char* kept : {"/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2",
                             "/lib/x86_64-linux-gnu/libstdc++.so.6", "libgcc_s.so.1", "/usr/lib/libasan.so.8",
                             "/opt/greenld/lib/greenld/libgreenld.so", "libnss_greenld.so.2"})
        CHECK_MESSAGE(fiber_tls::excluded_module(kept), kept);
    for (const char* copied : {"", "(the program)", "/lib/x86_64-linux-gnu/libsystemd.so.0", "libnuma.so.1",
                               "/usr/lib/libcrypto.so.3", "/srv/mylibc.so.6", "libcares.so.2"})
        CHECK_MESSAGE(!fiber_tls::excluded_module(copied), copied);
}

TEST_CASE("a layout starts images as a new thread's (.tdata, then zeros) and swaps them at the thread pointer") {
    fiber_tls::Layout layout;
    const long init_a[2] = {11, 12};
    const char init_b[3] = {'x', 'y', 'z'};
    REQUIRE(layout.add(-64, init_a, sizeof init_a, 32));  // 16 bytes .tdata, 16 .tbss
    REQUIRE(layout.add(-16, init_b, 0, 8));               // all .tbss
    REQUIRE(layout.add(-24, init_b, 3, 3));               // all .tdata
    CHECK(layout.blocks() == 3);
    CHECK(layout.bytes() == 43);

    unsigned char image[43];
    memset(image, 0xee, sizeof image);
    layout.init_image(image);
    unsigned char want[43] = {};
    memcpy(want, init_a, 16);
    memcpy(want + 40, init_b, 3);
    CHECK(memcmp(image, want, sizeof want) == 0);

    // A fake static TLS area: the thread pointer at its end.
    unsigned char area[80];
    for (size_t i = 0; i < sizeof area; ++i) area[i] = (unsigned char)i;
    char* tp = reinterpret_cast<char*>(area) + sizeof area;
    unsigned char saved[43];
    layout.save(tp, saved);
    CHECK(memcmp(saved, area + 16, 32) == 0);
    CHECK(memcmp(saved + 32, area + 64, 8) == 0);
    CHECK(memcmp(saved + 40, area + 56, 3) == 0);

    layout.load(tp, image);
    CHECK(memcmp(area + 16, init_a, 16) == 0);
    for (int i = 32; i < 48; ++i) CHECK(area[i] == 0);
    for (int i = 64; i < 72; ++i) CHECK(area[i] == 0);
    CHECK(memcmp(area + 56, init_b, 3) == 0);
    // Bytes outside the blocks (another module's, or padding) are untouched.
    for (int i : {0, 15, 48, 55, 59, 63, 72, 79}) CHECK(area[i] == (unsigned char)i);

    layout.load(tp, saved);
    for (size_t i = 0; i < sizeof area; ++i) CHECK(area[i] == (unsigned char)i);
}

TEST_CASE("a layout refuses a block whose initialised part is larger than the block, and a 65th block") {
    fiber_tls::Layout layout;
    const char init[8] = {};
    CHECK(!layout.add(-8, init, 8, 4));
    for (int i = 0; i < fiber_tls::Layout::kMaxBlocks; ++i) REQUIRE(layout.add(-8 * (i + 1), init, 0, 8));
    CHECK(!layout.add(-8 * 100, init, 0, 8));
    CHECK(layout.blocks() == fiber_tls::Layout::kMaxBlocks);
}

TEST_CASE("GREENLD_FIBER_TLS: 1 turns it on; unset, 0 or anything else leaves it off") {
    const char* old = getenv("GREENLD_FIBER_TLS");
    std::string saved = old ? old : "";
    unsetenv("GREENLD_FIBER_TLS");
    CHECK(!config::fiber_tls());
    setenv("GREENLD_FIBER_TLS", "1", 1);
    CHECK(config::fiber_tls());
    for (const char* off : {"0", "", "yes", "2", " 1"}) {
        setenv("GREENLD_FIBER_TLS", off, 1);
        CHECK_MESSAGE(!config::fiber_tls(), off);
    }
    if (old)
        setenv("GREENLD_FIBER_TLS", saved.c_str(), 1);
    else
        unsetenv("GREENLD_FIBER_TLS");
}
