#!/usr/bin/env bash
# Tampering with the vault file while the broker is stopped: a flipped byte
# of ciphertext, two rows' ciphertexts swapped, a row copied or moved to
# another name, another version or another term.  Each tampered secret gives
# a clear integrity error (exit 1, nothing on stdout), never a value, and the
# broker keeps serving what is intact.  A vault without its data key, or cut
# to half its size, is refused at start or answers integrity errors: never a
# wrong value, never a crash.
source "$TESTLIB"

command -v sqlite3 >/dev/null || {
  apt-get install -y sqlite3 >/dev/null 2>&1 || fail "the sqlite3 CLI is missing (contrib/dev/deps.sh installs it)"
}

sql() { sqlite3 -batch -bail "$T/vault.db" "$@"; }
blob() { printf "CAST('%s' AS BLOB)" "$1"; } # names are stored as BLOBs

# get_refused NAME WHY: a tampered secret: exit 1, "integrity error", no value.
get_refused() {
  expect_status 1 "$CTL" get "$1"
  assert_contains "$ERR" "integrity error" "$2: $1"
  assert_eq "$OUT" "" "$2: nothing on stdout for $1"
}

start_broker
for n in one two three four five six seven; do
  printf 'value-of-%s' "$n" | "$CTL" put "a/$n" >/dev/null
done
printf 'old' | "$CTL" put a/versions >/dev/null
printf 'new' | "$CTL" put a/versions >/dev/null
printf 'untouched' | "$CTL" put keep/safe >/dev/null
stop_broker

note "tampering with the stopped broker's vault through the sqlite3 CLI"
# a/one: flip one bit of the ciphertext (hex digit 10 of the BLOB)
hex=$(sql "SELECT hex(ct) FROM secrets WHERE name = $(blob a/one)")
[ -n "$hex" ] || fail "no row for a/one in the vault"
d=${hex:9:1}
flipped=${hex:0:9}$(printf '%X' $(((16#$d) ^ 1)))${hex:10}
sql "UPDATE secrets SET ct = X'$flipped' WHERE name = $(blob a/one)"
# a/two and a/three: nonce and ciphertext swapped
sql "CREATE TEMP TABLE t AS SELECT name, nonce, ct FROM secrets
       WHERE name IN ($(blob a/two), $(blob a/three));
     UPDATE secrets SET nonce = (SELECT nonce FROM t WHERE t.name = $(blob a/three)),
                        ct    = (SELECT ct    FROM t WHERE t.name = $(blob a/three))
       WHERE name = $(blob a/two);
     UPDATE secrets SET nonce = (SELECT nonce FROM t WHERE t.name = $(blob a/two)),
                        ct    = (SELECT ct    FROM t WHERE t.name = $(blob a/two))
       WHERE name = $(blob a/three)"
# a/four copied under a new name, a/five moved to a new name
sql "INSERT INTO secrets(name, version, term, nonce, ct)
       SELECT $(blob a/copy), version, term, nonce, ct FROM secrets WHERE name = $(blob a/four);
     UPDATE secrets SET name = $(blob a/moved) WHERE name = $(blob a/five)"
# a/six: moved to version 2 of itself; a/seven: moved to a term that does not exist
sql "UPDATE secrets SET version = 2 WHERE name = $(blob a/six);
     UPDATE secrets SET term = term + 41 WHERE name = $(blob a/seven)"
# a/versions: the two versions swapped
sql "UPDATE secrets SET version = 3 WHERE name = $(blob a/versions) AND version = 1;
     UPDATE secrets SET version = 1 WHERE name = $(blob a/versions) AND version = 2;
     UPDATE secrets SET version = 2 WHERE name = $(blob a/versions) AND version = 3"

start_broker
note "each tampered secret: integrity error, no value"
get_refused a/one "flipped ciphertext"
get_refused a/two "another row's ciphertext"
get_refused a/three "another row's ciphertext"
get_refused a/copy "a row copied to another name"
get_refused a/moved "a row moved to another name"
get_refused a/six "a row moved to another version"
get_refused a/seven "a row moved to another term"
get_refused a/versions "versions swapped"
expect_status 1 "$CTL" get a/versions --version 1
assert_contains "$ERR" "integrity error" "versions swapped, version 1"
assert_eq "$OUT" ""

note "what is intact is served: the originals, ping, list, new puts"
expect_status 0 "$CTL" get keep/safe
assert_eq "$OUT" "untouched"
expect_status 0 "$CTL" get a/four
assert_eq "$OUT" "value-of-four" "a/four (its row was only copied)"
expect_status 3 "$CTL" get a/five
expect_status 0 "$CTL" ping
expect_status 0 "$CTL" list a/*
assert_contains "$OUT" "a/copy"
printf 'fresh' | "$CTL" put a/one >/dev/null || fail "a new version over a tampered one"
expect_status 0 "$CTL" get a/one
assert_eq "$OUT" "fresh" "a new version of a tampered name"
expect_status 1 "$CTL" get a/one --version 1
assert_contains "$ERR" "integrity error" "the tampered version stays refused"
expect_status 0 "$CTL" get keep/safe
assert_eq "$OUT" "untouched" "still served after the integrity errors"
stop_broker

note "the audit log records the integrity errors"
python3 - "$T/audit.log" <<'PY' || fail "integrity errors are not in the audit log"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
bad = {r["name"] for r in recs if r.get("op") == "get" and r.get("error") == "integrity error"
       and r.get("decision") == "error"}
want = {"a/one", "a/two", "a/three", "a/copy", "a/moved", "a/six", "a/seven", "a/versions"}
assert want <= bad, "missing: %s" % sorted(want - bad)
PY

note "rolling back a name by deleting its newest version (not detectable per row)"
cp "$T/vault.db" "$T/vault.keep"
start_broker
printf 'v2' | "$CTL" put a/roll >/dev/null
printf 'v3' | "$CTL" put a/roll >/dev/null
stop_broker
sql "DELETE FROM secrets WHERE name = $(blob a/roll) AND version = 2"
start_broker
rc=0
"$CTL" get a/roll >"$T/out" 2>"$T/err" || rc=$?
note "after deleting a/roll's newest row: get exits $rc with [$(cat "$T/out")] $(cat "$T/err")"
stop_broker

# start_refused WHY: the broker must exit 1 at start with one line.
start_refused() {
  local rc=0
  timeout 10 "$SECRETD" run --socket "$SECRETD_SOCKET" --vault "$T/vault.db" \
    --key-file "$T/master.key" --policy "$T/policy.conf" --audit-log "$T/audit.log" \
    >"$T/start.out" 2>"$T/start.err" || rc=$?
  assert_eq "$rc" "1" "$1: exit status at start"
  assert_eq "$(wc -l <"$T/start.err")" "1" "$1: one line on stderr ($(cat "$T/start.err"))"
  assert_eq "$(cat "$T/start.out")" "" "$1: nothing on stdout"
}

note "the data key row deleted: the broker refuses to start"
cp "$T/vault.keep" "$T/vault.db"
rm -f "$T/vault.db-wal" "$T/vault.db-shm"
sql "DELETE FROM datakeys"
start_refused "no data key"
assert_contains "$(cat "$T/start.err")" "integrity error" "no data key"
note "refused: $(cat "$T/start.err")"

note "the wrapped data key altered: refused"
cp "$T/vault.keep" "$T/vault.db"
sql "UPDATE datakeys SET wrapped = zeroblob(length(wrapped))"
start_refused "wrapped key altered"
note "refused: $(cat "$T/start.err")"

note "the vault truncated to half its size: refused, or integrity errors, never a wrong value"
rm -f "$T/vault.db" "$T/vault.db-wal" "$T/vault.db-shm" "$T/master.key" "$T/audit.log"
make_vault
start_broker
for i in $(seq 1 120); do
  head -c 900 /dev/zero | tr '\0' "$(printf '\\%03o' $((65 + i % 26)))" >"$T/val.$i"
  "$CTL" put "t/s$i" --from-file "$T/val.$i" >/dev/null
done
stop_broker
size=$(stat -c %s "$T/vault.db")
truncate -s $((size / 2)) "$T/vault.db"
note "vault cut from $size to $((size / 2)) bytes"
rc=0
"$SECRETD" run --socket "$SECRETD_SOCKET" --vault "$T/vault.db" --key-file "$T/master.key" \
  --policy "$T/policy.conf" --audit-log "$T/audit.log" >"$T/start.out" 2>"$T/start.err" &
BROKER_PID=$!
up=0
for _ in $(seq 1 100); do
  if "$CTL" ping >/dev/null 2>&1; then up=1; break; fi
  kill -0 "$BROKER_PID" 2>/dev/null || break
  sleep 0.05
done
if [ "$up" -eq 0 ]; then
  wait "$BROKER_PID" || rc=$?
  BROKER_PID=""
  assert_eq "$rc" "1" "a truncated vault: exit status at start ($(cat "$T/start.err"))"
  assert_eq "$(wc -l <"$T/start.err")" "1" "a truncated vault: one line ($(cat "$T/start.err"))"
  note "truncated vault: refused at start: $(cat "$T/start.err")"
else
  good=0 refused=0 missing=0
  for i in $(seq 1 120); do
    rc=0
    "$CTL" get "t/s$i" >"$T/out" 2>"$T/err" || rc=$?
    case $rc in
      0) cmp -s "$T/out" "$T/val.$i" || fail "t/s$i: a WRONG value from a truncated vault"
         good=$((good + 1)) ;;
      1) assert_eq "$(stat -c %s "$T/out")" "0" "t/s$i: nothing on stdout when refused"
         refused=$((refused + 1)) ;;
      3) missing=$((missing + 1)) ;;
      *) fail "t/s$i: exit $rc from a truncated vault ($(cat "$T/err"))" ;;
    esac
    kill -0 "$BROKER_PID" 2>/dev/null || fail "the broker died serving a truncated vault"
  done
  note "truncated vault served: $good exact, $refused refused ($(head -c 80 "$T/err")), $missing not found"
  kill -TERM "$BROKER_PID"
  rc=0
  wait "$BROKER_PID" || rc=$?
  BROKER_PID=""
  [ "$rc" -lt 128 ] || fail "the broker died of signal $((rc - 128)) on a truncated vault"
fi
echo "PASS $TEST_NAME"
