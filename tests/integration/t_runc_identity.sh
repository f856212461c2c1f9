#!/usr/bin/env bash
# Identity of callers in real runc containers: the broker sees the container
# the kernel put them in (its 64-hex id, its cgroup, its pod), never what the
# client says; policy decides on that.  The containers run the static
# secretctl from a busybox rootfs, with the socket's folder bind-mounted
# read-only at /run/secretd (the default socket path inside).
source "$TESTLIB"
source "$(dirname "$TESTLIB")/runc.sh"
source "$(dirname "$TESTLIB")/cgroups.sh"
at_exit runc_cleanup

[ "$(id -u)" = 0 ] || fail "needs root"

SOCKDIR="$T/sock"
export SECRETD_SOCKET="$SOCKDIR/secretd.sock"
mkdir -m 0755 "$SOCKDIR"

# The static client when the build made one, named secretctl in the image.
BIN=${SECRETCTL_STATIC:-$SECRETCTL}
mkdir "$T/bin"
cp "$BIN" "$T/bin/secretctl"
runc_rootfs "$T/rootfs" "$T/bin/secretctl" || fail "could not build the rootfs"

NA=ra-$$
NB=rb-$$
NR=rr-$$
NK=rk-$$
NK2=rk2-$$
A=$(runc_cid "$NA")
B=$(runc_cid "$NB")
K=$(runc_cid "$NK")
K2=$(runc_cid "$NK2")
POD=$(random_uuid)
POD2=$(random_uuid)

# runc makes the kubepods parents in every hierarchy and leaves them behind
# when the container is deleted: remove the ones this test made (only while
# empty; a real /kubepods with pods in it is left alone).
KUBE_PARENTS=()
for root in /sys/fs/cgroup /sys/fs/cgroup/*; do
  [ -d "$root" ] || continue
  [ -e "$root/kubepods" ] || KUBE_PARENTS+=("$root/kubepods")
done
remove_kube_cgroups() {
  local root d
  for root in /sys/fs/cgroup /sys/fs/cgroup/*; do
    for d in "$root/kubepods/besteffort/pod$POD" "$root/kubepods/besteffort/pod$POD2"; do
      [ ! -d "$d" ] || rmdir "$d" 2>/dev/null || true
    done
  done
  for d in "${KUBE_PARENTS[@]}"; do
    [ ! -d "$d/besteffort" ] || rmdir "$d/besteffort" 2>/dev/null || true
    [ ! -d "$d" ] || rmdir "$d" 2>/dev/null || true
  done
  return 0
}
at_exit remove_kube_cgroups

write_policy <<POLICY
permit all   **                     uid=0 host
permit read  app/a/*                container=${A:0:12}
permit read  c/\${container}/**     container=*
permit read  p/\${pod}/**           pod=*
permit read  pod/shared             pod=$POD
POLICY
start_broker
put() { printf '%s' "$2" | "$CTL" put "$1" >/dev/null || fail "put $1"; }
put app/a/db "value-of-a"
put top/secret "root-only"
put "c/$A/key" "key-of-a"
put "c/$B/key" "key-of-b"
put "p/$POD/x" "pod-one"
put "p/$POD2/x" "pod-two"
put pod/shared "shared-in-pod"

# in_ctr WANT NAME UID CMD...: run CMD in a fresh container NAME as UID:UID
# (cgroup /secretd-test/<id>, or $RUNC_CGROUPS_PATH) and require its exit
# status; output in $OUT and $ERR.
in_ctr() {
  local want=$1 name=$2 uid=$3 rc=0
  shift 3
  runc_run "$name" "$T/rootfs" "$uid" "$uid" "$SOCKDIR:/run/secretd:ro" -- "$@" \
    >"$T/out" 2>"$T/err" || rc=$?
  OUT=$(cat "$T/out")
  ERR=$(cat "$T/err")
  [ "$rc" -eq "$want" ] || fail "container $name (uid $uid): expected exit $want, got $rc from: $* (stderr: $ERR)"
}

note "whoami in container A as uid 1000: its id, its cgroup, not the host, pidfd-verified"
in_ctr 0 "$NA" 1000 secretctl whoami
printf '%s\n' "$OUT" | sed 's/^/#   /'
assert_eq "$(whoami_field container)" "$A" "container id"
[[ "$(whoami_field container)" =~ ^[0-9a-f]{64}$ ]] || fail "container id is not 64 hex"
assert_eq "$(whoami_field cgroup)" "/secretd-test/$A" "cgroup"
assert_eq "$(whoami_field pod)" "" "pod"
assert_eq "$(whoami_field host)" "no" "host"
assert_eq "$(whoami_field pidfd)" "yes" "pidfd"
assert_eq "$(whoami_field uid)" "1000" "uid"
assert_eq "$(whoami_field gid)" "1000" "gid"
assert_eq "$(whoami_field identity)" "ok" "identity"
# The pid is the broker's view (the host's), not the container's pid 1.
PID=$(whoami_field pid)
[[ "$PID" =~ ^[0-9]+$ ]] && [ "$PID" != 1 ] || fail "pid [$PID] is not a host pid"

note "the container the policy names reads its secret; another is denied"
in_ctr 0 "$NA" 1000 secretctl get app/a/db
assert_eq "$OUT" "value-of-a" "value read in A"
in_ctr 4 "$NB" 1000 secretctl get app/a/db
assert_eq "$OUT" "" "nothing printed on denial"
note "B may not even learn whether a name exists (denied, not 'not found')"
in_ctr 4 "$NB" 1000 secretctl get app/a/missing

note "root inside a container does not pass 'uid=0 host'"
in_ctr 0 "$NR" 0 secretctl whoami
assert_eq "$(whoami_field uid)" "0" "uid of root in the container"
assert_eq "$(whoami_field host)" "no" "root in a container is not the host"
in_ctr 4 "$NR" 0 secretctl get top/secret
in_ctr 4 "$NR" 0 sh -c 'echo overwrite | secretctl put top/secret'
in_ctr 4 "$NR" 0 secretctl rm top/secret
expect_status 0 "$CTL" get top/secret
assert_eq "$OUT" "root-only" "host root still reads, value unchanged"

note "a templated rule keeps two containers out of each other's subtrees"
in_ctr 0 "$NA" 1000 secretctl get "c/$A/key"
assert_eq "$OUT" "key-of-a"
in_ctr 4 "$NA" 1000 secretctl get "c/$B/key"
in_ctr 0 "$NB" 1000 secretctl get "c/$B/key"
assert_eq "$OUT" "key-of-b"
in_ctr 4 "$NB" 1000 secretctl get "c/$A/key"
note "root in a container is held to its own subtree too (not found there, denied elsewhere)"
in_ctr 3 "$NR" 0 secretctl get "c/$(runc_cid "$NR")/missing"
in_ctr 4 "$NR" 0 secretctl get "c/$A/key"

note "a container in a kubepods-shaped cgroup: its pod, pod selector, \${pod} rule"
export RUNC_CGROUPS_PATH="/kubepods/besteffort/pod$POD/$K"
in_ctr 0 "$NK" 1000 secretctl whoami
printf '%s\n' "$OUT" | sed 's/^/#   /'
assert_eq "$(whoami_field cgroup)" "$RUNC_CGROUPS_PATH" "kubepods cgroup"
assert_eq "$(whoami_field container)" "$K" "container id in a pod"
assert_eq "$(whoami_field pod)" "$POD" "pod UID"
assert_eq "$(whoami_field host)" "no" "host in a pod"
in_ctr 0 "$NK" 1000 secretctl get "p/$POD/x"
assert_eq "$OUT" "pod-one"
in_ctr 4 "$NK" 1000 secretctl get "p/$POD2/x"
in_ctr 0 "$NK" 1000 secretctl get pod/shared
assert_eq "$OUT" "shared-in-pod"
in_ctr 4 "$NK" 1000 secretctl get app/a/db
export RUNC_CGROUPS_PATH="/kubepods/besteffort/pod$POD2/$K2"
in_ctr 0 "$NK2" 1000 secretctl whoami
assert_eq "$(whoami_field pod)" "$POD2" "second pod UID"
in_ctr 0 "$NK2" 1000 secretctl get "p/$POD2/x"
assert_eq "$OUT" "pod-two"
in_ctr 4 "$NK2" 1000 secretctl get "p/$POD/x"
in_ctr 4 "$NK2" 1000 secretctl get pod/shared
unset RUNC_CGROUPS_PATH

note "a container not in any rule's cgroup gets nothing, and the audit log names it"
in_ctr 4 "$NB" 1000 secretctl get pod/shared
grep -q "\"container\":\"$B\"" "$T/audit.log" || fail "audit log has no record naming container B"

stop_broker
echo "PASS $TEST_NAME"
