#!/usr/bin/env bash
# A lying or silent etcd is an error, never a crash or a hang: bad JSON,
# wrong types, nesting without end, another cluster id on every answer, a
# revision going backwards, a watch whose events go back in time, and a
# server that accepts and never answers.  A fake gateway on 127.0.0.1.
source "$TESTLIB"
: "${ETCD_DRIVER:?ETCD_DRIVER must name the secretd-etcd-driver binary}"
head -c 32 /dev/urandom >"$T/cluster.key"
chmod 0400 "$T/cluster.key"
FAKE_PID=""
stop_fake() {
  [ -n "$FAKE_PID" ] || return 0
  kill "$FAKE_PID" 2>/dev/null || true
  wait "$FAKE_PID" 2>/dev/null || true
  FAKE_PID=""
}
at_exit stop_fake

# fake MODE: start the fake gateway in MODE; sets EP.
fake() {
  stop_fake
  rm -f "$T/port"
  python3 "$(dirname "$TESTLIB")/helpers/fake_etcd.py" "$1" "$T/port" 2>>"$T/fake.log" &
  FAKE_PID=$!
  wait_for "the fake etcd to listen" test -s "$T/port"
  EP="http://127.0.0.1:$(cat "$T/port")"
}

drv() { "$ETCD_DRIVER" --endpoints "$EP" --cluster-key "$T/cluster.key" --timeout-ms 1500 "$@"; }

for mode in garbage types deep nul; do
  note "$mode: a malformed answer"
  fake "$mode"
  expect_status 1 drv status
  assert_contains "$ERR" "malformed"
  expect_status 1 drv get a
done

note "another cluster id on the next answer is refused"
fake cluster
expect_status 5 drv get a
assert_contains "$ERR" "another cluster id"

note "a revision going backwards is refused"
fake backwards
expect_status 5 drv get a
assert_contains "$ERR" "older revision"

note "watch events going back in time: refused, not delivered"
fake watch
expect_status 5 drv --wait-ms 5000 watch 1 5
assert_contains "$OUT" "rev=50 put head a version=1"
assert_not_contains "$OUT" "version=2" "an event from the past was delivered"
assert_contains "$OUT" "disconnected etcd answered with an older revision"

note "a server that never answers: unavailable at the deadline, no hang"
fake hang
t0=$(date +%s%N)
expect_status 6 drv status
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
note "gave up after $ms ms"
[ "$ms" -lt 4000 ] || fail "took $ms ms with a 1500 ms deadline"
note "ok"
