/* greenld.h: the optional C API of greenld, for programs that opt in.
 *
 * These are gevent.socket's wait_read/wait_write/wait_readwrite/wait/
 * cancel_wait and gevent.sleep/idle, for C. Called from a converted thread
 * (a fiber) they park only that fiber; called from a native thread they
 * block it, with the same results. Link with -lgreenld, or resolve them with
 * dlsym(RTLD_DEFAULT, ...) to run with and without the shim.
 */
#ifndef GREENLD_H
#define GREENLD_H

#ifdef __cplusplus
extern "C" {
#endif

#define GREENLD_READ 1
#define GREENLD_WRITE 2

/* Waits until fd is ready for `events` (GREENLD_READ and/or GREENLD_WRITE).
 * timeout_ms < 0 waits forever. Returns 0 when ready, -1 with errno:
 * ETIMEDOUT after the timeout, EBADF if fd was closed meanwhile, or the
 * errno passed to greenld_cancel_wait. */
int greenld_wait(int fd, int events, long timeout_ms);
int greenld_wait_read(int fd, long timeout_ms);
int greenld_wait_write(int fd, long timeout_ms);
int greenld_wait_readwrite(int fd, long timeout_ms);

/* Wakes every fiber waiting on fd with errno `error` (EBADF if 0). */
void greenld_cancel_wait(int fd, int error);

/* Sleeps the calling fiber (or thread) for `seconds`; 0 just yields. */
int greenld_sleep(double seconds);

/* Lets every other runnable fiber of this hub run once. */
void greenld_yield(void);

/* 1 if the caller is a fiber, 0 if it is a native thread. */
int greenld_is_fiber(void);

#ifdef __cplusplus
}
#endif

#endif
