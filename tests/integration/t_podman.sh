#!/usr/bin/env bash
# Real Podman (Debian's package, runc, storage of the test's own, no
# network): images built from the shipped Dockerfiles, "secretctl whoami" in
# a container shows exactly the id "podman inspect" reports, container=
# rules grant and deny, the shipped policy works with this host's cgroup
# manager, and contrib/podman/run-example.sh runs end to end with the app
# container reading the injected secret.
source "$TESTLIB"
source "$(dirname "$TESTLIB")/engines.sh"
: "${SOURCE_DIR:?SOURCE_DIR must name the repository root}"
C="$SOURCE_DIR/contrib"

[ "$(id -u)" = 0 ] || fail "needs root"
if [ -z "${SECRETCTL_STATIC:-}" ]; then
  echo "SKIP $TEST_NAME: this build has no static secretctl (sanitizer or fuzz build)"
  exit 0
fi
podman_setup || exit 0
podman_base_image >/dev/null

note "the shipped Dockerfiles build offline (FROM scratch; FROM busybox:1.36 is the local import)"
engines_context "$T/ctx"
expect_status 0 podman build --pull=never -q -f "$C/docker/Dockerfile.secretctl" -t localhost/secretctl:0.1 "$T/ctx"
expect_status 0 podman build --pull=never -q -f "$C/docker/Dockerfile.secretctl-busybox" \
  -t localhost/secretctl-busybox:0.1 "$T/ctx"
expect_status 0 podman run --rm localhost/secretctl:0.1 --help
expect_status 0 podman image inspect --format '{{.Config.User}}' localhost/secretctl:0.1
assert_eq "$OUT" "65534:65534" "USER of the secretctl image"

RUN="$T/run"
mkdir -m 0755 "$RUN"
export SECRETD_SOCKET="$RUN/secretd.sock"
# The shipped policy, and for this test (which runs outside any login
# session, so the shipped administration rule does not match it) root on
# the host.
{ cat "$C/podman/policy.conf"; printf 'permit all ** uid=0 host\n'; } | write_policy
start_broker
M="$RUN:/run/secretd:ro"

note "whoami in a container: exactly the id podman inspect reports"
CID=$(podman create --user 10002:10002 -v "$M" localhost/secretctl:0.1 whoami) || fail "podman create"
INSPECT=$(podman inspect --format '{{.Id}}' "$CID") || fail "podman inspect"
expect_status 0 podman start --attach "$CID"
printf '%s\n' "$OUT" | sed 's/^/#   /'
assert_contains "$OUT" "container=$INSPECT"
assert_eq "$(grep -c '^container=' <<<"$OUT")" 1 "one container line"
assert_eq "$(sed -n 's/^container=//p' <<<"$OUT")" "$INSPECT" "container id"
assert_contains "$OUT" "uid=10002"
assert_contains "$OUT" "host=no"
CG=$(sed -n 's/^cgroup=//p' <<<"$OUT")
case "$CG" in
  "/libpod_parent/libpod-$INSPECT" | "/machine.slice/libpod-$INSPECT.scope" | \
    "/machine.slice/libpod-$INSPECT.scope/container") ;;
  *) fail "cgroup [$CG] is none of the shapes contrib/podman/policy.conf names" ;;
esac
podman rm "$CID" >/dev/null

note "the shipped policy: a container reads under its own id, not another's"
run_ctr() { # WANT podman-run-args... -- CMD...
  local want=$1
  shift
  expect_status "$want" podman run --rm -v "$M" "$@"
}
A=$(podman create --user 10005:10005 -v "$M" localhost/secretctl-busybox:0.1 \
  sh -c 'secretctl get "containers/$(secretctl whoami | sed -n "s/^container=//p")/t"') || fail "create A"
B=$(podman create --user 10005:10005 -v "$M" localhost/secretctl:0.1 get "containers/$A/t") || fail "create B"
printf 'for-A-only' | "$CTL" put "containers/$A/t" >/dev/null
expect_status 0 podman start --attach "$A"
assert_eq "$OUT" "for-A-only" "container A reads its own"
expect_status 4 podman start --attach "$B"
assert_contains "$ERR" "permission denied"
note "uid 10002 reads apps/web/*, uid 10003 does not"
printf 'web-pw' | "$CTL" put apps/web/pw >/dev/null
run_ctr 0 --user 10002:10002 localhost/secretctl:0.1 get apps/web/pw
assert_eq "$OUT" "web-pw" "apps/web/pw in a container as 10002"
run_ctr 4 --user 10003:10003 localhost/secretctl:0.1 get apps/web/pw

note "container=ID (a 12-digit prefix) grants one container and no other"
{ cat "$T/policy.conf"; printf 'permit read one/* container=%s\n' "${A:0:12}"; } >"$T/policy.new"
mv "$T/policy.new" "$T/policy.conf"
chmod 0644 "$T/policy.conf"
kill -HUP "$BROKER_PID"
wait_for "policy reload" grep -q "policy reloaded" "$T/broker.log"
printf 'one-secret' | "$CTL" put one/x >/dev/null
podman rm "$A" "$B" >/dev/null
A2=$(podman create --user 10005:10005 -v "$M" localhost/secretctl:0.1 get one/x) || fail "create"
expect_status 4 podman start --attach "$A2"
podman rm "$A2" >/dev/null
note "(the same rule for a container created with that id)"
# Podman takes no id from the user, so the rule is rewritten for a fresh one.
A3=$(podman create --user 10005:10005 -v "$M" localhost/secretctl:0.1 get one/x) || fail "create"
sed -i "s/^permit read one\/\* container=.*/permit read one\/* container=${A3:0:12}/" "$T/policy.conf"
kill -HUP "$BROKER_PID"
# Counted at each try: a $(...) in the arguments would be counted once, before the reload.
reloads_at_least() { [ "$(grep -c "policy reloaded" "$T/broker.log")" -ge "$1" ]; }
wait_for "second policy reload" reloads_at_least 2
expect_status 0 podman start --attach "$A3"
assert_eq "$OUT" "one-secret" "granted by container=${A3:0:12}"
podman rm "$A3" >/dev/null

note "the audit log names the container"
grep -q "\"container\":\"$A3\"" "$T/audit.log" || fail "no audit record with container $A3"

note "contrib/podman/run-example.sh, as shipped, end to end"
mkdir -p "$T/tmpfs"
mount -t tmpfs -o size=1m,mode=0755 tmpfs "$T/tmpfs" || fail "tmpfs for WEB_SECRETS"
at_exit "umount -l '$T/tmpfs'"
cp "$CTL" "$ENGINES_BIN/secretctl"
rc=0
SECRETD_DIR="$RUN" WEB_SECRETS="$T/tmpfs/web" sh "$C/podman/run-example.sh" >"$T/ex.out" 2>"$T/ex.err" || rc=$?
sed 's/^/#   /' "$T/ex.out"
[ "$rc" -eq 0 ] || fail "run-example.sh exited $rc: $(cat "$T/ex.err")"
OUT=$(cat "$T/ex.out")
assert_contains "$OUT" "db-password-for-the-demo" "step 1: get by uid"
assert_contains "$OUT" "api-token-for-the-demo" "step 2: get by container id"
assert_contains "$OUT" "web read: db-password-for-the-demo" "step 3: the app read the injected file"
assert_contains "$OUT" "host=no" "step 4: whoami"
assert_contains "$OUT" "uid 10003 was denied" "step 5"
assert_contains "$(cat "$T/ex.err")" "permission denied" "step 5's denial"
[ ! -e "$T/tmpfs/web" ] || fail "run-example.sh left $T/tmpfs/web"

note "run-example.sh stops, non-zero, when the app finds nothing (WEB_SECRETS on disk: inject refuses)"
rc=0
SECRETD_DIR="$RUN" WEB_SECRETS="$T/disk-web" sh "$C/podman/run-example.sh" >"$T/ex.out" 2>"$T/ex.err" || rc=$?
[ "$rc" -ne 0 ] || fail "run-example.sh exited 0 with WEB_SECRETS on disk"
assert_not_contains "$(cat "$T/ex.out")" "web read:" "no app output"

stop_broker
echo "PASS $TEST_NAME"
