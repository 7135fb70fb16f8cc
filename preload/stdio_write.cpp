// stdio writes: the entry points (stdio_stream.h's frame), and for a fiber
// on one of glibc's own streams whose fd can wait (stdout, stderr on a
// pipe, socket, tty or FIFO) the split that keeps glibc's internal write(2)
// from blocking the hub.
//
// glibc writes when a buffer fills, at a newline on a line-buffered stream,
// at once on an unbuffered one, and at fflush. The data is fed to glibc in
// pieces chosen so that each glibc call either only copies into the buffer
// or makes exactly one write of at most PIPE_BUF bytes, which a pipe
// reporting POLLOUT takes whole (a socket too; a tty in practice): the
// fiber parks until the fd is writable, then glibc writes. What glibc
// would write straight from the caller's memory (an unbuffered stream's
// output, whole buffers' worth, complete lines of a line-buffered stream)
// goes out through the cooperative write() instead, while the buffer is
// empty. Flushing a buffer the program enlarged beyond PIPE_BUF with
// setvbuf runs on the blocking-call pool. The printf family formats into
// memory first (same bytes, same count, same %n), then writes that.
// Another process filling the same pipe between the readiness check and
// glibc's write can still make that write block the hub.
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "../runtime/io.h"
#include "../runtime/native.h"
#include "cooperative.h"
#include "next.h"
#include "offload.h"
#include "stdio_stream.h"

using namespace greenld;
using namespace greenld::file_flags;

extern "C" int __vsnprintf_chk(char*, size_t, int, size_t, const char*, va_list);

namespace {

next::Symbol<decltype(::fwrite)> next_fwrite{"fwrite"};
next::Symbol<decltype(::fwrite_unlocked)> next_fwrite_unlocked{"fwrite_unlocked"};
next::Symbol<decltype(::fputs)> next_fputs{"fputs"};
next::Symbol<decltype(::fputs_unlocked)> next_fputs_unlocked{"fputs_unlocked"};
next::Symbol<decltype(::puts)> next_puts{"puts"};
next::Symbol<decltype(::fputc)> next_fputc{"fputc"};
next::Symbol<decltype(::putc)> next_putc{"putc"};
next::Symbol<decltype(::fputc_unlocked)> next_fputc_unlocked{"fputc_unlocked"};
next::Symbol<decltype(::putc_unlocked)> next_putc_unlocked{"putc_unlocked"};
next::Symbol<int(FILE*, int)> next_overflow{"__overflow"};
next::Symbol<decltype(::vfprintf)> next_vfprintf{"vfprintf"};
next::Symbol<int(FILE*, int, const char*, va_list)> next_vfprintf_chk{"__vfprintf_chk"};
next::Symbol<decltype(::vdprintf)> next_vdprintf{"vdprintf"};
next::Symbol<int(int, int, const char*, va_list)> next_vdprintf_chk{"__vdprintf_chk"};
next::Symbol<decltype(::fflush)> next_fflush{"fflush"};
next::Symbol<decltype(::fflush_unlocked)> next_fflush_unlocked{"fflush_unlocked"};

// What one write may carry after POLLOUT: a pipe reporting POLLOUT has a
// free page.
constexpr size_t kAtomicWrite = PIPE_BUF;

size_t pending(const FILE* fp) {
    return fp->_IO_write_ptr > fp->_IO_write_base ? size_t(fp->_IO_write_ptr - fp->_IO_write_base) : 0;
}

bool writable_now(int fd) {
    pollfd p{fd, POLLOUT, 0};
    return native::sys(SYS_poll, reinterpret_cast<long>(&p), 1, 0) == 1;
}

// Parks the fiber until fd takes a write (or the write fails at once: a
// closed reader). False when the wait failed: the error flag and errno are
// what a failed write(2) would have left.
bool await_output(FILE* fp, int fd) {
    for (;;) {
        if (writable_now(fd)) return true;
        int rc = wait_fd(fd, kWaitWrite, Deadline::never());
        if (rc == 0 || restarts_after(rc, Deadline::never())) continue;
        set_stream_error(fp, rc);
        return false;
    }
}

// call(take_lock) on the pool, as a rendezvous job (it waits for the
// reader). glibc's lock is taken there unless the fiber holds it through
// flockfile(): the hub's thread holds it then, and the unlocked variant
// runs for the fiber that owns the stream.
template <typename Call>
auto on_pool(FILE* fp, Call call) {
    StreamLock* l = lock_of(fp);
    const bool take_lock = !(l && l->file_locks);
    return offload(JobKind::rendezvous, [&] { return call(take_lock); });
}

// Writes what glibc would write straight from the caller's memory with the
// cooperative write(), which parks the fiber as long as the fd is full.
// glibc's state needs no change: its buffer is empty, and a stream whose
// fd cannot seek keeps no offset.
size_t write_through(FILE* fp, const char* p, size_t n) {
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fp->_fileno, p + done, n - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            set_stream_error(fp, errno);
            break;
        }
        done += size_t(w);
    }
    return done;
}

// Puts n bytes into fp as fwrite() would, each write glibc makes finding
// the fd ready for it. Returns the bytes taken: fewer after an error, which
// glibc flagged (or we did, for a failed wait) with errno set.
size_t put(FILE* fp, FdEntry* e, const char* s, size_t n) {
    const int fd = fp->_fileno;
    size_t done = 0;
    while (done < n) {
        if (!(fp->_flags & kCurrentlyPutting) || !fp->_IO_write_base) {
            // Into put mode, the buffer allocated: nothing pending, glibc
            // writes nothing.
            GlibcFileLock lock(fp);
            if (next_overflow(fp, EOF) == EOF) break;
        }
        const char* p = s + done;
        const size_t rest = n - done;
        const size_t size = size_t(fp->_IO_buf_end - fp->_IO_buf_base);
        const size_t space = size_t(fp->_IO_buf_end - fp->_IO_write_ptr);
        if (pending(fp) == 0 && fp->_offset < 0) {
            // glibc writes at once what an unbuffered stream gets, whole
            // buffers' worth of a fully buffered one, and a line-buffered
            // one's lines (or whole buffers' worth of a line with no end).
            size_t through = 0;
            if (fp->_flags & kUnbuffered) {
                through = rest;
            } else if (fp->_flags & kLineBuf) {
                const void* nl = memrchr(p, '\n', rest);
                through = nl ? size_t(static_cast<const char*>(nl) - p) + 1 : 0;
                if (!nl && size && rest >= size) through = rest - rest % size;
            } else if (size && rest >= size) {
                through = rest - rest % size;
            }
            if (through) {
                const size_t w = write_through(fp, p, through);
                done += w;
                if (w < through) break;
                continue;
            }
        }
        size_t piece;
        bool writes;  // glibc writes pending + piece before the call returns
        if (fp->_flags & kUnbuffered) {
            piece = rest < kAtomicWrite ? rest : kAtomicWrite;
            writes = true;
        } else if (space == 0) {
            if (drain_glibc_output(fp, e) == EOF) break;
            continue;
        } else if (fp->_flags & kLineBuf) {
            const size_t span = rest < space ? rest : space;
            const void* nl = memchr(p, '\n', span);
            piece = nl ? size_t(static_cast<const char*>(nl) - p) + 1 : span;
            writes = nl != nullptr;
        } else {
            piece = rest < space ? rest : space;
            writes = false;
        }
        size_t took;
        if (!writes) {
            took = next_fwrite(p, 1, piece, fp);
        } else {
            const size_t out = pending(fp) + piece;
            if (out > kAtomicWrite && pending(fp)) {
                if (drain_glibc_output(fp, e) == EOF) break;
                continue;
            }
            if (!await_output(fp, fd)) break;
            if (out <= kAtomicWrite)
                took = next_fwrite(p, 1, piece, fp);
            else
                took = on_pool(fp, [&](bool lock) {
                    return lock ? next_fwrite(p, 1, piece, fp) : next_fwrite_unlocked(p, 1, piece, fp);
                });
        }
        done += took;
        if (took < piece) break;
    }
    return done;
}

bool can_write(const FILE* fp) { return !(fp->_flags & kNoWrites); }

// The frame of the calls that write bytes; put_call(e) uses put().
template <typename Direct, typename Put>
auto write_call(FILE* fp, Direct direct, Put put_call) {
    return stdio_call(fp, direct, [&](FdEntry* e) { return can_write(fp) ? put_call(e) : direct(); });
}

// True when putc(c) only stores into the buffer.
bool stores_only(const FILE* fp, int c) {
    return (fp->_flags & kCurrentlyPutting) && fp->_IO_write_base && !(fp->_flags & kUnbuffered) &&
           fp->_IO_write_ptr < fp->_IO_buf_end && !((fp->_flags & kLineBuf) && (unsigned char)c == '\n');
}

template <typename Direct>
int put_char(FILE* fp, int c, Direct direct) {
    return write_call(fp, direct, [&](FdEntry* e) {
        if (stores_only(fp, c)) return direct();
        const char ch = char(c);
        return put(fp, e, &ch, 1) == 1 ? int((unsigned char)c) : EOF;
    });
}

template <typename Direct>
size_t put_items(FILE* fp, const void* p, size_t size, size_t n, Direct direct) {
    return write_call(fp, direct, [&](FdEntry* e) -> size_t {
        const size_t bytes = size * n;  // glibc's fwrite does not check it either
        if (bytes == 0) return 0;
        const size_t done = put(fp, e, static_cast<const char*>(p), bytes);
        return done == bytes ? n : done / size;
    });
}

template <typename Direct>
int put_string(FILE* fp, const char* s, Direct direct) {
    return write_call(fp, direct, [&](FdEntry* e) {
        const size_t len = strlen(s);
        return put(fp, e, s, len) == len ? 1 : EOF;
    });
}

// The output of format(buffer, capacity), which is vsnprintf's contract,
// held in memory: a local buffer, or the heap when it is long. length() is
// -1 (errno set) when formatting failed or memory ran out.
class Formatted {
public:
    template <typename Format>
    explicit Formatted(Format format) {
        len_ = format(local_, sizeof local_);
        if (len_ < 0 || size_t(len_) < sizeof local_) return;
        data_ = static_cast<char*>(malloc(size_t(len_) + 1));
        if (!data_) {
            data_ = local_;
            errno = ENOMEM;
            len_ = -1;
            return;
        }
        format(data_, size_t(len_) + 1);
    }
    ~Formatted() {
        if (data_ == local_) return;
        const int err = errno;
        free(data_);
        errno = err;
    }
    Formatted(const Formatted&) = delete;
    Formatted& operator=(const Formatted&) = delete;

    int length() const { return len_; }
    const char* data() const { return data_; }

private:
    char local_[1024];
    char* data_ = local_;
    int len_ = -1;
};

// format: as for Formatted; the output is formatted in memory, then put.
template <typename Format>
int put_formatted(FILE* fp, FdEntry* e, Format format) {
    const Formatted text(format);
    const int len = text.length();
    if (len < 0) return len;
    return put(fp, e, text.data(), size_t(len)) == size_t(len) ? len : -1;
}

int print(FILE* fp, const char* fmt, va_list ap) {
    auto direct = [&] { return next_vfprintf(fp, fmt, ap); };
    return write_call(fp, direct, [&](FdEntry* e) {
        return put_formatted(fp, e, [&](char* buf, size_t cap) {
            va_list copy;
            va_copy(copy, ap);
            int r = vsnprintf(buf, cap, fmt, copy);
            va_end(copy);
            return r;
        });
    });
}

int print_chk(FILE* fp, int flag, const char* fmt, va_list ap) {
    auto direct = [&] { return next_vfprintf_chk(fp, flag, fmt, ap); };
    return write_call(fp, direct, [&](FdEntry* e) {
        return put_formatted(fp, e, [&](char* buf, size_t cap) {
            va_list copy;
            va_copy(copy, ap);
            int r = __vsnprintf_chk(buf, cap, flag, cap, fmt, copy);
            va_end(copy);
            return r;
        });
    });
}

int flush(FILE* fp) {
    auto direct = [&] { return next_fflush(fp); };
    return stdio_call(fp, direct, [&](FdEntry* e) {
        if (can_write(fp) && drain_glibc_output(fp, e) == EOF) return EOF;
        return direct();
    });
}

// dprintf: glibc formats into a stream of its own on fd and writes with an
// internal write(2). A fiber's output to an fd that can wait is formatted
// in memory and written with the cooperative write().
template <typename Format>
int print_to_fd(int fd, Format format) {
    const Formatted text(format);
    const int len = text.length();
    if (len < 0) return len;
    size_t done = 0;
    while (done < size_t(len)) {
        ssize_t w = write(fd, text.data() + done, size_t(len) - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            break;
        }
        done += size_t(w);
    }
    return done == size_t(len) ? len : -1;
}

bool fd_can_wait(int fd) { return Hub::current_fiber() && cooperative_entry(fd); }

}  // namespace

int greenld::drain_glibc_output(FILE* fp, FdEntry*) {
    const size_t p = pending(fp);
    if (!p) return 0;
    if (!await_output(fp, fp->_fileno)) return EOF;
    if (p <= kAtomicWrite) {
        GlibcFileLock lock(fp);
        return next_overflow(fp, EOF) == EOF ? EOF : 0;
    }
    return on_pool(fp, [&](bool lock) { return lock ? next_fflush(fp) : next_fflush_unlocked(fp); });
}

GREENLD_EXPORT size_t fwrite(const void* p, size_t size, size_t n, FILE* fp) {
    return put_items(fp, p, size, n, [&] { return next_fwrite(p, size, n, fp); });
}
GREENLD_EXPORT size_t fwrite_unlocked(const void* p, size_t size, size_t n, FILE* fp) {
    return put_items(fp, p, size, n, [&] { return next_fwrite_unlocked(p, size, n, fp); });
}

GREENLD_EXPORT int fputs(const char* s, FILE* fp) {
    return put_string(fp, s, [&] { return next_fputs(s, fp); });
}
GREENLD_EXPORT int fputs_unlocked(const char* s, FILE* fp) {
    return put_string(fp, s, [&] { return next_fputs_unlocked(s, fp); });
}
GREENLD_EXPORT int puts(const char* s) {
    FILE* fp = stdout;
    return write_call(fp, [&] { return next_puts(s); }, [&](FdEntry* e) {
        const size_t len = strlen(s);
        if (put(fp, e, s, len) != len || put(fp, e, "\n", 1) != 1) return EOF;
        return len + 1 > size_t(INT_MAX) ? INT_MAX : int(len + 1);
    });
}

GREENLD_EXPORT int fputc(int c, FILE* fp) {
    return put_char(fp, c, [&] { return next_fputc(c, fp); });
}
GREENLD_EXPORT int putc(int c, FILE* fp) {
    return put_char(fp, c, [&] { return next_putc(c, fp); });
}
GREENLD_EXPORT int _IO_putc(int c, FILE* fp) { return putc(c, fp); }
GREENLD_EXPORT int putchar(int c) { return putc(c, stdout); }
GREENLD_EXPORT int fputc_unlocked(int c, FILE* fp) {
    return put_char(fp, c, [&] { return next_fputc_unlocked(c, fp); });
}
GREENLD_EXPORT int putc_unlocked(int c, FILE* fp) {
    return put_char(fp, c, [&] { return next_putc_unlocked(c, fp); });
}
GREENLD_EXPORT int putchar_unlocked(int c) { return putc_unlocked(c, stdout); }
// What the inline putc_unlocked() of <stdio.h> calls when the buffer has
// no room (always, on a line-buffered or unbuffered stream); with EOF, a
// flush.
GREENLD_EXPORT int __overflow(FILE* fp, int c) {
    auto direct = [&] { return next_overflow(fp, c); };
    if (c != EOF) return put_char(fp, c, direct);
    return write_call(fp, direct, [&](FdEntry* e) {
        if (!(fp->_flags & kCurrentlyPutting)) return direct();
        return drain_glibc_output(fp, e);
    });
}

GREENLD_EXPORT int vfprintf(FILE* fp, const char* fmt, va_list ap) { return print(fp, fmt, ap); }
GREENLD_EXPORT int fprintf(FILE* fp, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = print(fp, fmt, ap);
    va_end(ap);
    return r;
}
GREENLD_EXPORT int vprintf(const char* fmt, va_list ap) { return print(stdout, fmt, ap); }
GREENLD_EXPORT int printf(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = print(stdout, fmt, ap);
    va_end(ap);
    return r;
}
GREENLD_EXPORT int __vfprintf_chk(FILE* fp, int flag, const char* fmt, va_list ap) {
    return print_chk(fp, flag, fmt, ap);
}
GREENLD_EXPORT int __fprintf_chk(FILE* fp, int flag, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = print_chk(fp, flag, fmt, ap);
    va_end(ap);
    return r;
}
GREENLD_EXPORT int __vprintf_chk(int flag, const char* fmt, va_list ap) { return print_chk(stdout, flag, fmt, ap); }
GREENLD_EXPORT int __printf_chk(int flag, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = print_chk(stdout, flag, fmt, ap);
    va_end(ap);
    return r;
}

GREENLD_EXPORT int vdprintf(int fd, const char* fmt, va_list ap) {
    if (!fd_can_wait(fd)) return next_vdprintf(fd, fmt, ap);
    return print_to_fd(fd, [&](char* buf, size_t cap) {
        va_list copy;
        va_copy(copy, ap);
        int r = vsnprintf(buf, cap, fmt, copy);
        va_end(copy);
        return r;
    });
}
GREENLD_EXPORT int dprintf(int fd, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vdprintf(fd, fmt, ap);
    va_end(ap);
    return r;
}
GREENLD_EXPORT int __vdprintf_chk(int fd, int flag, const char* fmt, va_list ap) {
    if (!fd_can_wait(fd)) return next_vdprintf_chk(fd, flag, fmt, ap);
    return print_to_fd(fd, [&](char* buf, size_t cap) {
        va_list copy;
        va_copy(copy, ap);
        int r = __vsnprintf_chk(buf, cap, flag, cap, fmt, copy);
        va_end(copy);
        return r;
    });
}
GREENLD_EXPORT int __dprintf_chk(int fd, int flag, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = __vdprintf_chk(fd, flag, fmt, ap);
    va_end(ap);
    return r;
}

// fflush(NULL) flushes every stream, inside glibc: a fiber's first drains
// stdout and stderr cooperatively (the streams a pipe may hold back).
GREENLD_EXPORT int fflush(FILE* fp) {
    if (fp) return flush(fp);
    int r = 0;
    if (Hub::current_fiber()) {
        if (flush(stdout) == EOF) r = EOF;
        if (flush(stderr) == EOF) r = EOF;
    }
    return next_fflush(nullptr) == EOF ? EOF : r;
}
GREENLD_EXPORT int fflush_unlocked(FILE* fp) {
    if (!fp) return fflush(nullptr);
    auto direct = [&] { return next_fflush_unlocked(fp); };
    return stdio_call(fp, direct, [&](FdEntry* e) {
        if (can_write(fp) && drain_glibc_output(fp, e) == EOF) return EOF;
        return direct();
    });
}
