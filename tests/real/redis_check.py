"""Drives redis over RESP from N client threads, each over its own
connection: SET then GET of known binary values, then RPUSH and LRANGE of
a known list and INCRBY of a counter shared by every connection; every
reply verified. With --verify-only the SET/RPUSH/INCRBY phase is skipped
and the values left by an earlier run are checked (after a restart from
the snapshot). Prints "ops=N seconds=S errors=E"; exits 1 on any wrong or
missing reply.

    redis_check.py PORT CONNECTIONS KEYS_PER_CONNECTION [--verify-only]
"""
import hashlib
import socket
import sys
import threading
import time

port, conns, keys = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
verify_only = "--verify-only" in sys.argv[4:]
errors = []
ops = [0] * conns


def value(c, k):
    # Binary-safe: every byte value, CR LF and NUL included, various sizes.
    seed = hashlib.sha256(b"%d:%d" % (c, k)).digest()
    return (seed + bytes(range(256)))[: 1 + (c * 131 + k * 17) % 288] * (1 + k % 5)


def command(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def reply(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise RuntimeError("short reply %r" % line)
    kind, body = line[:1], line[1:-2]
    if kind in (b"+", b"-"):
        return kind + body
    if kind == b":":
        return int(body)
    if kind == b"$":
        n = int(body)
        if n < 0:
            return None
        data = f.read(n + 2)
        if len(data) != n + 2 or data[-2:] != b"\r\n":
            raise RuntimeError("short bulk reply")
        return data[:-2]
    if kind == b"*":
        return [reply(f) for _ in range(int(body))]
    raise RuntimeError("unknown reply %r" % line)


def expect(c, f, what, want):
    got = reply(f)
    ops[c] += 1
    if got != want:
        errors.append("%s: got %r, want %r" % (what, got if not isinstance(got, bytes) else got[:40],
                                               want if not isinstance(want, bytes) else want[:40]))


def client(c):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        f = s.makefile("rb")
        items = [b"c%d-item%d" % (c, i) for i in range(keys)]
        if not verify_only:
            for k in range(keys):
                s.sendall(command("SET", "k%d_%d" % (c, k), value(c, k)))
                expect(c, f, "SET k%d_%d" % (c, k), b"+OK")
            # Pipelined: all the RPUSH at once, then the replies.
            s.sendall(b"".join(command("RPUSH", "list%d" % c, it) for it in items))
            for i in range(keys):
                expect(c, f, "RPUSH list%d" % c, i + 1)
            s.sendall(command("INCRBY", "shared", c + 1))
            got = reply(f)
            ops[c] += 1
            if not isinstance(got, int) or got < c + 1:
                errors.append("INCRBY shared: %r" % (got,))
        for k in range(keys):
            s.sendall(command("GET", "k%d_%d" % (c, k)))
            expect(c, f, "GET k%d_%d" % (c, k), value(c, k))
        s.sendall(command("LRANGE", "list%d" % c, 0, -1))
        expect(c, f, "LRANGE list%d" % c, items)
        s.close()
    except Exception as e:  # a dead connection is an error, not a crash
        errors.append("connection %d: %s" % (c, e))


t0 = time.monotonic()
threads = [threading.Thread(target=client, args=(c,)) for c in range(conns)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if not errors:
    # Every connection added c+1 to the shared counter exactly once.
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    f = s.makefile("rb")
    s.sendall(command("GET", "shared"))
    got = reply(f)
    if got != str(conns * (conns + 1) // 2).encode():
        errors.append("shared counter: got %r, want %d" % (got, conns * (conns + 1) // 2))
    s.close()
print("ops=%d seconds=%.2f errors=%d" % (sum(ops), time.monotonic() - t0, len(errors)))
for e in errors[:5]:
    print("  " + e)
sys.exit(1 if errors else 0)
