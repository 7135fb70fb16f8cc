// exec and spawn: the new program must find its inherited fds in the
// blocking mode the old one believed in. The only fds whose kernel flag we
// change behind the program's back are listeners that fibers accept on
// (socket.cpp); before an exec they go back to blocking. That also changes
// the parent's shared listener if the exec runs in a forked child, which is
// why accept() waits for readiness before each attempt.
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <vector>

#include "../runtime/fd_table.h"
#include "../runtime/native.h"
#include "../runtime/signals.h"
#include "next.h"

using namespace greenld;

extern char** environ;

namespace {

next::Symbol<decltype(::execve)> next_execve{"execve"};
next::Symbol<decltype(::execv)> next_execv{"execv"};
next::Symbol<decltype(::execvp)> next_execvp{"execvp"};
next::Symbol<decltype(::execvpe)> next_execvpe{"execvpe"};
next::Symbol<decltype(::fexecve)> next_fexecve{"fexecve"};
next::Symbol<decltype(::posix_spawn)> next_posix_spawn{"posix_spawn"};
next::Symbol<decltype(::posix_spawnp)> next_posix_spawnp{"posix_spawnp"};

// Puts inherited (not close-on-exec) listeners back into the blocking
// mode the program believes in; returns how many, for restore_nonblocking.
void set_inherited_blocking(bool blocking) {
    FdTable::get().for_each_kernel_nonblock([blocking](int fd, FdEntry*) {
        long fd_flags = native::sys(SYS_fcntl, fd, F_GETFD);
        if (fd_flags < 0 || (fd_flags & FD_CLOEXEC)) return;
        long fl = native::sys(SYS_fcntl, fd, F_GETFL);
        if (fl < 0) return;
        native::sys(SYS_fcntl, fd, F_SETFL, blocking ? (fl & ~O_NONBLOCK) : (fl | O_NONBLOCK));
    });
}

// Runs an exec; if it fails, this process goes on and needs its listeners
// non-blocking again. From a fiber the new program starts with the fiber's
// signal mask and pending signals, not its hub thread's (signals.h).
template <typename Exec>
int exec_with_blocking_fds(Exec exec) {
    set_inherited_blocking(true);
    const signals::ChildMask cm = signals::child_mask_begin(true);
    int r = exec();
    int e = errno;
    signals::child_mask_end(cm);
    set_inherited_blocking(false);
    errno = e;
    return r;
}

// posix_spawn's child starts with the caller's mask unless the attributes
// set one: from a fiber, the fiber's.
template <typename Spawn>
int spawn_with_blocking_fds(Spawn spawn) {
    set_inherited_blocking(true);
    const signals::ChildMask cm = signals::child_mask_begin(false);
    int r = spawn();
    signals::child_mask_end(cm);
    set_inherited_blocking(false);
    return r;
}

std::vector<char*> collect_args(const char* first, va_list ap, char*** envp) {
    std::vector<char*> args{const_cast<char*>(first)};
    for (char* a; (a = va_arg(ap, char*)) != nullptr;) args.push_back(a);
    args.push_back(nullptr);
    if (envp) *envp = va_arg(ap, char**);
    return args;
}

}  // namespace

GREENLD_EXPORT int execve(const char* path, char* const argv[], char* const envp[]) {
    return exec_with_blocking_fds([&] { return next_execve(path, argv, envp); });
}

GREENLD_EXPORT int execv(const char* path, char* const argv[]) {
    return exec_with_blocking_fds([&] { return next_execv(path, argv); });
}

GREENLD_EXPORT int execvp(const char* file, char* const argv[]) {
    return exec_with_blocking_fds([&] { return next_execvp(file, argv); });
}

GREENLD_EXPORT int execvpe(const char* file, char* const argv[], char* const envp[]) {
    return exec_with_blocking_fds([&] { return next_execvpe(file, argv, envp); });
}

GREENLD_EXPORT int fexecve(int fd, char* const argv[], char* const envp[]) {
    return exec_with_blocking_fds([&] { return next_fexecve(fd, argv, envp); });
}

GREENLD_EXPORT int execl(const char* path, const char* arg, ...) {
    va_list ap;
    va_start(ap, arg);
    std::vector<char*> args = collect_args(arg, ap, nullptr);
    va_end(ap);
    return execve(path, args.data(), environ);
}

GREENLD_EXPORT int execlp(const char* file, const char* arg, ...) {
    va_list ap;
    va_start(ap, arg);
    std::vector<char*> args = collect_args(arg, ap, nullptr);
    va_end(ap);
    return execvp(file, args.data());
}

GREENLD_EXPORT int execle(const char* path, const char* arg, ...) {
    va_list ap;
    va_start(ap, arg);
    char** envp = nullptr;
    std::vector<char*> args = collect_args(arg, ap, &envp);
    va_end(ap);
    return execve(path, args.data(), envp);
}

// posix_spawn returns once the child has exec'd (glibc uses CLONE_VFORK),
// so the parent can take its non-blocking listeners back right after.
GREENLD_EXPORT int posix_spawn(pid_t* pid, const char* path, const posix_spawn_file_actions_t* actions,
                               const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) {
    return spawn_with_blocking_fds([&] { return next_posix_spawn(pid, path, actions, attr, argv, envp); });
}

GREENLD_EXPORT int posix_spawnp(pid_t* pid, const char* file, const posix_spawn_file_actions_t* actions,
                                const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) {
    return spawn_with_blocking_fds([&] { return next_posix_spawnp(pid, file, actions, attr, argv, envp); });
}
