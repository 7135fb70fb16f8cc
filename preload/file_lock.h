// fcntl's waiting lock commands, for fd.cpp (where fcntl lives).
#pragma once

namespace greenld {

// F_SETLKW / F_OFD_SETLKW with a struct flock*: as fcntl, but a fiber's
// wait runs on the blocking-call pool.
int fcntl_lock_wait(int fd, int cmd, void* lock);

}  // namespace greenld
