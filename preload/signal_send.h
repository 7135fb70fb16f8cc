// The system calls that send a signal to a thread named by its id, when the
// program makes them through syscall() (futex_syscall.cpp): answered here
// when the id is a fiber's. Sets *handled to false for anything else.
#pragma once

namespace greenld::signal_send {

long thread_signal_syscall(long number, long a1, long a2, long a3, long a4, bool* handled);

}  // namespace greenld::signal_send
