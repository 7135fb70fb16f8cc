#!/usr/bin/env bash
# MariaDB (Debian's mariadbd; a thread per connection, InnoDB background
# threads on raw futexes, a signal thread) started as the user nobody with
# a datadir in a temporary folder, driven by sysbench oltp_read_write (8
# connections, 5 s) plus an exact data check through the mariadb client.
#
# Natively every check must pass. Under greenld (with --fiber-tls: the
# connection's THD is in compiled thread-local variables, `current_thd`,
# which are per fiber only with it) it is EXPECTED TO FAIL, for this
# reason: InnoDB's group commit lock (storage/innobase/log/log0sync.cc)
# waits on a futex inside a `thread_local` waiter node that it links into
# a list shared by all threads; the releaser writes that futex word to
# wake the waiter. Under greenld the node's address is the hub's OS-thread
# TLS: with per-fiber copies the releaser's write lands in whichever
# fiber's image is live on that hub, so the wake-up is lost and the waiter
# (a connection in CREATE INDEX during sysbench prepare, or an InnoDB
# background task) hangs for good; without them, the fibers of a hub share
# one node (and `current_thd`: SIGSEGV in Item_sum::mark_as_sum_func()
# under sysbench). This is the trade-off greenld(7) documents for
# GREENLD_FIBER_TLS. Reproduce: `tests/real/mariadb.sh` and read the
# greenld lines; with GREENLD_DUMP_SIGNAL a fiber is seen parked in
# syscall(SYS_futex) on an address between the hub thread's pointer and
# 0x68 bytes below it (mariadbd's TLS block), after thd_wait_begin().
# The greenld half therefore reports "ok - ... # expected failure" when it
# fails, and says so loudly if it ever passes.
# Installs mariadb-server-core, mariadb-client-core, sysbench (apt) when
# missing and root.
source "$(dirname "$0")/lib.bash" "$@"
need mariadbd:mariadb-server-core mariadb:mariadb-client-core mariadb-install-db:mariadb-server-core sysbench:sysbench
# Started as nobody when we are root (mariadbd refuses root), else as us.
as_user=()
[ "$(id -u)" -eq 0 ] && as_user=(runuser -u nobody --) && chown nobody: "$dir"

"${as_user[@]}" mariadb-install-db --no-defaults --datadir="$dir/data" --auth-root-authentication-method=normal \
    --skip-test-db >"$dir/install.log" 2>&1
check "mariadb-install-db made a datadir in a temporary folder" '[ -d "$dir/data/mysql" ]'

# 1000 known rows (k, 7k): count 1000, sum of v 3503500, sum of k*v 2336834500.
known_rows=$(seq 1 1000 | awk '{ printf "%s(%d,%d)", (NR > 1 ? "," : ""), $1, $1 * 7 }')

for mode in native greenld; do
    sock=$dir/sock.$mode
    pre=()
    [ "$mode" = greenld ] && pre=(env GREENLD_LIBRARY="$BUILD/libgreenld.so" "$ROOT/scripts/greenld" --hubs 2 --fiber-tls --)
    "${as_user[@]}" "${pre[@]}" mariadbd --no-defaults --datadir="$dir/data" --socket="$sock" --skip-networking \
        --innodb-use-native-aio=0 --innodb-buffer-pool-size=64M --pid-file="$dir/pid.$mode" \
        >"$dir/err.$mode.log" 2>&1 &
    server=$!
    pids+=("$server")
    for _ in $(seq 120); do [ -S "$sock" ] && break; sleep 0.25; done
    sql() { timeout 30 mariadb --no-defaults -S "$sock" -u root -N -B -e "$1" 2>/dev/null; }
    db=sb_$mode
    sql "CREATE DATABASE $db;
         CREATE TABLE $db.known (k INT PRIMARY KEY, v BIGINT) ENGINE=InnoDB;
         INSERT INTO $db.known VALUES $known_rows;"
    data=$(sql "SELECT COUNT(*), SUM(v), SUM(k * v) FROM $db.known")
    sb=(sysbench oltp_read_write --db-driver=mysql --mysql-socket="$sock" --mysql-user=root --mysql-db="$db"
        --tables=2 --table-size=2000)
    timeout 120 "${sb[@]}" prepare >"$dir/prepare.$mode" 2>&1
    timeout 60 "${sb[@]}" --threads=8 --time=5 run >"$dir/run.$mode" 2>&1 &
    bench=$!
    maxthreads=0 pid=$(cat "$dir/pid.$mode" 2>/dev/null || echo 0)
    while kill -0 "$bench" 2>/dev/null; do
        t=$(threads_of "$pid")
        [ "$t" -gt "$maxthreads" ] && maxthreads=$t
        sleep 0.2
    done
    wait "$bench"
    brc=$?
    tps=$(sed -nE 's/^ *transactions: +[0-9]+ +\(([0-9.]+) per sec.*/\1/p' "$dir/run.$mode")
    ignored=$(sed -nE 's/^ *ignored errors: +([0-9]+).*/\1/p' "$dir/run.$mode")
    after=$(sql "SELECT COUNT(*), SUM(v), SUM(k * v) FROM $db.known")
    # sysbench retries the deadlocks InnoDB reports (its "ignored errors");
    # any other error ends the run with a non-zero status.
    ok='[ "$data" = "$(printf "1000\t3503500\t2336834500")" ] && [ $brc -eq 0 ] && [ -n "$tps" ] && [ "$after" = "$data" ]'
    name="MariaDB ($mode): exact data check, sysbench oltp_read_write 8 connections x 5 s completes (${tps:-?} transactions/s, ${ignored:-?} deadlocks retried, $maxthreads OS threads)"
    if [ "$mode" = native ]; then
        check "$name" "$ok"
    else
        xfail "$name" "$ok" "InnoDB's group commit wakes a waiter through a futex in its thread_local node, whose address is the hub's"
        grep -a -m1 -E "got signal|ERROR" "$dir/err.$mode.log" | sed 's/^/#   mariadbd: /'
        grep -a -m2 "^greenld:" "$dir/err.$mode.log" | sed 's/^/#   /'
        grep -m2 FATAL "$dir/run.$mode" | sed 's/^/#   sysbench: /'
    fi
    echo "# MariaDB ($mode): ${tps:-?} transactions/s; OS threads under load $maxthreads; known rows (count, sums) before: ${data:-none}, after: ${after:-none}; sysbench status $brc" | tr '\t' ' '
    kill "$server" 2>/dev/null
    for _ in $(seq 120); do kill -0 "$server" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$server" 2>/dev/null; wait "$server" 2>/dev/null; server=
done

finish
