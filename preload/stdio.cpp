// stdio on sockets and pipes.
//
// glibc's FILE reads and writes its fd through internal calls that bypass
// our read/write, so a fiber in fgets() on a socket would block its whole
// hub (and deadlock it if the peer is a fiber of the same hub). fdopen() of
// such an fd therefore returns a stream whose I/O goes through the
// cooperative wrappers (fopencookie); its _fileno is the real fd, so
// fileno(), buffering (st_blksize) and the program's own fd calls keep
// working. Regular files and ttys keep glibc's own stream.
//
// A fiber may now park inside a stdio call while glibc's per-FILE lock is
// held. That lock is recursive per OS thread, so another fiber of the same
// hub would walk right in. Such streams therefore carry a lock of ours,
// recursive per fiber, taken around every stdio entry point below and by
// flockfile(); glibc's own lock is then never contended. The lock pointer
// lives in the FILE's padding (_unused2), behind a magic word.
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <new>

#include "../runtime/futex.h"
#include "cooperative.h"
#include "next.h"
#include "stdio_stream.h"

using namespace greenld;

namespace {

next::Symbol<decltype(::fdopen)> next_fdopen{"fdopen"};
next::Symbol<decltype(::fclose)> next_fclose{"fclose"};
next::Symbol<decltype(::fflush)> next_fflush{"fflush"};
next::Symbol<decltype(::fgets)> next_fgets{"fgets"};
next::Symbol<decltype(::fgetc)> next_fgetc{"fgetc"};
next::Symbol<decltype(::getc)> next_getc{"getc"};
next::Symbol<decltype(::fread)> next_fread{"fread"};
next::Symbol<decltype(::getdelim)> next_getdelim{"getdelim"};
next::Symbol<decltype(::ungetc)> next_ungetc{"ungetc"};
next::Symbol<decltype(::fputs)> next_fputs{"fputs"};
next::Symbol<decltype(::fputc)> next_fputc{"fputc"};
next::Symbol<decltype(::putc)> next_putc{"putc"};
next::Symbol<decltype(::fwrite)> next_fwrite{"fwrite"};
next::Symbol<decltype(::vfprintf)> next_vfprintf{"vfprintf"};
next::Symbol<int(FILE*, int, const char*, va_list)> next_vfprintf_chk{"__vfprintf_chk"};
next::Symbol<decltype(::vfscanf)> next_vfscanf{"__isoc99_vfscanf"};
next::Symbol<char*(char*, size_t, int, FILE*)> next_fgets_chk{"__fgets_chk"};
next::Symbol<size_t(void*, size_t, size_t, size_t, FILE*)> next_fread_chk{"__fread_chk"};
next::Symbol<decltype(::flockfile)> next_flockfile{"flockfile"};
next::Symbol<decltype(::ftrylockfile)> next_ftrylockfile{"ftrylockfile"};
next::Symbol<decltype(::funlockfile)> next_funlockfile{"funlockfile"};

struct StreamLock {
    std::atomic<uint32_t> word{0};  // 0 free, 1 held, 2 held with waiters
    int owner = 0;
    unsigned depth = 0;
};

constexpr uint64_t kMagic = 0x6b6f6f63646c6e67ull;  // "gnldcook"
struct Tag {
    uint64_t magic;
    StreamLock* lock;
};
static_assert(sizeof(Tag) <= sizeof(FILE::_unused2), "FILE padding too small for the stream tag");

StreamLock* lock_of(FILE* fp) {
    if (!fp) return nullptr;
    Tag t;
    memcpy(&t, fp->_unused2, sizeof t);
    return t.magic == kMagic ? t.lock : nullptr;
}

void acquire(StreamLock* l) {
    const int me = lock_owner_id();
    if (l->owner == me) {
        ++l->depth;
        return;
    }
    uint32_t c = 0;
    if (!l->word.compare_exchange_strong(c, 1, std::memory_order_acquire))
        while (l->word.exchange(2, std::memory_order_acquire) != 0) futex_wait(&l->word, 2);
    l->owner = me;
    l->depth = 1;
}

bool try_acquire(StreamLock* l) {
    const int me = lock_owner_id();
    if (l->owner == me) {
        ++l->depth;
        return true;
    }
    uint32_t c = 0;
    if (!l->word.compare_exchange_strong(c, 1, std::memory_order_acquire)) return false;
    l->owner = me;
    l->depth = 1;
    return true;
}

void release(StreamLock* l) {
    if (--l->depth) return;
    l->owner = 0;
    if (l->word.exchange(0, std::memory_order_release) == 2) futex_wake(&l->word, 1);
}

// Runs a stdio call under the stream's lock, if it has one; errno is the
// call's.
template <typename Call>
auto locked(FILE* fp, Call call) {
    StreamLock* l = lock_of(fp);
    if (!l) return call();
    acquire(l);
    auto r = call();
    int e = errno;
    release(l);
    errno = e;
    return r;
}

int cookie_fd(void* cookie) { return int(reinterpret_cast<intptr_t>(cookie)); }

ssize_t cookie_read(void* cookie, char* buf, size_t size) { return read(cookie_fd(cookie), buf, size); }

ssize_t cookie_write(void* cookie, const char* buf, size_t size) {
    // glibc treats a short count from a cookie writer as an error: finish
    // the whole buffer, as glibc's own loop around write(2) would.
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(cookie_fd(cookie), buf + done, size - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            return done ? ssize_t(done) : -1;
        }
        done += size_t(n);
    }
    return ssize_t(done);
}

int cookie_close(void* cookie) { return close(cookie_fd(cookie)); }

bool is_waitable(int fd) {
    FdEntry* e = FdTable::get().entry(fd);
    if (!e) return false;
    FdKind kind = e->kind.load(std::memory_order_acquire);
    if (kind == FdKind::unknown) kind = FdTable::get().classify(fd, e);
    if (kind == FdKind::stream || kind == FdKind::datagram) return config::patched(config::kPatchSocket);
    return kind == FdKind::pipe && config::patched(config::kPatchOs);
}

}  // namespace

FILE* greenld::cooperative_stream(int fd, const char* mode) {
    auto* lock = new (std::nothrow) StreamLock();
    cookie_io_functions_t io{cookie_read, cookie_write, nullptr, cookie_close};
    FILE* fp = lock ? fopencookie(reinterpret_cast<void*>(intptr_t(fd)), mode, io) : nullptr;
    if (!fp) {
        delete lock;
        return nullptr;
    }
    fp->_fileno = fd;
    Tag t{kMagic, lock};
    memcpy(fp->_unused2, &t, sizeof t);
    return fp;
}

GREENLD_EXPORT FILE* fdopen(int fd, const char* mode) {
    if (!is_waitable(fd)) return next_fdopen(fd, mode);
    // Let glibc validate the mode against the fd's access mode exactly as
    // fdopen does, then swap in the cooperative stream.
    FILE* probe = next_fdopen(fd, mode);
    if (!probe) return nullptr;
    FILE* fp = cooperative_stream(fd, mode);
    if (!fp) return probe;  // out of memory: glibc's stream still works, blocking
    probe->_fileno = -1;  // dropping the probe must not close the fd
    next_fclose(probe);
    return fp;
}

GREENLD_EXPORT int fclose(FILE* fp) {
    StreamLock* l = lock_of(fp);
    if (!l) return next_fclose(fp);
    acquire(l);
    int r = next_fclose(fp);
    int e = errno;
    release(l);
    delete l;
    errno = e;
    return r;
}

GREENLD_EXPORT int fflush(FILE* fp) {
    return locked(fp, [&] { return next_fflush(fp); });
}
GREENLD_EXPORT char* fgets(char* s, int n, FILE* fp) {
    return locked(fp, [&] { return next_fgets(s, n, fp); });
}
GREENLD_EXPORT char* __fgets_chk(char* s, size_t size, int n, FILE* fp) {
    return locked(fp, [&] { return next_fgets_chk(s, size, n, fp); });
}
GREENLD_EXPORT int fgetc(FILE* fp) {
    return locked(fp, [&] { return next_fgetc(fp); });
}
GREENLD_EXPORT int getc(FILE* fp) {
    return locked(fp, [&] { return next_getc(fp); });
}
GREENLD_EXPORT int _IO_getc(FILE* fp) { return getc(fp); }
GREENLD_EXPORT size_t fread(void* p, size_t size, size_t n, FILE* fp) {
    return locked(fp, [&] { return next_fread(p, size, n, fp); });
}
GREENLD_EXPORT size_t __fread_chk(void* p, size_t cap, size_t size, size_t n, FILE* fp) {
    return locked(fp, [&] { return next_fread_chk(p, cap, size, n, fp); });
}
GREENLD_EXPORT ssize_t getdelim(char** line, size_t* cap, int delim, FILE* fp) {
    return locked(fp, [&] { return next_getdelim(line, cap, delim, fp); });
}
GREENLD_EXPORT ssize_t __getdelim(char** line, size_t* cap, int delim, FILE* fp) {
    return getdelim(line, cap, delim, fp);
}
GREENLD_EXPORT ssize_t getline(char** line, size_t* cap, FILE* fp) { return getdelim(line, cap, '\n', fp); }
GREENLD_EXPORT int ungetc(int c, FILE* fp) {
    return locked(fp, [&] { return next_ungetc(c, fp); });
}
GREENLD_EXPORT int fputs(const char* s, FILE* fp) {
    return locked(fp, [&] { return next_fputs(s, fp); });
}
GREENLD_EXPORT int fputc(int c, FILE* fp) {
    return locked(fp, [&] { return next_fputc(c, fp); });
}
GREENLD_EXPORT int putc(int c, FILE* fp) {
    return locked(fp, [&] { return next_putc(c, fp); });
}
GREENLD_EXPORT int _IO_putc(int c, FILE* fp) { return putc(c, fp); }
GREENLD_EXPORT size_t fwrite(const void* p, size_t size, size_t n, FILE* fp) {
    return locked(fp, [&] { return next_fwrite(p, size, n, fp); });
}
GREENLD_EXPORT int vfprintf(FILE* fp, const char* fmt, va_list ap) {
    return locked(fp, [&] { return next_vfprintf(fp, fmt, ap); });
}
GREENLD_EXPORT int fprintf(FILE* fp, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vfprintf(fp, fmt, ap);
    va_end(ap);
    return r;
}
GREENLD_EXPORT int __vfprintf_chk(FILE* fp, int flag, const char* fmt, va_list ap) {
    return locked(fp, [&] { return next_vfprintf_chk(fp, flag, fmt, ap); });
}
GREENLD_EXPORT int __fprintf_chk(FILE* fp, int flag, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = __vfprintf_chk(fp, flag, fmt, ap);
    va_end(ap);
    return r;
}
GREENLD_EXPORT int __isoc99_vfscanf(FILE* fp, const char* fmt, va_list ap) {
    return locked(fp, [&] { return next_vfscanf(fp, fmt, ap); });
}
GREENLD_EXPORT int __isoc99_fscanf(FILE* fp, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = __isoc99_vfscanf(fp, fmt, ap);
    va_end(ap);
    return r;
}
GREENLD_EXPORT void flockfile(FILE* fp) {
    if (StreamLock* l = lock_of(fp)) acquire(l);
    next_flockfile(fp);
}
GREENLD_EXPORT int ftrylockfile(FILE* fp) {
    StreamLock* l = lock_of(fp);
    if (l && !try_acquire(l)) return 1;
    int r = next_ftrylockfile(fp);
    if (r != 0 && l) release(l);
    return r;
}
GREENLD_EXPORT void funlockfile(FILE* fp) {
    next_funlockfile(fp);
    if (StreamLock* l = lock_of(fp)) release(l);
}
