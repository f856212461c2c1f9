#!/usr/bin/env bash
# A broker refuses to start on an audit log whose end it cannot trust, and
# leaves the file exactly as it found it: every byte kept, so that what an
# attacker or a fault left there can still be examined (and audit-verify
# still names it).  Two such ends: a line that is not a record followed by a
# torn tail (before b28c426 the torn tail was cut off first, and then the
# start refused), and a partial last line as long as a record (no crash
# leaves that much of one write(2)).  A short torn tail after a good record
# is the crash the broker does repair: it is cut off and counted.
source "$TESTLIB"
LOG="$T/audit.log"

start_broker
printf 'value-x' | "$CTL" put app/x >/dev/null || fail "put"
expect_status 0 "$CTL" get app/x
stop_broker
cp "$LOG" "$T/good.log"
GOOD_LINES=$(wc -l <"$T/good.log")
GOOD_SIZE=$(stat -c %s "$T/good.log")

# refused_start WHY: secretd run must exit 1 saying WHY without ever
# listening, leave $LOG byte for byte as it was, and audit-verify must name
# the line after the good records.
refused_start() {
  local why=$1 before after rc=0
  before=$(sha256sum <"$LOG")
  timeout 5 "$SECRETD" run --socket "$SECRETD_SOCKET" --vault "$T/vault.db" \
    --key-file "$T/master.key" --policy "$T/policy.conf" --audit-log "$LOG" \
    >"$T/run.out" 2>"$T/run.err" || rc=$?
  [ "$rc" -eq 1 ] || fail "secretd run on a refused log exited $rc, not 1: $(cat "$T/run.err")"
  assert_contains "$(cat "$T/run.err")" "$why"
  assert_not_contains "$(cat "$T/run.err")" "serving on"
  # A broker that got as far as listening leaves its socket behind when it fails.
  [ ! -e "$SECRETD_SOCKET" ] || fail "a refused broker created its socket"
  after=$(sha256sum <"$LOG")
  assert_eq "$after" "$before" "the refused log was changed"
  expect_status 1 "$SECRETD" audit-verify --key-file "$T/master.key" --vault "$T/vault.db" "$LOG"
  assert_contains "$ERR" "$LOG:$((GOOD_LINES + 1)):"
}

note "a line that is not a record, then a torn tail"
printf 'garbage\n{"ts":"2026-12-03T00:00:00.000000Z","seq":9' >>"$LOG"
refused_start "the last line is not an audit record"

note "a partial last line as long as a record (32768 bytes)"
cp "$T/good.log" "$LOG"
head -c 32768 /dev/zero | tr '\0' 'x' >>"$LOG"
refused_start "longer than any record"

note "a short torn tail after a good record is cut off, counted, and the log verifies"
cp "$T/good.log" "$LOG"
torn='{"ts":"2026-12-03T00:00:00.000000Z","seq":9'
printf '%s' "$torn" >>"$LOG"
start_broker
expect_status 0 "$CTL" get app/x
stop_broker
cmp -n "$GOOD_SIZE" "$T/good.log" "$LOG" || fail "the records before the torn tail changed"
grep -qE "\"torn_bytes\":${#torn}[,}]" "$LOG" || fail "the start record does not count the ${#torn} torn bytes"
expect_status 0 "$SECRETD" audit-verify --key-file "$T/master.key" --vault "$T/vault.db" "$LOG"

echo "PASS $TEST_NAME"
