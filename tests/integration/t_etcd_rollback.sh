#!/usr/bin/env bash
# Refusing rollback: an etcd that answers with another cluster id, or with
# a revision below what the replica already applied (the cluster restored
# from an old snapshot), is an error, never followed.
source "$TESTLIB"
source "$(dirname "$TESTLIB")/etcd.sh"
etcd_cluster_start
expect_status 0 fleet init
printf 'old' | fleet put r/x >/dev/null || fail "put old"
ETCD_ENDPOINTS=${ETCD_EP[1]} etcd_ctl snapshot save "$T/old.db" >/dev/null 2>&1 || fail "etcdctl snapshot save"
for i in 1 2 3; do printf 'new%s' "$i" | fleet put r/x >/dev/null || fail "put new$i"; done
read -r cid rev < <(fleet status | sed -n 's/cluster_id=\([0-9]*\) revision=\([0-9]*\).*/\1 \2/p')
[ -n "$cid" ] && [ -n "$rev" ] || fail "no cluster id or revision"
note "cluster $cid at revision $rev"

note "the same cluster and revision are accepted"
expect_status 0 fleet --expect-cluster "$cid" --floor "$rev" get r/x
assert_eq "$OUT" "new3" "latest value"

note "another cluster id is refused"
expect_status 5 fleet --expect-cluster 12345 get r/x
assert_contains "$ERR" "another cluster id"
assert_eq "$OUT" "" "no value from another cluster"

note "a revision below the floor is refused"
expect_status 5 fleet --expect-cluster "$cid" --floor $((rev + 1)) get r/x
assert_contains "$ERR" "older revision"

note "the cluster restored from the old snapshot: refused for a replica at $rev"
etcd_restore "$T/old.db"
read -r cid2 rev2 < <(fleet status | sed -n 's/cluster_id=\([0-9]*\) revision=\([0-9]*\).*/\1 \2/p')
note "restored: cluster $cid2 at revision $rev2"
[ "$rev2" -lt "$rev" ] || fail "the restore did not go back ($rev2 >= $rev)"
expect_status 5 fleet --expect-cluster "$cid2" --floor "$rev" get r/x
assert_eq "$OUT" "" "no old value served"
expect_status 5 fleet --expect-cluster "$cid2" --floor "$rev" put r/x <<<"lost"
expect_status 5 fleet --expect-cluster "$cid2" --floor "$rev" --wait-ms 3000 watch $((rev + 1)) 1
note "an operator who accepts the restore starts from its revision: then it is followed"
expect_status 0 fleet --expect-cluster "$cid2" --floor "$rev2" get r/x
assert_eq "$OUT" "old" "the restored value, once accepted"
note "ok"
