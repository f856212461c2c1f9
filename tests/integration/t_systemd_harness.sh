#!/usr/bin/env bash
# The systemd harness itself: a Debian 12 root file system with systemd 252
# boots as PID 1 of a runc container, and a unit with LoadCredential= naming
# an AF_UNIX socket gets what the server behind it sends in
# $CREDENTIALS_DIRECTORY (the propagation of systemd's credential mount is
# what a plain runc bundle gets wrong).  The server is a stand-in on the
# host, not secretd: this tests the container, t_systemd_credential the
# broker.  It also records what the connecting process looks like, which is
# what the broker's check relies on: root, bound to @<hex>/unit/UNIT/ID, not
# PID 1 but "(sd-mkdcreds)" in the unit's cgroup.
source "$TESTLIB"
source "$(dirname "$TESTLIB")/systemd.sh"
at_exit systemd_teardown

[ "$(id -u)" = 0 ] || fail "needs root"
HELPERS="$(dirname "$TESTLIB")/helpers"

mkdir -m 0755 "$T/sock" "$T/out"
printf 'standin-value-%s' "$$" >"$T/value"
python3 "$HELPERS/credential_standin.py" "$T/sock/secretd.sock" "$T/value" "$T/standin.log" 120 &
STANDIN=$!
at_exit "kill $STANDIN 2>/dev/null || true"
wait_for "the stand-in's socket" test -S "$T/sock/secretd.sock"

t0=$(date +%s%N)
systemd_rootfs "$T/rootfs" || fail "no root file system"
note "root file system ready in $((($(date +%s%N) - t0) / 1000000)) ms"
cat >"$T/rootfs/etc/systemd/system/credtest.service" <<'UNIT'
[Unit]
Description=LoadCredential= from an AF_UNIX socket

[Service]
Type=oneshot
RemainAfterExit=yes
LoadCredential=db:/run/secretd/secretd.sock
ExecStartPre=/bin/test -s "${CREDENTIALS_DIRECTORY}/db"
ExecStart=/bin/sh -c 'cat "$CREDENTIALS_DIRECTORY/db" >/out/seen'
UNIT
systemd_boot "$T/rootfs" "$T/sock:/run/secretd" "$T/out:/out" || fail "systemd did not boot"
note "systemd booted in $SYSTEMD_BOOT_MS ms"
assert_eq "$(systemd_exec cat /proc/1/comm)" systemd "PID 1"

systemd_exec systemctl start credtest.service || { systemd_diagnose; fail "credtest.service did not start"; }
assert_eq "$(cat "$T/out/seen")" "$(cat "$T/value")" "the unit's credential"
mode=$(systemd_exec stat -c %a /run/credentials/credtest.service/db)
assert_eq "$mode" 400 "mode of the credential"

line=$(tail -n 1 "$T/standin.log")
note "peer: $line"
unit_hex=$(printf '/unit/credtest.service/db' | od -An -tx1 | tr -d ' \n')
[[ "$line" =~ ^addr=00([0-9a-f]{2})+ ]] || fail "not an abstract address: $line"
[[ "$line" == *"$unit_hex "* ]] || fail "address does not end in /unit/credtest.service/db: $line"
assert_contains "$line" "uid=0 " "the peer is root"
assert_contains "$line" "Name=(sd-mkdcreds)" "the peer's name"
nspid=$(sed -n 's/.*NSpid=[0-9]*\/\([0-9]*\).*/\1/p' <<<"$line")
[ -n "$nspid" ] && [ "$nspid" != 1 ] || fail "expected a peer other than PID 1: $line"
cg=$(systemd_exec cat "/proc/$nspid/cgroup" 2>/dev/null || true)
note "the peer (pid $nspid inside) has exited by now: [$cg]"

# A server that sends nothing: systemd stores an empty credential, and the
# guard makes the unit fail instead of starting without its secret.
: >"$T/value"
kill "$STANDIN"
wait "$STANDIN" 2>/dev/null || true
python3 "$HELPERS/credential_standin.py" "$T/sock/secretd.sock" "$T/value" "$T/standin.log" 120 &
STANDIN=$!
at_exit "kill $STANDIN 2>/dev/null || true"
wait_for "the stand-in's socket" test -S "$T/sock/secretd.sock"
sed 's/credtest/credempty/' "$T/rootfs/etc/systemd/system/credtest.service" |
  sed 's|>/out/seen|>/out/seen-empty|' >"$T/rootfs/etc/systemd/system/credempty.service"
systemd_exec systemctl daemon-reload
if systemd_exec systemctl start credempty.service 2>/dev/null; then
  fail "a unit whose credential came back empty started"
fi
[ ! -e "$T/out/seen-empty" ] || fail "ExecStart ran after the guard failed"
result=$(systemd_exec systemctl show -P Result credempty.service)
assert_eq "$result" exit-code "credempty.service's result"
