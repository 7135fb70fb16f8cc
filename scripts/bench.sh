#!/usr/bin/env bash
# bench.sh — the same unmodified binaries natively and under greenld, side by
# side in one run, with a hand-written epoll server as the ceiling.  Prints
# one table and writes BUILD_DIR/bench/results.tsv (one line per metric and
# variant: its median, unit and every sample, for the README and charts).
#
# Usage: scripts/bench.sh [BUILD_DIR]       (default: <repo>/build; `make bench`)
#
# Rows:
#   1  switch_bench: context switch, yield, park/unpark (runtime linked in),
#      against a futex hand-off between two native threads
#   2  pingpong: two threads, one byte over a socketpair, round trips/s
#      (+ syscalls per round trip: strace -c, marginal between two run lengths)
#   3  echo_server (thread per connection) vs epoll_echo at BENCH_CONNS
#      connections: steady-state requests/s (after every connection made its
#      first round trip), and the server's OS threads
#   3b syscalls per request at BENCH_SYSCALL_CONNS connections: strace -c -f -p
#      on the server for the breakdown, perf stat raw_syscalls for the
#      undisturbed total
#   4  BENCH_IDLE_CONNS idle connections: MemAvailable drop (kernel thread
#      stacks count), server RSS and OS threads
#
# Environment: BENCH_REPEAT (3) runs per figure, medians reported;
# BENCH_CONNS ("100 1000 10000"); BENCH_REQUESTS (60000 requests per echo
# run, spread over the connections, at least 5 each); BENCH_SYSCALL_CONNS
# (1000); BENCH_IDLE_CONNS (10000); BENCH_SWITCH_SCALE (0.5, iteration counts
# of switch_bench); BENCH_ROUND_TRIPS (20000, pingpong).
#
# Servers listen on 127.0.0.1 only; every process this script starts is
# stopped by its PID; every load is bounded in count and in time.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${1:-$repo_root/build}
[[ -d $build_dir ]] || { echo "bench: no such build directory: $build_dir" >&2; exit 2; }
build_dir=$(cd "$build_dir" && pwd)

lib=$build_dir/libgreenld.so
echo_server=$build_dir/tests/echo_server
load_client=$build_dir/tests/load_client
epoll_echo=$build_dir/bench/epoll_echo
pingpong=$build_dir/bench/pingpong
switch_bench=$build_dir/bench/switch_bench
for f in "$lib" "$echo_server" "$load_client" "$epoll_echo" "$pingpong" "$switch_bench"; do
    [[ -e $f ]] || { echo "bench: missing $f (run make bench)" >&2; exit 2; }
done

repeat=${BENCH_REPEAT:-3}
conns_list=${BENCH_CONNS:-"100 1000 10000"}
total_requests=${BENCH_REQUESTS:-60000}
syscall_conns=${BENCH_SYSCALL_CONNS:-1000}
idle_conns=${BENCH_IDLE_CONNS:-10000}
switch_scale=${BENCH_SWITCH_SCALE:-0.5}
round_trips=${BENCH_ROUND_TRIPS:-20000}
for v in "$repeat" "$total_requests" "$syscall_conns" "$idle_conns" "$round_trips" $conns_list; do
    [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "bench: not a positive integer: $v" >&2; exit 2; }
done

out_dir=$build_dir/bench
results=$out_dir/results.tsv
mkdir -p "$out_dir"

# Client and server each hold one fd per connection: raise the soft limit to
# the hard one (20,000 here), inherited by everything started below.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (( $(ulimit -n) < idle_conns + 100 )); then
    echo "bench: warning: ulimit -n is $(ulimit -n); runs above $(( $(ulimit -n) - 100 )) connections will fail" >&2
fi

# strace for the syscall breakdown: installed from the script only as root.
have_strace=1
if ! command -v strace >/dev/null; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null 2>&1 || true
    fi
    command -v strace >/dev/null || {
        have_strace=0
        echo "bench: strace is not installed (apt-get install strace, as root): no syscall breakdown" >&2
    }
fi
have_perf=0
if command -v perf >/dev/null && perf stat -e raw_syscalls:sys_enter -x, -o /dev/null true >/dev/null 2>&1; then
    have_perf=1
fi

tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/greenld-bench.XXXXXX")
started=() # every PID this script started in the background and has not reaped

cleanup() {
    local pid
    for pid in "${started[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$tmpdir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

forget() { # PID: drop it from the list once reaped
    local keep=() pid
    for pid in "${started[@]}"; do [[ $pid == "$1" ]] || keep+=("$pid"); done
    started=("${keep[@]}")
}

# Stops a PID this script started: TERM, up to 5 s, then KILL; reaps it.
stop_pid() {
    local pid=$1 tries
    kill -TERM "$pid" 2>/dev/null || true
    for ((tries = 0; tries < 50; tries++)); do
        kill -0 "$pid" 2>/dev/null || break
        [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z ]] && break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget "$pid"
}

# ------------------------------------------------------------ samples

declare -A samples units
order=()
record() { # METRIC VARIANT VALUE UNIT
    local key="$1|$2"
    [[ $3 != - && -n $3 ]] || { echo "bench: no value for $1 ($2)" >&2; return 0; }
    [[ -n ${samples[$key]+x} ]] || order+=("$key")
    samples[$key]="${samples[$key]:-}${samples[$key]:+ }$3"
    units[$key]=$4
}
median() { # values... -> median ("-" if none)
    (( $# )) || { echo -; return; }
    printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {
        if (NR % 2) m = v[(NR + 1) / 2]; else m = (v[NR / 2] + v[NR / 2 + 1]) / 2;
        printf "%.6g\n", m }'
}
med() { # METRIC VARIANT -> median of its samples
    # shellcheck disable=SC2086  # the samples are space-separated numbers
    median ${samples["$1|$2"]:-}
}
ratio() { # A B -> A/B to 2 decimals, "-" if either is missing
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0 || a + 0 < 0 || b + 0 < 0) print "-"; else printf "%.2f\n", a / b }'
}
field() { # LINE KEY -> value of KEY=value in LINE
    local w
    for w in $1; do [[ $w == "$2="* ]] && { echo "${w#*=}"; return; }; done
    echo -
}
progress() { printf '  %s\n' "$*" >&2; }

# ------------------------------------------------------------ servers

server_pid=
server_log=
# start_server KIND (native | greenld | epoll): sets server_pid and port.
start_server() {
    local kind=$1 portfile=$tmpdir/port.$RANDOM tries
    server_log=$tmpdir/server.$kind.log
    case $kind in
        native) "$echo_server" --host 127.0.0.1 --port-file "$portfile" 2>"$server_log" & ;;
        greenld) env LD_PRELOAD="$lib" "$echo_server" --host 127.0.0.1 --port-file "$portfile" 2>"$server_log" & ;;
        epoll) "$epoll_echo" --host 127.0.0.1 --port-file "$portfile" 2>"$server_log" & ;;
    esac
    server_pid=$!
    started+=("$server_pid")
    for ((tries = 0; tries < 100; tries++)); do
        [[ -s $portfile ]] && break
        sleep 0.05
    done
    [[ -s $portfile ]] || { echo "bench: $kind server did not start:" >&2; cat "$server_log" >&2; exit 1; }
    port=$(<"$portfile")
    rm -f "$portfile"
}
stop_server() { stop_pid "$server_pid"; server_pid=; }

# run_paused_client CONNS REQUESTS ON_PAUSE: load_client with a pause after
# every connection's first round trip; ON_PAUSE runs during the pause (the
# server then holds CONNS idle connections).  Sets client_line.
run_paused_client() {
    local conns=$1 requests=$2 on_pause=$3 pausefile=$tmpdir/pause.$RANDOM tries cpid rc=0
    local out=$tmpdir/client.out
    "$load_client" --host 127.0.0.1 --port "$port" --conns "$conns" --requests "$requests" \
        --server-pid "$server_pid" --timeout-sec 90 --pause-file "$pausefile" >"$out" 2>"$tmpdir/client.err" &
    cpid=$!
    started+=("$cpid")
    for ((tries = 0; tries < 1200; tries++)); do # up to 60 s to connect everything
        [[ -e $pausefile ]] && break
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.05
    done
    if [[ -e $pausefile ]]; then
        "$on_pause"
        rm -f "$pausefile"
    fi
    wait "$cpid" || rc=$?
    forget "$cpid"
    client_line=$(<"$out")
    if (( rc != 0 )); then
        echo "bench: load_client failed ($conns connections): $client_line" >&2
        cat "$tmpdir/client.err" "$server_log" >&2
        exit 1
    fi
}
proc_status() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
no_op() { :; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$server_pid/stat"; }
mark_cpu() { cpu_at_pause=$(cpu_ticks); }

counted_requests() { echo $(( $(field "$client_line" requests) - $(field "$client_line" paused_after) )); }
steady_rps() { # client_line -> requests/s after the pause
    local total after secs
    total=$(field "$client_line" requests)
    after=$(field "$client_line" paused_after)
    secs=$(field "$client_line" resumed_seconds)
    awk -v t="$total" -v a="$after" -v s="$secs" 'BEGIN { if (s > 0) printf "%.0f\n", (t - a) / s; else print "-" }'
}

# ------------------------------------------------------------ 1: switch

echo "greenld bench: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $repeat runs per figure" >&2
progress "1  switch_bench x$repeat"
for ((r = 0; r < repeat; r++)); do
    line=$(timeout 120 "$switch_bench" --scale "$switch_scale")
    for key in switch_ns yield_ns park_same_hub_ns park_cross_hub_ns native_same_cpu_ns native_cross_cpu_ns; do
        v=$(field "$line" "$key")
        [[ $v == - || $v == -1* ]] || record "$key" runtime "$v" ns
    done
done

# ------------------------------------------------------------ 2: ping-pong

progress "2  pingpong x$repeat"
pingpong_run() { # VARIANT ROUND_TRIPS -> pingpong's output line
    case $1 in
        native) timeout 120 "$pingpong" --round-trips "$2" ;;
        greenld) timeout 120 env LD_PRELOAD="$lib" "$pingpong" --round-trips "$2" ;;
        greenld-1hub) timeout 120 env LD_PRELOAD="$lib" GREENLD_HUBS=1 "$pingpong" --round-trips "$2" ;;
    esac
}
for ((r = 0; r < repeat; r++)); do
    for variant in native greenld greenld-1hub; do
        record pingpong_rtps "$variant" "$(field "$(pingpong_run "$variant" "$round_trips")" rtps)" round_trips/s
    done
done

# strace -c of a whole run: "SYSCALL CALLS ERRORS" lines.
strace_counts() { # strace -c output file
    awk '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" {
        calls = $4; errs = (NF == 6) ? $5 : 0; print $NF, calls, errs }' "$1"
}
# Syscalls per round trip: the difference between runs of 1,000 and 3,000
# round trips, so start-up and exit cancel out.
declare -A pp_breakdown
if (( have_strace )); then
    progress "2  pingpong syscalls (strace -c -f)"
    for variant in native greenld greenld-1hub; do
        for n in 1000 3000; do
            case $variant in
                native) timeout 120 strace -c -f -o "$tmpdir/pp.$variant.$n" "$pingpong" --round-trips "$n" >/dev/null ;;
                greenld) timeout 120 strace -c -f -o "$tmpdir/pp.$variant.$n" -E LD_PRELOAD="$lib" "$pingpong" --round-trips "$n" >/dev/null ;;
                greenld-1hub) timeout 120 strace -c -f -o "$tmpdir/pp.$variant.$n" -E LD_PRELOAD="$lib" -E GREENLD_HUBS=1 "$pingpong" --round-trips "$n" >/dev/null ;;
            esac
        done
        per=$(join -a1 -a2 -e0 -o 0,1.2,1.3,2.2,2.3 \
                <(strace_counts "$tmpdir/pp.$variant.1000" | sort) <(strace_counts "$tmpdir/pp.$variant.3000" | sort) |
              awk '{ d = ($4 - $2) / 2000; e = ($5 - $3) / 2000; total += d
                     if (d >= 0.05) { s = s sprintf(" %s=%.2f", $1, d); if (e >= 0.05) s = s sprintf("(%.2f err)", e) } }
                   END { printf "%.2f%s\n", total, s }')
        record pingpong_syscalls_per_rt "$variant" "${per%% *}" syscalls
        pp_breakdown[$variant]=${per#* }
    done
fi

# ------------------------------------------------------------ 3: echo

declare -A threads_seen
progress "3  echo servers at connections: $conns_list, x$repeat"
for ((r = 0; r < repeat; r++)); do
    for conns in $conns_list; do
        requests=$(( total_requests / conns ))
        (( requests >= 5 )) || requests=5
        for kind in native greenld epoll; do
            start_server "$kind"
            cpu_at_pause=
            run_paused_client "$conns" "$requests" mark_cpu
            cpu_after=$(cpu_ticks)
            stop_server
            record "echo_rps_$conns" "$kind" "$(steady_rps)" requests/s
            # user+system CPU of the server per request, after the pause
            [[ -n $cpu_at_pause ]] && record "echo_cpu_us_per_req_$conns" "$kind" \
                "$(awk -v d="$(( cpu_after - cpu_at_pause ))" -v hz="$(getconf CLK_TCK)" -v n="$(counted_requests)" \
                    'BEGIN { printf "%.2f\n", d * 1e6 / hz / n }')" us
            threads_seen[$conns.$kind]=$(field "$client_line" server_threads_max)
        done
    done
done

# ------------------------------------------------------------ 3b: syscalls per request
#
# perf counts syscall tracepoints in the kernel without stopping the server:
# the figures of record.  strace stops the server at every syscall, which
# changes its timing (a slowed server finds more work per epoll_wait), but it
# names every syscall and its failures; its counts are the difference between
# two run lengths, so attaching mid-call and the closing EOFs cancel out.

declare -A sys_breakdown
tracer_pid=
perf_syscalls=(read write recvfrom sendto epoll_wait epoll_pwait epoll_ctl futex close)
attach_strace() { # during the pause: trace every thread of the server
    strace -c -f -p "$server_pid" -o "$tmpdir/strace.out" 2>"$tmpdir/strace.err" &
    tracer_pid=$!
    started+=("$tracer_pid")
    local tries untraced
    for ((tries = 0; tries < 300; tries++)); do # up to 30 s for thousands of threads
        untraced=$( (grep -l '^TracerPid:[[:space:]]*0$' /proc/"$server_pid"/task/*/status 2>/dev/null || true) | wc -l)
        (( untraced == 0 )) && break
        sleep 0.1
    done
}
attach_perf() {
    local events=(-e raw_syscalls:sys_enter) sc tries threads
    for sc in "${perf_syscalls[@]}"; do events+=(-e "syscalls:sys_enter_$sc"); done
    events+=(-e syscalls:sys_exit_read --filter 'ret == -11' -e syscalls:sys_exit_recvfrom --filter 'ret == -11')
    perf stat -x, -o "$tmpdir/perf.out" "${events[@]}" -p "$server_pid" 2>"$tmpdir/perf.err" &
    tracer_pid=$!
    started+=("$tracer_pid")
    # One counter per event and thread: counting starts once all are open.
    threads=$(proc_status "$server_pid" Threads)
    for ((tries = 0; tries < 300; tries++)); do
        (( $(find /proc/"$tracer_pid"/fd -mindepth 1 2>/dev/null | wc -l) >= threads * (${#perf_syscalls[@]} + 3) )) && break
        kill -0 "$tracer_pid" 2>/dev/null || break
        sleep 0.1
    done
}
detach_tracer() {
    kill -INT "$tracer_pid" 2>/dev/null || true
    local tries
    for ((tries = 0; tries < 300; tries++)); do kill -0 "$tracer_pid" 2>/dev/null || break; sleep 0.1; done
    stop_pid "$tracer_pid"
}

# strace_run KIND REQUESTS_PER_CONN: the strace -c output in
# $tmpdir/strace.KIND.REQUESTS, the requests it covers in strace_counted.
strace_run() {
    start_server "$1"
    run_paused_client "$syscall_conns" "$2" attach_strace
    detach_tracer
    stop_server
    cp "$tmpdir/strace.out" "$tmpdir/strace.$1.$2"
    strace_counted=$(counted_requests)
}

short_requests=$(( 5000 / syscall_conns + 2 ))
long_requests=$(( short_requests + 10000 / syscall_conns + 1 ))
perf_requests=$(( total_requests / syscall_conns + 1 ))
(( perf_requests >= 3 )) || perf_requests=3
for kind in native greenld epoll; do
    if (( have_perf )); then
        progress "3b $kind: perf stat syscall tracepoints, $syscall_conns connections x $((perf_requests - 1)) requests"
        start_server "$kind"
        run_paused_client "$syscall_conns" "$perf_requests" attach_perf
        detach_tracer
        stop_server
        n=$(counted_requests)
        per=$(awk -F, -v n="$n" '
            $1 !~ /^[0-9]+$/ { next }
            $3 == "raw_syscalls:sys_enter" { total = $1; next }
            $3 ~ /sys_enter_/ { name = $3; sub(/.*sys_enter_/, "", name); c[name] = $1; named += $1; order[++k] = name; next }
            $3 ~ /sys_exit_/ { name = $3; sub(/.*sys_exit_/, "", name); eagain[name] = $1 }
            END {
                printf "%.2f", total / n
                for (i = 1; i <= k; i++) {
                    name = order[i]
                    if (c[name] / n < 0.01) continue
                    printf " %s=%.2f", name, c[name] / n
                    if (eagain[name] / n >= 0.01) printf "(%.2f EAGAIN)", eagain[name] / n
                }
                if ((total - named) / n >= 0.01) printf " other=%.2f", (total - named) / n
                printf "\n"
            }' "$tmpdir/perf.out")
        if [[ $per =~ ^[0-9] ]]; then
            record "syscalls_per_req_perf_$syscall_conns" "$kind" "${per%% *}" syscalls
            sys_breakdown[perf.$kind]=${per#* }
        else
            echo "bench: perf stat gave no count for $kind:" >&2
            cat "$tmpdir/perf.out" "$tmpdir/perf.err" >&2
        fi
    fi
    if (( have_strace )); then
        progress "3b $kind: strace -c -f -p, $syscall_conns connections, $((short_requests - 1)) and $((long_requests - 1)) requests each"
        strace_run "$kind" "$short_requests"
        n_short=$strace_counted
        strace_run "$kind" "$long_requests"
        n_long=$strace_counted
        per=$(join -a1 -a2 -e0 -o 0,1.2,1.3,2.2,2.3 \
                <(strace_counts "$tmpdir/strace.$kind.$short_requests" | sort) \
                <(strace_counts "$tmpdir/strace.$kind.$long_requests" | sort) |
              awk -v n="$(( n_long - n_short ))" '{ d = ($4 - $2) / n; e = ($5 - $3) / n; total += d
                     if (d >= 0.01 || d <= -0.01) { s = s sprintf(" %s=%.2f", $1, d); if (e >= 0.01) s = s sprintf("(%.2f err)", e) } }
                   END { printf "%.2f%s\n", total, s }')
        record "syscalls_per_req_strace_$syscall_conns" "$kind" "${per%% *}" syscalls
        sys_breakdown[strace.$kind]=${per#* }
    fi
done

# ------------------------------------------------------------ 4: memory

mem_available_kib() { awk '$1 == "MemAvailable:" { print $2 }' /proc/meminfo; }
measure_idle() {
    sleep 1 # let the last accepts and first round trips settle
    local after
    after=$(mem_available_kib)
    record "idle_mem_drop_$idle_conns" "$kind" "$(( (mem_before - after) / 1024 ))" MiB
    record "idle_rss_$idle_conns" "$kind" "$(( $(proc_status "$server_pid" VmRSS) / 1024 ))" MiB
    record "idle_threads_$idle_conns" "$kind" "$(proc_status "$server_pid" Threads)" threads
}
progress "4  $idle_conns idle connections x$repeat"
for ((r = 0; r < repeat; r++)); do
    for kind in native greenld epoll; do
        sleep 0.5 # the previous server's memory returns to the system
        mem_before=$(mem_available_kib)
        start_server "$kind"
        run_paused_client "$idle_conns" 2 measure_idle
        stop_server
    done
done

# ------------------------------------------------------------ output

{
    printf 'metric\tvariant\tmedian\tunit\tsamples\n'
    for key in "${order[@]}"; do
        # shellcheck disable=SC2086
        printf '%s\t%s\t%s\t%s\t%s\n' "${key%%|*}" "${key#*|}" "$(median ${samples[$key]})" "${units[$key]}" "${samples[$key]// /,}"
    done
} >"$results"

row() { printf '%-44s %12s %12s %12s %9s %9s\n' "$@"; }
echo
echo "greenld bench — medians of $repeat runs; $(nproc) CPUs; load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
row "" native greenld epoll g/native g/epoll
row "1  fiber context switch, ns" - "$(med switch_ns runtime)" - - -
row "1  yield hand-off (fiber->hub->fiber), ns" "$(awk -v v="$(med native_same_cpu_ns runtime)" 'BEGIN { if (v == "-") print "-"; else printf "%.0f\n", v / 2 }')" \
    "$(med yield_ns runtime)" - \
    "$(ratio "$(med yield_ns runtime)" "$(awk -v v="$(med native_same_cpu_ns runtime)" 'BEGIN { if (v == "-") print "-"; else print v / 2 }')")" -
row "1  park/unpark round trip, same hub/CPU, ns" "$(med native_same_cpu_ns runtime)" "$(med park_same_hub_ns runtime)" - \
    "$(ratio "$(med park_same_hub_ns runtime)" "$(med native_same_cpu_ns runtime)")" -
row "1  park/unpark round trip, cross hub/CPU, ns" "$(med native_cross_cpu_ns runtime)" "$(med park_cross_hub_ns runtime)" - \
    "$(ratio "$(med park_cross_hub_ns runtime)" "$(med native_cross_cpu_ns runtime)")" -
row "2  ping-pong, round trips/s" "$(med pingpong_rtps native)" "$(med pingpong_rtps greenld)" - \
    "$(ratio "$(med pingpong_rtps greenld)" "$(med pingpong_rtps native)")" -
row "2  ping-pong GREENLD_HUBS=1, round trips/s" "$(med pingpong_rtps native)" "$(med pingpong_rtps greenld-1hub)" - \
    "$(ratio "$(med pingpong_rtps greenld-1hub)" "$(med pingpong_rtps native)")" -
if (( have_strace )); then
    row "2  ping-pong syscalls per round trip" "$(med pingpong_syscalls_per_rt native)" "$(med pingpong_syscalls_per_rt greenld)" - \
        "$(ratio "$(med pingpong_syscalls_per_rt greenld)" "$(med pingpong_syscalls_per_rt native)")" -
    row "2  ... GREENLD_HUBS=1" - "$(med pingpong_syscalls_per_rt greenld-1hub)" - - -
fi
for conns in $conns_list; do
    n=$(med "echo_rps_$conns" native) g=$(med "echo_rps_$conns" greenld) e=$(med "echo_rps_$conns" epoll)
    row "3  echo $conns conns, requests/s" "$n" "$g" "$e" "$(ratio "$g" "$n")" "$(ratio "$g" "$e")"
    n=$(med "echo_cpu_us_per_req_$conns" native) g=$(med "echo_cpu_us_per_req_$conns" greenld) e=$(med "echo_cpu_us_per_req_$conns" epoll)
    row "   echo $conns conns, server CPU us/request" "$n" "$g" "$e" "$(ratio "$g" "$n")" "$(ratio "$g" "$e")"
    row "   echo $conns conns, server OS threads" "${threads_seen[$conns.native]}" "${threads_seen[$conns.greenld]}" \
        "${threads_seen[$conns.epoll]}" - -
done
for tool in strace perf; do
    m=syscalls_per_req_${tool}_$syscall_conns
    [[ -n ${samples["$m|native"]+x} ]] || continue
    n=$(med "$m" native) g=$(med "$m" greenld) e=$(med "$m" epoll)
    row "3b syscalls/request, $syscall_conns conns ($tool)" "$n" "$g" "$e" "$(ratio "$g" "$n")" "$(ratio "$g" "$e")"
done
for m in idle_mem_drop idle_rss idle_threads; do
    case $m in
        idle_mem_drop) label="MemAvailable drop, MiB" ;;
        idle_rss) label="server RSS, MiB" ;;
        *) label="server OS threads" ;;
    esac
    n=$(med "${m}_$idle_conns" native) g=$(med "${m}_$idle_conns" greenld) e=$(med "${m}_$idle_conns" epoll)
    row "4  $idle_conns idle: $label" "$n" "$g" "$e" "$(ratio "$g" "$n")" "$(ratio "$g" "$e")"
done
if (( have_strace )); then
    echo
    echo "Syscalls per round trip / request (strace -c; (N err) = calls that failed, e.g. EAGAIN):"
    for v in native greenld greenld-1hub; do printf '  ping-pong %-13s%s\n' "$v:" "${pp_breakdown[$v]:-}"; done
    for v in native greenld epoll; do printf '  echo %-18s%s\n' "$v:" "${sys_breakdown[strace.$v]:-}"; done
fi
if (( have_perf )); then
    echo
    echo "Syscalls per request at $syscall_conns connections, undisturbed (perf stat, syscall tracepoints):"
    for v in native greenld epoll; do printf '  echo %-18s%s\n' "$v:" "${sys_breakdown[perf.$v]:-}"; done
fi
echo
echo "Row 1: greenld figures from switch_bench (runtime linked in); its native column is a futex"
echo "hand-off between two native threads pinned to one CPU (round trip; the yield row shows half of it)"
echo "or to two CPUs.  Row 3: requests/s and CPU after every connection made its first round trip;"
echo "one single-threaded load_client on the same machine drives every server, so near its own limit"
echo "the requests/s of the faster servers converge and server CPU/request tells them apart."
echo "Row 4: the MemAvailable drop includes the client's $idle_conns sockets and both ends' kernel"
echo "socket memory, the same in every column.  Absolute figures move with the machine's load."
echo "Results: $results"
