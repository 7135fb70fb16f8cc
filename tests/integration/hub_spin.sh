#!/usr/bin/env bash
# The hubs' bounded spin before epoll_wait (GREENLD_SPIN_US, Hub::idle in
# runtime/hub.cpp), with tests/programs/hub_spin.c on two hubs:
#  - hand-offs between fibers of two hubs, over a socketpair (the kernel's
#    readiness, seen by epoll_wait with a zero timeout) and through a
#    condition variable (the hub's remote queue; the poster skips the
#    eventfd write while the hub spins): fewer than 0.5 voluntary context
#    switches (a thread sleeping in the kernel) per hand-off with the
#    default spin; with GREENLD_SPIN_US=0 every hand-off sleeps a hub (more
#    than 1.5: the measurement itself is sound);
#  - the poster skips the eventfd write while the hub spins: condition
#    variable hand-offs under strace (GREENLD_SPIN_US=1000, room for
#    strace's slow syscalls) make fewer than 1 write(2) per hand-off
#    (measured 0.35-0.6; ~2 without the skip), against ~2 (one per
#    wake-up) with the spin off;
#  - a mostly idle program does not pay for it: with the longest spin
#    (GREENLD_SPIN_US=1000), a thread alternating round trips with 2 ms
#    sleeps: less than 0.1 CPU seconds per second (measured: ~0.03; a spin
#    decided by the last wait alone, without the back-off, ~0.17; one at
#    every idle spell ~0.96); one thread sleeping 10 ms at a time and one
#    blocked in read(): less than 0.05 (measured ~0.013; spinning at every
#    idle spell ~0.11);
#  - with every CPU taken (one busy loop per CPU beside it), hubs do not
#    spin (they would take the CPU their partner needs): more than 0.5
#    sleeps per socket round trip (measured ~1.1; spinning anyway: ~0.04,
#    and ten times slower);
#  - GREENLD_SPIN_US=abc and =5000: one "greenld:" warning naming the
#    value, the default used.
# Hubs spin only while the machine has a CPU to spare, and a spin needs its
# partner running: the spin bounds pass if one of five runs meets them, and
# are skipped (said so) if every run found more runnable tasks than CPUs
# in /proc/loadavg (other programs keep the machine busy).
# Prints "N passed, N failed".
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/../.." || exit 1
LIB=$(readlink -f "$BUILD/libgreenld.so")
PROG=$BUILD/tests/hub_spin
dir=$(mktemp -d)
pass=0 fail=0
cpus=$(nproc)
burners=()
cleanup() {
    local p
    for p in "${burners[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    rm -rf "$dir"
}
trap cleanup EXIT
check() {
    if eval "$2"; then pass=$((pass + 1)); echo "ok - $1"; else fail=$((fail + 1)); echo "not ok - $1"; fi
}
field() { local w; for w in $1; do [[ $w == "$2="* ]] && { echo "${w#*=}"; return; }; done; echo -; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && a != "-" && a + 0 < b + 0) }'; }
gt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && a != "-" && a + 0 > b + 0) }'; }
# run SPIN_US MODE ARG -> hub_spin's line ("" if it failed)
run() {
    local spin=()
    [[ $1 == default ]] || spin=(GREENLD_SPIN_US="$1")
    env LD_PRELOAD="$LIB" GREENLD_HUBS=2 "${spin[@]}" timeout 60 "$PROG" "$2" "$3" 2>"$dir/err" || return 0
}
# Runnable tasks now (/proc/loadavg's fourth field, "R/T").
runnable() { awk '{ split($4, a, "/"); print a[1] }' /proc/loadavg; }
# best_of5 FIELD BOUND SPIN_US MODE ARG: the lowest FIELD of up to five
# runs, stopping at the first below BOUND; sets `busy` if before every run
# the machine had more runnable tasks than CPUs.
best_of5() {
    local best=- i v
    busy=1
    for i in 1 2 3 4 5; do
        (( $(runnable) > cpus )) || busy=0
        v=$(field "$(run "$3" "$4" "$5")" "$1")
        [[ $v == - ]] && continue
        if [[ $best == - ]] || lt "$v" "$best"; then best=$v; fi
        lt "$best" "$2" && break
        sleep 0.5
    done
    result=$best
}

for mode in socket condvar; do
    best_of5 vcsw_per_hand_off 0.5 default "$mode" 20000
    v=$result
    echo "# $mode, default spin: $v voluntary context switches per hand-off"
    if ! lt "$v" 0.5 && (( busy )); then
        pass=$((pass + 1))
        echo "ok - $mode hand-offs across hubs, default spin # SKIP more runnable tasks than CPUs before every run ($v)"
    else
        check "$mode hand-offs across hubs, default spin: < 0.5 sleeps per hand-off ($v)" 'lt "$v" 0.5'
    fi
    v=$(field "$(run 0 "$mode" 20000)" vcsw_per_hand_off)
    echo "# $mode, GREENLD_SPIN_US=0: $v voluntary context switches per hand-off"
    check "$mode hand-offs across hubs, GREENLD_SPIN_US=0: > 1.5 sleeps per hand-off ($v)" 'gt "$v" 1.5'
done

# writes SPIN_US -> write(2) calls per condvar hand-off under strace -f
writes() {
    local line
    line=$(env LD_PRELOAD="$LIB" GREENLD_HUBS=2 GREENLD_SPIN_US="$1" timeout 60 strace -f -c -e trace=write \
        -o "$dir/strace" "$PROG" condvar 2000 2>/dev/null) || { echo -; return; }
    awk -v n="$(field "$line" hand_offs)" '$NF == "write" { w = $4 } END { if (n > 0) printf "%.3f\n", w / n; else print "-" }' \
        "$dir/strace"
}
if command -v strace >/dev/null; then
    busy=1 v=-
    for i in 1 2 3; do
        (( $(runnable) > cpus )) || busy=0
        v=$(writes 1000)
        lt "$v" 1 && break
        sleep 0.5
    done
    echo "# condvar under strace, GREENLD_SPIN_US=1000: $v eventfd writes per hand-off"
    if ! lt "$v" 1 && (( busy )); then
        pass=$((pass + 1))
        echo "ok - eventfd writes skipped for a spinning hub # SKIP more runnable tasks than CPUs before every run ($v)"
    else
        check "eventfd writes skipped for a spinning hub: < 1 write per hand-off ($v)" 'lt "$v" 1'
    fi
    v=$(writes 0)
    echo "# condvar under strace, GREENLD_SPIN_US=0: $v eventfd writes per hand-off"
    check "GREENLD_SPIN_US=0: a write per wake-up, > 1.5 per hand-off ($v)" 'gt "$v" 1.5'
else
    check "strace is installed (apt-get install strace)" false
fi

best_of5 cpu_per_second 0.1 1000 idle 2
v=$result
echo "# round trips between 2 ms sleeps, GREENLD_SPIN_US=1000: $v CPU seconds per second"
check "round trips between sleeps, GREENLD_SPIN_US=1000: < 0.1 CPU seconds per second ($v)" 'lt "$v" 0.1'

# A thread sleeping 10 ms at a time, one blocked in read().
best_of5 cpu_per_second 0.05 1000 sleep 2
v=$result
echo "# 10 ms sleeps and a blocked read, GREENLD_SPIN_US=1000: $v CPU seconds per second"
check "10 ms sleeps and a blocked read, GREENLD_SPIN_US=1000: < 0.05 CPU seconds per second ($v)" 'lt "$v" 0.05'

# Every CPU taken: one busy loop per CPU, bounded in time, stopped by PID.
for ((i = 0; i < cpus; i++)); do
    timeout 30 sh -c 'while :; do :; done' &
    burners+=($!)
done
sleep 0.3
v=$(field "$(run default socket 5000)" vcsw_per_hand_off)
for p in "${burners[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
burners=()
echo "# socket, default spin, $cpus busy loops beside it: $v voluntary context switches per hand-off"
check "socket hand-offs with every CPU taken: hubs sleep, > 0.5 sleeps per hand-off ($v)" 'gt "$v" 0.5'

for bad in abc 5000; do
    line=$(env LD_PRELOAD="$LIB" GREENLD_HUBS=2 GREENLD_SPIN_US=$bad timeout 60 "$PROG" condvar 1000 2>"$dir/err")
    want="greenld: GREENLD_SPIN_US='$bad' is not an integer in 0..1000; using 50"
    check "GREENLD_SPIN_US=$bad: one warning naming it, the default used" \
        '[[ $(field "$line" hand_offs) == 1000 && $(grep -cF "$want" "$dir/err") == 1 && $(wc -l <"$dir/err") == 1 ]]'
done

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
