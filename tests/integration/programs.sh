#!/usr/bin/env bash
# Runs every test program build/tests/t_* twice: natively, then under
# libgreenld.so. They test libc semantics, so both runs must pass: a
# difference is the shim's fault. Each run is bounded by a timeout.
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
    for mode in native greenld; do
        if [ "$mode" = greenld ]; then
            env LD_PRELOAD="$LIB" timeout -k 5 "$TIMEOUT" "$prog" >"$log/out" 2>&1
        else
            env -u LD_PRELOAD timeout -k 5 "$TIMEOUT" "$prog" >"$log/out" 2>&1
        fi
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
