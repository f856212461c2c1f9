#!/usr/bin/env bash
# Pipelined requests: puts sent back to back on several connections are all
# committed with the versions they were acknowledged with; a client that never
# reads its answers is let go and does not hold up shutdown; a flood of
# malformed frames is rate limited and costs the audit log few records.
source "$TESTLIB"
start_broker --keep-versions 1000 --request-timeout 1000

note "8 connections x 2 pipelined puts x 25 rounds: every acknowledged version is stored"
python3 - "$SECRETD_SOCKET" <<'PY' || fail "pipelined puts lost or misnumbered"
import socket, struct, sys, threading

def frame(body):
    return struct.pack(">I", len(body)) + body

def put(name, value):
    n = name.encode()
    return frame(bytes([1, 3]) + struct.pack(">H", len(n)) + n + struct.pack(">I", len(value)) + value)

def get(name, version):
    n = name.encode()
    return frame(bytes([1, 2]) + struct.pack(">H", len(n)) + n + struct.pack(">I", version))

def read_answer(s):
    def exact(n):
        b = b""
        while len(b) < n:
            c = s.recv(n - len(b))
            if not c:
                raise EOFError
            b += c
        return b
    (n,) = struct.unpack(">I", exact(4))
    return exact(n)

acked = {}
errors = []
def client(k):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    for r in range(25):
        vals = [b"c%d-r%d-a" % (k, r), b"c%d-r%d-b" % (k, r)]
        s.sendall(put("pipe/shared", vals[0]) + put("pipe/shared", vals[1]))
        for v in vals:
            a = read_answer(s)
            if a[2] != 0:
                errors.append("put answered status %d" % a[2])
                continue
            (ver,) = struct.unpack(">I", a[3:7])
            acked[ver] = v
    s.close()

threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
assert not errors, errors[:3]
assert sorted(acked) == list(range(1, 401)), "versions acknowledged: %d distinct, max %d" % (len(acked), max(acked))
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
for ver, v in acked.items():
    s.sendall(get("pipe/shared", ver))
    a = read_answer(s)
    assert a[2] == 0, "version %d: status %d" % (ver, a[2])
    (got_ver,) = struct.unpack(">I", a[3:7])
    (vlen,) = struct.unpack(">I", a[7:11])
    assert got_ver == ver and a[11:11 + vlen] == v, "version %d holds another value" % ver
print("# 400 acknowledged puts, versions 1..400, each stored as acknowledged")
PY

note "a client that pipelines gets of a large value and never reads is closed"
head -c 60000 /dev/urandom | "$CTL" put app/big >/dev/null
python3 - "$SECRETD_SOCKET" <<'PY' &
import socket, struct, sys, time
n = b"app/big"
body = bytes([1, 2]) + struct.pack(">H", len(n)) + n + struct.pack(">I", 0)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(sys.argv[1])
s.sendall((struct.pack(">I", len(body)) + body) * 40)
time.sleep(30)
PY
reader=$!
at_exit "kill $reader 2>/dev/null"
for _ in $(seq 1 80); do
  grep -q "its answer was not read in time" "$T/broker.log" && break
  sleep 0.1
done
grep -q "its answer was not read in time" "$T/broker.log" || fail "the non-reading client was not let go"
expect_status 0 "$CTL" get app/big

note "a client pipelining 1000 costly LISTs is served one a turn: another's ping is not queued behind them"
python3 - "$SECRETD_SOCKET" <<'PY' || fail "a ping waited behind another client's pipeline"
import socket, struct, sys

def frame(body):
    return struct.pack(">I", len(body)) + body

def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    return s

def answers(buf):
    """Whole answers in buf."""
    n = i = 0
    while i + 4 <= len(buf):
        (ln,) = struct.unpack(">I", buf[i:i + 4])
        if i + 4 + ln > len(buf):
            break
        n, i = n + 1, i + 4 + ln
    return n

def read_all(s, want):
    buf = b""
    while answers(buf) < want:
        c = s.recv(65536)
        if not c:
            raise EOFError
        buf += c
    return buf

# 3000 names make each LIST walk the whole vault (the glob matches none).
filler = connect()
for k in range(0, 3000, 250):
    batch = b""
    for i in range(k, k + 250):
        n, v = ("fill/%05d" % i).encode(), b"x"
        batch += frame(bytes([1, 3]) + struct.pack(">H", len(n)) + n + struct.pack(">I", len(v)) + v)
    filler.sendall(batch)
    read_all(filler, 250)
glob = b"nomatch/**"
lists = frame(bytes([1, 4]) + struct.pack(">H", len(glob)) + glob) * 1000
attacker, victim = connect(), connect()
attacker.sendall(lists)              # about 2 s of work for the broker
victim.sendall(frame(bytes([1, 1])))
read_all(victim, 1)
# Draining whatever pipeline one read brought in (about 270 of these frames)
# before looking at other sockets made the ping wait; one frame a turn
# answers it after a few.
attacker.setblocking(False)
got = b""
try:
    while True:
        c = attacker.recv(1 << 20)
        if not c:
            break
        got += c
except BlockingIOError:
    pass
done = answers(got)
print("# LIST answers out when the ping was answered: %d of 1000" % done)
sys.exit(0 if done < 50 else 1)
PY

note "malformed frames pay tokens too: a flood costs few audit records"
stop_broker
start_broker --rate 2 --rate-burst 2
before=$(wc -l <"$T/audit.log")
python3 - "$SECRETD_SOCKET" <<'PY'
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
bad = struct.pack(">I", 2) + bytes([9, 1])      # unknown protocol version
s.sendall(bad * 2000)
s.shutdown(socket.SHUT_WR)
data = b""
while True:
    c = s.recv(65536)
    if not c:
        break
    data += c
PY
after=$(wc -l <"$T/audit.log")
[ $((after - before)) -lt 20 ] || fail "2000 malformed frames wrote $((after - before)) audit records"
note "another identity is still served"
expect_status 0 as_user 1000 1000 "$CTL" ping

note "SIGTERM with a non-reading client connected still exits promptly"
python3 - "$SECRETD_SOCKET" "$T/reader2.ready" <<'PY' &
import socket, struct, sys, time
n = b"app/big"
body = bytes([1, 2]) + struct.pack(">H", len(n)) + n + struct.pack(">I", 0)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall((struct.pack(">I", len(body)) + body) * 2)
open(sys.argv[2], "w").close()
time.sleep(30)
PY
reader2=$!
at_exit "kill $reader2 2>/dev/null"
# the client must be connected, its requests sent, before the SIGTERM
wait_for "the non-reading client's requests" test -e "$T/reader2.ready"
start=$(date +%s)
stop_broker
[ $(( $(date +%s) - start )) -le 5 ] || fail "shutdown waited for a client that does not read"
expect_status 0 "$SECRETD" audit-verify --key-file "$T/master.key" --vault "$T/vault.db" "$T/audit.log"
echo "PASS $TEST_NAME"
