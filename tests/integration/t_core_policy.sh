#!/usr/bin/env bash
# Other users' requests decided by policy (uid, gid, supplementary groups),
# "denied" whether or not the name exists, SIGHUP reloads atomically.
source "$TESTLIB"
write_policy <<'POLICY'
# admin
permit all   **                 uid=0 host
permit read  app/shared/*       uid=1000
deny   read  app/shared/root    uid=1000
permit read,list  team/**       gid=2000
permit list  app/shared/*       uid=1000
POLICY
start_broker

for n in app/shared/a app/shared/root app/private team/x/y; do
  printf 'value-of-%s' "$n" | "$CTL" put "$n" >/dev/null
done

note "uid 1000 reads what a rule permits"
expect_status 0 as_user 1000 1000 "$CTL" get app/shared/a
assert_eq "$OUT" "value-of-app/shared/a"
note "a later deny wins"
expect_status 4 as_user 1000 1000 "$CTL" get app/shared/root
note "no matching rule: denied"
expect_status 4 as_user 1000 1000 "$CTL" get app/private
note "denied whether or not the name exists; not found only to a reader"
expect_status 4 as_user 1000 1000 "$CTL" get app/nothere
expect_status 3 as_user 1000 1000 "$CTL" get app/shared/nothere
note "writes and deletes need their own permission"
expect_status 4 as_user 1000 1000 "$CTL" put app/shared/a </dev/null
expect_status 4 as_user 1000 1000 "$CTL" rm app/shared/a
expect_status 0 "$CTL" get app/shared/a
note "list shows only names list is permitted on"
expect_status 0 as_user 1000 1000 "$CTL" list
assert_eq "$OUT" "$(printf 'app/shared/a\napp/shared/root')"

note "gid= matches a supplementary group"
expect_status 4 setpriv --reuid 1500 --regid 1500 --clear-groups -- "$CTL" get team/x/y
expect_status 0 setpriv --reuid 1500 --regid 1500 --groups 2000 -- "$CTL" get team/x/y
expect_status 0 setpriv --reuid 1500 --regid 2000 --clear-groups -- "$CTL" get team/x/y

note "SIGHUP with a broken policy keeps the old one"
printf 'permit all ** uid=0 host\npermit read app/shared/* uid=1000 bogus\n' >"$T/policy.conf"
kill -HUP "$BROKER_PID"
# the reload runs asynchronously: a fixed sleep races it
wait_for "a logged rejection" grep -q "policy reload rejected" "$T/broker.log"
grep -q "policy reload rejected.*policy.conf:2:" "$T/broker.log" || fail "rejection lacks the line"
expect_status 0 as_user 1000 1000 "$CTL" get app/shared/a

note "SIGHUP with a good policy takes effect"
printf 'permit all ** uid=0 host\n' >"$T/policy.conf"
kill -HUP "$BROKER_PID"
wait_for "a logged reload" grep -q "policy reloaded" "$T/broker.log"
expect_status 4 as_user 1000 1000 "$CTL" get app/shared/a
stop_broker
echo "PASS $TEST_NAME"
