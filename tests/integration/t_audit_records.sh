#!/usr/bin/env bash
# The audit log with the real broker: every operation writes its record, with
# the right decision, deciding rule and the caller's identity (uid, gid and
# pid as the kernel gives them); typed fields; no value (nor its hex or
# base64) in the audit log or the broker's log; audit-verify accepts the
# log, and finds an edited byte, a removed line, two swapped lines and
# (with --vault) a cut-off tail.
source "$TESTLIB"

# Numbered lines: the "rule" field must name them.
write_policy <<'EOF'
# line 1: a comment, so rules do not start at line 1
permit all                 **           uid=0 host
permit read,write,list,delete app/**    uid=1000
deny   read                app/locked   uid=1000
permit list                shared/**    uid=1000
EOF
RULE_ROOT=2
RULE_APP=3
RULE_LOCKED=4

# Small epochs, so the log verified below crosses several key ratchets;
# debug logging, so the no-value check covers everything the broker says.
start_broker --audit-epoch-records 7 --log-level debug
LOG="$T/audit.log"

# call RC UID GID SECRETCTL-ARGS...: run secretctl as UID:GID (0 0: as root)
# from a shell that execs it, so its pid ($CPID) is the one the broker sees.
# Stdin from $STDIN_FILE (default /dev/null).  Output in $OUT / $ERR.
call() {
  local want=$1 uid=$2 gid=$3 rc=0
  shift 3
  local pre=()
  [ "$uid" -eq 0 ] || pre=(setpriv --reuid "$uid" --regid "$gid" --clear-groups --)
  "${pre[@]}" sh -c 'echo $$ >&3; exec 3>&-; exec "$0" "$@"' "$CTL" "$@" \
    3>"$T/pid" <"${STDIN_FILE:-/dev/null}" >"$T/out" 2>"$T/err" || rc=$?
  OUT=$(cat "$T/out")
  ERR=$(cat "$T/err")
  CPID=$(cat "$T/pid")
  [ "$rc" -eq "$want" ] || fail "expected exit $want, got $rc from: secretctl $* as uid $uid (stderr: $ERR)"
}

# check_last JSON [ABSENT_KEY...]: the log's last record has exactly these
# values, of these JSON types, and none of the absent keys.  Since a record
# is written before its answer is sent, the last line is the last request's.
check_last() {
  python3 - "$LOG" "$1" "${@:2}" <<'PY' || fail "last audit record: see above"
import json, sys
path, want, absent = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3:]
with open(path, "rb") as f:
    line = f.read().splitlines()[-1].decode()
rec = json.loads(line)
bad = []
for k, v in want.items():
    if k not in rec:
        bad.append("missing %s" % k)
    elif type(rec[k]) is not type(v) or rec[k] != v:
        bad.append("%s: want %r (%s), got %r (%s)" % (k, v, type(v).__name__, rec[k], type(rec[k]).__name__))
for k in absent:
    if k in rec:
        bad.append("%s should be absent, is %r" % (k, rec[k]))
if bad:
    print("record: " + line, file=sys.stderr)
    for b in bad:
        print("  " + b, file=sys.stderr)
    sys.exit(1)
PY
}

# Every record: the contract's fields with their JSON types, seq 1, 2, 3 ...
check_schema() {
  python3 - "$LOG" <<'PY' || fail "audit log schema: see above"
import json, re, sys
ts_re = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
ops = {"get", "put", "list", "rm", "whoami", "ping", "start", "epoch", "stop", "degraded", "reopen"}
bad = []
with open(sys.argv[1], "rb") as f:
    lines = f.read().decode().splitlines()
for i, line in enumerate(lines, 1):
    r = json.loads(line)
    def need(k, t):
        if k not in r or type(r[k]) is not t:
            bad.append("line %d: %s missing or not %s: %r" % (i, k, t.__name__, r.get(k)))
    for k in ("seq", "rule", "uid", "gid", "pid"):
        need(k, int)
    for k in ("ts", "op", "decision", "cgroup", "container", "pod", "chain"):
        need(k, str)
    for k, t in (("version", int), ("name", str), ("error", str), ("count", int)):
        if k in r:
            need(k, t)
    if not ts_re.match(str(r.get("ts"))):
        bad.append("line %d: ts not RFC 3339 UTC with microseconds: %r" % (i, r.get("ts")))
    if r.get("seq") != i:
        bad.append("line %d: seq %r" % (i, r.get("seq")))
    if r.get("op") not in ops:
        bad.append("line %d: op %r" % (i, r.get("op")))
    if r.get("decision") not in ("allow", "deny", "error"):
        bad.append("line %d: decision %r" % (i, r.get("decision")))
    if r.get("decision") != "allow" and "error" not in r:
        bad.append("line %d: a %s without an error field" % (i, r.get("decision")))
    if not re.match(r"^[0-9a-f]{64}$", str(r.get("chain"))):
        bad.append("line %d: chain %r" % (i, r.get("chain")))
    if list(r)[-1] != "chain":
        bad.append("line %d: chain is not the last field" % i)
for b in bad:
    print(b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}

expect_status 0 "$CTL" whoami
MYCG=$(sed -n 's/^cgroup=//p' <<<"$OUT")
as_user 1000 1000 "$CTL" whoami >"$T/who1000" || fail "whoami as uid 1000"
CG1000=$(sed -n 's/^cgroup=//p' "$T/who1000")

VALUE="VALUE-$RANDOM$RANDOM-zebra"
printf '%s' "$VALUE" >"$T/value"
chmod 0644 "$T/value"

note "put as root: allow, version, root's rule, the caller's pid"
call 0 0 0 put app/db/password --from-file "$T/value"
assert_eq "$OUT" "1"
check_last "{\"op\":\"put\",\"name\":\"app/db/password\",\"version\":1,\"decision\":\"allow\",\"rule\":$RULE_ROOT,\"uid\":0,\"gid\":0,\"pid\":$CPID,\"cgroup\":\"$MYCG\",\"container\":\"\",\"pod\":\"\"}" error
call 0 0 0 put app/db/password --from-file "$T/value"
assert_eq "$OUT" "2"
check_last "{\"op\":\"put\",\"version\":2,\"decision\":\"allow\",\"pid\":$CPID}"

note "get as root: allow, the version read"
call 0 0 0 get app/db/password
assert_eq "$OUT" "$VALUE"
check_last "{\"op\":\"get\",\"name\":\"app/db/password\",\"version\":2,\"decision\":\"allow\",\"rule\":$RULE_ROOT,\"uid\":0,\"gid\":0,\"pid\":$CPID}" error
call 0 0 0 get app/db/password --version 1
check_last "{\"op\":\"get\",\"version\":1,\"decision\":\"allow\",\"pid\":$CPID}"

note "get of a missing name: decision error, error not found, the rule that let it read"
call 3 0 0 get app/missing
check_last "{\"op\":\"get\",\"name\":\"app/missing\",\"decision\":\"error\",\"error\":\"not found\",\"rule\":$RULE_ROOT,\"uid\":0,\"pid\":$CPID}"

note "put, get as uid 1000: its uid, gid, pid and rule"
call 0 1000 1000 put app/locked --from-file "$T/value"
check_last "{\"op\":\"put\",\"name\":\"app/locked\",\"version\":1,\"decision\":\"allow\",\"rule\":$RULE_APP,\"uid\":1000,\"gid\":1000,\"pid\":$CPID,\"cgroup\":\"$CG1000\"}" error
call 0 1000 1000 get app/db/password
assert_eq "$OUT" "$VALUE"
check_last "{\"op\":\"get\",\"name\":\"app/db/password\",\"version\":2,\"decision\":\"allow\",\"rule\":$RULE_APP,\"uid\":1000,\"gid\":1000,\"pid\":$CPID}"

note "get denied by a deny rule: rule is that line"
call 4 1000 1000 get app/locked
[ -z "$OUT" ] || fail "a denied get printed something"
check_last "{\"op\":\"get\",\"name\":\"app/locked\",\"decision\":\"deny\",\"rule\":$RULE_LOCKED,\"uid\":1000,\"gid\":1000,\"pid\":$CPID}" version

note "default deny: rule 0"
call 0 0 0 put other/thing --from-file "$T/value"
call 4 1000 1000 get other/thing
check_last "{\"op\":\"get\",\"name\":\"other/thing\",\"decision\":\"deny\",\"rule\":0,\"uid\":1000,\"gid\":1000,\"pid\":$CPID}" version
call 4 1000 1000 put other/thing --from-file "$T/value"
check_last "{\"op\":\"put\",\"name\":\"other/thing\",\"decision\":\"deny\",\"rule\":0,\"uid\":1000,\"pid\":$CPID}" version
call 4 1000 1000 rm other/thing
check_last "{\"op\":\"rm\",\"name\":\"other/thing\",\"decision\":\"deny\",\"rule\":0,\"uid\":1000,\"pid\":$CPID}"

note "an invalid name of 300 bytes: decision error, only its first 64 bytes recorded"
raw_exchange "00000134""0102""012c$(printf '61%.0s' $(seq 300))""00000000" >/dev/null
A64=$(printf 'a%.0s' $(seq 64))
check_last "{\"op\":\"get\",\"name\":\"$A64\",\"decision\":\"error\",\"error\":\"bad name\",\"uid\":0}"

note "list: the count of names, not the names"
for n in alpha-list-name beta-list-name gamma-list-name; do
  call 0 0 0 put "shared/$n" --from-file "$T/value"
done
call 0 1000 1000 list
NAMES="$OUT"
COUNT=$(grep -c . <<<"$NAMES")
[ "$COUNT" -ge 5 ] || fail "uid 1000 should list app/** and shared/**, got [$NAMES]"
check_last "{\"op\":\"list\",\"decision\":\"allow\",\"count\":$COUNT,\"uid\":1000,\"gid\":1000,\"pid\":$CPID}" name version error
LISTREC=$(tail -n 1 "$LOG")
while read -r n; do
  assert_not_contains "$LISTREC" "$n" "a listed name in the list record"
done <<<"$NAMES"
assert_not_contains "$LISTREC" "list-name" "a listed name in the list record"
call 0 0 0 list 'shared/*'
assert_eq "$(grep -c . <<<"$OUT")" "3"
check_last "{\"op\":\"list\",\"decision\":\"allow\",\"count\":3,\"uid\":0,\"pid\":$CPID}"
assert_not_contains "$(tail -n 1 "$LOG")" "alpha-list-name" "a listed name in the list record"

note "rm: allow, rule; a second rm: not found"
call 0 1000 1000 rm app/locked
check_last "{\"op\":\"rm\",\"name\":\"app/locked\",\"decision\":\"allow\",\"rule\":$RULE_APP,\"uid\":1000,\"gid\":1000,\"pid\":$CPID}" error
call 3 0 0 rm app/locked
check_last "{\"op\":\"rm\",\"name\":\"app/locked\",\"decision\":\"error\",\"error\":\"not found\",\"uid\":0,\"pid\":$CPID}"

note "whoami and ping, as root and as uid 1000"
call 0 0 0 whoami
check_last "{\"op\":\"whoami\",\"decision\":\"allow\",\"uid\":0,\"gid\":0,\"pid\":$CPID}" name
call 0 1000 1000 whoami
check_last "{\"op\":\"whoami\",\"decision\":\"allow\",\"uid\":1000,\"gid\":1000,\"pid\":$CPID}" name
call 0 0 0 ping
check_last "{\"op\":\"ping\",\"decision\":\"allow\",\"uid\":0,\"gid\":0,\"pid\":$CPID}" name
call 0 1000 1000 ping
check_last "{\"op\":\"ping\",\"decision\":\"allow\",\"uid\":1000,\"gid\":1000,\"pid\":$CPID}" name

note "the broker's own records, and every record's fields and types"
stop_broker
check_last '{"op":"stop","decision":"allow"}'
[ "$(head -n 1 "$LOG" | python3 -c 'import json,sys; print(json.load(sys.stdin)["op"])')" = start ] ||
  fail "the first record is not a start record"
grep -q '"op":"epoch"' "$LOG" || fail "no epoch record after more than 7 records per epoch"
check_schema

note "no value, nor its hex or base64, in the audit log or the broker's log"
HEX=$(printf '%s' "$VALUE" | od -An -tx1 | tr -d ' \n')
B64=$(printf '%s' "$VALUE" | base64 -w0)
for f in "$LOG" "$T/broker.log"; do
  for needle in "$VALUE" "$HEX" "${B64%%=*}" zebra; do
    ! grep -qF -- "$needle" "$f" || fail "[$needle] (from the value) found in $f"
  done
done

note "audit-verify accepts the whole log, with and without --vault"
N=$(wc -l <"$LOG")
expect_status 0 "$SECRETD" audit-verify --key-file "$T/master.key" --vault "$T/vault.db" "$LOG"
assert_contains "$OUT" "OK: $N records, seq 1..$N"
assert_contains "$OUT" "checkpoint at seq $N matches"
expect_status 0 "$SECRETD" audit-verify --key-file "$T/master.key" "$LOG"
assert_contains "$OUT" "OK: $N records, seq 1..$N"

note "a wrong key fails"
head -c 32 /dev/urandom >"$T/other.key"
chmod 0400 "$T/other.key"
expect_status 1 "$SECRETD" audit-verify --key-file "$T/other.key" "$LOG"

M=$((N / 2))
note "one byte edited in record $M of $N: exit 1 naming line $M"
python3 - "$LOG" "$T/edited.log" "$M" <<'PY'
import sys
src, dst, m = sys.argv[1], sys.argv[2], int(sys.argv[3])
lines = open(src, "rb").read().split(b"\n")
ln = bytearray(lines[m - 1])
i = ln.index(b'Z"') - 1          # the last digit of the microseconds
ln[i] = ord("0") + (ln[i] - ord("0") + 1) % 10
lines[m - 1] = bytes(ln)
open(dst, "wb").write(b"\n".join(lines))
PY
cmp -s "$LOG" "$T/edited.log" && fail "the edit did not change the file"
assert_eq "$(wc -c <"$T/edited.log")" "$(wc -c <"$LOG")" "the edit changed the size"
expect_status 1 "$SECRETD" audit-verify --key-file "$T/master.key" --vault "$T/vault.db" "$T/edited.log"
assert_contains "$ERR" "$T/edited.log:$M: seq $M:"
expect_status 1 "$SECRETD" audit-verify --key-file "$T/master.key" "$T/edited.log"
assert_contains "$ERR" "$T/edited.log:$M: seq $M:"

note "line $M deleted: exit 1 naming line $M"
sed "${M}d" "$LOG" >"$T/deleted.log"
expect_status 1 "$SECRETD" audit-verify --key-file "$T/master.key" "$T/deleted.log"
assert_contains "$ERR" "$T/deleted.log:$M: seq $((M + 1)):"

note "the first 1 and 2 lines deleted: exit 1, with and without --vault"
for k in 1 2; do
  tail -n +$((k + 1)) "$LOG" >"$T/headless.log"
  expect_status 1 "$SECRETD" audit-verify --key-file "$T/master.key" "$T/headless.log"
  assert_contains "$ERR" "$T/headless.log:1: seq $((k + 1)): the first record given is not the first"
  expect_status 1 "$SECRETD" audit-verify --key-file "$T/master.key" --vault "$T/vault.db" "$T/headless.log"
done

note "lines $M and $((M + 1)) swapped: exit 1 naming line $M"
awk -v m="$M" 'NR == m { held = $0; next } { print } NR == m + 1 { print held }' "$LOG" >"$T/swapped.log"
assert_eq "$(wc -l <"$T/swapped.log")" "$N"
expect_status 1 "$SECRETD" audit-verify --key-file "$T/master.key" "$T/swapped.log"
assert_contains "$ERR" "$T/swapped.log:$M: seq $((M + 1)):"

note "a record inserted twice: exit 1"
sed "${M}p" "$LOG" >"$T/dup.log"
expect_status 1 "$SECRETD" audit-verify --key-file "$T/master.key" "$T/dup.log"
assert_contains "$ERR" "$T/dup.log:$((M + 1)): seq $M:"

note "the last 3 lines cut off (broker stopped): --vault finds it, without --vault it cannot"
head -n $((N - 3)) "$LOG" >"$T/cut.log"
mv "$T/cut.log" "$LOG"
expect_status 1 "$SECRETD" audit-verify --key-file "$T/master.key" --vault "$T/vault.db" "$LOG"
assert_contains "$ERR" "cut off"
expect_status 0 "$SECRETD" audit-verify --key-file "$T/master.key" "$LOG"
assert_contains "$OUT" "OK: $((N - 3)) records, seq 1..$((N - 3))"

note "a restart on the cut log continues after the checkpoint: the gap stays visible"
start_broker
expect_status 0 "$CTL" get app/db/password
stop_broker
first_new=$(sed -n "$((N - 2))p" "$LOG" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["op"], r["seq"])')
assert_eq "$first_new" "start $((N + 1))" "the start record after the cut"
expect_status 1 "$SECRETD" audit-verify --key-file "$T/master.key" --vault "$T/vault.db" "$LOG"
assert_contains "$ERR" "$LOG:$((N - 2)): seq $((N + 1)):"

echo "PASS $TEST_NAME"
