// The tiny harness of the C++ test programs (test_support.h is C): the
// phase named in failures, CHECK, and a watchdog that names the phase it
// interrupted.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

const char* volatile g_phase = "setup";

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: CHECK failed in phase '%s': %s: ", __FILE__, __LINE__, \
                    g_phase, #cond);                                                       \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fprintf(stderr, "\n");                                                         \
            _exit(1);                                                                      \
        }                                                                                  \
    } while (0)

void on_alarm(int) {
    static const char msg[] = "TIMEOUT (watchdog)\n";
    (void)!write(2, msg, sizeof msg - 1);
    (void)!write(2, g_phase, strlen(g_phase));
    _exit(2);
}

// Ends the program with status 2 if it is still running after `seconds`.
[[maybe_unused]] void watchdog(unsigned seconds) {
    signal(SIGALRM, on_alarm);
    alarm(seconds);
}

}  // namespace
