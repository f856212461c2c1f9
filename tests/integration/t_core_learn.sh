#!/usr/bin/env bash
# What a permission lets a caller learn: one that may write or delete a name
# but not read it learns nothing of its versions nor whether it existed (put
# answers version 0; rm answers 0 for a name there or not), while a reader
# gets the version numbers and "not found".  The audit log keeps the truth.
source "$TESTLIB"

write_policy <<'POLICY'
permit all           **       uid=0 host
permit write,delete  drop/*   uid=1000
POLICY
start_broker

note "write without read: version 0, whether the name existed or not"
expect_status 0 as_user 1000 1000 "$CTL" put drop/a </dev/null
assert_eq "$OUT" "0" "first put by a writer that may not read"
expect_status 0 as_user 1000 1000 "$CTL" put drop/a </dev/null
assert_eq "$OUT" "0" "second put by a writer that may not read"
expect_status 0 "$CTL" get drop/a --version 2
note "a reader sees the versions: the next put is 3"
expect_status 0 "$CTL" put drop/a </dev/null
assert_eq "$OUT" "3"

note "delete without read: the same answer for a name there and a name not there"
expect_status 0 as_user 1000 1000 "$CTL" rm drop/a
present="$OUT|$ERR"
expect_status 0 as_user 1000 1000 "$CTL" rm drop/never-was
assert_eq "$OUT|$ERR" "$present" "rm of a missing name, as a non-reader sees it"
expect_status 3 "$CTL" rm drop/never-was

note "the audit log records the real versions and the missing name"
grep -q '"op":"put","name":"drop/a","version":2,"decision":"allow".*"uid":1000,' "$T/audit.log" ||
  fail "the second put's real version is not recorded"
grep -q '"op":"rm","name":"drop/never-was","decision":"error".*"uid":1000,.*"error":"not found"' "$T/audit.log" ||
  fail "the non-reader's rm of a missing name is not recorded as not found"
stop_broker
echo "PASS $TEST_NAME"
