#!/usr/bin/python3
"""A small DNS server for the zone py.test., for what dnsmasq will not do:
answer late, refuse, fail, or not answer at all.

  burst-N.py.test      A 10.77.(N/256).(N%256), AAAA fd77::N, both sent 200 ms late
  slow.py.test         A 10.78.0.1, AAAA fd78::1, 200 ms late
  v4slow.py.test       A 10.78.0.2 (AAAA: no data), 200 ms late
  slowhost             A 10.78.0.3 (AAAA: no data), 200 ms late (the test host's name)
  multi.py.test        A 10.0.1.1 10.0.1.2 10.0.1.3, AAAA fd00::1:1 fd00::1:2, in that order
  big.py.test          A 10.0.2.1-40, AAAA fd00::2:1-28: too big for UDP (TC set, no
                       records), answered over TCP
  refused.py.test      REFUSED
  servfail.py.test     SERVFAIL
  drop.py.test         never answered (the client times out)
  anything else        NXDOMAIN

Usage: slow_server.py ADDRESS PORT. UDP: one thread, a heap of replies
due; TCP: a thread per connection.
"""
import heapq
import select
import socket
import struct
import sys
import threading
import time

DELAY = 0.2


def parse_question(msg):
    qid, flags, qdcount = struct.unpack("!HHH", msg[:6])
    pos, labels = 12, []
    while msg[pos] != 0:
        n = msg[pos]
        labels.append(msg[pos + 1:pos + 1 + n].decode("ascii", "replace").lower())
        pos += 1 + n
    pos += 1
    qtype, qclass = struct.unpack("!HH", msg[pos:pos + 4])
    return qid, flags, ".".join(labels), qtype, msg[12:pos + 4]


def reply(qid, flags, question, rcode, answers=(), udp=True):
    rd = flags & 0x0100
    tc = 0
    if udp and len(answers) > 20:
        tc, answers = 0x0200, ()
    header = struct.pack("!HHHHHH", qid, 0x8000 | 0x0400 | tc | rd | 0x0080 | rcode, 1, len(answers), 0, 0)
    body = b""
    for rtype, rdata in answers:
        body += b"\xc0\x0c" + struct.pack("!HHIH", rtype, 1, 60, len(rdata)) + rdata
    return header + question + body


def answer_for(name, qtype):
    """(delay, rcode, [(type, rdata)]) or None to stay silent."""
    A, AAAA = 1, 28
    if name.startswith("burst-") and name.endswith(".py.test"):
        try:
            n = int(name[len("burst-"):-len(".py.test")])
        except ValueError:
            return 0, 3, []
        if qtype == A:
            return DELAY, 0, [(A, bytes([10, 77, n // 256, n % 256]))]
        if qtype == AAAA:
            return DELAY, 0, [(AAAA, socket.inet_pton(socket.AF_INET6, "fd77::%x" % n))]
        return DELAY, 0, []
    if name == "slow.py.test":
        if qtype == A:
            return DELAY, 0, [(A, bytes([10, 78, 0, 1]))]
        if qtype == AAAA:
            return DELAY, 0, [(AAAA, socket.inet_pton(socket.AF_INET6, "fd78::1"))]
        return DELAY, 0, []
    if name == "slowhost":
        return DELAY, 0, [(A, bytes([10, 78, 0, 3]))] if qtype == A else []
    if name == "v4slow.py.test":
        return DELAY, 0, [(A, bytes([10, 78, 0, 2]))] if qtype == A else []
    if name == "multi.py.test":
        if qtype == A:
            return 0, 0, [(A, bytes([10, 0, 1, i])) for i in (1, 2, 3)]
        if qtype == AAAA:
            return 0, 0, [(AAAA, socket.inet_pton(socket.AF_INET6, a)) for a in ("fd00::1:1", "fd00::1:2")]
        return 0, 0, []
    if name == "big.py.test":
        if qtype == A:
            return 0, 0, [(A, bytes([10, 0, 2, i])) for i in range(1, 41)]
        if qtype == AAAA:
            return 0, 0, [(AAAA, socket.inet_pton(socket.AF_INET6, "fd00::2:%x" % i)) for i in range(1, 41)]
        return 0, 0, []
    if name == "refused.py.test":
        return 0, 5, []
    if name == "servfail.py.test":
        return 0, 2, []
    if name == "drop.py.test":
        return None
    return 0, 3, []


def read_exactly(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def serve_tcp(conn):
    with conn:
        conn.settimeout(30)
        try:
            while True:
                size = read_exactly(conn, 2)
                msg = size and read_exactly(conn, struct.unpack("!H", size)[0])
                if not msg:
                    return
                qid, flags, name, qtype, question = parse_question(msg)
                outcome = answer_for(name, qtype)
                if outcome is None:
                    continue
                delay, rcode, answers = outcome
                time.sleep(delay)
                data = reply(qid, flags, question, rcode, answers, udp=False)
                conn.sendall(struct.pack("!H", len(data)) + data)
        except (OSError, IndexError, struct.error):
            return


def accept_tcp(listener):
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve_tcp, args=(conn,), daemon=True).start()


def main():
    addr, port = sys.argv[1], int(sys.argv[2])
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((addr, port))
    listener.listen(64)
    threading.Thread(target=accept_tcp, args=(listener,), daemon=True).start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind((addr, port))
    due = []  # (time, seq, data, peer)
    seq = 0
    while True:
        timeout = max(0.0, due[0][0] - time.monotonic()) if due else None
        readable, _, _ = select.select([sock], [], [], timeout)
        if readable:
            msg, peer = sock.recvfrom(4096)
            try:
                qid, flags, name, qtype, question = parse_question(msg)
            except (IndexError, struct.error):
                continue
            outcome = answer_for(name, qtype)
            if outcome is not None:
                delay, rcode, answers = outcome
                seq += 1
                heapq.heappush(due, (time.monotonic() + delay, seq, reply(qid, flags, question, rcode, answers), peer))
        now = time.monotonic()
        while due and due[0][0] <= now:
            _, _, data, peer = heapq.heappop(due)
            sock.sendto(data, peer)


if __name__ == "__main__":
    main()
