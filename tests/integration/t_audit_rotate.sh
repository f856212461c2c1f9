#!/usr/bin/env bash
# seq and chain continue across a restart (a "stop" record, then a "start"
# record with the next seq), across a logrotate-style rename + SIGHUP (a new
# file, requests logged there, the files verify in order and not out of
# order), and across a restart on a rotated-away (new, empty) file, which
# continues from the vault's checkpoint.  --audit-sync always also works.
source "$TESTLIB"
LOG="$T/audit.log"
KEY="$T/master.key"
VAULT="$T/vault.db"

# field FILE LINE KEY: one field of one record ("$" for the last line).
field() {
  sed -n "$2p" "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$3"
}

# seqs_continuous FILE...: the records of the files, in order, are seq 1, 2, 3 ...
seqs_continuous() {
  python3 - "$@" <<'PY' || fail "seq not continuous across $*"
import json, sys
want = 1
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        for n, line in enumerate(f.read().decode().splitlines(), 1):
            seq = json.loads(line)["seq"]
            if seq != want:
                print("%s:%d: seq %d, expected %d" % (path, n, seq, want), file=sys.stderr)
                sys.exit(1)
            want += 1
PY
}

verify_ok() {
  expect_status 0 "$SECRETD" audit-verify --key-file "$KEY" --vault "$VAULT" "$@"
  assert_contains "$OUT" "OK: "
}

# A get, and the last record of FILE is that get.
get_logged_in() {
  expect_status 0 "$CTL" get app/x
  assert_eq "$OUT" "value-x"
  assert_eq "$(field "$1" '$' op) $(field "$1" '$' name)" "get app/x" "the get's record in $1"
}

start_broker
printf 'value-x' | "$CTL" put app/x >/dev/null || fail "put"
for _ in 1 2 3; do get_logged_in "$LOG"; done

note "restart: a stop record, then start with the next seq"
stop_broker
assert_eq "$(field "$LOG" '$' op)" "stop"
LAST=$(field "$LOG" '$' seq)
LINES=$(wc -l <"$LOG")
assert_eq "$LAST" "$LINES" "seq of the last record of a fresh log"
start_broker
assert_eq "$(field "$LOG" $((LINES + 1)) op)" "start" "first record after a restart"
assert_eq "$(field "$LOG" $((LINES + 1)) seq)" "$((LAST + 1))" "first seq after a restart"
get_logged_in "$LOG"
assert_eq "$(field "$LOG" '$' seq)" "$((LAST + 3))" "seq of the first request after a restart (ping, get)"
seqs_continuous "$LOG"
verify_ok "$LOG"
assert_contains "$OUT" "seq 1..$((LAST + 3))"

note "logrotate: mv audit.log audit.log.1, SIGHUP: a new audit.log takes the records"
get_logged_in "$LOG"
mv "$LOG" "$LOG.1"
# A request between the rename and the SIGHUP goes to whichever file the
# broker has open: both verify in order below either way.
expect_status 0 "$CTL" get app/x
kill -HUP "$BROKER_PID"
for _ in $(seq 1 100); do
  [ -s "$LOG" ] && break
  sleep 0.05
done
[ -s "$LOG" ] || fail "no new audit.log within 5 s of SIGHUP"
assert_eq "$(stat -c %a "$LOG")" "600" "mode of the new audit log"
for _ in 1 2 3; do get_logged_in "$LOG"; done
OLD_LINES=$(wc -l <"$LOG.1")
get_logged_in "$LOG"
assert_eq "$(wc -l <"$LOG.1")" "$OLD_LINES" "a record still went to the rotated file"
grep -q '"op":"reopen"' "$LOG" || fail "no reopen record in the new file"
assert_eq "$(field "$LOG" 1 seq)" "$(($(field "$LOG.1" '$' seq) + 1))" "first seq of the new file"
seqs_continuous "$LOG.1" "$LOG"
verify_ok "$LOG.1" "$LOG"
assert_contains "$OUT" "seq 1..$(field "$LOG" '$' seq)"

note "the files in the wrong order: exit 1"
expect_status 1 "$SECRETD" audit-verify --key-file "$KEY" --vault "$VAULT" "$LOG" "$LOG.1"
expect_status 1 "$SECRETD" audit-verify --key-file "$KEY" "$LOG" "$LOG.1"
assert_contains "$ERR" "$LOG.1:1: seq 1:"

note "the new file alone verifies as a continuation"
expect_status 0 "$SECRETD" audit-verify --key-file "$KEY" --vault "$VAULT" "$LOG"
assert_contains "$OUT" "earlier files not given"
note "the old file alone, with --vault: the records after it are missing"
expect_status 1 "$SECRETD" audit-verify --key-file "$KEY" --vault "$VAULT" "$LOG.1"
assert_contains "$ERR" "cut off"

note "a second rotation, then a restart on no file at all: continues from the vault's checkpoint"
mv "$LOG.1" "$LOG.2"
mv "$LOG" "$LOG.1"
kill -HUP "$BROKER_PID"
for _ in $(seq 1 100); do
  [ -s "$LOG" ] && break
  sleep 0.05
done
[ -s "$LOG" ] || fail "no new audit.log within 5 s of the second SIGHUP"
get_logged_in "$LOG"
stop_broker
mv "$LOG" "$LOG.0"
start_broker
assert_eq "$(field "$LOG" 1 op)" "start" "first record of a new file after a restart"
assert_eq "$(field "$LOG" 1 seq)" "$(($(field "$LOG.0" '$' seq) + 1))" "seq continues from the checkpoint"
get_logged_in "$LOG"
stop_broker
seqs_continuous "$LOG.2" "$LOG.1" "$LOG.0" "$LOG"
verify_ok "$LOG.2" "$LOG.1" "$LOG.0" "$LOG"
expect_status 1 "$SECRETD" audit-verify --key-file "$KEY" "$LOG.2" "$LOG.0" "$LOG.1" "$LOG"
note "a rotated file left out of the middle: exit 1"
expect_status 1 "$SECRETD" audit-verify --key-file "$KEY" --vault "$VAULT" "$LOG.2" "$LOG.0" "$LOG"

note "--audit-sync always: requests succeed, each record is there, the log verifies"
start_broker --audit-sync always
assert_contains "$(cat "$T/broker.log")" "audit-sync always"
for i in $(seq 1 10); do
  expect_status 0 "$CTL" put "sync/n$i" </dev/null
  assert_eq "$(field "$LOG" '$' op) $(field "$LOG" '$' name)" "put sync/n$i"
  get_logged_in "$LOG"
done
# also with concurrent clients: each answer waits for its fsync
for j in 1 2 3 4; do
  (for i in $(seq 1 15); do "$CTL" get app/x >/dev/null || exit 1; done) &
  eval "P$j=\$!"
done
for j in 1 2 3 4; do
  eval "wait \$P$j" || fail "a concurrent get failed under audit-sync always"
done
GETS=$(grep -c '"op":"get","name":"app/x"' "$LOG")
[ "$GETS" -ge 70 ] || fail "expected at least 70 get records, found $GETS"
kill -HUP "$BROKER_PID"
mv "$LOG" "$LOG.a"
kill -HUP "$BROKER_PID"
for _ in $(seq 1 100); do
  [ -s "$LOG" ] && break
  sleep 0.05
done
get_logged_in "$LOG"
stop_broker
seqs_continuous "$LOG.2" "$LOG.1" "$LOG.0" "$LOG.a" "$LOG"
verify_ok "$LOG.2" "$LOG.1" "$LOG.0" "$LOG.a" "$LOG"
assert_contains "$OUT" "matches"

echo "PASS $TEST_NAME"
