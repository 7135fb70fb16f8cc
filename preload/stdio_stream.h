// The cooperative stdio stream of stdio.cpp, for other families that hand
// the program a FILE on a pipe (popen).
#pragma once

#include <stdio.h>

namespace greenld {

// A FILE on `fd` whose reads and writes go through the cooperative
// read/write wrappers, with a stream lock that fibers can wait on; fclose
// closes fd. `mode` as fopencookie takes it. Null when out of memory.
FILE* cooperative_stream(int fd, const char* mode);

}  // namespace greenld
