#!/usr/bin/env bash
# A node's own writes across its resync: while a node reads etcd's whole
# prefix to resynchronise (its watch's revision was compacted while it was
# down), puts made on that node are committed in etcd meanwhile.  Each one,
# once acknowledged, is what that node serves: the snapshot, read before
# the put committed, must not replace it afterwards, not even for the
# moment until the watch brings it back.  (Issue 12 left that window open.)
source "$TESTLIB"
source "$(dirname "$TESTLIB")/etcd.sh"
etcd_cluster_start
source "$(dirname "$TESTLIB")/fleetlib.sh"

for n in 1 2; do
  node_setup "$n"
  # The bulk load below is hundreds of puts at once from one identity.
  node_conf "$n" "rate = 100000" "rate-burst = 100000" "connect-rate = 100000" \
    "connect-burst = 100000"
done
fleet_start 2

BULK=16 # runs of 250 names: a snapshot of 4,000 versions takes a while to read
note "$((BULK * 250)) names through node 1, so that a resync's read lasts"
for k in $(seq 1 "$BULK"); do
  "$SECRETD_BENCH" -s "$(node_dir 1)/secretd.sock" -c 250 -n 250 --put 32 "bulk/b$k" \
    >"$T/bulk.out" 2>"$T/bulk.err" || fail "bulk puts: $(tail -n 2 "$T/bulk.err")"
done
want=$((BULK * 250))
has_all() { [ "$(status_of 2 secrets)" -ge "$want" ]; }
wait_secs 60 "node 2 holding $want names" has_all

note "node 2 down; node 1 writes; etcd compacted past node 2's revision"
node_stop 2
expect_status 0 on 1 put r/w <<<"before"
rev=$(etcd_revision)
etcd_ctl compact "$rev" >/dev/null || fail "etcdctl compact $rev"

note "node 2 started: it resynchronises while it is written to and read without pause"
node_start 2
# Readers: gets of r/w back to back; the audit log says which version each
# one served.
"$SECRETD_BENCH" -s "$(node_dir 2)/secretd.sock" -c 2 -n 40000 r/w >"$T/reads.out" 2>&1 &
READERS=$!
at_exit "kill $READERS 2>/dev/null || true"
ok=0 refused=0 last=before
for i in $(seq 1 100); do
  rc=0
  printf 'w%s' "$i" | on 2 put r/w >/dev/null 2>>"$T/put.err" || rc=$?
  if [ "$rc" -ne 0 ]; then
    # Before the fleet is ready a put is refused (6): not yet a write.
    [ "$rc" -eq 6 ] || fail "put $i on node 2 exited $rc: $(tail -n 1 "$T/put.err")"
    refused=$((refused + 1))
    continue
  fi
  ok=$((ok + 1))
  last=w$i
done
wait "$READERS" || true
note "$ok puts acknowledged on node 2 ($refused refused before it was ready); readers: $(tail -n 1 "$T/reads.out")"
[ "$ok" -ge 50 ] || fail "only $ok of 100 puts on node 2 were acknowledged"
grep -q 'resynchronised' "$(node_dir 2)/broker.log" || fail "node 2 did not resynchronise: $(tail -n 3 "$(node_dir 2)/broker.log")"

note "what node 2 served never went back: each get at least the last acknowledged put"
python3 - "$(node_dir 2)/audit.log" <<'PY' || fail "node 2 served an older version than one it had acknowledged"
import json, sys
acked = 0   # the newest version of r/w a put on this node acknowledged
served = 0  # gets served at or after it
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line)
    if r.get("name") != "r/w" or r.get("decision") != "allow" or "version" not in r:
        continue
    if r["op"] == "put":
        acked = max(acked, r["version"])
    elif r["op"] == "get":
        if r["version"] < acked:
            sys.exit("record %d: a get served version %d after version %d was acknowledged"
                     % (r["seq"], r["version"], acked))
        served += acked > 0
if acked == 0 or served < 100:
    sys.exit("too little to judge: newest put %d, %d gets after the first put" % (acked, served))
print("# %d gets after the first put, none older than the newest acknowledged put" % served)
PY

note "afterwards both nodes agree"
wait_value 1 r/w "$last"
wait_value 2 r/w "$last"
assert_eq "$(latest_version 2 r/w)" "$(latest_version 1 r/w)" "r/w's version on both nodes"
note "ok"
