#!/usr/bin/env bash
# secretctl inject --watch, the sidecar: kubelet's layout (..data -> hidden
# timestamped directory, FILE -> ..data/FILE); every change switches the
# whole set with one rename while readers loop over the files and never see
# an empty or partial file; --on-change and --signal fire once per applied
# change; old directories do not pile up; a failed fetch keeps the set and
# retries (said on stderr); the broker restarting is survived; SIGTERM exits
# 0 leaving the last complete set.
source "$TESTLIB"
source "$(dirname "$TESTLIB")/watchlib.sh"

[ "$(id -u)" = 0 ] || fail "needs root"
D="$T/secrets"
mkdir -p "$D"
mount -t tmpfs -o size=8m,mode=0755 tmpfs "$D" || fail "cannot mount a tmpfs"
at_exit "umount '$D'"

note "usage errors exit 2"
U=("$CTL" -s "$T/nothere.sock" inject --dir "$D")
expect_status 2 "${U[@]}" --on-change true app/one
expect_status 2 "${U[@]}" --watch --signal HUP app/one
expect_status 2 "${U[@]}" --watch --pid-file "$T/pid" app/one
expect_status 2 "${U[@]}" --watch --signal NOPE --pid-file "$T/pid" app/one
expect_status 2 "${U[@]}" --watch app/one=..data
assert_eq "$(ls -A "$D")" "" "nothing written by usage errors"

start_broker
require_watch

# value GEN FILE: exactly len bytes, len varying with GEN: a fixed-width
# header that says len, a filler, a trailer; checkable when read.
value() {
  local len=$((100 + ($1 * 997 + ${#2} * 31) % 6000)) pad
  printf -v pad '%*s' $((len - 32 - 5)) ''
  printf 'gen=%06d file=%-5s len=%05d\n%s\nend\n' "$1" "$2" "$len" "${pad// /x}"
}
put_gen() { value "$1" "$2" | "$CTL" put "app/$2" >/dev/null || fail "put app/$2"; }
for f in one two three; do put_gen 0 "$f"; done

"$CTL" inject --dir "$D" --watch --on-change "echo change >>'$T/changes'" \
  app/one app/two app/three=three 2>"$T/sidecar.err" &
SIDECAR=$!
at_exit "kill $SIDECAR 2>/dev/null"
wait_for "the first set" test -L "$D/..data"

note "kubelet's layout"
DATA=$(readlink "$D/..data")
[[ "$DATA" =~ ^\.\.[0-9]{4}_[0-9]{2}_[0-9]{2}_[0-9]{2}_[0-9]{2}_[0-9]{2}\.[0-9]+$ ]] ||
  fail "..data points at [$DATA], not a timestamped directory"
[ -d "$D/$DATA" ] && [ ! -L "$D/$DATA" ] || fail "$DATA is not a directory"
assert_eq "$(readlink "$D/app_one")" "..data/app_one"
assert_eq "$(readlink "$D/three")" "..data/three"
assert_eq "$(ls -A "$D" | grep -v '^\.\.[0-9]' | tr '\n' ' ')" "..data app_one app_two three " "DIR"
assert_eq "$(stat -L -c '%a %u' "$D/app_one")" "400 0" "mode and owner through the link"
value 0 one | cmp - "$D/app_one" || fail "app_one's first value"
[ ! -e "$T/changes" ] || fail "--on-change ran for the first set"

# lines_are FILE N: FILE has N lines now (evaluated at each poll).
lines_are() { [ "$(wc -l 2>/dev/null <"$1")" = "$2" ]; }
has_gen() { head -c 31 "$D/$2" 2>/dev/null | grep -qx "$(printf 'gen=%06d file=%-5s len=[0-9]*' "$1" "$3")"; }
note "each change: one switch, one --on-change, the new value"
for i in 1 2 3 4 5; do
  put_gen "$i" one
  wait_for "gen $i of app_one" has_gen "$i" app_one one
  wait_for "on-change $i" lines_are "$T/changes" "$i"
done
assert_eq "$(wc -l <"$T/changes")" "5" "--on-change once per change"
# The replaced set stays a second for readers already on their way into it.
one_setdir() { [ "$(ls -A "$D" | grep -c '^\.\.[0-9]')" = 1 ]; }
wait_for "old set directories removed" one_setdir

note "churn: readers loop over the files while the set is switched many times"
cat >"$T/reader.sh" <<'READER'
#!/bin/bash
# Read every file until told to stop; each must be whole: the header, the
# length it says, the trailer.  Prints the number of reads; a bad one ends
# the reader with status 1.  Builtins only, so that it reads often.
dir=$1 stop=$2
n=0
re='^gen=[0-9]{6} file=[a-z ]{5} len=([0-9]{5})'$'\n''x*'$'\n''end$'
while [ ! -e "$stop" ]; do
  for f in app_one app_two three; do
    c=$(<"$dir/$f") || { echo "unreadable $f" >&2; exit 1; }
    # $(<) drops the value's last newline
    if ! [[ $c =~ $re ]] || [ $((10#${BASH_REMATCH[1]})) -ne $((${#c} + 1)) ]; then
      echo "empty or partial $f: ${#c} bytes: ${c:0:40}" >&2
      exit 1
    fi
    n=$((n + 1))
  done
done
echo "$n"
READER
chmod 0755 "$T/reader.sh"
"$T/reader.sh" "$D" "$T/stop" >"$T/reads1" 2>"$T/reader1.err" &
R1=$!
"$T/reader.sh" "$D" "$T/stop" >"$T/reads2" 2>"$T/reader2.err" &
R2=$!
for i in $(seq 6 105); do
  put_gen "$i" one
  put_gen "$i" two
  [ $((i % 10)) -eq 0 ] && put_gen "$i" three
done
wait_for "the last set" has_gen 105 app_two two
touch "$T/stop"
wait "$R1" || fail "reader 1 saw a bad file: $(cat "$T/reader1.err")"
wait "$R2" || fail "reader 2 saw a bad file: $(cat "$T/reader2.err")"
note "reads: $(cat "$T/reads1") and $(cat "$T/reads2"), switches: $(wc -l <"$T/changes")"
[ "$(cat "$T/reads1")" -gt 50 ] || fail "reader 1 read too little to mean anything"
wait_for "set directories after churn down to one" one_setdir
assert_eq "$(ls -A "$D" | grep -c 'secretctl\|_tmp')" "0" "temporary names after churn"
CHANGES=$(wc -l <"$T/changes")
[ "$CHANGES" -le 5 ] && fail "no switch during the churn"
[ "$CHANGES" -le $((5 + 210)) ] || fail "more on-change runs ($CHANGES) than changes"

note "a fetch that fails keeps the set, says so, and is retried"
before=$(cat "$D/app_two")
"$CTL" rm app/two >/dev/null
wait_for "the failure on stderr" grep -q "keeping the current set" "$T/sidecar.err"
assert_eq "$(cat "$D/app_two")" "$before" "app_two after its secret was removed"
put_gen 300 two
wait_long 10 "the set after app/two came back" has_gen 300 app_two two

note "the broker restarts: the sidecar subscribes again"
stop_broker
start_broker
put_gen 301 one
wait_long 20 "the set after the broker's restart" has_gen 301 app_one one

note "SIGTERM: exit 0, the last complete set in place"
kill -TERM "$SIDECAR"
rc=0
wait "$SIDECAR" || rc=$?
assert_eq "$rc" "0" "status after SIGTERM"
value 301 one | cmp - "$D/app_one" || fail "app_one after SIGTERM"
value 300 two | cmp - "$D/app_two" || fail "app_two after SIGTERM"

note "--signal SIG --pid-file FILE: the process named in FILE, once per change"
cat >"$T/app.sh" <<'APP'
#!/bin/sh
trap 'echo hup >>"$1/hups"' HUP
echo $$ >"$1/app.pid"
while :; do sleep 0.05; done
APP
chmod 0755 "$T/app.sh"
"$T/app.sh" "$T" &
APP=$!
at_exit "kill $APP"
wait_for "the app's pid file" test -s "$T/app.pid"
"$CTL" inject --dir "$D" --watch --signal HUP --pid-file "$T/app.pid" app/one 2>"$T/sidecar2.err" &
SIDECAR=$!
at_exit "kill $SIDECAR 2>/dev/null"
wait_for "the set" has_gen 301 app_one one
for i in 401 402 403; do
  put_gen "$i" one
  wait_for "gen $i" has_gen "$i" app_one one
  wait_for "HUP $((i - 400))" lines_are "$T/hups" "$((i - 400))"
done
note "a pid file naming a process that is gone: said, nothing signalled"
echo 4194000 >"$T/app.pid"
put_gen 404 one
wait_for "the message" grep -q "process 4194000" "$T/sidecar2.err"
assert_eq "$(wc -l <"$T/hups")" "3" "HUPs"
kill -TERM "$SIDECAR"
wait "$SIDECAR" || fail "sidecar status after SIGTERM"

stop_broker
echo "PASS $TEST_NAME"
