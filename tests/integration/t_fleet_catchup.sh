#!/usr/bin/env bash
# A broker that was down while the others wrote: restarted on the same vault
# it catches up from the revision it had (the new versions, the removed name
# gone) without reading everything again (sync records only for what changed
# meanwhile, no resync); when etcd compacted that history meanwhile, it
# resynchronises the whole prefix (a resync counted, values right, names
# removed meanwhile gone).
source "$TESTLIB"
source "$(dirname "$TESTLIB")/etcd.sh"
etcd_cluster_start
source "$(dirname "$TESTLIB")/fleetlib.sh"

MPORT=$(free_port)
node_setup 3
node_conf 3 "metrics-listen = 127.0.0.1:$MPORT"
fleet_start 3

note "names written before node 3 goes down"
for name in old/a old/b old/c old/d; do
  expect_status 0 on 1 put "$name" <<<"$name-v1"
done
for name in old/a old/b old/c old/d; do wait_value 3 "$name" "$name-v1"; done

note "node 3 stopped; node 1 and 2 put and rm meanwhile"
node_stop 3
lines_before=$(wc -l <"$(node_dir 3)/audit.log")
expect_status 0 on 1 put new/x <<<"new-x"
expect_status 0 on 2 put old/a <<<"old/a-v2"
assert_eq "$OUT" "2" "old/a's second version"
expect_status 0 on 1 rm old/b
expect_status 0 on 2 put new/x <<<"new-x-2"
rev_written=$(etcd_revision)

note "node 3 started on the same vault: it catches up"
node_start 3
wait_following 3
wait_value 3 new/x new-x-2
wait_version 3 old/a 2
assert_eq "$(on 3 get old/a)" "old/a-v2" "old/a on node 3"
assert_eq "$(on 3 get old/a --version 1)" "old/a-v1" "old/a version 1 on node 3"
wait_gone 3 old/b
assert_eq "$(on 3 get old/c)" "old/c-v1" "old/c on node 3"
assert_eq "$(on 3 get old/d)" "old/d-v1" "old/d on node 3"
expect_status 0 on 3 list 'old/*'
assert_eq "$OUT" "$(printf 'old/a\nold/c\nold/d')" "list on node 3"
assert_eq "$(latest_version 3 new/x)" "2" "new/x's version on node 3"
wait_secs 10 "node 3 at revision $rev_written" status_is 3 revision "$rev_written"

note "it resumed from its revision: sync records only for what changed while it was down"
tail -n +$((lines_before + 1)) "$(node_dir 3)/audit.log" >"$T/audit3.after"
python3 - "$T/audit3.after" <<'PY' || fail "node 3's records after the restart: $(grep -F '"sync"' "$T/audit3.after")"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8").read().splitlines()]
sync = [(r["name"], r["version"]) for r in recs if r["op"] == "sync"]
names = {n for n, _ in sync}
want = {"new/x", "old/a", "old/b"}
assert names == want, "synced names %r, want %r" % (sorted(names), sorted(want))
assert ("old/b", 0) in sync, "no sync record of old/b's removal: %r" % sync
assert ("old/a", 2) in sync, "no sync record of old/a version 2: %r" % sync
assert ("new/x", 2) in sync, "no sync record of new/x version 2: %r" % sync
assert len(sync) == len(set(sync)), "a change applied twice: %r" % sync
PY
resyncs=$(metric_of "$MPORT" secretd_upstream_resyncs_total)
assert_eq "$resyncs" "0" "resyncs on node 3 after a plain restart"

note "compaction while node 3 is down"
node_stop 3
for k in $(seq 1 40); do
  printf 'c-%s' "$k" | on $((k % 2 + 1)) put "c/k$((k % 8))" >/dev/null || fail "put c/k$((k % 8))"
done
expect_status 0 on 1 rm old/c
expect_status 0 on 2 put new/y <<<"new-y"
expect_status 0 on 1 put old/d <<<"old/d-v2"
rev=$(etcd_revision)
note "etcd at revision $rev: compact and defragment"
etcd_ctl compact "$rev" >/dev/null || fail "etcdctl compact $rev"
etcd_ctl defrag --cluster >/dev/null 2>&1 || etcd_ctl defrag >/dev/null || fail "etcdctl defrag"
note "node 3 started: its revision is compacted, so it resynchronises"
node_start 3
note "a watcher on node 3 during the resync"
SECRETD_SOCKET="$(node_dir 3)/secretd.sock" "$CTL" watch 'old/*' 'new/*' >"$T/watch3" 2>"$T/watch3.err" &
WATCHER=$!
at_exit "kill -TERM $WATCHER 2>/dev/null || true"
wait_following 3 20
wait_value 3 new/y new-y
wait_gone 3 old/c
wait_value 3 old/d old/d-v2
for j in $(seq 0 7); do
  want=$(on 1 get "c/k$j") || fail "get c/k$j on node 1"
  assert_eq "$(on 3 get "c/k$j")" "$want" "c/k$j on node 3"
  assert_eq "$(latest_version 3 "c/k$j")" "$(latest_version 1 "c/k$j")" "c/k$j's version on node 3"
done
assert_eq "$(on 3 get old/a)" "old/a-v2" "old/a on node 3"
assert_eq "$(on 3 get new/x)" "new-x-2" "new/x on node 3"
wait_gone 3 old/b
expect_status 0 on 3 list '**'
assert_eq "$OUT" "$(on 1 list '**')" "every name on node 3 as on node 1"
assert_eq "$(status_of 3 secrets)" "$(status_of 1 secrets)" "secrets= on nodes 3 and 1"
wait_secs 10 "node 3 at revision $rev" status_is 3 revision "$rev"
resyncs=$(metric_of "$MPORT" secretd_upstream_resyncs_total)
[ -n "$resyncs" ] && [ "$resyncs" -ge 1 ] || fail "no resync counted on node 3 (secretd_upstream_resyncs_total=$resyncs)"
note "resyncs on node 3: $resyncs"
note "after the resync it follows: a put on node 1 arrives, also to the watcher"
expect_status 0 on 1 put new/z <<<"new-z"
wait_value 3 new/z new-z
has_line() { grep -qx -- "$2" "$1"; }
wait_for "new/z 1 in node 3's watch" has_line "$T/watch3" "new/z 1"
kill -TERM "$WATCHER"
wait "$WATCHER" || fail "watch on node 3 exited $? ($(cat "$T/watch3.err"))"
note "the watcher's last word on each name is the resynchronised one ($(tr '\n' '|' <"$T/watch3"))"
last_of() { awk -v n="$1" '$1 == n {v = $2} END {print v}' "$T/watch3"; }
# old/c: not shown (the watch began after the resync) or shown, then 0.
[ -z "$(last_of old/c)" ] || [ "$(last_of old/c)" = 0 ] || fail "old/c, removed while node 3 was down, shown live in its watch"
assert_eq "$(last_of old/d)" "2" "old/d in node 3's watch"
assert_eq "$(last_of new/y)" "1" "new/y in node 3's watch"
assert_eq "$(last_of old/a)" "2" "old/a in node 3's watch"
[ -z "$(last_of old/b)" ] || [ "$(last_of old/b)" = 0 ] || fail "old/b, removed long ago, shown live in node 3's watch"
note "and its own writes work"
expect_status 0 on 3 put new/y <<<"from-3"
assert_eq "$OUT" "2" "new/y's second version"
wait_value 2 new/y from-3
note "ok"
