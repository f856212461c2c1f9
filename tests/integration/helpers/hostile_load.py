#!/usr/bin/env python3
"""One hostile tenant for t_hostile_load.sh: N connections to the broker, all
misbehaving at once, for a bounded time.

  hostile_load.py SOCKET N DURATION_S READY_FILE

The connections are split four ways (i % 4):
  0 garbage   random bytes, or well-framed frames with random bodies
  1 half      a header promising 1 MiB, then a few bytes, then nothing
  2 huge      a 4 GiB length prefix (0xffffffff) and some bytes
  3 trickle   a header promising 1 MiB, then 16 KiB every 200 ms; when the
              broker closes one, it is opened again, so that N connections
              stay open and the broker keeps being pushed toward 1 MiB a buffer

After connecting and sending the first bytes it writes READY_FILE, keeps
going for DURATION_S, and prints one line of key=value counters:
  <kind>_n, <kind>_closed (by the broker), <kind>_invalid (answers with
  status INVALID), trickle_bytes (accepted by the kernel for the broker),
  trickle_reopened, connect_errors.
Only the standard library; runs as any uid.
"""
import os
import random
import resource
import socket
import struct
import sys
import time

KINDS = ("garbage", "half", "huge", "trickle")
# SECRETD_LOAD_KINDS=half,huge: only those kinds (to measure one at a time)
MIX = tuple(os.environ.get("SECRETD_LOAD_KINDS", ",".join(KINDS)).split(","))
MIB = 1024 * 1024
CHUNK = 16 * 1024
TICK = 0.2


class Conn:
    __slots__ = ("sock", "kind", "rx", "open")

    def __init__(self, sock, kind):
        self.sock = sock
        self.kind = kind
        self.rx = b""
        self.open = True


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def frame(body):
    return struct.pack(">I", len(body)) + body


def first_bytes(kind, rng):
    if kind == "garbage":
        if rng.random() < 0.3:
            return os.urandom(rng.randint(16, 2000))
        # well framed, nonsense inside: answered INVALID, the stream goes on
        return b"".join(frame(os.urandom(rng.randint(1, 3000))) for _ in range(rng.randint(1, 3)))
    if kind == "half":
        return struct.pack(">I", MIB) + b"\x01\x03\x00\x05abcde"
    if kind == "huge":
        return b"\xff\xff\xff\xff" + os.urandom(100)
    return struct.pack(">I", MIB) + b"\x01\x03\x00\x05abcde\x00\x0f\xff\xf0"


def connect(path):
    """Non-blocking, retrying while the listen backlog is full (EAGAIN)."""
    deadline = time.monotonic() + 10
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(path)
            return s
        except BlockingIOError:
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def open_conn(path, kind, rng):
    s = connect(path)
    c = Conn(s, kind)
    try:
        s.send(first_bytes(kind, rng))
    except BlockingIOError:
        pass
    except OSError:
        c.open = False
    return c


def drain(c, stats):
    """Read whatever the broker sent; note INVALID answers and a close."""
    while c.open:
        try:
            chunk = c.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            c.open = False
            stats[c.kind + "_closed"] += 1
            return
        c.rx += chunk
        while len(c.rx) >= 7:
            (length,) = struct.unpack(">I", c.rx[:4])
            if len(c.rx) < 4 + length:
                break
            if length >= 3 and c.rx[6] == 2:
                stats[c.kind + "_invalid"] += 1
            c.rx = c.rx[4 + length:]


def push(c, stats):
    try:
        n = c.sock.send(b"\x00" * CHUNK)
        stats["trickle_bytes"] += n
    except BlockingIOError:
        pass
    except OSError:
        pass  # found closed by drain() on the next tick


def main(argv):
    path, n, duration, ready = argv[1], int(argv[2]), float(argv[3]), argv[4]
    rng = random.Random(os.getpid())
    raise_nofile()
    stats = {"connect_errors": 0, "trickle_bytes": 0, "trickle_reopened": 0}
    for k in KINDS:
        stats[k + "_n"] = stats[k + "_closed"] = stats[k + "_invalid"] = 0
    conns = []
    for i in range(n):
        kind = MIX[i % len(MIX)]
        try:
            conns.append(open_conn(path, kind, rng))
            stats[kind + "_n"] += 1
        except OSError:
            stats["connect_errors"] += 1
    with open(ready + ".tmp", "w") as f:
        f.write("connected=%d\n" % len(conns))
    os.rename(ready + ".tmp", ready)
    end = time.monotonic() + duration
    while time.monotonic() < end:
        tick = time.monotonic()
        for i, c in enumerate(conns):
            drain(c, stats)
            if c.kind != "trickle":
                continue
            if not c.open:
                c.sock.close()
                try:
                    conns[i] = c = open_conn(path, "trickle", rng)
                    stats["trickle_reopened"] += 1
                except OSError:
                    stats["connect_errors"] += 1
                    continue
            push(c, stats)
        time.sleep(max(0.0, TICK - (time.monotonic() - tick)))
    for c in conns:
        drain(c, stats)
    print(" ".join("%s=%d" % kv for kv in sorted(stats.items())), flush=True)
    for c in conns:
        c.sock.close()


if __name__ == "__main__":
    main(sys.argv)
