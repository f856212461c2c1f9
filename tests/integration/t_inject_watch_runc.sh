#!/usr/bin/env bash
# Rotation reaches a running application in a real runc container: the
# inject --watch sidecar keeps a set of files in a tmpfs shared with the
# container (an emptyDir of medium Memory); the application re-opens its file
# and sees the new value, in the same process, without a restart.
source "$TESTLIB"
source "$(dirname "$TESTLIB")/runc.sh"
at_exit runc_cleanup
[ "$(id -u)" = 0 ] || fail "needs root"

BIN=${SECRETCTL_STATIC:-$SECRETCTL}
mkdir "$T/bin"
cp "$BIN" "$T/bin/secretctl"
runc_rootfs "$T/rootfs" "$T/bin/secretctl" || fail "could not build the rootfs"
VOL="$T/vol"
mkdir "$VOL"
mount -t tmpfs -o size=1m,mode=0755 tmpfs "$VOL" || fail "cannot mount a tmpfs at $VOL"
at_exit "umount -l '$VOL'"

start_broker
printf 'first' | "$CTL" put db/password >/dev/null

note "the sidecar writes the first set, then follows the name"
"$CTL" inject --dir "$VOL" --owner 1000:1000 --watch db/password=password \
  >"$T/sidecar.out" 2>"$T/sidecar.err" &
SIDECAR=$!
at_exit "kill $SIDECAR 2>/dev/null"
wait_for "the first set" test -s "$VOL/password"

note "the application, in its own container, re-reads its file every 50 ms"
NAME=app-$$
runc_run "$NAME" "$T/rootfs" 1000 1000 "$VOL:/secrets:ro" -- \
  /bin/sh -c 'while :; do echo "$$ $(cat /secrets/password)"; sleep 0.05; done' \
  >"$T/app.out" 2>"$T/app.err" &
APP=$!
at_exit "kill $APP 2>/dev/null"
wait_for "the application's first read" grep -q " first$" "$T/app.out"
PID=$(head -n 1 "$T/app.out" | cut -d ' ' -f 1)

note "a rotation: the same process reads the new value"
printf 'second' | "$CTL" put db/password >/dev/null
wait_for "the new value in the container" grep -q "^$PID second$" "$T/app.out"
bad=$(grep -v -E "^$PID (first|second)$" "$T/app.out" | head -n 3 || true)
[ -z "$bad" ] || fail "the application read something else: $bad"

kill -TERM "$SIDECAR"
wait "$SIDECAR" || fail "the sidecar's status after SIGTERM"
"$RUNC" --root "$RUNC_ROOT" kill "$NAME" KILL 2>/dev/null || true
wait "$APP" 2>/dev/null || true
stop_broker
echo "PASS $TEST_NAME"
