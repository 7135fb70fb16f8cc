#!/usr/bin/env bash
# stunnel4 (Debian's; a thread per connection, OpenSSL over the shim's
# sockets) as TLS in front of a native lighttpd, natively and under
# greenld: 200 downloads through TLS by 20 concurrent `curl -k`, every body
# checked by sha256; 100 idle client connections held at once (each holds
# a stunnel thread in its TLS handshake): natively about 100 OS threads,
# under greenld the hubs plus the shim's own.
# Installs stunnel4, lighttpd, openssl, curl (apt) when missing and root.
source "$(dirname "$0")/lib.bash" "$@"
need stunnel4:stunnel4 lighttpd:lighttpd openssl:openssl curl:curl
greenld=(env GREENLD_LIBRARY="$BUILD/libgreenld.so" GREENLD_HUBS=2 scripts/greenld --)

# The backend: native lighttpd with known files.
mkdir -p "$dir/www"
for i in $(seq 1 10); do head -c $((i * 11003)) /dev/urandom >"$dir/www/f$i.bin"; done
(cd "$dir/www" && sha256sum f*.bin) >"$dir/expected"
backend=$(free_port)
cat >"$dir/lighttpd.conf" <<CONF
server.document-root = "$dir/www"
server.bind = "127.0.0.1"
server.port = $backend
server.errorlog = "$dir/lighttpd.err"
mimetype.assign = ( "" => "application/octet-stream" )
CONF
lighttpd -D -f "$dir/lighttpd.conf" &
pids+=($!)
wait_port "$backend"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" >/dev/null 2>&1

for mode in native greenld; do
    port=$(free_port)
    cat >"$dir/stunnel.conf" <<CONF
foreground = yes
pid =
output = $dir/stunnel.$mode.log
debug = 4
[https]
accept = 127.0.0.1:$port
connect = 127.0.0.1:$backend
cert = $dir/cert.pem
key = $dir/key.pem
CONF
    if [ "$mode" = greenld ]; then
        "${greenld[@]}" stunnel4 "$dir/stunnel.conf" 2>>"$dir/stunnel.$mode.err" &
    else
        stunnel4 "$dir/stunnel.conf" 2>>"$dir/stunnel.$mode.err" &
    fi
    server=$!
    pids+=("$server")
    wait_port "$port"

    rm -rf "$dir/got"; mkdir -p "$dir/got"
    t0=$EPOCHREALTIME
    seq 0 199 | xargs -P 20 -I{} sh -c \
        'n={}; f=f$((n % 10 + 1)).bin; curl -skf --max-time 30 -o "$0/got/$n.$f" "https://127.0.0.1:$1/$f"' "$dir" "$port"
    t1=$EPOCHREALTIME
    got=$(ls "$dir/got" | wc -l) bad=0
    for f in "$dir"/got/*; do
        [ -e "$f" ] || continue
        name=${f##*/}; name=${name#*.}
        [ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$(awk -v n="$name" '$2 == n { print $1 }' "$dir/expected")" ] || bad=$((bad + 1))
    done
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')
    check "stunnel4 ($mode): 200 TLS downloads by 20 concurrent curl -k, every sha256 right ($got got, $bad bad, ${secs}s)" \
        '[ "$got" -eq 200 ] && [ "$bad" -eq 0 ]'

    # 100 connections that never start their handshake: each holds a
    # stunnel thread blocked in its read.
    threads=$(threads_holding "$server" "$port" 100)
    if [ "$mode" = greenld ]; then
        check "stunnel4 (greenld): 100 idle TLS clients held with $threads OS threads (<= 8)" '[ "$threads" -ge 1 ] && [ "$threads" -le 8 ]'
    else
        check "stunnel4 (native): 100 idle TLS clients hold $threads OS threads (a thread per connection)" '[ "$threads" -ge 90 ]'
    fi
    check "stunnel4 ($mode): still serving after the idle clients left" \
        '[ "$(curl -skf --max-time 10 "https://127.0.0.1:$port/f1.bin" | sha256sum | cut -d" " -f1)" = "$(awk '"'"'$2 == "f1.bin" { print $1 }'"'"' "$dir/expected")" ]'
    echo "# stunnel4 ($mode): 200 TLS downloads in ${secs}s; OS threads with 100 idle clients: $threads"
    kill "$server" 2>/dev/null; wait "$server" 2>/dev/null
done

finish
