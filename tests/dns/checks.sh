#!/usr/bin/env bash
# The DNS checks, run by tests/integration/dns.sh inside dns_env.sh (a
# private namespace with dnsmasq and slow_server.py). Prints ok/not ok
# lines and "N passed, N failed".
# Usage: checks.sh LIBGREENLD BINDIR
set -u
LIB=$1 BIN=$2
out=$(mktemp -d /tmp/greenld-dns-out.XXXXXX)
trap 'rm -rf "$out"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
not_ok() { fail=$((fail + 1)); echo "not ok - $1"; }

# The corpus, natively, then under greenld in three configurations.
"$BIN/dns_corpus" >"$out/native" 2>&1
n=$("$BIN/dns_corpus" --count)
same_as_native() {  # label, env assignments...
    local label=$1; shift
    env "$@" LD_PRELOAD="$LIB" timeout 120 "$BIN/dns_corpus" >"$out/greenld" 2>&1
    if cmp -s "$out/native" "$out/greenld"; then
        ok "$label: $n lookups identical to glibc's"
    else
        not_ok "$label: differs from glibc's answers:"
        diff "$out/native" "$out/greenld" | head -20
    fi
}
same_as_native "greenld (GREENLD_RESOLVER=ares)" GREENLD_RESOLVER=ares
same_as_native "greenld, one hub" GREENLD_HUBS=1
same_as_native "greenld, GREENLD_RESOLVER=thread (glibc on the pool)" GREENLD_RESOLVER=thread
same_as_native "greenld without the dns family (plain glibc)" GREENLD_PATCH=socket,thread,time,select,os,signal

# The NSS module itself against glibc's dns module: status, errno, h_errno.
"$BIN/dns_module" dns >"$out/module-native" 2>&1
LD_PRELOAD="$LIB" timeout 120 "$BIN/dns_module" greenld >"$out/module-greenld" 2>&1
if cmp -s "$out/module-native" "$out/module-greenld"; then
    ok "NSS module: $(wc -l <"$out/module-native") calls with glibc's status, errno and h_errno"
else
    not_ok "NSS module differs from glibc's dns module:"
    diff "$out/module-native" "$out/module-greenld" | head -20
fi

# 200 threads, 200 names, every answer 200 ms late: all in flight at once.
native=$("$BIN/dns_burst" 200 2>&1)
echo "# native:  $native"
for hubs in default 1; do
    if [ $hubs = default ]; then res=$(LD_PRELOAD="$LIB" timeout 60 "$BIN/dns_burst" 200 2>&1)
    else res=$(GREENLD_HUBS=1 LD_PRELOAD="$LIB" timeout 60 "$BIN/dns_burst" 200 2>&1); fi
    echo "# greenld ($hubs hubs): $res"
    ms=$(sed -nE 's/^200 lookups, 0 wrong, ([0-9]+) ms$/\1/p' <<<"$res")
    if [ -n "$ms" ] && [ "$ms" -lt 1000 ]; then
        ok "200 concurrent lookups under greenld ($hubs hubs) in $ms ms (native: ${native##*, })"
    else
        not_ok "200 concurrent lookups under greenld ($hubs hubs): '$res' (want 0 wrong, < 1000 ms)"
    fi
done

# A bad GREENLD_RESOLVER: one warning, the default.
err=$(GREENLD_RESOLVER=bogus LD_PRELOAD="$LIB" timeout 30 "$BIN/dns_burst" 20 2>&1 >/dev/null)
if [ "$(grep -c "greenld: GREENLD_RESOLVER='bogus' is not one of ares, thread, block; using ares" <<<"$err")" = 1 ] &&
   [ "$(wc -l <<<"$err")" = 1 ]; then
    ok "a bad GREENLD_RESOLVER is reported once"
else
    not_ok "a bad GREENLD_RESOLVER is reported once: stderr was: $err"
fi

# After fork, and after resolv.conf changes (dns_lifecycle checks both).
if res=$(LD_PRELOAD="$LIB" timeout 60 "$BIN/dns_lifecycle" 2>&1); then
    ok "lookups in a fork child and after resolv.conf changes: $res"
else
    not_ok "dns_lifecycle: $res"
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
