# A real three-member etcd cluster on 127.0.0.1 for the fleet tests, with its
# own ports and data folders under the test's $T.  Sourced after lib.sh.
#
#   etcd_cluster_start [tls]   start m1..m3 (tls: client TLS with a CA, server
#                              and client certificates made here by openssl)
#   etcd_member_stop I / etcd_member_start I   kill (SIGKILL) / restart member I
#   etcd_leader                print the index (1..3) of the current leader
#   etcd_ctl ARGS...           etcdctl against the whole cluster (TLS, auth)
#   etcd_auth_enable USER PASSWORD   create root + USER (rw on everything), auth on
#
# Sets ETCD_ENDPOINTS (comma list), ETCD_EP[1..3], ETCD_TLS_DIR when tls.
# Every member is stopped when the test exits.

command -v etcd >/dev/null || fail "etcd not installed (contrib/dev/deps.sh installs etcd-server)"
command -v etcdctl >/dev/null || fail "etcdctl not installed (etcd-client)"
export ETCDCTL_API=3

ETCD_PID=()
ETCD_EP=()
ETCD_PEER=()
ETCD_SCHEME=http
ETCD_TLS_DIR=""
ETCD_AUTH=""
ETCD_EXTRA=()   # more etcd options for every member (set before etcd_cluster_start)

# Two free consecutive ports a member, found by trying to bind them.
etcd_pick_ports() {
  python3 - <<'PY'
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(200):
    base = random.randrange(20000, 40000, 10)
    if all(free(base + i) for i in range(6)):
        print(base); break
PY
}

etcd_make_certs() {
  local d=$T/etcd-tls
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=secretd test CA" \
    -keyout "$d/ca.key" -out "$d/ca.crt" >/dev/null 2>&1 || fail "openssl: CA"
  local who
  for who in server client; do
    # etcd 3.4's gateway refuses a client certificate with a CommonName
    # (it would be ignored for etcd's own auth), so the client has none.
    local subj="/CN=$who"
    [ "$who" = client ] && subj="/O=secretd fleet client"
    openssl req -newkey rsa:2048 -nodes -subj "$subj" \
      -keyout "$d/$who.key" -out "$d/$who.csr" >/dev/null 2>&1 || fail "openssl: $who key"
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >"$d/$who.ext"
    openssl x509 -req -in "$d/$who.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
      -CAcreateserial -days 2 -extfile "$d/$who.ext" -out "$d/$who.crt" >/dev/null 2>&1 \
      || fail "openssl: $who certificate"
  done
  chmod 0600 "$d"/*.key
  ETCD_TLS_DIR=$d
}

etcd_member_start() {
  local i=$1 state=${2:-existing}
  local tlsopts=()
  if [ "$ETCD_SCHEME" = https ]; then
    tlsopts=(--cert-file "$ETCD_TLS_DIR/server.crt" --key-file "$ETCD_TLS_DIR/server.key"
      --trusted-ca-file "$ETCD_TLS_DIR/ca.crt" --client-cert-auth)
  fi
  etcd --name "m$i" --data-dir "$T/etcd-m$i" \
    --listen-client-urls "${ETCD_EP[$i]}" --advertise-client-urls "${ETCD_EP[$i]}" \
    --listen-peer-urls "${ETCD_PEER[$i]}" --initial-advertise-peer-urls "${ETCD_PEER[$i]}" \
    --initial-cluster "$ETCD_INITIAL" --initial-cluster-token "secretd-$TEST_NAME" \
    --initial-cluster-state "$state" \
    --heartbeat-interval 50 --election-timeout 500 \
    --logger zap --log-level warn "${tlsopts[@]}" "${ETCD_EXTRA[@]}" >>"$T/etcd-m$i.log" 2>&1 &
  ETCD_PID[$i]=$!
}

etcd_member_stop() {
  local i=$1
  [ -n "${ETCD_PID[$i]:-}" ] || return 0
  kill -KILL "${ETCD_PID[$i]}" 2>/dev/null || true
  wait "${ETCD_PID[$i]}" 2>/dev/null || true
  ETCD_PID[$i]=""
}

etcd_stop_all() {
  local i
  for i in 1 2 3; do etcd_member_stop "$i"; done
}

etcd_ctl() {
  local opts=(--endpoints "$ETCD_ENDPOINTS" --command-timeout 5s --dial-timeout 2s)
  if [ "$ETCD_SCHEME" = https ]; then
    opts+=(--cacert "$ETCD_TLS_DIR/ca.crt" --cert "$ETCD_TLS_DIR/client.crt"
      --key "$ETCD_TLS_DIR/client.key")
  fi
  [ -z "$ETCD_AUTH" ] || opts+=(--user "$ETCD_AUTH")
  etcdctl "${opts[@]}" "$@"
}

etcd_healthy() { etcd_ctl endpoint health >/dev/null 2>&1; }

# etcd_member_healthy I: member I answers and the cluster has a leader.
etcd_member_healthy() {
  local saved=$ETCD_ENDPOINTS rc=0
  ETCD_ENDPOINTS=${ETCD_EP[$1]}
  etcd_ctl endpoint health >/dev/null 2>&1 || rc=1
  ETCD_ENDPOINTS=$saved
  return $rc
}

etcd_wait_healthy() {
  local _
  for _ in $(seq 1 200); do
    etcd_healthy && return 0
    sleep 0.05
  done
  tail -n 5 "$T"/etcd-m*.log >&2
  fail "etcd cluster not healthy within 10 s"
}

etcd_leader() {
  local i out
  for i in 1 2 3; do
    [ -n "${ETCD_PID[$i]:-}" ] || continue
    out=$(ETCD_ENDPOINTS=${ETCD_EP[$i]} etcd_ctl endpoint status -w fields 2>/dev/null) || continue
    if [ "$(sed -n 's/^"MemberID" : //p' <<<"$out")" = "$(sed -n 's/^"Leader" : //p' <<<"$out")" ]; then
      echo "$i"
      return 0
    fi
  done
  return 1
}

etcd_cluster_start() {
  local mode=${1:-plain} base i
  [ "$mode" = tls ] && { ETCD_SCHEME=https; etcd_make_certs; }
  base=$(etcd_pick_ports)
  [ -n "$base" ] || fail "no free ports for etcd"
  ETCD_INITIAL=""
  for i in 1 2 3; do
    ETCD_EP[$i]="$ETCD_SCHEME://127.0.0.1:$((base + 2 * i - 2))"
    ETCD_PEER[$i]="http://127.0.0.1:$((base + 2 * i - 1))"
    ETCD_INITIAL+="${ETCD_INITIAL:+,}m$i=${ETCD_PEER[$i]}"
  done
  ETCD_ENDPOINTS="${ETCD_EP[1]},${ETCD_EP[2]},${ETCD_EP[3]}"
  at_exit etcd_stop_all
  for i in 1 2 3; do etcd_member_start "$i" new; done
  etcd_wait_healthy
}

# etcd_restore FILE: the whole cluster replaced by one restored from a
# snapshot taken with `etcd_ctl snapshot save` (same members, same token).
etcd_restore() {
  local snap=$1 i
  etcd_stop_all
  for i in 1 2 3; do
    rm -rf "$T/etcd-m$i"
    etcdctl snapshot restore "$snap" --name "m$i" --data-dir "$T/etcd-m$i" \
      --initial-cluster "$ETCD_INITIAL" --initial-cluster-token "secretd-$TEST_NAME" \
      --initial-advertise-peer-urls "${ETCD_PEER[$i]}" >>"$T/etcd-restore.log" 2>&1 \
      || fail "etcdctl snapshot restore: $(tail -n 2 "$T/etcd-restore.log")"
  done
  for i in 1 2 3; do etcd_member_start "$i"; done
  etcd_wait_healthy
}

etcd_auth_enable() {
  local user=$1 pass=$2
  printf '%s\n' "$pass" | etcd_ctl user add root --interactive=false >/dev/null \
    || fail "etcdctl user add root"
  printf '%s\n' "$pass" | etcd_ctl user add "$user" --interactive=false >/dev/null \
    || fail "etcdctl user add $user"
  etcd_ctl user grant-role root root >/dev/null || fail "etcdctl user grant-role root"
  etcd_ctl role add fleet >/dev/null || fail "etcdctl role add"
  etcd_ctl role grant-permission fleet --prefix=true readwrite / >/dev/null \
    || fail "etcdctl role grant-permission"
  etcd_ctl user grant-role "$user" fleet >/dev/null || fail "etcdctl user grant-role"
  etcd_ctl auth enable >/dev/null || fail "etcdctl auth enable"
  ETCD_AUTH="root:$pass"
}

# The fleet driver (tests/integration/helpers/etcd_driver.c) against this
# cluster, with its TLS files and credentials, and the cluster key in $T.
: "${ETCD_DRIVER:?ETCD_DRIVER must name the secretd-etcd-driver binary}"
ETCD_DRIVER_USER=""
ETCD_DRIVER_PWFILE=""

etcd_cluster_key() {
  [ -f "$T/cluster.key" ] || { head -c 32 /dev/urandom >"$T/cluster.key"; chmod 0400 "$T/cluster.key"; }
}

fleet() {
  etcd_cluster_key
  local opts=(--endpoints "$ETCD_ENDPOINTS" --cluster-key "$T/cluster.key")
  if [ "$ETCD_SCHEME" = https ]; then
    opts+=(--cacert "$ETCD_TLS_DIR/ca.crt" --cert "$ETCD_TLS_DIR/client.crt"
      --key "$ETCD_TLS_DIR/client.key")
  fi
  [ -z "$ETCD_DRIVER_USER" ] || opts+=(--user "$ETCD_DRIVER_USER" --password-file "$ETCD_DRIVER_PWFILE")
  "$ETCD_DRIVER" "${opts[@]}" "$@"
}
