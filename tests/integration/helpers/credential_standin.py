#!/usr/bin/env python3
"""A stand-in for a credential server, to test the systemd harness alone.

  credential_standin.py SOCKET VALUE_FILE LOG SECONDS

Listens on SOCKET (mode 0666) and answers every connection with the bytes
of VALUE_FILE, then closes it, as LoadCredential= expects of an AF_UNIX
socket.  For each connection one line goes to LOG: the peer's address as
hex and, from the peer's /proc/PID/status, its Name, PPid and NSpid.  Exits
after SECONDS.
"""
import os
import socket
import struct
import sys
import time


def proc_fields(pid):
    out = []
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(("Name:", "PPid:", "NSpid:")):
                    out.append(line.split(":", 1)[0] + "=" + "/".join(line.split()[1:]))
    except OSError as e:
        out.append("proc=" + e.strerror)
    return " ".join(out)


def main():
    path, value_file, log, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    with open(value_file, "rb") as f:
        value = f.read()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    os.chmod(path, 0o666)
    s.listen(16)
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            c, _ = s.accept()
        except socket.timeout:
            break
        pid, uid, _gid = struct.unpack("3i", c.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        name = c.getpeername()
        if isinstance(name, str):
            name = name.encode()
        with open(log, "a") as f:
            f.write("addr=%s uid=%d %s\n" % (name.hex(), uid, proc_fields(pid)))
        c.sendall(value)
        c.close()


main()
