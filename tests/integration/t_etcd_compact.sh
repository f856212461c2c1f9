#!/usr/bin/env bash
# Compaction: a watch from a compacted revision says "compacted" with the
# compaction revision (so the broker resyncs); a snapshot reads the whole
# prefix at one revision, page after page; a watch from snapshot + 1 then
# follows without a gap.
source "$TESTLIB"
source "$(dirname "$TESTLIB")/etcd.sh"
etcd_cluster_start
expect_status 0 fleet init

note "1200 puts over 1000 names: more keys than one snapshot page"
fleet bench fleet 20 1200 >"$T/bench.out" 2>&1 || fail "bench: $(cat "$T/bench.out")"
for i in 1 2 3; do printf 'v%s' "$i" | fleet put c/one >/dev/null || fail "put $i"; done
rev=$(fleet status | sed -n 's/.*revision=\([0-9]*\).*/\1/p')
note "compacting at $rev"
etcd_ctl compact "$rev" >/dev/null || fail "etcdctl compact"

note "a watch from before the compaction reports it"
expect_status 3 fleet --wait-ms 10000 watch 2 1
assert_contains "$OUT" "compacted=$rev"

note "the snapshot: every name, one revision, nothing newer than it"
fleet snapshot >"$T/snap.out" || fail "snapshot"
assert_eq "$(grep -c '^head bench/' "$T/snap.out")" "1000" "bench heads in the snapshot"
assert_contains "$(cat "$T/snap.out")" "head c/one version=3 "
snaprev=$(sed -n 's/^revision=\([0-9]*\).*/\1/p' "$T/snap.out")
[ "$snaprev" -ge "$rev" ] || fail "snapshot revision $snaprev below $rev"
max=$(sed -n 's/.* mod_revision=\([0-9]*\).*/\1/p' "$T/snap.out" | sort -n | tail -1)
[ "$max" -le "$snaprev" ] || fail "an item newer ($max) than the snapshot ($snaprev)"
! grep -q ' BAD ' "$T/snap.out" || fail "a record failed its checks"

note "a watch from snapshot + 1 sees the next change and nothing before it"
fleet --wait-ms 10000 watch $((snaprev + 1)) 1 >"$T/watch.out" 2>&1 &
wpid=$!
wait_for "the watch to start" grep -q watching "$T/watch.out"
printf 'v4' | fleet put c/one >/dev/null || fail "put 4"
wait "$wpid" || fail "watch after resync exited $?: $(cat "$T/watch.out")"
assert_eq "$(grep -c ' head ' "$T/watch.out")" "1" "changes seen"
assert_contains "$(cat "$T/watch.out")" "head c/one version=4"
note "ok"
