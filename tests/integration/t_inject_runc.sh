#!/usr/bin/env bash
# The deployment end to end, with two real runc containers of one pod sharing
# one tmpfs (as an emptyDir with medium Memory): the init container, admitted
# by its cgroup and container id, injects the secrets; the app container
# reads the files and is itself denied on the socket, though it sits in the
# same pod and runs as the files' owner.
source "$TESTLIB"
source "$(dirname "$TESTLIB")/runc.sh"
source "$(dirname "$TESTLIB")/cgroups.sh"
at_exit runc_cleanup

[ "$(id -u)" = 0 ] || fail "needs root"

SOCKDIR="$T/sock"
export SECRETD_SOCKET="$SOCKDIR/secretd.sock"
mkdir -m 0755 "$SOCKDIR"

BIN=${SECRETCTL_STATIC:-$SECRETCTL}
mkdir "$T/bin"
cp "$BIN" "$T/bin/secretctl"
runc_rootfs "$T/rootfs" "$T/bin/secretctl" || fail "could not build the rootfs"

# The pod's shared volume: a host tmpfs bound into both containers.
VOL="$T/vol"
mkdir "$VOL"
mount -t tmpfs -o size=1m,mode=0755 tmpfs "$VOL" || fail "cannot mount a tmpfs at $VOL"
at_exit "umount '$VOL'"

NI=init-$$
NA=app-$$
INIT=$(runc_cid "$NI")
APP=$(runc_cid "$NA")
POD=$(random_uuid)
CG_INIT="/kubepods/besteffort/pod$POD/$INIT"
CG_APP="/kubepods/besteffort/pod$POD/$APP"

# runc leaves the kubepods parents behind: remove the ones made here (only
# while empty).
KUBE_PARENTS=()
for root in /sys/fs/cgroup /sys/fs/cgroup/*; do
  [ -d "$root" ] || continue
  [ -e "$root/kubepods" ] || KUBE_PARENTS+=("$root/kubepods")
done
remove_kube_cgroups() {
  local root d
  for root in /sys/fs/cgroup /sys/fs/cgroup/*; do
    d="$root/kubepods/besteffort/pod$POD"
    [ ! -d "$d" ] || rmdir "$d" 2>/dev/null || true
  done
  for d in "${KUBE_PARENTS[@]}"; do
    [ ! -d "$d/besteffort" ] || rmdir "$d/besteffort" 2>/dev/null || true
    [ ! -d "$d" ] || rmdir "$d" 2>/dev/null || true
  done
  return 0
}
at_exit remove_kube_cgroups

write_policy <<POLICY
permit all   **           uid=0 host
permit read  db/password  cgroup=/kubepods/*/pod$POD/$INIT
permit read  app/**       container=$INIT
POLICY
start_broker
printf 'hunter2\000with a NUL\n' >"$T/v.db"
printf 'token-value' >"$T/v.token"
"$CTL" put db/password <"$T/v.db" >/dev/null || fail "put db/password"
"$CTL" put app/token <"$T/v.token" >/dev/null || fail "put app/token"

# ctr WANT NAME CGROUP UID CMD...: run CMD in a fresh container of the pod
# with the socket folder and the volume mounted; require its exit status.
ctr() {
  local want=$1 name=$2 cg=$3 uid=$4 rc=0
  shift 4
  RUNC_CGROUPS_PATH=$cg runc_run "$name" "$T/rootfs" "$uid" "$uid" \
    "$SOCKDIR:/run/secretd:ro" "$VOL:/secrets" -- "$@" >"$T/out" 2>"$T/err" || rc=$?
  OUT=$(cat "$T/out")
  ERR=$(cat "$T/err")
  [ "$rc" -eq "$want" ] || fail "container $name: expected exit $want, got $rc from: $* (stderr: $ERR)"
}
listing() { ls -A "$1" | tr '\n' ' ' | sed 's/ $//'; }
INJECT=(secretctl inject --dir /secrets --owner 1000:1000 db/password app/token=token)

note "the init container without CAP_CHOWN cannot set the owner: exit 1, volume left empty"
ctr 1 "$NI" "$CG_INIT" 0 "${INJECT[@]}"
assert_contains "$ERR" "setting the owner"
assert_eq "$(listing "$VOL")" "" "volume after a failed init"

note "without --owner, root without CAP_CHOWN keeps its own owner: that works"
ctr 0 "$NI" "$CG_INIT" 0 secretctl inject --dir /secrets app/token=root-owned
assert_eq "$(stat -c '%a %u %g' "$VOL/root-owned")" "400 0 0" "root's own owner"
rm "$VOL/root-owned"

note "the init container (root with CAP_CHOWN and CAP_FOWNER, as Docker gives) injects"
RUNC_CAPS="CAP_CHOWN CAP_FOWNER" ctr 0 "$NI" "$CG_INIT" 0 "${INJECT[@]}"
assert_eq "$(listing "$VOL")" "db_password token" "files on the volume"
assert_eq "$(stat -c '%a %u %g' "$VOL/db_password")" "400 1000 1000" "db_password mode/owner"
assert_eq "$(stat -c '%a %u %g' "$VOL/token")" "400 1000 1000" "token mode/owner"
cmp "$VOL/db_password" "$T/v.db" || fail "db_password differs from the secret"
cmp "$VOL/token" "$T/v.token" || fail "token differs from the secret"
grep -q "\"container\":\"$INIT\"" "$T/audit.log" || fail "no audit record for the init container"

note "the app container (uid 1000, same pod) reads the files"
ctr 0 "$NA" "$CG_APP" 1000 sh -c 'id -u; cat /secrets/token; echo; od -An -c /secrets/db_password'
assert_eq "$(sed -n 1p <<<"$OUT")" "1000" "app uid"
assert_eq "$(sed -n 2p <<<"$OUT")" "token-value" "token read in the app"
assert_contains "$OUT" 'h   u   n   t   e   r   2  \0   w   i   t   h'
# Byte for byte (the value holds a NUL, which $(...) would drop).
RUNC_CGROUPS_PATH=$CG_APP runc_run "$NA" "$T/rootfs" 1000 1000 "$VOL:/secrets:ro" -- cat /secrets/db_password >"$T/app.db" ||
  fail "app could not cat db_password"
cmp "$T/app.db" "$T/v.db" || fail "bytes read in the app differ from the secret"

note "the app container is denied on the socket: get, inject and list give it nothing"
ctr 0 "$NA" "$CG_APP" 1000 secretctl whoami
assert_contains "$OUT" "container=$APP"
assert_contains "$OUT" "pod=$POD"
ctr 4 "$NA" "$CG_APP" 1000 secretctl get db/password
assert_eq "$OUT" "" "app get printed something"
ctr 4 "$NA" "$CG_APP" 1000 secretctl get app/token
ctr 4 "$NA" "$CG_APP" 1000 secretctl inject --dir /tmp app/token
ctr 0 "$NA" "$CG_APP" 1000 secretctl list
assert_eq "$OUT" "" "app lists names"
note "... and as root in the same pod too"
ctr 4 "$NA" "$CG_APP" 0 secretctl get db/password
grep -q "\"container\":\"$APP\".*\"decision\":\"deny\"\|\"decision\":\"deny\".*\"container\":\"$APP\"" \
  "$T/audit.log" || fail "no deny record for the app container"

note "the app cannot change the files (0400, read-only for it)"
ctr 1 "$NA" "$CG_APP" 1000 sh -c 'echo x >/secrets/token'
cmp "$VOL/token" "$T/v.token" || fail "token changed by the app"

note "a second init run replaces the files atomically, nothing left over"
printf 'rotated' | "$CTL" put app/token >/dev/null
RUNC_CAPS="CAP_CHOWN CAP_FOWNER" ctr 0 "$NI" "$CG_INIT" 0 "${INJECT[@]}"
ctr 0 "$NA" "$CG_APP" 1000 cat /secrets/token
assert_eq "$OUT" "rotated" "rotated token"
assert_eq "$(listing "$VOL")" "db_password token" "files on the volume after a rerun"

stop_broker
echo "PASS $TEST_NAME"
