#!/usr/bin/env bash
# Real, unmodified Python programs under greenld (Debian's /usr/bin/python3):
#  1. socketserver.ThreadingTCPServer echo (a thread per connection): 500
#     connections x 20 requests from the verifying C client, natively and
#     under greenld; under greenld the OS threads collapse to the hubs.
#  2. python3 -m http.server (ThreadingHTTPServer, a thread per request):
#     400 downloads of known files by 40 concurrent curl processes, every
#     body checked by sha256, natively and under greenld.
# Prints one line of figures per run and "N passed, N failed".
source "$(dirname "$0")/lib.bash" "$@"
need curl:curl sha256sum:coreutils

# start MODE PORTFILE CMD...: runs CMD natively or under the launcher, in
# the background; leaves its PID in $server and waits for the port file.
start() {
    local mode=$1 portfile=$2; shift 2
    rm -f "$portfile"
    if [ "$mode" = greenld ]; then
        GREENLD_LIBRARY=$BUILD/libgreenld.so GREENLD_HUBS=2 scripts/greenld -- "$@" &
    else
        "$@" &
    fi
    server=$!
    pids+=("$server")
    for _ in $(seq 100); do [ -s "$portfile" ] && break; sleep 0.1; done
}
stop() { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; }

# ---- 1. ThreadingTCPServer echo -------------------------------------------
for mode in native greenld; do
    start "$mode" "$dir/echo.port" "$PY" "$ROOT/tests/real/echo_server.py" "$dir/echo.port"
    line=$("$BUILD/tests/load_client" --port "$(cat "$dir/echo.port" 2>/dev/null || echo 1)" --conns 500 \
        --requests 20 --server-pid "$server" --timeout-sec 120)
    rc=$?
    echo "# python ThreadingTCPServer echo ($mode): $line"
    check "ThreadingTCPServer echo ($mode): 500 connections x 20 requests, every byte verified" '[ $rc -eq 0 ]'
    threads=$(sed -nE 's/.*server_threads_max=([0-9-]+).*/\1/p' <<<"$line")
    if [ "$mode" = greenld ]; then
        check "ThreadingTCPServer echo (greenld): OS threads under load ${threads:-?} <= 8" \
            '[ -n "$threads" ] && [ "$threads" -le 8 ]'
    else
        check "ThreadingTCPServer echo (native): a thread per connection (${threads:-?} OS threads)" \
            '[ -n "$threads" ] && [ "$threads" -gt 100 ]'
    fi
    stop
done

# ---- 2. python3 -m http.server ---------------------------------------------
mkdir -p "$dir/www"
for i in $(seq 1 20); do head -c $((i * 7919)) /dev/urandom >"$dir/www/f$i.bin"; done
(cd "$dir/www" && sha256sum f*.bin) | sort -k2 >"$dir/expected"
# A port file for http.server: it prints "Serving HTTP on ... port N".
for mode in native greenld; do
    rm -f "$dir/http.log"
    if [ "$mode" = greenld ]; then
        GREENLD_LIBRARY=$BUILD/libgreenld.so GREENLD_HUBS=2 scripts/greenld -- \
            "$PY" -u -m http.server --bind 127.0.0.1 --directory "$dir/www" 0 >"$dir/http.log" 2>&1 &
    else
        "$PY" -u -m http.server --bind 127.0.0.1 --directory "$dir/www" 0 >"$dir/http.log" 2>&1 &
    fi
    server=$!
    pids+=("$server")
    port=
    for _ in $(seq 100); do
        port=$(sed -nE 's/.* port ([0-9]+) .*/\1/p' "$dir/http.log" | head -1)
        [ -n "$port" ] && break
        sleep 0.1
    done
    rm -rf "$dir/got"; mkdir -p "$dir/got"
    t0=$EPOCHREALTIME
    # 400 downloads, 40 at a time; each response body kept as got/<n>.
    seq 0 399 | xargs -P 40 -I{} sh -c \
        'n={}; f=f$((n % 20 + 1)).bin; curl -sf --max-time 30 -o "$0/got/$n.$f" "http://127.0.0.1:$1/$f"' \
        "$dir" "${port:-1}"
    t1=$EPOCHREALTIME
    got=$(cd "$dir/got" && ls | wc -l)
    bad=0
    for f in "$dir"/got/*; do
        name=${f##*/}; name=${name#*.}
        want=$(awk -v n="$name" '$2 == n { print $1 }' "$dir/expected")
        [ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$want" ] || bad=$((bad + 1))
    done
    echo "# python3 -m http.server ($mode): $got of 400 downloads in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s, $bad bad bodies"
    check "http.server ($mode): 400 downloads by 40 concurrent clients, every body's sha256 right" \
        '[ "$got" -eq 400 ] && [ "$bad" -eq 0 ]'
    stop
done

finish
