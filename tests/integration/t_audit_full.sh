#!/usr/bin/env bash
# When the audit log cannot be written, no secret leaves the broker: on a
# full 64 KiB tmpfs, get exits 6 with nothing on stdout, put exits 6 and
# changes nothing, ping and whoami still work, and the broker says so once;
# freeing space brings it back, with a "degraded" record, and the whole log
# verifies.  An audit.log removed under the running broker is recreated and
# no request is answered without a record.
source "$TESTLIB"
D="$T/full"
mkdir "$D"
mount -t tmpfs -o size=64k,mode=0700 tmpfs "$D" || fail "cannot mount a tmpfs on $D"
# The broker holds the log open: stop it before unmounting.
at_exit 'stop_broker_quietly; umount "$D" || umount -l "$D"'
LOG="$D/audit.log"
KEY="$T/master.key"
VAULT="$T/vault.db"

start_broker --audit-log "$LOG"
[ -s "$LOG" ] || fail "the audit log is not on the tmpfs"
printf 'original-value' | "$CTL" put app/x >/dev/null || fail "put"
printf 'rm-me' | "$CTL" put app/gone >/dev/null || fail "put"
expect_status 0 "$CTL" get app/x

note "fill the tmpfs; gets succeed (each with its record) until the broker answers 6"
dd if=/dev/zero of="$D/fill" bs=1k 2>/dev/null || true
avail=$(df --output=avail -B1 "$D" | tail -n 1 | tr -d ' ')
assert_eq "$avail" "0" "free bytes on the filled tmpfs"
got6=0
for i in $(seq 1 200); do
  rc=0
  "$CTL" get app/x >"$T/out" 2>"$T/err" || rc=$?
  if [ "$rc" -eq 6 ]; then
    got6=1
    break
  fi
  [ "$rc" -eq 0 ] || fail "get $i exited $rc while filling: $(cat "$T/err")"
  assert_eq "$(cat "$T/out")" "original-value"
  assert_eq "$(tail -n 1 "$LOG" | python3 -c 'import json,sys; print(json.load(sys.stdin)["op"])')" "get" \
    "a successful get's record is the log's last line"
done
[ "$got6" -eq 1 ] || fail "200 gets succeeded on a full tmpfs"
[ ! -s "$T/out" ] || fail "get printed something while the audit log is full"
assert_contains "$(cat "$T/err")" "secretctl: "
note "the audit log ends with a whole record"
[ "$(tail -c 1 "$LOG" | od -An -c | tr -d ' ')" = '\n' ] || fail "the full log ends in a partial record"
LINES_FULL=$(wc -l <"$LOG")

note "while full: get, get --version, list and rm exit 6 with nothing on stdout; ping and whoami work"
for _ in $(seq 1 10); do
  expect_status 6 "$CTL" get app/x
  assert_eq "$OUT" "" "get's stdout while degraded"
done
expect_status 6 "$CTL" get app/x --version 1
assert_eq "$OUT" ""
expect_status 6 "$CTL" get app/x -o "$T/must-not-exist"
[ ! -e "$T/must-not-exist" ] || fail "get -o wrote a file while degraded"
expect_status 6 "$CTL" list
assert_eq "$OUT" ""
expect_status 6 "$CTL" rm app/gone
expect_status 6 "$CTL" get app/missing
as_user 1000 1000 "$CTL" get app/x >"$T/out" 2>"$T/err" && fail "a get as uid 1000 succeeded while degraded"
[ ! -s "$T/out" ] || fail "get as uid 1000 printed something while degraded"
expect_status 0 "$CTL" ping
expect_status 0 "$CTL" whoami
assert_contains "$OUT" "uid=0"

note "while full: put exits 6"
printf 'changed-while-full' >"$T/new"
expect_status 6 "$CTL" put app/x --from-file "$T/new"
assert_eq "$OUT" ""
expect_status 6 "$CTL" put app/brand-new --from-file "$T/new"
assert_eq "$(wc -l <"$LOG")" "$LINES_FULL" "records appeared while full"

note "the broker's stderr says so once, not once a request nor once a retry"
# About 3 s of requests while full: the broker retries the log every second.
for _ in $(seq 1 30); do
  expect_status 6 "$CTL" get app/x
  assert_eq "$OUT" ""
  sleep 0.1
done
assert_eq "$(grep -c 'audit log cannot be written' "$T/broker.log")" "1" \
  "lines saying the audit log cannot be written"

note "free the space: within 5 s get works again, with the stored value unchanged"
rm -f "$D/fill"
ok=0
for _ in $(seq 1 100); do
  if "$CTL" get app/x >"$T/out" 2>/dev/null; then
    ok=1
    break
  fi
  sleep 0.05
done
[ "$ok" -eq 1 ] || fail "get did not work again within 5 s of freeing space"
assert_eq "$(cat "$T/out")" "original-value" "the value after a refused put"
expect_status 3 "$CTL" get app/brand-new
expect_status 0 "$CTL" get app/gone
assert_eq "$OUT" "rm-me" "a refused rm removed the secret"
expect_status 0 "$CTL" get app/x --version 1
expect_status 3 "$CTL" get app/x --version 2
assert_contains "$(cat "$T/broker.log")" "audit log writable again"

note "a degraded record, with the outage's length and the refused count"
python3 - "$LOG" <<'PY' || fail "degraded record: see above"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1], "rb").read().decode().splitlines()]
deg = [r for r in recs if r["op"] == "degraded"]
if len(deg) != 1:
    sys.exit("expected one degraded record, found %d" % len(deg))
d = deg[0]
for k in ("degraded_us", "refused"):
    if type(d.get(k)) is not int or d[k] < 1:
        sys.exit("degraded record: %s is %r" % (k, d.get(k)))
if "No space left" not in d.get("error", ""):
    sys.exit("degraded record: error %r does not say why" % d.get("error"))
i = recs.index(d)
if recs[i + 1]["op"] != "get" or recs[i + 1]["decision"] != "allow":
    sys.exit("the record after the degraded one is not the get that succeeded: %r" % recs[i + 1])
PY
expect_status 0 "$SECRETD" audit-verify --key-file "$KEY" "$LOG"
assert_contains "$OUT" "OK: "

note "audit.log removed under the running broker: recreated, and no answer without a record"
printf 'probe-value' | "$CTL" put app/probe >/dev/null || fail "put app/probe"
rm -f "$LOG"
rc=0
"$CTL" get app/probe >"$T/out" 2>"$T/err" || rc=$?
case "$rc" in
  0)
    [ -f "$LOG" ] || fail "get answered 0 right after the log was removed, and there is no new log"
    grep -q '"op":"get","name":"app/probe"' "$LOG" ||
      fail "get answered 0 right after the log was removed, without a record in the new log"
    ;;
  6) [ ! -s "$T/out" ] || fail "get printed something with exit 6" ;;
  *) fail "get right after removing the log exited $rc: $(cat "$T/err")" ;;
esac
ok=0
for _ in $(seq 1 100); do
  if [ -s "$LOG" ] && "$CTL" get app/probe >"$T/out" 2>/dev/null; then
    ok=1
    break
  fi
  sleep 0.05
done
[ "$ok" -eq 1 ] || fail "no working, recreated audit.log within 5 s of removing it"
assert_eq "$(cat "$T/out")" "probe-value"
assert_eq "$(stat -c %a "$LOG")" "600" "mode of the recreated log"
assert_eq "$(tail -n 1 "$LOG" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["op"], r["name"])')" \
  "get app/probe" "the get's record in the recreated log"
for _ in 1 2 3; do expect_status 0 "$CTL" get app/x; done
assert_eq "$(grep -c '"op":"get","name":"app/x"' "$LOG")" "3" "gets logged in the recreated file"
stop_broker
note "the recreated file verifies as a continuation, and up to the vault's checkpoint"
expect_status 0 "$SECRETD" audit-verify --key-file "$KEY" --vault "$VAULT" "$LOG"
assert_contains "$OUT" "earlier files not given"
assert_contains "$OUT" "matches"

echo "PASS $TEST_NAME"
