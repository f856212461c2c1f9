#!/usr/bin/env bash
# Hostile clients meet the limits: a per-identity cap on connections (the
# identity is uid + cgroup), a global cap, a timeout for a request that never
# completes (even one trickling in), an idle timeout that spares busy
# connections, and a per-identity token bucket with its own status code and
# audit record.  Whoever is over a limit is refused; everyone else is served.
source "$TESTLIB"
source "$(dirname "$TESTLIB")/cgroups.sh"
at_exit remove_cgroups

PY=/usr/bin/python3
HELPER="$(dirname "$TESTLIB")/helpers/sockets.py"
RUN="$T/run"
mkdir -m 1777 "$RUN"

write_policy <<'POLICY'
permit all   **      uid=0 host
permit read  app/**  uid=1000
permit read  app/**  uid=1001
permit read  app/**  uid=1002
POLICY

HOLDERS=()
kill_holders() {
  local p
  for p in "${HOLDERS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${HOLDERS[@]}"; do wait "$p" 2>/dev/null || true; done
  HOLDERS=()
}
at_exit kill_holders

# hold UID COUNT TAG: as UID, open COUNT connections and keep them; sets $GOT
# to the helper's summary (ok= limited= other= closed= refusal=).
hold() {
  local uid=$1 n=$2 tag=$3
  # setpriv itself, not the as_user function: $! must be the helper's pid
  setpriv --reuid "$uid" --regid "$uid" --clear-groups -- "$PY" "$HELPER" open "$SECRETD_SOCKET" "$n" "$RUN/$tag" 60 \
    >/dev/null 2>"$RUN/$tag.err" &
  HOLDERS+=($!)
  for _ in $(seq 1 200); do
    [ -f "$RUN/$tag" ] && break
    kill -0 "$!" 2>/dev/null || fail "holder $tag died: $(cat "$RUN/$tag.err")"
    sleep 0.05
  done
  [ -f "$RUN/$tag" ] || fail "holder $tag did not finish connecting within 10 s"
  GOT=$(cat "$RUN/$tag")
}

field() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"; }

# until_ok CMD...: bounded wait (5 s) for CMD to succeed.
until_ok() {
  for _ in $(seq 1 100); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  return 1
}

# Default timeouts here: the held connections must stay until released.
start_broker --max-connections 30 --max-connections-per-peer 20
printf 'value-x' | "$CTL" put app/x >/dev/null

note "per identity: uid 1000 gets 20 connections, the 21st to 25th are refused RATE_LIMITED and closed"
hold 1000 25 u1000
assert_eq "$(field ok "$GOT")" "20" "accepted for uid 1000"
assert_eq "$(field limited "$GOT")" "5" "refused for uid 1000"
assert_eq "$(field other "$GOT")" "0" "other answers for uid 1000 ($GOT)"
assert_eq "$(field closed "$GOT")" "0" "refused without an answer ($GOT)"
assert_contains "$(field refusal "$GOT")" "too_many_connections_from_this_identity"

note "meanwhile root, uid 1001 and uid 1000 in another cgroup are served"
expect_status 0 "$CTL" ping
expect_status 0 "$CTL" get app/x
assert_eq "$OUT" "value-x"
expect_status 0 as_user 1001 1001 "$CTL" get app/x
assert_eq "$OUT" "value-x"
expect_status 0 in_cgroup /secretd-test-limits/other \
  setpriv --reuid 1000 --regid 1000 --clear-groups -- "$CTL" get app/x
assert_eq "$OUT" "value-x" "uid 1000 in another cgroup is another identity"
note "and uid 1000 itself is refused a 21st connection through secretctl"
expect_status 1 as_user 1000 1000 "$CTL" get app/x
assert_contains "$ERR" "too many connections from this identity"
assert_eq "$OUT" "" "nothing on stdout when refused"

note "global cap: uid 1001 gets the 10 that are left of 30, then everyone is refused"
hold 1001 15 u1001
assert_eq "$(field ok "$GOT")" "10" "accepted for uid 1001"
assert_eq "$(field limited "$GOT")" "5" "refused for uid 1001"
assert_contains "$(field refusal "$GOT")" "too_many_connections_to_the_broker"
expect_status 1 "$CTL" ping
assert_contains "$ERR" "too many connections to the broker"

note "connections released: served again"
kill_holders
until_ok "$CTL" ping || fail "root not served after the holders went away"
until_ok as_user 1000 1000 "$CTL" get app/x || fail "uid 1000 not served after its connections closed"

note "a broker with request-timeout 500 ms and idle-timeout 1000 ms"
stop_broker
start_broker --request-timeout 500 --idle-timeout 1000
note "request timeout 500 ms: half a frame is closed by the broker within the 1 s sweep"
GOT=$(as_user 1002 1002 "$PY" "$HELPER" half "$SECRETD_SOCKET" 0000001001 6)
assert_eq "$(field closed "$GOT")" "1" "half frame closed ($GOT)"
awk -v s="$(field secs "$GOT")" 'BEGIN { exit !(s >= 0.4 && s <= 2.5) }' ||
  fail "half frame closed after $(field secs "$GOT") s, expected 0.4..2.5 s"
note "half frame closed after $(field secs "$GOT") s"

note "a frame trickling in a byte at a time is closed too: bytes arriving do not reset the clock"
GOT=$(as_user 1002 1002 "$PY" "$HELPER" trickle "$SECRETD_SOCKET" 6)
assert_eq "$(field closed "$GOT")" "1" "trickling frame closed ($GOT)"
awk -v s="$(field secs "$GOT")" 'BEGIN { exit !(s <= 2.5) }' ||
  fail "trickling frame closed after $(field secs "$GOT") s, expected at most 2.5 s"

note "idle timeout 1000 ms: an idle connection is closed within 3 s, a busy one is not"
setpriv --reuid 1002 --regid 1002 --clear-groups -- "$PY" "$HELPER" keepalive "$SECRETD_SOCKET" 3.5 0.3 >"$RUN/keepalive" &
busy=$!
HOLDERS+=($busy)
GOT=$(as_user 1002 1002 "$PY" "$HELPER" half "$SECRETD_SOCKET" "" 6)
assert_eq "$(field closed "$GOT")" "1" "idle connection closed ($GOT)"
awk -v s="$(field secs "$GOT")" 'BEGIN { exit !(s >= 0.8 && s <= 3.0) }' ||
  fail "idle connection closed after $(field secs "$GOT") s, expected 0.8..3 s"
wait "$busy" || fail "keepalive helper failed"
GOT=$(cat "$RUN/keepalive")
assert_eq "$(field closed "$GOT")" "0" "a connection pinging every 300 ms was closed ($GOT)"
[ "$(field answered "$GOT")" -ge 8 ] || fail "keepalive: too few answers ($GOT)"

note "a broker with rate 2/s, burst 5"
stop_broker
start_broker --rate 2 --rate-burst 5
note "rate 2/s, burst 5: 20 pipelined gets from uid 1000 get about 5 answers, the rest RATE_LIMITED"
GOT=$(as_user 1000 1000 "$PY" "$HELPER" burst "$SECRETD_SOCKET" 20)
ok=$(field ok "$GOT")
limited=$(field limited "$GOT")
[ "$ok" -ge 5 ] && [ "$ok" -le 7 ] || fail "burst: $ok answered OK, expected 5..7 ($GOT)"
assert_eq "$((ok + limited))" "20" "every request answered OK or RATE_LIMITED ($GOT)"
note "another identity is unaffected"
expect_status 0 as_user 1001 1001 "$CTL" get app/x
assert_eq "$OUT" "value-x"
note "secretctl maps RATE_LIMITED to exit 1 and says so"
rc=0
# The bucket is empty after the burst and refills a token every 500 ms:
# one of ten quick tries is refused unless each took half a second.
for _ in $(seq 1 10); do
  rc=0
  as_user 1000 1000 "$CTL" get app/x >"$T/out" 2>"$T/err" || rc=$?
  [ "$rc" -ne 0 ] && break
done
assert_eq "$rc" "1" "exit status when rate limited"
assert_contains "$(cat "$T/err")" "rate limited"
assert_eq "$(cat "$T/out")" "" "no value when rate limited"

note "the audit log holds deny records for the refusals"
stop_broker
python3 - "$T/audit.log" <<'PY' || fail "audit records for the limits are missing"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
# A run of refusals is recorded as a few records whose counts add up
# (the first at once, then at most one a second, the rest when it ends).
rate = [r for r in recs if r.get("error") == "rate limited"]
refused = sum(r["count"] for r in rate)
assert refused >= 13, "rate-limited requests recorded: %d" % refused
assert len(rate) < refused, "refusals were not coalesced: %d records" % len(rate)
assert all(r["decision"] == "deny" and r["uid"] == 1000 and r["op"] in ("get", "ratelimit")
           for r in rate), rate[:2]
assert rate[0]["op"] == "get" and rate[0]["name"] == "app/x" and rate[0]["count"] == 1, rate[0]
peer = [r for r in recs if r.get("error") == "too many connections from this identity"]
assert len(peer) >= 6 and all(r["decision"] == "deny" and r["uid"] == 1000 for r in peer), peer[:2]
total = [r for r in recs if r.get("error") == "too many connections to the broker"]
assert len(total) >= 6 and all(r["decision"] == "deny" for r in total), total[:2]
print("# audit: %d rate-limited (in %d records), %d per-identity and %d global refusals" % (refused, len(rate), len(peer), len(total)))
PY
expect_status 0 "$SECRETD" audit-verify --key-file "$T/master.key" --vault "$T/vault.db" "$T/audit.log"

note "a flood of refused connections costs the log at most 20 records a second, and every refusal is counted"
start_broker --max-connections-per-peer 2
before=$(wc -l <"$T/audit.log")
setpriv --reuid 1000 --regid 1000 --clear-groups -- "$PY" - "$SECRETD_SOCKET" >"$T/flood.out" <<'FLOOD'
import socket, sys
held = []
for _ in range(2):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    held.append(s)
refused = 0
for _ in range(400):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(sys.argv[1])
    data = b""
    while len(data) < 7:
        c = s.recv(64)
        if not c:
            break
        data += c
    if len(data) >= 7 and data[6] == 7:
        refused += 1
    s.close()
print(refused)
FLOOD
flooded=$(cat "$T/flood.out")
[ "$flooded" -eq 400 ] || fail "expected 400 refused connections, saw $flooded"
stop_broker
"$PY" - "$T/audit.log" "$before" "$flooded" <<'COUNT' || fail "refusals were not all counted, or cost too many records"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]).readlines()[int(sys.argv[2]):]]
one = [r for r in recs if r.get("error") == "too many connections from this identity"]
summary = [r for r in recs if r["op"] == "refusals"]
total = sum(r["count"] for r in one) + sum(r["count"] for r in summary)
assert total == int(sys.argv[3]), "refusals counted: %d of %s" % (total, sys.argv[3])
assert len(one) + len(summary) <= 60, "%d records for a flood" % (len(one) + len(summary))
print("# %d refusals in %d records" % (total, len(one) + len(summary)))
COUNT
expect_status 0 "$SECRETD" audit-verify --key-file "$T/master.key" --vault "$T/vault.db" "$T/audit.log"
echo "PASS $TEST_NAME"
