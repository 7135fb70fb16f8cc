// Reads of regular files (and block devices) by fibers.
//
// A page-cache hit must cost what the plain read costs, with no thread hop:
// each read is first tried with preadv2(RWF_NOWAIT), which copies from the
// page cache and returns EAGAIN instead of starting disk I/O. Only then is
// the rest read on the blocking-call pool. RWF_NOWAIT may also return a
// short count (the first pages cached, the next not) which is not EOF: the
// rest is asked for again, because a regular file's blocking read returns
// short only at end of file and programs count on it. That costs one more
// system call when a read reaches end of file.
//
// A filesystem without RWF_NOWAIT (EOPNOTSUPP: procfs, sysfs, most FUSE)
// is read directly from then on: for the pseudo-filesystems, which are the
// common case, a read never waits for a device.
//
// Writes to regular files stay plain libc calls: a buffered write copies
// into the page cache (the hop would cost ten times the write); what can
// make it wait (dirty-page throttling) is not covered by RWF_NOWAIT; and
// splitting a write into a non-blocking part and a rest would break the
// atomicity of O_APPEND writes that log files rely on.
#include "file_read.h"

#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

#include "../runtime/native.h"
#include "next.h"
#include "offload.h"
#include "transfer.h"

using namespace greenld;

namespace {

next::Symbol<decltype(::readv)> next_readv{"readv"};
next::Symbol<decltype(::preadv)> next_preadv{"preadv"};

// -errno or the count, never touching errno.
long try_cached(int fd, const iovec* iov, int count, off_t offset) {
    return native::sys(SYS_preadv2, fd, reinterpret_cast<long>(iov), count, long(offset), long(offset) >> 32,
                       RWF_NOWAIT);
}

long read_rest(int fd, const iovec* iov, int count, off_t offset) {
    return offset < 0 ? next_readv(fd, iov, count) : next_preadv(fd, iov, count, offset);
}

}  // namespace

FdEntry* greenld::regular_file_entry(int fd) {
    if (!fiber_must_not_block()) return nullptr;
    FdEntry* e = FdTable::get().entry(fd);
    if (!e) return nullptr;
    FdKind kind = e->kind.load(std::memory_order_acquire);
    if (kind == FdKind::unknown) kind = FdTable::get().classify(fd, e);
    if (kind != FdKind::file || e->file_nowait_unsupported.load(std::memory_order_relaxed)) return nullptr;
    return e;
}

ssize_t greenld::read_regular_file(int fd, FdEntry* e, const iovec* iov, int count, off_t offset) {
    IovCursor cursor(iov, count);
    if (count < 0 || count > IOV_MAX || cursor.failed())
        return offload(JobKind::io, [&] { return read_rest(fd, iov, count, offset); });
    const int saved = errno;
    const size_t total = cursor.total();
    size_t done = 0;
    for (;;) {
        int left = 0;
        iovec* rest = cursor.at(done, &left);
        const off_t at = offset < 0 ? -1 : offset + off_t(done);
        long n = try_cached(fd, rest, left, at);
        if (n > 0) {
            done += size_t(n);
            if (done < total) continue;
            break;
        }
        if (n == 0) break;  // end of file
        if (n == -EOPNOTSUPP) {
            e->file_nowait_unsupported.store(true, std::memory_order_relaxed);
            if (done) break;  // what we have, as a read interrupted there would
            return read_rest(fd, iov, count, offset);
        }
        if (n != -EAGAIN) {
            if (done) break;
            errno = int(-n);
            return -1;
        }
        // Not in the page cache: the disk read happens on the pool.
        errno = saved;
        long r = offload(JobKind::io, [&] { return read_rest(fd, rest, left, at); });
        if (r < 0) {
            if (done) break;
            return -1;
        }
        done += size_t(r);
        break;
    }
    errno = saved;
    return ssize_t(done);
}

// The positioned reads. glibc's pread64/preadv64 are the same functions on
// LP64 but separate symbols.
namespace {

next::Symbol<decltype(::pread)> next_pread{"pread"};
next::Symbol<decltype(::pread64)> next_pread64{"pread64"};
next::Symbol<decltype(::preadv64)> next_preadv64{"preadv64"};

}  // namespace

GREENLD_EXPORT ssize_t pread(int fd, void* buf, size_t n, off_t offset) {
    FdEntry* e = offset >= 0 ? regular_file_entry(fd) : nullptr;
    if (!e) return next_pread(fd, buf, n, offset);
    iovec v{buf, n};
    return read_regular_file(fd, e, &v, 1, offset);
}

GREENLD_EXPORT ssize_t pread64(int fd, void* buf, size_t n, off64_t offset) {
    FdEntry* e = offset >= 0 ? regular_file_entry(fd) : nullptr;
    if (!e) return next_pread64(fd, buf, n, offset);
    iovec v{buf, n};
    return read_regular_file(fd, e, &v, 1, off_t(offset));
}

GREENLD_EXPORT ssize_t preadv(int fd, const iovec* iov, int count, off_t offset) {
    FdEntry* e = offset >= 0 && count >= 0 && count <= IOV_MAX ? regular_file_entry(fd) : nullptr;
    if (!e) return next_preadv(fd, iov, count, offset);
    return read_regular_file(fd, e, iov, count, offset);
}

GREENLD_EXPORT ssize_t preadv64(int fd, const iovec* iov, int count, off64_t offset) {
    FdEntry* e = offset >= 0 && count >= 0 && count <= IOV_MAX ? regular_file_entry(fd) : nullptr;
    if (!e) return next_preadv64(fd, iov, count, offset);
    return read_regular_file(fd, e, iov, count, off_t(offset));
}

extern "C" [[noreturn]] void __chk_fail(void);

GREENLD_EXPORT ssize_t __pread_chk(int fd, void* buf, size_t n, off_t offset, size_t buflen) {
    if (n > buflen) __chk_fail();
    return pread(fd, buf, n, offset);
}

GREENLD_EXPORT ssize_t __pread64_chk(int fd, void* buf, size_t n, off64_t offset, size_t buflen) {
    if (n > buflen) __chk_fail();
    return pread64(fd, buf, n, offset);
}
