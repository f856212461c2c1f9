#!/usr/bin/env bash
# Two callers in deep cgroups (real ones, under /sys/fs/cgroup) whose paths
# share their first 1,600 bytes and differ only at the end: each audit
# record holds its caller's whole cgroup path, as whoami reports it, so the
# two never look alike.  The log verifies.
source "$TESTLIB"
source "$(dirname "$TESTLIB")/cgroups.sh"
at_exit remove_cgroups
[ -n "$(cgroup_roots)" ] || { echo "SKIP $TEST_NAME: no writable cgroup hierarchy"; exit 0; }

BASE="/secretd-test-$(random_hex 8)"
SEG=$(printf 'd%.0s' $(seq 1 200))
DEEP="$BASE"
for i in 1 2 3 4 5 6 7 8; do DEEP="$DEEP/$i$SEG"; done
[ "${#DEEP}" -gt 1600 ] || fail "test path too short"

start_broker

# whoami_in CGROUP: run whoami inside it; print the cgroup it reports
whoami_in() {
  expect_status 0 in_cgroup "$1" "$CTL" whoami
  whoami_field cgroup
}

# last_cgroup: the cgroup field of the audit log's last whoami record
last_cgroup() {
  python3 - "$T/audit.log" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
print([r for r in recs if r["op"] == "whoami"][-1]["cgroup"])
PY
}

CG_A=$(whoami_in "$DEEP/a")
assert_eq "${CG_A: -2}" "/a" "whoami's cgroup (A)"
REC_A=$(last_cgroup)
CG_B=$(whoami_in "$DEEP/b")
assert_eq "${CG_B: -2}" "/b" "whoami's cgroup (B)"
REC_B=$(last_cgroup)

assert_eq "$REC_A" "$CG_A" "the audit record's cgroup (A, ${#CG_A} bytes)"
assert_eq "$REC_B" "$CG_B" "the audit record's cgroup (B, ${#CG_B} bytes)"
[ "$REC_A" != "$REC_B" ] || fail "two cgroups look alike in the audit log"
assert_not_contains "$REC_A" "..."
stop_broker
expect_status 0 "$SECRETD" audit-verify --key-file "$T/master.key" --vault "$T/vault.db" "$T/audit.log"

echo "PASS $TEST_NAME"
