#!/usr/bin/env bash
# lighttpd (Debian's; one epoll loop, no threads) under greenld, and real
# HTTP clients under greenld against it:
#  1. lighttpd natively and under greenld: 200 downloads of known files by
#     20 concurrent curl processes, every body checked by sha256; wrk for 3
#     seconds (requests/s, greenld / native ratio); OS threads of lighttpd;
#  2. curl under greenld (its threaded resolver: the URL names localhost),
#     wget under greenld: every body checked by sha256;
#  3. siege -c 200 (a thread per simulated user) natively and under
#     greenld: 1000 transactions, none failed; its OS threads sampled while
#     it runs (natively about 200, under greenld the hubs plus the shim's
#     own). Its rc file (siege writes a template on first use) lives in a
#     temporary HOME.
# Installs lighttpd, wrk, siege, wget, curl (apt) when missing and root.
source "$(dirname "$0")/lib.bash" "$@"
need lighttpd:lighttpd wrk:wrk siege:siege wget:wget curl:curl
# env and the launcher exec: a background job has the program's own PID.
greenld=(env GREENLD_LIBRARY="$BUILD/libgreenld.so" GREENLD_HUBS=2 scripts/greenld --)
# max_threads PID SECONDS: waits for PID to end (killed after SECONDS),
# prints the most OS threads it had.
max_threads() {
    local pid=$1 deadline=$((SECONDS + $2)) max=0 t
    while kill -0 "$pid" 2>/dev/null; do
        [ $SECONDS -ge $deadline ] && { kill "$pid" 2>/dev/null; break; }
        t=$(threads_of "$pid")
        [ "$t" -gt "$max" ] && max=$t
        sleep 0.05
    done
    echo "$max"
}

mkdir -p "$dir/www"
for i in $(seq 1 10); do head -c $((i * 13001)) /dev/urandom >"$dir/www/f$i.bin"; done
echo hello >"$dir/www/small.txt"
(cd "$dir/www" && sha256sum f*.bin) >"$dir/expected"
# sum_ok FILE NAME: the file's sha256 is the expected one of NAME.
sum_ok() { [ "$(sha256sum <"$1" | cut -d' ' -f1)" = "$(awk -v n="$2" '$2 == n { print $1 }' "$dir/expected")" ]; }

declare -A rps threads
for mode in native greenld; do
    port=$(free_port)
    cat >"$dir/lighttpd.conf" <<CONF
server.document-root = "$dir/www"
server.bind = "127.0.0.1"
server.port = $port
server.errorlog = "$dir/lighttpd.err"
server.max-connections = 1024
mimetype.assign = ( "" => "application/octet-stream" )
CONF
    if [ "$mode" = greenld ]; then
        "${greenld[@]}" lighttpd -D -f "$dir/lighttpd.conf" &
    else
        lighttpd -D -f "$dir/lighttpd.conf" &
    fi
    server=$!
    pids+=("$server")
    wait_port "$port"

    rm -rf "$dir/got"; mkdir -p "$dir/got"
    seq 0 199 | xargs -P 20 -I{} sh -c \
        'n={}; f=f$((n % 10 + 1)).bin; curl -sf --max-time 30 -o "$0/got/$n.$f" "http://127.0.0.1:$1/$f"' "$dir" "$port"
    got=$(ls "$dir/got" | wc -l) bad=0
    for f in "$dir"/got/*; do
        [ -e "$f" ] || continue
        name=${f##*/}
        sum_ok "$f" "${name#*.}" || bad=$((bad + 1))
    done
    check "lighttpd ($mode): 200 downloads by 20 concurrent curl, every sha256 right ($got got, $bad bad)" \
        '[ "$got" -eq 200 ] && [ "$bad" -eq 0 ]'

    out=$(timeout 30 wrk -t 2 -c 50 -d 3s "http://127.0.0.1:$port/small.txt" 2>&1)
    rps[$mode]=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    errs=$(grep -c "Non-2xx\|Socket errors" <<<"$out")
    threads[$mode]=$(threads_of "$server")
    check "lighttpd ($mode): wrk -c 50 for 3 s, no error (${rps[$mode]:-?} requests/s)" '[ -n "${rps[$mode]}" ] && [ "$errs" -eq 0 ]'
    check "lighttpd ($mode): still serving after the load" \
        '[ "$(curl -sf --max-time 10 "http://127.0.0.1:$port/small.txt")" = hello ]'

    if [ "$mode" = native ]; then
        # Clients under greenld against the native server.
        "${greenld[@]}" curl -sf --max-time 30 -o "$dir/curl.f7" "http://localhost:$port/f7.bin"
        rc=$?
        check "curl under greenld (threaded resolver for localhost): the body's sha256 is right" '[ $rc -eq 0 ] && sum_ok "$dir/curl.f7" f7.bin'
        "${greenld[@]}" curl -sf --no-progress-meter --max-time 30 --parallel --parallel-max 5 \
            $(for i in 1 2 3 4 5 6 7 8 9 10; do echo "-o $dir/curlp.f$i http://localhost:$port/f$i.bin"; done)
        rc=$? bad=0
        for i in 1 2 3 4 5 6 7 8 9 10; do sum_ok "$dir/curlp.f$i" "f$i.bin" || bad=$((bad + 1)); done
        check "curl --parallel under greenld: 10 downloads, every sha256 right ($bad bad)" '[ $rc -eq 0 ] && [ $bad -eq 0 ]'
        "${greenld[@]}" wget -q -T 30 -O "$dir/wget.f9" "http://localhost:$port/f9.bin"
        rc=$?
        check "wget under greenld: the body's sha256 is right" '[ $rc -eq 0 ] && sum_ok "$dir/wget.f9" f9.bin'

        for smode in native greenld; do
            home=$dir/home.$smode
            mkdir -p "$home"
            if [ "$smode" = greenld ]; then
                HOME=$home "${greenld[@]}" siege -j -b -c 200 -r 5 "http://127.0.0.1:$port/small.txt" \
                    >"$dir/siege.$smode" 2>"$dir/siege.$smode.err" &
            else
                HOME=$home siege -j -b -c 200 -r 5 "http://127.0.0.1:$port/small.txt" \
                    >"$dir/siege.$smode" 2>"$dir/siege.$smode.err" &
            fi
            sp=$!
            pids+=("$sp")
            smax=$(max_threads "$sp" 120)
            wait "$sp"
            trans=$(sed -nE 's/.*"transactions":[[:space:]]*([0-9]+).*/\1/p' "$dir/siege.$smode")
            failed=$(sed -nE 's/.*"failed_transactions":[[:space:]]*([0-9]+).*/\1/p' "$dir/siege.$smode")
            if [ "$smode" = greenld ]; then
                check "siege -c 200 -r 5 under greenld: ${trans:-?} transactions, ${failed:-?} failed, $smax OS threads (<= 8)" \
                    '[ "${trans:-0}" -eq 1000 ] && [ "${failed:-1}" -eq 0 ] && [ "$smax" -le 8 ]'
            else
                check "siege -c 200 -r 5 natively: ${trans:-?} transactions, ${failed:-?} failed, $smax OS threads (a thread per user)" \
                    '[ "${trans:-0}" -eq 1000 ] && [ "${failed:-1}" -eq 0 ] && [ "$smax" -ge 100 ]'
            fi
            echo "# siege -c 200 ($smode): OS threads at most $smax"
        done
    fi
    kill "$server" 2>/dev/null; wait "$server" 2>/dev/null
done
ratio=$(awk -v a="${rps[native]:-0}" -v b="${rps[greenld]:-0}" 'BEGIN { if (a > 0) printf "%.2f", b / a; else print "?" }')
echo "# lighttpd: wrk requests/s native ${rps[native]:-?}, greenld ${rps[greenld]:-?} (ratio $ratio); OS threads native ${threads[native]}, greenld ${threads[greenld]}"
finish
