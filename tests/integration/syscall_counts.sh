#!/usr/bin/env bash
# Syscalls per operation under greenld, counted with strace -c -f (each
# bound is what the readiness tracking of runtime/io.cpp and
# preload/transfer.h gives, with room for noise; without it every bound
# here fails):
#  - ping-pong (tests/bench/pingpong), one byte each way, blocking read and
#    write, at most 0.3 reads per round trip returning EAGAIN. Default hubs
#    (the two threads on two hubs), over a socketpair: at most 6.6 syscalls
#    per round trip (write, read and the hub's epoll_wait on each side: 6;
#    not the 8 of a read tried before each wait). One hub, over a
#    socketpair and over two pipes: at most 4.6 (the write and the read on
#    each side: the writer wakes the reader, so the hub does not poll: at
#    most 0.1 epoll_wait per round trip). Per round trip: the difference
#    between runs of 1,000 and 3,000 round trips, so start-up and exit
#    cancel out. These run with GREENLD_SPIN_US=0: an idle hub's bounded
#    spin (greenld(7), IDLE HUBS; tests/integration/hub_spin.sh) polls with
#    epoll_wait(0) and sched_yield by design, and under strace, where every
#    syscall is ~20 times slower, how many polls fit its window says
#    nothing. With the spin on (the default), the default hubs: at most 7.5
#    per round trip.
#  - the thread-per-connection echo_server at 50 connections, counted over
#    the requests after every connection's first round trip (load_client
#    pauses there and at the end): at most 3.1 syscalls per request (recv,
#    send and at most one epoll_wait), and at most 0.05 recvfrom returning
#    EAGAIN and 0.05 epoll_ctl per request; and at 2,000 connections busy
#    at once, at most 1.5 readiness events reported by epoll_wait per
#    request (each ready fd about once).
#  - 8 threads blocked in read() on one socket, 500 bytes written one at a
#    time (tests/programs/herd_readers.c): fewer than 2 reads returning
#    EAGAIN per byte with the default hubs (one woken reader per hub, not
#    all eight), fewer than 0.5 with one hub.
# Prints "N passed, N failed".
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/../.." || exit 1
LIB=$(readlink -f "$BUILD/libgreenld.so")
dir=$(mktemp -d)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    rm -rf "$dir"
}
trap cleanup EXIT
pass=0 fail=0
check() {
    if eval "$2"; then pass=$((pass + 1)); echo "ok - $1"; else fail=$((fail + 1)); echo "not ok - $1"; fi
}
command -v strace >/dev/null || { echo "not ok - strace is missing (apt-get install strace)"; echo "0 passed, 1 failed"; exit 1; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && a + 0 <= b + 0) }'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && a + 0 < b + 0) }'; }
# strace -c output -> "NAME CALLS ERRORS" lines
counts() { awk '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { print $NF, $4, (NF == 6) ? $5 : 0 }' "$1"; }
# calls NAME FILE / errors NAME FILE
calls() { counts "$2" | awk -v n="$1" '$1 == n { c = $2 } END { print c + 0 }'; }
errors() { counts "$2" | awk -v n="$1" '$1 == n { c = $3 } END { print c + 0 }'; }
total() { counts "$1" | awk '{ t += $2 } END { print t + 0 }'; }

# ---- ping-pong
for variant in "1 socketpair" "1 pipes" "default socketpair" "default-spinning socketpair"; do
    read -r hubs channel <<<"$variant"
    env=(LD_PRELOAD="$LIB")
    [[ $hubs == 1 ]] && env+=(GREENLD_HUBS=1)
    [[ $hubs == default-spinning ]] || env+=(GREENLD_SPIN_US=0)
    args=()
    read_call=recvfrom
    [[ $channel == pipes ]] && args=(--pipes) read_call=preadv2
    limit=6.6
    [[ $hubs == 1 ]] && limit=4.6
    [[ $hubs == default-spinning ]] && limit=7.5
    ok=1
    for n in 1000 3000; do
        timeout 120 strace -f -c -o "$dir/pp.$n" env "${env[@]}" "$BUILD/bench/pingpong" --round-trips $n "${args[@]}" >/dev/null || ok=0
    done
    marginal() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) / 2000 }'; }
    per_rt=$(marginal "$(total "$dir/pp.1000")" "$(total "$dir/pp.3000")")
    eagain_rt=$(marginal "$(errors $read_call "$dir/pp.1000")" "$(errors $read_call "$dir/pp.3000")")
    polls_rt=$(marginal "$(calls epoll_wait "$dir/pp.1000")" "$(calls epoll_wait "$dir/pp.3000")")
    what="ping-pong (hubs $hubs, $channel)"
    echo "# $what: $per_rt syscalls per round trip, $eagain_rt $read_call EAGAIN, $polls_rt epoll_wait"
    check "$what: <= $limit syscalls per round trip ($per_rt)" '[ $ok = 1 ] && le "$per_rt" $limit'
    check "$what: <= 0.3 $read_call returning EAGAIN per round trip ($eagain_rt)" '[ $ok = 1 ] && le "$eagain_rt" 0.3'
    # One hub: the writer wakes the reader itself (io.h, wake_peer_readers),
    # so the hub goes from fiber to fiber without polling.
    [[ $hubs == 1 ]] && check "$what: <= 0.1 epoll_wait per round trip ($polls_rt)" '[ $ok = 1 ] && le "$polls_rt" 0.1'
done

# ---- echo server
# traced_echo CONNS REQUESTS OUT STRACE_ARGS...: echo_server under greenld
# and load_client; the server traced by strace (STRACE_ARGS, output in OUT)
# from every connection's first round trip to the end. Sets ok=1 if every
# echo came back verified.
traced_echo() {
    local conns=$1 requests=$2 out=$3 pf=$dir/port pause=$dir/pause server client tracer i untraced
    shift 3
    rm -f "$pf" "$pause"
    env LD_PRELOAD="$LIB" "$BUILD/tests/echo_server" --host 127.0.0.1 --port-file "$pf" 2>"$dir/server.err" &
    server=$!
    pids+=("$server")
    for ((i = 0; i < 100; i++)); do [[ -s $pf ]] && break; sleep 0.05; done
    "$BUILD/tests/load_client" --host 127.0.0.1 --port "$(cat "$pf" 2>/dev/null || echo 1)" --conns "$conns" \
        --requests "$requests" --timeout-sec 100 --pause-file "$pause" >"$dir/client.out" 2>"$dir/client.err" &
    client=$!
    pids+=("$client")
    wait_pause() { local i; for ((i = 0; i < 1200; i++)); do [[ -e $pause ]] && return 0; kill -0 "$client" 2>/dev/null || return 1; sleep 0.05; done; return 1; }
    ok=0
    if wait_pause; then
        strace -f -p "$server" -o "$out" "$@" 2>"$dir/strace.err" &
        tracer=$!
        pids+=("$tracer")
        # every thread of the server traced before the load resumes
        for ((i = 0; i < 100; i++)); do
            untraced=$( (grep -l '^TracerPid:[[:space:]]*0$' /proc/"$server"/task/*/status 2>/dev/null || true) | wc -l)
            (( untraced == 0 )) && break
            sleep 0.1
        done
        rm -f "$pause"
        if wait_pause; then
            kill -INT "$tracer" 2>/dev/null
            wait "$tracer" 2>/dev/null
            rm -f "$pause"
            wait "$client" && ok=1
        fi
    fi
    kill "$server" 2>/dev/null
    wait "$server" 2>/dev/null
}

conns=50 requests=40
traced_echo $conns $requests "$dir/echo.strace" -c
n=$((conns * (requests - 1)))
per_req=$(awk -v t="$(total "$dir/echo.strace" 2>/dev/null)" -v n=$n 'BEGIN { printf "%.2f", t / n }')
eagain_req=$(awk -v t="$(errors recvfrom "$dir/echo.strace" 2>/dev/null)" -v n=$n 'BEGIN { printf "%.3f", t / n }')
ctl_req=$(awk -v t="$(calls epoll_ctl "$dir/echo.strace" 2>/dev/null)" -v n=$n 'BEGIN { printf "%.3f", t / n }')
echo "# echo $conns connections: $(cat "$dir/client.out" 2>/dev/null)"
echo "# echo: $per_req syscalls per request, $eagain_req recvfrom EAGAIN, $ctl_req epoll_ctl"
check "echo_server, $conns connections under strace: every echo verified" '[ $ok = 1 ]'
check "echo_server: <= 3.1 syscalls per request ($per_req)" '[ $ok = 1 ] && le "$per_req" 3.1'
check "echo_server: <= 0.05 recvfrom returning EAGAIN per request ($eagain_req)" '[ $ok = 1 ] && le "$eagain_req" 0.05'
check "echo_server: <= 0.05 epoll_ctl per request ($ctl_req)" '[ $ok = 1 ] && le "$ctl_req" 0.05'

# 2,000 connections busy at once: the readiness events the hubs' epoll_wait
# report, per request. Each fd is reported about once: a hub polls once per
# pass over its runnable fibers (runtime/hub.cpp, kRunBudget), not every 64
# of them while level-triggered watchers report again every fd whose woken
# fiber has not read yet (14 events per request that way).
conns=2000 requests=20
traced_echo $conns $requests "$dir/echo2000.strace" -e trace=epoll_wait
n=$((conns * (requests - 1)))
events_req=$(awk -v n=$n '/epoll_wait/ && $(NF - 1) == "=" && $NF ~ /^[0-9]+$/ { ev += $NF } END { printf "%.2f", ev / n }' \
    "$dir/echo2000.strace" 2>/dev/null)
echo "# echo $conns connections: $(cat "$dir/client.out" 2>/dev/null)"
echo "# echo $conns connections: $events_req epoll events per request"
check "echo_server, $conns connections under strace: every echo verified" '[ $ok = 1 ]'
check "echo_server, $conns connections: <= 1.5 epoll events per request ($events_req)" '[ $ok = 1 ] && le "$events_req" 1.5'

# ---- many readers of one socket
for hubs in 1 default; do
    env=(LD_PRELOAD="$LIB")
    [[ $hubs == 1 ]] && env+=(GREENLD_HUBS=1)
    limit=2
    [[ $hubs == 1 ]] && limit=0.5
    out=$(timeout 120 strace -f -c -o "$dir/herd" env "${env[@]}" "$BUILD/tests/herd_readers" --readers 8 --bytes 500)
    rc=$?
    per_byte=$(awk -v e="$(errors recvfrom "$dir/herd")" 'BEGIN { printf "%.2f", e / 500 }')
    echo "# herd_readers, hubs $hubs: $out; $per_byte recvfrom EAGAIN per byte"
    check "8 readers of one socket (hubs $hubs): every byte read once" '[ $rc = 0 ]'
    check "8 readers of one socket (hubs $hubs): < $limit reads returning EAGAIN per byte ($per_byte)" \
        '[ $rc = 0 ] && lt "$per_byte" $limit'
done

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
