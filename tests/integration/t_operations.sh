#!/usr/bin/env bash
# Operations: --metrics-listen serves /metrics (Prometheus text, valid for
# promtool) and /healthz, neither is audited nor reachable through the
# secrets socket; READY=1 reaches a NOTIFY_SOCKET; a socket passed by
# socket activation is served and left in place.
source "$TESTLIB"

PORT=$((20000 + RANDOM % 20000))
write_policy <<'POLICY'
permit all ** uid=0 host
POLICY

note "READY=1 on NOTIFY_SOCKET once serving"
python3 - "$T/notify.sock" >"$T/notify.out" 2>&1 <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(20)
while True:
    msg = s.recv(4096).decode()
    print(msg, flush=True)
    if "STOPPING=1" in msg:
        break
PY
NPID=$!
at_exit "kill $NPID 2>/dev/null"
wait_for "the notify listener" test -S "$T/notify.sock"
NOTIFY_SOCKET="$T/notify.sock" start_broker --metrics-listen "127.0.0.1:$PORT"
wait_for "READY=1" grep -q "READY=1" "$T/notify.out"

printf 'v' | "$CTL" put app/x >/dev/null
for i in 1 2 3; do "$CTL" get app/x >/dev/null; done
expect_status 3 "$CTL" get app/missing
records=$(wc -l <"$T/audit.log")

note "/metrics: valid exposition with the requests made"
curl -sf "http://127.0.0.1:$PORT/metrics" >"$T/metrics" || fail "GET /metrics failed"
promtool check metrics <"$T/metrics" >"$T/promtool.out" 2>&1 || fail "promtool: $(cat "$T/promtool.out")"
grep -q '^secretd_requests_total{op="get",decision="allow"} 3$' "$T/metrics" ||
  fail "3 allowed gets not counted: $(grep requests_total "$T/metrics" | head -5)"
grep -q '^secretd_requests_total{op="get",decision="error"} 1$' "$T/metrics" ||
  fail "the missing get not counted"
grep -q '^secretd_audit_ok 1$' "$T/metrics" || fail "audit state not ok: $(grep audit "$T/metrics")"

note "/healthz: 200 ok; neither endpoint writes an audit record"
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/healthz")" 200
assert_eq "$(wc -l <"$T/audit.log")" "$records" "records written by scraping"
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/nothing")" 404

note "HTTP on the secrets socket is a malformed frame, not a metrics answer"
out=$(printf 'GET /metrics HTTP/1.0\r\n\r\n' | python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1])
s.sendall(sys.stdin.buffer.read()); s.shutdown(socket.SHUT_WR)
d = b""
while True:
    c = s.recv(65536)
    if not c: break
    d += c
print(d.hex())' "$SECRETD_SOCKET")
assert_not_contains "$out" "736563726574645f" "metrics on the secrets socket"

stop_broker
wait_for "STOPPING=1" grep -q "STOPPING=1" "$T/notify.out"

note "socket activation: the passed socket is served and left for the next start"
ASOCK="$T/activated.sock"
systemd-socket-activate -l "$ASOCK" "$SECRETD" run --socket "$ASOCK" --vault "$T/vault.db" \
  --key-file "$T/master.key" --policy "$T/policy.conf" --audit-log "$T/audit.log" \
  >>"$T/broker.log" 2>&1 &
APID=$!
at_exit "kill $APID 2>/dev/null"
wait_for "the activated socket" test -S "$ASOCK"
expect_status 0 "$CTL" -s "$ASOCK" get app/x
assert_eq "$OUT" "v"
grep -q "socket activation" "$T/broker.log" || fail "the broker did not take the passed socket"
kill -TERM "$APID"
wait "$APID" || true
[ -S "$ASOCK" ] || fail "the activated socket was removed at exit"
echo "PASS $TEST_NAME"
