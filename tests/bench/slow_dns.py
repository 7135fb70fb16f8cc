#!/usr/bin/python3
"""slow_dns.py — a DNS server (UDP) that answers every query after a fixed
delay: A queries with 127.0.0.1, anything else with an empty NOERROR.  It
answers queries concurrently (each on its own timer), so the delay is the
latency of one lookup, not a queue.  Used by `make bench` for 200 concurrent
lookups against a server that answers after 200 ms.

Usage: slow_dns.py ADDRESS PORT DELAY_MS READY_FILE SECONDS

Writes READY_FILE once bound; exits after SECONDS (a bound on its life);
prints the number of queries answered on stderr when it exits.
"""
import asyncio
import struct
import sys


class SlowDns(asyncio.DatagramProtocol):
    def __init__(self, delay):
        self.delay = delay
        self.answered = 0
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        reply = self.reply(data)
        if reply is not None:
            asyncio.get_running_loop().call_later(self.delay, self.send, reply, addr)

    def send(self, reply, addr):
        self.transport.sendto(reply, addr)
        self.answered += 1

    @staticmethod
    def reply(data):
        if len(data) < 12:
            return None
        qid, _flags, qdcount = struct.unpack("!HHH", data[:6])
        if qdcount != 1:
            return None
        end = 12
        while end < len(data) and data[end] != 0:
            end += 1 + data[end]
        end += 1
        if end + 4 > len(data):
            return None
        qtype = struct.unpack("!H", data[end:end + 2])[0]
        question = data[12:end + 4]
        answers = b""
        if qtype == 1:  # A: name pointer to the question, IN, TTL 0, 127.0.0.1
            answers = struct.pack("!HHHIH", 0xC00C, 1, 1, 0, 4) + bytes([127, 0, 0, 1])
        header = struct.pack("!HHHHHH", qid, 0x8180, 1, 1 if answers else 0, 0, 0)
        return header + question + answers


async def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    address, port, delay_ms, ready, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(lambda: SlowDns(delay_ms / 1000.0),
                                                              local_addr=(address, port))
    with open(ready, "w") as f:
        f.write("ready\n")
    try:
        await asyncio.sleep(seconds)
    finally:
        transport.close()
        print(f"slow_dns: answered {protocol.answered} queries", file=sys.stderr)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
