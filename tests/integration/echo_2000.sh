#!/usr/bin/env bash
# The foundation's acceptance check: the unmodified thread-per-connection
# echo server under greenld serves 2,000 concurrent connections with every
# byte verified by the client, while the process has at most 8 OS threads.
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/../.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
CONNS=${ECHO_CONNS:-2000} REQUESTS=${ECHO_REQUESTS:-20} MAX_THREADS=8
dir=$(mktemp -d)
server=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
pass=0 fail=0
check() {
    if eval "$2"; then pass=$((pass + 1)); echo "ok - $1"; else fail=$((fail + 1)); echo "not ok - $1"; fi
}

GREENLD_LIBRARY=$BUILD/libgreenld.so scripts/greenld -- "$BUILD/tests/echo_server" --port-file "$dir/port" &
server=$!
for _ in $(seq 100); do [ -s "$dir/port" ] && break; sleep 0.1; done
check "server under greenld wrote its port" '[ -s "$dir/port" ]'
line=$("$BUILD/tests/load_client" --port "$(cat "$dir/port")" --conns "$CONNS" --requests "$REQUESTS" \
    --server-pid "$server" --timeout-sec 120)
rc=$?
echo "# $line"
check "$CONNS connections x $REQUESTS requests, every byte verified" '[ $rc -eq 0 ]'
threads=$(sed -nE 's/.*server_threads_max=([0-9-]+).*/\1/p' <<<"$line")
check "OS threads under load: ${threads:-?} <= $MAX_THREADS" '[ -n "$threads" ] && [ "$threads" -ge 1 ] && [ "$threads" -le $MAX_THREADS ]'
check "the launcher exec'd: the server PID is echo_server itself" \
    '[ "$(readlink /proc/$server/exe)" = "$(readlink -f "$BUILD/tests/echo_server")" ]'
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
