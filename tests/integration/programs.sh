#!/usr/bin/env bash
# Runs every test program build/tests/t_* natively, then under
# libgreenld.so with the default hubs, then with a single hub (every fiber
# on one OS thread: the harshest interleaving, where a call that blocks the
# hub instead of parking deadlocks). They test libc semantics, so every run
# must pass: a difference is the shim's fault. Each run is bounded.
# Prints "ok - NAME (mode)" / "not ok - NAME (mode)" and a closing
# "N passed, N failed".
set -u
BUILD=${1:-build}
LIB=$(readlink -f "$BUILD/libgreenld.so")
TIMEOUT=${GREENLD_TEST_TIMEOUT:-60}
pass=0 fail=0
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

for prog in "$BUILD"/tests/t_*; do
    [ -x "$prog" ] || continue
    name=$(basename "$prog")
    for mode in native greenld greenld-1hub; do
        case $mode in
            native) env -u LD_PRELOAD timeout -k 5 "$TIMEOUT" "$prog" >"$log/out" 2>&1 ;;
            greenld) env LD_PRELOAD="$LIB" timeout -k 5 "$TIMEOUT" "$prog" >"$log/out" 2>&1 ;;
            greenld-1hub) env LD_PRELOAD="$LIB" GREENLD_HUBS=1 timeout -k 5 "$TIMEOUT" "$prog" >"$log/out" 2>&1 ;;
        esac
        rc=$?
        if [ $rc -eq 0 ]; then
            pass=$((pass + 1))
            echo "ok - $name ($mode)"
        else
            fail=$((fail + 1))
            echo "not ok - $name ($mode): exit $rc"
            sed 's/^/#   /' "$log/out" | tail -20
        fi
    done
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
