// Commands run through the shell: system, popen, pclose.
//
// Both are made here, as glibc 2.36 makes them, because glibc waits for
// the child and moves popen's data through internal calls no wrapper sees
// (they would block the hub). Only a fiber's system() takes this path; a
// native thread's is glibc's own.
//
// system(): SIGINT and SIGQUIT ignored while any system() runs (the first
// to start saves the dispositions, the last to end restores them), SIGCHLD
// blocked for the caller, then posix_spawn of "/bin/sh -c LINE" with the
// caller's original mask and INT/QUIT back to default in the child, then
// the cooperative waitpid (a pidfd: no thread is held), retried on EINTR.
// A spawn failure is status 127 with errno set, as glibc reports it.
//
// popen(): pipe2 with O_CLOEXEC, posix_spawn of "/bin/sh -c CMD" with the
// child's end on its stdin or stdout, the ends of earlier popen streams
// closed in the child, 'e' keeping O_CLOEXEC on ours; the stream returned
// is the cooperative one of stdio.cpp. pclose() flushes and closes it,
// waits for that child with the cooperative waitpid, and returns its
// status as glibc does.
//
// Children get the signal mask the calling thread has in the program's
// view (the hub's OS thread may block more), and our posix_spawn, so they
// get the blocking listeners their program believes in.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <new>

#include "../runtime/native.h"
#include "next.h"
#include "offload.h"
#include "stdio_stream.h"

using namespace greenld;

extern char** environ;

namespace {

next::Symbol<decltype(::system)> next_system{"system"};
next::Symbol<decltype(::popen)> next_popen{"popen"};
next::Symbol<decltype(::pclose)> next_pclose{"pclose"};
next::Symbol<decltype(::fdopen)> next_fdopen{"fdopen"};

// The streams popen() returned and pclose() has not closed yet.
struct PopenChild {
    FILE* fp = nullptr;
    pid_t pid = 0;
    int fd = -1;
    PopenChild* next = nullptr;
};

// Held briefly and never across a park; taken around fork() so that a
// child never inherits it held.
native::Mutex g_chain_lock;
PopenChild* g_chain = nullptr;

void install_fork_handlers_once() {
    static std::atomic<bool> installed{false};
    if (installed.exchange(true)) return;
    pthread_atfork([] { g_chain_lock.lock(); }, [] { g_chain_lock.unlock(); }, [] { g_chain_lock.unlock(); });
}

PopenChild* unlink_child(FILE* fp) {
    native::LockGuard g(g_chain_lock);
    for (PopenChild** p = &g_chain; *p; p = &(*p)->next) {
        if ((*p)->fp == fp) {
            PopenChild* c = *p;
            *p = c->next;
            return c;
        }
    }
    return nullptr;
}

}  // namespace

namespace {

// What glibc keeps for concurrent system() calls.
native::Mutex g_system_lock;
int g_system_users = 0;
struct sigaction g_saved_intr, g_saved_quit;

int fiber_system(const char* line) {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    {
        native::LockGuard g(g_system_lock);
        if (g_system_users++ == 0) {
            sigaction(SIGINT, &ignore, &g_saved_intr);
            sigaction(SIGQUIT, &ignore, &g_saved_quit);
        }
    }
    sigset_t block, omask;
    sigemptyset(&block);
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, &omask);
    sigset_t reset;
    sigemptyset(&reset);
    if (g_saved_intr.sa_handler != SIG_IGN) sigaddset(&reset, SIGINT);
    if (g_saved_quit.sa_handler != SIG_IGN) sigaddset(&reset, SIGQUIT);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setsigmask(&attr, &omask);
    posix_spawnattr_setsigdefault(&attr, &reset);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    char* argv[] = {const_cast<char*>("sh"), const_cast<char*>("-c"), const_cast<char*>(line), nullptr};
    pid_t pid = 0;
    const int spawn_error = posix_spawn(&pid, "/bin/sh", nullptr, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    int status = -1;
    if (spawn_error == 0) {
        pid_t r;
        while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
        }
        if (r != pid) status = -1;
    } else {
        status = W_EXITCODE(127, 0);  // POSIX: as if the shell had exited 127
    }
    {
        native::LockGuard g(g_system_lock);
        if (--g_system_users == 0) {
            sigaction(SIGINT, &g_saved_intr, nullptr);
            sigaction(SIGQUIT, &g_saved_quit, nullptr);
            sigprocmask(SIG_SETMASK, &omask, nullptr);
        }
    }
    if (spawn_error) errno = spawn_error;
    return status;
}

}  // namespace

GREENLD_EXPORT int system(const char* command) {
    if (!fiber_must_not_block()) return next_system(command);
    // Is there a shell? glibc asks one.
    if (!command) return fiber_system("exit 0") == 0;
    return fiber_system(command);
}

GREENLD_EXPORT FILE* popen(const char* command, const char* mode) {
    if (!config::patched(config::kPatchOs)) return next_popen(command, mode);
    bool do_read = false, do_write = false, do_cloexec = false;
    for (const char* m = mode; *m; ++m) {
        switch (*m) {
            case 'r': do_read = true; break;
            case 'w': do_write = true; break;
            case 'e': do_cloexec = true; break;
            default: errno = EINVAL; return nullptr;
        }
    }
    if (do_read == do_write) {
        errno = EINVAL;
        return nullptr;
    }
    install_fork_handlers_once();
    auto* child = new (std::nothrow) PopenChild();
    if (!child) {
        errno = ENOMEM;
        return nullptr;
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        delete child;
        return nullptr;
    }
    const int parent_end = do_read ? 0 : 1, child_end = do_read ? 1 : 0;
    const int child_std_fd = do_read ? 1 : 0;
    bool ok = true;
    // The child's end already has the number it must get in the child: move
    // it, since dup2 onto itself would not clear its close-on-exec flag.
    if (fds[child_end] == child_std_fd) {
        int moved = fcntl(child_std_fd, F_DUPFD_CLOEXEC, 0);
        if (moved < 0) {
            ok = false;
        } else {
            close(fds[child_end]);
            fds[child_end] = moved;
        }
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t mask;
    sigprocmask(SIG_BLOCK, nullptr, &mask);
    posix_spawnattr_setsigmask(&attr, &mask);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    if (ok) ok = posix_spawn_file_actions_adddup2(&actions, fds[child_end], child_std_fd) == 0;
    if (ok) {
        native::LockGuard g(g_chain_lock);
        // POSIX: streams of earlier popen() calls are closed in the child.
        for (PopenChild* c = g_chain; c && ok; c = c->next)
            if (c->fd != child_std_fd) ok = posix_spawn_file_actions_addclose(&actions, c->fd) == 0;
        char* argv[] = {const_cast<char*>("sh"), const_cast<char*>("-c"), const_cast<char*>(command), nullptr};
        // Our posix_spawn: the child gets the blocking listeners its
        // program believes in.
        if (ok) ok = posix_spawn(&child->pid, "/bin/sh", &actions, &attr, argv, environ) == 0;
        if (ok) {
            close(fds[child_end]);
            if (!do_cloexec) fcntl(fds[parent_end], F_SETFD, 0);
            child->fd = fds[parent_end];
            child->fp = cooperative_stream(child->fd, do_read ? "r" : "w");
            // Out of memory for ours: glibc's stream works too, blocking.
            if (!child->fp) child->fp = next_fdopen(child->fd, do_read ? "r" : "w");
            if (child->fp) {
                child->next = g_chain;
                g_chain = child;
            }
        }
    }
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (!ok) {
        close(fds[child_end]);
        close(fds[parent_end]);
        delete child;
        errno = ENOMEM;  // as glibc reports any failure to start the child
        return nullptr;
    }
    if (!child->fp) {
        // The child runs but no stream can be made: close our end (it sees
        // EOF or EPIPE) and reap it, as if pclose()d.
        close(child->fd);
        int ignored;
        while (waitpid(child->pid, &ignored, 0) < 0 && errno == EINTR) {
        }
        delete child;
        errno = ENOMEM;
        return nullptr;
    }
    return child->fp;
}

GREENLD_EXPORT int pclose(FILE* fp) {
    PopenChild* child = unlink_child(fp);
    if (!child) return next_pclose(fp);
    // As glibc: flush and close the stream, then wait for the child,
    // retrying on EINTR; the status wins over a failed flush.
    const int close_rc = fclose(fp);
    int status = 0;
    pid_t r;
    while ((r = waitpid(child->pid, &status, 0)) < 0 && errno == EINTR) {
    }
    delete child;
    if (r < 0) return -1;
    return status != 0 ? status : (close_rc == 0 ? 0 : -1);
}
