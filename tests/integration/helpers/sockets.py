#!/usr/bin/env python3
"""Raw secretd protocol clients for the limits tests.

Every mode is bounded in time and prints one summary line of key=value
pairs on stdout, which the test parses.  Run as any uid (through setpriv):
only the standard library is used.

  open SOCKET N READY HOLD_S
      open N connections one after another, each sending a ping and reading
      its answer; print the count of each status (ok, limited, other, closed)
      and the first refusal message; write the same line to READY, then keep
      the accepted connections open for HOLD_S seconds (or until killed).
  half SOCKET HEX TIMEOUT_S
      send HEX, then wait for the broker to close; print closed=1 secs=S, or
      closed=0 when it is still open after TIMEOUT_S.
  trickle SOCKET TIMEOUT_S
      announce a 1000-byte ping frame, then send one byte every 100 ms;
      print closed=1 secs=S sent=N when the broker gives up on it.
  keepalive SOCKET DURATION_S INTERVAL_S
      ping every INTERVAL_S for DURATION_S; print answered=N closed=0|1.
  burst SOCKET N
      pipeline N get requests for "app/x" on one connection and read the N
      answers; print ok, limited, other.
"""
import os
import socket
import struct
import sys
import time

STATUS_OK = 0
STATUS_RATE_LIMITED = 7


def frame(body):
    return struct.pack(">I", len(body)) + body


PING = frame(b"\x01\x01")


def get_frame(name):
    return frame(b"\x01\x02" + struct.pack(">H", len(name)) + name + b"\x00\x00\x00\x00")


def connect(path, timeout=5.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def read_response(s):
    """(status, message) of one answer, or None when the stream ended."""
    head = recv_exact(s, 4)
    if head is None:
        return None
    (length,) = struct.unpack(">I", head)
    if length < 3 or length > 16 * 1024 * 1024:
        raise ValueError("bad response length %d" % length)
    body = recv_exact(s, length)
    if body is None:
        return None
    status = body[2]
    message = b""
    if status != STATUS_OK and len(body) >= 5:
        (mlen,) = struct.unpack(">H", body[3:5])
        message = body[5:5 + mlen]
    return status, message.decode("utf-8", "replace")


def mode_open(path, n, ready, hold):
    held = []
    counts = {"ok": 0, "limited": 0, "other": 0, "closed": 0}
    first_refusal = ""
    for _ in range(n):
        s = connect(path)
        try:
            s.sendall(PING)
        except OSError:
            pass  # a refused connection may be closed before the ping lands
        try:
            r = read_response(s)
        except OSError:
            r = None
        if r is None:
            counts["closed"] += 1
            s.close()
        elif r[0] == STATUS_OK:
            counts["ok"] += 1
            held.append(s)
        elif r[0] == STATUS_RATE_LIMITED:
            counts["limited"] += 1
            if not first_refusal:
                first_refusal = r[1]
            # the broker closes a refused connection after its one answer
            try:
                closed = s.recv(1) == b""
            except OSError:
                closed = True
            if not closed:
                counts["other"] += 1
            s.close()
        else:
            counts["other"] += 1
            s.close()
    line = "ok=%d limited=%d other=%d closed=%d refusal=%s" % (
        counts["ok"], counts["limited"], counts["other"], counts["closed"],
        first_refusal.replace(" ", "_"))
    with open(ready + ".tmp", "w") as f:
        f.write(line + "\n")
    os.rename(ready + ".tmp", ready)
    print(line, flush=True)
    time.sleep(hold)


def wait_closed(s, deadline):
    """True when the peer closed before the deadline (monotonic seconds)."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        if not chunk:
            return True


def mode_half(path, hexbytes, timeout):
    s = connect(path)
    start = time.monotonic()
    s.sendall(bytes.fromhex(hexbytes))
    if wait_closed(s, start + timeout):
        print("closed=1 secs=%.2f" % (time.monotonic() - start))
    else:
        print("closed=0 secs=%.2f" % (time.monotonic() - start))


def mode_trickle(path, timeout):
    s = connect(path)
    body = b"\x01\x01" + b"\x00" * 998
    data = struct.pack(">I", len(body)) + body
    start = time.monotonic()
    sent = 0
    s.setblocking(False)
    while time.monotonic() - start < timeout and sent < len(data):
        try:
            s.send(data[sent:sent + 1])
            sent += 1
        except BlockingIOError:
            pass
        except OSError:
            print("closed=1 secs=%.2f sent=%d" % (time.monotonic() - start, sent))
            return
        try:
            if s.recv(65536) == b"":
                print("closed=1 secs=%.2f sent=%d" % (time.monotonic() - start, sent))
                return
        except BlockingIOError:
            pass
        except OSError:
            print("closed=1 secs=%.2f sent=%d" % (time.monotonic() - start, sent))
            return
        time.sleep(0.1)
    print("closed=0 secs=%.2f sent=%d" % (time.monotonic() - start, sent))


def mode_keepalive(path, duration, interval):
    s = connect(path)
    start = time.monotonic()
    answered = 0
    closed = 0
    while time.monotonic() - start < duration:
        try:
            s.sendall(PING)
            r = read_response(s)
        except OSError:
            r = None
        if r is None:
            closed = 1
            break
        if r[0] == STATUS_OK:
            answered += 1
        time.sleep(interval)
    print("answered=%d closed=%d" % (answered, closed))


def mode_burst(path, n):
    s = connect(path)
    s.sendall(get_frame(b"app/x") * n)
    counts = {"ok": 0, "limited": 0, "other": 0}
    for _ in range(n):
        r = read_response(s)
        if r is None:
            break
        if r[0] == STATUS_OK:
            counts["ok"] += 1
        elif r[0] == STATUS_RATE_LIMITED:
            counts["limited"] += 1
        else:
            counts["other"] += 1
    print("ok=%d limited=%d other=%d" % (counts["ok"], counts["limited"], counts["other"]))


def main(argv):
    mode, path = argv[1], argv[2]
    if mode == "open":
        mode_open(path, int(argv[3]), argv[4], float(argv[5]))
    elif mode == "half":
        mode_half(path, argv[3], float(argv[4]))
    elif mode == "trickle":
        mode_trickle(path, float(argv[3]))
    elif mode == "keepalive":
        mode_keepalive(path, float(argv[3]), float(argv[4]))
    elif mode == "burst":
        mode_burst(path, int(argv[3]))
    else:
        sys.exit("unknown mode %s" % mode)


if __name__ == "__main__":
    main(sys.argv)
