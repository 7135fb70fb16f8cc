#!/usr/bin/env bash
# `make test`: every suite, one closing line "N passed, N failed" summing
# them all (CI reads that line). Exits non-zero if anything failed.
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
total_pass=0 total_fail=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# Adds a suite's counts: doctest's "test cases: N | P passed | F failed"
# or a plain "P passed, F failed" closing line. A suite that crashed
# before printing its counts counts as one failure.
count() {
    local name=$1 rc=$2 p f line
    line=$(grep -E '^\[doctest\] test cases:' "$out" | tail -1)
    if [ -n "$line" ]; then
        p=$(sed -E 's/.*\| *([0-9]+) passed.*/\1/' <<<"$line")
        f=$(sed -E 's/.*\| *([0-9]+) failed.*/\1/' <<<"$line")
    else
        line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -1)
        p=$(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$line")
        f=$(sed -E 's/.*, ([0-9]+) failed.*/\1/' <<<"$line")
    fi
    p=${p:-0} f=${f:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    echo "== $name: $p passed, $f failed"
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
}

run_suite() {
    local name=$1; shift
    echo "== $name"
    timeout -k 10 900 "$@" 2>&1 | tee "$out"
    count "$name" "${PIPESTATUS[0]}"
}

run_suite "unit (runtime, doctest)" "$BUILD/unit_tests"
run_suite "programs (native and under greenld)" tests/integration/programs.sh "$BUILD"
run_suite "launcher" tests/integration/test_launcher.sh "$BUILD"
run_suite "install" tests/integration/test_install.sh "$BUILD"
run_suite "man pages" tests/integration/test_man.sh
run_suite "GREENLD_PATCH families" tests/integration/test_patch.sh "$BUILD"
run_suite "diagnostics, settings, secure execution" tests/integration/test_diagnostics.sh "$BUILD"
run_suite "thread-per-connection echo, 2000 connections" tests/integration/echo_2000.sh "$BUILD"
run_suite "100,000 parked threads (greenld only)" tests/integration/many_parked.sh "$BUILD"
run_suite "benchmark programs (make bench's tools)" tests/integration/bench_tools.sh "$BUILD"
run_suite "syscalls per operation (strace)" tests/integration/syscall_counts.sh "$BUILD"
run_suite "idle hubs spin briefly before sleeping" tests/integration/hub_spin.sh "$BUILD"
run_suite "DNS through c-ares, glibc's answers (private namespace)" tests/integration/dns.sh "$BUILD"
# Real programs nobody here wrote (tests/real/, also `make test-real`).
for script in tests/real/*.sh; do
    run_suite "real program: $(basename "$script" .sh)" "$script" "$BUILD"
done
# CPython's own tests, natively and under greenld, for the modules that
# run in seconds (tests/cpython/run.sh --fast; the full list is
# tests/cpython/run.sh without --fast). Counted by test case.
run_suite "CPython test suite (fast modules), native vs greenld" tests/cpython/run.sh --fast "$BUILD"
# The same with the test driver in a thread: every test case is a fiber.
run_suite "CPython test suite (fast modules) in a thread, native vs greenld" \
    tests/cpython/run.sh --fast --in-thread "$BUILD"

echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
