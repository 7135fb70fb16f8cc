#!/usr/bin/env bash
# 100,000 threads of one unmodified program alive at once, each parked in a
# blocking call (pthread_cond_wait, sem_wait or read on a pipe), on stock sysctls:
# under greenld only, since native threads stop near kernel.pid_max
# (32,768) and guard-paged stacks near vm.max_map_count / 2. Then all are
# released and joined. Bounded: the program's watchdog ends it at 120 s.
# Also checks the one-time notice that stacks beyond the mapped budget
# share slab mappings, and that the mapping count stayed under
# vm.max_map_count.
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/../.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
N=${MANY_PARKED_THREADS:-100000}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
pass=0 fail=0
check() {
    if eval "$2"; then pass=$((pass + 1)); echo "ok - $1"; else fail=$((fail + 1)); echo "not ok - $1"; fi
}

start=$(date +%s)
env LD_PRELOAD="$(readlink -f "$BUILD/libgreenld.so")" timeout -k 5 150 \
    "$BUILD/tests/many_parked" "$N" >"$dir/out" 2>"$dir/err"
rc=$?
sed 's/^/# /' "$dir/out" "$dir/err"
check "$N threads parked at once under greenld, all released and joined (exit $rc, $(($(date +%s) - start)) s)" \
    '[ $rc -eq 0 ] && grep -q "many_parked: ok: $N threads" "$dir/out"'
maps=$(sed -nE 's/.* ([0-9]+) mappings$/\1/p' "$dir/out")
max=$(cat /proc/sys/vm/max_map_count)
check "mappings at the peak: ${maps:-?} < vm.max_map_count $max" '[ -n "$maps" ] && [ "$maps" -lt "$max" ]'
if [ "$N" -gt $(((max - max / 4) / 2)) ]; then
    check "stacks beyond the mapped budget announced once on stderr" \
        '[ "$(grep -c "further stacks share mappings" "$dir/err")" -eq 1 ]'
fi
# Where userfaultfd is unavailable the library also says, once, that shared
# stacks have no guard (greenld(7), FIBER STACKS): expected, not a failure.
check "no other greenld warning" \
    '[ -z "$(grep "greenld:" "$dir/err" | grep -v -e "further stacks share mappings" -e "shared fiber stacks have no guard")" ]'
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
