#!/usr/bin/env bash
# Fail-over: the leader killed in the middle of a stream of puts and of a
# watch (writes resume after the election, nothing acknowledged is lost, the
# watch resumes without a gap); the whole cluster down (calls fail with
# "unavailable" at once, no hang); and back.
source "$TESTLIB"
source "$(dirname "$TESTLIB")/etcd.sh"
etcd_cluster_start
expect_status 0 fleet init

leader=$(etcd_leader) || fail "no leader"
others=""
for i in 1 2 3; do [ "$i" = "$leader" ] || others+=",${ETCD_EP[$i]}"; done
ALL=$ETCD_ENDPOINTS
# Writer and watcher talk to the leader first, so its death cuts both.
ETCD_ENDPOINTS="${ETCD_EP[$leader]}$others"
note "leader is m$leader"

N=150
fleet --wait-ms 60000 watch 1 "$N" >"$T/watch.out" 2>"$T/watch.err" &
wpid=$!
wait_for "the watch to start" grep -q watching "$T/watch.out"
fleet put-many f/x "$N" >"$T/puts.out" 2>"$T/puts.err" &
ppid=$!
acked_at_least() { [ "$(grep -c '^ok' "$T/puts.out" 2>/dev/null)" -ge "$1" ]; }
wait_for "20 acknowledged puts" acked_at_least 20
etcd_member_stop "$leader"
note "killed m$leader after $(grep -c '^ok' "$T/puts.out") puts"
wait "$ppid" || fail "put-many failed: $(tail -3 "$T/puts.err")"
acked=$(grep -c '^ok' "$T/puts.out")
! grep -q '^fail' "$T/puts.out" || fail "puts failed across the election: $(grep '^fail' "$T/puts.out" | sort | uniq -c)"
assert_eq "$acked" "$N" "every put acknowledged"
got=$(sed -n 's/^ok version=\([0-9]*\).*/\1/p' "$T/puts.out" | tr '\n' ' ')
assert_eq "$got" "$(seq 1 "$N" | tr '\n' ' ')" "versions in one sequence"

note "nothing acknowledged is lost: the surviving members hold the last one"
ETCD_ENDPOINTS=${others#,}
assert_contains "$(fleet snapshot)" "head f/x version=$N "
fleet get f/x | grep -q "^value-[0-9]*-$((N - 1))$" || fail "the last value is not readable"

note "the watch resumed from where it was, without a gap or a repeat"
wait "$wpid" || fail "watch exited $? ($(tail -3 "$T/watch.err"))"
heads=$(grep ' head f/x ' "$T/watch.out" | sed 's/.*version=\([0-9]*\).*/\1/' | tr '\n' ' ')
assert_eq "$heads" "$(seq 1 "$N" | tr '\n' ' ')" "watched versions"

note "the killed member rejoins"
ETCD_ENDPOINTS=$ALL
etcd_member_start "$leader"
wait_for "m$leader healthy" etcd_member_healthy "$leader"

note "whole cluster down: calls fail with status 6 at once"
etcd_stop_all
t0=$(date +%s%N)
expect_status 6 fleet put f/down <<<"v"
expect_status 6 fleet status
expect_status 6 fleet get f/x
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
note "three calls failed in $ms ms"
[ "$ms" -lt 3000 ] || fail "calls took $ms ms with every member down"
assert_contains "$ERR" "unavailable"

note "back: the cluster restarts from its data and serves writes again"
for i in 1 2 3; do etcd_member_start "$i"; done
etcd_wait_healthy
expect_status 0 fleet put f/x <<<"after"
assert_contains "$OUT" "version=$((N + 1)) "
assert_eq "$(fleet get f/x)" "after" "value after the restart"
note "ok"
