#!/usr/bin/env bash
# TLS and authentication: a cluster that wants client certificates and a
# user; the fleet works through both, re-authenticates when its token
# expires, and a wrong password, a missing certificate or another CA is a
# clear error.
source "$TESTLIB"
source "$(dirname "$TESTLIB")/etcd.sh"
# Simple tokens that expire after 1 s, to exercise re-authentication.
ETCD_EXTRA=(--auth-token "simple" --auth-token-ttl 1)
etcd_cluster_start tls
etcd_auth_enable fleetuser "s3cret-pass"
printf 's3cret-pass\n' >"$T/pw"
chmod 0600 "$T/pw"
ETCD_DRIVER_USER=fleetuser
ETCD_DRIVER_PWFILE=$T/pw

note "put, get and watch over TLS as an etcd user"
expect_status 0 fleet init
printf 'tls-value' | fleet put t/one >/dev/null || fail "put over TLS"
assert_eq "$(fleet get t/one)" "tls-value" "value over TLS"
fleet --wait-ms 10000 watch 1 1 >"$T/watch.out" 2>&1 || fail "watch over TLS: $(cat "$T/watch.out")"
assert_contains "$(cat "$T/watch.out")" "head t/one version=1"

note "the token expires between puts: the client authenticates again"
expect_status 0 fleet --pause-ms 1500 put-many t/slow 3
assert_eq "$(grep -c '^ok' <<<"$OUT")" "3" "puts after the token expired"

note "a wrong password is refused with a clear error, quickly"
printf 'wrong\n' >"$T/badpw"
ETCD_DRIVER_PWFILE=$T/badpw
expect_status 1 fleet --timeout-ms 3000 get t/one
assert_contains "$ERR" "refused authentication"
assert_not_contains "$ERR" "wrong" "the password is never printed"
ETCD_DRIVER_PWFILE=$T/pw

note "no user: etcd refuses the request"
ETCD_DRIVER_USER=""
expect_status 1 fleet --timeout-ms 3000 get t/one
ETCD_DRIVER_USER=fleetuser

note "no client certificate, or another CA: no connection, unavailable"
etcd_cluster_key
expect_status 6 "$ETCD_DRIVER" --endpoints "$ETCD_ENDPOINTS" --cluster-key "$T/cluster.key" \
  --cacert "$ETCD_TLS_DIR/ca.crt" --user fleetuser --password-file "$T/pw" --timeout-ms 2000 get t/one
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=other CA" \
  -keyout "$T/other.key" -out "$T/other.crt" >/dev/null 2>&1 || fail "openssl"
expect_status 6 "$ETCD_DRIVER" --endpoints "$ETCD_ENDPOINTS" --cluster-key "$T/cluster.key" \
  --cacert "$T/other.crt" --cert "$ETCD_TLS_DIR/client.crt" --key "$ETCD_TLS_DIR/client.key" \
  --user fleetuser --password-file "$T/pw" --timeout-ms 2000 get t/one
assert_eq "$OUT" "" "no value without a trusted server"

note "plain http to a TLS cluster is unavailable, not a crash"
expect_status 6 "$ETCD_DRIVER" --endpoints "${ETCD_ENDPOINTS//https:/http:}" \
  --cluster-key "$T/cluster.key" --timeout-ms 2000 get t/one
note "ok"
