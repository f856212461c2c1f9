#!/usr/bin/env bash
# contrib/kubernetes/fleet/ against a real etcd (three members on loopback,
# etcd.sh): the etcdctl lines of etcd-statefulset.yaml's comments, run as
# written (users root and secretd, the role on /secretd/ only, auth on),
# and two real brokers reading the shipped secretd.conf, with only the
# cluster-specific values overridden on the command line (the members'
# addresses, and where the key, password and state live): a put through one
# is served by the other, under etcd's user "secretd" with no more rights
# than that role; and /health (the StatefulSet's readiness probe) still
# answers healthy with authentication on.
source "$TESTLIB"
source "$(dirname "$TESTLIB")/etcd.sh"
: "${SOURCE_DIR:?SOURCE_DIR must name the repository root}"
F="$SOURCE_DIR/contrib/kubernetes/fleet"

etcd_cluster_start

note "the auth recipe of etcd-statefulset.yaml, line by line"
sed -n 's/^#   \$E //p' "$F/etcd-statefulset.yaml" >"$T/recipe"
[ "$(wc -l <"$T/recipe")" -ge 7 ] || fail "recipe not found in etcd-statefulset.yaml: $(cat "$T/recipe")"
printf 'root-pw-%s\n' "$RANDOM$RANDOM" >"$T/root-password"
printf 'etcd-pw-%s' "$RANDOM$RANDOM" >"$T/etcd-password"
chmod 0400 "$T/etcd-password"
while IFS= read -r line; do
  # "user add NAME --interactive=false <FILE": the password from FILE on stdin.
  input=/dev/null
  if [[ "$line" == *" <"* ]]; then
    input="$T/${line##* <}"
    line=${line% <*}
  fi
  # shellcheck disable=SC2086 # the recipe's words
  etcd_ctl $line <"$input" >>"$T/recipe.log" 2>&1 || fail "etcdctl $line: $(tail -n 2 "$T/recipe.log")"
  [[ "$line" == "auth enable" ]] && ETCD_AUTH="root:$(cat "$T/root-password")"
done <"$T/recipe"
expect_status 0 etcd_ctl user list
assert_eq "$OUT" $'root\nsecretd' "etcd's users"
if ETCD_AUTH="" etcd_ctl get --prefix /secretd/ >/dev/null 2>&1; then fail "etcd answers without a user"; fi
note "the StatefulSet's readiness probe, GET /health, says healthy with authentication on"
python3 - "$F/etcd-statefulset.yaml" <<'PY' || fail "the StatefulSet's probe is not GET /health on the client port"
import sys, yaml
sts = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "StatefulSet")
c = sts["spec"]["template"]["spec"]["containers"][0]
assert c["readinessProbe"]["httpGet"] == {"path": "/health", "port": "client"}
assert {"name": "client", "containerPort": 2379} in c["ports"]
assert "livenessProbe" not in c
PY
for i in 1 2 3; do
  expect_status 0 curl -fsS --max-time 5 "${ETCD_EP[$i]}/health"
  assert_contains "$OUT" '"health":"true"' "member $i /health"
done

note "two brokers with the shipped secretd.conf; the cluster's addresses and paths overridden"
head -c 32 /dev/urandom >"$T/cluster.key"
chmod 0400 "$T/cluster.key"
grep -qx 'etcd-user = secretd' "$F/secretd.conf" || fail "secretd.conf: etcd-user is not secretd"
printf 'permit all ** uid=0 host\n' | write_policy
for n in a b; do
  mkdir -p "$T/$n"
  "$SECRETD" init --vault "$T/$n/vault.db" --key-file "$T/$n/master.key" >/dev/null
  "$SECRETD" run --config "$F/secretd.conf" --etcd-endpoints "$ETCD_ENDPOINTS" \
    --etcd-password-file "$T/etcd-password" --cluster-key-file "$T/cluster.key" \
    --socket "$T/$n/sock" --vault "$T/$n/vault.db" --key-file "$T/$n/master.key" \
    --policy "$T/policy.conf" --audit-log "$T/$n/audit.log" >>"$T/broker.log" 2>&1 &
  at_exit "kill $! 2>/dev/null; wait $! 2>/dev/null"
  wait_for "broker $n" sh -c "'$CTL' -s '$T/$n/sock' ping >/dev/null 2>&1"
done
connected() { "$CTL" -s "$T/$1/sock" status 2>/dev/null | grep -qx connected=yes; }
for n in a b; do
  for _ in $(seq 1 100); do connected "$n" && break; sleep 0.1; done
  connected "$n" || fail "broker $n not connected: $("$CTL" -s "$T/$n/sock" status 2>&1)"
done
expect_status 0 "$CTL" -s "$T/a/sock" status
assert_contains "$OUT" "upstream=etcd"
printf 'k8s-fleet-value' | "$CTL" -s "$T/a/sock" put apps/k8s/x >/dev/null || fail "put through a"
b_has() { [ "$("$CTL" -s "$T/b/sock" get apps/k8s/x 2>/dev/null)" = k8s-fleet-value ]; }
wait_for "the value on b" b_has
expect_status 0 etcd_ctl get --prefix /secretd/ --keys-only
assert_contains "$OUT" "/secretd/" "the fleet's keys are under etcd-prefix"
if etcd_ctl get --prefix "" --keys-only | grep -v '^/secretd/' | grep -q .; then
  fail "the broker wrote outside /secretd/: $(etcd_ctl get --prefix '' --keys-only | grep -v '^/secretd/')"
fi
if grep -q "$(cat "$T/etcd-password")" "$T/broker.log" "$T"/a/audit.log "$T"/b/audit.log; then
  fail "the etcd password in a log"
fi
echo "PASS $TEST_NAME"
