#!/usr/bin/env bash
# secretd-bench against a broker whose rate limit refuses most of a run: the
# refusals are named on stderr (one line, by status) and rps counts only the
# OK answers (rps × the run's seconds is the OK count, not the request count).
# Not a timing test: only counts are checked.
source "$TESTLIB"
: "${SECRETD_BENCH:?SECRETD_BENCH must name the secretd-bench binary}"

start_broker --rate 1 --rate-burst 50
printf '0123456789abcdef0123456789abcdef' | "$SECRETCTL" put bench/key >/dev/null ||
  fail "put failed"

rc=0
"$SECRETD_BENCH" -s "$SECRETD_SOCKET" -c 4 -n 2000 bench/key >"$T/out" 2>"$T/err" || rc=$?
assert_eq "$rc" 1 "a run with refusals exits 1"
assert_eq "$(grep -c 'WARNING' "$T/err")" 1 "one warning line"
assert_contains "$(cat "$T/err")" "RATE_LIMITED="
last=$(tail -n 1 "$T/out")
[[ "$last" =~ ^rps=[0-9]+\.[0-9]\ p50_us=[0-9]+\ p99_us=[0-9]+\ errors=[0-9]+$ ]] ||
  fail "last line format: [$last]"
# The summary line: "..., S s, OK ok, F failed".
read -r secs ok failed < <(sed -n 's/.*, \([0-9.]*\) s, \([0-9]*\) ok, \([0-9]*\) failed$/\1 \2 \3/p' "$T/out")
[ -n "$ok" ] || fail "no summary line: $(cat "$T/out")"
assert_eq "$(( ok + failed ))" 2000 "ok + failed"
[ "$ok" -lt 2000 ] || fail "the limit refused nothing (ok=$ok)"
rps=${last#rps=}; rps=${rps%% *}
# rps × secs must be the OK count (within rounding), far from 2000.
awk -v r="$rps" -v s="$secs" -v ok="$ok" 'BEGIN { d = r * s - ok; exit !(d < 2 && d > -2) }' ||
  fail "rps=$rps over $secs s is not the $ok OK answers"
assert_contains "$(cat "$T/err")" "rps counts only the $ok successful answers"
stop_broker
echo "ok: $ok answered, $failed refused and reported"
