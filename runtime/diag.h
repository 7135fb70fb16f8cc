// Diagnostics: every message the shim prints starts with "greenld:" and goes
// straight to fd 2 with one write (no stdio: we may be inside a stdio call,
// a signal handler, or on a fiber about to die).
#pragma once

#include <cstddef>

namespace greenld::diag {

void message(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
[[noreturn]] void fatal(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// Installs, on this OS thread, the alternate signal stack and (once per
// process) the SIGSEGV/SIGBUS handler that names a fiber whose guard page
// was hit. A program handler installed later takes precedence.
void install_overflow_reporter();

}  // namespace greenld::diag
