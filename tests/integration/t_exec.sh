#!/usr/bin/env bash
# secretctl exec against the real broker: every secret fetched first (all or
# nothing, the status says why), --env variables and --dir files given to
# CMD, CMD's exit status returned (128+N for a signal), the supervisor's
# signals passed on, the secret in CMD's environment only (never in
# secretctl's own argv or environment), CMD gone when secretctl is killed.
source "$TESTLIB"

[ "$(id -u)" = 0 ] || fail "needs root"
D="$T/files"
mkdir -p "$D"
mount -t tmpfs -o size=1m,mode=0755 tmpfs "$D" || fail "cannot mount a tmpfs"
at_exit "umount '$D'"

write_policy <<'POLICY'
permit all   **          uid=0 host
permit read  app/**      uid=1000
deny   read  app/secret  any
POLICY
start_broker
printf 's3cret-pass' | "$CTL" put db/password >/dev/null
printf 'tok with spaces\nand a newline' | "$CTL" put app/token >/dev/null
printf 'hidden' | "$CTL" put app/secret >/dev/null
printf 'a\000b' | "$CTL" put app/nul >/dev/null

note "--env: the value in CMD's environment, byte-exact; CMD's status is ours"
expect_status 0 "$CTL" exec --env DB_PASSWORD=db/password -- sh -c 'printf %s "$DB_PASSWORD"'
assert_eq "$OUT" "s3cret-pass"
expect_status 0 "$CTL" exec --env TOKEN=app/token -- sh -c 'printf %s "$TOKEN" | od -An -c | tr -s " "'
assert_contains "$OUT" '\n' "newline kept in the variable"
expect_status 7 "$CTL" exec --env DB=db/password -- sh -c 'exit 7'
expect_status 0 "$CTL" exec --env=DB=db/password -- true
note "an existing variable of that name is replaced, others are kept"
expect_status 0 env DB=old KEEP=yes "$CTL" exec --env DB=db/password -- sh -c 'echo "$DB $KEEP"; env | grep -c "^DB="'
assert_eq "$OUT" "$(printf 's3cret-pass yes\n1')"

note "--dir: files as inject writes them, before CMD starts"
expect_status 0 "$CTL" exec --dir "$D" db/password app/token=tok -- sh -c "cat '$D/db_password'; echo; stat -c '%a %u' '$D/tok'"
assert_eq "$OUT" "$(printf 's3cret-pass\n400 0')"
expect_status 0 "$CTL" exec --env T=app/token --dir "$D" --mode 0440 db/password -- sh -c "stat -c %a '$D/db_password'"
assert_eq "$OUT" "440"

note "all or nothing: a refusal runs nothing and says why"
rm -f "$D"/* "$T/ran"
expect_status 3 "$CTL" exec --env A=db/password --env B=db/missing -- touch "$T/ran"
[ ! -e "$T/ran" ] || fail "CMD ran although a secret was not found"
expect_status 4 as_user 1000 1000 "$CTL" exec --env A=app/token --env B=app/secret -- touch "$T/ran"
[ ! -e "$T/ran" ] || fail "CMD ran although a secret was denied"
expect_status 4 as_user 1000 1000 "$CTL" exec --dir "$D" app/token app/secret -- touch "$T/ran"
assert_eq "$(ls -A "$D")" "" "no file written when one secret is denied"
expect_status 5 "$CTL" -s "$T/nothere.sock" exec --env A=db/password -- touch "$T/ran"
[ ! -e "$T/ran" ] || fail "CMD ran although the broker was unreachable"
expect_status 0 as_user 1000 1000 "$CTL" exec --env A=app/token -- true
note "a value with a NUL cannot be an environment variable (files can hold it)"
expect_status 1 "$CTL" exec --env N=app/nul -- touch "$T/ran"
assert_contains "$ERR" "NUL"
[ ! -e "$T/ran" ] || fail "CMD ran with a truncated variable"
expect_status 0 "$CTL" exec --dir "$D" app/nul -- cmp "$D/app_nul" <(printf 'a\000b')

note "CMD that cannot be run: 127 not found, 126 not executable"
expect_status 127 "$CTL" exec --env A=db/password -- "$T/no-such-program"
printf '#!/bin/sh\n' >"$T/noexec"
chmod 0644 "$T/noexec"
expect_status 126 "$CTL" exec --env A=db/password -- "$T/noexec"

note "killed by a signal: 128 + N"
expect_status 143 "$CTL" exec --env A=db/password -- sh -c 'kill -TERM $$'
expect_status 137 "$CTL" exec --env A=db/password -- sh -c 'kill -KILL $$'

note "signals sent to secretctl reach CMD; CMD's answer decides the status"
cat >"$T/app.sh" <<'APP'
#!/bin/sh
echo $$ >"$1/app.pid"
trap 'echo usr1 >>"$1/got"' USR1
trap 'echo hup >>"$1/got"' HUP
trap 'echo term >>"$1/got"; exit 42' TERM
: >"$1/ready"
while :; do sleep 0.05; done
APP
chmod 0755 "$T/app.sh"
"$CTL" exec --env A=db/password -- "$T/app.sh" "$T" 2>"$T/exec.err" &
SUP=$!
wait_for "the app to start" test -e "$T/ready"
APP=$(cat "$T/app.pid")
assert_not_contains "$(tr '\0' '\n' </proc/$SUP/environ)" "s3cret-pass" "secret in secretctl's own environment"
assert_not_contains "$(tr '\0' ' ' </proc/$SUP/cmdline)" "s3cret-pass" "secret in secretctl's argv"
assert_contains "$(tr '\0' '\n' </proc/$APP/environ)" "A=s3cret-pass" "the secret in CMD's environment"
kill -USR1 "$SUP"
wait_for "USR1 passed on" grep -qx usr1 "$T/got"
kill -HUP "$SUP"
wait_for "HUP passed on" grep -qx hup "$T/got"
kill -TERM "$SUP"
rc=0
wait "$SUP" || rc=$?
assert_eq "$rc" "42" "CMD's status after the TERM it was passed"
assert_eq "$(cat "$T/got" | tr '\n' ' ')" "usr1 hup term " "signals in order, each once"
kill -0 "$APP" 2>/dev/null && fail "CMD still running after it exited"

note "secretctl killed outright: CMD does not run on unsupervised"
rm -f "$T/ready" "$T/got"
"$CTL" exec --env A=db/password -- "$T/app.sh" "$T" 2>"$T/exec.err" &
SUP=$!
wait_for "the app to start" test -e "$T/ready"
APP=$(cat "$T/app.pid")
kill -KILL "$SUP"
wait "$SUP" 2>/dev/null || true
gone() { ! kill -0 "$APP" 2>/dev/null; }
wait_for "CMD to end after its supervisor was killed" gone
assert_eq "$(cat "$T/got")" "term" "CMD was sent TERM when secretctl died"

note "usage errors exit 2 before anything is fetched"
U=("$CTL" -s "$T/nothere.sock" exec)
expect_status 2 "${U[@]}" --env A=db/password
expect_status 2 "${U[@]}" --env A=db/password --
expect_status 2 "${U[@]}" -- true
expect_status 2 "${U[@]}" --env 1A=db/password -- true
expect_status 2 "${U[@]}" --env A-B=db/password -- true
expect_status 2 "${U[@]}" --env A -- true
expect_status 2 "${U[@]}" --env A=../x -- true
expect_status 2 "${U[@]}" --env A=db/password --env A=app/token -- true
expect_status 2 "${U[@]}" db/password -- true
expect_status 2 "${U[@]}" --dir "$D" -- true
expect_status 2 "${U[@]}" --dir "$D" db/password=a/b -- true
expect_status 2 "${U[@]}" --env A=db/password --restart -- true
expect_status 2 "${U[@]}" --env A=db/password --watch --signal HUP -- true
expect_status 2 "${U[@]}" --dir "$D" db/password --watch --signal NOPE -- true
expect_status 2 "${U[@]}" --dir "$D" db/password --watch --signal HUP --restart -- true
expect_status 2 "${U[@]}" --env A=db/password --bogus -- true
expect_status 2 "${U[@]}" --env A=db/password --mode 0400 -- true

stop_broker
echo "PASS $TEST_NAME"
