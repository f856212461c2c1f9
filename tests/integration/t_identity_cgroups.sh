#!/usr/bin/env bash
# Callers placed into real cgroups with runtime-shaped paths: the broker
# derives container ids and pod UIDs from the kernel's view, whoami shows
# them, and policy decides on them.
source "$TESTLIB"
source "$(dirname "$TESTLIB")/cgroups.sh"
at_exit remove_cgroups

ID1=$(random_hex 64)
ID2=$(random_hex 64)
ID3=$(random_hex 64)
POD=$(random_uuid)
POD_=${POD//-/_}

write_policy <<POLICY
permit all   **                          uid=0 host
permit read  c/\${container}/**          container=*
permit read  p/\${pod}/**                pod=*
permit read  app/one                     container=${ID1:0:12}
permit read  app/docker                  cgroup=/system.slice/docker-*.scope
deny   all   **                          cgroup=/secretd-test-deny/**
POLICY
start_broker
for n in c/$ID1/a c/$ID2/a p/$POD/x app/one app/docker; do
  printf 'v' | "$CTL" put "$n" >/dev/null
done

check_ids() { # PATH CONTAINER POD
  expect_status 0 in_cgroup "$1" "$CTL" whoami
  assert_eq "$(whoami_field cgroup)" "$1" "cgroup of $1"
  assert_eq "$(whoami_field container)" "$2" "container of $1"
  assert_eq "$(whoami_field pod)" "$3" "pod of $1"
  assert_eq "$(whoami_field identity)" "ok" "identity of $1"
}

note "host process: no container, host=yes, pidfd-verified"
expect_status 0 "$CTL" whoami
assert_eq "$(whoami_field container)" ""
assert_eq "$(whoami_field host)" "yes"
assert_eq "$(whoami_field pidfd)" "yes"
assert_eq "$(whoami_field uid)" "0"

note "Docker, systemd driver"
check_ids "/system.slice/docker-$ID1.scope" "$ID1" ""
note "Docker, cgroupfs driver"
check_ids "/docker/$ID2" "$ID2" ""
note "docker in docker: the outermost id (the inner one is the outer container's own naming)"
check_ids "/docker/$ID1/docker/$ID2" "$ID1" ""
note "containerd CRI under kubepods, systemd driver"
check_ids "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod$POD_.slice/cri-containerd-$ID3.scope" "$ID3" "$POD"
note "kubepods, cgroupfs driver"
check_ids "/kubepods/besteffort/pod$POD/$ID1" "$ID1" "$POD"
note "CRI-O, and its conmon which is no container"
check_ids "/kubepods.slice/kubepods-pod$POD_.slice/crio-$ID2.scope" "$ID2" "$POD"
check_ids "/kubepods.slice/kubepods-pod$POD_.slice/crio-conmon-$ID2.scope" "" "$POD"
note "Podman, and its conmon"
check_ids "/machine.slice/libpod-$ID3.scope" "$ID3" ""
check_ids "/machine.slice/libpod-conmon-$ID3.scope" "" ""

note "runc's cgroupfs driver writing the systemd driver's slice:prefix:id names"
check_ids "/kubepods-besteffort-pod$POD_.slice:cri-containerd:$ID1" "$ID1" "$POD"
check_ids "/system.slice/containerd.service/kubepods-burstable-pod$POD_.slice:cri-containerd:$ID2" "$ID2" "$POD"
check_ids "/kuberuntime/containerd/kubepods-pod$POD_.slice:cri-containerd:$ID3" "$ID3" "$POD"
check_ids "/podruntime.slice/kubepods-besteffort-pod$POD_.slice:cri-o:$ID1" "$ID1" "$POD"
check_ids "/system.slice/docker.service/kubepods-pod$POD_.slice:docker:$ID2" "$ID2" "$POD"
check_ids "/kubepods-besteffort-pod$POD_.slice:crio-conmon:$ID2" "" ""
note "Podman --cgroups=split, nerdctl"
check_ids "/system.slice/app.service/libpod-payload-$ID1" "$ID1" ""
check_ids "/system.slice/app.service/libpod-payload-$ID2.scope" "$ID2" ""
check_ids "/system.slice/nerdctl-$ID3.scope" "$ID3" ""
note "static pods: a 32-hex pod UID, cgroupfs and systemd drivers"
SPOD=$(random_hex 32)
check_ids "/kubepods/burstable/pod$SPOD/$ID1" "$ID1" "$SPOD"
check_ids "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod$SPOD.slice/cri-containerd-$ID2.scope" "$ID2" "$SPOD"
note "kind: the node container's id, no pod (named below the node, by the node)"
check_ids "/system.slice/docker-$ID1.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod$POD_.slice/cri-containerd-$ID2.scope" "$ID1" ""
note "still refused: an unprefixed <id>.scope"
check_ids "/system.slice/$ID1.scope" "" ""

if [ -d /sys/fs/cgroup/systemd ] && [ -f /sys/fs/cgroup/unified/cgroup.procs ]; then
  note "hybrid host: v1 reaches a kind pod, the unified line stops at the node"
  NODE=/docker/$ID1
  INNER=$NODE/kubelet/kubepods/besteffort/pod$POD/$ID2
  mkdir -p "/sys/fs/cgroup/systemd$INNER" "/sys/fs/cgroup/unified$NODE"
  CGROUP_MADE+=("/sys/fs/cgroup/systemd$INNER" "/sys/fs/cgroup/unified$NODE")
  hybrid_run() { # V1PATH UNIFIEDPATH CMD...
    local v1=$1 v2=$2
    shift 2
    sh -c 'echo $$ >"$1" && echo $$ >"$2" && shift 2 && exec "$@"' sh \
      "/sys/fs/cgroup/systemd$v1/cgroup.procs" "/sys/fs/cgroup/unified$v2/cgroup.procs" "$@"
  }
  expect_status 0 hybrid_run "$INNER" "$NODE" "$CTL" whoami
  assert_eq "$(whoami_field cgroup)" "$INNER" "cgroup of the kind pod"
  assert_eq "$(whoami_field container)" "$ID1" "the node container, agreed by both lines"
  assert_eq "$(whoami_field pod)" "" "no pod"
  assert_eq "$(whoami_field identity)" "ok"
  note "hybrid host: unrelated ids on the two lines are a conflict"
  OTHER=/docker/$ID3
  mkdir -p "/sys/fs/cgroup/unified$OTHER"
  CGROUP_MADE+=("/sys/fs/cgroup/unified$OTHER")
  expect_status 0 hybrid_run "$INNER" "$OTHER" "$CTL" whoami
  assert_eq "$(whoami_field container)" "" "no container on a conflict"
  assert_contains "$(whoami_field identity)" "disagree about the container"
fi

note "policy: container prefix, templated subtrees, pods, cgroup globs (as uid 1000:"
note "root on the host would pass the first rule)"
U=(setpriv --reuid 1000 --regid 1000 --clear-groups --)
expect_status 0 in_cgroup "/docker/$ID1" "${U[@]}" "$CTL" get app/one
expect_status 4 in_cgroup "/docker/$ID2" "${U[@]}" "$CTL" get app/one
expect_status 0 in_cgroup "/docker/$ID1" "${U[@]}" "$CTL" get "c/$ID1/a"
expect_status 4 in_cgroup "/docker/$ID1" "${U[@]}" "$CTL" get "c/$ID2/a"
expect_status 0 in_cgroup "/docker/$ID2" "${U[@]}" "$CTL" get "c/$ID2/a"
expect_status 0 in_cgroup "/kubepods/burstable/pod$POD/$ID3" "${U[@]}" "$CTL" get "p/$POD/x"
expect_status 4 in_cgroup "/kubepods/burstable/pod$(random_uuid)/$ID3" "${U[@]}" "$CTL" get "p/$POD/x"
expect_status 0 in_cgroup "/system.slice/docker-$ID3.scope" "${U[@]}" "$CTL" get app/docker
expect_status 4 in_cgroup "/docker/$ID3" "${U[@]}" "$CTL" get app/docker
note "a host process has no \${container}: the templated rule does not match"
expect_status 4 "${U[@]}" "$CTL" get "c/$ID1/a"
note "root in a deny cgroup is denied (the later rule wins over uid=0 host)"
expect_status 4 in_cgroup "/secretd-test-deny/x" "$CTL" get app/one
expect_status 0 "$CTL" get app/one

note "uid, gid and groups via setpriv"
expect_status 0 setpriv --reuid 1234 --regid 4321 --groups 7,8 -- "$CTL" whoami
assert_eq "$(whoami_field uid)" "1234"
assert_eq "$(whoami_field gid)" "4321"
assert_eq "$(whoami_field groups)" "7,8"

note "a user namespace: the broker sees the host-side uid"
expect_status 0 setpriv --reuid 1000 --regid 1000 --clear-groups -- \
  unshare --user --map-root-user sh -c 'id -u; exec "$0" whoami' "$CTL"
assert_contains "$OUT" "uid=1000"
assert_eq "$(head -n1 <<<"$OUT")" "0" "uid inside the namespace"

note "root in another pid namespace is not 'host'"
expect_status 0 unshare --pid --fork --mount-proc "$CTL" whoami
assert_eq "$(whoami_field host)" "no"
assert_eq "$(whoami_field uid)" "0"
expect_status 4 unshare --pid --fork --mount-proc "$CTL" get app/one

stop_broker
echo "PASS $TEST_NAME"
