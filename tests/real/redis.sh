#!/usr/bin/env bash
# redis-server (Debian's; an epoll loop in the main thread plus background
# "bio" threads woken on condvars, fork for BGSAVE) under greenld, natively
# and under greenld in the same run:
#  1. 50 client connections x 200 keys: SET then GET of known binary values,
#     pipelined RPUSH then LRANGE, INCRBY of a shared counter; every reply
#     verified (tests/real/redis_check.py);
#  2. redis-cli: SET/GET/DEL/EXISTS with exact replies;
#  3. UNLINK of a 100,000-member set: freed by a bio thread (INFO
#     lazyfreed_objects counts it), the main loop keeps answering;
#  4. BGSAVE: a forked child writes the snapshot, the parent reaps it; the
#     server restarted from that snapshot returns every value of step 1;
#  5. redis-benchmark (SET, GET, LPUSH, LPOP; 20,000 requests by 50
#     connections): requests/s, the greenld / native ratio and the OS thread
#     count of the server under that load;
#  6. redis-benchmark itself under greenld (--threads 4: an event loop per
#     thread) against the native server: every request answered, its own OS
#     threads collapse to the hubs.
# Installs redis-server and redis-tools (apt) when missing and root.
source "$(dirname "$0")/lib.bash" "$@"
need redis-server:redis-server redis-benchmark:redis-tools
# env and the launcher exec: a background job started with it has the PID
# of the program itself.
greenld=(env GREENLD_LIBRARY="$BUILD/libgreenld.so" GREENLD_HUBS=2 scripts/greenld --)
info_field() { redis-cli -p "$1" info "$2" 2>/dev/null | tr -d '\r' | sed -n "s/^$3://p"; }

# start MODE PORT DATADIR: redis-server in the foreground, in the background
# of this script; its PID in $server.
start() {
    local mode=$1 port=$2 data=$3
    mkdir -p "$data"
    cat >"$data/redis.conf" <<CONF
bind 127.0.0.1
port $port
daemonize no
save ""
appendonly no
dir $data
dbfilename dump.rdb
logfile $data/redis.log
CONF
    if [ "$mode" = greenld ]; then
        "${greenld[@]}" redis-server "$data/redis.conf" &
    else
        redis-server "$data/redis.conf" &
    fi
    server=$!
    pids+=("$server")
    for _ in $(seq 100); do [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
}
stop() { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; }

declare -A rps
for mode in native greenld; do
    port=$(free_port)
    start "$mode" "$port" "$dir/$mode"

    # 1. data through 50 connections
    out=$(timeout 120 "$PY" tests/real/redis_check.py "$port" 50 200)
    rc=$?
    echo "# redis ($mode) data check: $out"
    check "redis ($mode): 50 connections x 200 keys, SET/GET, RPUSH/LRANGE, INCRBY, every reply right" '[ $rc -eq 0 ]'

    # 2. redis-cli, exact replies
    r=$(redis-cli -p "$port" set greeting "hello, greenld" && redis-cli -p "$port" get greeting &&
        redis-cli -p "$port" exists greeting && redis-cli -p "$port" del greeting && redis-cli -p "$port" exists greeting)
    check "redis ($mode): redis-cli SET, GET, EXISTS, DEL, EXISTS reply exactly" \
        '[ "$r" = "$(printf "OK\nhello, greenld\n1\n1\n0")" ]'

    # 3. lazy free on a bio thread
    before=$(info_field "$port" memory lazyfreed_objects)
    made=$(redis-cli -p "$port" eval 'for i = 1, 100000 do redis.call("SADD", KEYS[1], i) end
        return redis.call("SCARD", KEYS[1])' 1 bigset)
    unl=$(redis-cli -p "$port" unlink bigset)
    after=$before
    for _ in $(seq 100); do
        after=$(info_field "$port" memory lazyfreed_objects)
        [ "${after:-0}" -gt "${before:-0}" ] && break
        sleep 0.05
    done
    check "redis ($mode): UNLINK of a 100,000-member set is freed by a bio thread (lazyfreed_objects $before -> $after)" \
        '[ "$made" = 100000 ] && [ "$unl" = 1 ] && [ "${after:-0}" -gt "${before:-0}" ] && [ "$(redis-cli -p "$port" exists bigset)" = 0 ]'

    # 4. BGSAVE (fork), then a restart from the snapshot
    redis-cli -p "$port" bgsave >/dev/null
    status= inprog=1
    for _ in $(seq 300); do
        inprog=$(info_field "$port" persistence rdb_bgsave_in_progress)
        status=$(info_field "$port" persistence rdb_last_bgsave_status)
        [ "$inprog" = 0 ] && [ "$(info_field "$port" persistence rdb_changes_since_last_save)" = 0 ] && break
        sleep 0.1
    done
    check "redis ($mode): BGSAVE in a forked child succeeds and is reaped (status $status)" \
        '[ "$inprog" = 0 ] && [ "$status" = ok ] && [ -s "$dir/$mode/dump.rdb" ]'
    stop
    start "$mode" "$port" "$dir/$mode"
    out=$(timeout 120 "$PY" tests/real/redis_check.py "$port" 50 200 --verify-only)
    rc=$?
    check "redis ($mode): restarted from the snapshot, every value is back ($out)" '[ $rc -eq 0 ]'

    # 5. redis-benchmark, threads sampled under load
    timeout 120 redis-benchmark -p "$port" --csv -n 20000 -c 50 -t set,get,lpush,lpop >"$dir/bench.$mode" 2>/dev/null &
    bench=$!
    pids+=("$bench")
    maxthreads=0
    while kill -0 "$bench" 2>/dev/null; do
        t=$(threads_of "$server")
        [ "$t" -gt "$maxthreads" ] && maxthreads=$t
        sleep 0.2
    done
    wait "$bench"
    brc=$?
    for t in SET GET LPUSH LPOP; do
        rps[$mode.$t]=$(awk -F'"' -v t="$t" '$2 == t { print $4 }' "$dir/bench.$mode")
    done
    check "redis ($mode): redis-benchmark SET/GET/LPUSH/LPOP all ran (${rps[$mode.SET]:-?} / ${rps[$mode.GET]:-?} / ${rps[$mode.LPUSH]:-?} / ${rps[$mode.LPOP]:-?} requests/s)" \
        '[ $brc -eq 0 ] && [ -n "${rps[$mode.SET]}" ] && [ -n "${rps[$mode.GET]}" ] && [ -n "${rps[$mode.LPUSH]}" ] && [ -n "${rps[$mode.LPOP]}" ]'
    check "redis ($mode): still answering after the benchmark" '[ "$(redis-cli -p "$port" ping)" = PONG ]'
    echo "# redis-server ($mode): OS threads under redis-benchmark load: $maxthreads"
    eval "threads_$mode=$maxthreads"

    if [ "$mode" = native ]; then
        # 6. the client under greenld: redis-benchmark --threads 4
        "${greenld[@]}" redis-benchmark -p "$port" --threads 4 --csv -n 20000 -c 50 -t set,get \
            >"$dir/bench.client" 2>"$dir/bench.client.err" &
        bench=$!
        pids+=("$bench")
        cmax=0 deadline=$((SECONDS + 120))
        while kill -0 "$bench" 2>/dev/null; do
            [ $SECONDS -ge $deadline ] && { echo "# redis-benchmark under greenld: still running after 120s, killed"; kill "$bench"; }
            t=$(threads_of "$bench")
            [ "$t" -gt "$cmax" ] && cmax=$t
            sleep 0.1
        done
        wait "$bench"
        brc=$?
        cset=$(awk -F'"' '$2 == "SET" { print $4 }' "$dir/bench.client")
        cget=$(awk -F'"' '$2 == "GET" { print $4 }' "$dir/bench.client")
        check "redis-benchmark --threads 4 under greenld: SET and GET ran ($cset / $cget requests/s), $cmax OS threads (<= 4)" \
            '[ $brc -eq 0 ] && [ -n "$cset" ] && [ -n "$cget" ] && [ "$cmax" -le 4 ]'
    fi
    stop
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", b / a; else print "?" }'; }
echo "# redis-server: requests/s native -> greenld (ratio): SET ${rps[native.SET]:-?} -> ${rps[greenld.SET]:-?} ($(ratio "${rps[native.SET]:-0}" "${rps[greenld.SET]:-0}")), GET ${rps[native.GET]:-?} -> ${rps[greenld.GET]:-?} ($(ratio "${rps[native.GET]:-0}" "${rps[greenld.GET]:-0}")); OS threads under load native $threads_native, greenld $threads_greenld"
finish
