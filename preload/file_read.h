// Reads of regular files by fibers (file_read.cpp), for the read/readv
// wrappers of io.cpp and the pread family.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include "../runtime/fd_table.h"

namespace greenld {

// The entry of `fd` if the caller is a fiber reading a regular file that
// the shim handles (file_read.cpp); null otherwise: the caller makes the
// plain libc call.
FdEntry* regular_file_entry(int fd);

// Reads as preadv(fd, iov, count, offset) would, or as readv at the file
// position when offset is -1, never blocking the hub.
ssize_t read_regular_file(int fd, FdEntry* e, const iovec* iov, int count, off_t offset);

}  // namespace greenld
