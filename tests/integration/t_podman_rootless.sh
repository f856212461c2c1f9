#!/usr/bin/env bash
# Rootless Podman (Debian's podman, uidmap's newuidmap/newgidmap, runc, no
# network): an unprivileged user of the test's own, with subordinate uids,
# runs containers that reach the broker through a read-only bind mount of
# the socket's folder.  What the broker can tell of such a caller, and so
# what a policy can rely on:
#  - uid: the host uid the container's user maps to, from the kernel (the
#    user's own uid for the container's root, subuid_start + N - 1 for the
#    container's uid N); uid= rules grant and deny by it;
#  - host=no (another pid namespace), the pid, a pidfd;
#  - container id and cgroup: only where Podman puts rootless containers in
#    cgroups of their own, i.e. cgroup v2 with a systemd user session
#    (libpod-<id>.scope under user@UID.service).  On cgroup v1 (or hybrid)
#    rootless Podman cannot create cgroups: the container stays in the
#    caller's cgroup, and the broker sees no container (container= empty,
#    the cgroup is the one the user's own processes have).  This test checks
#    exactly that there, so that a change in either direction is noticed.
source "$TESTLIB"
source "$(dirname "$TESTLIB")/engines.sh"

[ "$(id -u)" = 0 ] || fail "needs root"
if [ -z "${SECRETCTL_STATIC:-}" ]; then
  echo "SKIP $TEST_NAME: this build has no static secretctl (sanitizer or fuzz build)"
  exit 0
fi
engines_install podman runc busybox-static uidmap || { echo "SKIP $TEST_NAME: podman or uidmap cannot be installed"; exit 0; }

note "an unprivileged user with subordinate ids, home and runtime folder in \$T"
RL=sdrl$$
useradd -m -d "$T/home" -s /bin/sh -K SUB_UID_COUNT=65536 -K SUB_GID_COUNT=65536 "$RL" ||
  fail "useradd $RL"
at_exit "userdel -f $RL >/dev/null 2>&1"
RUID=$(id -u "$RL")
SUB=$(awk -F: -v u="$RL" '$1 == u { print $2 }' /etc/subuid)
[ -n "$SUB" ] || fail "no subordinate uids for $RL in /etc/subuid"
mkdir -p "$T/xdg" "$T/home/.config/containers"
chmod 0700 "$T/xdg"
cat >"$T/home/.config/containers/storage.conf" <<EOF2
[storage]
driver = "vfs"
EOF2
# The user's own containers.conf: no network, runc (crun refuses hybrid
# hosts), cgroupfs (no systemd user session here), events to a file.
cat >"$T/home/.config/containers/containers.conf" <<EOF2
[containers]
netns = "none"
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"
EOF2
chown -R "$RL:$RL" "$T/home" "$T/xdg"
rl() { runuser -u "$RL" -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$T/home" XDG_RUNTIME_DIR="$T/xdg" "$@"; }
at_exit "runuser -u $RL -- env -i PATH=/usr/bin:/bin HOME=$T/home XDG_RUNTIME_DIR=$T/xdg podman system reset -f >/dev/null 2>&1; grep -F ' $T/' /proc/self/mounts | cut -d' ' -f2 | sort -r | xargs -r -n1 umount -l 2>/dev/null"

mkdir -p "$T/static"
cp "$SECRETCTL_STATIC" "$T/static/secretctl"
engines_rootfs_tar "$T/busybox.tar" "$T/static/secretctl"
chmod 0644 "$T/busybox.tar"
out=$(rl podman import --quiet --change "ENV PATH=$ENGINES_IMAGE_PATH" "$T/busybox.tar" localhost/sdrl:1 2>&1) || {
  echo "SKIP $TEST_NAME: rootless podman cannot import an image here: $out"
  exit 0
}
out=$(rl podman run --rm --pull never localhost/sdrl:1 /bin/true 2>&1) || {
  echo "SKIP $TEST_NAME: rootless podman cannot run a container here: $out"
  exit 0
}
note "rootless podman $(rl podman version --format '{{.Client.Version}}'), cgroups $(rl podman info --format '{{.Host.CgroupsVersion}}'), manager $(rl podman info --format '{{.Host.CgroupManager}}')"

RUN="$T/run"
mkdir -m 0755 "$RUN"
export SECRETD_SOCKET="$RUN/secretd.sock"
APPUID=$((SUB + 999)) # the container's uid 1000
{
  printf 'permit all ** uid=0 host\n'
  printf 'permit read rl/root/* uid=%s\n' "$RUID"
  printf 'permit read rl/app/* uid=%s\n' "$APPUID"
} | write_policy
start_broker
printf 'for-the-root-of-the-container' | "$CTL" put rl/root/x >/dev/null
printf 'for-uid-1000-of-the-container' | "$CTL" put rl/app/x >/dev/null
M="$RUN:/run/secretd:ro"
ctr() { rl podman run --rm --pull never -v "$M" "$@"; }

note "the container's root is the user's uid; its uid 1000 is subuid $SUB + 999"
expect_status 0 ctr localhost/sdrl:1 secretctl whoami
printf '%s\n' "$OUT" | sed 's/^/#   /'
assert_contains "$OUT" "uid=$RUID"
assert_contains "$OUT" "host=no"
WHOAMI_ROOT=$OUT
expect_status 0 ctr --user 1000:1000 localhost/sdrl:1 secretctl whoami
assert_contains "$OUT" "uid=$APPUID"

note "uid= rules grant and deny by the mapped uid"
expect_status 0 ctr localhost/sdrl:1 secretctl get rl/root/x
assert_eq "$OUT" "for-the-root-of-the-container" "container root reads rl/root/x"
expect_status 4 ctr localhost/sdrl:1 secretctl get rl/app/x
expect_status 0 ctr --user 1000:1000 localhost/sdrl:1 secretctl get rl/app/x
assert_eq "$OUT" "for-uid-1000-of-the-container" "container uid 1000 reads rl/app/x"
expect_status 4 ctr --user 2000:2000 localhost/sdrl:1 secretctl get rl/app/x
grep -q "\"uid\":$APPUID" "$T/audit.log" || fail "no audit record with uid $APPUID"

CID_LINE=$(sed -n 's/^container=//p' <<<"$WHOAMI_ROOT")
CG=$(sed -n 's/^cgroup=//p' <<<"$WHOAMI_ROOT")
if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] && [ -n "$CID_LINE" ]; then
  note "cgroup v2: the container has a cgroup of its own and the broker names it"
  CID=$(rl podman create --pull never -v "$M" localhost/sdrl:1 secretctl whoami) || fail "podman create"
  expect_status 0 rl podman start --attach "$CID"
  assert_eq "$(sed -n 's/^container=//p' <<<"$OUT")" "$CID" "container id of a rootless container"
else
  note "no cgroup of its own (cgroup v1/hybrid, or no systemd user session): no container identity"
  assert_eq "$CID_LINE" "" "container= of a rootless container without cgroups"
  # The same cgroup as a process of the user outside any container.
  expect_status 0 rl "$CTL" -s "$SECRETD_SOCKET" whoami
  assert_eq "$CG" "$(sed -n 's/^cgroup=//p' <<<"$OUT")" "the container stays in its caller's cgroup"
  assert_contains "$OUT" "host=yes" "the user on the host"
fi

stop_broker
echo "PASS $TEST_NAME"
