#!/usr/bin/env bash
# The broker refuses to start, with one clear line and exit 1, on a wrong
# or loose key, a missing vault, a bad or loose policy; init never overwrites.
source "$TESTLIB"
make_vault
printf 'permit all ** uid=0 host\n' | write_policy

run_broker() {
  local rc=0
  timeout 10 "$SECRETD" run --socket "$SECRETD_SOCKET" --vault "$1" --key-file "$2" \
    --policy "$3" --audit-log "$T/audit.log" >"$T/out" 2>"$T/err" || rc=$?
  ERR=$(cat "$T/err")
  return $rc
}
expect_refusal() {
  local rc=0
  run_broker "$1" "$2" "$3" || rc=$?
  assert_eq "$rc" "1" "exit status for: $4"
  assert_contains "$ERR" "$5" "message for: $4"
  [ "$(wc -l <"$T/err")" -eq 1 ] || fail "more than one line for $4: $ERR"
}

note "init refuses to overwrite either file"
expect_status 1 "$SECRETD" init --vault "$T/vault.db" --key-file "$T/new.key"
[ ! -e "$T/new.key" ] || fail "init left a key behind"
expect_status 1 "$SECRETD" init --vault "$T/other.db" --key-file "$T/master.key"
assert_eq "$(stat -c %a "$T/master.key")" "400" "key file mode"

note "a wrong key does not open the vault"
"$SECRETD" init --vault "$T/v2.db" --key-file "$T/k2.key" >/dev/null
expect_refusal "$T/vault.db" "$T/k2.key" "$T/policy.conf" "wrong key" "key"

note "a key readable by group or others is refused"
cp "$T/master.key" "$T/loose.key"
chmod 0440 "$T/loose.key"
expect_refusal "$T/vault.db" "$T/loose.key" "$T/policy.conf" "loose key" "group or others"

note "a missing vault is refused"
expect_refusal "$T/missing.db" "$T/master.key" "$T/policy.conf" "missing vault" "missing.db"

note "a policy that does not parse is refused with its line number"
printf 'permit all ** uid=0 host\npermit rread ** any\n' >"$T/bad.conf"
chmod 0644 "$T/bad.conf"
expect_refusal "$T/vault.db" "$T/master.key" "$T/bad.conf" "bad policy" "bad.conf:2:"

note "a policy writable by group or others is refused"
cp "$T/policy.conf" "$T/loose.conf"
chmod 0664 "$T/loose.conf"
expect_refusal "$T/vault.db" "$T/master.key" "$T/loose.conf" "loose policy" "group or others"

note "with everything right it starts, and SIGTERM exits 0"
start_broker
expect_status 0 "$CTL" ping
stop_broker
echo "PASS $TEST_NAME"
