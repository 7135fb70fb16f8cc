#!/usr/bin/env bash
# demo.sh — run the thread-per-connection echo server natively and then under
# greenld, hit each with the verifying load client, and compare throughput and
# the number of OS threads the server needed.
#
# Usage: scripts/demo.sh [BUILD_DIR]      (default: <repo>/build)
#
# Environment: DEMO_CONNS (default 2000), DEMO_REQUESTS (default 50).
# Expects BUILD_DIR/libgreenld.so, BUILD_DIR/tests/echo_server and
# BUILD_DIR/tests/load_client to have been built already (see the Makefile);
# this script builds nothing.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
    echo "usage: $0 [BUILD_DIR]" >&2
    exit 2
}
if [[ $# -gt 1 || ${1:-} == -h || ${1:-} == --help ]]; then
    usage
fi

build_dir=${1:-$repo_root/build}
[[ -d $build_dir ]] || { echo "demo: no such build directory: $build_dir" >&2; exit 2; }
build_dir=$(cd "$build_dir" && pwd)
lib=$build_dir/libgreenld.so
server=$build_dir/tests/echo_server
client=$build_dir/tests/load_client
launcher=$repo_root/scripts/greenld
conns=${DEMO_CONNS:-2000}
requests=${DEMO_REQUESTS:-50}
size=64

die() {
    echo "demo: $*" >&2
    exit 2
}
[[ -f $lib ]] || die "missing $lib (run make first)"
[[ -x $server ]] || die "missing $server (run make first)"
[[ -x $client ]] || die "missing $client (run make first)"
[[ -x $launcher ]] || die "missing launcher $launcher"
[[ $conns =~ ^[1-9][0-9]*$ ]] || die "DEMO_CONNS must be a positive integer: $conns"
[[ $requests =~ ^[1-9][0-9]*$ ]] || die "DEMO_REQUESTS must be a positive integer: $requests"

# One fd per connection on both sides; the defaults (1024) are far too low.
if ! ulimit -n "$(ulimit -Hn)" 2>/dev/null; then
    echo "demo: warning: could not raise ulimit -n to $(ulimit -Hn); it is $(ulimit -n)" >&2
fi

tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/greenld-demo.XXXXXX")
launched_pid= # what we started in the background (server, or the launcher)
server_pid=   # the echo_server process itself

# Alive and not a zombie (kill -0 succeeds on zombies, which we must not
# mistake for a running server).
is_alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# Kill what we started, by PID, and reap it.  Bounded: TERM, up to 5 s to
# exit, then KILL.
stop_server() {
    local pid pids=() tries
    for pid in $server_pid $launched_pid; do
        pids+=("$pid")
        kill -TERM "$pid" 2>/dev/null || true
    done
    for ((tries = 0; tries < 50; tries++)); do
        any_alive "${pids[@]}" || break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do
        if is_alive "$pid"; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    if [[ -n $launched_pid ]]; then
        wait "$launched_pid" 2>/dev/null || true
    fi
    launched_pid=
    server_pid=
}

any_alive() {
    local pid
    for pid; do
        if is_alive "$pid"; then
            return 0
        fi
    done
    return 1
}

cleanup() {
    if [[ -n $launched_pid ]]; then
        stop_server
    fi
    rm -rf "$tmpdir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The PID whose /proc/PID/status we sample must be echo_server itself.  If the
# launcher exec()s (the expected case) that is the PID we started; if it
# forks instead, look for echo_server among its descendants, so we never
# report the launcher's own thread count by mistake.
find_server_pid() {
    local pid=$1 child exe
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
    if [[ ${exe##*/} == "${server##*/}" ]]; then
        echo "$pid"
        return 0
    fi
    # The children files hold space-separated PIDs: word splitting is wanted.
    # shellcheck disable=SC2013
    for child in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
        find_server_pid "$child" && return 0
    done
    return 1
}

declare -A result_threads result_rps result_ok

# run_mode MODE [PREFIX...]: start the server (behind PREFIX, if any), run the
# client against it, stop the server and record the results.
run_mode() {
    local mode=$1
    shift
    local port_file=$tmpdir/$mode.port
    result_ok[$mode]=0
    result_threads[$mode]=-
    result_rps[$mode]=FAILED

    echo "== $mode: ${*:+$* }$server"
    "$@" "$server" --port-file "$port_file" &
    launched_pid=$!

    # The server publishes its port atomically (rename), so a non-empty file
    # is a complete one.
    local tries=0
    while [[ ! -s $port_file ]]; do
        if ! is_alive "$launched_pid"; then
            echo "demo: $mode: server exited before listening" >&2
            stop_server
            return 1
        fi
        if ((++tries > 200)); then
            echo "demo: $mode: server did not write $port_file within 10 s" >&2
            stop_server
            return 1
        fi
        sleep 0.05
    done
    local port
    port=$(<"$port_file")
    if ! [[ $port =~ ^[0-9]+$ ]]; then
        echo "demo: $mode: bad port file contents: $port" >&2
        stop_server
        return 1
    fi
    if ! server_pid=$(find_server_pid "$launched_pid"); then
        echo "demo: $mode: cannot find the echo_server process under PID $launched_pid" >&2
        server_pid=
        stop_server
        return 1
    fi

    local out rc=0
    out=$("$client" --port "$port" --conns "$conns" --requests "$requests" \
        --size "$size" --server-pid "$server_pid") || rc=$?
    echo "   $out"
    stop_server

    if [[ $out =~ rps=([0-9]+) ]]; then
        result_rps[$mode]=${BASH_REMATCH[1]}
    fi
    if [[ $out =~ server_threads_max=(-?[0-9]+) ]]; then
        result_threads[$mode]=${BASH_REMATCH[1]}
    fi
    if ((rc != 0)); then
        echo "demo: $mode: load client failed (exit $rc)" >&2
        result_rps[$mode]="FAILED (${result_rps[$mode]})"
        return 1
    fi
    result_ok[$mode]=1
}

echo "conns=$conns requests/conn=$requests size=$size"
failed=0
run_mode native || failed=1
# GREENLD_LIBRARY makes the launcher use the library from BUILD_DIR rather
# than the one it would find next to itself; env exec()s, keeping the PID.
run_mode greenld env GREENLD_LIBRARY="$lib" "$launcher" -- || failed=1

echo
printf '%-8s  %16s  %12s\n' mode "OS threads (max)" requests/s
for mode in native greenld; do
    printf '%-8s  %16s  %12s\n' "$mode" "${result_threads[$mode]}" "${result_rps[$mode]}"
done
echo

if ((result_ok[native] && result_ok[greenld])); then
    ratio=$(awk -v g="${result_rps[greenld]}" -v n="${result_rps[native]}" \
        'BEGIN { if (n > 0) printf "%.2f", g / n; else print "n/a" }')
else
    ratio=n/a
fi
echo "greenld/native requests/s ratio: $ratio"
echo "OS threads: native ${result_threads[native]}, greenld ${result_threads[greenld]}"

if ((failed)); then
    echo "demo: FAILED (see messages above)" >&2
    exit 1
fi
