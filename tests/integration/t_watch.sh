#!/usr/bin/env bash
# secretctl watch: the state at once (readable names only, sorted), then a
# line per put and rm as it happens, never a name the caller may not read,
# a right taken away by SIGHUP stops that name's lines; exit 0 on SIGTERM or
# SIGINT, 5 when the broker goes; one audit record for the subscription.
source "$TESTLIB"
source "$(dirname "$TESTLIB")/watchlib.sh"

write_policy <<'POLICY'
permit all   **          uid=0 host
permit read  app/**      uid=1000
deny   read  app/secret  any
POLICY
start_broker

note "usage errors exit 2 before connecting"
U=("$CTL" -s "$T/nothere.sock" watch)
expect_status 2 "${U[@]}"
expect_status 2 "${U[@]}" 'a//b'
expect_status 2 "${U[@]}" 'a b'
expect_status 2 "${U[@]}" '../x'
expect_status 2 "${U[@]}" $(seq -f 'p%g' 1 65)
expect_status 2 "${U[@]}" --bogus x
note "an unreachable broker: 5"
expect_status 5 "${U[@]}" 'app/*'

require_watch

put() { printf '%s' "$2" | "$CTL" put "$1" >/dev/null || fail "put $1"; }
put app/a one
put app/b one
put app/b two
put app/secret hidden
put other/x one

# start_watch OUT PATTERN...: watch as uid 1000 in the background into OUT.
start_watch() {
  local out=$1
  shift
  # setpriv itself, not the as_user function: $! must be secretctl (a
  # function in the background is a subshell, which SIGTERM would kill).
  setpriv --reuid 1000 --regid 1000 --clear-groups -- "$CTL" watch "$@" >"$out" 2>"$out.err" &
  WATCHER=$!
}
has_line() { grep -qx -- "$2" "$1"; }
lines() { tr '\n' '|' <"$1"; }

note "the state at once: readable matches only, sorted"
start_watch "$T/w1" 'app/*'
wait_for "the initial state" has_line "$T/w1" "app/b 2"
assert_eq "$(lines "$T/w1")" "app/a 1|app/b 2|" "initial state"

note "put, a new name, rm: one line each, as they happen"
put app/a changed
wait_for "app/a 2" has_line "$T/w1" "app/a 2"
put app/c new
wait_for "app/c 1" has_line "$T/w1" "app/c 1"
"$CTL" rm app/b >/dev/null
wait_for "app/b 0" has_line "$T/w1" "app/b 0"
note "a name the caller may not read, or outside the pattern, is never shown"
put app/secret again
put other/x two
put app/c sync
wait_for "app/c 2" has_line "$T/w1" "app/c 2"
assert_eq "$(lines "$T/w1")" "app/a 1|app/b 2|app/a 2|app/c 1|app/b 0|app/c 2|" "every line, in order"
assert_not_contains "$(cat "$T/w1")" "secret" "a denied name in watch output"
assert_not_contains "$(cat "$T/w1")" "changed" "a value in watch output"

note "SIGTERM: exit 0"
kill -TERM "$WATCHER"
rc=0
wait "$WATCHER" || rc=$?
assert_eq "$rc" "0" "status after SIGTERM"
note "one audit record for the subscription, op watch"
assert_eq "$(grep -cF '"op":"watch","name":"app/*"' "$T/audit.log")" "1" "watch records"

note "a right taken away by a policy reload stops that name's lines"
start_watch "$T/w2" 'app/**'
wait_for "the initial state" has_line "$T/w2" "app/c 2"
write_policy <<'POLICY'
permit all   **          uid=0 host
permit read  app/**      uid=1000
deny   read  app/secret  any
deny   read  app/a       uid=1000
POLICY
kill -HUP "$BROKER_PID"
for _ in $(seq 100); do
  grep -q 'policy' "$T/broker.log" && break
  sleep 0.05
done
# the reload is in effect once a get of app/a is refused
wait_for "the reload" bash -c "! setpriv --reuid 1000 --regid 1000 --clear-groups -- '$CTL' get app/a >/dev/null 2>&1"
put app/a after-reload
put app/c after-reload
wait_for "app/c 3" has_line "$T/w2" "app/c 3"
assert_not_contains "$(cat "$T/w2")" "app/a 3" "an event for a name no longer readable"

note "SIGINT: exit 0"
kill -INT "$WATCHER"
rc=0
wait "$WATCHER" || rc=$?
assert_eq "$rc" "0" "status after SIGINT"

note "the broker goes away: 5"
start_watch "$T/w3" 'app/c'
wait_for "the initial state" has_line "$T/w3" "app/c 3"
stop_broker
rc=0
wait "$WATCHER" || rc=$?
assert_eq "$rc" "5" "status when the broker goes away"
echo "PASS $TEST_NAME"
