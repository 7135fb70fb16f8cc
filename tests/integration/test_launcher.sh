#!/usr/bin/env bash
# Integration test for the scripts/greenld launcher.
#
# Usage: tests/integration/test_launcher.sh [BUILD_DIR]
#
# BUILD_DIR (default: build) is accepted for uniformity with the other
# integration tests, but this test does not need the real libgreenld.so:
# it points GREENLD_LIBRARY at a copy of a small, harmless system library,
# so it only checks what the launcher itself does.

# shellcheck disable=SC2016  # single-quoted $vars are for the child shells

set -u

BUILD_DIR=${1:-build}
HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd -- "$HERE/../.." && pwd)
GL=$ROOT/scripts/greenld

passed=0
failed=0

ok()     { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() {
    echo "not ok - $1"
    failed=$((failed + 1))
    if [[ -n ${2:-} ]]; then
        printf '%s\n' "$2" | sed 's/^/#   /'
    fi
}

# check NAME CONDITION-STATUS DIAGNOSTIC
check() {
    if [[ $2 == 0 ]]; then ok "$1"; else not_ok "$1" "${3:-}"; fi
}

# run ARGS...: runs the launcher, sets $out, $err, $rc.
run() {
    local o e
    o=$(mktemp "$TMP/out.XXXXXX")
    e=$(mktemp "$TMP/err.XXXXXX")
    "$GL" "$@" >"$o" 2>"$e"
    rc=$?
    out=$(<"$o")
    err=$(<"$e")
    rm -f -- "$o" "$e"
}

describe() { printf 'rc=%s\nstdout: %s\nstderr: %s' "$rc" "$out" "$err"; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/greenld-launcher-test.XXXXXX") || exit 1
trap 'rm -rf -- "$TMP"' EXIT

if [[ ! -x $GL ]]; then
    not_ok "launcher exists and is executable" "missing: $GL"
    echo "$passed passed, $failed failed"
    exit 1
fi

# ---- a fake libgreenld.so: a copy of a small library that is harmless to
# preload (nothing in it runs at load time that changes behaviour).
fake_src=
for d in /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu /usr/lib64 /lib64 \
         /usr/lib/aarch64-linux-gnu /lib/aarch64-linux-gnu /usr/lib /lib; do
    for n in libutil.so.1 libdl.so.2 libanl.so.1 librt.so.1; do
        if [[ -f $d/$n ]]; then fake_src=$d/$n; break 2; fi
    done
done
if [[ -z $fake_src ]]; then
    not_ok "find a small system library to use as a fake libgreenld.so"
    echo "$passed passed, $failed failed"
    exit 1
fi
mkdir -p "$TMP/lib"
cp -- "$fake_src" "$TMP/lib/libgreenld.so"
# The launcher puts the canonical path in LD_PRELOAD (TMPDIR may be a symlink).
FAKE_LIB=$(readlink -f -- "$TMP/lib/libgreenld.so")
echo "# build dir $BUILD_DIR not needed; fake library: copy of $fake_src"
export GREENLD_LIBRARY=$FAKE_LIB
# Start from a clean slate whatever the caller's environment holds.
unset LD_PRELOAD GREENLD_HUBS GREENLD_STACK_SIZE GREENLD_POOL_SIZE GREENLD_MAPPED_STACKS GREENLD_PATCH GREENLD_RESOLVER \
      GREENLD_MAX_BLOCKING_TIME GREENLD_DUMP_SIGNAL GREENLD_LOG_LEVEL GREENLD_NO_INHERIT GREENLD_FIBER_TLS GREENLD_SPIN_US

# ------------------------------------------------------------------ cases --

run --help
help_lists_all=0
for opt in --patch --resolver --max-blocking-time --dump-signal --log-level --no-inherit --fiber-tls; do
    [[ $out == *"  $opt"* ]] || help_lists_all=1
done
[[ $rc == 0 && $out == Usage:* && $out == *--hubs* && $out == *--stack-size* && $out == *--pool-size* && -z $err \
   && $help_lists_all == 0 ]]
check "--help prints usage on stdout and exits 0" $? "$(describe)"

run --version
[[ $rc == 0 && $out =~ ^greenld\ [^[:space:]]+$ ]]
check "--version prints 'greenld <version>'" $? "$(describe)"

[[ $out == "greenld 0.1.0" ]]
check "--version defaults to 0.1.0 without a VERSION file" $? "$(describe)"

echo "1.2.3" > "$TMP/lib/VERSION"
run --version
rm -f -- "$TMP/lib/VERSION"
[[ $rc == 0 && $out == "greenld 1.2.3" ]]
check "--version reads VERSION next to the library" $? "$(describe)"

run --foo -- true
[[ $rc == 2 && $err == *"unknown option '--foo'"* && $err == *"Try 'greenld --help'."* ]]
check "unknown option exits 2 and names it" $? "$(describe)"

for v in "--hubs=abc" "--hubs 0" "--hubs 65" "--hubs=" "--hubs -3" "--hubs 1.5"; do
    # shellcheck disable=SC2086
    run $v -- true
    [[ $rc == 2 && $err == *"invalid value for --hubs"* && $err == *"1..64"* ]]
    check "$v exits 2 naming --hubs" $? "$(describe)"
done

run --hubs
[[ $rc == 2 && $err == *"--hubs"* && $err == *"requires a value"* ]]
check "--hubs without a value exits 2" $? "$(describe)"

for v in "--stack-size 12x" "--stack-size=8k" "--stack-size 2g" "--stack-size=1.5M" \
         "--stack-size 99999999999999999999999g"; do
    # shellcheck disable=SC2086
    run $v -- true
    [[ $rc == 2 && $err == *"invalid value for --stack-size"* ]]
    check "$v exits 2 naming --stack-size" $? "$(describe)"
done

for v in "--pool-size=abc" "--pool-size 0" "--pool-size 257" "--pool-size=" "--pool-size -1" \
         "--pool-size 2.5" "--pool-size 4k" "--pool-size 99999999999999999999"; do
    # shellcheck disable=SC2086
    run $v -- true
    [[ $rc == 2 && $err == *"invalid value for --pool-size"* && $err == *"1..256"* ]]
    check "$v exits 2 naming --pool-size" $? "$(describe)"
done

run --pool-size
[[ $rc == 2 && $err == *"--pool-size"* && $err == *"requires a value"* ]]
check "--pool-size without a value exits 2" $? "$(describe)"

for v in "--mapped-stacks=abc" "--mapped-stacks -1" "--mapped-stacks 1073741825" "--mapped-stacks 2.5"; do
    # shellcheck disable=SC2086
    run $v -- true
    [[ $rc == 2 && $err == *"invalid value for --mapped-stacks"* && $err == *"0..1073741824"* ]]
    check "$v exits 2 naming --mapped-stacks" $? "$(describe)"
done

run --mapped-stacks 0 -- env
[[ $rc == 0 && $'\n'$out$'\n' == *$'\n'GREENLD_MAPPED_STACKS=0$'\n'* ]]
check "--mapped-stacks 0 exports GREENLD_MAPPED_STACKS=0" $? "$(describe)"

run --pool-size 8 -- env
[[ $rc == 0 && $'\n'$out$'\n' == *$'\n'GREENLD_POOL_SIZE=8$'\n'* ]]
check "--pool-size 8 exports GREENLD_POOL_SIZE=8" $? "$(describe)"

run --pool-size=0256 -- env
[[ $rc == 0 && $'\n'$out$'\n' == *$'\n'GREENLD_POOL_SIZE=256$'\n'* ]]
check "--pool-size=0256 (the maximum, leading zero) exports GREENLD_POOL_SIZE=256" $? "$(describe)"

out=$(GREENLD_POOL_SIZE=3 "$GL" -- env); rc=$?; err=
[[ $rc == 0 && $'\n'$out$'\n' == *$'\n'GREENLD_POOL_SIZE=3$'\n'* ]]
check "GREENLD_POOL_SIZE from the environment passes through" $? "$(describe)"

out=$(GREENLD_POOL_SIZE=3 "$GL" --pool-size 1 -- env); rc=$?; err=
[[ $rc == 0 && $'\n'$out$'\n' == *$'\n'GREENLD_POOL_SIZE=1$'\n'* && $out != *GREENLD_POOL_SIZE=3* ]]
check "--pool-size overrides GREENLD_POOL_SIZE from the environment" $? "$(describe)"

# ---- --spin-us
for v in "--spin-us=abc" "--spin-us -1" "--spin-us 1001" "--spin-us=" "--spin-us 2.5" "--spin-us 99999999999999999999"; do
    # shellcheck disable=SC2086
    run $v -- true
    [[ $rc == 2 && $err == *"invalid value for --spin-us"* && $err == *"0..1000"* ]]
    check "$v exits 2 naming --spin-us" $? "$(describe)"
done
run --spin-us 0 -- env
[[ $rc == 0 && $'\n'$out$'\n' == *$'\n'GREENLD_SPIN_US=0$'\n'* ]]
check "--spin-us 0 exports GREENLD_SPIN_US=0" $? "$(describe)"
run --spin-us=01000 -- env
[[ $rc == 0 && $'\n'$out$'\n' == *$'\n'GREENLD_SPIN_US=1000$'\n'* ]]
check "--spin-us=01000 (the maximum, leading zero) exports GREENLD_SPIN_US=1000" $? "$(describe)"
out=$(env GREENLD_SPIN_US=1001 "$GL" -- sh -c 'echo started' 2>"$TMP/err"); rc=$?; err=$(<"$TMP/err")
[[ $rc == 2 && -z $out && $err == *"invalid GREENLD_SPIN_US='1001' in the environment"* ]]
check "GREENLD_SPIN_US=1001 in the environment: exit 2 naming it, the program not started" $? "$(describe)"
out=$(GREENLD_SPIN_US=20 "$GL" -- env 2>"$TMP/err"); rc=$?; err=$(<"$TMP/err")
[[ $rc == 0 && -z $err && $'\n'$out$'\n' == *$'\n'GREENLD_SPIN_US=20$'\n'* ]]
check "GREENLD_SPIN_US=20 from the environment passes through, no warning" $? "$(describe)"

# ---- --patch, --resolver, --max-blocking-time, --dump-signal, --log-level,
# --no-inherit: each exports its GREENLD_* twin, in both spellings.
has_env() { [[ $'\n'$out$'\n' == *$'\n'$1$'\n'* ]]; }
for c in "--patch thread,time|GREENLD_PATCH=thread,time" "--patch=all|GREENLD_PATCH=all" \
         "--patch socket,thread,time,select,dns,os,signal|GREENLD_PATCH=socket,thread,time,select,dns,os,signal" \
         "--resolver ares|GREENLD_RESOLVER=ares" "--resolver=thread|GREENLD_RESOLVER=thread" \
         "--resolver block|GREENLD_RESOLVER=block" \
         "--max-blocking-time 0.1|GREENLD_MAX_BLOCKING_TIME=0.1" "--max-blocking-time=2|GREENLD_MAX_BLOCKING_TIME=2" \
         "--max-blocking-time .5|GREENLD_MAX_BLOCKING_TIME=.5" "--max-blocking-time 3600|GREENLD_MAX_BLOCKING_TIME=3600" \
         "--max-blocking-time 0.001|GREENLD_MAX_BLOCKING_TIME=0.001" \
         "--dump-signal USR2|GREENLD_DUMP_SIGNAL=SIGUSR2" "--dump-signal=SIGUSR1|GREENLD_DUMP_SIGNAL=SIGUSR1" \
         "--dump-signal 12|GREENLD_DUMP_SIGNAL=SIGUSR2" "--dump-signal=usr2|GREENLD_DUMP_SIGNAL=SIGUSR2" \
         "--dump-signal RTMIN+1|GREENLD_DUMP_SIGNAL=SIGRTMIN+1" "--dump-signal=QUIT|GREENLD_DUMP_SIGNAL=SIGQUIT" \
         "--log-level debug|GREENLD_LOG_LEVEL=debug" "--log-level=none|GREENLD_LOG_LEVEL=none" \
         "--log-level warn|GREENLD_LOG_LEVEL=warning" "--log-level=info|GREENLD_LOG_LEVEL=info" \
         "--log-level error|GREENLD_LOG_LEVEL=error" "--no-inherit|GREENLD_NO_INHERIT=1" \
         "--fiber-tls|GREENLD_FIBER_TLS=1"; do
    # shellcheck disable=SC2086
    run ${c%%|*} -- env
    [[ $rc == 0 ]] && has_env "${c#*|}"
    check "${c%%|*} exports ${c#*|}" $? "$(describe)"
done

for c in "--patch bogus" "--patch=" "--patch thread,,socks" "--resolver dns" "--resolver=" \
         "--max-blocking-time 0" "--max-blocking-time=0.0009" "--max-blocking-time 3601" "--max-blocking-time 1e3" \
         "--max-blocking-time -1" "--max-blocking-time ." "--max-blocking-time=abc" "--max-blocking-time 99999999999" \
         "--dump-signal KILL" "--dump-signal=SIGSTOP" "--dump-signal SEGV" "--dump-signal 9" "--dump-signal 0" \
         "--dump-signal 65" "--dump-signal 32" "--dump-signal 63" "--dump-signal 64" "--dump-signal RTMAX" "--dump-signal SIG12" \
         "--dump-signal NOPE" "--dump-signal=" "--log-level loud" "--log-level=" "--log-level 3"; do
    opt=${c%% *}
    opt=${opt%%=*}
    # shellcheck disable=SC2086
    run $c -- true
    [[ $rc == 2 && $err == *"invalid value for $opt"* && $err == *"Try 'greenld --help'."* ]]
    check "$c exits 2 naming $opt" $? "$(describe)"
done

for opt in --patch --resolver --max-blocking-time --dump-signal --log-level; do
    run "$opt"
    [[ $rc == 2 && $err == *"'$opt' requires a value"* ]]
    check "$opt without a value exits 2" $? "$(describe)"
done

run --no-inherit=1 -- true
[[ $rc == 2 && $err == *"'--no-inherit' does not take a value"* ]]
check "--no-inherit=1 exits 2: it takes no value" $? "$(describe)"

run --fiber-tls=1 -- true
[[ $rc == 2 && $err == *"'--fiber-tls' does not take a value"* ]]
check "--fiber-tls=1 exits 2: it takes no value" $? "$(describe)"
out=$(GREENLD_FIBER_TLS=0 "$GL" --fiber-tls -- env); rc=$?; err=
[[ $rc == 0 ]] && has_env GREENLD_FIBER_TLS=1
check "--fiber-tls overrides GREENLD_FIBER_TLS=0 from the environment" $? "$(describe)"

# ---- GREENLD_* values passed on from the environment are checked: a bad
# one stops the launcher (exit 2, naming it) before the program starts.
for c in GREENLD_HUBS=abc GREENLD_HUBS=0 GREENLD_STACK_SIZE=12x GREENLD_POOL_SIZE=257 GREENLD_PATCH=bogus \
         GREENLD_RESOLVER=dns GREENLD_MAX_BLOCKING_TIME=-1 GREENLD_DUMP_SIGNAL=KILL GREENLD_DUMP_SIGNAL=SIGFOO \
         GREENLD_LOG_LEVEL=loud GREENLD_NO_INHERIT=yes GREENLD_NO_INHERIT= GREENLD_FIBER_TLS=yes GREENLD_FIBER_TLS=2 \
         GREENLD_FIBER_TLS=; do
    out=$(env "$c" "$GL" -- sh -c 'echo started' 2>"$TMP/err"); rc=$?; err=$(<"$TMP/err")
    [[ $rc == 2 && -z $out && $err == *"invalid ${c%%=*}='${c#*=}' in the environment"* ]]
    check "$c in the environment: exit 2 naming it, the program not started" $? "$(describe)"
done
for c in GREENLD_PATCH=thread,time GREENLD_RESOLVER=block GREENLD_MAX_BLOCKING_TIME=0.25 GREENLD_DUMP_SIGNAL=USR1 \
         GREENLD_DUMP_SIGNAL=10 GREENLD_LOG_LEVEL=debug GREENLD_NO_INHERIT=0 GREENLD_STACK_SIZE=64k GREENLD_FIBER_TLS=0 \
         GREENLD_FIBER_TLS=1; do
    out=$(env "$c" "$GL" -- env 2>"$TMP/err"); rc=$?; err=$(<"$TMP/err")
    [[ $rc == 0 && -z $err ]] && has_env "$c"
    check "$c in the environment passes through unchanged" $? "$(describe)"
done
out=$(GREENLD_DUMP_SIGNAL=KILL "$GL" --dump-signal USR2 -- env 2>"$TMP/err"); rc=$?; err=$(<"$TMP/err")
[[ $rc == 0 ]] && has_env GREENLD_DUMP_SIGNAL=SIGUSR2
check "an option replaces a bad value from the environment" $? "$(describe)"
out=$(GREENLD_HUB=2 "$GL" -- env 2>"$TMP/err"); rc=$?; err=$(<"$TMP/err")
[[ $rc == 0 && $err == *"warning: GREENLD_HUB is not a greenld setting"* ]] && has_env GREENLD_HUB=2
check "an unknown GREENLD_* variable draws a warning (a typo?) and passes through" $? "$(describe)"

run
[[ $rc == 2 && $err == *"no command"* && $err == *"Try 'greenld --help'."* ]]
check "no command exits 2" $? "$(describe)"

run --hubs 2 --
[[ $rc == 2 && $err == *"no command"* ]]
check "options and '--' but no command exits 2" $? "$(describe)"

run --stack-size=64k -- env
[[ $rc == 0 && $'\n'$out$'\n' == *$'\n'GREENLD_STACK_SIZE=65536$'\n'* ]]
check "--stack-size=64k exports GREENLD_STACK_SIZE=65536" $? "$(describe)"

run --stack-size 1M -- env
[[ $rc == 0 && $'\n'$out$'\n' == *$'\n'GREENLD_STACK_SIZE=1048576$'\n'* ]]
check "--stack-size 1M exports GREENLD_STACK_SIZE=1048576" $? "$(describe)"

run --stack-size 16384 -- env
[[ $rc == 0 && $'\n'$out$'\n' == *$'\n'GREENLD_STACK_SIZE=16384$'\n'* ]]
check "--stack-size 16384 (plain bytes, the minimum) is accepted" $? "$(describe)"

run --hubs 3 -- env
[[ $rc == 0 && $'\n'$out$'\n' == *$'\n'GREENLD_HUBS=3$'\n'* ]]
check "--hubs 3 exports GREENLD_HUBS=3" $? "$(describe)"

run --hubs=64 env
[[ $rc == 0 && $'\n'$out$'\n' == *$'\n'GREENLD_HUBS=64$'\n'* ]]
check "--hubs=64 without '--' exports GREENLD_HUBS=64" $? "$(describe)"

out=$(GREENLD_HUBS=5 GREENLD_STACK_SIZE=16k GREENLD_OTHER=x "$GL" -- env 2>/dev/null); rc=$?; err=
[[ $rc == 0 && $'\n'$out$'\n' == *$'\n'GREENLD_HUBS=5$'\n'* \
   && $'\n'$out$'\n' == *$'\n'GREENLD_STACK_SIZE=16k$'\n'* \
   && $'\n'$out$'\n' == *$'\n'GREENLD_OTHER=x$'\n'* ]]
check "GREENLD_* from the environment pass through when not given" $? "$(describe)"

out=$(GREENLD_HUBS=5 "$GL" --hubs 2 -- env); rc=$?; err=
[[ $rc == 0 && $'\n'$out$'\n' == *$'\n'GREENLD_HUBS=2$'\n'* && $out != *GREENLD_HUBS=5* ]]
check "--hubs overrides GREENLD_HUBS from the environment" $? "$(describe)"

run -- sh -c 'printf "%s\n" "$LD_PRELOAD"'
[[ $rc == 0 && $out == "$FAKE_LIB" ]]
check "LD_PRELOAD is set to the library" $? "$(describe)"

cp -- "$FAKE_LIB" "$TMP/lib/libprev.so"
prev=$TMP/lib/libprev.so
out=$(LD_PRELOAD=$prev "$GL" -- sh -c 'printf "%s\n" "$LD_PRELOAD"'); rc=$?; err=
[[ $rc == 0 && $out == "$FAKE_LIB:$prev" ]]
check "LD_PRELOAD starts with the library and keeps the previous value" $? "$(describe)"

# The program must keep the launcher's PID: the outer bash prints its PID,
# then exec's the launcher, which exec's sh, which prints its own PID.
out=$(bash -c 'echo $$; exec "$1" -- sh -c "echo \$\$"' _ "$GL"); rc=$?; err=
mapfile -t pids <<< "$out"
[[ $rc == 0 && ${#pids[@]} == 2 && -n ${pids[0]} && ${pids[0]} == "${pids[1]}" ]]
check "exec keeps the PID" $? "$(describe)"

# Same thing in the background, as a service manager would do it.
bash -c 'exec "$1" -- sh -c "echo \$\$ > \"\$0\"" "$2"' _ "$GL" "$TMP/pidfile" &
bgpid=$!
wait "$bgpid"; rc=$?
out=$(cat "$TMP/pidfile" 2>/dev/null); err=
[[ $rc == 0 && $out == "$bgpid" ]]
check "background launch: \$! is the program's PID" $? "$(describe) (expected $bgpid)"

run -- sh -c 'exit 42'
[[ $rc == 42 ]]
check "the program's exit status is passed through" $? "$(describe)"

if [[ -r /proc/self/cmdline ]]; then
    run -- sh -c 'tr "\0" "\n" < /proc/$$/cmdline | head -n 1'
    [[ $rc == 0 && $out == sh ]]
    check "argv[0] is the command as given" $? "$(describe)"
else
    ok "argv[0] (skipped: no /proc)"
fi

run -- greenld-no-such-command-xyz
[[ $rc == 127 && $err == *"greenld: greenld-no-such-command-xyz: command not found"* ]]
check "command not found in PATH exits 127" $? "$(describe)"

run -- "$TMP/no-such-file"
[[ $rc == 127 && $err == *"command not found"* ]]
check "nonexistent path exits 127" $? "$(describe)"

printf '#!/bin/sh\necho hi\n' > "$TMP/noexec.sh"
chmod 644 "$TMP/noexec.sh"
run -- "$TMP/noexec.sh"
if [[ $(id -u) == 0 ]] && [[ -x $TMP/noexec.sh ]]; then
    ok "non-executable file exits 126 (skipped: root can execute anything)"
else
    [[ $rc == 126 && $err == *noexec.sh* ]]
    check "non-executable file exits 126" $? "$(describe)"
fi

cat > "$TMP/script.sh" <<'EOF'
#!/bin/sh
echo "script ran with $# args: $*"
printf '%s\n' "$LD_PRELOAD"
EOF
chmod +x "$TMP/script.sh"
run -- "$TMP/script.sh" a b
[[ $rc == 0 && $out == "script ran with 2 args: a b"$'\n'"$FAKE_LIB" ]]
check "a shell script CMD works and gets LD_PRELOAD" $? "$(describe)"

mkdir -p "$TMP/bin"
cp -- "$TMP/script.sh" "$TMP/bin/greenld-test-script"
out=$(PATH=$TMP/bin:$PATH "$GL" greenld-test-script x 2>&1); rc=$?; err=
[[ $rc == 0 && $out == "script ran with 1 args: x"* ]]
check "a command is looked up in PATH" $? "$(describe)"

args=("a b" "  leading and trailing  " "it's" 'say "hi"' '$HOME' '*' '' $'new\nline' '--hubs' '-x')
run -- printf '[%s]\n' "${args[@]}"
expected=$(printf '[%s]\n' "${args[@]}")
[[ $rc == 0 && $out == "$expected" ]]
check "arguments with spaces, quotes and options pass through unchanged" $? "$(describe)"

run --hubs 2 printf '[%s]\n' --stack-size 1 --foo
[[ $rc == 0 && $out == $'[--stack-size]\n[1]\n[--foo]' ]]
check "options after CMD belong to CMD" $? "$(describe)"

run -- -dash-command
[[ $rc == 127 && $err == *"-dash-command: command not found"* ]]
check "'--' lets CMD start with '-'" $? "$(describe)"

# Statically linked binary: LD_PRELOAD cannot reach it.
if command -v gcc >/dev/null 2>&1; then
    printf '#include <stdio.h>\nint main(void) { puts("static"); return 0; }\n' > "$TMP/hello.c"
    if gcc -static -o "$TMP/hello-static" "$TMP/hello.c" >/dev/null 2>&1; then
        run -- "$TMP/hello-static"
        [[ $rc == 1 && -z $out && $err == *"greenld: $TMP/hello-static is not dynamically linked; LD_PRELOAD cannot reach it"* ]]
        check "static binary exits 1 with a message" $? "$(describe)"
        if gcc -static-pie -o "$TMP/hello-static-pie" "$TMP/hello.c" >/dev/null 2>&1; then
            run -- "$TMP/hello-static-pie"
            [[ $rc == 1 && $err == *"is not dynamically linked"* ]]
            check "static-pie binary exits 1 with a message" $? "$(describe)"
        else
            ok "static-pie (skipped: gcc -static-pie failed)"
        fi
        if gcc -o "$TMP/hello-dynamic" "$TMP/hello.c" >/dev/null 2>&1; then
            run -- "$TMP/hello-dynamic"
            [[ $rc == 0 && $out == static ]]
            check "a freshly built dynamic binary runs" $? "$(describe)"
        fi
    else
        ok "static (skipped: gcc -static failed, no static libc?)"
    fi
else
    ok "static (skipped: no gcc)"
fi

# Library discovery without GREENLD_LIBRARY, from a copy of the script laid
# out like a source checkout and like an installed prefix.
mkdir -p "$TMP/src/scripts" "$TMP/src/build" "$TMP/prefix/bin" "$TMP/prefix/lib/greenld"
cp -- "$GL" "$TMP/src/scripts/greenld"
cp -- "$GL" "$TMP/prefix/bin/greenld"
cp -- "$FAKE_LIB" "$TMP/src/build/libgreenld.so"
cp -- "$FAKE_LIB" "$TMP/prefix/lib/greenld/libgreenld.so"

out=$(env -u GREENLD_LIBRARY "$TMP/src/scripts/greenld" -- sh -c 'printf "%s\n" "$LD_PRELOAD"' 2>&1); rc=$?; err=
[[ $rc == 0 && $out == "$(readlink -f "$TMP/src/build/libgreenld.so")" ]]
check "finds ../build/libgreenld.so in a source checkout" $? "$(describe)"

out=$(env -u GREENLD_LIBRARY "$TMP/prefix/bin/greenld" -- sh -c 'printf "%s\n" "$LD_PRELOAD"' 2>&1); rc=$?; err=
[[ $rc == 0 && $out == "$(readlink -f "$TMP/prefix/lib/greenld/libgreenld.so")" ]]
check "finds ../lib/greenld/libgreenld.so after install" $? "$(describe)"

ln -s "$TMP/prefix/bin/greenld" "$TMP/bin/greenld-link"
out=$(env -u GREENLD_LIBRARY "$TMP/bin/greenld-link" -- sh -c 'printf "%s\n" "$LD_PRELOAD"' 2>&1); rc=$?; err=
[[ $rc == 0 && $out == "$(readlink -f "$TMP/prefix/lib/greenld/libgreenld.so")" ]]
check "follows a symlink to the script to find the library" $? "$(describe)"

echo "9.9.9" > "$TMP/prefix/lib/greenld/VERSION"
out=$(env -u GREENLD_LIBRARY "$TMP/prefix/bin/greenld" --version 2>&1); rc=$?; err=
[[ $rc == 0 && $out == "greenld 9.9.9" ]]
check "--version after install reads lib/greenld/VERSION" $? "$(describe)"

rm -f -- "$TMP/prefix/lib/greenld/libgreenld.so"
out=$(env -u GREENLD_LIBRARY "$TMP/prefix/bin/greenld" -- true 2>&1); rc=$?; err=
[[ $rc == 1 && $out == *"greenld: cannot find libgreenld.so (looked in "*"lib/greenld/libgreenld.so"* ]]
check "missing library exits 1 and says where it looked" $? "$(describe)"

out=$(GREENLD_LIBRARY=$TMP/nope.so "$GL" -- true 2>&1); rc=$?; err=
[[ $rc == 1 && $out == *"cannot find libgreenld.so"*"$TMP/nope.so"* ]]
check "nonexistent GREENLD_LIBRARY exits 1" $? "$(describe)"

echo "$passed passed, $failed failed"
[[ $failed == 0 ]]
