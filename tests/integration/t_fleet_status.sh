#!/usr/bin/env bash
# secretctl status on real brokers: the fields of FLEET-DESIGN.md in their
# order with true values (etcd's revision, the replica's names, the version),
# the upstream metrics agree; root or a caller with list on ** may ask, any
# other caller gets status 4 (audited as op status); a broker with upstream
# none says so; a vault holding secrets that never followed an etcd is
# refused as a replica at start (exit 1, one line).
source "$TESTLIB"
source "$(dirname "$TESTLIB")/etcd.sh"
etcd_cluster_start
source "$(dirname "$TESTLIB")/fleetlib.sh"

MPORT=$(free_port)
node_setup 1
cat >"$(node_dir 1)/policy.conf" <<'POLICY'
permit all          **       uid=0 host
permit read,list    app/**   uid=1000
permit list         **       uid=1001
POLICY
node_conf 1 "metrics-listen = 127.0.0.1:$MPORT"
fleet_start 2

for name in app/a app/b other/c; do expect_status 0 on 2 put "$name" <<<"$name"; done
expect_status 0 on 2 put app/a <<<"second"
for name in app/b other/c; do wait_value 1 "$name" "$name"; done
wait_value 1 app/a second
rev=$(etcd_revision)
VERSION=$("$CTL" --version | awk '{print $2}')

# check_status I REV SECRETS: node I's status, every field, in order.
check_status() {
  local i=$1 r=$2 s=$3
  expect_status 0 on "$i" status
  python3 - "$OUT" "$r" "$s" "$VERSION" <<'PY' || fail "node $i's status: $(tr '\n' '|' <<<"$OUT")"
import re, sys
out, rev, secrets, version = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
lines = out.splitlines()
keys = [l.split("=", 1)[0] for l in lines]
for l in lines:
    assert re.match(r"^[a-z_]+=", l), "not key=value: %r" % l
order = ["upstream", "connected", "revision", "lag_ms", "secrets", "audit", "version", "state", "problem"]
assert keys[:len(order)] == order, "keys %r, want first %r" % (keys, order)
f = dict(l.split("=", 1) for l in lines)
want = {"upstream": "etcd", "connected": "yes", "revision": rev, "lag_ms": "0",
        "secrets": secrets, "audit": "ok", "version": version, "state": "following", "problem": ""}
bad = ["%s=%r, want %r" % (k, f.get(k), v) for k, v in want.items() if f.get(k) != v]
assert not bad, "; ".join(bad)
PY
}

at_rev_lag0() { [ "$(status_of "$1" revision)" = "$2" ] && [ "$(status_of "$1" lag_ms)" = 0 ]; }
note "status on each node: every field, caught up with etcd at revision $rev"
for n in 1 2; do
  wait_secs 10 "node $n at revision $rev, lag 0" at_rev_lag0 "$n" "$rev"
  check_status "$n" "$rev" 3
done
note "status is audited as op status, in the caller's name"
rec=$(audit_records 1 op=status decision=allow uid=0 | tail -n 1)
[ -n "$rec" ] || fail "no status record on node 1"

note "the metrics agree (they are refreshed about once a second)"
metric_is() { [ "$(metric_of "$MPORT" "$1")" = "$2" ]; }
wait_secs 5 "metric state connected 1" metric_is 'secretd_upstream_state{state="connected"}' 1
wait_secs 5 "metric revision $rev" metric_is secretd_upstream_revision "$rev"
assert_eq "$(metric_of "$MPORT" 'secretd_upstream_state{state="refused"}')" "0" "state refused"
assert_eq "$(metric_of "$MPORT" 'secretd_upstream_state{state="disconnected"}')" "0" "state disconnected"
assert_eq "$(metric_of "$MPORT" 'secretd_upstream_rollbacks_refused_total')" "0" "rollbacks refused"
assert_eq "$(metric_of "$MPORT" 'secretd_upstream_resyncs_total')" "1" "resyncs (the first start's snapshot)"
# FLEET-DESIGN.md said secretd_upstream_lag_ms; the broker follows Prometheus'
# base unit (seconds).
lag_zero() { python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) == 0 else 1)' "$(metric_of "$MPORT" secretd_upstream_lag_seconds)"; }
wait_secs 5 "metric lag 0" lag_zero

note "a caller with list on ** may ask; one with list on app/** only gets 4"
expect_status 0 as_user 1001 1001 "$CTL" -s "$(node_dir 1)/secretd.sock" status
assert_contains "$OUT" "upstream=etcd" "status as uid 1001"
expect_status 4 as_user 1000 1000 "$CTL" -s "$(node_dir 1)/secretd.sock" status
assert_eq "$OUT" "" "status output for a caller who may not ask"
[ -n "$(audit_records 1 op=status decision=deny uid=1000)" ] || fail "no denied status record for uid 1000"
note "uid 1000 still reads what it may"
expect_status 0 as_user 1000 1000 "$CTL" -s "$(node_dir 1)/secretd.sock" get app/b
note "no broker there: 5"
expect_status 5 "$CTL" -s "$T/nothere.sock" status

note "a change on node 1 moves every node's revision and secrets"
expect_status 0 on 1 rm other/c
rev=$(etcd_revision)
for n in 1 2; do
  wait_secs 10 "node $n at revision $rev" status_is "$n" revision "$rev"
  wait_secs 10 "node $n at lag 0" status_is "$n" lag_ms 0
  check_status "$n" "$rev" 2
done

note "a broker with upstream none"
printf 'permit all ** uid=0 host\n' | write_policy
start_broker
expect_status 0 "$CTL" put local/one <<<"1"
expect_status 0 "$CTL" status
python3 - "$OUT" "$VERSION" <<'PY' || fail "status of a broker with upstream none: $(tr '\n' '|' <<<"$OUT")"
import sys
lines = sys.argv[1].splitlines()
keys = [l.split("=", 1)[0] for l in lines]
order = ["upstream", "connected", "revision", "lag_ms", "secrets", "audit", "version", "state", "problem"]
assert keys[:len(order)] == order, "keys %r" % keys
f = dict(l.split("=", 1) for l in lines)
want = {"upstream": "none", "connected": "no", "revision": "0", "lag_ms": "0", "secrets": "1",
        "audit": "ok", "version": sys.argv[2], "state": "none", "problem": ""}
bad = ["%s=%r, want %r" % (k, f.get(k), v) for k, v in want.items() if f.get(k) != v]
assert not bad, "; ".join(bad)
PY
stop_broker

rev=$(etcd_revision)
note "that vault (it holds a secret, never followed etcd) is refused as a replica: exit 1, one line"
rc=0
timeout 20 "$SECRETD" run --socket "$T/replica.sock" --vault "$T/vault.db" --key-file "$T/master.key" \
  --policy "$T/policy.conf" --audit-log "$T/audit.log" --upstream etcd \
  --etcd-endpoints "$ETCD_ENDPOINTS" --cluster-key-file "$T/cluster.key" >"$T/refused.out" 2>"$T/refused.err" || rc=$?
assert_eq "$rc" "1" "exit status of a broker on a non-empty vault with upstream etcd (stderr: $(cat "$T/refused.err"))"
assert_eq "$(grep -c . "$T/refused.err")" "1" "lines on stderr ($(cat "$T/refused.err"))"
note "refused: $(cat "$T/refused.err")"
[ ! -S "$T/replica.sock" ] || fail "the refused broker left a socket"
assert_eq "$(etcd_revision)" "$rev" "etcd's revision after the refused start (nothing written)"
note "ok"
