# Shared helpers for the integration tests: a real broker in a temporary
# state folder, driven through the real secretctl.  Sourced by t_*.sh, which
# ctest runs with SECRETD, SECRETCTL and SECRETD_BENCH set to the binaries.
set -euo pipefail

: "${SECRETD:?SECRETD must name the secretd binary}"
: "${SECRETCTL:?SECRETCTL must name the secretctl binary}"

TEST_NAME=$(basename "$0" .sh)
T=$(mktemp -d "/tmp/secretd-${TEST_NAME}.XXXXXX")
chmod 0755 "$T"
export SECRETD_SOCKET="$T/secretd.sock"
BROKER_PID=""
CLEANUPS=()

fail() {
  echo "FAIL: $TEST_NAME: $*" >&2
  if [ -f "$T/broker.log" ]; then
    echo "--- broker log (last 30 lines)" >&2
    tail -n 30 "$T/broker.log" >&2
  fi
  exit 1
}

note() { echo "# $*"; }

on_exit() {
  local rc=$?
  for ((i = ${#CLEANUPS[@]} - 1; i >= 0; i--)); do eval "${CLEANUPS[$i]}" || true; done
  stop_broker_quietly
  rm -rf "$T"
  exit $rc
}
trap on_exit EXIT
at_exit() { CLEANUPS+=("$1"); }

# A fresh vault and key in $T, and a policy from stdin (or the default one).
make_vault() {
  "$SECRETD" init --vault "$T/vault.db" --key-file "$T/master.key" >/dev/null
}

write_policy() {
  cat >"$T/policy.conf"
  chmod 0644 "$T/policy.conf"
}

# start_broker [extra secretd options...]: run it and wait for the socket.
start_broker() {
  [ -f "$T/vault.db" ] || make_vault
  [ -f "$T/policy.conf" ] || printf 'permit all ** uid=0 host\n' | write_policy
  "$SECRETD" run --socket "$SECRETD_SOCKET" --vault "$T/vault.db" \
    --key-file "$T/master.key" --policy "$T/policy.conf" \
    --audit-log "$T/audit.log" "$@" >>"$T/broker.log" 2>&1 &
  BROKER_PID=$!
  for _ in $(seq 1 100); do
    if "$SECRETCTL" ping >/dev/null 2>&1; then return 0; fi
    kill -0 "$BROKER_PID" 2>/dev/null || fail "broker exited at start: $(tail -n 3 "$T/broker.log")"
    sleep 0.05
  done
  fail "broker did not answer ping within 5 s"
}

# stop_broker: SIGTERM and require exit status 0.
stop_broker() {
  [ -n "$BROKER_PID" ] || return 0
  kill -TERM "$BROKER_PID"
  local rc=0
  wait "$BROKER_PID" || rc=$?
  BROKER_PID=""
  [ "$rc" -eq 0 ] || fail "broker exited with status $rc after SIGTERM"
}

stop_broker_quietly() {
  [ -n "$BROKER_PID" ] || return 0
  kill -TERM "$BROKER_PID" 2>/dev/null || true
  wait "$BROKER_PID" 2>/dev/null || true
  BROKER_PID=""
}

# expect_status CODE CMD...: run CMD, require its exit status; output in $OUT / $ERR.
expect_status() {
  local want=$1
  shift
  local rc=0
  "$@" >"$T/out" 2>"$T/err" || rc=$?
  OUT=$(cat "$T/out")
  ERR=$(cat "$T/err")
  [ "$rc" -eq "$want" ] || fail "expected exit $want, got $rc from: $* (stderr: $ERR)"
}

# as_user UID GID [GROUPS] CMD...: run CMD as another user through setpriv.
as_user() {
  local uid=$1 gid=$2
  shift 2
  setpriv --reuid "$uid" --regid "$gid" --clear-groups -- "$@"
}

# wait_for WHAT CMD...: poll CMD for up to 5 s (never a fixed sleep that races).
wait_for() {
  local what=$1
  shift
  for _ in $(seq 1 100); do
    "$@" && return 0
    sleep 0.05
  done
  fail "$what did not happen within 5 s"
}

assert_eq() { [ "$1" == "$2" ] || fail "${3:-values differ}: expected [$2], got [$1]"; }
assert_contains() { grep -qF -- "$2" <<<"$1" || fail "${3:-missing text}: [$2] not in [$1]"; }
assert_not_contains() { ! grep -qF -- "$2" <<<"$1" || fail "${3:-unexpected text}: [$2] in [$1]"; }

# Send raw bytes (hex) on one connection, then a ping frame; print the hex of
# everything received.  For hostile-client tests.
raw_exchange() {
  python3 - "$SECRETD_SOCKET" "$1" <<'PY'
import socket, sys, binascii
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(binascii.unhexlify(sys.argv[2]))
s.shutdown(socket.SHUT_WR)
data = b""
while True:
    try:
        chunk = s.recv(65536)
    except socket.timeout:
        break
    if not chunk:
        break
    data += chunk
print(binascii.hexlify(data).decode())
PY
}

# A copy of secretctl that any uid can run, wherever the build tree lives.
cp "$SECRETCTL" "$T/secretctl"
chmod 0755 "$T/secretctl"
CTL="$T/secretctl"
