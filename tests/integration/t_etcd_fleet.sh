#!/usr/bin/env bash
# The fleet modules against a real three-member etcd cluster on loopback:
# sealed round trips, no plaintext anywhere in etcd, keep-versions in the
# same txn, rm as a tombstone, one version sequence under concurrent puts
# from several clients, and a watch that delivers every change in order.
source "$TESTLIB"
source "$(dirname "$TESTLIB")/etcd.sh"
etcd_cluster_start

CANARY="PLAINTEXT-CANARY-fleet-5b0e2d71"

note "the first client creates the fleet data key, a second one opens the same"
expect_status 0 fleet init
expect_status 0 fleet init
[ "$(etcd_ctl get --prefix /secretd/keys/ --keys-only | grep -c .)" -eq 1 ] \
  || fail "more than one fleet data key"

note "put and get through the sealed format, byte-exact, with versions"
head -c 3000 /dev/urandom >"$T/bin.in"
printf '%s\0tail' "$CANARY" >>"$T/bin.in"
expect_status 0 fleet put app/bin <"$T/bin.in"
assert_contains "$OUT" "version=1 "
fleet get app/bin >"$T/bin.out" || fail "get app/bin"
cmp -s "$T/bin.in" "$T/bin.out" || fail "value changed on the way through etcd"
printf '%s-two' "$CANARY" | fleet put app/bin >/dev/null || fail "second put"
assert_eq "$(fleet get app/bin)" "$CANARY-two" "latest version"
fleet get app/bin 1 >"$T/bin.v1" || fail "get version 1"
cmp -s "$T/bin.in" "$T/bin.v1" || fail "version 1 changed"
expect_status 0 fleet put app/empty </dev/null
expect_status 0 fleet get app/empty
assert_eq "$OUT" "" "empty value"
expect_status 4 fleet get app/none

note "a wrong cluster key does not open the fleet"
head -c 32 /dev/urandom >"$T/other.key"
chmod 0400 "$T/other.key"
expect_status 1 "$ETCD_DRIVER" --endpoints "$ETCD_ENDPOINTS" --cluster-key "$T/other.key" get app/bin
assert_contains "$ERR" "cluster key does not open"

note "keep-versions: old versions leave etcd in the txn that adds a new one"
for i in 3 4 5 6 7; do printf '%s-%s' "$CANARY" "$i" | fleet --keep 3 put app/bin >/dev/null || fail "put $i"; done
versions=$(etcd_ctl get --prefix /secretd/v/app/bin@ --keys-only | grep . | tr '\n' ' ')
assert_eq "$versions" "/secretd/v/app/bin@0000000005 /secretd/v/app/bin@0000000006 /secretd/v/app/bin@0000000007 " "kept versions"
expect_status 4 fleet get app/bin 4

note "etcd holds no value: not in its answers, not in its data files"
etcd_ctl get --prefix /secretd/ -w json >"$T/dump.json"
python3 - "$T/dump.json" "$CANARY" <<'PY' || fail "plaintext found in etcd's answers"
import base64, json, sys
d = json.load(open(sys.argv[1]))
canary = sys.argv[2].encode()
for kv in d.get("kvs", []):
    for f in ("key", "value"):
        if canary in base64.b64decode(kv.get(f, "")):
            sys.exit(1)
PY
etcd_ctl get --prefix /secretd/ --print-value-only >"$T/dump.txt"
! grep -qa "$CANARY" "$T/dump.txt" || fail "plaintext in etcdctl get --prefix"
! grep -rqa "$CANARY" "$T"/etcd-m1 "$T"/etcd-m2 "$T"/etcd-m3 || fail "plaintext in etcd's data folders"
grep -rqa "app/bin" "$T"/etcd-m1 || fail "names should be in etcd (the check above would be vacuous)"

note "rm leaves a tombstone; the next put continues the sequence"
expect_status 0 fleet rm app/bin
expect_status 4 fleet get app/bin
expect_status 4 fleet rm app/bin
[ -z "$(etcd_ctl get --prefix /secretd/v/app/bin@ --keys-only)" ] || fail "versions left after rm"
expect_status 0 fleet put app/bin <<<"back"
assert_contains "$OUT" "version=8 "

note "a watch delivers every change in revision order"
start=$(fleet status | sed -n 's/.*revision=\([0-9]*\).*/\1/p')
[ -n "$start" ] || fail "no revision from status"
fleet --wait-ms 20000 watch $((start + 1)) 6 >"$T/watch.out" 2>"$T/watch.err" &
wpid=$!
for n in w/a w/b w/c w/a w/b; do printf 'x' | fleet put "$n" >/dev/null || fail "put $n"; done
fleet rm w/c >/dev/null || fail "rm w/c"
wait "$wpid" || fail "watch exited $? ($(cat "$T/watch.err"))"
heads=$(grep ' head ' "$T/watch.out" | awk '{print $4, $5, $6}' | tr '\n' ';')
assert_eq "$heads" "w/a version=1 ;w/b version=1 ;w/c version=1 ;w/a version=2 ;w/b version=2 ;w/c version=1 removed;" "watched heads"
revs=$(grep '^rev=' "$T/watch.out" | sed 's/^rev=\([0-9]*\).*/\1/')
[ "$revs" = "$(sort -n <<<"$revs")" ] || fail "watch revisions out of order: $revs"

note "concurrent puts of one name from four clients: one sequence, no duplicate"
pids=()
for c in 1 2 3 4; do
  fleet put-many race/one 25 >"$T/race.$c" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a racing client failed"; done
! grep -q '^fail' "$T"/race.* || fail "a put failed: $(grep -h '^fail' "$T"/race.* | head -3)"
got=$(cat "$T"/race.* | sed -n 's/^ok version=\([0-9]*\).*/\1/p' | sort -n | tr '\n' ' ')
assert_eq "$got" "$(seq 1 100 | tr '\n' ' ')" "versions acknowledged to the four clients"
assert_contains "$(fleet snapshot)" "head race/one version=100 "
note "ok"
