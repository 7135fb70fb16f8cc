// open and its variants, for the one case where open itself blocks: a
// FIFO opened for reading only or writing only waits for the other end.
//
// Deciding costs at most one fstatat, and only when the open could block:
// a fiber's call (a native thread just blocks, as libc) whose flags leave
// a FIFO able to wait. O_NONBLOCK, O_PATH, O_DIRECTORY, O_TMPFILE,
// O_CREAT|O_EXCL (which fails on an existing file) and O_RDWR (on Linux a
// FIFO opened read-write never waits) cannot. A FIFO is then opened on the
// blocking-call pool, as a rendezvous job. A path swapped for a FIFO
// between the fstatat and the open still opens correctly, blocking the hub.
//
// Every fd a fiber opens is recorded in the fd table as new (its number may
// have held a socket closed behind our back), with the kind the fstatat saw.
// fopen() opens inside glibc: it is handled at the end of this file.
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "../runtime/fd_table.h"
#include "../runtime/native.h"
#include "next.h"
#include "offload.h"

using namespace greenld;

namespace {

next::Symbol<int(const char*, int, ...)> next_open{"open"};
next::Symbol<int(const char*, int, ...)> next_open64{"open64"};
next::Symbol<int(int, const char*, int, ...)> next_openat{"openat"};
next::Symbol<int(int, const char*, int, ...)> next_openat64{"openat64"};
next::Symbol<int(const char*, int)> next_open_2{"__open_2"};
next::Symbol<int(const char*, int)> next_open64_2{"__open64_2"};
next::Symbol<int(int, const char*, int)> next_openat_2{"__openat_2"};
next::Symbol<int(int, const char*, int)> next_openat64_2{"__openat64_2"};
next::Symbol<decltype(::creat)> next_creat{"creat"};
next::Symbol<decltype(::creat64)> next_creat64{"creat64"};

bool needs_mode(int flags) { return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE; }

bool fifo_may_block(int flags) {
    if (flags & (O_NONBLOCK | O_PATH | O_DIRECTORY)) return false;
    if ((flags & O_TMPFILE) == O_TMPFILE) return false;
    if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL)) return false;
    return (flags & O_ACCMODE) != O_RDWR;
}

FdKind kind_of(mode_t mode) {
    if (S_ISFIFO(mode)) return FdKind::pipe;
    if (S_ISREG(mode) || S_ISDIR(mode) || S_ISBLK(mode)) return FdKind::file;
    return FdKind::unknown;  // classified on first use
}

// call() opens as the program asked. A native caller's open is just that.
template <typename Call>
int open_cooperatively(int dirfd, const char* path, int flags, Call call) {
    if (!fiber_must_not_block()) return call();
    FdKind kind = FdKind::unknown;  // classified on first use
    if (fifo_may_block(flags)) {
        struct stat st;
        const int at_flags = (flags & O_NOFOLLOW) ? AT_SYMLINK_NOFOLLOW : 0;
        // Raw: a failure here (ENOENT before an O_CREAT) must not touch errno.
        if (native::sys(SYS_newfstatat, dirfd, reinterpret_cast<long>(path), reinterpret_cast<long>(&st),
                        at_flags) == 0)
            kind = kind_of(st.st_mode);
    }
    int fd = kind == FdKind::pipe ? offload_interruptible(true, call) : call();
    if (fd >= 0) FdTable::get().reset(fd, kind, (flags & O_NONBLOCK) != 0, true);
    return fd;
}

}  // namespace

GREENLD_EXPORT int open(const char* path, int flags, ...) {
    mode_t mode = 0;
    if (needs_mode(flags)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    return open_cooperatively(AT_FDCWD, path, flags, [&] { return next_open(path, flags, mode); });
}

GREENLD_EXPORT int open64(const char* path, int flags, ...) {
    mode_t mode = 0;
    if (needs_mode(flags)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    return open_cooperatively(AT_FDCWD, path, flags, [&] { return next_open64(path, flags, mode); });
}

GREENLD_EXPORT int openat(int dirfd, const char* path, int flags, ...) {
    mode_t mode = 0;
    if (needs_mode(flags)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    return open_cooperatively(dirfd, path, flags, [&] { return next_openat(dirfd, path, flags, mode); });
}

GREENLD_EXPORT int openat64(int dirfd, const char* path, int flags, ...) {
    mode_t mode = 0;
    if (needs_mode(flags)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    return open_cooperatively(dirfd, path, flags, [&] { return next_openat64(dirfd, path, flags, mode); });
}

// _FORTIFY_SOURCE variants: glibc's own aborts on O_CREAT without a mode;
// those flags never reach a FIFO wait, so they go to it unchanged.
GREENLD_EXPORT int __open_2(const char* path, int flags) {
    return open_cooperatively(AT_FDCWD, path, flags, [&] { return next_open_2(path, flags); });
}

GREENLD_EXPORT int __open64_2(const char* path, int flags) {
    return open_cooperatively(AT_FDCWD, path, flags, [&] { return next_open64_2(path, flags); });
}

GREENLD_EXPORT int __openat_2(int dirfd, const char* path, int flags) {
    return open_cooperatively(dirfd, path, flags, [&] { return next_openat_2(dirfd, path, flags); });
}

GREENLD_EXPORT int __openat64_2(int dirfd, const char* path, int flags) {
    return open_cooperatively(dirfd, path, flags, [&] { return next_openat64_2(dirfd, path, flags); });
}

// creat() is open(O_CREAT|O_WRONLY|O_TRUNC): on an existing FIFO it waits
// for a reader.
GREENLD_EXPORT int creat(const char* path, mode_t mode) {
    return open_cooperatively(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC,
                              [&] { return next_creat(path, mode); });
}

GREENLD_EXPORT int creat64(const char* path, mode_t mode) {
    return open_cooperatively(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC,
                              [&] { return next_creat64(path, mode); });
}

// fopen() opens inside glibc, out of our reach: a FIFO opened for reading
// or writing only would block the hub there, and glibc's stream would then
// read and write it with the hub's thread. A fiber's fopen of a FIFO that
// may wait therefore opens it here (with the flags fopen would use, so
// errno and the fd's flags are fopen's) and wraps the fd with fdopen(),
// whose stream on a pipe is cooperative (stdio.cpp). Anything else, and a
// mode this parser does not know (",ccs=" for wide streams), is glibc's.
namespace {

next::Symbol<decltype(::fopen)> next_fopen{"fopen"};
next::Symbol<decltype(::fopen64)> next_fopen64{"fopen64"};
next::Symbol<decltype(::freopen)> next_freopen{"freopen"};
next::Symbol<decltype(::freopen64)> next_freopen64{"freopen64"};

// fopen's open flags for `mode` (glibc's parser: the first character and
// then up to six of "+xbmce"), or -1 when glibc should parse it.
int fopen_flags(const char* mode) {
    int flags;
    switch (mode[0]) {
        case 'r': flags = O_RDONLY; break;
        case 'w': flags = O_WRONLY | O_CREAT | O_TRUNC; break;
        case 'a': flags = O_WRONLY | O_CREAT | O_APPEND; break;
        default: return -1;  // glibc's EINVAL
    }
    for (const char* p = mode + 1; *p && p < mode + 7; ++p) {
        switch (*p) {
            case '+': flags = (flags & ~O_ACCMODE) | O_RDWR; break;
            case 'x': flags |= O_EXCL; break;
            case 'e': flags |= O_CLOEXEC; break;
            case 'b': case 'm': case 'c': break;
            default: return -1;  // ",ccs=" and the unknown
        }
    }
    return flags;
}

// True when a fiber's fopen/freopen of `path` with `flags` would wait for
// a FIFO's other end.
bool opens_waiting_fifo(const char* path, int flags) {
    if (!path || flags < 0 || !fiber_must_not_block() || !fifo_may_block(flags)) return false;
    struct stat st;
    return native::sys(SYS_newfstatat, AT_FDCWD, reinterpret_cast<long>(path), reinterpret_cast<long>(&st), 0) ==
               0 &&
           S_ISFIFO(st.st_mode);
}

template <typename Call>
FILE* fopen_cooperatively(const char* path, const char* mode, Call& call) {
    const int flags = mode ? fopen_flags(mode) : -1;
    if (!opens_waiting_fifo(path, flags)) return call(path, mode);
    const int fd = open_cooperatively(AT_FDCWD, path, flags, [&] { return next_open(path, flags, 0666); });
    if (fd < 0) return nullptr;
    FILE* fp = fdopen(fd, mode);
    if (!fp) {
        const int e = errno;
        close(fd);
        errno = e;
    }
    return fp;
}

}  // namespace

GREENLD_EXPORT FILE* fopen(const char* path, const char* mode) {
    return fopen_cooperatively(path, mode, next_fopen);
}

GREENLD_EXPORT FILE* fopen64(const char* path, const char* mode) {
    return fopen_cooperatively(path, mode, next_fopen64);
}

// freopen keeps the FILE (and its fd number: freopen(fifo, "r", stdin)):
// glibc's must do it, so a fiber's freopen of a FIFO that may wait runs
// whole on the pool while the fiber parks; the stream stays glibc's (a
// fiber's calls on it are split by stdio_read.cpp/stdio_write.cpp). Not
// interruptibly: glibc has closed the old stream when its open fails, so an
// interrupted freopen cannot be made again the way the kernel restarts an
// open. Signal handlers run meanwhile and the wait goes on (as under
// SA_RESTART); pthread_cancel acts once it has returned.
GREENLD_EXPORT FILE* freopen(const char* path, const char* mode, FILE* fp) {
    if (!mode || !opens_waiting_fifo(path, fopen_flags(mode))) return next_freopen(path, mode, fp);
    return offload(JobKind::rendezvous, [&] { return next_freopen(path, mode, fp); });
}

GREENLD_EXPORT FILE* freopen64(const char* path, const char* mode, FILE* fp) {
    if (!mode || !opens_waiting_fifo(path, fopen_flags(mode))) return next_freopen64(path, mode, fp);
    return offload(JobKind::rendezvous, [&] { return next_freopen64(path, mode, fp); });
}
