// Descriptor-level calls: close and the dup family (which close their
// target), fcntl/ioctl (which must report the O_NONBLOCK the program set),
// and pipe creation.
#include <fcntl.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "file_lock.h"
#include "next.h"
#include "transfer.h"

using namespace greenld;

namespace {

next::Symbol<decltype(::close)> next_close{"close"};
next::Symbol<decltype(::dup)> next_dup{"dup"};
next::Symbol<decltype(::dup2)> next_dup2{"dup2"};
next::Symbol<decltype(::dup3)> next_dup3{"dup3"};
next::Symbol<int(int, int, ...)> next_fcntl{"fcntl"};
next::Symbol<int(int, unsigned long, ...)> next_ioctl{"ioctl"};
next::Symbol<decltype(::pipe)> next_pipe{"pipe"};
next::Symbol<decltype(::pipe2)> next_pipe2{"pipe2"};

// The program's O_NONBLOCK view changes for every fd sharing the file
// description, as the kernel flag would.
void record_user_nonblock(int fd, bool on) {
    FdTable::get().for_each_sharing(fd, [on](FdEntry* x) { x->user_nonblock.store(on, std::memory_order_relaxed); });
}

int set_flags(int fd, long flags) {
    FdEntry* e = FdTable::get().entry(fd);
    if (!e) return next_fcntl(fd, F_SETFL, flags);
    // The kernel keeps O_NONBLOCK if we need it; the program's wish is
    // recorded as its view.
    long kernel = flags;
    if (e->kernel_nonblock.load(std::memory_order_relaxed)) kernel |= O_NONBLOCK;
    int r = next_fcntl(fd, F_SETFL, kernel);
    if (r == 0) record_user_nonblock(fd, (flags & O_NONBLOCK) != 0);
    return r;
}

}  // namespace

GREENLD_EXPORT int close(int fd) {
    fd_closing(fd);
    return next_close(fd);
}

GREENLD_EXPORT int dup(int fd) {
    int r = next_dup(fd);
    if (r >= 0) FdTable::get().duplicate(fd, r);
    return r;
}

GREENLD_EXPORT int dup2(int from, int to) {
    if (from != to) fd_closing(to);
    int r = next_dup2(from, to);
    if (r >= 0 && from != to) FdTable::get().duplicate(from, r);
    return r;
}

GREENLD_EXPORT int dup3(int from, int to, int flags) {
    if (from != to) fd_closing(to);
    int r = next_dup3(from, to, flags);
    if (r >= 0) FdTable::get().duplicate(from, r);
    return r;
}

GREENLD_EXPORT int fcntl(int fd, int cmd, ...) {
    va_list ap;
    va_start(ap, cmd);
    // Like glibc: the optional argument is an int or a pointer; reading it
    // as a pointer-sized value serves both.
    void* arg = va_arg(ap, void*);
    va_end(ap);
    const long value = reinterpret_cast<long>(arg);
    switch (cmd) {
        case F_GETFL: {
            int r = next_fcntl(fd, cmd);
            FdEntry* e = FdTable::get().entry(fd);
            if (r >= 0 && e && e->kernel_nonblock.load(std::memory_order_relaxed))
                r = (r & ~O_NONBLOCK) | (e->user_nonblock.load(std::memory_order_relaxed) ? O_NONBLOCK : 0);
            return r;
        }
        case F_SETFL:
            return set_flags(fd, value);
        case F_DUPFD:
        case F_DUPFD_CLOEXEC: {
            int r = next_fcntl(fd, cmd, value);
            if (r >= 0) FdTable::get().duplicate(fd, r);
            return r;
        }
        case F_SETLKW:
        case F_OFD_SETLKW:
            return fcntl_lock_wait(fd, cmd, arg);
        default:
            return next_fcntl(fd, cmd, arg);
    }
}

GREENLD_EXPORT int fcntl64(int fd, int cmd, ...) {
    va_list ap;
    va_start(ap, cmd);
    void* arg = va_arg(ap, void*);
    va_end(ap);
    return fcntl(fd, cmd, arg);
}

GREENLD_EXPORT int ioctl(int fd, unsigned long request, ...) {
    va_list ap;
    va_start(ap, request);
    void* arg = va_arg(ap, void*);
    va_end(ap);
    if (request == FIONBIO && arg) {
        FdEntry* e = FdTable::get().entry(fd);
        const bool on = *static_cast<int*>(arg) != 0;
        if (e && e->kernel_nonblock.load(std::memory_order_relaxed)) {
            // Validate the fd as the real call would, keep the kernel flag.
            if (next_fcntl(fd, F_GETFL) < 0) return -1;
            record_user_nonblock(fd, on);
            return 0;
        }
        int r = next_ioctl(fd, request, arg);
        if (r == 0 && e) record_user_nonblock(fd, on);
        return r;
    }
    return next_ioctl(fd, request, arg);
}

GREENLD_EXPORT int pipe(int fds[2]) {
    int r = next_pipe(fds);
    if (r == 0) {
        FdTable::get().reset(fds[0], FdKind::pipe, false, true);
        FdTable::get().reset(fds[1], FdKind::pipe, false, true);
        FdTable::get().link_peer(fds[1], fds[0]);
    }
    return r;
}

GREENLD_EXPORT int pipe2(int fds[2], int flags) {
    int r = next_pipe2(fds, flags);
    if (r == 0) {
        const bool nb = (flags & O_NONBLOCK) != 0;
        FdTable::get().reset(fds[0], FdKind::pipe, nb, true);
        FdTable::get().reset(fds[1], FdKind::pipe, nb, true);
        FdTable::get().link_peer(fds[1], fds[0]);
    }
    return r;
}
