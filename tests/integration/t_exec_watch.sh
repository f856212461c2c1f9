#!/usr/bin/env bash
# secretctl exec --watch: on a change CMD is restarted with the new values
# (SIGTERM, SIGKILL after 10 s if it stays, the old child gone before the new
# one starts), or with --signal the --dir files are switched as one and CMD
# gets the signal; a failed fetch leaves CMD running as it is.
source "$TESTLIB"
source "$(dirname "$TESTLIB")/watchlib.sh"

[ "$(id -u)" = 0 ] || fail "needs root"
D="$T/files"
mkdir -p "$D"
mount -t tmpfs -o size=1m,mode=0755 tmpfs "$D" || fail "cannot mount a tmpfs"
at_exit "umount '$D'"
start_broker
require_watch

put() { printf '%s' "$2" | "$CTL" put "$1" >/dev/null || fail "put $1"; }
put app/one v1
put app/two w1

cat >"$T/app.sh" <<'APP'
#!/bin/bash
# log "start PID A=..." at start; on TERM log "term PID" and exit, unless
# told to ignore it.
log=$1
echo "start $$ A=$A F=$(cat "$2" 2>/dev/null)" >>"$log"
if [ "${3:-}" = ignore ]; then trap '' TERM; else trap 'echo "term $$" >>"$log"; exit 0' TERM; fi
trap 'echo "hup $$ F=$(cat "$2")" >>"$log"' HUP
while :; do sleep 0.05; done
APP
chmod 0755 "$T/app.sh"
starts() { grep -c '^start' "$1" 2>/dev/null || true; }
starts_are() { [ "$(starts "$1")" = "$2" ]; }
pid_of_start() { grep '^start' "$1" | sed -n "${2}p" | cut -d ' ' -f 2; }

note "--watch (--restart): a change stops CMD and runs it again with the new values"
"$CTL" exec --env A=app/one --dir "$D" app/two --watch -- "$T/app.sh" "$T/log1" "$D/app_two" \
  2>"$T/exec1.err" &
SUP=$!
at_exit "kill -KILL $SUP 2>/dev/null"
wait_for "the first start" starts_are "$T/log1" 1
assert_contains "$(cat "$T/log1")" "A=v1 F=w1"
OLD=$(pid_of_start "$T/log1" 1)
put app/one v2
wait_for "the restart" starts_are "$T/log1" 2
assert_eq "$(sed -n 2p "$T/log1")" "term $OLD" "the old child stopped before the new one started"
assert_contains "$(sed -n 3p "$T/log1")" "A=v2 F=w1" "new values"
kill -0 "$OLD" 2>/dev/null && fail "the old child is still there"
put app/two w2
wait_for "the second restart" starts_are "$T/log1" 3
assert_contains "$(tail -n 1 "$T/log1")" "A=v2 F=w2" "a file's change restarts too"
assert_eq "$(readlink "$D/app_two")" "..data/app_two" "files in kubelet's layout with --watch"

note "a failed fetch leaves CMD running"
CUR=$(pid_of_start "$T/log1" 3)
"$CTL" rm app/one >/dev/null
wait_for "the failure on stderr" grep -q "keeping the current set" "$T/exec1.err"
kill -0 "$CUR" || fail "CMD stopped although the fetch failed"
assert_eq "$(starts "$T/log1")" "3" "no restart on a failed fetch"
put app/one v3
wait_long 10 "the restart after app/one came back" starts_are "$T/log1" 4
kill -TERM "$SUP"
rc=0
wait "$SUP" || rc=$?
assert_eq "$rc" "0" "CMD's status after the TERM passed on"

note "a CMD that ignores SIGTERM is killed after 10 s, then run again"
"$CTL" exec --env A=app/one --watch -- "$T/app.sh" "$T/log2" /dev/null ignore 2>"$T/exec2.err" &
SUP=$!
at_exit "kill -KILL $SUP 2>/dev/null"
wait_for "the first start" starts_are "$T/log2" 1
OLD=$(pid_of_start "$T/log2" 1)
T0=$(date +%s)
put app/one v4
wait_long 20 "the restart" starts_are "$T/log2" 2
ELAPSED=$(($(date +%s) - T0))
[ "$ELAPSED" -ge 9 ] || fail "restarted after $ELAPSED s, before the 10 s grace"
kill -0 "$OLD" 2>/dev/null && fail "the old child survived"
assert_contains "$(tail -n 1 "$T/log2")" "A=v4"
kill -KILL "$SUP"
wait "$SUP" 2>/dev/null || true
# Its child ignores SIGTERM, the signal a dying supervisor leaves it
# (PR_SET_PDEATHSIG): it would outlive the test and hold ctest's output.
kill -KILL "$(pid_of_start "$T/log2" 2)" 2>/dev/null || true

note "--watch --signal HUP: the files switched, CMD signalled, not restarted"
"$CTL" exec --dir "$D" app/two --watch --signal HUP -- "$T/app.sh" "$T/log3" "$D/app_two" \
  2>"$T/exec3.err" &
SUP=$!
at_exit "kill -KILL $SUP 2>/dev/null"
wait_for "the start" starts_are "$T/log3" 1
PID=$(pid_of_start "$T/log3" 1)
put app/two w3
wait_for "the HUP" grep -q "^hup $PID F=w3$" "$T/log3"
assert_eq "$(starts "$T/log3")" "1" "not restarted"
kill -TERM "$SUP"
wait "$SUP" || fail "status after TERM"
stop_broker
echo "PASS $TEST_NAME"
