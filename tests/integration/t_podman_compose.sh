#!/usr/bin/env bash
# contrib/docker/compose.yaml with podman-compose (Debian 12: 1.0.3) and real
# Podman (rootful, runc, storage of the test's own, no network): the images
# from the shipped Dockerfiles, the broker with contrib/podman/policy.conf
# (Podman's cgroup shapes), and the app container really reads the secret
# that the one-shot inject service wrote into the host's tmpfs folder.
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
engines_install podman-compose || fail "podman-compose cannot be installed"
podman_base_image >/dev/null
note "podman-compose $(podman-compose version 2>/dev/null | sed -n 's/^podman-composer* version  *//p' | head -n 1)"

engines_context "$T/ctx"
expect_status 0 podman build --pull=never -q -f "$C/docker/Dockerfile.secretctl" -t localhost/secretctl:0.1 "$T/ctx"
expect_status 0 podman build --pull=never -q -f "$C/docker/Dockerfile.secretctl-busybox" \
  -t localhost/secretctl-busybox:0.1 "$T/ctx"

RUN="$T/run"
mkdir -m 0755 "$RUN"
export SECRETD_SOCKET="$RUN/secretd.sock"
{ cat "$C/podman/policy.conf"; printf 'permit all ** uid=0 host\n'; } | write_policy
start_broker
printf 'podman-compose-pw' | "$CTL" put apps/web/db-password >/dev/null

mkdir -p "$T/tmpfs"
mount -t tmpfs -o size=1m,mode=0755 tmpfs "$T/tmpfs" || fail "tmpfs for WEB_SECRETS"
at_exit "umount -l '$T/tmpfs'"
install -d -m 0700 -o 10002 -g 10002 "$T/tmpfs/web"
export SECRETD_DIR="$RUN" WEB_SECRETS="$T/tmpfs/web"
note "as shipped: podman-compose 1.0.3 starts nothing (network_mode: none plus its project network), exits 0"
DC0=(podman-compose -p sdpc0$$ -f "$C/docker/compose.yaml")
at_exit "${DC0[*]} down -t 1 >/dev/null 2>&1"
"${DC0[@]}" up -d >"$T/up0.out" 2>&1 || true
if grep -q "cannot set multiple networks" "$T/up0.out"; then
  note "(podman-compose $(podman-compose version 2>/dev/null | sed -n 's/^podman-composer* version  *//p' | head -n 1): needs contrib/podman/compose-podman-compose.yaml)"
  "${DC0[@]}" down -t 1 >/dev/null 2>&1 || true
else
  note "(this podman-compose runs network_mode: none: compose.yaml alone may do; checked with the override below)"
  "${DC0[@]}" down -t 1 >/dev/null 2>&1 || true
fi

note "with contrib/podman/compose-podman-compose.yaml, in the two steps it describes"
DC=(podman-compose -p sdpc$$ -f "$C/docker/compose.yaml" -f "$C/podman/compose-podman-compose.yaml")
at_exit "${DC[*]} down -t 1 >/dev/null 2>&1"
expect_status 0 "${DC[@]}" up -d inject
expect_status 0 timeout 60 podman wait "sdpc$$_inject_1"
assert_eq "$OUT" "0" "inject's exit status"
assert_eq "$(ls -A "$T/tmpfs/web")" "db-password" "inject wrote the file and nothing else"
expect_status 0 "${DC[@]}" up -d --no-deps web
web_read() { podman logs "sdpc$$_web_1" 2>/dev/null | grep -q "web read: podman-compose-pw"; }
for _ in $(seq 1 300); do web_read && break; sleep 0.1; done
if ! web_read; then
  podman ps -a --format '{{.Names}} {{.Status}}' | sed 's/^/#   /'
  podman logs "sdpc$$_web_1" 2>&1 | sed 's/^/#   web: /'
  fail "the web service did not read its secret"
fi
expect_status 0 podman inspect --format '{{.State.Status}}' "sdpc$$_web_1"
assert_eq "$OUT" "running" "web service (httpd)"
INJ=$(podman inspect --format '{{.Id}}' "sdpc$$_inject_1")
grep '"op":"get"' "$T/audit.log" | grep -q "\"container\":\"$INJ\"" || fail "no get record of the inject container $INJ"
expect_status 0 "${DC[@]}" down -t 1
stop_broker
echo "PASS $TEST_NAME"
