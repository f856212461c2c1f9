#!/usr/bin/env bash
# Garbage, truncated and oversized frames get clear errors, and the broker
# keeps serving: on the same connection when framing survives, and always
# to everyone else.
source "$TESTLIB"
start_broker
printf 's3cret' | "$CTL" put app/x >/dev/null

PING=00000002$(printf '%02x%02x' 1 1)

note "an unknown request type: answered INVALID, then the ping on the same connection"
got=$(raw_exchange "00000002017f${PING}")
# version 1, type|0x80 (ping for unknown), status 2 ... then 01 81 00 (ping OK)
assert_contains "$got" "018102" "invalid answer"
assert_contains "$got" "018100" "ping after garbage"

note "trailing garbage after a valid ping is refused, the stream goes on"
got=$(raw_exchange "0000000401019999${PING}")
assert_contains "$got" "018102" "trailing bytes refused"
assert_contains "$got" "018100" "ping after trailing garbage"

note "a truncated get (name runs past the frame)"
got=$(raw_exchange "000000060102000a6162${PING}")
assert_contains "$got" "018202" "truncated field refused"
assert_contains "$got" "018100" "ping after truncated"

note "a 4 GiB length prefix: refused and the connection closed"
got=$(raw_exchange "ffffffff${PING}")
assert_contains "$got" "018102" "oversized frame refused"
assert_not_contains "${got#*018102}" "018100" "nothing is answered after a broken frame"

note "half a header, then the client vanishes"
raw_exchange "0000" >/dev/null

note "a stalled client does not hold up others"
python3 - "$SECRETD_SOCKET" "$T/stall.ready" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b"\x00\x00\x10\x00\x01\x03")  # a put that never finishes
open(sys.argv[2], "w").close()
time.sleep(3)
PY
stall=$!
wait_for "the stalling client's half request" test -e "$T/stall.ready"
expect_status 0 "$CTL" get app/x
assert_eq "$OUT" "s3cret"
wait $stall || fail "stalling client failed"

note "clients that hang up before reading their answers (EPIPE, not SIGPIPE)"
head -c 65536 /dev/urandom | "$CTL" put app/big >/dev/null
python3 - "$SECRETD_SOCKET" <<'PY'
import socket, struct, sys
name = b"app/big"
body = bytes([1, 2]) + struct.pack(">H", len(name)) + name + struct.pack(">I", 0)
frame = struct.pack(">I", len(body)) + body
for _ in range(20):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    s.sendall(frame * 50)
    s.close()
PY
sleep 0.5
kill -0 "$BROKER_PID" 2>/dev/null || fail "the broker died when clients hung up"

note "the broker is still healthy"
expect_status 0 "$CTL" ping
stop_broker
echo "PASS $TEST_NAME"
