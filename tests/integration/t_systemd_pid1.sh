#!/usr/bin/env bash
# The broker's systemd-credential check (broker/credential.c) against real
# pid namespaces and cgroups, without systemd: `unshare --pid --fork
# --mount-proc` makes a namespace whose PID 1 we control, a probe server in
# it classifies each connection as the broker does, and clients bound to
# "@<hex>/unit/x.service/db" ask from various places.  Believed: PID 1 of
# the server's namespace, and root in the cgroup PID 1's tree gives the unit
# (ROOT/<name>.slice/x.service, the shape systemd makes).  Refused: root
# elsewhere, another unit's cgroup, a cgroup made below another unit (what
# delegation allows), a caller that is not root, and PID 1 of a nested pid
# namespace (a container's init).  t_systemd_credential does the
# same with the real systemd and broker.
source "$TESTLIB"
[ "$(id -u)" = 0 ] || fail "needs root"
PROBE=${CREDENTIAL_PROBE:?CREDENTIAL_PROBE must name the probe}
cp "$PROBE" "$T/probe"
chmod 0755 "$T/probe"
SOCK="$T/cred.sock"

# The hierarchy whose line the broker takes the cgroup path from (see
# broker/cgroup.c): the v2 tree, or name=systemd on v1 and hybrid hosts.
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  CGROOT=/sys/fs/cgroup
  CGLINE='0::'
elif [ -d /sys/fs/cgroup/systemd ]; then
  CGROOT=/sys/fs/cgroup/systemd
  CGLINE=':name=systemd:'
else
  fail "no cgroup v2 or name=systemd hierarchy"
fi
own_cgroup() { grep -F "$CGLINE" /proc/self/cgroup | head -n 1 | sed 's/^[^:]*:[^:]*://'; }
BASE=$(own_cgroup)
[ "$BASE" = / ] && BASE=""
# PID 1 of the new namespace stays in our cgroup: the units' tree below it.
SLICE="$BASE/secretd-t$$.slice"
mkdir -p "$CGROOT$SLICE/x.service" "$CGROOT$SLICE/y.service" "$CGROOT$SLICE/y.service/x.service"
remove_cgroups_here() {
  local d
  for d in "$SLICE/y.service/x.service" "$SLICE/y.service" "$SLICE/x.service" "$SLICE"; do
    [ ! -d "$CGROOT$d" ] || rmdir "$CGROOT$d" 2>/dev/null || true
  done
}
at_exit remove_cgroups_here

# Inside the namespace (run by its PID 1, a shell): the server, then each
# client in turn; the last client execs, so that it IS PID 1.  A client in
# a cgroup goes there first (a subshell moving itself) and moves back out.
cat >"$T/inside.sh" <<EOF
set -eu
"$T/probe" serve "$SOCK" 8 >"$T/serve.log" 2>&1 &
for _ in \$(seq 1 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
in_cgroup() { # CGROUP CMD...
  ( cg=\$1; shift; echo \$BASHPID >"$CGROOT\$cg/cgroup.procs"; exec "\$@" )
}
"$T/probe" client "$SOCK" x.service db >"$T/c1"                    # root, PID 2+, our cgroup
in_cgroup "$SLICE/x.service" "$T/probe" client "$SOCK" x.service db >"$T/c2"  # the unit's cgroup
in_cgroup "$SLICE/y.service" "$T/probe" client "$SOCK" x.service db >"$T/c3"  # another unit's
in_cgroup "$SLICE/y.service/x.service" "$T/probe" client "$SOCK" x.service db >"$T/c4"  # below y
in_cgroup "$SLICE/x.service" setpriv --reuid 65534 --regid 65534 --clear-groups -- \\
  "$T/probe" client "$SOCK" x.service db >"$T/c5"                  # not root
unshare --pid --fork --mount-proc "$T/probe" client "$SOCK" x.service db >"$T/c6"  # a nested PID 1
"$T/probe" client "$SOCK" "x.service" "db/../x" >"$T/c7" || echo "got=refused-by-bind" >"$T/c7"
exec "$T/probe" client "$SOCK" x.service db >"$T/c8"               # PID 1 itself
EOF
timeout 60 unshare --pid --fork --mount-proc bash "$T/inside.sh" || fail "the namespace's script failed"
wait_for "the probe's last line" sh -c "[ \$(wc -l <'$T/serve.log') -ge 8 ]"
cat "$T/serve.log" | sed 's/^/# /'

line() { sed -n "${1}p" "$T/serve.log"; }
expect() { # N GOT WHAT: client N read GOT bytes
  assert_eq "$(cat "$T/c$1")" "got=$2" "client $1 ($3)"
}
expect 1 0 "root in the namespace, not in the unit's cgroup"
assert_contains "$(line 1)" "detect=1 unit=x.service id=db trusted=no" "server on client 1"
expect 2 11 "root in ROOT/<slice>/x.service"
assert_contains "$(line 2)" "trusted=yes" "server on client 2"
expect 3 0 "root in another unit's cgroup"
assert_contains "$(line 3)" "trusted=no" "server on client 3"
expect 4 0 "root in a cgroup made below another unit"
assert_contains "$(line 4)" "trusted=no" "server on client 4"
expect 5 0 "not root, in the unit's cgroup"
assert_contains "$(line 5)" "trusted=no" "server on client 5"
expect 6 0 "PID 1 of a nested pid namespace"
assert_contains "$(line 6)" "trusted=no" "server on client 6"
assert_contains "$(line 6)" "pid namespace" "why client 6 was refused"
# "db/../x" cannot be bound as one credential id: the address holds more
# '/' than the grammar allows, so the server sees no credential request.
assert_contains "$(line 7)" "detect=0" "server on client 7"
expect 8 11 "PID 1"
assert_contains "$(line 8)" "trusted=yes pid=1" "server on client 8"
