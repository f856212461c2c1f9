#!/usr/bin/env bash
# The static secretctl: no shared library, no interpreter, nothing read from
# the image.  It runs with an empty environment, in a chroot holding only
# itself, and in a runc container whose root file system holds nothing but
# the binary, against a running broker.
source "$TESTLIB"
source "$(dirname "$TESTLIB")/runc.sh"
at_exit runc_cleanup

[ "$(id -u)" = 0 ] || fail "needs root"
if [ -z "${SECRETCTL_STATIC:-}" ]; then
  # Sanitizer and fuzzing builds cannot link statically (client/CMakeLists.txt).
  echo "SKIP $TEST_NAME: this build has no static secretctl"
  exit 0
fi
S=$SECRETCTL_STATIC
[ -x "$S" ] || fail "SECRETCTL_STATIC [$S] is not an executable"
note "static secretctl: $S, $(stat -c %s "$S") bytes"

note "statically linked: no interpreter, no needed libraries"
if ! command -v file >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q file >&2 || fail "file(1) is missing"
fi
assert_contains "$(file -L "$S")" "statically linked" "file(1) on the static binary"
HEADERS=$(readelf -lW "$S") || fail "readelf -l failed"
assert_not_contains "$HEADERS" "INTERP" "program headers"
assert_not_contains "$(readelf -dW "$S" 2>&1)" "(NEEDED)" "dynamic section"
if ldd "$S" >/dev/null 2>&1; then fail "ldd lists libraries for the static binary"; fi

SOCKDIR="$T/sock"
export SECRETD_SOCKET="$SOCKDIR/secretd.sock"
mkdir -m 0755 "$SOCKDIR"
write_policy <<'POLICY'
permit all   **                   uid=0 host
permit read  s/${container}/**    container=*
POLICY
start_broker

note "an empty environment: -s, then \$SECRETD_SOCKET as the only variable"
expect_status 0 env -i "$S" -s "$SECRETD_SOCKET" ping
expect_status 0 env -i SECRETD_SOCKET="$SECRETD_SOCKET" "$S" ping
expect_status 5 env -i "$S" -s "$T/no-such.sock" ping
printf 'static\000value\n\377' >"$T/v"
expect_status 0 env -i "$S" -s "$SECRETD_SOCKET" put st/x --from-file "$T/v"
assert_eq "$OUT" "1" "first version"
env -i "$S" -s "$SECRETD_SOCKET" get st/x >"$T/got" || fail "get with an empty environment"
cmp "$T/got" "$T/v" || fail "static put/get round trip is not byte-exact"
printf 'second' | env -i "$S" -s "$SECRETD_SOCKET" put st/x >"$T/out" || fail "put from stdin"
assert_eq "$(cat "$T/out")" "2" "second version"
"$CTL" get st/x --version 1 >"$T/got1" || fail "dynamic get of version 1"
cmp "$T/got1" "$T/v" || fail "the dynamic client reads other bytes than the static one wrote"

# The minimal root: the binary and the empty folders the runtime mounts on.
MIN="$T/min"
mkdir -p "$MIN"/{proc,dev,sys,tmp,run/secretd,secrets}
cp "$S" "$MIN/secretctl"
chmod 0755 "$MIN/secretctl"
assert_eq "$(cd "$MIN" && find . -type f -o -type l | sort | tr '\n' ' ')" "./secretctl " \
  "the minimal root holds one file"

note "chroot into the minimal root (no /etc, no /dev nodes, no libraries), empty environment"
CHROOT=$(command -v chroot) || fail "no chroot"
mount --bind "$SOCKDIR" "$MIN/run/secretd" || fail "bind mount of the socket folder"
at_exit "! mountpoint -q '$MIN/run/secretd' || umount '$MIN/run/secretd'"
mount -t tmpfs -o size=1m,mode=0755 tmpfs "$MIN/secrets" || fail "tmpfs in the minimal root"
at_exit "! mountpoint -q '$MIN/secrets' || umount '$MIN/secrets'"
expect_status 0 env -i "$CHROOT" "$MIN" /secretctl ping
expect_status 0 env -i "$CHROOT" "$MIN" /secretctl whoami
assert_contains "$OUT" "uid=0"
assert_contains "$OUT" "host=yes"
expect_status 0 env -i "$CHROOT" --userspec=1000:1000 "$MIN" /secretctl whoami
assert_contains "$OUT" "uid=1000"
note "inject in the chroot: random temporary names and numeric owners without /dev or NSS"
expect_status 0 env -i "$CHROOT" "$MIN" /secretctl inject --dir /secrets --owner 1000:1000 st/x=value
assert_eq "$(stat -c '%a %u %g' "$MIN/secrets/value")" "400 1000 1000" "injected mode/owner"
assert_eq "$(cat "$MIN/secrets/value")" "second" "injected value"
assert_eq "$(ls -A "$MIN/secrets")" "value" "no temporary file left"
umount "$MIN/secrets" || fail "umount $MIN/secrets"
umount "$MIN/run/secretd" || fail "umount $MIN/run/secretd"

note "a runc container whose root holds only the static binary"
NAME=static-$$
CID=$(runc_cid "$NAME")
printf 'for-the-scratch-container' | "$CTL" put "s/$CID/x" >/dev/null || fail "put s/$CID/x"
run_min() { # WANT UID CMD...
  local want=$1 uid=$2 rc=0
  shift 2
  runc_run "$NAME" "$MIN" "$uid" "$uid" "$SOCKDIR:/run/secretd:ro" -- "$@" \
    >"$T/out" 2>"$T/err" || rc=$?
  OUT=$(cat "$T/out")
  ERR=$(cat "$T/err")
  [ "$rc" -eq "$want" ] || fail "expected exit $want, got $rc from: $* (stderr: $ERR)"
}
run_min 0 1000 /secretctl whoami
printf '%s\n' "$OUT" | sed 's/^/#   /'
assert_contains "$OUT" "container=$CID"
assert_contains "$OUT" "host=no"
assert_contains "$OUT" "pidfd=yes"
assert_contains "$OUT" "uid=1000"
run_min 0 1000 /secretctl get "s/$CID/x"
assert_eq "$OUT" "for-the-scratch-container" "value read in the scratch container"
run_min 4 1000 /secretctl get st/x
note "... and nothing else is there: no shell to run"
rc=0
runc_run "$NAME" "$MIN" 1000 1000 -- /bin/sh -c true >/dev/null 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "/bin/sh ran in the minimal root"

stop_broker
echo "PASS $TEST_NAME"
