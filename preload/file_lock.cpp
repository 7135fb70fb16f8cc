// Advisory file locks: flock, lockf, and fcntl's F_SETLKW/F_OFD_SETLKW.
//
// A lock is tried without waiting first (LOCK_NB, F_TLOCK, F_SETLK): a
// lock nobody holds costs no thread hop. Only a fiber that must wait has
// the waiting call made for it on the blocking-call pool, as a rendezvous
// job (its end depends on the holder). The kernel sees the same process
// (POSIX locks) or the same open file description (flock, OFD locks), so
// ownership, conversion and EDEADLK detection are those of the native call.
// Converting a flock lock drops the old lock before trying the new one
// whether or not the try waits, so try-then-wait changes nothing there.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>

#include "file_lock.h"
#include "next.h"
#include "offload.h"

using namespace greenld;

namespace {

next::Symbol<decltype(::flock)> next_flock{"flock"};
next::Symbol<decltype(::lockf)> next_lockf{"lockf"};
next::Symbol<decltype(::lockf64)> next_lockf64{"lockf64"};
next::Symbol<int(int, int, ...)> next_fcntl{"fcntl"};

bool lock_busy(int err) { return err == EWOULDBLOCK || err == EAGAIN || err == EACCES; }

// try_now() never waits; wait() is the call that does. Returns as the
// native call would.
template <typename Try, typename Wait>
int try_then_wait(bool cancellation_point, Try try_now, Wait wait) {
    const int saved = errno;
    int r = try_now();
    if (r == 0) {
        errno = saved;
        return 0;
    }
    if (!lock_busy(errno)) return r;
    errno = saved;
    return offload_interruptible(cancellation_point, wait);
}

}  // namespace

int greenld::fcntl_lock_wait(int fd, int cmd, void* lock) {
    if (!fiber_must_not_block()) return next_fcntl(fd, cmd, lock);
    const int try_cmd = cmd == F_OFD_SETLKW ? F_OFD_SETLK : F_SETLK;
    return try_then_wait(true, [&] { return next_fcntl(fd, try_cmd, lock); },
                         [&] { return next_fcntl(fd, cmd, lock); });
}

GREENLD_EXPORT int flock(int fd, int op) {
    if ((op & LOCK_NB) || (op & LOCK_UN) || !fiber_must_not_block()) return next_flock(fd, op);
    return try_then_wait(false, [&] { return next_flock(fd, op | LOCK_NB); }, [&] { return next_flock(fd, op); });
}

GREENLD_EXPORT int lockf(int fd, int cmd, off_t len) {
    if (cmd != F_LOCK || !fiber_must_not_block()) return next_lockf(fd, cmd, len);
    return try_then_wait(true, [&] { return next_lockf(fd, F_TLOCK, len); }, [&] { return next_lockf(fd, F_LOCK, len); });
}

GREENLD_EXPORT int lockf64(int fd, int cmd, off64_t len) {
    if (cmd != F_LOCK || !fiber_must_not_block()) return next_lockf64(fd, cmd, len);
    return try_then_wait(true, [&] { return next_lockf64(fd, F_TLOCK, len); },
                         [&] { return next_lockf64(fd, F_LOCK, len); });
}
