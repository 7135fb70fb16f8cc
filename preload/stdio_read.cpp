// stdio reads: the entry points (stdio_stream.h's frame), and for a fiber
// on one of glibc's own streams whose fd can wait (stdin on a pipe, socket,
// tty or FIFO) the split that keeps glibc's internal read(2) from blocking
// the hub.
//
// glibc refills a stream's buffer with one read(2), which blocks while the
// fd has no input. A call the buffer can satisfy (the line is there, the
// bytes are there) runs as it is. Otherwise:
//  - getc and friends need one refill at most: the fiber parks until the fd
//    is readable, then glibc's single read finds input.
//  - fgets, fread, getline/getdelim and scanf may need several: the call
//    runs on a proxy stream (fopencookie) whose reads are served from the
//    real stream's buffer, refilled by one glibc read after the fd became
//    readable whenever it runs dry. What the proxy read and the call left
//    goes back to the real buffer at the end. The call itself is glibc's:
//    return values, *lineptr growth, conversions, EOF and error flags.
//  - A proxy read straight into the caller's memory (fread of a large
//    count, as glibc does natively) asks FIONREAD and has glibc read at most
//    that much: bulk reads cost two system calls per refill.
// Another process reading the same fd between the readiness check and
// glibc's read can still make that read block the hub.
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

#include <cstring>
#include <new>

#include "../runtime/diag.h"
#include "../runtime/io.h"
#include "../runtime/native.h"
#include "cooperative.h"
#include "next.h"
#include "stdio_stream.h"

using namespace greenld;
using namespace greenld::file_flags;

namespace {

next::Symbol<decltype(::fgets)> next_fgets{"fgets"};
next::Symbol<decltype(::fgets_unlocked)> next_fgets_unlocked{"fgets_unlocked"};
next::Symbol<char*(char*, size_t, int, FILE*)> next_fgets_chk{"__fgets_chk"};
next::Symbol<char*(char*, size_t, int, FILE*)> next_fgets_unlocked_chk{"__fgets_unlocked_chk"};
next::Symbol<decltype(::fgetc)> next_fgetc{"fgetc"};
next::Symbol<decltype(::getc)> next_getc{"getc"};
next::Symbol<decltype(::fgetc_unlocked)> next_fgetc_unlocked{"fgetc_unlocked"};
next::Symbol<decltype(::getc_unlocked)> next_getc_unlocked{"getc_unlocked"};
next::Symbol<int(FILE*)> next_uflow{"__uflow"};
next::Symbol<int(FILE*)> next_underflow{"__underflow"};
next::Symbol<decltype(::fread)> next_fread{"fread"};
next::Symbol<decltype(::fread_unlocked)> next_fread_unlocked{"fread_unlocked"};
next::Symbol<size_t(void*, size_t, size_t, size_t, FILE*)> next_fread_chk{"__fread_chk"};
next::Symbol<size_t(void*, size_t, size_t, size_t, FILE*)> next_fread_unlocked_chk{"__fread_unlocked_chk"};
next::Symbol<decltype(::getdelim)> next_getdelim{"getdelim"};
next::Symbol<decltype(::ungetc)> next_ungetc{"ungetc"};
next::Symbol<int(FILE*, const char*, va_list)> next_isoc99_vfscanf{"__isoc99_vfscanf"};
next::Symbol<int(FILE*, const char*, va_list)> next_vfscanf{"vfscanf"};

// Bytes the stream holds unread: its get area, plus, while ungetc()'s
// backup area is in use, the main area it goes back to (the sum gnulib's
// freadahead makes).
size_t buffered(const FILE* fp) {
    size_t n = fp->_IO_read_end > fp->_IO_read_ptr ? size_t(fp->_IO_read_end - fp->_IO_read_ptr) : 0;
    if ((fp->_flags & kInBackup) && fp->_IO_save_end > fp->_IO_save_base)
        n += size_t(fp->_IO_save_end - fp->_IO_save_base);
    return n;
}

// True when glibc will not read the fd for a call that consumes at most
// `limit` bytes and stops after `delim` (-1: none): the buffer holds them,
// or the call fails or ends at once (EOF seen, a write-only stream).
bool satisfied_by_buffer(const FILE* fp, int delim, size_t limit) {
    if (fp->_flags & (kEofSeen | kNoReads)) return true;
    if (buffered(fp) >= limit) return true;
    if (delim < 0 || fp->_IO_read_end <= fp->_IO_read_ptr) return false;
    size_t area = size_t(fp->_IO_read_end - fp->_IO_read_ptr);
    return memchr(fp->_IO_read_ptr, delim, area < limit ? area : limit) != nullptr;
}

int input_bytes(int fd) {
    int n = 0;
    return native::sys(SYS_ioctl, fd, FIONREAD, reinterpret_cast<long>(&n)) == 0 ? n : -1;
}

bool readable_now(int fd) {
    pollfd p{fd, POLLIN, 0};
    return native::sys(SYS_poll, reinterpret_cast<long>(&p), 1, 0) == 1;
}

// Parks the fiber until one read of fd will not block (input, EOF or an
// error waits there). Returns the bytes FIONREAD reports (0 when it cannot
// tell), or -1 when the wait failed: the stream's error flag and errno are
// then what a failed read(2) would have left (EINTR from a handler without
// SA_RESTART, EBADF when the fd was closed).
long await_input(FILE* fp, int fd) {
    for (;;) {
        int n = input_bytes(fd);
        if (n > 0) return n;
        if (readable_now(fd)) return 0;
        int rc = wait_fd(fd, kWaitRead, Deadline::never());
        if (rc == 0 || restarts_after(rc, Deadline::never())) continue;
        set_stream_error(fp, rc);
        return -1;
    }
}

// glibc turns a writing stream into a reading one by flushing it first.
bool settle_output(FILE* fp, FdEntry* e) {
    return fp->_IO_write_ptr <= fp->_IO_write_base || drain_glibc_output(fp, e) == 0;
}

// For a call that needs one refill at most: when the buffer is empty, waits
// until glibc's read will find input. False when the wait failed.
bool await_one_refill(FILE* fp, FdEntry* e) {
    if (buffered(fp) || (fp->_flags & (kEofSeen | kNoReads))) return true;
    return settle_output(fp, e) && await_input(fp, fp->_fileno) >= 0;
}

// ---- the proxy --------------------------------------------------------------

// Small: what the proxy read ahead is copied back when the call ends. A
// fread of more goes straight into the caller's memory.
constexpr size_t kProxyBuffer = 1024;

ssize_t proxy_read(void* cookie, char* buf, size_t size) {
    auto* l = static_cast<StreamLock*>(cookie);
    FILE* fp = l->proxied;
    if (buffered(fp) == 0) {
        if (fp->_flags & kEofSeen) return 0;
        const long avail = await_input(fp, fp->_fileno);
        if (avail < 0) return -1;
        // Whole buffers' worth (glibc then makes one read, straight into
        // the caller's memory), no more than is there.
        const size_t block = size_t(fp->_IO_buf_end - fp->_IO_buf_base);
        size_t direct = size < size_t(avail > 0 ? avail : 0) ? size : size_t(avail > 0 ? avail : 0);
        if (block) direct -= direct % block;
        if (direct && buf != l->proxy_buffer) {
            size_t got = next_fread(buf, 1, direct, fp);
            if (got) return ssize_t(got);
            return (fp->_flags & kErrSeen) ? -1 : 0;
        }
        GlibcFileLock lock(fp);
        if (next_underflow(fp) == EOF) return (fp->_flags & kErrSeen) ? -1 : 0;
    }
    GlibcFileLock lock(fp);
    // The backup area is spent, the main area is not: __underflow only
    // switches back to it.
    if (fp->_IO_read_ptr >= fp->_IO_read_end) next_underflow(fp);
    size_t n = size_t(fp->_IO_read_end - fp->_IO_read_ptr);
    if (n > size) n = size;
    memcpy(buf, fp->_IO_read_ptr, n);
    fp->_IO_read_ptr += n;
    return ssize_t(n);
}

FILE* proxy_of(StreamLock* l) {
    if (l->proxy) return l->proxy;
    char* buffer = new (std::nothrow) char[kProxyBuffer];
    cookie_io_functions_t io{proxy_read, nullptr, nullptr, nullptr};
    FILE* proxy = buffer ? fopencookie(l, "r", io) : nullptr;
    if (proxy && setvbuf(proxy, buffer, _IOFBF, kProxyBuffer) == 0) {
        l->proxy = proxy;
        l->proxy_buffer = buffer;
        return proxy;
    }
    if (proxy) fclose(proxy);
    delete[] buffer;
    diag::message("out of memory for a stdio read proxy: a fiber's read of a glibc stream blocks its hub");
    return nullptr;
}

// What the proxy read from fp and the call did not consume goes back: the
// last bytes served came from fp's current buffer, right before its read
// pointer, which simply steps back. (ungetc() is the fallback for a proxy
// that had to push back further than it read, which no call does.)
void give_back(FILE* proxy, FILE* fp) {
    const char* p = proxy->_IO_read_ptr;
    const size_t n = proxy->_IO_read_end > p ? size_t(proxy->_IO_read_end - p) : 0;
    GlibcFileLock lock(fp);
    if (proxy->_flags & kInBackup) {
        // The backup area [p, n) comes first, then the main area.
        const char* main = proxy->_IO_save_base;
        for (size_t i = size_t(proxy->_IO_save_end - main); i-- > 0;) next_ungetc((unsigned char)main[i], fp);
        for (size_t i = n; i-- > 0;) next_ungetc((unsigned char)p[i], fp);
    } else if (n) {
        if (size_t(fp->_IO_read_ptr - fp->_IO_read_base) >= n && memcmp(fp->_IO_read_ptr - n, p, n) == 0)
            fp->_IO_read_ptr -= n;
        else
            for (size_t i = n; i-- > 0;) next_ungetc((unsigned char)p[i], fp);
    }
    __fpurge(proxy);
    clearerr_unlocked(proxy);
}

// Runs call(stream) on the proxy of fp (on fp itself, blocking, if there is
// no memory for one). fp's error flag reports this call's errors, as for
// glibc's own fgets: cleared during it, then or-ed back.
template <typename Call>
auto via_proxy(FILE* fp, FdEntry* e, Call call) -> decltype(call(fp)) {
    using Result = decltype(call(fp));
    if (!settle_output(fp, e)) return call(fp);
    StreamLock* l = lock_of(fp);
    FILE* proxy = l ? proxy_of(l) : nullptr;
    if (!proxy) return call(fp);
    l->proxied = fp;
    int old_error;
    {
        GlibcFileLock lock(fp);
        old_error = fp->_flags & kErrSeen;
        fp->_flags &= ~kErrSeen;
    }
    Result r = call(proxy);
    const int err = errno;
    give_back(proxy, fp);
    {
        GlibcFileLock lock(fp);
        fp->_flags |= old_error;
    }
    l->proxied = nullptr;
    errno = err;
    return r;
}

// The frame for calls that consume at most `limit` bytes, stopping after
// `delim`: glibc's call as it is when the buffer satisfies it, else on
// the proxy.
template <typename Call>
auto read_call(FILE* fp, int delim, size_t limit, Call call) {
    return stdio_call(
        fp, [&] { return call(fp); },
        [&](FdEntry* e) { return satisfied_by_buffer(fp, delim, limit) ? call(fp) : via_proxy(fp, e, call); });
}

// The frame for calls that need one refill at most.
template <typename Call, typename Failed>
auto byte_call(FILE* fp, Call call, Failed failed) {
    return stdio_call(fp, call, [&](FdEntry* e) { return await_one_refill(fp, e) ? call() : failed; });
}

size_t fgets_limit(int n) { return n > 1 ? size_t(n - 1) : 0; }

// fread's byte count, or SIZE_MAX when it overflows (glibc's own fread
// then decides).
size_t fread_limit(size_t size, size_t n) {
    size_t bytes;
    return __builtin_mul_overflow(size, n, &bytes) ? SIZE_MAX : bytes;
}

}  // namespace

GREENLD_EXPORT char* fgets(char* s, int n, FILE* fp) {
    return read_call(fp, '\n', fgets_limit(n), [&](FILE* f) { return next_fgets(s, n, f); });
}
GREENLD_EXPORT char* fgets_unlocked(char* s, int n, FILE* fp) {
    return read_call(fp, '\n', fgets_limit(n), [&](FILE* f) { return next_fgets_unlocked(s, n, f); });
}
GREENLD_EXPORT char* __fgets_chk(char* s, size_t size, int n, FILE* fp) {
    return read_call(fp, '\n', fgets_limit(n), [&](FILE* f) { return next_fgets_chk(s, size, n, f); });
}
GREENLD_EXPORT char* __fgets_unlocked_chk(char* s, size_t size, int n, FILE* fp) {
    return read_call(fp, '\n', fgets_limit(n), [&](FILE* f) { return next_fgets_unlocked_chk(s, size, n, f); });
}

GREENLD_EXPORT size_t fread(void* p, size_t size, size_t n, FILE* fp) {
    return read_call(fp, -1, fread_limit(size, n), [&](FILE* f) { return next_fread(p, size, n, f); });
}
GREENLD_EXPORT size_t fread_unlocked(void* p, size_t size, size_t n, FILE* fp) {
    return read_call(fp, -1, fread_limit(size, n), [&](FILE* f) { return next_fread_unlocked(p, size, n, f); });
}
GREENLD_EXPORT size_t __fread_chk(void* p, size_t cap, size_t size, size_t n, FILE* fp) {
    return read_call(fp, -1, fread_limit(size, n), [&](FILE* f) { return next_fread_chk(p, cap, size, n, f); });
}
GREENLD_EXPORT size_t __fread_unlocked_chk(void* p, size_t cap, size_t size, size_t n, FILE* fp) {
    return read_call(fp, -1, fread_limit(size, n),
                     [&](FILE* f) { return next_fread_unlocked_chk(p, cap, size, n, f); });
}

GREENLD_EXPORT ssize_t getdelim(char** line, size_t* cap, int delim, FILE* fp) {
    return read_call(fp, (unsigned char)delim, SIZE_MAX, [&](FILE* f) { return next_getdelim(line, cap, delim, f); });
}
GREENLD_EXPORT ssize_t __getdelim(char** line, size_t* cap, int delim, FILE* fp) {
    return getdelim(line, cap, delim, fp);
}
GREENLD_EXPORT ssize_t getline(char** line, size_t* cap, FILE* fp) { return getdelim(line, cap, '\n', fp); }

GREENLD_EXPORT int fgetc(FILE* fp) {
    return byte_call(fp, [&] { return next_fgetc(fp); }, EOF);
}
GREENLD_EXPORT int getc(FILE* fp) {
    return byte_call(fp, [&] { return next_getc(fp); }, EOF);
}
GREENLD_EXPORT int _IO_getc(FILE* fp) { return getc(fp); }
GREENLD_EXPORT int getchar(void) { return getc(stdin); }
GREENLD_EXPORT int fgetc_unlocked(FILE* fp) {
    return byte_call(fp, [&] { return next_fgetc_unlocked(fp); }, EOF);
}
GREENLD_EXPORT int getc_unlocked(FILE* fp) {
    return byte_call(fp, [&] { return next_getc_unlocked(fp); }, EOF);
}
GREENLD_EXPORT int getchar_unlocked(void) { return getc_unlocked(stdin); }
// What the inline getc_unlocked() of <stdio.h> calls when the buffer is
// empty.
GREENLD_EXPORT int __uflow(FILE* fp) {
    return byte_call(fp, [&] { return next_uflow(fp); }, EOF);
}

GREENLD_EXPORT int ungetc(int c, FILE* fp) {
    auto call = [&] { return next_ungetc(c, fp); };
    return stdio_call(fp, call, [&](FdEntry*) { return call(); });
}

// scanf cannot say beforehand how much it will read: a fiber's call on a
// stream that can wait always runs on the proxy.
namespace {
template <typename Vfscanf>
int scan(Vfscanf& vfscanf, FILE* fp, const char* fmt, va_list ap) {
    return stdio_call(
        fp, [&] { return vfscanf(fp, fmt, ap); },
        [&](FdEntry* e) {
            if (fp->_flags & (kEofSeen | kNoReads)) return vfscanf(fp, fmt, ap);
            return via_proxy(fp, e, [&](FILE* f) { return vfscanf(f, fmt, ap); });
        });
}
}  // namespace

GREENLD_EXPORT int __isoc99_vfscanf(FILE* fp, const char* fmt, va_list ap) {
    return scan(next_isoc99_vfscanf, fp, fmt, ap);
}
GREENLD_EXPORT int __isoc99_fscanf(FILE* fp, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = __isoc99_vfscanf(fp, fmt, ap);
    va_end(ap);
    return r;
}
GREENLD_EXPORT int __isoc99_vscanf(const char* fmt, va_list ap) { return __isoc99_vfscanf(stdin, fmt, ap); }
GREENLD_EXPORT int __isoc99_scanf(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = __isoc99_vfscanf(stdin, fmt, ap);
    va_end(ap);
    return r;
}
// The pre-C99 entry points (%as allocates), for programs built with them.
// <stdio.h> maps the names to the C99 ones in C++: asm labels name them.
extern "C" int legacy_vfscanf(FILE*, const char*, va_list) __asm__("vfscanf");
extern "C" int legacy_fscanf(FILE*, const char*, ...) __asm__("fscanf");
extern "C" int legacy_vscanf(const char*, va_list) __asm__("vscanf");
extern "C" int legacy_scanf(const char*, ...) __asm__("scanf");

GREENLD_EXPORT int legacy_vfscanf(FILE* fp, const char* fmt, va_list ap) { return scan(next_vfscanf, fp, fmt, ap); }
GREENLD_EXPORT int legacy_fscanf(FILE* fp, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = legacy_vfscanf(fp, fmt, ap);
    va_end(ap);
    return r;
}
GREENLD_EXPORT int legacy_vscanf(const char* fmt, va_list ap) { return legacy_vfscanf(stdin, fmt, ap); }
GREENLD_EXPORT int legacy_scanf(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = legacy_vfscanf(stdin, fmt, ap);
    va_end(ap);
    return r;
}
