#!/usr/bin/env bash
# tinyproxy (Debian's, a thread per connection) under greenld: 400 proxied
# downloads by 40 concurrent curl clients from a local backend, every body
# checked by sha256, natively and under greenld; and 200 idle client
# connections held at once: natively 200 threads, under greenld the OS
# threads collapse to the hubs plus the shim's own.
# Installs tinyproxy (apt) when missing and root.
source "$(dirname "$0")/lib.bash" "$@"
need tinyproxy:tinyproxy

# The backend: a plain native web server with known files.
mkdir -p "$dir/www"
for i in $(seq 1 10); do head -c $((i * 10007)) /dev/urandom >"$dir/www/f$i.bin"; done
(cd "$dir/www" && sha256sum f*.bin) >"$dir/expected"
"$PY" -u -m http.server --bind 127.0.0.1 --directory "$dir/www" 0 >"$dir/backend.log" 2>&1 &
pids+=($!)
backend=
for _ in $(seq 100); do
    backend=$(sed -nE 's/.* port ([0-9]+) .*/\1/p' "$dir/backend.log" | head -1)
    [ -n "$backend" ] && break
    sleep 0.1
done

for mode in native greenld; do
    port=$(free_port)
    cat >"$dir/tinyproxy.conf" <<CONF
User nobody
Group nogroup
Port $port
Listen 127.0.0.1
Timeout 60
MaxClients 1000
Allow 127.0.0.1
LogLevel Error
DisableViaHeader Yes
CONF
    if [ "$mode" = greenld ]; then
        GREENLD_LIBRARY=$BUILD/libgreenld.so GREENLD_HUBS=2 scripts/greenld -- tinyproxy -d -c "$dir/tinyproxy.conf" \
            >"$dir/proxy.log" 2>&1 &
    else
        tinyproxy -d -c "$dir/tinyproxy.conf" >"$dir/proxy.log" 2>&1 &
    fi
    proxy=$!
    pids+=("$proxy")
    wait_port "$port"

    rm -rf "$dir/got"; mkdir -p "$dir/got"
    t0=$EPOCHREALTIME
    seq 0 399 | xargs -P 40 -I{} sh -c \
        'n={}; f=f$((n % 10 + 1)).bin; curl -sf --max-time 30 -x "http://127.0.0.1:$2" -o "$0/got/$n.$f" "http://127.0.0.1:$1/$f"' \
        "$dir" "${backend:-1}" "$port"
    t1=$EPOCHREALTIME
    got=$(ls "$dir/got" | wc -l)
    bad=0
    for f in "$dir"/got/*; do
        [ -e "$f" ] || continue
        name=${f##*/}; name=${name#*.}
        want=$(awk -v n="$name" '$2 == n { print $1 }' "$dir/expected")
        [ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$want" ] || bad=$((bad + 1))
    done
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')
    check "tinyproxy ($mode): 400 proxied downloads by 40 concurrent clients, every sha256 right ($got got, $bad bad, ${secs}s)" \
        '[ "$got" -eq 400 ] && [ "$bad" -eq 0 ]'

    # 200 connections that send half a request line and wait: each holds a
    # tinyproxy thread blocked in its read.
    threads=$(threads_holding "$proxy" "$port" 200 "GET http://127.0.0.1/ HT")
    if [ "$mode" = greenld ]; then
        check "tinyproxy (greenld): 200 idle clients held with $threads OS threads (<= 8)" '[ "$threads" -ge 1 ] && [ "$threads" -le 8 ]'
    else
        check "tinyproxy (native): 200 idle clients hold $threads OS threads (a thread per connection)" '[ "$threads" -ge 150 ]'
    fi
    echo "# tinyproxy ($mode): 400 downloads in ${secs}s; OS threads with 200 idle clients: $threads"
    kill "$proxy" 2>/dev/null; wait "$proxy" 2>/dev/null
done

finish
