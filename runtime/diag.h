// Diagnostics: every message the shim prints starts with "greenld:" and goes
// straight to fd 2 with one write (no stdio: we may be inside a stdio call,
// a signal handler, or on a fiber about to die).
#pragma once

#include <signal.h>

#include <cstddef>

namespace greenld {
class Fiber;
}

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

// Installs (once per process) the SIGSEGV/SIGBUS handler that names a
// fiber whose guard page was hit; it runs on each hub thread's alternate
// stack (signals.h). A program handler installed later takes precedence.
void install_overflow_reporter();

// Is this fault (info, and the ucontext_t at uctx) an overflow of f's stack?
bool is_stack_overflow(const Fiber* f, const siginfo_t* info, const void* uctx);
// Reports it, and makes the thread's process die of SIGSEGV once the
// running signal handler returns, as it would have natively.
void die_of_overflow(const Fiber* f, const siginfo_t* info);

}  // namespace greenld::diag
