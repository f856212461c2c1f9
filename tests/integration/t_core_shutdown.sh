#!/usr/bin/env bash
# SIGTERM under load: requests in flight are finished, the broker exits 0,
# the audit log ends with its "stop" record and verifies, and every put that
# was acknowledged is there after a restart.
source "$TESTLIB"
start_broker --rate 1000000 --rate-burst 1000000
printf 'v' | "$CTL" put load/x >/dev/null

"$SECRETD_BENCH" -s "$SECRETD_SOCKET" -c 8 -n 5000000 load/x >"$T/bench.out" 2>&1 &
bench=$!
at_exit "kill $bench 2>/dev/null"
( i=0; while :; do i=$((i + 1)); printf 'p%s' "$i" | "$CTL" put load/p >/dev/null 2>&1 && echo "$i"; done ) >"$T/acked" &
putter=$!
at_exit "kill $putter 2>/dev/null"
sleep 1
note "SIGTERM with $(wc -l <"$T/acked") puts acknowledged so far and 8 readers busy"
stop_broker
kill "$putter" 2>/dev/null || true
kill "$bench" 2>/dev/null || true
wait "$bench" 2>/dev/null || true
tail -n 1 "$T/audit.log" | grep -q '"op":"stop"' || fail "the log does not end with a stop record"
expect_status 0 "$SECRETD" audit-verify --key-file "$T/master.key" --vault "$T/vault.db" "$T/audit.log"
last=$(tail -n 1 "$T/acked")
start_broker
expect_status 0 "$CTL" get load/p
latest=${OUT#p}
[ "$latest" -ge "$last" ] || fail "acknowledged put $last is missing (latest stored $latest)"
stop_broker
echo "PASS $TEST_NAME"
