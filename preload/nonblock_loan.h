// Kernel O_NONBLOCK lent to a blocking socket for one system call that has
// no per-call non-blocking flag: sendfile() to a socket, splice() to or
// from one (SPLICE_F_NONBLOCK covers only the pipe side; the socket side
// follows the file's O_NONBLOCK).
//
// Only sockets this process created are lent the flag (the file description
// is shared with whoever else holds it). While a loan is out the entry is
// marked kernel_nonblock, exactly as a listener we made non-blocking is:
// fcntl(F_GETFL)/ioctl(FIONBIO) keep reporting the program's flag, an
// F_SETFL keeps O_NONBLOCK in the kernel, and a native thread's read or
// write on the socket takes the cooperative path, which expects EAGAIN.
// Loans on one fd nest (a count per fd); the last one out puts the kernel
// flag back to what the program believes, unless the fd was closed
// meanwhile (its number may already name another file).
#pragma once

#include <cstdint>

#include "../runtime/fd_table.h"

namespace greenld {

class NonblockLoan {
public:
    NonblockLoan(int fd, FdEntry* e);
    ~NonblockLoan();
    NonblockLoan(const NonblockLoan&) = delete;
    NonblockLoan& operator=(const NonblockLoan&) = delete;

    // The socket is non-blocking in the kernel for as long as this lives.
    bool active() const { return active_; }

private:
    int fd_;
    FdEntry* entry_;
    uint32_t generation_ = 0;
    bool active_ = false;
    bool counted_ = false;  // holds a count in the loan table (else the fd was already non-blocking)
};

}  // namespace greenld
