// The stdio streams greenld knows, and the lock of ours they carry.
//
// Two kinds of stream get our lock:
//  - cooperative streams (stdio.cpp): fdopen() of a socket or pipe, popen,
//    fopen of a FIFO; their I/O goes through the cooperative read/write.
//  - glibc's own streams on an fd that can wait (stdin, stdout, stderr on a
//    pipe, socket, tty or FIFO; a stream freopen()ed onto a FIFO; fopen()
//    of a tty), adopted when a fiber first calls stdio on one. glibc reads
//    and writes those with internal calls we cannot interpose, so a fiber's
//    call on one is split (stdio_read.cpp, stdio_write.cpp) so that every
//    system call glibc then makes finds the fd ready.
//
// Either way a fiber may park inside a stdio call. glibc's per-FILE lock is
// recursive per OS thread, so another fiber of the same hub would walk right
// in: our lock, recursive per fiber, is taken around every stdio entry point
// and by flockfile(). It lives in the FILE's padding (_unused2), behind a
// magic word.
#pragma once

#include <stdio.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <optional>

#include "../runtime/fd_table.h"
#include "../runtime/hub.h"
#include "cancel.h"

namespace greenld {

// A FILE on `fd` whose reads and writes go through the cooperative
// read/write wrappers, with a stream lock that fibers can wait on; fclose
// closes fd. `mode` as fopencookie takes it. Null when out of memory.
FILE* cooperative_stream(int fd, const char* mode);

struct StreamLock {
    std::atomic<uint32_t> word{0};  // 0 free, 1 held, 2 held with waiters
    int owner = 0;
    unsigned depth = 0;
    // How deep the owner holds the stream through flockfile(): glibc's own
    // lock is then held by the owner's OS thread, so a call made for it on
    // another thread (the blocking-call pool) must not take it again.
    unsigned file_locks = 0;
    // A stream of glibc's own (adopted), not a cooperative one.
    bool glibc = false;
    // glibc streams: the read proxy (stdio_read.cpp), made on first need,
    // and what it reads while a call runs on it.
    FILE* proxy = nullptr;
    char* proxy_buffer = nullptr;
    FILE* proxied = nullptr;
};

// glibc's own lock of a FILE (libc's flockfile, not ours), held for its
// scope around our use of the FILE's fields.
class GlibcFileLock {
public:
    explicit GlibcFileLock(FILE* fp);
    ~GlibcFileLock();
    GlibcFileLock(const GlibcFileLock&) = delete;
    GlibcFileLock& operator=(const GlibcFileLock&) = delete;

private:
    FILE* fp_;
};

// The lock of a stream that has one, else null.
StreamLock* lock_of(FILE* fp);
void acquire(StreamLock* l);
bool try_acquire(StreamLock* l);
void release(StreamLock* l);

// For a fiber's stdio call on fp: the fd's entry when fp is one of glibc's
// own streams on an fd that can wait, for which the call must be split;
// *lock is then its lock (the stream is adopted on first use). Null for
// everything else (a regular file, a cooperative stream, a nonblocking fd,
// a wide stream), *lock unchanged.
FdEntry* glibc_stream_entry(FILE* fp, StreamLock** lock);

// With the stream's lock held, for a fiber: writes out what a glibc
// stream's buffer holds, parking until the fd takes it (stdio_write.cpp).
// 0, or EOF with the error flag and errno set.
int drain_glibc_output(FILE* fp, FdEntry* e);

// The frame of every stdio entry point. A stream without our lock (a
// regular file's, or any stream a native thread uses before a fiber did)
// gets plain glibc: direct(). Otherwise the call runs under the lock:
// split(entry) for a fiber on a glibc stream that can wait, else direct().
// A split call is a cancellation point (the reads and writes inside the
// glibc call are); errno is the call's.
template <typename Direct, typename Split>
auto stdio_call(FILE* fp, Direct direct, Split split) {
    StreamLock* l = lock_of(fp);
    FdEntry* e = Hub::current_fiber() ? glibc_stream_entry(fp, &l) : nullptr;
    if (!l) return direct();
    std::optional<CancelPoint> point;
    if (e) point.emplace();
    acquire(l);
    auto r = e ? split(e) : direct();
    const int err = errno;
    release(l);
    errno = err;
    return r;
}

// Bits of glibc's FILE::_flags (libio.h; the ABI of every glibc since 2.1).
namespace file_flags {
constexpr int kUnbuffered = 0x0002;
constexpr int kNoReads = 0x0004;
constexpr int kNoWrites = 0x0008;
constexpr int kEofSeen = 0x0010;
constexpr int kErrSeen = 0x0020;
constexpr int kInBackup = 0x0100;
constexpr int kLineBuf = 0x0200;
constexpr int kCurrentlyPutting = 0x0800;
constexpr int kIsFilebuf = 0x2000;
}  // namespace file_flags

// Flag changes made outside a glibc call, under glibc's lock as its own are.
void set_stream_error(FILE* fp, int error);

}  // namespace greenld
