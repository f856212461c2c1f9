#!/usr/bin/env bash
# Least privilege: started as root with --user nobody, the broker binds its
# socket and opens vault, key and audit log first, then runs as nobody with
# no supplementary group, no capability in any set, no_new_privs, not
# dumpable and no core files; the open file limit is raised to its hard
# limit.  Afterwards secrets still flow, identity (cgroup, container id, uid)
# is still resolved, and SIGHUP still reloads the policy without a moment in
# which secrets are withheld.
source "$TESTLIB"
source "$(dirname "$TESTLIB")/cgroups.sh"
at_exit remove_cgroups

NOBODY_UID=$(id -u nobody)
NOBODY_GID=$(id -g nobody)
ID1=$(random_hex 64)

write_policy <<'POLICY'
permit all   **          uid=0 host
permit read  c/**        container=*
POLICY

# A low soft limit, so that raising it to the hard limit can be seen.
HARD_NOFILE=$(ulimit -Hn)
ulimit -Sn 1024
start_broker --user nobody
PID=$BROKER_PID

status_field() { sed -n "s/^$1:[[:space:]]*//p" "/proc/$PID/status" | tr -d ' \t'; }

note "uids and gids are all nobody's; no supplementary group"
assert_eq "$(status_field Uid)" "${NOBODY_UID}${NOBODY_UID}${NOBODY_UID}${NOBODY_UID}" "Uid (real, effective, saved, fs)"
assert_eq "$(status_field Gid)" "${NOBODY_GID}${NOBODY_GID}${NOBODY_GID}${NOBODY_GID}" "Gid (real, effective, saved, fs)"
assert_eq "$(status_field Groups)" "" "supplementary groups"

note "no capability in any set; no_new_privs"
for set in CapInh CapPrm CapEff CapBnd CapAmb; do
  assert_eq "$(status_field "$set")" "0000000000000000" "$set"
done
assert_eq "$(status_field NoNewPrivs)" "1" "NoNewPrivs"

note "no core files; the open file limit raised to its hard limit ($HARD_NOFILE)"
core=$(awk '/^Max core file size/ {print $5 " " $6}' "/proc/$PID/limits")
assert_eq "$core" "0 0" "RLIMIT_CORE soft and hard"
nofile=$(awk '/^Max open files/ {print $4 " " $5}' "/proc/$PID/limits")
assert_eq "$nofile" "$HARD_NOFILE $HARD_NOFILE" "RLIMIT_NOFILE soft and hard"

note "not dumpable: its /proc files belong to root and nobody cannot read its environment"
assert_eq "$(stat -c %u "/proc/$PID/environ")" "0" "owner of /proc/PID/environ"
if as_user "$NOBODY_UID" "$NOBODY_GID" cat "/proc/$PID/environ" >/dev/null 2>&1; then
  fail "uid $NOBODY_UID can read the broker's /proc/PID/environ: the broker is dumpable"
fi
# nor open its memory (test the open itself: reading offset 0 fails with EIO
# even when the open is allowed)
if as_user "$NOBODY_UID" "$NOBODY_GID" sh -c 'exec 3<"$1"' sh "/proc/$PID/mem" 2>/dev/null; then
  fail "uid $NOBODY_UID can open the broker's /proc/PID/mem"
fi

note "the socket, vault and audit log were opened before the drop"
[ -S "$SECRETD_SOCKET" ] || fail "no socket"
assert_eq "$(stat -c %u "$T/vault.db")" "0" "the vault stays root's"
assert_eq "$(stat -c %u "$T/audit.log")" "0" "the audit log stays root's"

note "secrets still flow as nobody: put, get, a new version, list, rm"
expect_status 0 sh -c "printf 'first' | '$CTL' put app/one"
assert_eq "$OUT" "1" "version of the first put"
expect_status 0 sh -c "printf 'second' | '$CTL' put app/one"
assert_eq "$OUT" "2" "version of the second put"
expect_status 0 "$CTL" get app/one
assert_eq "$OUT" "second"
expect_status 0 "$CTL" get app/one --version 1
assert_eq "$OUT" "first"
printf 'cv' | "$CTL" put "c/$ID1/token" >/dev/null
expect_status 0 "$CTL" list
assert_eq "$OUT" "$(printf 'app/one\nc/%s/token' "$ID1")" "list"
printf 'x' | "$CTL" put app/gone >/dev/null
expect_status 0 "$CTL" rm app/gone
expect_status 3 "$CTL" get app/gone

note "identity is still resolved unprivileged: uid, cgroup, container id, host"
expect_status 0 "$CTL" whoami
assert_eq "$(whoami_field uid)" "0" "uid of root"
assert_eq "$(whoami_field host)" "yes" "host"
assert_eq "$(whoami_field identity)" "ok" "identity of root"
CG="/system.slice/docker-$ID1.scope"
expect_status 0 in_cgroup "$CG" setpriv --reuid 1000 --regid 1000 --clear-groups -- "$CTL" whoami
assert_eq "$(whoami_field uid)" "1000" "uid in the container cgroup"
assert_eq "$(whoami_field cgroup)" "$CG" "cgroup"
assert_eq "$(whoami_field container)" "$ID1" "container id"
assert_eq "$(whoami_field identity)" "ok" "identity in the container cgroup"
expect_status 0 in_cgroup "$CG" setpriv --reuid 1000 --regid 1000 --clear-groups -- "$CTL" get "c/$ID1/token"
assert_eq "$OUT" "cv" "a container reads its secret through a container=* rule"
expect_status 4 as_user 1000 1000 "$CTL" get "c/$ID1/token"

note "SIGHUP reloads the policy as nobody, and secrets are never withheld meanwhile"
write_policy <<'POLICY'
permit all   **          uid=0 host
permit read  c/**        container=*
permit read  app/one     uid=1001
POLICY
kill -HUP "$PID"
for _ in $(seq 1 100); do
  grep -q 'policy reloaded: 3 rules' "$T/broker.log" && break
  sleep 0.05
done
grep -q 'policy reloaded: 3 rules' "$T/broker.log" || fail "the policy was not reloaded after SIGHUP"
expect_status 0 "$CTL" get app/one
assert_eq "$OUT" "second" "a get right after SIGHUP"
expect_status 0 as_user 1001 1001 "$CTL" get app/one
assert_eq "$OUT" "second" "uid 1001 reads through the reloaded rule"
if grep -q 'reopening the audit log failed\|audit log cannot be written' "$T/broker.log"; then
  fail "SIGHUP under --user made the audit log unwritable: $(grep -m1 'reopening' "$T/broker.log")"
fi

note "SIGTERM: exit 0 as nobody, and the audit log verifies"
stop_broker
expect_status 0 "$SECRETD" audit-verify --key-file "$T/master.key" --vault "$T/vault.db" "$T/audit.log"
if grep -q 'secretd\[error\]' "$T/broker.log"; then
  fail "errors in the broker log: $(grep -m1 'secretd\[error\]' "$T/broker.log")"
fi

note "a user that does not exist: refused at start, exit 1, one line"
rc=0
"$SECRETD" run --socket "$T/other.sock" --vault "$T/vault.db" --key-file "$T/master.key" \
  --policy "$T/policy.conf" --audit-log "$T/audit.log" --user no-such-user-xyz \
  >"$T/out" 2>"$T/err" || rc=$?
assert_eq "$rc" "1" "exit status for an unknown user"
assert_contains "$(cat "$T/err")" "no-such-user-xyz" "the reason names the user"
echo "PASS $TEST_NAME"
