#!/usr/bin/env bash
# contrib/docker/compose-fleet.yaml with real containers (Debian's docker.io
# and docker-compose; a dockerd of the test's own, no iptables, no docker0):
# three etcd members from the shipped Dockerfile.etcd, two brokers from the
# runtime stage of the shipped Dockerfile.secretd (holding this build's
# binaries), run-fleet.sh as shipped: a secret put through broker A is read
# through broker B, etcd holds no value, both serve with etcd stopped and a
# put then exits 6; B's audit log accounts for the value with a sync record
# and verifies.  Everything is torn down at the end.
#
# Images: no registry is reachable, so debian:12-slim is a minbase root file
# system made by mmdebstrap from Debian's mirror (cached in
# /var/cache/secretd-tests like systemd.sh's), imported; the Dockerfiles'
# apt-get runs against Debian's mirror through the host's network
# (docker build --network host).
source "$TESTLIB"
source "$(dirname "$TESTLIB")/engines.sh"
: "${SOURCE_DIR:?SOURCE_DIR must name the repository root}"
C="$SOURCE_DIR/contrib/docker"

[ "$(id -u)" = 0 ] || fail "needs root"
if [ "${SECRETD_SANITIZED:-0}" = 1 ]; then
  echo "SKIP $TEST_NAME: a sanitizer build's broker needs the sanitizer runtime in the image"
  exit 0
fi
docker_setup || exit 0
engines_install docker-compose mmdebstrap || fail "docker-compose or mmdebstrap cannot be installed"

note "debian:12-slim: a minbase bookworm from mmdebstrap, imported"
CACHE=${SYSTEMD_CACHE:-/var/cache/secretd-tests}
MMARGS=(--variant=minbase '--dpkgopt=path-exclude=/usr/share/man/*'
  '--dpkgopt=path-exclude=/usr/share/doc/*' '--dpkgopt=path-exclude=/usr/share/locale/*' bookworm)
KEY=$({ printf '%s\n' "${MMARGS[@]}"; dpkg --print-architecture; } | sha256sum | cut -c1-16)
BASE="$CACHE/debian12-minbase-$KEY.tar"
mkdir -p "$CACHE"
(
  flock 9
  [ -s "$BASE" ] && exit 0
  echo "# building $BASE" >&2
  rm -f "${BASE%.tar}.new.tar"
  mmdebstrap "${MMARGS[@]}" "${BASE%.tar}.new.tar" >"$BASE.log" 2>&1 || { tail -n 20 "$BASE.log" >&2; exit 1; }
  mv "${BASE%.tar}.new.tar" "$BASE"
) 9>"$CACHE/.lock" || fail "mmdebstrap of the base image"
expect_status 0 docker import "$BASE" debian:12-slim

note "secretd-etcd:0.1 from the shipped Dockerfile.etcd (Debian's etcd-server)"
mkdir -p "$T/ectx"
expect_status 0 docker build --network host -q -f "$C/Dockerfile.etcd" -t secretd-etcd:0.1 "$T/ectx"
expect_status 0 docker run --rm --network none secretd-etcd:0.1 --version
assert_contains "$OUT" "etcd Version: 3."
expect_status 0 docker image inspect --format '{{.Config.User}}' secretd-etcd:0.1
assert_eq "$OUT" "10010:10010" "USER of the etcd image"

note "secretd:0.1 from Dockerfile.secretd's runtime stage, with this build's binaries"
mkdir -p "$T/bctx"
cp "$SECRETD" "$T/bctx/secretd"
cp "$SECRETCTL" "$T/bctx/secretctl"
# The upstream module, as cmake --install puts it (LIBDIR/secretd); this
# build's broker looks for it there or beside itself.
mkdir -p "$T/bctx/secretd-lib"
cp "$(dirname "$SECRETD")/secretd-upstream-etcd.so" "$T/bctx/secretd-lib/" || fail "no upstream module beside $SECRETD"
# The runtime stage as shipped, from its FROM on; only the COPY lines take
# the binaries and the module from the context instead of the build stage.
sed -n '/^FROM debian:12-slim/,$p' "$C/Dockerfile.secretd" |
  sed -e 's|^COPY --from=build /usr/local/sbin/secretd |COPY secretd |' \
    -e 's|^COPY --from=build /usr/local/bin/secretctl |COPY secretctl |' \
    -e 's|^COPY --from=build /usr/local/lib/secretd |COPY secretd-lib |' >"$T/bctx/Dockerfile"
grep -q '^COPY secretd-lib /usr/local/lib/secretd$' "$T/bctx/Dockerfile" || fail "the runtime stage does not copy the upstream module"
grep -q '^COPY secretd /usr/local/sbin/secretd$' "$T/bctx/Dockerfile" || fail "runtime stage not found: $(cat "$T/bctx/Dockerfile")"
if grep -q -- '--from=build' "$T/bctx/Dockerfile"; then fail "runtime stage still copies from the build stage"; fi
expect_status 0 docker build --network host -q -t secretd:0.1 "$T/bctx"
expect_status 0 docker run --rm --network none --entrypoint /bin/sh secretd:0.1 -c \
  'ldd /usr/local/sbin/secretd | grep -c "not found"; stat -c "%u %a" /var/lib/secretd /run/secretd'
assert_eq "$OUT" $'0\n10001 700\n10001 755' "libraries and folders of the broker image"

note "contrib/docker/run-fleet.sh, as shipped, end to end"
{ cat "$C/policy.conf"; printf 'permit all ** uid=0 host\n'; } | write_policy
cp "$SECRETCTL" "$ENGINES_BIN/secretctl"
export FLEET_STATE="$T/state" FLEET_RUN="$T/run" FLEET_POLICY="$T/policy.conf"
export COMPOSE=docker-compose COMPOSE_PROJECT_NAME="sdfleet$$"
DC=(docker-compose -p "$COMPOSE_PROJECT_NAME" -f "$C/compose-fleet.yaml")
at_exit "${DC[*]} down -v -t 1 >/dev/null 2>&1"
rc=0
timeout 240 sh "$C/run-fleet.sh" >"$T/ex.out" 2>"$T/ex.err" || rc=$?
sed 's/^/#   /' "$T/ex.out"
if [ "$rc" -ne 0 ]; then
  "${DC[@]}" logs --no-color --tail 15 >&2 2>&1 || true
  fail "run-fleet.sh exited $rc: $(tail -n 5 "$T/ex.err")"
fi
OUT=$(cat "$T/ex.out")
assert_contains "$OUT" "cluster key: $T/state/cluster/cluster.key (32 bytes)" "step 1"
assert_contains "$OUT" "a: upstream=etcd" "step 3: status"
assert_contains "$OUT" "broker B read: fleet-demo-value" "step 5: the value put through A, read through B"
assert_contains "$OUT" "the value in none of them" "step 6"
assert_contains "$OUT" "etcd stopped; broker B still reads: fleet-demo-value" "step 7: served offline"
assert_contains "$OUT" "with etcd down exits 6" "step 7: put refused"
assert_contains "$OUT" "both brokers follow it again" "step 7: reconnected"

note "each broker: its own vault, key, audit log and socket; one cluster key"
for n in a b; do
  [ -S "$T/run/$n/secretd.sock" ] || fail "no socket for broker $n"
  [ -s "$T/state/$n/vault/vault.db" ] || fail "no vault for broker $n"
  assert_eq "$(stat -c '%u %a' "$T/state/$n/key/master.key")" "10001 400" "master key of $n"
done
assert_eq "$(stat -c '%u %a' "$T/state/cluster/cluster.key")" "10001 400" "cluster key"
if cmp -s "$T/state/a/key/master.key" "$T/state/b/key/master.key"; then fail "the brokers share a master key"; fi

note "after etcd came back: a put through B reaches A"
printf 'second-value' | "$SECRETCTL" -s "$T/run/b/secretd.sock" put apps/fleet/demo >"$T/put.out" ||
  fail "put through B after etcd's restart"
assert_eq "$(cat "$T/put.out")" "2" "the fleet's second version"
a_has_v2() { [ "$("$SECRETCTL" -s "$T/run/a/secretd.sock" get apps/fleet/demo 2>/dev/null)" = second-value ]; }
wait_for "version 2 on broker A" a_has_v2

note "audit: A records the put with root's identity, B the sync; both chains verify"
grep '"op":"put"' "$T/state/a/log/audit.log" | grep '"name":"apps/fleet/demo"' | grep -q '"uid":0' ||
  fail "no put record on A: $(tail -n 3 "$T/state/a/log/audit.log")"
grep '"op":"sync"' "$T/state/b/log/audit.log" | grep '"name":"apps/fleet/demo"' | grep -q '"version":1' ||
  fail "no sync record of version 1 on B: $(grep -c . "$T/state/b/log/audit.log") records"
"${DC[@]}" stop -t 5 broker-a broker-b >/dev/null 2>&1 || fail "stopping the brokers"
for n in a b; do
  expect_status 0 "$SECRETD" audit-verify --key-file "$T/state/$n/key/master.key" \
    --vault "$T/state/$n/vault/vault.db" "$T/state/$n/log/audit.log"
done
if grep -rq 'fleet-demo-value\|second-value' "$T/state/a/log" "$T/state/b/log"; then fail "a value in an audit log"; fi

note "torn down: no container, no volume, no network of the project left"
expect_status 0 "${DC[@]}" down -v -t 1
assert_eq "$(docker ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME")" "" "containers left"
assert_eq "$(docker volume ls -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME")" "" "volumes left"
assert_eq "$(docker network ls -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME")" "" "networks left"
echo "PASS $TEST_NAME"
