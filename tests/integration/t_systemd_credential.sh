#!/usr/bin/env bash
# LoadCredential= against the real broker under a real systemd (CONTRACT
# "systemd services"): systemd 252 as PID 1 of a runc container
# (systemd.sh), secretd installed inside exactly as contrib/systemd/README.md
# says (the contrib unit, sysusers entry and settings; the master key sealed
# with systemd-creds), and two units with
#   LoadCredential=db:/run/secretd/secretd.sock
#   ExecStartPre=/bin/test -s "${CREDENTIALS_DIRECTORY}/db"
# The policy lets credok.service read its credential and not credno.service:
# the first sees the value in $CREDENTIALS_DIRECTORY/db, the second gets an
# empty credential and fails to start; both requests are audited with op
# "credential" and the unit.  A process that binds the same abstract name
# without being systemd gets nothing.
#
# Until the broker serves credentials it writes no "credential" record; the
# test then prints "SKIP: broker does not serve systemd credentials" and
# exits 0.  That is the only skip: everything before it (the container, the
# broker's start, the puts) must work.
source "$TESTLIB"
source "$(dirname "$TESTLIB")/systemd.sh"
at_exit systemd_teardown

[ "$(id -u)" = 0 ] || fail "needs root"
SRC=${SOURCE_DIR:?SOURCE_DIR must name the source tree}
CONTRIB="$SRC/contrib/systemd"
R="$T/rootfs"
mkdir -m 0755 "$T/out"

systemd_rootfs "$R" || fail "no root file system"
mounts=("$T/out:/out")
mounts+=("$(systemd_install_bin "$R" "$SECRETD" /usr/local/sbin/secretd)") || fail "secretd"
mounts+=("$(systemd_install_bin "$R" "$SECRETCTL" /usr/local/bin/secretctl)") || fail "secretctl"

# The contrib files, installed as the README says.
install -m 0644 "$CONTRIB/secretd.service" "$R/etc/systemd/system/secretd.service"
install -D -m 0644 "$CONTRIB/secretd.sysusers" "$R/etc/sysusers.d/secretd.conf"
install -D -m 0644 "$CONTRIB/secretd.conf" "$R/etc/secretd/secretd.conf"
# A broker that does not recognise systemd leaves its connection waiting for
# a frame: a short idle timeout lets such a run reach the skip quickly.
echo "idle-timeout = 3000" >>"$R/etc/secretd/secretd.conf"

# Administration from `runc exec`: root in the container's root cgroup, or
# in PID 1's /init.scope, where runc may put it on cgroup v2 hosts whose root
# cgroup has controllers enabled (no process may sit beside them).  The
# unit rule is the point of the test.  A broker whose policy has no unit=
# selector refuses that file: it gets the equivalent cgroup= rule instead
# (systemd asks from the unit's cgroup), so it can start and reach the skip
# below, or, if it serves credentials all the same, be tested.
cat >"$R/etc/secretd/policy.conf" <<'POLICY'
permit all   **                       uid=0 host cgroup=/
permit all   **                       uid=0 host cgroup=/init.scope
permit read  systemd/${unit}/*        unit=credok.service
permit read  systemd/${unit}/*        unit=credential-example.service
POLICY
if ! "$SECRETD" check-policy "$R/etc/secretd/policy.conf" >/dev/null 2>&1; then
  note "this broker's policy has no unit= selector: using cgroup= instead"
  cat >"$R/etc/secretd/policy.conf" <<'POLICY'
permit all   **                       uid=0 host cgroup=/
permit all   **                       uid=0 host cgroup=/init.scope
permit read  systemd/credok.service/* cgroup=/system.slice/credok.service
permit read  systemd/credential-example.service/* cgroup=/system.slice/credential-example.service
POLICY
fi
chmod 0644 "$R/etc/secretd/policy.conf"

unit() { # NAME: a oneshot unit that copies its credential to /out/NAME.seen
  cat >"$R/etc/systemd/system/$1.service" <<UNIT
[Unit]
Description=reads its credential from secretd
Requires=secretd.service
After=secretd.service

[Service]
Type=oneshot
RemainAfterExit=yes
TimeoutStartSec=30s
LoadCredential=db:/run/secretd/secretd.sock
ExecStartPre=/bin/test -s "\${CREDENTIALS_DIRECTORY}/db"
ExecStart=/bin/sh -c 'cat "\$CREDENTIALS_DIRECTORY/db" >/out/$1.seen'
UNIT
}
unit credok
unit credno
# The documented example, as shipped.
install -m 0644 "$CONTRIB/credential-example.service" "$R/etc/systemd/system/"

systemd_boot "$R" "${mounts[@]}" || fail "systemd did not boot"
note "systemd booted in $SYSTEMD_BOOT_MS ms"

# The vault and the sealed master key, as in contrib/systemd/README.md.
systemd_exec sh -euc '
  systemd-sysusers
  install -d -o secretd -g secretd -m 0700 /var/lib/secretd
  install -d -m 0700 /run/secretd-key
  secretd init --vault /var/lib/secretd/vault.db --key-file /run/secretd-key/master.key >/dev/null
  chown -R secretd:secretd /var/lib/secretd
  install -d -m 0700 /etc/credstore.encrypted
  systemd-creds encrypt --name=master.key /run/secretd-key/master.key \
    /etc/credstore.encrypted/secretd.master.key
  shred -u /run/secretd-key/master.key
  rmdir /run/secretd-key' || { systemd_diagnose; fail "could not create the vault"; }
systemd_exec systemctl start secretd.service || { systemd_diagnose; fail "secretd.service did not start"; }
wait_for "the broker's ping" systemd_exec secretctl ping

put() { printf '%s' "$2" | systemd_exec secretctl put "$1" >/dev/null || fail "put $1"; }
OK_VALUE="ok-value-$$-$RANDOM"
NO_VALUE="no-value-$$-$RANDOM"
put systemd/credok.service/db "$OK_VALUE"
put systemd/credno.service/db "$NO_VALUE"
EX_VALUE="example-value-$$-$RANDOM"
put systemd/credential-example.service/db "$EX_VALUE"

audit() { systemd_exec cat /var/log/secretd/audit.log; }
# credential_records: the credential records as "decision name unit" lines.
credential_records() {
  audit | python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    if r.get("op") == "credential":
        print(r.get("decision"), r.get("name"), r.get("unit"))'
}

ok_rc=0
systemd_exec systemctl start credok.service 2>"$T/credok.err" || ok_rc=$?
if [ -z "$(credential_records)" ]; then
  echo "SKIP: broker does not serve systemd credentials"
  exit 0
fi
[ "$ok_rc" -eq 0 ] || { systemd_diagnose; fail "credok.service did not start: $(cat "$T/credok.err")"; }
assert_eq "$(cat "$T/out/credok.seen")" "$OK_VALUE" "the credential credok.service saw"

if systemd_exec systemctl start credno.service 2>/dev/null; then
  fail "credno.service started although the policy refuses its credential"
fi
assert_eq "$(systemd_exec systemctl show -P Result credno.service)" exit-code "credno's result"
[ ! -e "$T/out/credno.seen" ] || fail "credno.service ran past its guard"
size=$(systemd_exec stat -c %s /run/credentials/credno.service/db 2>/dev/null || echo gone)
[ "$size" = 0 ] || [ "$size" = gone ] || fail "credno.service got $size bytes"

# contrib/systemd/credential-example.service runs (DynamicUser=) with it.
systemd_exec systemctl start credential-example.service ||
  { systemd_diagnose; fail "credential-example.service did not start"; }
assert_eq "$(systemd_exec systemctl is-active credential-example.service)" active "the example"
assert_eq "$(systemd_exec cat /run/credentials/credential-example.service/db)" "$EX_VALUE" \
  "the example's credential"
systemd_exec systemctl stop credential-example.service

records=$(credential_records)
note "credential records: $(tr '\n' ';' <<<"$records")"
assert_contains "$records" "allow systemd/credok.service/db credok.service" "audit of credok"
assert_contains "$records" "deny systemd/credno.service/db credno.service" "audit of credno"
assert_contains "$records" "allow systemd/credential-example.service/db credential-example.service" \
  "audit of the example"
assert_not_contains "$(audit)" "$OK_VALUE" "a value in the audit log"
assert_not_contains "$(systemd_exec journalctl --no-pager -u secretd.service)" "$OK_VALUE" \
  "a value in the broker's log"

# Not systemd: root in the broker's pid namespace and in the container's
# root cgroup (not credok's), bound to credok's address, gets nothing.
pid1=$("$SYSTEMD_RUNC" --root "$SYSTEMD_RUNC_ROOT" state "$SYSTEMD_NAME" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
spoof=$(
  for root in /sys/fs/cgroup /sys/fs/cgroup/*; do
    # (Where the move is refused, the caller is outside the broker's cgroup
    # namespace instead: refused all the same.)
    [ ! -f "$root$SYSTEMD_CGROUP/cgroup.procs" ] ||
      echo $BASHPID 2>/dev/null >"$root$SYSTEMD_CGROUP/cgroup.procs" || true
  done
  exec nsenter --target "$pid1" --pid -- python3 - "/proc/$pid1/root/run/secretd/secretd.sock" <<'PY'
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.bind(b"\0" + b"%x/unit/credok.service/db" % os.getpid())
s.connect(sys.argv[1])
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
print("got=%d" % len(data))
PY
) || fail "the spoofing client failed"
assert_eq "$spoof" "got=0" "a process that is not systemd"
spoof_audited() { credential_records | grep -q '^deny systemd/credok.service/db'; }
wait_for "the spoofed request's audit record (a refusal)" spoof_audited
