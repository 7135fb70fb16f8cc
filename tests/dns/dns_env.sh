#!/usr/bin/env bash
# Runs a command in a private network, mount and UTS namespace with real DNS:
#   - lo up, nothing else: no lookup leaves the machine;
#   - /etc/resolv.conf, /etc/hosts, /etc/nsswitch.conf, /etc/gai.conf replaced (bind
#     mounts, private to the namespace) by the files below;
#   - dnsmasq on 127.0.0.1:53 serving the zone test. (dual-stack, A-only,
#     AAAA-only, CNAME chains, wildcard, PTR; NXDOMAIN for the rest)
#     (also on 127.0.0.3: a second server with the same answers) and
#     forwarding py.test. to slow_server.py on 127.0.0.2:53 (late answers,
#     REFUSED, SERVFAIL, silence, replies too big for UDP (TCP), several
#     addresses in a fixed order:
#     dnsmasq rotates its own), which a resolv.conf may also name directly;
#   - nothing listens on 127.0.0.9:53 (a server that refuses: ICMP).
# Usage: dns_env.sh COMMAND [ARGS...]   (as root). Exits 97 with a message if
# the namespace or the servers cannot be set up: never a silent skip.
set -u
here=$(cd "$(dirname "$0")" && pwd)

if [ "${DNS_ENV_INSIDE:-}" != 1 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "dns_env: must run as root (unshare -mn, bind mounts, port 53)" >&2
        exit 97
    fi
    command -v dnsmasq >/dev/null || { echo "dns_env: dnsmasq is not installed (apt-get install dnsmasq)" >&2; exit 97; }
    DNS_ENV_INSIDE=1 exec unshare -mnu -- "$0" "$@"
    echo "dns_env: unshare -mnu failed" >&2
    exit 97
fi

fail_setup() { echo "dns_env: $*" >&2; exit 97; }
ip link set lo up || fail_setup "cannot bring lo up"
# The host's own name is looked up (getnameinfo's NI_NOFQDN, under a glibc
# lock): make that lookup a slow one (slow_server.py answers it 200 ms late).
hostname slowhost || fail_setup "cannot set the host name in the UTS namespace"
# Non-loopback IPv4 and IPv6 addresses (on lo: glibc's AI_ADDRCONFIG
# ignores only 127.0.0.1 and ::1), so that AI_ADDRCONFIG sees both
# families and RFC 6724 sorting has source addresses to compare.
{ ip addr add 10.200.0.1/8 dev lo && ip -6 addr add fd00::100/16 dev lo nodad &&
  ip addr add 127.0.0.2/8 dev lo && ip addr add 127.0.0.3/8 dev lo; } ||
    fail_setup "cannot add test addresses to lo"
work=$(mktemp -d /tmp/greenld-dns.XXXXXX) || fail_setup "mktemp"
dnsmasq_pid= server_pid=
cleanup() {
    [ -n "$dnsmasq_pid" ] && kill "$dnsmasq_pid" 2>/dev/null
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

cat >"$work/resolv.conf" <<'EOF'
# greenld DNS tests
nameserver 127.0.0.1
search test
options timeout:2 attempts:2
EOF
cat >"$work/hosts" <<'EOF'
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
10.9.0.1	hostsname.local hostsalias
10.9.0.2	multi-hosts.local mh
10.9.0.3	multi-hosts.local
fd00:9::1	multi-hosts.local mh6
10.9.0.4	dual.test
EOF
cat >"$work/nsswitch.conf" <<'EOF'
passwd:         files
group:          files
hosts:          files dns
networks:       files
protocols:      files
services:       files
EOF
: >"$work/gai.conf"  # glibc's default address order
for f in resolv.conf hosts nsswitch.conf gai.conf; do
    mount --bind "$work/$f" "/etc/$f" || fail_setup "cannot bind-mount /etc/$f"
done

/usr/bin/python3 "$here/slow_server.py" 127.0.0.2 53 &
server_pid=$!
dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --no-poll --user=root \
    --listen-address=127.0.0.1,127.0.0.3 --bind-interfaces --port=53 --pid-file= --cache-size=0 \
    --dns-forward-max=1000 --local=/test/ --server=/py.test/127.0.0.2#53 \
    --server=/slowhost/127.0.0.2#53 \
    --host-record=dual.test,10.0.0.1,fd00::1 --host-record=v4.test,10.0.0.2 --host-record=v6.test,fd00::2 \
    --host-record=mixed.test,10.0.0.3 --host-record=mixed.test,fd00::3 \
    --cname=www.test,dual.test --cname=chain.test,www.test \
    --address=/wild.test/10.0.0.9 --ptr-record=5.0.0.10.in-addr.arpa,ptr-only.test \
    2>"$work/dnsmasq.log" &
dnsmasq_pid=$!

# Both servers answer before the command starts.
ready=0
for _ in $(seq 100); do
    if getent hosts v4.test >/dev/null 2>&1 && getent hosts slow.py.test >/dev/null 2>&1; then
        ready=1
        break
    fi
    sleep 0.1
done
[ $ready = 1 ] || fail_setup "DNS servers did not come up: $(cat "$work/dnsmasq.log")"

"$@"
