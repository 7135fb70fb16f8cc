// Waiting for child processes: waitpid, wait, wait3, wait4, waitid.
//
// A fiber's wait first asks without waiting (WNOHANG). For one specific
// child (pid > 0, P_PID, P_PIDFD) it then parks on a pidfd, which becomes
// readable when that child exits, and asks again with WNOHANG: it never
// reaps a child that another waiter expects, and costs no thread. A wait
// for any child (-1, 0, a process group, P_ALL, P_PGID), or for stops and
// continues (which a pidfd does not report), is made on the blocking-call
// pool: the pool thread reaps whichever child the native call would have.
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "../runtime/fd_table.h"
#include "../runtime/io.h"
#include "../runtime/native.h"
#include "cooperative.h"
#include "next.h"
#include "offload.h"

using namespace greenld;

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace {

next::Symbol<decltype(::waitpid)> next_waitpid{"waitpid"};
next::Symbol<decltype(::wait)> next_wait{"wait"};
next::Symbol<decltype(::wait3)> next_wait3{"wait3"};
next::Symbol<decltype(::wait4)> next_wait4{"wait4"};
next::Symbol<decltype(::waitid)> next_waitid{"waitid"};

// A pidfd of ours, registered as a fresh fd so that no stale watcher state
// of an earlier file with the same number applies to it.
class PidFd {
public:
    explicit PidFd(pid_t pid) {
        long r = native::sys(SYS_pidfd_open, pid, 0);
        fd_ = r < 0 ? -1 : int(r);
        if (fd_ >= 0) FdTable::get().reset(fd_, FdKind::pollable, false, true);
    }
    ~PidFd() {
        if (fd_ < 0) return;
        fd_closing(fd_);
        native::sys(SYS_close, fd_);
    }
    PidFd(const PidFd&) = delete;
    PidFd& operator=(const PidFd&) = delete;
    int fd() const { return fd_; }

private:
    int fd_;
};

enum class Outcome { done, use_pool };

// Parks on `pidfd` until poll_now() reports something. poll_now() makes
// the WNOHANG call and returns true when it is the answer (a child
// reported, or an error). Returns use_pool if the pidfd wait itself failed
// (closed behind our back): the caller then waits on the pool.
template <typename PollNow>
Outcome park_on_pidfd(int pidfd, PollNow poll_now, long* result) {
    for (;;) {
        if (poll_now(result)) return Outcome::done;
        int rc = wait_fd(pidfd, kWaitRead, Deadline::never());
        if (restarts_after(rc, Deadline::never())) continue;  // SA_RESTART
        if (rc == EINTR) {
            // A signal interrupted the park (runtime/signal*): like the
            // native wait, fail with EINTR.
            errno = EINTR;
            *result = -1;
            return Outcome::done;
        }
        if (rc != 0) return Outcome::use_pool;
    }
}

// The wait4-shaped calls (waitpid, wait, wait3, wait4): call(opts) makes
// the native call with `opts` as its options.
template <typename Call>
pid_t wait_child(pid_t pid, int options, Call call) {
    if ((options & WNOHANG) || !fiber_must_not_block()) return call(options);
    const int saved = errno;
    pid_t r = call(options | WNOHANG);
    if (r != 0) return r;
    errno = saved;
    if (pid > 0 && !(options & (WUNTRACED | WCONTINUED))) {
        PidFd pidfd(pid);
        if (pidfd.fd() >= 0) {
            long result = 0;
            // Asked again once the pidfd exists: had the child been reaped
            // meanwhile and its pid reused, the pidfd would name a stranger;
            // this answer (ECHILD) comes first.
            auto poll_now = [&](long* out) {
                pid_t n = call(options | WNOHANG);
                if (n == 0) {
                    errno = saved;
                    return false;
                }
                *out = n;
                return true;
            };
            if (park_on_pidfd(pidfd.fd(), poll_now, &result) == Outcome::done) return pid_t(result);
        }
    }
    return offload_interruptible(true, [&] { return call(options); });
}

}  // namespace

GREENLD_EXPORT pid_t waitpid(pid_t pid, int* status, int options) {
    return wait_child(pid, options, [&](int opts) { return next_waitpid(pid, status, opts); });
}

GREENLD_EXPORT pid_t wait(int* status) {
    if (!fiber_must_not_block()) return next_wait(status);
    return wait_child(-1, 0, [&](int opts) { return next_waitpid(-1, status, opts); });
}

GREENLD_EXPORT pid_t wait3(int* status, int options, struct rusage* usage) {
    if (!fiber_must_not_block()) return next_wait3(status, options, usage);
    return wait_child(-1, options, [&](int opts) { return next_wait4(-1, status, opts, usage); });
}

GREENLD_EXPORT pid_t wait4(pid_t pid, int* status, int options, struct rusage* usage) {
    return wait_child(pid, options, [&](int opts) { return next_wait4(pid, status, opts, usage); });
}

GREENLD_EXPORT int waitid(idtype_t idtype, id_t id, siginfo_t* info, int options) {
    if ((options & WNOHANG) || !fiber_must_not_block()) return next_waitid(idtype, id, info, options);
    const int saved = errno;
    // With WNOHANG "nothing yet" is a success with si_pid 0: ask into a
    // zeroed record of ours, so the program's sees only a real answer.
    auto poll_now = [&](long* out) {
        siginfo_t local;
        memset(&local, 0, sizeof local);
        int r = next_waitid(idtype, id, &local, options | WNOHANG);
        if (r == 0 && local.si_pid == 0) {
            errno = saved;
            return false;
        }
        if (r == 0 && info) *info = local;
        *out = r;
        return true;
    };
    long result = 0;
    if (poll_now(&result)) return int(result);
    const bool exits_only = !(options & (WSTOPPED | WCONTINUED));
    if (exits_only && int(idtype) == P_PIDFD) {
        if (park_on_pidfd(int(id), poll_now, &result) == Outcome::done) return int(result);
    } else if (exits_only && idtype == P_PID) {
        PidFd pidfd{pid_t(id)};
        if (pidfd.fd() >= 0 && park_on_pidfd(pidfd.fd(), poll_now, &result) == Outcome::done) return int(result);
    }
    return offload_interruptible(true, [&] { return next_waitid(idtype, id, info, options); });
}
