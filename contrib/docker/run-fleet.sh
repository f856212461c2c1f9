#!/bin/sh
# A secretd fleet with Docker Compose, step by step: three etcd members and
# two brokers (compose-fleet.yaml), a secret put through broker A and read
# through broker B, and both brokers serving while etcd is stopped.  Run as
# root from anywhere; the images come from Dockerfile.etcd (secretd-etcd:0.1)
# and Dockerfile.secretd (secretd:0.1), and secretctl is in PATH.  Every step
# prints what it shows; any failure stops the script with a non-zero
# status.  The fleet is left running; the last lines say how to remove it.
#
# FLEET_STATE (default /var/lib/secretd-fleet): the brokers' vaults, master
#   keys, audit logs and the cluster key, in a/, b/ and cluster/.
# FLEET_RUN (default /run/secretd-fleet): the socket folders a/ and b/.
# FLEET_POLICY (default policy.conf beside this script): the brokers' policy.
# COMPOSE: the compose command (default "docker compose" where it exists,
#   else docker-compose, Debian 12's 1.29).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
FLEET_STATE=${FLEET_STATE:-/var/lib/secretd-fleet}
FLEET_RUN=${FLEET_RUN:-/run/secretd-fleet}
FLEET_POLICY=${FLEET_POLICY:-$HERE/policy.conf}
FLEET_CONF=${FLEET_CONF:-$HERE/fleet.conf}
export FLEET_STATE FLEET_RUN FLEET_POLICY FLEET_CONF
if [ -z "${COMPOSE:-}" ]; then
  if docker compose version >/dev/null 2>&1; then COMPOSE="docker compose"; else COMPOSE=docker-compose; fi
fi
PROJECT=${COMPOSE_PROJECT_NAME:-secretd-fleet}
dc() { $COMPOSE -p "$PROJECT" -f "$HERE/compose-fleet.yaml" "$@"; }
A=$FLEET_RUN/a/secretd.sock
B=$FLEET_RUN/b/secretd.sock

# 1. Folders, owned by the brokers' uid 10001, and the cluster key: 32
#    random bytes, mode 0400, the same for every broker of the fleet (a
#    fleet on several hosts copies this one file to each, like a master
#    key; never into etcd).
for n in a b; do
  install -d -m 0700 -o 10001 -g 10001 "$FLEET_STATE/$n/vault" "$FLEET_STATE/$n/log" "$FLEET_STATE/$n/key"
  install -d -m 0755 -o 10001 -g 10001 "$FLEET_RUN/$n"
done
install -d -m 0700 -o 10001 -g 10001 "$FLEET_STATE/cluster"
if [ ! -e "$FLEET_STATE/cluster/cluster.key" ]; then
  (umask 077 && head -c 32 /dev/urandom >"$FLEET_STATE/cluster/cluster.key")
  chown 10001:10001 "$FLEET_STATE/cluster/cluster.key"
  chmod 0400 "$FLEET_STATE/cluster/cluster.key"
fi
echo "cluster key: $FLEET_STATE/cluster/cluster.key ($(wc -c <"$FLEET_STATE/cluster/cluster.key") bytes)"

# 2. A new, empty vault and master key for each broker (a replica starts
#    empty: the broker refuses a vault that holds secrets of its own).
for n in a b; do
  [ -e "$FLEET_STATE/$n/vault/vault.db" ] && continue
  docker run --rm --user 10001:10001 --network none \
    -v "$FLEET_STATE/$n/vault:/var/lib/secretd" -v "$FLEET_STATE/$n/key:/etc/secretd-key" \
    secretd:0.1 init --vault /var/lib/secretd/vault.db --key-file /etc/secretd-key/master.key
done

# 3. The fleet: etcd1..3 and broker-a, broker-b.  The brokers do not wait
#    for etcd: they serve their replica at once and follow etcd as soon as
#    it answers.
dc up -d
connected() { secretctl -s "$1" status 2>/dev/null | grep -qx 'connected=yes'; }
for n in a b; do
  i=0
  until connected "$FLEET_RUN/$n/secretd.sock"; do
    i=$((i + 1))
    [ "$i" -le 120 ] || { echo "broker $n did not connect to etcd within 60 s" >&2; dc logs --tail 20 >&2; exit 1; }
    sleep 0.5
  done
done
echo "both brokers follow etcd:"
secretctl -s "$A" status | sed 's/^/  a: /'

# 4. Put through broker A: acknowledged once etcd has committed it and A's
#    replica holds it.
printf '%s' 'fleet-demo-value' | secretctl -s "$A" put apps/fleet/demo >/dev/null
echo "put apps/fleet/demo through broker A"

# 5. ... and broker B serves it, from its own replica.
i=0
until v=$(secretctl -s "$B" get apps/fleet/demo 2>/dev/null); do
  i=$((i + 1))
  [ "$i" -le 100 ] || { echo "broker B never served apps/fleet/demo" >&2; exit 1; }
  sleep 0.1
done
echo "broker B read: $v"

# 6. etcd holds names and ciphertext only: the value is in no key of it.
n=$(dc exec -T etcd1 etcdctl --endpoints=http://127.0.0.1:2379 get --prefix /secretd/ --keys-only | grep -c . || true)
if dc exec -T etcd1 etcdctl --endpoints=http://127.0.0.1:2379 get --prefix /secretd/ | grep -q 'fleet-demo-value'; then
  echo "unexpected: the value is in etcd" >&2
  exit 1
fi
echo "etcd holds $n keys under /secretd/, the value in none of them"

# 7. etcd stopped: both brokers still serve what they have; a put fails at
#    once with exit status 6 (nothing is acknowledged that etcd has not).
dc stop -t 5 etcd1 etcd2 etcd3 >/dev/null 2>&1
echo "etcd stopped; broker B still reads: $(secretctl -s "$B" get apps/fleet/demo)"
rc=0
printf '%s' 'not-stored' | secretctl -s "$A" put apps/fleet/demo >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 6 ] || { echo "unexpected: a put with etcd down exited $rc, not 6" >&2; exit 1; }
echo "a put through broker A with etcd down exits 6, as it should"
dc start etcd1 etcd2 etcd3 >/dev/null 2>&1
for n in a b; do
  i=0
  until connected "$FLEET_RUN/$n/secretd.sock"; do
    i=$((i + 1))
    [ "$i" -le 120 ] || { echo "broker $n did not reconnect within 60 s" >&2; exit 1; }
    sleep 0.5
  done
done
echo "etcd back; both brokers follow it again"

echo "the fleet keeps running; to remove it and its etcd data:"
echo "  $COMPOSE -p $PROJECT -f $HERE/compose-fleet.yaml down -v && rm -rf $FLEET_STATE $FLEET_RUN"
