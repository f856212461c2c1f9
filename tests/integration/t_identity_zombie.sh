#!/usr/bin/env bash
# A process whose main thread has called pthread_exit, and whose second
# thread then connects, is refused an identity on every cgroup layout.
#
# On v1 and hybrid hosts the kernel prints "/" on every v1 line of
# /proc/PID/cgroup once the thread-group leader is exiting, so such a
# caller in a container's cgroup used to be seen in "/" with no container,
# and `deny ... container=*` stopped applying to it.  The pidfd stays alive
# (other threads live), so only the leader's own state tells.
source "$TESTLIB"
source "$(dirname "$TESTLIB")/cgroups.sh"
at_exit remove_cgroups
: "${ZOMBIE_LEADER:?ZOMBIE_LEADER must name the zombie_leader helper}"

ID=$(random_hex 64)
CG=/system.slice/docker-$ID.scope

# Where the kernel shows the container: v2 alone, or (v1 and hybrid hosts)
# only the v1 hierarchies, as Docker's cgroupfs driver does on hybrid hosts.
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  LAYOUT=v2
  ROOTS=(/sys/fs/cgroup)
else
  LAYOUT=v1
  ROOTS=(/sys/fs/cgroup/systemd)
fi
note "layout: $LAYOUT ($(tr '\n' ' ' </proc/self/cgroup))"
for r in "${ROOTS[@]}"; do
  mkdir -p "$r$CG"
  CGROUP_MADE+=("$r$CG")
done
# in_ctr CMD...: run CMD moved into the container-like cgroup (the shell
# that moves itself execs CMD, so in the background $! is CMD's pid).
IN_CTR=(sh -c 'for f in "$@"; do [ "$f" = -- ] && break; echo $$ > "$f" || exit 97; done
               while [ "$1" != -- ]; do shift; done; shift; exec "$@"' sh)
for r in "${ROOTS[@]}"; do IN_CTR+=("$r$CG/cgroup.procs"); done
IN_CTR+=(--)
in_ctr() { "${IN_CTR[@]}" "$@"; }

write_policy <<POLICY
permit write app/x   uid=0 host
permit read  app/x   any
deny   read  app/x   container=*
POLICY
start_broker
printf 'v' | "$CTL" put app/x >/dev/null

note "a host process reads app/x; a process in the container's cgroup is denied"
expect_status 0 "$CTL" get app/x
expect_status 4 in_ctr "$CTL" get app/x
expect_status 0 in_ctr "$CTL" whoami
assert_eq "$(whoami_field container)" "$ID" "container of an ordinary caller"

note "the same cgroup, main thread exited, second thread connecting"
ZSOCK=$T/zombie.sock
"${IN_CTR[@]}" "$ZOMBIE_LEADER" "$ZSOCK" "$SECRETD_SOCKET" </dev/null >/dev/null 2>"$T/zombie.err" &
ZPID=$!
at_exit "kill $ZPID 2>/dev/null; wait $ZPID 2>/dev/null"
wait_for "the zombie-leader helper" test -S "$ZSOCK"
state=$(sed 's/.*) //' "/proc/$ZPID/stat" | cut -d' ' -f1)
assert_eq "$state" "Z" "state of the helper's main thread"
note "what /proc shows for it: $(tr '\n' ' ' <"/proc/$ZPID/cgroup")"

expect_status 0 "$CTL" -s "$ZSOCK" whoami
printf '%s\n' "$OUT" | sed 's/^/#   /'
assert_eq "$(whoami_field pid)" "$ZPID" "the broker's peer is the helper"
[ "$(whoami_field identity)" != ok ] ||
  fail "identity established for a caller whose main thread exited (cgroup [$(whoami_field cgroup)], container [$(whoami_field container)])"
assert_contains "$(whoami_field identity)" "main thread"
assert_eq "$(whoami_field container)" "" "no container claimed"
assert_eq "$(whoami_field cgroup)" "" "no cgroup claimed"
expect_status 4 "$CTL" -s "$ZSOCK" get app/x
assert_eq "$OUT" "" "nothing printed on denial"
assert_contains "$ERR" "main thread"
grep -q '"error":"identity not established"' "$T/audit.log" ||
  fail "the refusal is not in the audit log"
grep -q "main thread" "$T/broker.log" || fail "the broker did not log why"

stop_broker
echo "PASS $TEST_NAME"
