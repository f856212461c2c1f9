#!/usr/bin/env bash
# audit-sync always, when an fsync fails during a rotation: the answers whose
# records were in the old file are withheld (6), including one whose own
# fsync, running meanwhile, returned 0 (the kernel reports a writeback error
# once).  fdatasync is faulted through an LD_PRELOAD shim.
source "$TESTLIB"

[ -n "${FAULT_FDATASYNC:-}" ] && [ -f "$FAULT_FDATASYNC" ] || fail "FAULT_FDATASYNC not built"
export FAULT_DIR="$T/fault"
mkdir "$FAULT_DIR"
# ASan wants its runtime first among the preloaded libraries; the shim is
# loaded before it here on purpose.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
LD_PRELOAD="$FAULT_FDATASYNC" start_broker --audit-sync always
printf 'db-value' | "$CTL" put app/db >/dev/null || fail "put"

gets_logged() { [ "$(grep -c '"op":"get"' "$T/audit.log")" -ge "$1" ]; }

note "get A's fsync is held on the worker; get B waits behind it"
touch "$FAULT_DIR/slow"
# (set -e: the status is taken by ||, not left to end the subshell)
(rc=0; "$CTL" get app/db >"$T/a.out" 2>"$T/a.err" || rc=$?; echo "$rc" >"$T/a.rc") &
wait_for "A's fsync starting" test -e "$FAULT_DIR/holding"
(rc=0; "$CTL" get app/db >"$T/b.out" 2>"$T/b.err" || rc=$?; echo "$rc" >"$T/b.rc") &
wait_for "B's record being written" gets_logged 2

note "rotation, and the reopen's fsync of the old file fails"
mv "$T/audit.log" "$T/audit.log.1"
touch "$FAULT_DIR/failnext"
kill -HUP "$BROKER_PID"
wait_for "A's answer" test -s "$T/a.rc"
wait_for "B's answer" test -s "$T/b.rc"
rm -f "$FAULT_DIR/slow"
[ ! -e "$FAULT_DIR/failnext" ] || fail "the reopen did not fsync the old file"
assert_eq "$(cat "$T/a.rc") $(cat "$T/a.out")" "6 " "A, whose fsync ran while another failed"
assert_eq "$(cat "$T/b.rc") $(cat "$T/b.out")" "6 " "B, waiting on the old file"
grep -q "fsync before reopening" "$T/audit.log" || fail "no degraded record naming the failed fsync"

note "afterwards the log is healthy again and answers go out"
expect_status 0 "$CTL" get app/db
assert_eq "$OUT" "db-value"
stop_broker
expect_status 0 "$SECRETD" audit-verify --key-file "$T/master.key" --vault "$T/vault.db" \
  "$T/audit.log.1" "$T/audit.log"
echo "PASS $TEST_NAME"
