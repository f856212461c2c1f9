#!/usr/bin/env bash
# Three real brokers with `upstream = etcd` on one real etcd cluster: a put on
# one node is served by the others with the same value and version, an rm
# too; a watcher on another node sees the change; the audit logs say who did
# it (put with the caller on the writing node, sync with etcd's revision on
# the others); concurrent puts of one name from every node make one version
# sequence; etcd holds no value, only names.
source "$TESTLIB"
source "$(dirname "$TESTLIB")/etcd.sh"
etcd_cluster_start
source "$(dirname "$TESTLIB")/fleetlib.sh"
fleet_start 3

CANARY="FLEET-CANARY-$RANDOM$RANDOM-quokka"

note "a watcher on node 2 before the change"
SECRETD_SOCKET="$(node_dir 2)/secretd.sock" "$CTL" watch 'app/*' >"$T/watch2" 2>"$T/watch2.err" &
WATCHER=$!
at_exit "kill -TERM $WATCHER 2>/dev/null || true"
# The state at once: nothing yet matches, so wait until the subscription is
# recorded on node 2 (a record is written before the answer is sent).
watch_on() { [ -n "$(audit_records 2 op=watch name='app/*')" ]; }
wait_for "the watch on node 2" watch_on

note "put on node 1: node 1 answers version 1"
printf '%s-one' "$CANARY" >"$T/v1"
expect_status 0 on 1 put app/db --from-file "$T/v1"
assert_eq "$OUT" "1" "version from node 1"
note "nodes 2 and 3 serve the same value, version 1"
for n in 2 3; do
  wait_value "$n" app/db "$CANARY-one"
  assert_eq "$(latest_version "$n" app/db)" "1" "version on node $n"
done
has_line() { grep -qx -- "$2" "$1"; }
wait_for "app/db 1 in node 2's watch" has_line "$T/watch2" "app/db 1"
note "a second put on node 1: version 2 everywhere, version 1 still readable"
printf '%s-two' "$CANARY" | on 1 put app/db >"$T/out" || fail "second put on node 1"
assert_eq "$(cat "$T/out")" "2" "second version"
for n in 1 2 3; do
  wait_value "$n" app/db "$CANARY-two"
  assert_eq "$(latest_version "$n" app/db)" "2" "version on node $n"
  assert_eq "$(on "$n" get app/db --version 1)" "$CANARY-one" "version 1 on node $n"
  expect_status 3 on "$n" get app/db --version 3
done
wait_for "app/db 2 in node 2's watch" has_line "$T/watch2" "app/db 2"
note "a put on node 3 continues the same sequence"
expect_status 0 on 3 put app/db <<<"from-three"
assert_eq "$OUT" "3" "version from node 3"
for n in 1 2; do wait_value "$n" app/db "from-three"; done
assert_eq "$(latest_version 1 app/db)" "3" "version on node 1"

note "list on node 2 shows the name"
expect_status 0 on 2 list 'app/*'
assert_eq "$OUT" "app/db" "list on node 2"

note "the watcher on node 2 printed each change made elsewhere"
wait_for "app/db 3 in node 2's watch" has_line "$T/watch2" "app/db 3"
assert_eq "$(tr '\n' '|' <"$T/watch2")" "app/db 1|app/db 2|app/db 3|" "watch lines on node 2"

note "rm on node 2: gone on every node, the watcher sees version 0"
expect_status 0 on 2 rm app/db
for n in 1 3; do wait_gone "$n" app/db; done
expect_status 3 on 2 get app/db
wait_for "app/db 0 in node 2's watch" has_line "$T/watch2" "app/db 0"
note "a put after rm continues the sequence (no version reused)"
expect_status 0 on 1 put app/db <<<"back"
assert_eq "$OUT" "4" "version after rm"
wait_value 3 app/db back
kill -TERM "$WATCHER"
wait "$WATCHER" || fail "watch on node 2 exited $? ($(cat "$T/watch2.err"))"

note "audit: node 1 has the put with the caller, no sync record of its own put"
rec=$(audit_records 1 op=put name=app/db version=1)
[ -n "$rec" ] || fail "no put record of app/db version 1 on node 1"
python3 - "$rec" <<'PY' || fail "node 1's put record: $rec"
import json, sys
r = json.loads(sys.argv[1])
assert r["decision"] == "allow" and r["uid"] == 0 and r["gid"] == 0, r
assert isinstance(r["pid"], int) and r["pid"] > 0, r
PY
for v in 1 2 4; do
  assert_eq "$(audit_records 1 op=sync name=app/db version=$v)" "" "a sync record for node 1's own put of version $v"
done
note "node 2 has one sync record each for versions 1 and 2 (with etcd's revision), none for its own rm"
for v in 1 2 3; do
  [ "$(audit_records 2 op=sync name=app/db version=$v | grep -c .)" -eq 1 ] \
    || fail "node 2: sync records for app/db version $v: $(audit_records 2 op=sync name=app/db)"
done
python3 - "$(audit_records 2 op=sync name=app/db)" "$(audit_records 2 op=watch)" "${NODE_PID[2]}" <<'PY' || fail "node 2's sync records"
import json, sys
recs = [json.loads(l) for l in sys.argv[1].splitlines()]
watch = json.loads(sys.argv[2].splitlines()[0])
broker = int(sys.argv[3])
revs = []
for r in recs:
    assert r["decision"] == "allow", r
    assert isinstance(r["revision"], int) and r["revision"] > 0, r
    assert isinstance(r["version"], int), r
    assert "error" not in r, r
    revs.append(r["revision"])
assert revs == sorted(revs) and len(set(revs)) == len(revs), "revisions not increasing: %r" % revs
# The broker's own identity, never the watcher's (who did not make the change).
assert all(r["pid"] != watch["pid"] for r in recs), "a sync record with the watcher's pid"
assert all(r["pid"] == broker and r["uid"] == 0 for r in recs), "a sync record not in the broker's name"
PY
[ -z "$(audit_records 2 op=sync name=app/db version=0)" ] || fail "node 2 has a sync record of its own rm"
note "node 3 has the rm as a sync record of version 0"
[ -n "$(audit_records 3 op=sync name=app/db version=0)" ] || fail "node 3 has no sync record of the rm"
[ -n "$(audit_records 3 op=sync name=app/db version=4)" ] || fail "node 3 has no sync record of version 4"

note "concurrent puts of one name: 3 nodes x 30 in parallel"
racer() {
  local n=$1 k v
  for k in $(seq 1 30); do
    if v=$(printf 'race-%s-%s' "$n" "$k" | on "$n" put race/one); then
      echo "ok $v race-$n-$k"
    else
      echo "fail $? $k"
    fi
  done
}
pids=()
for n in 1 2 3; do
  racer "$n" >"$T/race.$n" 2>"$T/race.$n.err" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a racer failed"; done
! grep -q '^fail' "$T"/race.? || fail "puts failed: $(grep -h '^fail' "$T"/race.? | head -3); $(head -3 "$T"/race.?.err)"
got=$(cat "$T"/race.? | awk '{print $2}' | sort -n | tr '\n' ' ')
assert_eq "$got" "$(seq 1 90 | tr '\n' ' ')" "versions acknowledged to the three nodes"
for n in 1 2 3; do
  seqn=$(awk '{print $2}' "$T/race.$n" | tr '\n' ' ')
  [ "$seqn" = "$(awk '{print $2}' "$T/race.$n" | sort -n | tr '\n' ' ')" ] \
    || fail "node $n's own versions not increasing: $seqn"
done
last=$(awk '$2 == 90 {print $3}' "$T"/race.?)
[ -n "$last" ] || fail "no put answered 90"
note "each node's audit: a put record for each of its own 30, a sync record for each of the other 60"
for n in 1 2 3; do
  python3 - "$(node_dir "$n")/audit.log" "$T/race.$n" <<'PY' || fail "node $n's audit records of race/one"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8").read().splitlines()]
mine = sorted(int(l.split()[1]) for l in open(sys.argv[2]).read().splitlines())
puts = sorted(r["version"] for r in recs if r["op"] == "put" and r.get("name") == "race/one")
syncs = sorted(r["version"] for r in recs if r["op"] == "sync" and r.get("name") == "race/one")
assert puts == mine, "put records %r, own versions %r" % (puts, mine)
dup = sorted(set(puts) & set(syncs))
assert not dup, "sync records for this node's own puts: versions %r" % dup
assert len(syncs) == len(set(syncs)), "a version synced twice: %r" % syncs
assert sorted(puts + syncs) == list(range(1, 91)), "versions recorded: %r" % sorted(puts + syncs)
PY
done
note "every node ends with version 90 = $last"
for n in 1 2 3; do
  wait_value "$n" race/one "$last"
  assert_eq "$(latest_version "$n" race/one)" "90" "latest version on node $n"
done
note "and each kept version holds the value that was acknowledged with it (keep-versions 10)"
for n in 1 2 3; do
  for v in 81 85 90; do
    want=$(awk -v v="$v" '$2 == v {print $3}' "$T"/race.?)
    assert_eq "$(on "$n" get race/one --version "$v")" "$want" "node $n version $v"
  done
done

note "etcd holds no value: not in its answers, not in its data folders"
printf '%s-zeta' "$CANARY" | on 2 put canary/secret >/dev/null || fail "put canary"
wait_value 1 canary/secret "$CANARY-zeta"
etcd_ctl get --prefix /secretd/ >"$T/dump.txt" || fail "etcdctl get --prefix"
etcd_ctl get --from-key '' >"$T/dump-all.txt" || fail "etcdctl get everything"
! grep -qaF "$CANARY" "$T/dump.txt" "$T/dump-all.txt" || fail "plaintext in etcdctl get output"
etcd_ctl get --prefix /secretd/ -w json >"$T/dump.json" || fail "etcdctl get -w json"
python3 - "$T/dump.json" "$CANARY" <<'PY' || fail "plaintext (or its base64) in etcd's answers"
import base64, json, sys
d = json.load(open(sys.argv[1]))
canary = sys.argv[2].encode()
for kv in d.get("kvs", []):
    for f in ("key", "value"):
        if canary in base64.b64decode(kv.get(f, "")):
            sys.exit(1)
PY
! grep -rqaF "$CANARY" "$T"/etcd-m1 "$T"/etcd-m2 "$T"/etcd-m3 || fail "plaintext in etcd's data folders"
note "names are there (so the checks above are not vacuous)"
grep -qaF "canary/secret" "$T/dump.txt" || fail "the name is not in etcdctl's output"
grep -rqaF "canary/secret" "$T"/etcd-m1 || fail "the name is not in etcd's data folder"
note "nor in any broker's log"
! grep -qaF "$CANARY" "$T"/n?/broker.log || fail "plaintext in a broker log"
note "ok"
