#!/usr/bin/env bash
# A node's own writes across its resync: while a node reads etcd's whole
# prefix to resynchronise (its watch's revision was compacted while it was
# down), puts made on that node are committed in etcd meanwhile.  Each one,
# once acknowledged, is what that node serves: the snapshot, read before
# the put committed, must not replace it afterwards, not even for the
# moment until the watch brings it back.  (Issue 12 left that window open.)
# The same for a new node's first resync, whose writes must not fail.
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

# written_during_resync N NAME: node N, just started and resynchronising,
# takes 100 puts of NAME while two readers get it back to back.  Every put
# is acknowledged or, before the fleet is ready, refused with 6 (nothing
# else); some were held while the resync was read (the log says so); and no
# get served a version older than one a put had acknowledged (the audit log
# holds the version each get served).  LAST: the last value acknowledged.
written_during_resync() {
  local n=$1 name=$2 ok=0 refused=0 i rc readers
  "$SECRETD_BENCH" -s "$(node_dir "$n")/secretd.sock" -c 2 -n 40000 "$name" >"$T/reads$n.out" 2>&1 &
  readers=$!
  at_exit "kill $readers 2>/dev/null || true"
  for i in $(seq 1 100); do
    rc=0
    printf 'w%s' "$i" | on "$n" put "$name" >/dev/null 2>>"$T/put$n.err" || rc=$?
    if [ "$rc" -ne 0 ]; then
      [ "$rc" -eq 6 ] || fail "put $i on node $n exited $rc: $(tail -n 1 "$T/put$n.err")"
      refused=$((refused + 1))
      continue
    fi
    ok=$((ok + 1))
    LAST=w$i
  done
  wait "$readers" || true
  note "node $n: $ok puts acknowledged ($refused refused before it was ready); readers: $(tail -n 1 "$T/reads$n.out")"
  [ "$ok" -ge 50 ] || fail "only $ok of 100 puts on node $n were acknowledged"
  grep -q 'resynchronised' "$(node_dir "$n")/broker.log" ||
    fail "node $n did not resynchronise: $(tail -n 3 "$(node_dir "$n")/broker.log")"
  # Else nothing here was tested: the resync ended before the first put.
  grep -q 'writes of this node, committed in etcd while the resync read it' "$(node_dir "$n")/broker.log" ||
    fail "node $n held no write during its resync: $(grep upstream "$(node_dir "$n")/broker.log" | tail -n 3)"
  python3 - "$(node_dir "$n")/audit.log" "$name" <<'PY' || fail "node $n served an older version than one it had acknowledged"
import json, sys
acked = 0   # the newest version of the name a put on this node acknowledged
served = 0  # gets served at or after it
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line)
    if r.get("name") != sys.argv[2] or r.get("decision") != "allow" or "version" not in r:
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
}

note "node 2 started: it resynchronises while it is written to and read without pause"
node_start 2
written_during_resync 2 r/w

note "afterwards both nodes agree"
wait_value 1 r/w "$LAST"
wait_value 2 r/w "$LAST"
assert_eq "$(latest_version 2 r/w)" "$(latest_version 1 r/w)" "r/w's version on both nodes"

note "a new node's first resync, written to the same way (its writes must not fail)"
node_setup 3
node_conf 3 "rate = 100000" "rate-burst = 100000" "connect-rate = 100000" "connect-burst = 100000"
node_start 3
written_during_resync 3 r/new
wait_value 1 r/new "$LAST"
wait_value 3 r/new "$LAST"
note "node 3 restarted: it follows from the state its first resync left, no resync"
node_stop 3
node_start 3
wait_following 3 20
[ "$(grep -c 'resynchronised' "$(node_dir 3)/broker.log")" -eq 1 ] ||
  fail "node 3 resynchronised again at its restart: $(grep upstream "$(node_dir 3)/broker.log" | tail -n 4)"
assert_eq "$(on 3 get r/new)" "$LAST" "r/new on node 3 after its restart"
note "ok"
