#!/usr/bin/env bash
# Brokers on an etcd cluster with client TLS (CA, client certificates) and
# authentication on: etcd-cacert, etcd-cert, etcd-key, etcd-user and
# etcd-password-file; puts, rms and watches propagate; the password is
# nowhere in a log; a node with a wrong password does not follow and
# refuses writes with status 6.
source "$TESTLIB"
source "$(dirname "$TESTLIB")/etcd.sh"
etcd_cluster_start tls
PASSWORD="pw-$RANDOM$RANDOM-tls"
etcd_auth_enable fleet "$PASSWORD"
source "$(dirname "$TESTLIB")/fleetlib.sh"
FLEET_AUTH=1
FLEET_USER=fleet
fleet_password "$PASSWORD"
node_setup 1
node_setup 2
grep -q '^etcd-endpoints = https://' "$(node_dir 1)/secretd.conf" || fail "endpoints are not https"
fleet_start 2

note "put on node 1, served by node 2; and back"
expect_status 0 on 1 put tls/a <<<"over-tls"
assert_eq "$OUT" "1" "version"
wait_value 2 tls/a over-tls
expect_status 0 on 2 put tls/a <<<"over-tls-2"
assert_eq "$OUT" "2" "version from node 2"
wait_value 1 tls/a over-tls-2
assert_eq "$(latest_version 1 tls/a)" "2" "version on node 1"
note "a watcher on node 2 sees a change made on node 1"
SECRETD_SOCKET="$(node_dir 2)/secretd.sock" "$CTL" watch 'tls/*' >"$T/watch2" 2>"$T/watch2.err" &
WATCHER=$!
at_exit "kill -TERM $WATCHER 2>/dev/null || true"
has_line() { grep -qx -- "$2" "$1"; }
wait_for "the watch's initial state" has_line "$T/watch2" "tls/a 2"
expect_status 0 on 1 put tls/b <<<"b"
wait_for "tls/b 1 in node 2's watch" has_line "$T/watch2" "tls/b 1"
expect_status 0 on 1 rm tls/a
wait_gone 2 tls/a
wait_for "tls/a 0 in node 2's watch" has_line "$T/watch2" "tls/a 0"
kill -TERM "$WATCHER"
wait "$WATCHER" || fail "watch exited $?"
note "what the brokers wrote is in etcd under the prefix (read as root with TLS)"
[ -n "$(etcd_ctl get --prefix /secretd/ --keys-only)" ] || fail "nothing under /secretd/ in etcd"

note "a node with a wrong password: it does not follow, writes exit 6, reads are its own"
FLEET_PASSWORD_FILE=$T/wrong-password
printf 'not-%s\n' "$PASSWORD" >"$FLEET_PASSWORD_FILE"
chmod 0400 "$FLEET_PASSWORD_FILE"
node_setup 3
node_start 3
sleep 2
expect_status 0 on 3 status
note "node 3: $(tr '\n' ' ' <<<"$OUT")"
assert_not_contains "$OUT" "state=following" "status of a node etcd does not let in"
expect_status 3 on 3 get tls/b
expect_status 6 on 3 put tls/c <<<"no"
note "node 3: put refused: $ERR"
expect_status 3 on 1 get tls/c

note "the password is in no log, no audit record, no argv"
for n in 1 2 3; do
  ! grep -qaF "$PASSWORD" "$(node_dir "$n")/broker.log" "$(node_dir "$n")/audit.log" \
    || fail "the etcd password in node $n's logs"
  ! tr '\0' ' ' <"/proc/${NODE_PID[$n]}/cmdline" | grep -qF "$PASSWORD" || fail "the password in node $n's argv"
done
note "ok"
