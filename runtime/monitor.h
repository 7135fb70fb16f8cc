// The monitor: gevent's monitor thread, print_run_info and LoopExit for
// native programs. A native thread of ours, started only when a diagnostic
// is asked for (GREENLD_MAX_BLOCKING_TIME, GREENLD_DUMP_SIGNAL), that
//  - reports a hub that has not switched fibers for the max blocking time,
//    with the backtrace of the code that holds it (a CPU loop, a call the
//    shim does not make cooperative);
//  - prints every hub and fiber (state, what it waits for, since when, its
//    backtrace) when the dump signal arrives;
// and, always, from a timer of hub 0 (deadlock_tick), a check that warns,
// with the dump, when every fiber and every native thread of the program
// waits on a lock with no deadline, no fd and no signal wait that could
// end it: a deadlock (the program is left running: a signal handler may
// still release it).
//
// It costs the hubs nothing per switch: it samples the switch counter each
// hub keeps anyway, and the `polling` flag a hub sets around its idle wait.
// To read a hub's fibers consistently it stops the hub thread in a signal
// handler (config::kSampleSignal) for the time of the read.
//
// Backtraces come from libunwind, loaded with dlopen(RTLD_LOCAL) when the
// monitor starts: linked into the preloaded library, its _Unwind_* symbols
// would take over every C++ exception of the program.
#pragma once

namespace greenld {
class Hub;
}

namespace greenld::monitor {

// Reads the settings; if a diagnostic is on, installs the dump signal and
// starts the monitor thread. Called once, from the library's constructor.
void start();
// The first hub is about to start: the signal that stops hubs is set up.
void hubs_starting();
// The deadlock check, run by hub 0's loop twice a second (a timer, not a
// thread of its own: programs count their threads), in the hub's context.
void deadlock_tick(Hub* hub);

}  // namespace greenld::monitor
