// Settings read from GREENLD_* environment variables. A malformed value is
// reported once with a "greenld:" warning naming the variable, and the
// default is used: the library must never refuse to run a program.
#pragma once

#include <cstddef>

namespace greenld::config {

int hubs();                 // GREENLD_HUBS, default: CPUs this process may use
size_t stack_size();        // GREENLD_STACK_SIZE, default: as glibc (RLIMIT_STACK)

// Parses "123", "64k", "8M", "1g" (powers of 1024). False if malformed.
bool parse_size(const char* text, size_t* out);

}  // namespace greenld::config
