// Diagnostics: every message the shim prints starts with "greenld:" and goes
// straight to fd 2 with one write (no stdio: we may be inside a stdio call,
// a signal handler, or on a fiber about to die).
#pragma once

#include <cstddef>

namespace greenld::diag {

// By level (GREENLD_LOG_LEVEL, config.h): message() is a warning (a bad
// setting, a fallback to libc behaviour); error() something the program
// dies of; info() one-off facts (the hubs started); debug() per fiber.
// fatal() always prints, then aborts. Reports the user asked for (the dump
// signal, the blocked-hub monitor) use write_line() and print at any level.
void message(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void info(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void debug(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
bool debugging();
[[noreturn]] void fatal(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// One "greenld: "-prefixed line, whatever the level.
void write_line(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// Installs, on this OS thread, the alternate signal stack and (once per
// process) the SIGSEGV/SIGBUS handler that names a fiber whose guard page
// was hit. A program handler installed later takes precedence.
void install_overflow_reporter();

}  // namespace greenld::diag
