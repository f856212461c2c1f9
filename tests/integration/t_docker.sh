#!/usr/bin/env bash
# Real Docker (Debian's docker.io; a dockerd of the test's own with its own
# data, exec and pid paths, no iptables, no bridge): images built from the
# shipped Dockerfiles, "secretctl whoami" in a container shows exactly the
# id "docker inspect" reports, container= rules grant and deny, the shipped
# policy works with this daemon's cgroup driver, and run-example.sh and
# compose.yaml run end to end with the app container reading the injected
# secret.
source "$TESTLIB"
source "$(dirname "$TESTLIB")/engines.sh"
: "${SOURCE_DIR:?SOURCE_DIR must name the repository root}"
C="$SOURCE_DIR/contrib"

[ "$(id -u)" = 0 ] || fail "needs root"
if [ -z "${SECRETCTL_STATIC:-}" ]; then
  echo "SKIP $TEST_NAME: this build has no static secretctl (sanitizer or fuzz build)"
  exit 0
fi
docker_setup || exit 0

note "the shipped Dockerfiles build offline (FROM scratch; FROM busybox:1.36 is the local import)"
engines_context "$T/ctx"
expect_status 0 docker build -q -f "$C/docker/Dockerfile.secretctl" -t secretctl:0.1 "$T/ctx"
expect_status 0 docker build -q -f "$C/docker/Dockerfile.secretctl-busybox" -t secretctl-busybox:0.1 "$T/ctx"
expect_status 0 docker image inspect --format '{{.Config.User}}' secretctl:0.1
assert_eq "$OUT" "65534:65534" "USER of the secretctl image"

note ".dockerignore keeps state/, build trees and .git out of the build context"
mkdir -p "$T/repo"
(cd "$SOURCE_DIR" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$T/repo") || fail "copy of the repository"
mkdir -p "$T/repo/state" "$T/repo/build-x" "$T/repo/.git"
echo key >"$T/repo/state/master.key"
echo obj >"$T/repo/build-x/junk"
echo cfg >"$T/repo/.git/config"
printf 'FROM busybox:1.36\nCOPY . /src\n' >"$T/probe.Dockerfile"
expect_status 0 docker build -q -f "$T/probe.Dockerfile" -t sd-probe "$T/repo"
expect_status 0 docker run --rm sd-probe sh -c 'ls -A /src'
grep -qx broker <<<"$OUT" || fail "the context lacks broker/: $OUT"
for gone in state build-x .git; do
  if grep -qx -- "$gone" <<<"$OUT"; then fail "$gone/ is in the build context"; fi
done
docker rmi sd-probe >/dev/null

RUN="$T/run"
mkdir -m 0755 "$RUN"
export SECRETD_SOCKET="$RUN/secretd.sock"
# The shipped policy, and for this test (outside any login session, where
# the shipped administration rule does not match) root on the host.
{ cat "$C/docker/policy.conf"; printf 'permit all ** uid=0 host\n'; } | write_policy
start_broker
M="$RUN:/run/secretd:ro"

note "whoami in a container: exactly the id docker inspect reports"
CID=$(docker create --user 10002:10002 -v "$M" secretctl:0.1 whoami) || fail "docker create"
INSPECT=$(docker inspect --format '{{.Id}}' "$CID") || fail "docker inspect"
expect_status 0 docker start --attach "$CID"
printf '%s\n' "$OUT" | sed 's/^/#   /'
assert_eq "$(sed -n 's/^container=//p' <<<"$OUT")" "$INSPECT" "container id"
assert_contains "$OUT" "uid=10002"
assert_contains "$OUT" "host=no"
CG=$(sed -n 's/^cgroup=//p' <<<"$OUT")
case "$CG" in
  "/docker/$INSPECT" | "/system.slice/docker-$INSPECT.scope") ;;
  *) fail "cgroup [$CG] is none of the shapes contrib/docker/policy.conf names" ;;
esac
docker rm "$CID" >/dev/null

note "the shipped policy: a container reads under its own id, not another's"
A=$(docker create --user 10005:10005 -v "$M" secretctl-busybox:0.1 \
  sh -c 'secretctl get "containers/$(secretctl whoami | sed -n "s/^container=//p")/t"') || fail "create A"
B=$(docker create --user 10005:10005 -v "$M" secretctl:0.1 get "containers/$A/t") || fail "create B"
printf 'for-A-only' | "$CTL" put "containers/$A/t" >/dev/null
expect_status 0 docker start --attach "$A"
assert_eq "$OUT" "for-A-only" "container A reads its own"
expect_status 4 docker start --attach "$B"
assert_contains "$ERR" "permission denied"
docker rm "$A" "$B" >/dev/null
note "uid 10002 reads apps/web/*, uid 10003 does not"
printf 'web-pw' | "$CTL" put apps/web/pw >/dev/null
expect_status 0 docker run --rm --user 10002:10002 -v "$M" secretctl:0.1 get apps/web/pw
assert_eq "$OUT" "web-pw" "apps/web/pw in a container as 10002"
expect_status 4 docker run --rm --user 10003:10003 -v "$M" secretctl:0.1 get apps/web/pw

note "container=ID (a 12-digit prefix) grants that container and no other"
X=$(docker create --user 10005:10005 -v "$M" secretctl:0.1 get one/x) || fail "create X"
Y=$(docker create --user 10005:10005 -v "$M" secretctl:0.1 get one/x) || fail "create Y"
{ cat "$T/policy.conf"; printf 'permit read one/* container=%s\n' "${X:0:12}"; } >"$T/policy.new"
mv "$T/policy.new" "$T/policy.conf"
chmod 0644 "$T/policy.conf"
kill -HUP "$BROKER_PID"
wait_for "policy reload" grep -q "policy reloaded" "$T/broker.log"
printf 'one-secret' | "$CTL" put one/x >/dev/null
expect_status 0 docker start --attach "$X"
assert_eq "$OUT" "one-secret" "granted by container=${X:0:12}"
expect_status 4 docker start --attach "$Y"
docker rm "$X" "$Y" >/dev/null
grep -q "\"container\":\"$X\"" "$T/audit.log" || fail "no audit record with container $X"

mkdir -p "$T/tmpfs"
mount -t tmpfs -o size=1m,mode=0755 tmpfs "$T/tmpfs" || fail "tmpfs for WEB_SECRETS"
at_exit "umount -l '$T/tmpfs'"
cp "$CTL" "$ENGINES_BIN/secretctl"

note "contrib/docker/run-example.sh, as shipped, end to end"
rc=0
SECRETD_DIR="$RUN" WEB_SECRETS="$T/tmpfs/web" sh "$C/docker/run-example.sh" >"$T/ex.out" 2>"$T/ex.err" || rc=$?
sed 's/^/#   /' "$T/ex.out"
[ "$rc" -eq 0 ] || fail "run-example.sh exited $rc: $(cat "$T/ex.err")"
OUT=$(cat "$T/ex.out")
assert_contains "$OUT" "db-password-for-the-demo" "step 1: get by uid"
assert_contains "$OUT" "api-token-for-the-demo" "step 2: get by container id"
assert_contains "$OUT" "web read: db-password-for-the-demo" "step 3: the app read the injected file"
assert_contains "$OUT" "host=no" "step 4: whoami"
assert_contains "$OUT" "uid 10003 was denied" "step 5"
[ ! -e "$T/tmpfs/web" ] || fail "run-example.sh left $T/tmpfs/web"

note "run-example.sh stops, non-zero, when inject cannot write (WEB_SECRETS on disk)"
rc=0
SECRETD_DIR="$RUN" WEB_SECRETS="$T/disk-web" sh "$C/docker/run-example.sh" >"$T/ex.out" 2>"$T/ex.err" || rc=$?
[ "$rc" -ne 0 ] || fail "run-example.sh exited 0 with WEB_SECRETS on disk"
assert_not_contains "$(cat "$T/ex.out")" "web read:" "no app output"

note "compose.yaml with docker-compose (Debian 12 has v1.29, no compose v2 plugin)"
engines_install docker-compose || fail "docker-compose cannot be installed"
# The CI's dockerd has no bridge: the override only takes the network away.
printf 'services:\n  web:\n    network_mode: none\n' >"$T/override.yaml"
install -d -m 0700 -o 10002 -g 10002 "$T/tmpfs/web"
printf 'compose-pw' | "$CTL" put apps/web/db-password >/dev/null
export SECRETD_DIR="$RUN" WEB_SECRETS="$T/tmpfs/web"
DC=(docker-compose -p sdtest -f "$C/docker/compose.yaml" -f "$T/override.yaml")
at_exit "${DC[*]} down -t 1 >/dev/null 2>&1"
expect_status 0 "${DC[@]}" up -d
web_read() { "${DC[@]}" logs --no-color web 2>/dev/null | grep -q "web read: compose-pw"; }
wait_for "the web service reading its secret" web_read
expect_status 0 "${DC[@]}" ps -q inject
expect_status 0 docker inspect --format '{{.State.Status}} {{.State.ExitCode}}' "$OUT"
assert_eq "$OUT" "exited 0" "inject service"
expect_status 0 "${DC[@]}" ps -q web
expect_status 0 docker inspect --format '{{.State.Status}}' "$OUT"
assert_eq "$OUT" "running" "web service (httpd)"
expect_status 0 "${DC[@]}" down -t 1
assert_eq "$(ls -A "$T/tmpfs/web")" "db-password" "inject wrote the file and nothing else"
rm -rf "$T/tmpfs/web"

stop_broker
echo "PASS $TEST_NAME"
