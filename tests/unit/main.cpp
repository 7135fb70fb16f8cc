// doctest's runner, plus child modes: some tests need a fresh process with
// no hubs yet (fork of a process with running hubs is a later feature), so
// they re-execute this binary with a mode argument.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstring>

#include "support.h"

namespace greenld::test {
int stack_overflow_child();
int slab_stack_overflow_child(bool guarded);
int canary_child();
}

int main(int argc, char** argv) {
    if (argc > 1 && strcmp(argv[1], "--child-stack-overflow") == 0) return greenld::test::stack_overflow_child();
    if (argc > 1 && strcmp(argv[1], "--child-canary") == 0) return greenld::test::canary_child();
    if (argc > 1 && strcmp(argv[1], "--child-slab-overflow") == 0)
        return greenld::test::slab_stack_overflow_child(true);
    if (argc > 1 && strcmp(argv[1], "--child-unguarded-slab-overflow") == 0)
        return greenld::test::slab_stack_overflow_child(false);
    doctest::Context context(argc, argv);
    return context.run();
}
