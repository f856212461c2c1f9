#!/usr/bin/env python3
"""Rotation latency: from a put acknowledged to the inject --watch sidecar's
files switched (its ..data link replaced), over N rotations, optionally with
W other watchers connected.  A benchmark, not a test.

  rotation.py SECRETCTL SOCKET DIR N [W]

Prints p50/p99/max in microseconds and the broker-side figures are for the
caller to read (RSS from /proc).  Root on the host, a broker whose policy
lets root read and write bench/rot.
"""
import os, socket, struct, subprocess, sys, time

ctl, sock, d, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
w = int(sys.argv[5]) if len(sys.argv) > 5 else 0


def frame(body):
    return struct.pack(">I", len(body)) + body


def put_frame(name, value):
    return frame(bytes([1, 3]) + struct.pack(">H", len(name)) + name +
                 struct.pack(">I", len(value)) + value)


def recv_frame(s):
    hdr = s.recv(4, socket.MSG_WAITALL)
    return s.recv(struct.unpack(">I", hdr)[0], socket.MSG_WAITALL)


watchers = []
pat = b"bench/**"
wbody = frame(bytes([2, 7]) + struct.pack(">HH", 1, len(pat)) + pat)
for _ in range(w):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    s.sendall(wbody)
    recv_frame(s)
    watchers.append(s)

c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.connect(sock)
c.sendall(put_frame(b"bench/rot", b"v0"))
recv_frame(c)
side = subprocess.Popen([ctl, "-s", sock, "inject", "--dir", d, "--watch",
                         "bench/rot=rot"], stderr=subprocess.DEVNULL)
data = os.path.join(d, "..data")
deadline = time.monotonic() + 10
while not os.path.islink(data):
    if time.monotonic() > deadline:
        sys.exit("the sidecar wrote no set")
    time.sleep(0.01)
lat = []
for i in range(1, n + 1):
    before = os.readlink(data)
    c.sendall(put_frame(b"bench/rot", b"v%d" % i))
    ans = recv_frame(c)
    t0 = time.monotonic_ns()
    if ans[2] != 0:
        sys.exit("put refused: status %d" % ans[2])
    while os.readlink(data) == before:
        if time.monotonic_ns() - t0 > 5e9:
            sys.exit("rotation %d not switched within 5 s" % i)
        time.sleep(0.0001)
    lat.append((time.monotonic_ns() - t0) // 1000)
side.terminate()
side.wait()
lat.sort()
print("rotations=%d watchers=%d p50_us=%d p99_us=%d max_us=%d" % (
    n, w, lat[len(lat) // 2], lat[int(len(lat) * 0.99)], lat[-1]))
