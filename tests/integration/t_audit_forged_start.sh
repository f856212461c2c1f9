#!/usr/bin/env bash
# A forged start of an audit file is found.  The head of the log is cut off
# (records 1..K-1 dropped) and record K replaced by an invented one that
# claims to begin a file ("file":"new") and keeps K's chain value: the
# records after it still chain onto it, so only an authenticated file start
# tells the forgery from a file the broker began.  audit-verify, with and
# without --vault, must exit 1 naming the forged record; a genuine file
# start (after logrotate and SIGHUP) still verifies alone.
source "$TESTLIB"
LOG="$T/audit.log"
KEY="$T/master.key"
VAULT="$T/vault.db"

start_broker
printf 'value-x' | "$CTL" put app/x >/dev/null || fail "put"
for _ in $(seq 1 8); do
  expect_status 0 "$CTL" get app/x
done
stop_broker
expect_status 0 "$SECRETD" audit-verify --key-file "$KEY" --vault "$VAULT" "$LOG"

# forge FILE K: drop the records before seq K, mark record K as a file start
forge() {
  python3 - "$1" "$2" <<'PY'
import sys
path, k = sys.argv[1], int(sys.argv[2])
lines = open(path).read().splitlines()
lines = lines[k - 1:]
body, chain = lines[0].split(',"chain":', 1)
assert '"file":' not in body
body = body.replace(',"epoch":', ',"file":"new","epoch":', 1)
lines[0] = body + ',"chain":' + chain
open(path, "w").write("\n".join(lines) + "\n")
PY
}

cp "$LOG" "$T/intact.log"
for k in 3 6; do
  note "records 1..$((k - 1)) cut off, seq $k forged as a file start"
  cp "$T/intact.log" "$LOG"
  forge "$LOG" "$k"
  grep -q "\"seq\":$k,.*\"file\":\"new\"" "$LOG" || fail "the forgery did not take"
  expect_status 1 "$SECRETD" audit-verify --key-file "$KEY" --vault "$VAULT" "$LOG"
  assert_contains "$ERR" "$LOG:1: seq $k:"
  expect_status 1 "$SECRETD" audit-verify --key-file "$KEY" "$LOG"
  assert_contains "$ERR" "$LOG:1: seq $k:"
done

note "a genuine file start still verifies on its own"
cp "$T/intact.log" "$LOG"
start_broker
mv "$LOG" "$LOG.1"
kill -HUP "$BROKER_PID"
wait_for "a new audit.log after SIGHUP" test -s "$LOG"
expect_status 0 "$CTL" get app/x
stop_broker
expect_status 0 "$SECRETD" audit-verify --key-file "$KEY" --vault "$VAULT" "$LOG"
assert_contains "$OUT" "earlier files not given"
expect_status 0 "$SECRETD" audit-verify --key-file "$KEY" --vault "$VAULT" "$LOG.1" "$LOG"

echo "PASS $TEST_NAME"
