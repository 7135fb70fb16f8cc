#!/usr/bin/env bash
# The library's side of operating greenld (runtime/monitor.h, config.h):
# the blocked-hub report, the fiber dump, the deadlock warning, bad
# GREENLD_* values (a warning naming the variable, then the default),
# GREENLD_LOG_LEVEL, GREENLD_NO_INHERIT, GREENLD_FIBER_TLS, and secure
# execution (setuid).
# Each program run is bounded by timeout; they all end on their own.
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/../.."
LIB=$(readlink -f "$BUILD/libgreenld.so")
T=$BUILD/tests/diag_target
GL=scripts/greenld
pass=0 fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"

ok() { pass=$((pass + 1)); echo "ok - $1"; }
not_ok() {
    fail=$((fail + 1)); echo "not ok - $1"
    [ -n "${2:-}" ] && printf '%s\n' "$2" | head -40 | sed 's/^/#   /'
}
# check NAME: the last [[ ]] status; prints the run's output on failure.
check() { if [ "$2" = 0 ]; then ok "$1"; else not_ok "$1" "rc=$rc out: $out
$err"; fi; }

# run ENV... -- PROG ARGS: under the shim, stdout in $out, stderr in $err.
run() {
    local envs=()
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    # timeout first: it must not run under the shim itself.
    timeout -k 5 30 env -u GREENLD_HUBS -u GREENLD_PATCH -u GREENLD_LOG_LEVEL LD_PRELOAD="$LIB" "${envs[@]}" \
        "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    out=$(<"$tmp/out")
    err=$(<"$tmp/err")
}

# ---------------------------------------------------------------- blocked hub
run GREENLD_MAX_BLOCKING_TIME=0.2 -- "$T" spin
[[ $rc == 0 && $out == done && $err =~ greenld:\ hub\ [0-9]+\ \(thread\ [0-9]+\)\ has\ not\ switched\ fibers\ for\ [0-9.]+\ s\ \(max\ blocking\ time\ 0.200\ s\):\ fiber\ [0-9]+\ runs\ without\ yielding ]]
check "a CPU loop longer than GREENLD_MAX_BLOCKING_TIME is reported with hub, fiber and duration" $?
[[ $err =~ \#0\ 0x[0-9a-f]+\ spin_without_yielding ]]
check "the report's backtrace starts in the function that loops (spin_without_yielding)" $?
[[ $(grep -c "has not switched" <<<"$err") == 1 ]]
check "one blocking spell gives one report" $?

run GREENLD_MAX_BLOCKING_TIME=0.2 GREENLD_PATCH=thread,socket -- "$T" nap
[[ $rc == 0 && $err == *"has not switched fibers"* && $err =~ \#[0-9]+\ 0x[0-9a-f]+\ (clock_nanosleep|nanosleep|usleep) && $err == *nap_natively* ]]
check "a call greenld does not make cooperative (usleep without 'time') is reported with the blocking function" $?

run -- "$T" spin
[[ $rc == 0 && $err != *"has not switched"* ]]
check "no blocked-hub report without GREENLD_MAX_BLOCKING_TIME" $?

run GREENLD_MAX_BLOCKING_TIME=0.2 -- "$T" dump 0
[[ $rc == 0 && $err != *"has not switched"* ]]
check "fibers that park (fd, sleep, mutex) are not reported as blocking" $?

# ---------------------------------------------------------------- fiber dump
run GREENLD_DUMP_SIGNAL=USR2 -- "$T" dump 12
[[ $rc == 0 && $out == done ]]
check "GREENLD_DUMP_SIGNAL=USR2: the signal prints a dump and does not kill the program (which set SIG_DFL for it)" $?
[[ $err =~ greenld:\ fiber\ dump\ \(signal\ 12\):\ [0-9]+\ hubs\;\ fibers\ created\ 4,\ alive\ 4\;\ switches\ [0-9]+,\ parks\ [0-9]+,\ offloaded\ calls\ [0-9]+\;\ native\ threads\ of\ the\ program\ 1\ \(0\ waiting\ on\ fiber\ locks\ with\ no\ deadline\) && $err == *"greenld: end of fiber dump"* ]]
check "the dump starts with the counters (fibers created/alive, switches, parks, offloaded calls, native threads)" $?
[[ $(grep -cE '^fiber [0-9]+ ' <<<"$err") == 4 && $(grep -cE '^hub [0-9]+ \(thread [0-9]+\)' <<<"$err") -ge 1 ]]
check "the dump lists every hub and one line per fiber starting with 'fiber <id>'" $?
[[ $err =~ fiber\ [0-9]+\ parked\ on\ fd\ [0-9]+\ for\ read,\ for\ [0-9.]+\ s ]]
check "a fiber in read() shows as parked on its fd for read, with how long" $?
[[ $err =~ fiber\ [0-9]+\ sleeping,\ wakes\ in\ [0-9.]+\ s,\ for\ [0-9.]+\ s ]]
check "a sleeping fiber shows when it wakes" $?
[[ $err =~ fiber\ [0-9]+\ waiting\ on\ futex/mutex\ at\ 0x[0-9a-f]+ ]]
check "a fiber in pthread_mutex_lock shows the lock's address" $?
[[ $err =~ fiber\ [0-9]+\ joining\ fiber\ [0-9]+,\ for\ [0-9.]+\ s ]]
check "a fiber in pthread_join shows the fiber it joins" $?
[[ $err == *read_the_pipe* && $err == *join_the_reader* && $err == *sleep_a_while* && $err == *lock_the_held_mutex* ]]
check "every fiber has a backtrace with function names" $?

# A hub running a CPU loop: the dump shows the running fiber and where it is.
timeout -k 5 30 env LD_PRELOAD="$LIB" GREENLD_HUBS=1 GREENLD_DUMP_SIGNAL=USR1 "$T" spin >"$tmp/out" 2>"$tmp/err" &
spin_pid=$!
sleep 0.7
# timeout's child, the program itself.
target=$(pgrep -P "$spin_pid" -x diag_target || true)
[ -n "$target" ] && kill -USR1 "$target"
wait "$spin_pid"; rc=$? out=$(<"$tmp/out") err=$(<"$tmp/err")
[[ $rc == 0 && $err =~ hub\ 0\ \(thread\ [0-9]+\):\ running\ fiber\ [0-9]+ && $err =~ fiber\ [0-9]+\ running$'\n'\ +\#0\ 0x[0-9a-f]+\ spin_without_yielding ]]
check "a dump taken while a fiber computes shows it running, with the backtrace of the loop" $?

run GREENLD_DUMP_SIGNAL=10 -- "$T" dump 10
[[ $rc == 0 && $err == *"fiber dump (signal 10)"* ]]
check "GREENLD_DUMP_SIGNAL takes a number" $?

run GREENLD_DUMP_SIGNAL=SIGRTMIN+2 -- "$T" dump 36
[[ $rc == 0 && $err == *"fiber dump (signal 36)"* ]]
check "GREENLD_DUMP_SIGNAL takes SIGRTMIN+n" $?

{ run -- "$T" dump 12; } 2>/dev/null  # bash reports the signal death
[[ $rc == $((128 + 12)) && $err != *"fiber dump"* ]]
check "no dump signal by default: SIGUSR2 keeps its default action" $?

env -u GREENLD_LIBRARY -u GREENLD_DUMP_SIGNAL GREENLD_LIBRARY="$LIB" timeout -k 5 30 "$GL" --dump-signal=SIGUSR1 -- "$T" dump 10 >"$tmp/out" 2>"$tmp/err"
rc=$? out=$(<"$tmp/out") err=$(<"$tmp/err")
[[ $rc == 0 && $err == *"fiber dump (signal 10)"* && $(grep -cE '^fiber [0-9]+ ' <<<"$err") == 4 ]]
check "greenld --dump-signal=SIGUSR1 dumps on SIGUSR1" $?

env GREENLD_LIBRARY="$LIB" timeout -k 5 30 "$GL" --max-blocking-time 0.2 -- "$T" spin >"$tmp/out" 2>"$tmp/err"
rc=$? out=$(<"$tmp/out") err=$(<"$tmp/err")
[[ $rc == 0 && $err == *"has not switched fibers"* && $err == *spin_without_yielding* ]]
check "greenld --max-blocking-time 0.2 reports the CPU loop" $?

# Dumps taken while a server works: hubs are stopped at random points
# (mid-request, mid-switch); nothing may break.
env LD_PRELOAD="$LIB" GREENLD_HUBS=2 GREENLD_DUMP_SIGNAL=USR2 GREENLD_MAX_BLOCKING_TIME=0.05 \
    timeout -k 5 60 "$BUILD/tests/echo_server" --port-file "$tmp/port" 2>"$tmp/err" &
server=$!
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.1; done
( for _ in $(seq 40); do sleep 0.05; kill -USR2 "$server" 2>/dev/null || break; done ) &
signaller=$!
line=$("$BUILD/tests/load_client" --port "$(cat "$tmp/port" 2>/dev/null || echo 1)" --conns 100 --requests 400 \
    --server-pid "$server" --timeout-sec 40)
rc=$?
wait "$signaller"
kill -0 "$server" 2>/dev/null; alive=$?
kill "$server" 2>/dev/null; wait "$server" 2>/dev/null
err=$(<"$tmp/err") out=$line
[[ $rc == 0 && $line == *"errors=0 mismatches=0"* && $alive == 0 && $(grep -c "^greenld: end of fiber dump" <<<"$err") -ge 1 ]]
check "40 dump signals during 40,000 echo requests: no error, no mismatch, the server lives" $?
[[ $(grep -c "^greenld: fiber dump" <<<"$err") == $(grep -c "^greenld: end of fiber dump" <<<"$err") ]]
check "every dump taken under load completes" $?

# ---------------------------------------------------------------- deadlock
run -- "$T" deadlock
[[ $rc == 0 && $out == done ]]
check "a deadlock that a signal handler ends: the program is left running and finishes" $?
[[ $err == *"greenld: deadlock: all 2 fibers and 1 native threads of the program wait on locks or joins with no deadline"* ]]
check "every fiber and thread waiting on a lock for good draws a deadlock warning" $?
[[ $err == *"fiber dump (deadlock)"* && $(grep -c wait_forever <<<"$err") == 2 \
   && $err == *"native threads of the program 1 (1 waiting on fiber locks with no deadline)"* ]]
check "the deadlock warning comes with the dump of the stuck fibers" $?
[[ $(grep -c "greenld: deadlock" <<<"$err") == 1 ]]
check "one deadlock, one warning" $?

run -- "$T" dump 0
[[ $rc == 0 && $err != *deadlock* ]]
check "no deadlock warning while a fiber waits on an fd or a timer" $?

run GREENLD_MAX_BLOCKING_TIME=1 GREENLD_DUMP_SIGNAL=USR2 -- "$T" rtmax
[[ $rc == 0 && $out == done ]]
check "the program's own SIGRTMAX (the signal that stops hubs) still reaches its handler" $?

# ---------------------------------------------------------------- bad values
for case in "GREENLD_MAX_BLOCKING_TIME=abc" "GREENLD_DUMP_SIGNAL=KILL" "GREENLD_DUMP_SIGNAL=64" \
            "GREENLD_LOG_LEVEL=loud" "GREENLD_NO_INHERIT=yes" "GREENLD_HUBS=abc" "GREENLD_STACK_SIZE=1x" \
            "GREENLD_FIBER_TLS=yes"; do
    run "$case" -- "$T" dump 0
    var=${case%%=*}
    [[ $rc == 0 && $out == done && $(grep -c "^greenld: $var='${case#*=}'" <<<"$err") == 1 ]]
    check "$case: one warning naming the variable, then the default" $?
done

# ---------------------------------------------------------------- log level
run GREENLD_LOG_LEVEL=info -- "$T" dump 0
[[ $err =~ greenld:\ started\ [0-9]+\ hubs ]]
check "GREENLD_LOG_LEVEL=info reports the hubs it starts" $?
run -- "$T" dump 0
[[ $err != *"started"* ]]
check "the default level (warning) does not" $?
run GREENLD_LOG_LEVEL=debug -- "$T" dump 0
[[ $(grep -cE '^greenld: fiber [0-9]+ created on hub [0-9]+' <<<"$err") == 4 ]]
check "GREENLD_LOG_LEVEL=debug reports each fiber created" $?
run GREENLD_LOG_LEVEL=error GREENLD_HUBS=abc -- "$T" dump 0
[[ $rc == 0 && -z $err ]]
check "GREENLD_LOG_LEVEL=error silences warnings" $?
run GREENLD_LOG_LEVEL=none -- "$T" deadlock
[[ $rc == 0 && -z $err ]]
check "GREENLD_LOG_LEVEL=none silences the deadlock warning" $?

# ---------------------------------------------------------------- no inherit
# The shell itself runs under the shim; what it starts does not.
probe='grep -c libgreenld /proc/$$/maps; grep -c libgreenld /proc/self/maps; printf "[%s]\n" "$LD_PRELOAD"'
run GREENLD_NO_INHERIT=1 -- sh -c "$probe"
[[ $out =~ ^[1-9][0-9]*$'\n'0$'\n'\[\]$ ]]
check "GREENLD_NO_INHERIT=1: the program has the shim, the programs it runs do not" $?
run -- sh -c "$probe"
[[ $out =~ ^[1-9][0-9]*$'\n'[1-9][0-9]*$'\n'\[$LIB\]$ ]]
check "without it, children inherit the shim" $?
cp /usr/lib/x86_64-linux-gnu/libdl.so.2 "$tmp/libother.so" 2>/dev/null || cp "$(ldconfig -p | awk '/libdl.so.2 /{print $NF; exit}')" "$tmp/libother.so"
other=$(readlink -f "$tmp/libother.so")
timeout 30 env LD_PRELOAD="$LIB:$other" GREENLD_NO_INHERIT=1 sh -c 'printf "%s\n" "$LD_PRELOAD"' >"$tmp/out" 2>&1
out=$(<"$tmp/out") rc=0 err=
[[ $out == "$other" ]]
check "GREENLD_NO_INHERIT=1 keeps the other LD_PRELOAD entries" $?
env GREENLD_LIBRARY="$LIB" timeout 30 "$GL" --no-inherit -- sh -c "$probe" >"$tmp/out" 2>"$tmp/err"
rc=$? out=$(<"$tmp/out") err=$(<"$tmp/err")
[[ $rc == 0 && $out =~ ^[1-9][0-9]*$'\n'0$'\n'\[\]$ ]]
check "greenld --no-inherit" $?

# ---------------------------------------------------------------- fiber TLS
# t_fiber_tls sets GREENLD_FIBER_TLS=1 itself when it is absent; given 0,
# it shows the default: the fibers of a hub share compiled TLS.
FT=$BUILD/tests/t_fiber_tls
run GREENLD_HUBS=1 GREENLD_FIBER_TLS=1 -- "$FT"
[[ $rc == 0 && $out == ok ]]
check "GREENLD_FIBER_TLS=1: __thread variables of the program and its library are per fiber (one hub)" $?
run GREENLD_HUBS=1 GREENLD_FIBER_TLS=0 -- "$FT"
[[ $rc == 1 && $err == *"not its initialiser"* ]]
check "GREENLD_FIBER_TLS=0 (the default): the fibers of a hub share them" $?
run GREENLD_HUBS=1 GREENLD_FIBER_TLS=1 GREENLD_LOG_LEVEL=debug -- "$FT"
[[ $rc == 0 && $err =~ fiber\ TLS:\ \(the\ program\):\ [0-9]+\ bytes\ \(8\ initialised\)\ at\ -[0-9]+\ [^$'\n']*per\ fiber \
   && $err == *"fiber TLS: $(readlink -f "$BUILD/tests/lib/libfiber_tls.so"): 80 bytes (8 initialised)"* \
   && $err =~ fiber\ TLS:\ [^$'\n']*/libc\.so\.6\ keeps && $err == *"libgreenld.so keeps its"* \
   && $err == *"GREENLD_FIBER_TLS=1: 2 TLS blocks ("*" bytes) are per fiber"* ]]
check "GREENLD_LOG_LEVEL=debug names the blocks copied and those kept per OS thread (libc, libgreenld)" $?
run GREENLD_FIBER_TLS=1 -- "$FT" futex
[[ $rc == 0 && $out == ok && $(grep -c "^greenld: fiber [0-9]* waits on a futex at 0x[0-9a-f]*, inside a compiled thread-local variable copied per fiber" <<<"$err") == 1 ]]
check "GREENLD_FIBER_TLS=1: a futex wait on a __thread word draws one warning (its address is the hub's)" $?
run GREENLD_FIBER_TLS=0 -- "$FT" futex
[[ $rc == 0 && $out == ok && -z $err ]]
check "without GREENLD_FIBER_TLS, no such warning" $?
env GREENLD_LIBRARY="$LIB" timeout 30 "$GL" --fiber-tls --hubs 1 -- "$FT" >"$tmp/out" 2>"$tmp/err"
rc=$? out=$(<"$tmp/out") err=$(<"$tmp/err")
[[ $rc == 0 && $out == ok ]]
check "greenld --fiber-tls" $?

# ---------------------------------------------------------------- secure execution
# A setuid program (owned by nobody, run by root: AT_SECURE) linked with
# the library (LD_PRELOAD paths are ignored there, as ld.so does).
cat > "$tmp/secure.c" <<'EOF'
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
static void *run(void *a) { return a; }
int main(void) {
    pthread_t t;
    pthread_create(&t, 0, run, 0);
    pthread_join(t, 0);
    printf("euid=%d uid=%d\n", (int)geteuid(), (int)getuid());
    return 0;
}
EOF
if [ "$(id -u)" != 0 ] || ! id nobody >/dev/null 2>&1; then
    ok "secure execution (skipped: needs root and a 'nobody' user to make a setuid program)"
elif ! cc -o "$tmp/secure" "$tmp/secure.c" -L"$(dirname "$LIB")" -lgreenld -Wl,-rpath,"$(dirname "$LIB")" 2>"$tmp/err"; then
    not_ok "build the setuid probe" "$(cat "$tmp/err")"
else
    chown nobody "$tmp/secure" && chmod 4755 "$tmp/secure"
    secure_env=(GREENLD_HUBS=abc GREENLD_LOG_LEVEL=info GREENLD_PATCH=thread,bogus)
    timeout 30 env "${secure_env[@]}" "$tmp/secure" >"$tmp/out" 2>"$tmp/err"
    rc=$? out=$(<"$tmp/out") err=$(<"$tmp/err")
    if [[ $out != "euid=65534 uid=0" ]]; then
        ok "secure execution (skipped: setuid does not take effect here: $out)"
    else
        [[ $rc == 0 && $err != *GREENLD_HUBS* && $err != *started* ]]
        check "setuid: GREENLD_HUBS and GREENLD_LOG_LEVEL are ignored (no warning, no info)" $?
        [[ $err == *"GREENLD_PATCH='thread,bogus'"* ]]
        check "setuid: GREENLD_PATCH, which only makes the shim do less, is still read" $?
        chmod u-s "$tmp/secure"
        timeout 30 env "${secure_env[@]}" "$tmp/secure" >"$tmp/out" 2>"$tmp/err"
        rc=$? out=$(<"$tmp/out") err=$(<"$tmp/err")
        [[ $rc == 0 && $err == *"GREENLD_HUBS='abc'"* && $err == *started* ]]
        check "the same program without setuid reads them" $?
    fi
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
