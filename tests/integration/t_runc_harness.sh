#!/usr/bin/env bash
# The runc harness itself: a busybox rootfs with a copied dynamic binary, a
# container that lands in the cgroup we chose, runs as the uid we chose,
# sees a bind-mounted host folder, and returns its command's exit status.
# Needs root; installs runc and busybox-static when missing.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/runc.sh"

T=$(mktemp -d /tmp/secretd-t_runc_harness.XXXXXX)
chmod 0755 "$T"
cleanup() {
  local rc=$?
  runc_cleanup
  rm -rf "$T"
  exit $rc
}
trap cleanup EXIT

fail() {
  echo "FAIL: t_runc_harness: $*" >&2
  exit 1
}
note() { echo "# $*"; }

[ "$(id -u)" = 0 ] || fail "needs root"

# A dynamic binary to prove the library copying: secretctl when the build
# gave us one, else a coreutils program.
BINS=(/usr/bin/stat)
[ -n "${SECRETCTL:-}" ] && [ -x "${SECRETCTL:-}" ] && BINS+=("$SECRETCTL")

note "rootfs"
runc_rootfs "$T/rootfs" "${BINS[@]}"
[ -x "$T/rootfs/bin/sh" ] || fail "no /bin/sh applet in the rootfs"
[ -d "$T/rootfs/run/secretd" ] || fail "no /run/secretd mount point"

mkdir "$T/shared"
echo "from the host" >"$T/shared/hello"

NAME=secretd-harness-$$
CID=$(runc_cid "$NAME")
[[ "$CID" =~ ^[0-9a-f]{64}$ ]] || fail "runc_cid gave [$CID]"

note "a container as uid 1234 in /secretd-test/<id>"
OUT=$(runc_run "$NAME" "$T/rootfs" 1234 2345 "$T/shared:/run/secretd:ro" tmpfs:/secrets -- \
  sh -c 'cat /proc/self/cgroup; echo "uid=$(id -u) gid=$(id -g)";
         echo "pid=$$"; cat /run/secretd/hello;
         echo x >/secrets/f && echo tmpfs-ok;
         stat -c "stat-ok %n" /; exit 7') && rc=0 || rc=$?
printf '%s\n' "$OUT" | sed 's/^/#   /'
[ "$rc" = 7 ] || fail "exit status $rc, want the command's 7"
grep -q "^uid=1234 gid=2345$" <<<"$OUT" || fail "uid/gid wrong"
grep -q "^pid=1$" <<<"$OUT" || fail "not in a pid namespace of its own"
grep -q "^from the host$" <<<"$OUT" || fail "bind mount of the host folder not seen"
grep -q "^tmpfs-ok$" <<<"$OUT" || fail "tmpfs mount not writable"
grep -q "^stat-ok /$" <<<"$OUT" || fail "copied dynamic binary did not run"

# The line secretd reads: 0:: on pure v2; on v1/hybrid name=systemd.
if grep -q ':name=systemd:' <<<"$OUT"; then
  LINE=$(grep ':name=systemd:' <<<"$OUT")
else
  LINE=$(grep '^0::' <<<"$OUT")
fi
[ "$LINE" != "${LINE%/secretd-test/$CID}" ] ||
  fail "cgroup line [$LINE] does not end in /secretd-test/$CID"

note "a systemd-shaped path, and root in the container"
OUT=$(RUNC_CGROUPS_PATH="/system.slice/docker-$CID.scope" \
  runc_run "$NAME-2" "$T/rootfs" 0 0 -- cat /proc/self/cgroup) || fail "second run failed"
grep -q "/system.slice/docker-$CID.scope$" <<<"$OUT" || fail "no docker scope in [$OUT]"

if [ "${#BINS[@]}" -gt 1 ]; then
  note "secretctl starts in the container (its libraries were copied)"
  rc=0
  runc_run "$NAME-3" "$T/rootfs" 1000 1000 -- secretctl >/dev/null 2>&1 || rc=$?
  [ "$rc" != 127 ] && [ "$rc" != 126 ] || fail "secretctl could not be executed ($rc)"
fi

note "a failing command's status comes back"
rc=0
runc_run "$NAME-4" "$T/rootfs" 0 0 -- false || rc=$?
[ "$rc" = 1 ] || fail "false gave $rc"

note "nothing left behind"
runc_cleanup
[ ! -d "$RUNC_ROOT" ] || fail "runc state left in $RUNC_ROOT"
for root in /sys/fs/cgroup /sys/fs/cgroup/*; do
  [ ! -d "$root/secretd-test/$CID" ] || fail "cgroup left: $root/secretd-test/$CID"
done
echo "ok"
