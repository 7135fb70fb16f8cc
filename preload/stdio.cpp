// stdio on sockets and pipes: the cooperative streams, the stream lock,
// and the calls that manage a stream as a whole (fclose, flockfile...).
//
// glibc's FILE reads and writes its fd through internal calls that bypass
// our read/write, so a fiber in fgets() on a socket would block its whole
// hub (and deadlock it if the peer is a fiber of the same hub). fdopen() of
// such an fd therefore returns a stream whose I/O goes through the
// cooperative wrappers (fopencookie); its _fileno is the real fd, so
// fileno(), buffering (st_blksize) and the program's own fd calls keep
// working. Regular files and ttys keep glibc's own stream, and so do the
// streams glibc opened itself (stdin, stdout, stderr): a fiber's calls on
// those are split instead (stdio_read.cpp, stdio_write.cpp).
//
// The lock (stdio_stream.h) lives in the FILE's padding. A glibc stream is
// adopted (given a lock) by the first fiber that calls stdio on it while its
// fd can wait; from then on every caller, native threads too, takes it.
#include <stdio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "../runtime/futex.h"
#include "../runtime/native.h"
#include "cooperative.h"
#include "next.h"
#include "stdio_stream.h"

using namespace greenld;

namespace {

next::Symbol<decltype(::fdopen)> next_fdopen{"fdopen"};
next::Symbol<decltype(::fclose)> next_fclose{"fclose"};
next::Symbol<decltype(::flockfile)> next_flockfile{"flockfile"};
next::Symbol<decltype(::ftrylockfile)> next_ftrylockfile{"ftrylockfile"};
next::Symbol<decltype(::funlockfile)> next_funlockfile{"funlockfile"};
next::Symbol<decltype(::feof)> next_feof{"feof"};
next::Symbol<decltype(::ferror)> next_ferror{"ferror"};
next::Symbol<decltype(::clearerr)> next_clearerr{"clearerr"};

// The tag in FILE::_unused2: the magic word, then the lock pointer. glibc
// never touches that padding, but a FILE it allocates leaves it
// uninitialised, hence the 64-bit magic. A fiber of another hub may read
// the tag while a stream is being adopted: the pointer is written before
// the magic and read after it (x86-64 keeps stores, and loads, in order;
// the fences keep the compiler from reordering them).
constexpr uint64_t kMagic = 0x6b6f6f63646c6e67ull;  // "gnldcook"
static_assert(2 * sizeof(uint64_t) <= sizeof(FILE::_unused2), "FILE padding too small for the stream tag");

void write_tag(FILE* fp, StreamLock* l) {
    memcpy(fp->_unused2 + sizeof(uint64_t), &l, sizeof l);
    std::atomic_signal_fence(std::memory_order_release);
    memcpy(fp->_unused2, &kMagic, sizeof kMagic);
}

void clear_tag(FILE* fp) {
    const uint64_t none = 0;
    memcpy(fp->_unused2, &none, sizeof none);
}

// Adoption of glibc streams is rare (a handful per process): one lock.
native::Mutex g_adopt_lock;

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

bool held_by_me(StreamLock* l) { return l->depth && l->owner == lock_owner_id(); }

}  // namespace

greenld::GlibcFileLock::GlibcFileLock(FILE* fp) : fp_(fp) { next_flockfile(fp); }
greenld::GlibcFileLock::~GlibcFileLock() { next_funlockfile(fp_); }

StreamLock* greenld::lock_of(FILE* fp) {
    if (!fp) return nullptr;
    uint64_t magic;
    memcpy(&magic, fp->_unused2, sizeof magic);
    if (magic != kMagic) return nullptr;
    std::atomic_signal_fence(std::memory_order_acquire);
    StreamLock* l;
    memcpy(&l, fp->_unused2 + sizeof(uint64_t), sizeof l);
    return l;
}

void greenld::acquire(StreamLock* l) {
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

bool greenld::try_acquire(StreamLock* l) {
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

void greenld::release(StreamLock* l) {
    if (--l->depth) return;
    l->owner = 0;
    if (l->word.exchange(0, std::memory_order_release) == 2) futex_wake(&l->word, 1);
}

FdEntry* greenld::glibc_stream_entry(FILE* fp, StreamLock** lock) {
    StreamLock* l = *lock;
    if ((l && !l->glibc) || !fp) return nullptr;
    // Only a stream on a file has an fd: _fileno of a memory stream
    // (open_memstream, fmemopen) is whatever its memory held, as glibc's
    // fileno() knows. A wide stream's byte calls fail at once in glibc; its
    // wide calls are not split.
    if (!(fp->_flags & file_flags::kIsFilebuf) || fp->_fileno < 0 || fp->_mode > 0) return nullptr;
    FdEntry* e = cooperative_entry(fp->_fileno);
    if (!e || l) {
        return e;
    }
    auto* fresh = new (std::nothrow) StreamLock();
    if (!fresh) return nullptr;  // out of memory: the call stays glibc's, blocking
    fresh->glibc = true;
    {
        native::LockGuard guard(g_adopt_lock);
        l = lock_of(fp);
        if (!l) {
            write_tag(fp, fresh);
            l = fresh;
            fresh = nullptr;
        }
    }
    delete fresh;
    *lock = l;
    return l->glibc ? e : nullptr;
}

void greenld::set_stream_error(FILE* fp, int error) {
    {
        GlibcFileLock lock(fp);
        fp->_flags |= file_flags::kErrSeen;
    }
    errno = error;
}

FILE* greenld::cooperative_stream(int fd, const char* mode) {
    auto* lock = new (std::nothrow) StreamLock();
    cookie_io_functions_t io{cookie_read, cookie_write, nullptr, cookie_close};
    FILE* fp = lock ? fopencookie(reinterpret_cast<void*>(intptr_t(fd)), mode, io) : nullptr;
    if (!fp) {
        delete lock;
        return nullptr;
    }
    fp->_fileno = fd;
    write_tag(fp, lock);
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
    FdEntry* e = Hub::current_fiber() ? glibc_stream_entry(fp, &l) : nullptr;
    if (!l) return next_fclose(fp);
    acquire(l);
    // The final flush of a glibc stream, cooperatively; glibc's own then
    // finds nothing left to write (or writes again what failed, and fails).
    if (e) drain_glibc_output(fp, e);
    // The FILE's memory goes back to malloc: a stream allocated there later
    // must not find our tag.
    clear_tag(fp);
    int r = next_fclose(fp);
    int err = errno;
    release(l);
    if (l->proxy) next_fclose(l->proxy);
    delete[] l->proxy_buffer;
    delete l;
    errno = err;
    return r;
}

// flockfile() takes our lock first (adopting a glibc stream a fiber locks),
// so that the owner may park between its _unlocked calls.
GREENLD_EXPORT void flockfile(FILE* fp) {
    StreamLock* l = lock_of(fp);
    if (Hub::current_fiber()) glibc_stream_entry(fp, &l);
    if (l) acquire(l);
    next_flockfile(fp);
    if (l) ++l->file_locks;
}

GREENLD_EXPORT int ftrylockfile(FILE* fp) {
    StreamLock* l = lock_of(fp);
    if (Hub::current_fiber()) glibc_stream_entry(fp, &l);
    if (l && !try_acquire(l)) return 1;
    int r = next_ftrylockfile(fp);
    if (l) {
        if (r == 0)
            ++l->file_locks;
        else
            release(l);
    }
    return r;
}

// A stream adopted while a native thread held it through flockfile() has
// no lock of ours to give back: only its owner releases it.
GREENLD_EXPORT void funlockfile(FILE* fp) {
    next_funlockfile(fp);
    StreamLock* l = lock_of(fp);
    if (l && held_by_me(l) && l->file_locks) {
        --l->file_locks;
        release(l);
    }
}

// glibc takes its own lock for these: a fiber parked inside a call on the
// stream holds ours instead, and the caller must wait for it as it would
// wait for glibc's.
GREENLD_EXPORT int feof(FILE* fp) {
    StreamLock* l = lock_of(fp);
    if (!l) return next_feof(fp);
    acquire(l);
    int r = next_feof(fp);
    release(l);
    return r;
}

GREENLD_EXPORT int ferror(FILE* fp) {
    StreamLock* l = lock_of(fp);
    if (!l) return next_ferror(fp);
    acquire(l);
    int r = next_ferror(fp);
    release(l);
    return r;
}

GREENLD_EXPORT void clearerr(FILE* fp) {
    StreamLock* l = lock_of(fp);
    if (!l) return next_clearerr(fp);
    acquire(l);
    next_clearerr(fp);
    release(l);
}
