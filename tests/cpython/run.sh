#!/usr/bin/env bash
# CPython's own test suite, run natively and under greenld, compared test
# case by test case.
#
#   tests/cpython/run.sh [--fast] [--timeout S] [--stall S] [--retries N]
#                        [BUILD_DIR] [MODULE...]
#
#   BUILD_DIR    folder holding libgreenld.so (default: build, relative to
#                the repository root); a first argument that is not a
#                test_* name is taken as BUILD_DIR.
#   MODULE...    CPython test modules (default: the full list below).
#   --fast       the CI subset (FAST_MODULES below): about 3 minutes in
#                all when nothing hangs; timeout 180 s, stall 30 s,
#                2 reruns unless given.
#   --in-thread  run the test driver in a non-main thread (in_thread.py),
#                natively and under greenld alike. greenld leaves the main
#                thread native and most test cases do their I/O in it, so
#                a plain run exercises the shim only where a test starts
#                threads; from a thread, every test case runs in a fiber.
#                Cases that need the main thread (signal.signal) fail
#                the same way in both runs.
#   --timeout S  hard limit per module run, in seconds (default 600, or
#                $CPYTHON_TEST_TIMEOUT). When it fires the run gets SIGUSR1,
#                on which regrtest's faulthandler dumps every Python
#                thread's traceback into the log, then SIGKILL 20 s later.
#   --stall S    a run whose output has not grown for S seconds (default
#                120, or $CPYTHON_TEST_STALL) is treated as hung: same
#                signals. No test case of the listed modules is silent
#                that long natively.
#   --retries N  after a run hangs or dies inside a test case, that case is
#                recorded as hung/crashed and the module is run again
#                without it (regrtest --ignorefile), at most N more times
#                (default 5, or $CPYTHON_TEST_RETRIES), so one hang does not
#                hide the rest of the module. Native runs get the same.
#
# Environment:
#   RESULTS_DIR  where logs go (default: a fresh mktemp -d folder, kept and
#                printed at the end). Per module: MODULE.{native,greenld}.log
#                (stdout+stderr of `python3 -m test -v`) and .meta (exit
#                status, seconds).
#   PYTHON       the interpreter (default /usr/bin/python3: Debian's, which
#                matches the libpython3.11-testsuite package; `python3` on
#                PATH may be another build).
#   GREENLD_*    passed through (e.g. GREENLD_HUBS) to the greenld runs.
#   REGRTEST_ARGS extra arguments for every `python3 -m test` run.
#
# Needs Debian's libpython3.11-testsuite (apt-get install
# libpython3.11-testsuite).
#
# Output: one row per module (native and greenld pass/fail/error/skip
# counts, durations, how each run ended), then every test case that passes
# natively but not under greenld. Those listed in known_failures.txt
# ("module test_id  # reason"; test_id may be a glob, matched against the
# full id or the id without "test.MODULE.") are reported apart and are not
# regressions. Exit status: 0 no regression, 1 regression(s), 2 usage or
# setup error.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
TIMEOUT=${CPYTHON_TEST_TIMEOUT:-600}
STALL=${CPYTHON_TEST_STALL:-120}
RETRIES=${CPYTHON_TEST_RETRIES:-5}

FULL_MODULES=(test_socket test_threading test_thread test_threading_local test_select
              test_selectors test_poll test_epoll test_signal test_subprocess test_time
              test_ssl test_asyncio)
# The CI subset: modules that finish in seconds natively (about 80 s for
# all eight) and exercise what the shim turns cooperative (threads, locks,
# sockets, pipes, poll, select, epoll).
FAST_MODULES=(test_thread test_threading_local test_select test_poll test_epoll
              test_selectors test_threading test_socket)

# Extra regrtest arguments per module.
#   test_socket: the AF_VSOCK cases hang natively on this VM (the vsock
#   transport accepts the socket, nothing ever answers the connect).
module_args() {
    case $1 in
        test_socket) echo "-i *VSOCK*" ;;
    esac
}

usage() {
    sed -n '2,/^set -u/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
    echo
    echo "Full list: ${FULL_MODULES[*]}"
    echo "--fast:    ${FAST_MODULES[*]}"
}

fast=0 in_thread=0 build= modules=() set_timeout= set_stall= set_retries=
while [ $# -gt 0 ]; do
    case $1 in
        -h|--help) usage; exit 0 ;;
        --fast) fast=1 ;;
        --in-thread) in_thread=1 ;;
        --timeout) shift; set_timeout=${1:?--timeout needs seconds} ;;
        --timeout=*) set_timeout=${1#--timeout=} ;;
        --stall) shift; set_stall=${1:?--stall needs seconds} ;;
        --stall=*) set_stall=${1#--stall=} ;;
        --retries) shift; set_retries=${1:?--retries needs a count} ;;
        --retries=*) set_retries=${1#--retries=} ;;
        -*) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
        test_*) modules+=("$1") ;;
        *) if [ -z "$build" ] && [ ${#modules[@]} -eq 0 ]; then build=$1
           else echo "run.sh: unexpected argument $1 (modules are test_*)" >&2; exit 2; fi ;;
    esac
    shift
done
if [ $fast -eq 1 ]; then
    # CI: a hang costs STALL + 20 s, not minutes.
    TIMEOUT=${CPYTHON_TEST_TIMEOUT:-180} STALL=${CPYTHON_TEST_STALL:-30} RETRIES=${CPYTHON_TEST_RETRIES:-2}
fi
TIMEOUT=${set_timeout:-$TIMEOUT} STALL=${set_stall:-$STALL} RETRIES=${set_retries:-$RETRIES}
for v in TIMEOUT STALL RETRIES; do
    case ${!v} in ''|*[!0-9]*) echo "run.sh: ${v,,} wants a whole number, got '${!v}'" >&2; exit 2 ;; esac
done
if [ ${#modules[@]} -eq 0 ]; then
    if [ $fast -eq 1 ]; then modules=("${FAST_MODULES[@]}"); else modules=("${FULL_MODULES[@]}"); fi
fi

build=${build:-build}
case $build in /*) ;; *) [ -d "$build" ] || build=$ROOT/$build ;; esac
LIB=$(cd "$build" 2>/dev/null && pwd)/libgreenld.so
if [ ! -f "$LIB" ]; then
    echo "run.sh: no libgreenld.so in '$build' (run make all)" >&2; exit 2
fi
if [ ! -x "$PYTHON" ]; then echo "run.sh: $PYTHON not found" >&2; exit 2; fi
if ! "$PYTHON" -c 'import test.libregrtest, test.test_thread' 2>/dev/null; then
    echo "run.sh: CPython's test suite is missing for $PYTHON (apt-get install libpython3.11-testsuite)" >&2
    exit 2
fi

if [ -n "${RESULTS_DIR:-}" ]; then mkdir -p "$RESULTS_DIR" || exit 2
else RESULTS_DIR=$(mktemp -d -t greenld-cpython.XXXXXX) || exit 2; fi
RESULTS_DIR=$(cd "$RESULTS_DIR" && pwd)

# The suite must start with SIGINT at its default disposition. A
# non-interactive shell starts background jobs (`cmd &`, as CI runners
# and nohup-style wrappers do) with SIGINT and SIGQUIT ignored, and an
# ignored signal stays ignored across exec. CPython installs its
# KeyboardInterrupt handler only if SIGINT is not ignored at start-up, so
# such a run fails the tests that deliver SIGINT to themselves
# (_thread.interrupt_main, signal.raise_signal(SIGINT), subprocess
# children killed by SIGINT ...) natively as well, for reasons that have
# nothing to do with greenld. `trap - INT` resets our own disposition
# where bash allows it; `env --default-signal=INT` (coreutils >= 8.31)
# resets it for the interpreter whatever we inherited.
trap - INT
DEFSIG=()
if env --default-signal=INT true 2>/dev/null; then DEFSIG=(--default-signal=INT); fi
ulimit -c 0 2>/dev/null || true

if [ $in_thread -eq 1 ]; then DRIVER=("$HERE/in_thread.py"); else DRIVER=(-m test); fi

# attempt MODULE MODE LOG IGNOREFILE: one `python3 -m test -v MODULE` run
# in the scratch cwd, stdin from /dev/null, under the hard timeout and the
# stall watchdog. Leaves rc, secs and stalled set.
attempt() {
    local module=$1 mode=$2 log=$3 ignf=$4 pid start end size last_size last_change now sleeper ended
    local -a pre=() ign=()
    [ "$mode" = greenld ] && pre=("LD_PRELOAD=$LIB")
    [ -s "$ignf" ] && ign=(--ignorefile "$ignf")
    set -f  # module_args and REGRTEST_ARGS hold globs meant for regrtest
    local -a margs=($(module_args "$module")) rargs=(${REGRTEST_ARGS:-})
    set +f
    start=$EPOCHREALTIME
    # Each run gets a fresh working folder: a test (or a tmp cleaner) that
    # removed the previous one must not make the next run fail to start.
    rm -rf "$scratch"; mkdir -p "$scratch" || return 2
    (cd "$scratch" && exec timeout -s USR1 -k 20 "$TIMEOUT" \
        env "${DEFSIG[@]}" "${pre[@]}" "$PYTHON" "${DRIVER[@]}" -v "${rargs[@]}" "${margs[@]}" "${ign[@]}" "$module") \
        </dev/null >"$log" 2>&1 &
    pid=$!
    stalled=0 last_size=-1 last_change=${EPOCHREALTIME%.*}
    while :; do
        # Wakes every 2 s to watch the log, and at once when the run ends
        # (so the measured duration is exact).
        sleep 2 &
        sleeper=$!
        wait -n -p ended "$pid" "$sleeper"
        rc=$?
        if [ "${ended:-}" = "$pid" ]; then
            end=$EPOCHREALTIME
            kill "$sleeper" 2>/dev/null; wait "$sleeper" 2>/dev/null
            break
        fi
        size=$(stat -c %s "$log" 2>/dev/null || echo 0)
        now=${EPOCHREALTIME%.*}
        if [ "$size" != "$last_size" ]; then last_size=$size last_change=$now
        elif [ $stalled -eq 0 ] && [ $((now - last_change)) -ge "$STALL" ]; then
            # SIGALRM is what timeout's own timer raises: it sends SIGUSR1
            # (faulthandler dumps the Python stacks), SIGKILLs 20 s later
            # and exits 124.
            stalled=1
            kill -ALRM "$pid" 2>/dev/null
        fi
    done
    secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
}

# run_one MODULE MODE: attempt 1 writes MODULE.MODE.log; if a run hangs or
# crashes inside a test case, that case is recorded as hung/crashed, added
# to an --ignorefile, and the module is run again (MODULE.MODE.2.log ...),
# up to RETRIES more times, so that one hang does not hide the rest of the
# module.
run_one() {
    local module=$1 mode=$2 k=1 log meta ignf last total=0
    ignf=$RESULTS_DIR/$module.$mode.ignore
    : >"$ignf"
    rm -f "$RESULTS_DIR/$module.$mode".[0-9]*.log "$RESULTS_DIR/$module.$mode".[0-9]*.meta
    while :; do
        if [ $k -eq 1 ]; then log=$RESULTS_DIR/$module.$mode.log meta=$RESULTS_DIR/$module.$mode.meta
        else log=$RESULTS_DIR/$module.$mode.$k.log meta=$RESULTS_DIR/$module.$mode.$k.meta; fi
        attempt "$module" "$mode" "$log" "$ignf"
        printf 'rc=%s\nseconds=%s\nstalled=%s\nlib=%s\nin_thread=%s\n' "$rc" "$secs" "$stalled" "$LIB" "$in_thread" >"$meta"
        total=$(awk -v a="$total" -v b="$secs" 'BEGIN { printf "%.1f", a + b }')
        printf '  %-8s %-22s run %d: exit %3s%s  %7s s\n' "$mode" "$module" "$k" "$rc" \
            "$([ $stalled -eq 1 ] && echo " (stalled ${STALL}s)")" "$secs"
        [ $k -gt "$RETRIES" ] && break
        last=$("$PYTHON" "$HERE/compare.py" --unfinished "$log" "$meta") || break
        [ -n "$last" ] || break
        grep -qxF "$last" "$ignf" && break
        echo "$last" >>"$ignf"
        printf '  %-8s %-22s %s in %s; running the module again without it\n' "$mode" "$module" \
            "$([ "$rc" -eq 124 ] && echo hung || echo died)" "$last"
        k=$((k + 1))
    done
}

scratch=$(mktemp -d -t greenld-cpython-cwd.XXXXXX) || exit 2
trap 'rm -rf "$scratch"' EXIT
echo "greenld: $LIB"
echo "python:  $PYTHON ($("$PYTHON" -c 'import sys; print(sys.version.split()[0])'))"
[ $in_thread -eq 1 ] && echo "driver:  $HERE/in_thread.py (the test cases run in a non-main thread)"
echo "results: $RESULTS_DIR (per run: timeout ${TIMEOUT}s, stall ${STALL}s; up to $RETRIES reruns after a hang)"
for m in "${modules[@]}"; do
    run_one "$m" native
    run_one "$m" greenld
done
echo
"$PYTHON" "$HERE/compare.py" "$RESULTS_DIR" "$HERE/known_failures.txt" "${modules[@]}"
