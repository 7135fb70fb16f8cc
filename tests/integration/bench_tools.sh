#!/usr/bin/env bash
# The programs `make bench` measures with (tests/bench/, load_client), each
# in a few seconds: they must measure what they claim, or the table lies.
#  - cpu_threads: two CPU-bound threads run on two kernel tasks natively and
#    with GREENLD_HUBS=2 (both cores usable), on one with GREENLD_HUBS=1
#  - parked_threads: N threads parked in read() natively and under greenld,
#    all woken by EOF and joined
#  - pingpong, epoll_echo: correct under their verifying clients
#  - mc_load: verifies memcached's replies (and fails against an echo)
#  - load_client --close reset leaves no TIME_WAIT socket, --close fin does
#  - dns_lookups + slow_dns.py: concurrent lookups, each answered late
#  - bench_plot.py draws a PNG from a results.tsv
# Prints "N passed, N failed".
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/../.." || exit 1
B=$BUILD/bench
LIB=$BUILD/libgreenld.so
PY=/usr/bin/python3
dir=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    rm -rf "$dir"
}
trap cleanup EXIT
pass=0 fail=0
check() {
    if eval "$2"; then pass=$((pass + 1)); echo "ok - $1"; else fail=$((fail + 1)); echo "not ok - $1"; fi
}
field() { local w; for w in $1; do [[ $w == "$2="* ]] && { echo "${w#*=}"; return; }; done; echo -; }
# start PORTFILE CMD...: a server in the background, its PID in $server.
start() {
    local pf=$1 i; shift
    rm -f "$pf"
    "$@" 2>"$dir/server.err" &
    server=$!
    pids+=("$server")
    for ((i = 0; i < 100; i++)); do [[ -s $pf ]] && break; sleep 0.05; done
    port=$(cat "$pf" 2>/dev/null)
}
stop() { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; }

for v in native hubs1 hubs2; do
    case $v in
        native) out=$(timeout 60 "$B/cpu_threads" --iterations 20000000) ;;
        hubs1) out=$(timeout 60 env LD_PRELOAD="$LIB" GREENLD_HUBS=1 "$B/cpu_threads" --iterations 20000000) ;;
        hubs2) out=$(timeout 60 env LD_PRELOAD="$LIB" GREENLD_HUBS=2 "$B/cpu_threads" --iterations 20000000) ;;
    esac
    rc=$?
    echo "# cpu_threads $v: $out"
    want=2
    [[ $v == hubs1 ]] && want=1
    check "cpu_threads ($v): right checksum, two threads on $want kernel task(s)" \
        '[ $rc -eq 0 ] && [ "$(field "$out" os_threads)" = $want ]'
done

for v in native greenld; do
    pre=()
    [[ $v == greenld ]] && pre=(env LD_PRELOAD="$LIB")
    out=$(timeout 60 "${pre[@]}" "$B/parked_threads" --max 500 --seconds 30 --join)
    rc=$?
    echo "# parked_threads $v: $out"
    check "parked_threads ($v): 500 threads parked in read(), all woken by EOF and joined" \
        '[ $rc -eq 0 ] && [ "$(field "$out" threads)" = 500 ] && [ "$(field "$out" stop)" = max ]'
done
out=$(timeout 60 "$B/parked_threads" --max 0 2>&1)
rc=$?
check "parked_threads: --max 0 is refused with a message naming it" '[ $rc -eq 2 ] && [[ $out == *--max* ]]'

for v in native greenld; do
    pre=()
    [[ $v == greenld ]] && pre=(env LD_PRELOAD="$LIB")
    out=$(timeout 60 "${pre[@]}" "$B/pingpong" --round-trips 2000)
    rc=$?
    check "pingpong ($v): 2000 verified round trips" '[ $rc -eq 0 ] && [ "$(field "$out" round_trips)" = 2000 ]'
done

start "$dir/port" "$B/epoll_echo" --host 127.0.0.1 --port-file "$dir/port"
out=$(timeout 60 "$BUILD/tests/load_client" --port "$port" --conns 300 --requests 20 --timeout-sec 30)
rc=$?
stop
check "epoll_echo: 300 connections x 20 verified echoes" '[ $rc -eq 0 ] && [ "$(field "$out" errors)" = 0 ]'

# TIME_WAIT sockets of the client's ports towards this server's port.
time_wait() { ss -Htan state time-wait "( dport = :$1 )" | wc -l; }
for close in fin reset; do
    start "$dir/port" "$BUILD/tests/echo_server" --host 127.0.0.1 --port-file "$dir/port"
    out=$(timeout 60 "$BUILD/tests/load_client" --port "$port" --conns 50 --requests 2 --close "$close" --timeout-sec 30)
    rc=$?
    sleep 0.3
    tw=$(time_wait "$port")
    stop
    echo "# load_client --close $close: $tw TIME_WAIT"
    if [[ $close == reset ]]; then
        check "load_client --close reset: verified run, no TIME_WAIT left" '[ $rc -eq 0 ] && [ "$tw" -eq 0 ]'
    else
        check "load_client --close fin: verified run, the client's ports in TIME_WAIT" '[ $rc -eq 0 ] && [ "$tw" -ge 50 ]'
    fi
done

# A pause file: the client holds every connection until it is removed.
start "$dir/port" "$BUILD/tests/echo_server" --host 127.0.0.1 --port-file "$dir/port"
"$BUILD/tests/load_client" --port "$port" --conns 20 --requests 3 --pause-file "$dir/pause" --timeout-sec 30 \
    --server-pid "$server" >"$dir/client.out" &
cpid=$!
for ((i = 0; i < 200; i++)); do [[ -e $dir/pause ]] && break; sleep 0.05; done
threads=$(awk '$1 == "Threads:" { print $2 }' "/proc/$server/status")
rm -f "$dir/pause"
for ((i = 0; i < 200; i++)); do [[ -e $dir/pause ]] && break; sleep 0.05; done
second=$([[ -e $dir/pause ]] && echo yes)
rm -f "$dir/pause"
wait "$cpid"
rc=$?
stop
out=$(cat "$dir/client.out")
echo "# load_client --pause-file: $out (server threads at the first pause: $threads)"
check "load_client --pause-file: pauses after every first round trip and before closing" \
    '[ $rc -eq 0 ] && [ "$threads" = 21 ] && [ "$second" = yes ] && [ "$(field "$out" paused_after)" = 20 ]'

if command -v memcached >/dev/null; then
    mport=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    user=()
    [ "$(id -u)" -eq 0 ] && user=(-u nobody)
    memcached -l 127.0.0.1 -p "$mport" -U 0 -t 2 -m 16 "${user[@]}" &
    server=$!
    pids+=("$server")
    for ((i = 0; i < 100; i++)); do (exec 3<>"/dev/tcp/127.0.0.1/$mport") 2>/dev/null && break; sleep 0.1; done
    out=$(timeout 60 "$B/mc_load" --port "$mport" --conns 20 --requests 200)
    rc=$?
    stop
    check "mc_load: 20 connections x 200 set/get against memcached, every reply right" \
        '[ $rc -eq 0 ] && [ "$(field "$out" requests)" = 4000 ]'
else
    check "mc_load: memcached is installed (apt-get install memcached)" false
fi
start "$dir/port" "$BUILD/tests/echo_server" --host 127.0.0.1 --port-file "$dir/port"
out=$(timeout 60 "$B/mc_load" --port "$port" --conns 2 --requests 2 --timeout-sec 10 2>&1)
rc=$?
stop
check "mc_load: an echo is not a memcached reply (exit 1, 'wrong reply')" '[ $rc -eq 1 ] && [[ $out == *"wrong reply"* ]]'

# dns_lookups against slow_dns.py (root: port 53 and a private resolv.conf).
if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null; then
    "$PY" tests/bench/slow_dns.py 127.42.0.54 53 100 "$dir/dns.ready" 30 2>"$dir/dns.log" &
    dns=$!
    pids+=("$dns")
    for ((i = 0; i < 100; i++)); do [[ -e $dir/dns.ready ]] && break; sleep 0.1; done
    echo "nameserver 127.42.0.54" >"$dir/resolv.conf"
    # shellcheck disable=SC2016
    out=$(timeout 30 unshare -m sh -c 'mount --bind "$0" /etc/resolv.conf && exec "$@"' "$dir/resolv.conf" \
        "$B/dns_lookups" --threads 20)
    rc=$?
    echo "# dns_lookups, 20 threads, 100 ms server: $out"
    check "dns_lookups: 20 concurrent lookups answered by slow_dns.py after 100 ms, in parallel" \
        '[ $rc -eq 0 ] && awk -v s="$(field "$out" slowest)" -v t="$(field "$out" seconds)" "BEGIN { exit !(s >= 0.1 && t < 1.5) }"'
    out=$(timeout 30 unshare -m sh -c 'mount --bind "$0" /etc/resolv.conf && exec "$@"' "$dir/resolv.conf" \
        "$B/dns_lookups" --threads 2 --domain "bad..name" 2>&1)
    rc=$?
    check "dns_lookups: a lookup that fails makes it exit 1 and say why" '[ $rc -eq 1 ] && [[ $out == *bad..name* ]]'
    kill "$dns" 2>/dev/null; wait "$dns" 2>/dev/null
else
    echo "# dns_lookups not checked: needs root and unshare (port 53, a private /etc/resolv.conf)"
fi

printf 'metric\tvariant\tmedian\tunit\tsamples\n' >"$dir/r.tsv"
for c in 100 1000; do
    for v in native greenld epoll; do
        printf 'echo_rps_%s\t%s\t%s\trequests/s\t1\n' "$c" "$v" "$((c + ${#v}))" >>"$dir/r.tsv"
        printf 'echo_rss_%s\t%s\t%s\tMiB\t1\n' "$c" "$v" "$((c / 10))" >>"$dir/r.tsv"
    done
done
"$PY" scripts/bench_plot.py "$dir/r.tsv" "$dir/chart.png" "100 1000"
rc=$?
check "bench_plot.py: draws a PNG from results.tsv" '[ $rc -eq 0 ] && [ "$(head -c 4 "$dir/chart.png" | od -An -c | tr -d " ")" = "211PNG" ]'
# The text chart: bars scaled to the panel's largest value (greenld at
# 1,000 connections here: 1,000 + 7), one per variant and connection count.
bars() { grep -E " $1 " "$dir/chart.txt" | sed -n "${2}p" | grep -o $'\u2588' | wc -l; }
check "bench_plot.py: writes the text chart, bars scaled to the largest value" \
    '[ "$(bars greenld 2)" -eq 40 ] && [ "$(bars native 1)" -eq 4 ]'
"$PY" scripts/bench_plot.py "$dir/missing.tsv" "$dir/x.png" "100" 2>/dev/null
check "bench_plot.py: a missing results file fails" '[ $? -ne 0 ]'

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
