// Flushing files to their device: fsync, fdatasync, syncfs, sync,
// sync_file_range. Nothing makes them non-blocking, and they wait for the
// disk (milliseconds to seconds), so a fiber's call runs on the
// blocking-call pool.
#include <fcntl.h>
#include <unistd.h>

#include "next.h"
#include "offload.h"

using namespace greenld;

namespace {

next::Symbol<decltype(::fsync)> next_fsync{"fsync"};
next::Symbol<decltype(::fdatasync)> next_fdatasync{"fdatasync"};
next::Symbol<decltype(::syncfs)> next_syncfs{"syncfs"};
next::Symbol<decltype(::sync)> next_sync{"sync"};
next::Symbol<decltype(::sync_file_range)> next_sync_file_range{"sync_file_range"};

}  // namespace

GREENLD_EXPORT int fsync(int fd) {
    return offload_if_fiber(JobKind::io, [&] { return next_fsync(fd); });
}

GREENLD_EXPORT int fdatasync(int fd) {
    return offload_if_fiber(JobKind::io, [&] { return next_fdatasync(fd); });
}

GREENLD_EXPORT int syncfs(int fd) {
    return offload_if_fiber(JobKind::io, [&] { return next_syncfs(fd); });
}

GREENLD_EXPORT void sync(void) {
    offload_if_fiber(JobKind::io, [&] {
        next_sync();
        return 0;
    });
}

GREENLD_EXPORT int sync_file_range(int fd, off64_t offset, off64_t nbytes, unsigned int flags) {
    return offload_if_fiber(JobKind::io, [&] { return next_sync_file_range(fd, offset, nbytes, flags); });
}
