#!/usr/bin/env bash
# The DNS checks, run by tests/integration/dns.sh inside dns_env.sh (a
# private namespace with dnsmasq on 127.0.0.1 and 127.0.0.3, slow_server.py
# on 127.0.0.2, nothing on 127.0.0.9-11; /etc/resolv.conf, nsswitch.conf and
# gai.conf are private files this script rewrites). Prints ok/not ok lines and
# "N passed, N failed".
# Usage: checks.sh LIBGREENLD BINDIR
set -u
LIB=$1 BIN=$2
out=$(mktemp -d /tmp/greenld-dns-out.XXXXXX)
trap 'rm -rf "$out"' EXIT
pass=0 fail=0 corpus_total=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
not_ok() { fail=$((fail + 1)); echo "not ok - $1"; }

# configure RESOLV_CONF_TEXT HOSTS_LINE ("" = no hosts line at all)
configure() {
    printf '%b' "$1" >/etc/resolv.conf
    { echo "passwd: files"; echo "group: files"; [ -n "$2" ] && echo "hosts: $2"
      echo "networks: files"; echo "protocols: files"; echo "services: files"; } >/etc/nsswitch.conf
}

# corpus LABEL CORPUS_ARGS [ENV...]: the corpus natively, then under
# greenld with each environment given ("-" for none); identical or not.
corpus() {
    local label=$1 args=$2; shift 2
    local n native_ms start
    n=$("$BIN/dns_corpus" --count $args)
    start=$(date +%s%N)
    "$BIN/dns_corpus" $args >"$out/native" 2>&1
    native_ms=$((($(date +%s%N) - start) / 1000000))
    for envs in "$@"; do
        [ "$envs" = - ] && envs=
        start=$(date +%s%N)
        env $envs LD_PRELOAD="$LIB" timeout 300 "$BIN/dns_corpus" $args >"$out/greenld" 2>&1
        local greenld_ms=$((($(date +%s%N) - start) / 1000000))
        corpus_total=$((corpus_total + n))
        if cmp -s "$out/native" "$out/greenld"; then
            ok "$label${envs:+ [$envs]}: $n lookups identical to glibc's (native $native_ms ms, greenld $greenld_ms ms)"
        else
            not_ok "$label${envs:+ [$envs]}: differs from glibc's answers:"
            diff "$out/native" "$out/greenld" | head -20
        fi
    done
}

# The NSS module itself against glibc's dns module: status, errno, h_errno.
module() {
    "$BIN/dns_module" dns >"$out/module-native" 2>&1
    LD_PRELOAD="$LIB" timeout 120 "$BIN/dns_module" greenld >"$out/module-greenld" 2>&1
    if cmp -s "$out/module-native" "$out/module-greenld"; then
        ok "NSS module, $1: $(wc -l <"$out/module-native") calls with glibc's status, errno and h_errno"
    else
        not_ok "NSS module, $1: differs from glibc's dns module:"
        diff "$out/module-native" "$out/module-greenld" | head -20
    fi
}

base_resolv='nameserver 127.0.0.1\nsearch test\noptions timeout:2 attempts:2\n'

configure "$base_resolv" "files dns"
corpus "dnsmasq, search test" "" GREENLD_RESOLVER=ares GREENLD_HUBS=1 GREENLD_RESOLVER=thread \
    GREENLD_PATCH=socket,thread,time,select,os,signal
configure 'nameserver 127.0.0.1\nsearch test\noptions timeout:1 attempts:2\n' "files dns"
module "dnsmasq"

# slow_server.py directly: its REFUSED and SERVFAIL reach the resolver as
# they are, drop.py.test times out.
configure 'nameserver 127.0.0.2\nsearch py.test test\noptions ndots:2 timeout:1 attempts:1\n' "files dns"
corpus "REFUSED, SERVFAIL, timeouts, ndots:2, two search domains" "--timeouts" -
module "REFUSED, SERVFAIL, timeouts"

configure 'nameserver 127.0.0.9\nnameserver 127.0.0.1\nnameserver 127.0.0.3\ndomain test\noptions rotate timeout:1 attempts:3\n' \
    "files dns"
corpus "rotate over 3 servers, one refusing connections" "" -

# Nothing listens on 127.0.0.9-11; glibc uses only the first 3 nameservers.
configure 'nameserver 127.0.0.9\nnameserver 127.0.0.10\nnameserver 127.0.0.11\nnameserver 127.0.0.1\nsearch test\n' \
    "files dns"
corpus "no server reachable (a 4th nameserver, which glibc ignores, would answer)" "" -

configure 'nameserver 127.0.0.1\nsearch test py.test\noptions no-tld-query\n' "files dns"
corpus "no-tld-query" "" -

configure 'nameserver 127.0.0.1\nsearch py.test\noptions edns0\nsortlist 10.0.1.3/255.255.255.255\n' "files dns"
corpus "sortlist and edns0 (glibc's resolver on the pool)" "" -

# gai.conf: IPv4 (mapped) addresses first, then the default order again.
configure "$base_resolv" "files dns"
echo 'precedence ::ffff:0:0/96 100' >/etc/gai.conf
corpus "gai.conf: IPv4 first" "" -
: >/etc/gai.conf

configure "$base_resolv" "dns files"
corpus "hosts: dns files" "" -
configure "$base_resolv" "dns [!UNAVAIL=return] files"
corpus "hosts: dns [!UNAVAIL=return] files" "" -
configure "$base_resolv" ""
corpus "no hosts line in nsswitch.conf" "" -
configure "$base_resolv" "files myhostname dns"
corpus "hosts: files myhostname dns (glibc on the pool)" "" -
configure "$base_resolv" "files dns"
echo "# differential corpus: $corpus_total lookups compared in total"

# 200 threads, 200 names, every answer 200 ms late: all in flight at once.
# With one hub and a pool of one thread, a lookup that fell back to the
# pool, or blocked its hub, would make this take 40 s.
native=$("$BIN/dns_burst" 200 2>&1)
echo "# native:  $native"
for envs in "" "GREENLD_HUBS=1 GREENLD_POOL_SIZE=1"; do
    res=$(env $envs LD_PRELOAD="$LIB" timeout 60 "$BIN/dns_burst" 200 2>&1)
    echo "# greenld${envs:+ ($envs)}: $res"
    ms=$(sed -nE 's/^200 lookups, 0 wrong, ([0-9]+) ms$/\1/p' <<<"$res")
    if [ -n "$ms" ] && [ "$ms" -lt 1000 ]; then
        ok "200 concurrent lookups under greenld${envs:+ ($envs)} in $ms ms (native: ${native##*, })"
    else
        not_ok "200 concurrent lookups under greenld${envs:+ ($envs)}: '$res' (want 0 wrong, < 1000 ms)"
    fi
done

# The same with a SIGALRM handler (no SA_RESTART) firing every 1 ms: no
# lookup may fail with EINTR or give up early.
for envs in "" "GREENLD_HUBS=1"; do
    res=$(env $envs LD_PRELOAD="$LIB" timeout 60 "$BIN/dns_burst" 200 signals 2>&1)
    if [[ $res == *"200 lookups, 0 wrong, "* ]]; then
        ok "200 concurrent lookups under greenld${envs:+ ($envs)} with SIGALRM every 1 ms: ${res//$'\n'/; }"
    else
        not_ok "200 concurrent lookups under greenld${envs:+ ($envs)} with SIGALRM every 1 ms: $res"
    fi
done

# pthread_kill(SIGUSR1) to 20 threads parked in their lookups: each
# handler runs, each lookup goes on and succeeds.
for envs in "" "GREENLD_HUBS=1"; do
    res=$(env $envs LD_PRELOAD="$LIB" timeout 30 "$BIN/dns_burst" 20 kill 2>&1)
    if [[ $res == "20 lookups, 0 wrong, "* ]]; then
        ok "SIGUSR1 to 20 fibers waiting for DNS${envs:+ ($envs)}: handlers ran, $res"
    else
        not_ok "SIGUSR1 to 20 fibers waiting for DNS${envs:+ ($envs)}: '$res' (rc $?)"
    fi
done

# getnameinfo(NI_NOFQDN) from 20 threads at once on one hub: glibc's first
# call holds a lock while it looks the host's name up (200 ms late).
native=$(timeout 60 "$BIN/dns_burst" 20 nofqdn 2>&1)
res=$(GREENLD_HUBS=1 LD_PRELOAD="$LIB" timeout 60 "$BIN/dns_burst" 20 nofqdn 2>&1)
if [ "${res#*host=}" = "${native#*host=}" ] && [[ $res == "20 lookups, 0 wrong, "* ]]; then
    ok "getnameinfo(NI_NOFQDN) in 20 fibers of one hub, the first under glibc's lock: $res"
else
    not_ok "getnameinfo(NI_NOFQDN) in 20 fibers of one hub: '$res' (native: '$native')"
fi

# A bad GREENLD_RESOLVER: one warning, the default.
err=$(GREENLD_RESOLVER=bogus LD_PRELOAD="$LIB" timeout 30 "$BIN/dns_burst" 20 2>&1 >/dev/null)
if [ "$(grep -c "greenld: GREENLD_RESOLVER='bogus' is not one of ares, thread, block; using ares" <<<"$err")" = 1 ] &&
   [ "$(wc -l <<<"$err")" = 1 ]; then
    ok "a bad GREENLD_RESOLVER is reported once"
else
    not_ok "a bad GREENLD_RESOLVER is reported once: stderr was: $err"
fi

# After fork, and after resolv.conf changes (dns_lifecycle checks both);
# natively first: the expectations are glibc's.
for mode in native greenld; do
    if [ $mode = native ]; then res=$(timeout 60 "$BIN/dns_lifecycle" 2>&1)
    else res=$(LD_PRELOAD="$LIB" timeout 60 "$BIN/dns_lifecycle" 2>&1); fi
    if [ $? -eq 0 ]; then
        ok "$mode: lookups in a fork child and right after resolv.conf changes: $res"
    else
        not_ok "$mode: dns_lifecycle: $res"
    fi
    configure "$base_resolv" "files dns"
done

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
