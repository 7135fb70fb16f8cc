# The set-up every tests/real/*.sh script shares (not itself a test: the
# suites run tests/real/*.sh). Sourced as
#     source "$(dirname "$0")/lib.bash" "$@"
# it leaves the shell in the project root ($ROOT) with:
#   BUILD       the build folder (first argument, default build), absolute
#   PY          /usr/bin/python3 (Debian's, whatever python3 PATH finds)
#   dir         a temporary folder (mode 755, so daemons running as nobody
#               can read it), removed at exit
#   pids        PIDs to stop at exit: append every process you start
#   need CMD[:PKG]...   installs the packages of missing commands (apt,
#               when root) and stops with "not ok" naming one still missing
#   check NAME COND     counts a test: COND is evaluated
#   xfail NAME COND REASON  an expected failure (counted as passed; says
#               loudly when it passes)
#   free_port, wait_port PORT, threads_of PID
#   threads_holding PID PORT N [BYTES]  OS threads of PID while N idle
#               clients (each sent BYTES first, if given) hold connections
#   finish      prints "N passed, N failed" and exits 1 if any failed
set -u
BUILD=$(readlink -f "${1:-build}")
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
PY=/usr/bin/python3
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
pass=0 fail=0

check() {
    if eval "$2"; then pass=$((pass + 1)); echo "ok - $1"; else fail=$((fail + 1)); echo "not ok - $1"; fi
}

xfail() {
    pass=$((pass + 1))
    if eval "$2"; then echo "ok - $1 # UNEXPECTEDLY PASSED: remove the expected-failure mark"; else echo "ok - $1 # expected failure: $3"; fi
}

finish() {
    echo "$pass passed, $fail failed"
    [ "$fail" -eq 0 ]
    exit
}

need() {
    local t missing=()
    for t in "$@"; do command -v "${t%%:*}" >/dev/null || missing+=("${t#*:}"); done
    if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" -eq 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 ||
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; }
    fi
    for t in "$@"; do
        command -v "${t%%:*}" >/dev/null ||
            { echo "not ok - ${t%%:*} is missing and could not be installed (apt-get install ${t#*:})"; echo "0 passed, 1 failed"; exit 1; }
    done
}

dir=$(mktemp -d)
chmod 755 "$dir"
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    rm -rf "$dir"
}
trap cleanup EXIT

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
threads_of() { awk '/^Threads:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# threads_holding PID PORT N [BYTES]: opens N connections to PORT, each
# sending BYTES (e.g. half a request line) and then waiting, and prints the
# OS thread count of PID while they are held; then lets them go.
threads_holding() {
    local pid=$1 port=$2 n=$3 bytes=${4:-} holder threads
    rm -f "$dir/held"
    "$PY" - "$port" "$n" "$dir/held" "$bytes" <<'PYEOF' &
import socket, sys, time
port, n, flag, data = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4].encode()
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    if data:
        s.sendall(data)
    socks.append(s)
open(flag, "w").close()
time.sleep(30)
PYEOF
    holder=$!
    pids+=("$holder")
    for _ in $(seq 200); do [ -e "$dir/held" ] && break; sleep 0.05; done
    sleep 1
    threads=$(threads_of "$pid")
    kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null; rm -f "$dir/held"
    echo "$threads"
}
