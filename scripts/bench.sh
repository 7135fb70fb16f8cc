#!/usr/bin/env bash
# bench.sh — the same unmodified binaries natively and under greenld, side by
# side in one run, with a hand-written epoll server as the ceiling.  Prints
# one table, writes BUILD_DIR/bench/results.tsv (one line per metric and
# variant: its median, unit and every sample) and BUILD_DIR/bench/chart.png
# (scripts/bench_plot.py: requests/s and memory vs connections).
#
# Usage: scripts/bench.sh [BUILD_DIR]       (default: <repo>/build; `make bench`)
#
# Rows (numbered as in the table):
#   1  switch_bench: context switch, yield, park/unpark (runtime linked in),
#      against a futex hand-off between two native threads
#   2  pingpong: two threads, one byte over a socketpair, round trips/s;
#      syscalls per round trip (strace -c -f, marginal between two lengths)
#   3  echo_server (thread per connection) vs epoll_echo at BENCH_CONNS
#      connections: steady-state requests/s (after every connection made its
#      first round trip), server CPU per request, syscalls per request
#      (perf stat on the server's own cgroup; strace -c -f at <= 1,000
#      connections where perf cannot), and, while every connection is idle
#      after its first round trip, the MemAvailable drop, RSS and OS threads
#   4  the most connections one server process holds (fd limit minus 100),
#      and the most threads one program keeps parked in read() (stops at
#      BENCH_MAX_THREADS, a pthread_create failure, or 60 s)
#   5  redis-server + redis-benchmark, memcached -t 4 + mc_load
#   6  Python socketserver.ThreadingTCPServer echo (tests/real/echo_server.py):
#      natively, under gevent's monkey patching, under greenld
#   7  DNS: 200 threads each resolving a name at once, against a DNS server
#      (tests/bench/slow_dns.py) that answers after 200 ms: seconds for all
#   8  cpu_threads: two CPU-bound threads, CPU time per wall second and
#      kernel tasks used, natively and with GREENLD_HUBS=1 and 2
#
# Environment: BENCH_REPEAT (3) runs per figure, medians reported;
# BENCH_CONNS ("100 1000 10000"); on a loaded machine the later sections
# skip their extra runs past fixed points in time (printed), to end within
# 10 minutes; BENCH_REQUESTS (30000 requests per echo
# run, spread over the connections, at least 6 each); BENCH_MAX_THREADS
# (100000); BENCH_PID_HEADROOM (4000: native threads stop that many pids
# short of pid_max, so other processes on the machine can still fork).
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
bench_bin=$build_dir/bench
py_echo=$repo_root/tests/real/echo_server.py
python=/usr/bin/python3 # Debian's, where python3-gevent and python3-matplotlib live
for f in "$lib" "$echo_server" "$load_client" "$py_echo" "$bench_bin"/{epoll_echo,pingpong,switch_bench,parked_threads,cpu_threads,mc_load,dns_lookups}; do
    [[ -e $f ]] || { echo "bench: missing $f (run make bench)" >&2; exit 2; }
done
epoll_echo=$bench_bin/epoll_echo

repeat=${BENCH_REPEAT:-3}
conns_list=${BENCH_CONNS:-"100 1000 10000"}
total_requests=${BENCH_REQUESTS:-30000}
max_threads=${BENCH_MAX_THREADS:-100000}
pid_headroom=${BENCH_PID_HEADROOM:-4000}
for v in "$repeat" "$total_requests" "$max_threads" "$pid_headroom" $conns_list; do
    [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "bench: not a positive integer: '$v'" >&2; exit 2; }
done
syscall_detail_conns=1000 # the connection count whose syscall breakdown is printed

# Debian packages the rows need: installed when missing and root, else a
# clear message naming them.
need_pkgs=()
command -v strace >/dev/null || need_pkgs+=(strace)
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null || need_pkgs+=(redis-server redis-tools)
command -v memcached >/dev/null || need_pkgs+=(memcached)
"$python" -c 'import gevent' 2>/dev/null || need_pkgs+=(python3-gevent)
"$python" -c 'import matplotlib' 2>/dev/null || need_pkgs+=(python3-matplotlib)
if (( ${#need_pkgs[@]} )); then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "bench: installing ${need_pkgs[*]}" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null 2>&1 ||
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null 2>&1; } || true
    else
        echo "bench: missing Debian packages: ${need_pkgs[*]} (run 'sudo apt-get install ${need_pkgs[*]}' or make bench as root)" >&2
        exit 2
    fi
    if ! { command -v strace && command -v redis-server && command -v redis-benchmark && command -v memcached &&
           "$python" -c 'import gevent, matplotlib'; } >/dev/null 2>&1; then
        echo "bench: could not install ${need_pkgs[*]}" >&2
        exit 2
    fi
fi

out_dir=$build_dir/bench
results=$out_dir/results.tsv
chart=$out_dir/chart.png
mkdir -p "$out_dir"

# Client and server each hold one fd per connection: raise the soft limit to
# the hard one (20,000 here), inherited by everything started below.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fd_limit=$(ulimit -n)
[[ $fd_limit =~ ^[0-9]+$ ]] || fd_limit=1048576
for c in $conns_list; do
    (( c + 100 <= fd_limit )) || { echo "bench: $c connections need ulimit -n >= $((c + 100)); it is $fd_limit" >&2; exit 2; }
done
hold_conns=$(( fd_limit - 100 ))
(( hold_conns <= 100000 )) || hold_conns=100000

tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/greenld-bench.XXXXXX")
started=() # every PID this script started in the background and has not reaped

# The servers run in a cgroup of their own, so that perf counts the syscalls
# of the server (all its threads, whatever their number) and nothing else.
cgroup_dir=
cgroup_name=
cg_root=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
if [[ -n $cg_root && -w $cg_root ]] && command -v perf >/dev/null; then
    cgroup_name=greenld-bench-$$
    if mkdir "$cg_root/$cgroup_name" 2>/dev/null; then
        cgroup_dir=$cg_root/$cgroup_name
        perf stat -a -x, -e raw_syscalls:sys_enter -G "$cgroup_name" -o /dev/null true >/dev/null 2>&1 ||
            { rmdir "$cgroup_dir"; cgroup_dir=; }
    fi
fi

# And in a memory cgroup, whose usage is the server's own memory, user pages
# and kernel memory (thread stacks, page tables, slab) alike, unmoved by
# whatever else runs on the machine: cgroup v1's memory controller, or v2's
# when it is enabled there.
mem_cg_dir=
mem_usage_file=
mem_peak_file= # cgroup v1's, which can be reset
mem_v1=$(awk '$3 == "cgroup" && $4 ~ /(^|,)memory(,|$)/ { print $2; exit }' /proc/mounts)
if [[ -n $mem_v1 && -w $mem_v1 ]] && mkdir "$mem_v1/greenld-bench-$$" 2>/dev/null; then
    mem_cg_dir=$mem_v1/greenld-bench-$$
    mem_usage_file=$mem_cg_dir/memory.usage_in_bytes
    mem_peak_file=$mem_cg_dir/memory.max_usage_in_bytes
elif [[ -n $cgroup_dir && -e $cgroup_dir/memory.current ]]; then
    mem_usage_file=$cgroup_dir/memory.current
fi
cg_procs=()
[[ -z $cgroup_dir ]] || cg_procs+=("$cgroup_dir/cgroup.procs")
[[ -z $mem_cg_dir ]] || cg_procs+=("$mem_cg_dir/cgroup.procs")
# in_cgroups CMD...: runs CMD (exec) inside the benchmark's cgroups.
in_cgroups() {
    if (( ${#cg_procs[@]} )); then
        # shellcheck disable=SC2016  # $$ and $0 are the inner shell's
        exec sh -c 'for f in $0; do echo $$ > "$f" || exit 1; done; exec "$@"' "${cg_procs[*]}" "$@"
    else
        exec "$@"
    fi
}
cg_mem_mib() { # the cgroup's memory usage now, MiB ("-" without one)
    [[ -n $mem_usage_file ]] || { echo -; return; }
    awk '{ printf "%.0f\n", $1 / 1048576 }' "$mem_usage_file"
}

cleanup() {
    local pid
    for pid in "${started[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    [[ -z $cgroup_dir ]] || rmdir "$cgroup_dir" 2>/dev/null || true
    [[ -z $mem_cg_dir ]] || rmdir "$mem_cg_dir" 2>/dev/null || true
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
t_start=$SECONDS
# another_run R LIMIT SECTION: whether run R (from 0) of SECTION may start:
# the first always, the others only before LIMIT seconds into the bench,
# so that a loaded machine still gets every row within 10 minutes.
short_sections=
another_run() {
    (( $1 == 0 || SECONDS - t_start < $2 )) && return 0
    short_sections+=" $3 ($1 of $repeat runs);"
    return 1
}
progress() { printf '  [%3ds] %s\n' "$((SECONDS - t_start))" "$*" >&2; }

# ------------------------------------------------------------ servers

server_pid=
server_log=
# start_server VARIANT (native | greenld) PORTFILE CMD...: runs CMD in the
# servers' cgroup, under greenld or not; waits for PORTFILE; sets server_pid
# and port.
start_server() {
    local variant=$1 portfile=$2 tries
    shift 2
    rm -f "$portfile"
    server_log=$tmpdir/server.log
    local pre=()
    [[ $variant == greenld ]] && pre=(env LD_PRELOAD="$lib")
    (in_cgroups "${pre[@]}" "$@") 2>"$server_log" &
    server_pid=$!
    started+=("$server_pid")
    for ((tries = 0; tries < 300; tries++)); do
        [[ -s $portfile ]] && break
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.05
    done
    [[ -s $portfile ]] || { echo "bench: server did not start: $*" >&2; cat "$server_log" >&2; exit 1; }
    port=$(<"$portfile")
}
# start_echo KIND (native | greenld | epoll | py-native | py-gevent | py-greenld)
start_echo() {
    local pf=$tmpdir/port
    case $1 in
        native) start_server native "$pf" "$echo_server" --host 127.0.0.1 --port-file "$pf" ;;
        greenld) start_server greenld "$pf" "$echo_server" --host 127.0.0.1 --port-file "$pf" ;;
        epoll) start_server native "$pf" "$epoll_echo" --host 127.0.0.1 --port-file "$pf" ;;
        py-native) start_server native "$pf" "$python" "$py_echo" "$pf" ;;
        py-gevent) start_server native "$pf" "$python" -m gevent.monkey "$py_echo" "$pf" ;;
        py-greenld) start_server greenld "$pf" "$python" "$py_echo" "$pf" ;;
    esac
}
stop_server() { stop_pid "$server_pid"; server_pid=; }

# run_paused_client CONNS REQUESTS ON_PAUSE ON_DONE [soft [TIMEOUT_S]]: load_client
# with a pause after every connection's first round trip (ON_PAUSE runs
# then: the server holds CONNS idle connections) and one once every request
# is done, connections still open (ON_DONE).  Sets client_line and
# client_rc; exits the script on a failed run unless "soft".
run_paused_client() {
    local conns=$1 requests=$2 on_pause=$3 on_done=$4 soft=${5:-} timeout=${6:-120} pausefile=$tmpdir/pause cpid step tries
    local out=$tmpdir/client.out
    rm -f "$pausefile"
    "$load_client" --host 127.0.0.1 --port "$port" --conns "$conns" --requests "$requests" \
        --server-pid "$server_pid" --timeout-sec "$timeout" --pause-file "$pausefile" --close reset >"$out" 2>"$tmpdir/client.err" &
    cpid=$!
    started+=("$cpid")
    for step in "$on_pause" "$on_done"; do
        for ((tries = 0; tries < timeout * 20; tries++)); do
            [[ -e $pausefile ]] && break
            kill -0 "$cpid" 2>/dev/null || break
            sleep 0.05
        done
        [[ -e $pausefile ]] || break
        "$step"
        rm -f "$pausefile"
    done
    client_rc=0
    wait "$cpid" || client_rc=$?
    forget "$cpid"
    client_line=$(<"$out")
    if (( client_rc != 0 )) && [[ $soft != soft ]]; then
        echo "bench: load_client failed ($conns connections): $client_line" >&2
        cat "$tmpdir/client.err" "$server_log" >&2
        exit 1
    fi
    return 0
}
proc_status() { # PID KEY -> the number in /proc/PID/status, "-" if gone
    local v
    v=$(awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || true)
    echo "${v:--}"
}
kib_to_mib() { awk -v k="$1" 'BEGIN { if (k == "-" || k == "") print "-"; else printf "%.0f\n", k / 1024 }'; }
mib_delta() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || a == "" || b == "") print "-"; else print a - b }'; }
no_op() { :; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$server_pid/stat" 2>/dev/null || true; }
mem_available_kib() { awk '$1 == "MemAvailable:" { print $2 }' /proc/meminfo; }

counted_requests() { echo $(( $(field "$client_line" requests) - $(field "$client_line" paused_after) )); }
steady_rps() { # client_line -> requests/s after the pause
    awk -v t="$(field "$client_line" requests)" -v a="$(field "$client_line" paused_after)" \
        -v s="$(field "$client_line" resumed_seconds)" 'BEGIN { if (s > 0) printf "%.0f\n", (t - a) / s; else print "-" }'
}

# ------------------------------------------------------------ syscall counting
#
# perf counts syscall tracepoints in the kernel without stopping the server,
# on every CPU but only for tasks of the servers' cgroup: one counter per
# event and CPU, whatever the number of server threads.  Without a cgroup
# (no cgroup2 mount, or not root) strace -c -f -p stands in, at up to 1,000
# connections (attaching to 10,000 threads takes minutes).  Either counts
# from the client's first pause to its second: the requests after every
# connection's first round trip, no set-up, no closing.

perf_syscalls=(read write recvfrom sendto epoll_wait epoll_pwait epoll_ctl futex)
counter_pid=
counter_kind=
attach_counter() { # CONNS
    counter_pid='' counter_kind=''
    if [[ -n $cgroup_dir ]]; then
        local events=(-e raw_syscalls:sys_enter -G "$cgroup_name") sc tries ncpu
        for sc in "${perf_syscalls[@]}"; do events+=(-e "syscalls:sys_enter_$sc" -G "$cgroup_name"); done
        events+=(-e syscalls:sys_exit_read --filter 'ret == -11' -G "$cgroup_name"
                 -e syscalls:sys_exit_recvfrom --filter 'ret == -11' -G "$cgroup_name")
        perf stat -a -x, -o "$tmpdir/perf.out" "${events[@]}" 2>"$tmpdir/perf.err" &
        counter_pid=$! counter_kind=perf
        started+=("$counter_pid")
        ncpu=$(nproc)
        for ((tries = 0; tries < 100; tries++)); do # counting starts once every counter is open
            (( $(find /proc/"$counter_pid"/fd -mindepth 1 2>/dev/null | wc -l) >= ncpu * (${#perf_syscalls[@]} + 3) )) && break
            kill -0 "$counter_pid" 2>/dev/null || break
            sleep 0.05
        done
    elif (( $1 <= 1000 )); then
        strace -c -f -p "$server_pid" -o "$tmpdir/strace.out" 2>"$tmpdir/strace.err" &
        counter_pid=$! counter_kind=strace
        started+=("$counter_pid")
        local tries untraced
        for ((tries = 0; tries < 300; tries++)); do # up to 30 s for 1,000 threads
            untraced=$( (grep -l '^TracerPid:[[:space:]]*0$' /proc/"$server_pid"/task/*/status 2>/dev/null || true) | wc -l)
            (( untraced == 0 )) && break
            sleep 0.1
        done
    fi
}
# detach_counter N: sets counter_result to "TOTAL name=per-request..." for
# N requests, or "-".  (Not in a $(...) subshell: stop_pid must update
# `started` in this shell.)
detach_counter() {
    local n=$1 tries
    counter_result=-
    [[ -n $counter_pid ]] || return 0
    kill -INT "$counter_pid" 2>/dev/null || true
    for ((tries = 0; tries < 300; tries++)); do kill -0 "$counter_pid" 2>/dev/null || break; sleep 0.05; done
    stop_pid "$counter_pid"
    if [[ $counter_kind == perf ]]; then
        counter_result=$(awk -F, -v n="$n" '
            $1 !~ /^[0-9]+$/ { next }
            $3 == "raw_syscalls:sys_enter" { total = $1; next }
            $3 ~ /sys_enter_/ { name = $3; sub(/.*sys_enter_/, "", name); c[name] = $1; named += $1; order[++k] = name; next }
            $3 ~ /sys_exit_/ { name = $3; sub(/.*sys_exit_/, "", name); eagain[name] = $1 }
            END {
                if (total == "" || n <= 0) { print "-"; exit }
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
    else
        counter_result=$(awk -v n="$n" '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" {
                calls = $4; errs = (NF == 6) ? $5 : 0; total += calls
                if (calls / n >= 0.01) { s = s sprintf(" %s=%.2f", $NF, calls / n); if (errs / n >= 0.01) s = s sprintf("(%.2f err)", errs / n) } }
            END { if (n <= 0) print "-"; else printf "%.2f%s\n", total / n, s }' "$tmpdir/strace.out")
    fi
}

# ------------------------------------------------------------ 1: switch

echo "greenld bench: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $repeat runs per figure," \
    "syscalls counted by $([[ -n $cgroup_dir ]] && echo "perf (cgroup $cgroup_name)" || echo "strace")" >&2
progress "1  switch_bench x$repeat"
for ((r = 0; r < repeat; r++)); do
    line=$(timeout 120 "$bench_bin/switch_bench" --scale 0.3)
    for key in switch_ns yield_ns park_same_hub_ns park_cross_hub_ns native_same_cpu_ns native_cross_cpu_ns; do
        v=$(field "$line" "$key")
        [[ $v == - || $v == -1* ]] || record "$key" runtime "$v" ns
    done
done

# ------------------------------------------------------------ 2: ping-pong

progress "2  pingpong x$repeat"
pingpong_run() { # VARIANT ROUND_TRIPS [strace output] -> pingpong's output line
    local pre=() tracer=()
    case $1 in
        greenld) pre=(env LD_PRELOAD="$lib") ;;
        greenld-1hub) pre=(env LD_PRELOAD="$lib" GREENLD_HUBS=1) ;;
    esac
    [[ -z ${3:-} ]] || tracer=(strace -c -f -o "$3")
    timeout 120 "${tracer[@]}" "${pre[@]}" "$bench_bin/pingpong" --round-trips "$2"
}
for ((r = 0; r < repeat; r++)); do
    for variant in native greenld greenld-1hub; do
        record pingpong_rtps "$variant" "$(field "$(pingpong_run "$variant" 20000)" rtps)" round_trips/s
    done
done
# strace -c of a whole run: "SYSCALL CALLS ERRORS" lines.  Per round trip:
# the difference between runs of 1,000 and 3,000 round trips, so start-up
# and exit cancel out.  (strace follows through env into the program.)
strace_counts() {
    awk '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { calls = $4; errs = (NF == 6) ? $5 : 0; print $NF, calls, errs }' "$1"
}
declare -A breakdown
for variant in native greenld greenld-1hub; do
    for n in 1000 3000; do pingpong_run "$variant" "$n" "$tmpdir/pp.$variant.$n" >/dev/null; done
    per=$(join -a1 -a2 -e0 -o 0,1.2,1.3,2.2,2.3 \
            <(strace_counts "$tmpdir/pp.$variant.1000" | sort) <(strace_counts "$tmpdir/pp.$variant.3000" | sort) |
          awk '{ d = ($4 - $2) / 2000; e = ($5 - $3) / 2000; total += d
                 if (d >= 0.05) { s = s sprintf(" %s=%.2f", $1, d); if (e >= 0.05) s = s sprintf("(%.2f err)", e) } }
               END { printf "%.2f%s\n", total, s }')
    record pingpong_syscalls_per_rt "$variant" "${per%% *}" syscalls
    breakdown[pp.$variant]=${per#* }
done

# ------------------------------------------------------------ 3: echo

on_echo_pause() { # every connection idle after its first round trip
    sleep 0.5 # the last accepts and first round trips settle
    record "echo_mem_drop_$conns" "$kind" "$(kib_to_mib "$(mib_delta "$mem_before" "$(mem_available_kib)")")" MiB
    record "echo_cgmem_$conns" "$kind" "$(mib_delta "$(cg_mem_mib)" "$cg_before")" MiB
    record "echo_rss_$conns" "$kind" "$(kib_to_mib "$(proc_status "$server_pid" VmRSS)")" MiB
    record "echo_threads_$conns" "$kind" "$(proc_status "$server_pid" Threads)" threads
    cpu_at_pause=$(cpu_ticks)
    attach_counter "$conns"
}
on_echo_done() {
    cpu_at_done=$(cpu_ticks)
    detach_counter $(( conns * (requests - 1) ))
    sys=$counter_result
}
progress "3  echo servers at connections: $conns_list, x$repeat"
for ((r = 0; r < repeat; r++)); do
    another_run "$r" 230 "3 echo" || break
    for conns in $conns_list; do
        requests=$(( total_requests / conns ))
        (( requests >= 6 )) || requests=6
        for kind in native greenld epoll; do
            sleep 0.3 # the previous server's memory returns to the system
            mem_before=$(mem_available_kib) cg_before=$(cg_mem_mib)
            start_echo "$kind"
            cpu_at_pause='' cpu_at_done='' sys=-
            run_paused_client "$conns" "$requests" on_echo_pause on_echo_done
            stop_server
            record "echo_rps_$conns" "$kind" "$(steady_rps)" requests/s
            [[ -z $cpu_at_pause || -z $cpu_at_done ]] || record "echo_cpu_us_per_req_$conns" "$kind" \
                "$(awk -v d="$(( cpu_at_done - cpu_at_pause ))" -v hz="$(getconf CLK_TCK)" -v n="$(counted_requests)" \
                    'BEGIN { printf "%.2f\n", d * 1e6 / hz / n }')" us
            [[ $sys == - ]] || record "echo_syscalls_per_req_$conns" "$kind" "${sys%% *}" syscalls
            (( conns != syscall_detail_conns )) || [[ $sys == - ]] || breakdown[echo.$kind]=${sys#* }
        done
        progress "3  echo $conns conns, run $((r + 1)) of $repeat: $(med "echo_rps_$conns" native) / $(med "echo_rps_$conns" greenld) / $(med "echo_rps_$conns" epoll) requests/s (native / greenld / epoll)"
    done
done

# ------------------------------------------------------------ 4: scale

hold_note=
progress "4  most connections held: $hold_conns (the fd limit $fd_limit minus 100)"
on_hold_pause() {
    sleep 0.5
    # A server killed from outside (a shared machine) must not pass for one
    # holding its connections: a zombie has no VmRSS.
    if [[ $(proc_status "$server_pid" VmRSS) == - ]]; then
        hold_note+=" $kind: the server was gone when measured ($(tail -c 200 "$server_log" | tr '\n' ' '))."
        hold_gone=1
        return 0
    fi
    record hold_mem_drop "$kind" "$(kib_to_mib "$(mib_delta "$mem_before" "$(mem_available_kib)")")" MiB
    record hold_cgmem "$kind" "$(mib_delta "$(cg_mem_mib)" "$cg_before")" MiB
    record hold_rss "$kind" "$(kib_to_mib "$(proc_status "$server_pid" VmRSS)")" MiB
    record hold_threads "$kind" "$(proc_status "$server_pid" Threads)" threads
}
for kind in native greenld epoll; do
    sleep 0.3
    mem_before=$(mem_available_kib) cg_before=$(cg_mem_mib)
    start_echo "$kind"
    hold_gone=0
    # Generous: past ~16,000 threads each accept is slower, the accept queue
    # fills, and dropped SYNs are retried with exponential back-off.
    run_paused_client "$hold_conns" 1 on_hold_pause no_op soft 100
    stop_server
    # Each connection makes one round trip: those completed were held.
    (( hold_gone )) || record hold_conns "$kind" "$(field "$client_line" requests)" connections
    if (( client_rc != 0 )); then
        hold_note+=" $kind: $(head -c 200 "$tmpdir/client.err" | tr '\n' ' ')$(tail -c 200 "$server_log" | tr '\n' ' ')."
    fi
done

tasks_now=$(find /proc/[0-9]*/task -maxdepth 1 -mindepth 1 2>/dev/null | wc -l)
pid_max=$(cat /proc/sys/kernel/pid_max)
native_cap=$(( pid_max - tasks_now - pid_headroom ))
(( native_cap <= max_threads )) || native_cap=$max_threads
(( native_cap >= 1 )) || native_cap=1
declare -A threads_stop
progress "4  parked threads: greenld up to $max_threads, native up to $native_cap (pid_max $pid_max, $tasks_now tasks running, $pid_headroom kept free)"
for kind in native greenld; do
    pre=() cap=$max_threads
    [[ $kind == greenld ]] && pre=(env LD_PRELOAD="$lib")
    [[ $kind == native ]] && cap=$native_cap
    # The program exits once it has printed, every thread still parked: its
    # memory is the cgroup's peak.
    [[ -z $mem_peak_file ]] || echo 0 >"$mem_peak_file"
    line=$( (in_cgroups timeout 90 "${pre[@]}" "$bench_bin/parked_threads" --max "$cap" --seconds 60) || true)
    [[ -z $mem_peak_file ]] || record parked_cgmem "$kind" "$(awk '{ printf "%.0f\n", $1 / 1048576 }' "$mem_peak_file")" MiB
    record parked_threads "$kind" "$(field "$line" threads)" threads
    record parked_seconds "$kind" "$(field "$line" seconds)" s
    record parked_rss "$kind" "$(awk -v k="$(field "$line" rss_kib)" 'BEGIN { if (k == "-") print "-"; else printf "%.0f\n", k / 1024 }')" MiB
    stop=${line#*stop=}
    stop=${stop%% seconds=*}
    [[ $stop == max ]] && (( cap < max_threads )) && stop="cap: pid_max $pid_max less $((pid_max - cap)) pids kept for the machine"
    threads_stop[$kind]=$stop
done

# ------------------------------------------------------------ 5: event-loop daemons

progress "5  redis-server + redis-benchmark, memcached + mc_load x$repeat"
redis_conf() { printf 'bind 127.0.0.1\nport %s\nsave ""\nappendonly no\ndaemonize no\nprotected-mode yes\ndir %s\n' "$1" "$tmpdir"; }
free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { # PORT: up to 10 s for something to accept on it
    local tries
    for ((tries = 0; tries < 100; tries++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "bench: nothing listens on 127.0.0.1:$1" >&2
    cat "$server_log" >&2
    exit 1
}
user=()
[[ $(id -u) == 0 ]] && user=(-u nobody)
for ((r = 0; r < repeat; r++)); do
    another_run "$r" 400 "5 redis/memcached" || break
    for variant in native greenld; do
        p=$(free_port)
        redis_conf "$p" >"$tmpdir/redis.conf"
        pre=()
        [[ $variant == greenld ]] && pre=(env LD_PRELOAD="$lib")
        server_log=$tmpdir/server.log
        "${pre[@]}" redis-server "$tmpdir/redis.conf" >"$server_log" 2>&1 &
        server_pid=$!
        started+=("$server_pid")
        wait_port "$p"
        csv=$(timeout 120 redis-benchmark -h 127.0.0.1 -p "$p" -c 50 -n 100000 -t set,get --csv 2>/dev/null)
        stop_server
        for t in SET GET; do
            record "redis_${t,,}_rps" "$variant" \
                "$(awk -F, -v t="\"$t\"" '$1 == t { gsub(/"/, "", $2); printf "%.0f\n", $2 }' <<<"$csv")" requests/s
        done

        p=$(free_port)
        "${pre[@]}" memcached -l 127.0.0.1 -p "$p" -U 0 -t 4 -m 64 "${user[@]}" >"$server_log" 2>&1 &
        server_pid=$!
        started+=("$server_pid")
        wait_port "$p"
        line=$(timeout 120 "$bench_bin/mc_load" --port "$p" --conns 50 --requests 1000 --timeout-sec 100) ||
            { echo "bench: mc_load failed against memcached ($variant): $line" >&2; exit 1; }
        stop_server
        record memcached_rps "$variant" "$(field "$line" rps)" requests/s
    done
done

# ------------------------------------------------------------ 6: Python

progress "6  Python ThreadingTCPServer echo: native, gevent, greenld at 100 and 1000 connections x$repeat"
for ((r = 0; r < repeat; r++)); do
    another_run "$r" 460 "6 Python" || break
    for conns in 100 1000; do
        requests=$(( 12000 / conns ))
        for kind in py-native py-gevent py-greenld; do
            start_echo "$kind"
            run_paused_client "$conns" "$requests" no_op no_op
            stop_server
            record "py_echo_rps_$conns" "${kind#py-}" "$(steady_rps)" requests/s
        done
    done
done

# ------------------------------------------------------------ 7: DNS
#
# dns_lookups (200 threads, one getaddrinfo each) against slow_dns.py, which
# answers after 200 ms, on 127.42.0.53:53.  glibc's resolver only talks to
# port 53 of the servers in /etc/resolv.conf, so the program runs in a mount
# namespace of its own where a bind mount replaces that file: nothing else
# on the machine sees it.  Needs root (port 53, unshare -m).

dns_note=
dns_addr=127.42.0.53
if grep -q 'getaddrinfo' "$repo_root"/preload/*.cpp 2>/dev/null; then
    dns_note="preload/ interposes getaddrinfo"
else
    dns_note="this tree does not interpose the resolver (the DNS work is on another branch): each lookup blocks its hub"
fi
if [[ $(id -u) != 0 ]] || ! command -v unshare >/dev/null; then
    dns_note="n/a: needs root and unshare(1) (a DNS server on port 53, a private /etc/resolv.conf)"
else
    progress "7  DNS: 200 concurrent getaddrinfo, server answering after 200 ms"
    rm -f "$tmpdir/dns.ready"
    "$python" "$repo_root/tests/bench/slow_dns.py" "$dns_addr" 53 200 "$tmpdir/dns.ready" 120 2>"$tmpdir/dns.log" &
    dns_pid=$!
    started+=("$dns_pid")
    for ((tries = 0; tries < 100; tries++)); do
        [[ -e $tmpdir/dns.ready ]] && break
        kill -0 "$dns_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -e $tmpdir/dns.ready ]]; then
        echo "nameserver $dns_addr" >"$tmpdir/resolv.conf"
        for variant in native greenld; do
            pre=()
            [[ $variant == greenld ]] && pre=(env LD_PRELOAD="$lib")
            # shellcheck disable=SC2016  # $0 and $@ are the inner shell's
            line=$(timeout 90 unshare -m sh -c 'mount --bind "$0" /etc/resolv.conf && exec "$@"' "$tmpdir/resolv.conf" \
                "${pre[@]}" "$bench_bin/dns_lookups" --threads 200 2>>"$tmpdir/dns.err" || true)
            if [[ $(field "$line" ok) == 200 ]]; then
                record dns_200_seconds "$variant" "$(field "$line" seconds)" s
            else
                dns_note+="; $variant: failed (${line:-no output} $(head -c 200 "$tmpdir/dns.err" | tr '\n' ' '))"
            fi
        done
    else
        dns_note="n/a: slow_dns.py could not serve on $dns_addr:53 ($(tail -c 200 "$tmpdir/dns.log" | tr '\n' ' '))"
    fi
    stop_pid "$dns_pid"
fi

# ------------------------------------------------------------ 8: all cores

progress "8  cpu_threads: native, GREENLD_HUBS=1, GREENLD_HUBS=2 x$repeat"
declare -A tasks_used
for ((r = 0; r < repeat; r++)); do
    another_run "$r" 520 "8 cpu_threads" || break
    for variant in native hubs1 hubs2; do
        case $variant in
            native) line=$(timeout 120 "$bench_bin/cpu_threads" --iterations 100000000) ;;
            hubs1) line=$(timeout 120 env LD_PRELOAD="$lib" GREENLD_HUBS=1 "$bench_bin/cpu_threads" --iterations 100000000) ;;
            hubs2) line=$(timeout 120 env LD_PRELOAD="$lib" GREENLD_HUBS=2 "$bench_bin/cpu_threads" --iterations 100000000) ;;
        esac
        record cpu_per_wall "$variant" "$(field "$line" cpu_per_wall)" cpu_s/s
        tasks_used[$variant]="${tasks_used[$variant]:-}${tasks_used[$variant]:+,}$(field "$line" os_threads)"
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

chart_note="chart: $chart (and as text: ${chart%.png}.txt)"
"$python" "$repo_root/scripts/bench_plot.py" "$results" "$chart" "$conns_list" 2>"$tmpdir/plot.err" ||
    chart_note="chart: FAILED ($(head -c 200 "$tmpdir/plot.err"))"

row() { printf '%-46s %11s %11s %11s %9s %9s\n' "$@"; }
head_row() { echo; row "$@"; }
echo
echo "greenld bench — medians of $repeat runs; $(nproc) CPUs; load average at the end $(cut -d' ' -f1-3 /proc/loadavg); $((SECONDS - t_start)) s"
head_row "" native greenld epoll g/native g/epoll
half() { awk -v v="$1" 'BEGIN { if (v == "-") print "-"; else printf "%.1f\n", v / 2 }'; }
row "1  fiber context switch, ns" - "$(med switch_ns runtime)" - - -
row "1  yield hand-off (fiber->hub->fiber), ns" "$(half "$(med native_same_cpu_ns runtime)")" "$(med yield_ns runtime)" - \
    "$(ratio "$(med yield_ns runtime)" "$(half "$(med native_same_cpu_ns runtime)")")" -
row "1  park/unpark round trip, same hub/CPU, ns" "$(med native_same_cpu_ns runtime)" "$(med park_same_hub_ns runtime)" - \
    "$(ratio "$(med park_same_hub_ns runtime)" "$(med native_same_cpu_ns runtime)")" -
row "1  park/unpark round trip, cross hub/CPU, ns" "$(med native_cross_cpu_ns runtime)" "$(med park_cross_hub_ns runtime)" - \
    "$(ratio "$(med park_cross_hub_ns runtime)" "$(med native_cross_cpu_ns runtime)")" -
row "2  ping-pong, round trips/s" "$(med pingpong_rtps native)" "$(med pingpong_rtps greenld)" - \
    "$(ratio "$(med pingpong_rtps greenld)" "$(med pingpong_rtps native)")" -
row "2  ping-pong GREENLD_HUBS=1, round trips/s" "$(med pingpong_rtps native)" "$(med pingpong_rtps greenld-1hub)" - \
    "$(ratio "$(med pingpong_rtps greenld-1hub)" "$(med pingpong_rtps native)")" -
row "2  ping-pong syscalls/round trip (strace)" "$(med pingpong_syscalls_per_rt native)" "$(med pingpong_syscalls_per_rt greenld)" - \
    "$(ratio "$(med pingpong_syscalls_per_rt greenld)" "$(med pingpong_syscalls_per_rt native)")" -
row "2  ... GREENLD_HUBS=1" - "$(med pingpong_syscalls_per_rt greenld-1hub)" - - -
sys_tool=$([[ -n $cgroup_dir ]] && echo perf || echo strace)
for conns in $conns_list; do
    for m in echo_rps echo_cpu_us_per_req echo_syscalls_per_req; do
        case $m in
            echo_rps) label="3  echo $conns conns, requests/s" ;;
            echo_cpu_us_per_req) label="   echo $conns conns, server CPU us/request" ;;
            *) label="   echo $conns conns, syscalls/request ($sys_tool)" ;;
        esac
        n=$(med "${m}_$conns" native) g=$(med "${m}_$conns" greenld) e=$(med "${m}_$conns" epoll)
        row "$label" "$n" "$g" "$e" "$(ratio "$g" "$n")" "$(ratio "$g" "$e")"
    done
done
for conns in $conns_list; do
    for m in echo_mem_drop echo_cgmem echo_rss echo_threads; do
        [[ $m != echo_cgmem || -n $mem_usage_file ]] || continue
        case $m in
            echo_mem_drop) label="4  $conns idle conns: MemAvailable drop, MiB" ;;
            echo_cgmem) label="   $conns idle conns: server cgroup memory, MiB" ;;
            echo_rss) label="   $conns idle conns: server RSS, MiB" ;;
            *) label="   $conns idle conns: server OS threads" ;;
        esac
        n=$(med "${m}_$conns" native) g=$(med "${m}_$conns" greenld) e=$(med "${m}_$conns" epoll)
        row "$label" "$n" "$g" "$e" "$(ratio "$g" "$n")" "$(ratio "$g" "$e")"
    done
done
n=$(med hold_conns native) g=$(med hold_conns greenld) e=$(med hold_conns epoll)
row "4  most connections held (of $hold_conns tried)" "$n" "$g" "$e" "$(ratio "$g" "$n")" "$(ratio "$g" "$e")"
n=$(med hold_mem_drop native) g=$(med hold_mem_drop greenld) e=$(med hold_mem_drop epoll)
row "   ... MemAvailable drop, MiB" "$n" "$g" "$e" "$(ratio "$g" "$n")" "$(ratio "$g" "$e")"
if [[ -n $mem_usage_file ]]; then
    n=$(med hold_cgmem native) g=$(med hold_cgmem greenld) e=$(med hold_cgmem epoll)
    row "   ... server cgroup memory, MiB" "$n" "$g" "$e" "$(ratio "$g" "$n")" "$(ratio "$g" "$e")"
fi
n=$(med hold_rss native) g=$(med hold_rss greenld) e=$(med hold_rss epoll)
row "   ... server RSS, MiB" "$n" "$g" "$e" "$(ratio "$g" "$n")" "$(ratio "$g" "$e")"
n=$(med parked_threads native) g=$(med parked_threads greenld)
row "4  live threads parked in read() (see stop)" "$n" "$g" - "$(ratio "$g" "$n")" -
row "   ... seconds to create them" "$(med parked_seconds native)" "$(med parked_seconds greenld)" - - -
row "   ... RSS, MiB" "$(med parked_rss native)" "$(med parked_rss greenld)" - \
    "$(ratio "$(med parked_rss greenld)" "$(med parked_rss native)")" -
[[ -z $mem_peak_file ]] || row "   ... cgroup memory (peak), MiB" "$(med parked_cgmem native)" "$(med parked_cgmem greenld)" - \
    "$(ratio "$(med parked_cgmem greenld)" "$(med parked_cgmem native)")" -
head_row "" native greenld - g/native -
for t in set get; do
    n=$(med "redis_${t}_rps" native) g=$(med "redis_${t}_rps" greenld)
    row "5  redis ${t^^}, 50 conns, requests/s" "$n" "$g" - "$(ratio "$g" "$n")" -
done
n=$(med memcached_rps native) g=$(med memcached_rps greenld)
row "5  memcached -t 4, 50 conns set/get, req/s" "$n" "$g" - "$(ratio "$g" "$n")" -
head_row "" native greenld gevent g/native g/gevent
for conns in 100 1000; do
    n=$(med "py_echo_rps_$conns" native) g=$(med "py_echo_rps_$conns" greenld) v=$(med "py_echo_rps_$conns" gevent)
    row "6  Python echo $conns conns, requests/s" "$n" "$g" "$v" "$(ratio "$g" "$n")" "$(ratio "$g" "$v")"
done
head_row "" native greenld - g/native -
n=$(med dns_200_seconds native) g=$(med dns_200_seconds greenld)
row "7  DNS: 200 concurrent lookups, 200 ms, s" "$n" "$g" - "$(ratio "$g" "$n")" -
echo "   ($dns_note)"
head_row "" native HUBS=1 HUBS=2 2/native -
n=$(med cpu_per_wall native) h1=$(med cpu_per_wall hubs1) h2=$(med cpu_per_wall hubs2)
row "8  2 CPU-bound threads: CPU s per wall s" "$n" "$h1" "$h2" "$(ratio "$h2" "$n")" -
row "   kernel tasks the 2 threads ran on" "${tasks_used[native]}" "${tasks_used[hubs1]}" "${tasks_used[hubs2]}" - -

echo
[[ -z $short_sections ]] || echo "Fewer runs, to finish within 10 minutes:$short_sections"
echo "Stop reasons, parked threads: native: ${threads_stop[native]:-?}; greenld: ${threads_stop[greenld]:-?}"
[[ -z $hold_note ]] || echo "Most connections held, failures:$hold_note"
echo "Syscalls per round trip / request ((N err|EAGAIN) = calls that failed):"
for v in native greenld greenld-1hub; do printf '  ping-pong %-13s%s\n' "$v:" "${breakdown[pp.$v]:-}"; done
for v in native greenld epoll; do printf '  echo %s conns %-8s%s\n' "$syscall_detail_conns" "$v:" "${breakdown[echo.$v]:-(not counted)}"; done
echo
echo "Row 1: greenld figures from switch_bench (runtime linked in); its native column is a futex hand-off"
echo "between two native threads pinned to one CPU (round trip; the yield row shows half of it) or two."
echo "Rows 3-4: after every connection made its first round trip; one single-threaded load_client on the"
echo "same machine drives every server, so near its limit the faster servers' requests/s converge and"
echo "server CPU/request tells them apart.  Syscalls by $sys_tool, counted over the requests after the"
echo "first round trip.  The MemAvailable drop includes the client's sockets and both ends' kernel socket"
echo "memory, the same in every column, and whatever else the machine did meanwhile; the server cgroup"
echo "memory is the server's alone: user pages plus kernel memory (thread stacks, page tables, slab)."
echo "Row 8: CPU/wall is 2 only on an otherwise idle 2-CPU machine; the kernel tasks the two threads ran"
echo "on show the parallelism whatever the load.  Every figure moves with the machine's load."
echo "Results: $results"
echo "$chart_note"
