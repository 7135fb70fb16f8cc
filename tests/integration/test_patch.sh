#!/usr/bin/env bash
# GREENLD_PATCH selects the families of calls made cooperative; a family
# left out behaves as plain libc (here: blocks the single hub), and a bad
# value is reported once and ignored.
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/../.."
LIB=$(readlink -f "$BUILD/libgreenld.so")
probe=$BUILD/tests/patch_probe
pass=0 fail=0
expect() {  # name, GREENLD_PATCH value ("-" for unset), expected output
    local out
    if [ "$2" = - ]; then
        out=$(env -u GREENLD_PATCH LD_PRELOAD="$LIB" GREENLD_HUBS=1 timeout 20 "$probe" 2>/dev/null)
    else
        out=$(env LD_PRELOAD="$LIB" GREENLD_HUBS=1 GREENLD_PATCH="$2" timeout 20 "$probe" 2>/dev/null)
    fi
    if [ "$out" = "$3" ]; then pass=$((pass + 1)); echo "ok - $1"; else fail=$((fail + 1)); echo "not ok - $1: got '$out', expected '$3'"; fi
}
expect "default: everything cooperative" - "fiber=1 time=1 socket=1"
expect "all" all "fiber=1 time=1 socket=1"
expect "thread,time: sockets block the hub" thread,time "fiber=1 time=1 socket=0"
expect "thread,socket: sleeps block the hub" thread,socket "fiber=1 time=0 socket=1"
expect "without thread: threads stay native (and so nothing blocks anyone)" socket,time,select,os \
    "fiber=0 time=1 socket=1"
err=$(env LD_PRELOAD="$LIB" GREENLD_HUBS=1 GREENLD_PATCH=thread,bogus timeout 20 "$probe" 2>&1 >/dev/null)
if [ "$(grep -c "greenld: GREENLD_PATCH='thread,bogus': unknown family 'bogus'" <<<"$err")" = 1 ]; then
    pass=$((pass + 1)); echo "ok - a bad value is reported once, naming the culprit"
else
    fail=$((fail + 1)); echo "not ok - a bad value is reported once: stderr was: $err"
fi
expect "a bad value patches everything" thread,bogus "fiber=1 time=1 socket=1"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
