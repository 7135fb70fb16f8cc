#!/usr/bin/env bash
# memcached (Debian's; a libevent epoll loop in each of 4 worker threads,
# pipe/eventfd wake-ups, heavy mutex traffic) under greenld: the program
# is already an event loop and must not notice the shim. 50 client
# connections x 200 keys, SET then GET, every value verified, natively and
# under greenld; the run time ratio is printed.
# Installs memcached (apt) when missing and root.
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/../.."
PY=/usr/bin/python3
pass=0 fail=0
check() {
    if eval "$2"; then pass=$((pass + 1)); echo "ok - $1"; else fail=$((fail + 1)); echo "not ok - $1"; fi
}
if ! command -v memcached >/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then
        apt-get install -y -qq memcached >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq memcached >/dev/null 2>&1; }
    fi
    command -v memcached >/dev/null || { echo "not ok - memcached is missing and could not be installed"; echo "0 passed, 1 failed"; exit 1; }
fi
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null; }
trap cleanup EXIT
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
user=(); [ "$(id -u)" -eq 0 ] && user=(-u nobody)

for mode in native greenld; do
    port=$(free_port)
    if [ "$mode" = greenld ]; then
        GREENLD_LIBRARY=$BUILD/libgreenld.so GREENLD_HUBS=2 scripts/greenld -- \
            memcached -l 127.0.0.1 -p "$port" -U 0 -t 4 -m 64 "${user[@]}" &
    else
        memcached -l 127.0.0.1 -p "$port" -U 0 -t 4 -m 64 "${user[@]}" &
    fi
    server=$!
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    out=$(timeout 120 "$PY" tests/real/memcached_check.py "$port" 50 200)
    rc=$?
    echo "# memcached -t 4 ($mode): $out"
    check "memcached -t 4 ($mode): 50 connections x 200 keys, SET then GET, every value right" '[ $rc -eq 0 ]'
    check "memcached ($mode) still running after the load" 'kill -0 "$server" 2>/dev/null'
    kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; server=
done

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
