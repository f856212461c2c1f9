# A fleet of real brokers with `upstream = etcd` against the etcd cluster of
# etcd.sh, driven through the real secretctl.  Sourced after lib.sh and
# etcd.sh (and etcd_cluster_start):
#
#   fleet_start N [OPTION...]   set up and start nodes 1..N (options go to every
#                               `secretd run`); waits until each one follows etcd
#   node_setup I / node_start I [OPTION...] / node_stop I / node_kill I
#   node_conf I LINE...         more "key = value" lines for node I's config
#                               (before its first start)
#   on I CMD ARGS...            secretctl CMD ARGS against node I (its socket)
#   status_of I KEY             one field of `secretctl status` on node I
#   wait_secs SECS WHAT CMD...  poll CMD every 50 ms for up to SECS seconds
#   wait_value I NAME VALUE [SECS]      node I serves VALUE as NAME's latest
#   wait_version I NAME V [SECS]        node I has version V of NAME (get --version)
#   wait_gone I NAME [SECS]             node I answers NAME not found (status 3)
#   wait_following I [SECS]             status: connected=yes, state=following
#   latest_version I NAME       the version node I serves as NAME's latest (from
#                               its audit record of a get)
#   audit_records I FILTER...   node I's audit records (JSON lines) whose fields
#                               equal FILTER's KEY=VALUE pairs
#
# Each node I lives in $T/nI: vault.db, master.key, policy.conf (root on the
# host may do everything), secretd.conf, secretd.sock, audit.log, broker.log.
# Every node shares $T/cluster.key (etcd.sh's etcd_cluster_key).  FLEET_ENDPOINTS
# (default $ETCD_ENDPOINTS) is what the nodes are told; FLEET_AUTH=1 adds the
# TLS files and etcd credentials of etcd.sh's tls mode and etcd_auth_enable.

NODE_PID=()
FLEET_ENDPOINTS=${FLEET_ENDPOINTS:-}
FLEET_AUTH=${FLEET_AUTH:-0}
FLEET_USER=${FLEET_USER:-fleet}
FLEET_PASSWORD_FILE=""

node_dir() { echo "$T/n$1"; }

# fail() of lib.sh, with every node's broker log.
fail() {
  echo "FAIL: $TEST_NAME: $*" >&2
  local d
  for d in "$T"/n*; do
    [ -f "$d/broker.log" ] || continue
    echo "--- $(basename "$d") broker log (last 25 lines)" >&2
    tail -n 25 "$d/broker.log" >&2
  done
  if [ -f "$T/broker.log" ]; then
    echo "--- broker log (last 25 lines)" >&2
    tail -n 25 "$T/broker.log" >&2
  fi
  exit 1
}

# free_port: one free TCP port on 127.0.0.1 (for --metrics-listen).
free_port() {
  python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

node_setup() {
  local i=$1 d
  d=$(node_dir "$i")
  mkdir -p "$d"
  chmod 0755 "$d"
  etcd_cluster_key
  "$SECRETD" init --vault "$d/vault.db" --key-file "$d/master.key" >/dev/null \
    || fail "secretd init for node $i"
  printf 'permit all ** uid=0 host\n' >"$d/policy.conf"
  chmod 0644 "$d/policy.conf"
  {
    echo "# node $i of $TEST_NAME"
    echo "socket = $d/secretd.sock"
    echo "vault = $d/vault.db"
    echo "key-file = $d/master.key"
    echo "policy = $d/policy.conf"
    echo "audit-log = $d/audit.log"
    echo "upstream = etcd"
    echo "etcd-endpoints = ${FLEET_ENDPOINTS:-$ETCD_ENDPOINTS}"
    echo "cluster-key-file = $T/cluster.key"
    if [ "$FLEET_AUTH" = 1 ]; then
      echo "etcd-cacert = $ETCD_TLS_DIR/ca.crt"
      echo "etcd-cert = $ETCD_TLS_DIR/client.crt"
      echo "etcd-key = $ETCD_TLS_DIR/client.key"
      echo "etcd-user = $FLEET_USER"
      echo "etcd-password-file = $FLEET_PASSWORD_FILE"
    fi
  } >"$d/secretd.conf"
  chmod 0644 "$d/secretd.conf"
}

node_conf() {
  local i=$1 d
  shift
  d=$(node_dir "$i")
  printf '%s\n' "$@" >>"$d/secretd.conf"
}

# fleet_password PASSWORD: the file etcd-password-file names (trailing newline).
fleet_password() {
  FLEET_PASSWORD_FILE=$T/etcd-password
  printf '%s\n' "$1" >"$FLEET_PASSWORD_FILE"
  chmod 0400 "$FLEET_PASSWORD_FILE"
}

# on I CMD ARGS...: secretctl against node I.
on() {
  local i=$1
  shift
  SECRETD_SOCKET="$(node_dir "$i")/secretd.sock" "$CTL" "$@"
}

node_start() {
  local i=$1 d
  shift
  d=$(node_dir "$i")
  [ -f "$d/secretd.conf" ] || node_setup "$i"
  "$SECRETD" run --config "$d/secretd.conf" "$@" >>"$d/broker.log" 2>&1 &
  NODE_PID[$i]=$!
  local _
  for _ in $(seq 1 100); do
    if on "$i" ping >/dev/null 2>&1; then return 0; fi
    kill -0 "${NODE_PID[$i]}" 2>/dev/null || {
      NODE_PID[$i]=""
      fail "node $i exited at start: $(tail -n 3 "$d/broker.log")"
    }
    sleep 0.05
  done
  fail "node $i did not answer ping within 5 s (start-up must not wait for etcd)"
}

# node_stop I: SIGTERM, exit status 0 within 15 s.
node_stop() {
  local i=$1 pid=${NODE_PID[$1]:-} rc=0 _
  [ -n "$pid" ] || return 0
  kill -TERM "$pid"
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    NODE_PID[$i]=""
    fail "node $i still running 15 s after SIGTERM"
  fi
  wait "$pid" || rc=$?
  NODE_PID[$i]=""
  [ "$rc" -eq 0 ] || fail "node $i exited with status $rc after SIGTERM"
}

node_kill() {
  local pid=${NODE_PID[$1]:-}
  [ -n "$pid" ] || return 0
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  NODE_PID[$1]=""
}

fleet_stop_all() {
  local i pid
  for i in "${!NODE_PID[@]}"; do
    pid=${NODE_PID[$i]}
    [ -n "$pid" ] || continue
    kill -TERM "$pid" 2>/dev/null || true
  done
  for i in "${!NODE_PID[@]}"; do
    pid=${NODE_PID[$i]}
    [ -n "$pid" ] || continue
    # Bounded: a broker that ignores SIGTERM is killed after 10 s.
    timeout 10 tail --pid="$pid" -f /dev/null 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    NODE_PID[$i]=""
  done
}
at_exit fleet_stop_all

wait_secs() {
  local secs=$1 what=$2 _
  shift 2
  for _ in $(seq 1 $((secs * 20))); do
    "$@" && return 0
    sleep 0.05
  done
  fail "$what did not happen within $secs s"
}

# status_of I KEY: the value of KEY in node I's `secretctl status` (empty
# and status 1 when the call fails).
status_of() {
  local out
  out=$(on "$1" status 2>/dev/null) || return 1
  sed -n "s/^$2=//p" <<<"$out" | head -n 1
}

is_following() {
  local out
  out=$(on "$1" status 2>/dev/null) || return 1
  grep -qx 'connected=yes' <<<"$out" && grep -qx 'state=following' <<<"$out"
}
wait_following() { wait_secs "${2:-15}" "node $1 following etcd" is_following "$1"; }

status_is() { [ "$(status_of "$1" "$2")" = "$3" ]; }

serves_value() { [ "$(on "$1" get "$2" 2>/dev/null)" = "$3" ]; }
wait_value() { wait_secs "${4:-10}" "node $1 serving $2 = [$3]" serves_value "$1" "$2" "$3"; }

has_version() { on "$1" get "$2" --version "$3" >/dev/null 2>&1; }
wait_version() { wait_secs "${4:-10}" "node $1 having $2 version $3" has_version "$1" "$2" "$3"; }

is_gone() {
  local rc=0
  on "$1" get "$2" >/dev/null 2>&1 || rc=$?
  [ "$rc" -eq 3 ]
}
wait_gone() { wait_secs "${3:-10}" "node $1 answering $2 not found" is_gone "$1" "$2"; }

fleet_start() {
  local n=$1 i
  shift
  for i in $(seq 1 "$n"); do node_start "$i" "$@"; done
  for i in $(seq 1 "$n"); do wait_following "$i" 20; done
}

# audit_records I KEY=VALUE...: node I's audit records with these fields
# (values compared as text, so version=3 matches the JSON number 3).
audit_records() {
  local i=$1
  shift
  python3 - "$(node_dir "$i")/audit.log" "$@" <<'PY'
import json, sys
want = dict(a.split("=", 1) for a in sys.argv[2:])
with open(sys.argv[1], "rb") as f:
    for line in f.read().decode().splitlines():
        r = json.loads(line)
        if all(str(r.get(k)) == v for k, v in want.items()):
            print(line)
PY
}

# latest_version I NAME: a get on node I; the version its audit record names.
latest_version() {
  on "$1" get "$2" >/dev/null || return 1
  audit_records "$1" op=get name="$2" decision=allow | tail -n 1 \
    | python3 -c 'import json, sys; print(json.loads(sys.stdin.read())["version"])'
}

# etcd_revision: the cluster's current revision (from a range answer's header).
etcd_revision() {
  etcd_ctl get /secretd/ --prefix --keys-only --limit 1 -w json \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["header"]["revision"])'
}

# metric_of PORT NAME[{LABELS}]: one sample from node's /metrics.
metric_of() {
  curl -sf "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m { print $2; exit }'
}
