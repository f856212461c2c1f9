#!/usr/bin/env bash
# kill -9 in the middle of traffic (secretd-bench gets on 8 connections and
# a loop of puts) leaves an audit log that verifies, with --vault, both right
# after the kill and after the restart that continues it; five rounds on the
# same files.  Every acknowledged put has its record and its version in the
# vault.  A torn last line (simulated: a crash inside a write(2) cannot be
# provoked reliably) makes audit-verify exit 1 naming that line, and the
# restart cuts it off so the log verifies again.
#
# Note on "right after the kill": a record is one write(2) into the page
# cache, so kill -9 leaves whole records; the only way the verifier could
# fail there is a torn last line ("incomplete last line"), which the contract
# does not call intact.  So right after the kill, exit 1 is accepted only
# with that message, and exit 0 is required after the restart.
source "$TESTLIB"
: "${SECRETD_BENCH:?SECRETD_BENCH must name the secretd-bench binary}"
LOG="$T/audit.log"
KEY="$T/master.key"
VAULT="$T/vault.db"
ROUNDS=5
BENCH_PID=""
PUTS_PID=""

stop_traffic() {
  local p
  for p in "$BENCH_PID" "$PUTS_PID"; do
    [ -n "$p" ] || continue
    kill -TERM "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  BENCH_PID=""
  PUTS_PID=""
}
at_exit stop_traffic

# Small epochs, so crashes land mid-epoch and right after ratchets; no rate
# limit getting in the way of the traffic.
OPTS=(--audit-epoch-records 50 --rate 10000000 --rate-burst 10000000)

# The put loop: each acknowledged version is appended to $T/acked.
put_loop() {
  local i v
  for i in $(seq 1 100000); do
    v=$(printf 'crash-%s' "$i" | "$CTL" put crash/p 2>/dev/null) || continue
    echo "$v" >>"$T/acked"
  done
}

verify_after_kill() {
  local rc=0
  "$SECRETD" audit-verify --key-file "$KEY" --vault "$VAULT" "$LOG" >"$T/vout" 2>"$T/verr" || rc=$?
  case "$rc" in
    0) note "round $1, right after kill -9: $(cat "$T/vout")" ;;
    1)
      note "round $1, right after kill -9: exit 1: $(cat "$T/verr")"
      assert_contains "$(cat "$T/verr")" "incomplete last line" "verify right after kill -9"
      ;;
    *) fail "audit-verify right after kill -9 exited $rc: $(cat "$T/verr")" ;;
  esac
}

# The last complete record: verify_after_kill accepts a torn last line (no
# final newline, as audit-verify defines it), which is no record to parse.
last_record() {
  if [ -z "$(tail -c 1 "$LOG")" ]; then tail -n 1 "$LOG"; else tail -n 2 "$LOG" | sed -n 1p; fi
}

start_broker "${OPTS[@]}"
printf 'bench-value' | "$CTL" put bench/x >/dev/null || fail "put bench/x"
: >"$T/acked"

for round in $(seq 1 $ROUNDS); do
  before=$(wc -l <"$LOG")
  "$SECRETD_BENCH" -s "$SECRETD_SOCKET" -c 8 -n 200000 bench/x >"$T/bench.out" 2>&1 &
  BENCH_PID=$!
  put_loop &
  PUTS_PID=$!
  ms=$((200 + RANDOM % 801))
  sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
  kill -KILL "$BROKER_PID"
  wait "$BROKER_PID" 2>/dev/null || true
  BROKER_PID=""
  stop_traffic
  after=$(wc -l <"$LOG")
  note "round $round: killed after ${ms} ms, $((after - before)) records in the round"
  [ "$((after - before))" -ge 20 ] || fail "round $round: too little traffic reached the log"
  verify_after_kill "$round"
  last_seq=$(last_record | python3 -c 'import json,sys; print(json.load(sys.stdin)["seq"])') ||
    fail "round $round: the last complete record is not JSON: $(last_record)"
  [ "$(last_record | grep -c '"op":"stop"')" -eq 0 ] || fail "a stop record after kill -9"

  if [ "$round" -eq 3 ]; then
    note "a torn last line: verify exits 1 naming it; the restart cuts it off"
    lines=$(wc -l <"$LOG")
    tail -n 1 "$LOG" | head -c 100 >"$T/torn"
    cat "$T/torn" >>"$LOG"
    expect_status 1 "$SECRETD" audit-verify --key-file "$KEY" --vault "$VAULT" "$LOG"
    assert_contains "$ERR" "$LOG:$((lines + 1)): after seq $last_seq: incomplete last line"
  fi

  start_broker "${OPTS[@]}"
  expect_status 0 "$CTL" get bench/x
  assert_eq "$OUT" "bench-value"
  python3 - "$LOG" "$last_seq" "$round" <<'PY' || fail "round $round: the restart's start record"
import json, sys
last, rnd = int(sys.argv[2]), int(sys.argv[3])
recs = [json.loads(l) for l in open(sys.argv[1], "rb").read().decode().splitlines()]
starts = [r for r in recs if r["op"] == "start" and r["seq"] == last + 1]
if len(starts) != 1:
    sys.exit("no start record with seq %d" % (last + 1))
s = starts[0]
if rnd == 3 and s.get("torn_bytes") != 100:
    sys.exit("the start record after a torn line says torn_bytes=%r, not 100" % s.get("torn_bytes"))
PY
  expect_status 0 "$SECRETD" audit-verify --key-file "$KEY" --vault "$VAULT" "$LOG"
  assert_contains "$OUT" "OK: "
  assert_contains "$OUT" "matches"

  note "round $round: the last acknowledged put is in the vault and in the log"
  if [ -s "$T/acked" ]; then
    v=$(tail -n 1 "$T/acked")
    expect_status 0 "$CTL" get crash/p
    now=$(tail -n 1 "$LOG" | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
    [ "$now" -ge "$v" ] || fail "round $round: put version $v was acknowledged, the vault has $now"
    grep -q "\"op\":\"put\",\"name\":\"crash/p\",\"version\":$v," "$LOG" ||
      fail "round $round: put version $v was acknowledged without a record"
  fi
done

note "after $ROUNDS crashes: one log, seq 1.. without a gap, $((ROUNDS + 1)) start records"
stop_broker
expect_status 0 "$SECRETD" audit-verify --key-file "$KEY" --vault "$VAULT" "$LOG"
N=$(wc -l <"$LOG")
assert_contains "$OUT" "OK: $N records, seq 1..$N"
assert_eq "$(grep -c '"op":"start"' "$LOG")" "$((ROUNDS + 1))" "start records"
assert_eq "$(grep -c '"op":"stop"' "$LOG")" "1" "stop records"
grep -q '"op":"epoch"' "$LOG" || fail "no epoch record in a crash-heavy log"
[ -s "$T/acked" ] || fail "no put was ever acknowledged"

echo "PASS $TEST_NAME"
