"""Drives memcached's text protocol from N client threads, each over its own
connection: SET then GET of known values, every value verified. Prints
"ops=N seconds=S errors=E"; exits 1 on any wrong or missing value.

    memcached_check.py PORT CONNECTIONS KEYS_PER_CONNECTION
"""
import hashlib
import socket
import sys
import threading
import time

port, conns, keys = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
errors = []


def value(c, k):
    return hashlib.sha256(b"%d:%d" % (c, k)).hexdigest().encode() * (1 + (c * 31 + k) % 8)


def read_line(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise RuntimeError("short reply %r" % line)
    return line[:-2]


def client(c):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        f = s.makefile("rb")
        for k in range(keys):
            v = value(c, k)
            s.sendall(b"set k%d_%d 0 0 %d\r\n%s\r\n" % (c, k, len(v), v))
            if read_line(f) != b"STORED":
                errors.append("set k%d_%d" % (c, k))
        for k in range(keys):
            s.sendall(b"get k%d_%d\r\n" % (c, k))
            hdr = read_line(f).split()
            if len(hdr) != 4 or hdr[0] != b"VALUE":
                errors.append("get k%d_%d: %r" % (c, k, hdr))
                continue
            data = f.read(int(hdr[3]) + 2)[:-2]
            if read_line(f) != b"END" or data != value(c, k):
                errors.append("get k%d_%d: wrong value" % (c, k))
        s.close()
    except Exception as e:  # a dead connection is an error, not a crash
        errors.append("connection %d: %s" % (c, e))


t0 = time.monotonic()
threads = [threading.Thread(target=client, args=(c,)) for c in range(conns)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("ops=%d seconds=%.2f errors=%d" % (2 * conns * keys, time.monotonic() - t0, len(errors)))
for e in errors[:5]:
    print("  " + e)
sys.exit(1 if errors else 0)
