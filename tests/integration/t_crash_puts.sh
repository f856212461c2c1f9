#!/usr/bin/env bash
# Crash consistency: kill -9 at a random moment during a stream of puts, many
# rounds.  After every restart each acknowledged put reads back exactly, the
# put that was in flight is either absent or exactly right (never another
# value), every acknowledged put has its audit record, and the audit log
# (with the vault's checkpoint) still verifies.
source "$TESTLIB"

ROUNDS=${CRASH_ROUNDS:-12}
SEED=${CRASH_SEED:-$$}
RANDOM=$SEED
note "seed $SEED (CRASH_SEED=$SEED reproduces the kill times), $ROUNDS rounds"

WRITER=""
stop_writer() {
  [ -n "$WRITER" ] || return 0
  kill "$WRITER" 2>/dev/null || true
  wait "$WRITER" 2>/dev/null || true
  WRITER=""
}
at_exit stop_writer

# writer ROUND: put r<ROUND>/k<k> = v-<k>-<ROUND> for k = 1, 2, ... until a
# put fails; k goes to acked.<ROUND> only after secretctl put exited 0, and
# the one that failed to inflight.<ROUND>.
writer() {
  local round=$1 k=1
  while :; do
    if printf 'v-%d-%d' "$k" "$round" | "$CTL" put "r$round/k$k" >/dev/null 2>>"$T/writer.err"; then
      echo "$k" >>"$T/acked.$round"
    else
      echo "$k" >"$T/inflight.$round"
      return 0
    fi
    k=$((k + 1))
  done
}

# verify_round ROUND: acked values exact, the in-flight one absent or exact.
verify_round() {
  local round=$1 k n=0 rc
  [ -f "$T/acked.$round" ] || return 0
  while read -r k; do
    expect_status 0 "$CTL" get "r$round/k$k"
    assert_eq "$OUT" "v-$k-$round" "acknowledged put r$round/k$k after the crash"
    n=$((n + 1))
  done <"$T/acked.$round"
  if [ -f "$T/inflight.$round" ]; then
    k=$(cat "$T/inflight.$round")
    rc=0
    "$CTL" get "r$round/k$k" >"$T/out" 2>"$T/err" || rc=$?
    case $rc in
      0) assert_eq "$(cat "$T/out")" "v-$k-$round" "the in-flight put r$round/k$k" ;;
      3) ;;
      *) fail "the in-flight put r$round/k$k: exit $rc ($(cat "$T/err"))" ;;
    esac
  fi
  VERIFIED=$n
}

total=0
for round in $(seq 1 "$ROUNDS"); do
  start_broker
  : >"$T/acked.$round"
  writer "$round" &
  WRITER=$!
  # 0.2 .. 1.5 s
  ms=$((200 + RANDOM % 1301))
  sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
  kill -KILL "$BROKER_PID"
  wait "$BROKER_PID" 2>/dev/null || true
  BROKER_PID=""
  # With the broker gone the writer's next put fails at once.
  for _ in $(seq 1 200); do kill -0 "$WRITER" 2>/dev/null || break; sleep 0.05; done
  kill -0 "$WRITER" 2>/dev/null && fail "the writer did not stop after the broker was killed"
  wait "$WRITER" || true
  WRITER=""

  start_broker
  verify_round "$round"
  acked=$(wc -l <"$T/acked.$round")
  total=$((total + acked))
  note "round $round: killed after $ms ms, $acked puts acknowledged, all read back"
  stop_broker
  expect_status 0 "$SECRETD" audit-verify --key-file "$T/master.key" --vault "$T/vault.db" "$T/audit.log"
done
[ "$total" -ge "$ROUNDS" ] || fail "only $total puts acknowledged over $ROUNDS rounds: the test did not test"

note "after all rounds: every acknowledged name of every round is still there, the last ones exact"
start_broker
expect_status 0 "$CTL" list 'r*/*'
for round in $(seq 1 "$ROUNDS"); do
  sed "s|^|r$round/k|" "$T/acked.$round"
done | sort >"$T/acked.all"
# names that list shows: the acknowledged ones, plus perhaps in-flight ones
missing=$(comm -23 "$T/acked.all" <(printf '%s\n' "$OUT" | sort))
[ -z "$missing" ] || fail "acknowledged names missing after later crashes: $(head -3 <<<"$missing")"
for round in $(seq 1 "$ROUNDS"); do
  for k in $(tail -n 3 "$T/acked.$round"); do
    expect_status 0 "$CTL" get "r$round/k$k"
    assert_eq "$OUT" "v-$k-$round" "r$round/k$k after every crash"
  done
done
stop_broker
python3 - "$T/audit.log" "$T" "$ROUNDS" <<'PY' || fail "audit records missing for acknowledged puts"
import json, sys
log, tdir, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
seen = set()
for line in open(log):
    r = json.loads(line)
    if r.get("op") == "put" and r.get("decision") == "allow":
        seen.add(r["name"])
missing = []
for rnd in range(1, rounds + 1):
    for k in open("%s/acked.%d" % (tdir, rnd)).read().split():
        if "r%d/k%s" % (rnd, k) not in seen:
            missing.append("r%d/k%s" % (rnd, k))
assert not missing, "acknowledged puts without an audit record: %s" % missing[:10]
PY
expect_status 0 "$SECRETD" audit-verify --key-file "$T/master.key" --vault "$T/vault.db" "$T/audit.log"
note "$total acknowledged puts over $ROUNDS crashes, none lost"
echo "PASS $TEST_NAME"
