#!/usr/bin/env bash
# Two brokers never share one vault or one audit log.  With a broker
# serving, a second one on the same vault (its own socket and audit log)
# and a second one on the same audit log (its own vault) each exit 1 with
# one line naming what is held and by whom, touching nothing: the first
# broker's chain has no record of theirs and verifies.  audit-verify
# --vault still reads the checkpoint of the vault in use.  After the
# first broker stops, the vault and the log open again.
source "$TESTLIB"
LOG="$T/audit.log"
KEY="$T/master.key"
VAULT="$T/vault.db"

start_broker
FIRST=$BROKER_PID
printf 'value-x' | "$CTL" put app/x >/dev/null || fail "put"
expect_status 0 "$CTL" get app/x

# second_broker VAULT KEY LOG: run another broker; it must refuse at once
second_broker() {
  local rc=0
  timeout 20 "$SECRETD" run --socket "$T/second.sock" --vault "$1" --key-file "$2" \
    --policy "$T/policy.conf" --audit-log "$3" >"$T/second.out" 2>"$T/second.err" || rc=$?
  [ "$rc" -ne 124 ] || fail "the second broker kept running"
  assert_eq "$rc" "1" "exit status of the second broker"
  assert_eq "$(wc -l <"$T/second.err")" "1" "lines the second broker printed ($(cat "$T/second.err"))"
  [ ! -e "$T/second.sock" ] || fail "the second broker created its socket"
  SECOND_ERR=$(cat "$T/second.err")
}

note "a second broker on the same vault, its own socket and log"
second_broker "$VAULT" "$KEY" "$T/second.log"
assert_contains "$SECOND_ERR" "vault $VAULT is in use by another secretd (pid $FIRST holds $VAULT.lock)"
[ ! -s "$T/second.log" ] || fail "the refused broker wrote an audit log"

note "a second broker on the same audit log, its own vault"
"$SECRETD" init --vault "$T/other.db" --key-file "$T/other.key" >/dev/null
second_broker "$T/other.db" "$T/other.key" "$LOG"
assert_contains "$SECOND_ERR" "audit log $LOG is in use by another secretd (pid $FIRST holds $LOG.lock)"

note "the first broker serves on; its log has no record of the others"
expect_status 0 "$CTL" get app/x
assert_eq "$OUT" "value-x"
python3 - "$LOG" "$FIRST" <<'PY' || fail "records of another broker in the log"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1)), "seq not 1, 2, 3 ..."
own = [r for r in recs if r["op"] in ("start", "stop", "reopen", "epoch")]
assert all(r["pid"] == int(sys.argv[2]) for r in own), own
assert sum(r["op"] == "start" for r in recs) == 1
PY
note "audit-verify --vault reads the checkpoint of the vault in use"
expect_status 0 "$SECRETD" audit-verify --key-file "$KEY" --vault "$VAULT" "$LOG"
assert_contains "$OUT" "vault checkpoint at seq"

note "after logrotate and SIGHUP the log is still held"
mv "$LOG" "$LOG.1"
kill -HUP "$FIRST"
wait_for "a new audit.log after SIGHUP" test -s "$LOG"
second_broker "$T/other.db" "$T/other.key" "$LOG"
assert_contains "$SECOND_ERR" "audit log $LOG is in use"

note "the first broker stopped: both open again"
stop_broker
start_broker
expect_status 0 "$CTL" get app/x
stop_broker
expect_status 0 "$SECRETD" audit-verify --key-file "$KEY" --vault "$VAULT" "$LOG.1" "$LOG"

echo "PASS $TEST_NAME"
