#!/usr/bin/env bash
# memcached (Debian's; a libevent epoll loop in each of 4 worker threads,
# pipe/eventfd wake-ups, heavy mutex traffic) under greenld: the program
# is already an event loop and must not notice the shim. Natively and
# under greenld: 50 client connections x 200 keys, SET then GET, every
# value verified; then memcslap (libmemcached's load client, a thread per
# concurrent client) drives it, and the time ratio is printed. Last,
# memcslap itself runs under greenld against the native server: its 50
# threads must collapse to the hubs plus the shim's own.
# Installs memcached and libmemcached-tools (apt) when missing and root.
source "$(dirname "$0")/lib.bash" "$@"
need memcached:memcached memcslap:libmemcached-tools
user=(); [ "$(id -u)" -eq 0 ] && user=(-u nobody)
launch=(env GREENLD_LIBRARY="$BUILD/libgreenld.so" GREENLD_HUBS=2 scripts/greenld --)

# slap PORT CMD-PREFIX...: memcslap, 50 threads x 2,000 operations; prints
# its total time in seconds (empty on failure).
slap() {
    local port=$1; shift
    "$@" timeout 120 memcslap --servers="127.0.0.1:$port" --concurrency=50 --execute-number=2000 \
        --initial-load=1000 >"$dir/slap.out" 2>&1 || return 1
    sed -nE 's/^Time total: *([0-9.]+) seconds.*/\1/p' "$dir/slap.out"
}

declare -A seconds
for mode in native greenld; do
    port=$(free_port)
    if [ "$mode" = greenld ]; then
        "${launch[@]}" memcached -l 127.0.0.1 -p "$port" -U 0 -t 4 -m 64 "${user[@]}" &
    else
        memcached -l 127.0.0.1 -p "$port" -U 0 -t 4 -m 64 "${user[@]}" &
    fi
    server=$!
    pids+=("$server")
    wait_port "$port"
    out=$(timeout 120 "$PY" tests/real/memcached_check.py "$port" 50 200)
    rc=$?
    echo "# memcached -t 4 ($mode): $out"
    check "memcached -t 4 ($mode): 50 connections x 200 keys, SET then GET, every value right" '[ $rc -eq 0 ]'
    seconds[$mode]=$(slap "$port")
    echo "# memcslap -c 50 against memcached ($mode): ${seconds[$mode]:-failed} s"
    check "memcslap: 50 threads x 2,000 operations against memcached ($mode)" '[ -n "${seconds[$mode]}" ]'
    check "memcached ($mode) still running after the load" 'kill -0 "$server" 2>/dev/null'
    if [ "$mode" = native ]; then
        # The client under greenld, against this native server.
        # (The launcher execs memcslap: $client is its PID; bounded to 120 s.)
        "${launch[@]}" memcslap --servers="127.0.0.1:$port" --concurrency=50 \
            --execute-number=2000 --initial-load=1000 >"$dir/gslap.out" 2>&1 &
        client=$!
        pids+=("$client")
        most=0
        for _ in $(seq 2400); do
            kill -0 "$client" 2>/dev/null || break
            t=$(threads_of "$client"); [ "$t" -gt "$most" ] && most=$t
            sleep 0.05
        done
        kill "$client" 2>/dev/null
        wait "$client"
        rc=$?
        client_s=$(sed -nE 's/^Time total: *([0-9.]+) seconds.*/\1/p' "$dir/gslap.out")
        echo "# memcslap -c 50 under greenld: ${client_s:-failed} s, most OS threads $most"
        check "memcslap under greenld: 50 threads x 2,000 operations finish" '[ $rc -eq 0 ] && [ -n "$client_s" ]'
        check "memcslap under greenld: OS threads $most <= 8 (50 natively)" '[ "$most" -le 8 ]'
    fi
    kill "$server" 2>/dev/null; wait "$server" 2>/dev/null
done
if [ -n "${seconds[native]}" ] && [ -n "${seconds[greenld]}" ]; then
    echo "# memcached throughput greenld / native: $(awk -v n="${seconds[native]}" -v g="${seconds[greenld]}" \
        'BEGIN { printf "%.2f (%s s vs %s s)", n / g, g, n }')"
fi
finish
