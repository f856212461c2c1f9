#!/usr/bin/env bash
# Quick start: install what is missing, build, make a local state folder
# (./state) with a fresh vault, key and a policy that lets you in, and run
# the broker in the foreground.  Ctrl-C stops it.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
state="$top/state"
build="$top/build"
me=$(id -u)

"$top/contrib/dev/deps.sh"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null

mkdir -p "$state"
chmod 0755 "$state"
if [ ! -f "$state/vault.db" ]; then
  "$build/broker/secretd" init --vault "$state/vault.db" --key-file "$state/master.key"
fi
if [ ! -f "$state/policy.conf" ]; then
  cat >"$state/policy.conf" <<POLICY
# Quick-start policy: you (uid $me) may do everything, and so may root on the
# host (not root inside a container).  Last matching rule wins; no match denies.
permit all  **  uid=$me
permit all  **  uid=0 host
POLICY
  chmod 0644 "$state/policy.conf"
fi

cat <<USAGE

secretd is starting with its state in $state
In another terminal:

  export SECRETD_SOCKET=$state/secretd.sock
  printf 'hunter2' | $build/client/secretctl put app/db/password
  $build/client/secretctl get app/db/password
  $build/client/secretctl list
  $build/client/secretctl whoami
  $build/broker/secretd audit-verify --key-file $state/master.key --vault $state/vault.db $state/audit.log

Edit $state/policy.conf and send SIGHUP to reload it.  Ctrl-C stops the broker.

USAGE
exec "$build/broker/secretd" run \
  --socket "$state/secretd.sock" --vault "$state/vault.db" \
  --key-file "$state/master.key" --policy "$state/policy.conf" \
  --audit-log "$state/audit.log"
