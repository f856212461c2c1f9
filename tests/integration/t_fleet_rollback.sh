#!/usr/bin/env bash
# Rollback refused by real brokers: the etcd cluster restored from an old
# snapshot (same cluster id, a lower revision) is not followed: every node
# keeps serving the newer values it has (never the old ones), puts exit 6,
# `secretctl status` says state=refused with a problem, one error line in
# the log; `secretd upstream-reset` and a restart make a node follow the
# restored store.  Then a brand-new cluster (another cluster id, a revision
# above the one applied): refused too, and nothing is written into it.
source "$TESTLIB"
source "$(dirname "$TESTLIB")/etcd.sh"
etcd_cluster_start
source "$(dirname "$TESTLIB")/fleetlib.sh"
MPORT=$(free_port)
node_setup 2
node_conf 2 "metrics-listen = 127.0.0.1:$MPORT"
fleet_start 2
metric_is() { [ "$(metric_of "$MPORT" "$1")" = "$2" ]; }

cluster_id() {
  etcd_ctl endpoint status -w json | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["Status"]["header"]["cluster_id"])'
}
errors_in_log() { grep -c 'secretd\[error\]' "$(node_dir "$1")/broker.log" || true; }

expect_status 0 on 1 put r/x <<<"old"
wait_value 2 r/x old
ETCD_ENDPOINTS=${ETCD_EP[1]} etcd_ctl snapshot save "$T/old.db" >"$T/snap.log" 2>&1 \
  || fail "etcdctl snapshot save: $(tail -n 2 "$T/snap.log")"
for k in 1 2 3; do expect_status 0 on $((k % 2 + 1)) put r/x <<<"new$k"; done
expect_status 0 on 1 put r/y <<<"only-new"
for n in 1 2; do wait_value "$n" r/x new3; wait_value "$n" r/y only-new; done
rev=$(etcd_revision)
cid=$(cluster_id)
for n in 1 2; do wait_secs 10 "node $n at revision $rev" status_is "$n" revision "$rev"; done
note "cluster $cid at revision $rev; restoring the snapshot taken at r/x = old"
err_before=( "" "$(errors_in_log 1)" "$(errors_in_log 2)" )
assert_eq "$(metric_of "$MPORT" secretd_upstream_rollbacks_refused_total)" "0" "node 2's rollbacks refused before"

etcd_restore "$T/old.db"
rev2=$(etcd_revision)
cid2=$(cluster_id)
note "restored: cluster $cid2 at revision $rev2"
[ "$rev2" -lt "$rev" ] || fail "the restore did not go back ($rev2 >= $rev)"

note "every node refuses to follow it"
for n in 1 2; do wait_secs 20 "node $n state=refused" status_is "$n" state refused; done
note "node 2's metrics say so (refreshed about once a second): one rollback refused"
wait_secs 5 "metric state refused 1" metric_is 'secretd_upstream_state{state="refused"}' 1
wait_secs 5 "metric rollbacks refused 1" metric_is secretd_upstream_rollbacks_refused_total 1
assert_eq "$(metric_of "$MPORT" 'secretd_upstream_state{state="connected"}')" "0" "metric state connected while refused"
for n in 1 2; do
  expect_status 0 on "$n" status
  note "node $n: $(tr '\n' ' ' <<<"$OUT")"
  problem=$(sed -n 's/^problem=//p' <<<"$OUT")
  [ -n "$problem" ] || fail "node $n: state=refused without a problem line"
  assert_contains "$OUT" "revision=$rev" "node $n keeps its revision"
  note "the newer values are served, never the old one"
  for _ in 1 2 3; do
    assert_eq "$(on "$n" get r/x)" "new3" "r/x on node $n after the restore"
    sleep 0.2
  done
  assert_eq "$(on "$n" get r/y)" "only-new" "r/y on node $n after the restore"
  expect_status 6 on "$n" put r/x <<<"lost"
  note "node $n: put refused: $ERR"
  expect_status 6 on "$n" rm r/y
done
note "one error line a node for it, not one per retry"
sleep 3
assert_eq "$(metric_of "$MPORT" secretd_upstream_rollbacks_refused_total)" "1" "rollbacks refused: one, not one per retry"
for n in 1 2; do
  added=$(( $(errors_in_log "$n") - ${err_before[$n]} ))
  [ "$added" -ge 1 ] || fail "node $n logged no error for the refused rollback"
  [ "$added" -le 2 ] || fail "node $n logged $added error lines for one refused rollback: $(grep 'secretd\[error\]' "$(node_dir "$n")/broker.log" | tail -n 3)"
done
assert_eq "$(etcd_revision)" "$rev2" "the restored etcd's revision (a refused node wrote nothing)"

note "upstream-reset on node 1, restart: it follows the restored store"
node_stop 1
expect_status 0 "$SECRETD" upstream-reset --vault "$(node_dir 1)/vault.db" --key-file "$(node_dir 1)/master.key"
node_start 1
wait_following 1 20
wait_value 1 r/x old
wait_gone 1 r/y
assert_eq "$(latest_version 1 r/x)" "1" "r/x's version on node 1 after the reset"
wait_secs 10 "node 1 at the restored revision $rev2" status_is 1 revision "$rev2"
expect_status 0 on 1 put r/z <<<"after-reset"
note "node 2, not reset, still refuses and serves what it had"
assert_eq "$(status_of 2 state)" "refused" "node 2's state"
assert_eq "$(on 2 get r/x)" "new3" "r/x on node 2"
expect_status 3 on 2 get r/z
note "the restored store's revision passes node 2's $rev: node 2 refuses still, or serves exactly what etcd has"
while [ "$(etcd_revision)" -le $((rev + 2)) ]; do
  expect_status 0 on 1 put r/w <<<"w"
done
expect_status 0 on 1 put r/x <<<"restored-2"
wait_value 1 r/x restored-2
sleep 3
state2=$(status_of 2 state)
note "node 2: state=$state2 at etcd revision $(etcd_revision)"
if [ "$state2" != refused ]; then
  # Following a store that is not the history it applied: it must then hold
  # that store's state, not a mix (r/y exists only in the lost history).
  assert_eq "$(on 2 list '**')" "$(on 1 list '**')" "names on node 2, following again, as on node 1"
  assert_eq "$(on 2 get r/x)" "restored-2" "r/x on node 2, following again"
  expect_status 3 on 2 get r/y
fi
note "node 2 reset too: both follow, and writes go round"
node_stop 2
expect_status 0 "$SECRETD" upstream-reset --vault "$(node_dir 2)/vault.db" --key-file "$(node_dir 2)/master.key"
node_start 2
wait_following 2 20
wait_value 2 r/x restored-2
wait_value 2 r/z after-reset
wait_gone 2 r/y
expect_status 0 on 2 put r/x <<<"next"
assert_eq "$OUT" "3" "r/x's version after the restored 1 and node 1's 2"
wait_value 1 r/x next
note "the audit logs still verify across the reset"
for n in 1 2; do
  expect_status 0 "$SECRETD" audit-verify --key-file "$(node_dir "$n")/master.key" \
    --vault "$(node_dir "$n")/vault.db" "$(node_dir "$n")/audit.log"
done

note "a brand-new cluster (another cluster id) whose revision is above the one applied"
rev3=$(etcd_revision)
etcd_stop_all
for i in 1 2 3; do rm -rf "$T/etcd-m$i"; done
for i in 1 2 3; do TEST_NAME=$TEST_NAME-other etcd_member_start "$i" new; done
etcd_wait_healthy
cid3=$(cluster_id)
[ "$cid3" != "$cid" ] || fail "the new cluster has the old cluster id $cid"
for k in $(seq 1 $((rev3 + 10))); do etcd_ctl put "/elsewhere/k$k" "x" >/dev/null || fail "etcdctl put"; done
rev4=$(etcd_revision)
note "new cluster $cid3 at revision $rev4 (the nodes applied $rev3 of cluster $cid)"
[ "$rev4" -gt "$rev3" ] || fail "the new cluster's revision $rev4 is not above $rev3"
for n in 1 2; do wait_secs 20 "node $n state=refused (another cluster)" status_is "$n" state refused; done
for n in 1 2; do
  assert_eq "$(on "$n" get r/x)" "next" "r/x on node $n facing another cluster"
  expect_status 6 on "$n" put r/x <<<"lost"
  [ -n "$(status_of "$n" problem)" ] || fail "node $n: no problem line facing another cluster"
done
assert_eq "$(etcd_ctl get --prefix /secretd/ --keys-only | grep -c . || true)" "0" "keys a refused node wrote into the other cluster"
note "node 1 reset: it follows the new, empty store"
node_stop 1
expect_status 0 "$SECRETD" upstream-reset --vault "$(node_dir 1)/vault.db" --key-file "$(node_dir 1)/master.key"
node_start 1
wait_following 1 20
wait_gone 1 r/x
expect_status 0 on 1 put r/x <<<"fresh"
assert_eq "$OUT" "1" "r/x's first version in the new cluster"
assert_eq "$(on 2 get r/x)" "next" "node 2, refusing, still serves its own"
note "ok"
