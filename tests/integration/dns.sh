#!/usr/bin/env bash
# Cooperative DNS (issue 5), against real DNS servers in a private network
# and mount namespace (tests/dns/dns_env.sh: dnsmasq, slow_server.py, test
# resolv.conf, hosts and nsswitch.conf): the differential corpus natively
# and under greenld, 200 concurrent lookups of late answers, fork and
# resolv.conf changes, GREENLD_RESOLVER. Needs root; a namespace that
# cannot be made is a failure, never a skip.
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/../.."
LIB=$(readlink -f "$BUILD/libgreenld.so")
BIN=$(readlink -f "$BUILD")/tests/dns
mkdir -p "$BIN"
for prog in dns_corpus dns_module dns_burst dns_lifecycle; do
    if ! ${CC:-gcc} -std=gnu11 -O1 -Wall -Wextra -Werror -pthread -o "$BIN/$prog" "tests/dns/$prog.c" -ldl; then
        echo "not ok - build tests/dns/$prog.c"
        echo "0 passed, 1 failed"
        exit 1
    fi
done
tests/dns/dns_env.sh tests/dns/checks.sh "$LIB" "$BIN"
rc=$?
if [ $rc -eq 97 ]; then
    echo "not ok - the DNS test environment could not be set up (see the dns_env message above)"
    echo "0 passed, 1 failed"
fi
exit $rc
