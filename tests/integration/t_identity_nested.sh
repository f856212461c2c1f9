#!/usr/bin/env bash
# A process that may write its own cgroup (a subtree delegated to it, as
# Podman --systemd, privileged pods and systemd's Delegate= give) creates a
# cgroup named after another container (or pod) inside its own and moves
# into it.  The broker keeps seeing it as its own container (the outermost
# id), and an exact-depth cgroup= pattern does not match it at all.
#
# Real cgroups under /sys/fs/cgroup, delegated to uid 1000 by chown as
# systemd does it; the nesting is done by uid 1000 itself.
source "$TESTLIB"
source "$(dirname "$TESTLIB")/cgroups.sh"
at_exit remove_cgroups

X=$(random_hex 64)   # the attacker's own container
Y=$(random_hex 64)   # the victim container
P=$(random_uuid)     # the attacker's pod
Q=$(random_uuid)     # the victim pod
C=$(random_hex 64)   # the attacker's container in pod P

OWN=/machine.slice/libpod-$X.scope
VICTIM=/machine.slice/libpod-$Y.scope
POD_OWN=/kubepods.slice/kubepods-pod${P//-/_}.slice/cri-containerd-$C.scope

# delegate PATH: make PATH in every hierarchy and give it to uid 1000, the
# way systemd delegates a unit's cgroup (the directory and the files that
# move processes).
delegate() {
  local root f
  make_cgroup "$1"
  for root in $(cgroup_roots); do
    chown 1000:1000 "$root$1"
    for f in cgroup.procs cgroup.threads cgroup.subtree_control tasks; do
      [ ! -e "$root$1/$f" ] || chown 1000:1000 "$root$1/$f"
    done
  done
}

# nested OUTER INNER CMD...: put a shell into OUTER (as root, like the
# runtime), become uid 1000, create OUTER/INNER in every hierarchy as that
# user, move itself in, run CMD.
cat >"$T/nest.sh" <<'SH'
#!/bin/sh
# nest.sh OUTER INNER ROOTS... -- CMD...
outer=$1 inner=$2
shift 2
roots=""
while [ "$1" != -- ]; do roots="$roots $1"; shift; done
shift
for r in $roots; do echo $$ >"$r$outer/cgroup.procs" || exit 97; done
export roots outer inner
exec setpriv --reuid 1000 --regid 1000 --clear-groups -- sh -c '
  for r in $roots; do
    mkdir -p "$r$outer$inner" || exit 98
    echo $$ >"$r$outer$inner/cgroup.procs" || exit 99
  done
  exec "$@"' sh "$@"
SH
chmod 0755 "$T/nest.sh"
nested() {
  local outer=$1 inner=$2 root
  shift 2
  for root in $(cgroup_roots); do CGROUP_MADE+=("$root$outer$inner"); done
  "$T/nest.sh" "$outer" "$inner" $(cgroup_roots) -- "$@"
}
U=(setpriv --reuid 1000 --regid 1000 --clear-groups --)

write_policy <<POLICY
permit all   **                      uid=0 host
permit read  c/\${container}/**      container=*
permit read  e/\${container}/**      container=* cgroup=/machine.slice/libpod-*.scope
permit read  p/\${pod}/**            pod=*
POLICY
start_broker
for n in "c/$X/k" "c/$Y/k" "e/$X/k" "e/$Y/k" "p/$P/k" "p/$Q/k"; do
  printf 'v' | "$CTL" put "$n" >/dev/null
done
delegate "$OWN"
delegate "$POD_OWN"
make_cgroup "$VICTIM"

note "the victim container, directly in its scope, reads its own secrets"
expect_status 0 in_cgroup "$VICTIM" "${U[@]}" "$CTL" whoami
assert_eq "$(whoami_field container)" "$Y" "victim's container"
expect_status 0 in_cgroup "$VICTIM" "${U[@]}" "$CTL" get "c/$Y/k"
expect_status 0 in_cgroup "$VICTIM" "${U[@]}" "$CTL" get "e/$Y/k"

note "the attacker in its own delegated scope"
expect_status 0 in_cgroup "$OWN" "${U[@]}" "$CTL" whoami
assert_eq "$(whoami_field container)" "$X" "attacker's container"
expect_status 0 in_cgroup "$OWN" "${U[@]}" "$CTL" get "e/$X/k"

note "the attacker nests libpod-<victim>.scope inside its own scope and moves in"
expect_status 0 nested "$OWN" "/libpod-$Y.scope" "$CTL" whoami
printf '%s\n' "$OUT" | sed 's/^/#   /'
assert_eq "$(whoami_field uid)" "1000" "the nesting was done by uid 1000"
assert_eq "$(whoami_field cgroup)" "$OWN/libpod-$Y.scope" "the nested cgroup is real"
assert_eq "$(whoami_field container)" "$X" "container of the nested caller (the outermost id)"
assert_eq "$(whoami_field identity)" "ok"
expect_status 4 nested "$OWN" "/libpod-$Y.scope" "$CTL" get "c/$Y/k"
expect_status 0 nested "$OWN" "/libpod-$Y.scope" "$CTL" get "c/$X/k"
note "an exact-depth cgroup= pattern does not match a nested cgroup at all"
expect_status 4 nested "$OWN" "/libpod-$Y.scope" "$CTL" get "e/$Y/k"
expect_status 4 nested "$OWN" "/libpod-$Y.scope" "$CTL" get "e/$X/k"
note "deeper, with a container-like sub-cgroup on the way"
expect_status 0 nested "$OWN" "/system.slice/libpod-$Y.scope/container" "$CTL" whoami
assert_eq "$(whoami_field container)" "$X" "container of a deeper nested caller"

note "a pod's container nests kubepods-pod<other>.slice: still its own pod"
expect_status 0 nested "$POD_OWN" "/kubepods-pod${Q//-/_}.slice/cri-containerd-$Y.scope" "$CTL" whoami
printf '%s\n' "$OUT" | sed 's/^/#   /'
assert_eq "$(whoami_field pod)" "$P" "pod of the nested caller (the outermost pod)"
assert_eq "$(whoami_field container)" "$C" "container of the nested caller"
expect_status 4 nested "$POD_OWN" "/kubepods-pod${Q//-/_}.slice" "$CTL" get "p/$Q/k"
expect_status 0 nested "$POD_OWN" "/kubepods-pod${Q//-/_}.slice" "$CTL" get "p/$P/k"

note "check-policy derives the same ids from the nested path"
expect_status 1 "$SECRETD" check-policy "$T/policy.conf" --as uid=1000 \
  "cgroup=$OWN/libpod-$Y.scope" read "c/$Y/k"
expect_status 0 "$SECRETD" check-policy "$T/policy.conf" --as uid=1000 \
  "cgroup=$OWN/libpod-$Y.scope" read "c/$X/k"

stop_broker
echo "PASS $TEST_NAME"
