#!/usr/bin/env bash
# Policy regress tests, data-driven (tests/regress/policy/README): every
# request in <case>.cases is decided by `secretd check-policy --as` against
# <case>.policy and must give the expected decision and deciding line;
# every bad_*.policy must be refused with the line:col its first line names.
set -eu

: "${SECRETD:?SECRETD must name the secretd binary}"
ROOT=${SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
DATA=$ROOT/tests/regress/policy
T=$(mktemp -d /tmp/secretd-policy-regress.XXXXXX)
trap 'rm -rf "$T"' EXIT
failures=0
checked=0

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# A policy is copied and given mode 0644 (owned by us), so the checks of its
# mode and owner pass whatever the checkout's umask and owner were.
stage() {
  local dst
  dst=$T/$(basename "$1")
  cp "$1" "$dst"
  chmod 0644 "$dst"
  echo "$dst"
}

# The text check-policy quotes for a rule: the line without its comment,
# without outer blanks.
rule_text() {
  sed -n "${2}p" "$1" | sed -e 's/#.*//' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//'
}

# run_case POLICY WHERE FIELDS...: one table line.
run_case() {
  local policy=$1 where=$2
  shift 2
  local f=("$@") n=$# want_line="" want perm name out rc expect
  if [[ ${f[n - 1]} =~ ^[0-9]+$ ]]; then
    want_line=${f[n - 1]}
    n=$((n - 1))
  fi
  if ((n < 4)); then
    fail "$where: malformed table line"
    return
  fi
  want=${f[n - 1]}
  name=${f[n - 2]}
  perm=${f[n - 3]}
  if [ "$want" != permit ] && [ "$want" != deny ]; then
    fail "$where: expected decision is \"$want\", not permit or deny"
    return
  fi
  rc=0
  out=$("$SECRETD" check-policy "$policy" --as "${f[@]:0:n-3}" "$perm" "$name" 2>"$T/stderr") || rc=$?
  checked=$((checked + 1))
  if [ "$want" = permit ] && [ "$rc" -ne 0 ]; then
    fail "$where: want permit (exit 0), got exit $rc: $out $(cat "$T/stderr")"
    return
  fi
  if [ "$want" = deny ] && [ "$rc" -ne 1 ]; then
    fail "$where: want deny (exit 1), got exit $rc: $out $(cat "$T/stderr")"
    return
  fi
  if [ -z "$want_line" ]; then
    [ "${out%% *}" = "$want" ] || fail "$where: want $want, got: $out"
    return
  fi
  if [ "$want_line" = 0 ]; then
    expect="deny (no rule matched: default deny)"
  else
    expect="$want (line $want_line: $(rule_text "$policy" "$want_line"))"
  fi
  [ "$out" = "$expect" ] || fail "$where: want \"$expect\", got \"$out\""
}

# ---- the tables ----
for cases in "$DATA"/*.cases; do
  base=$(basename "$cases" .cases)
  policy=$(stage "$DATA/$base.policy")
  out=$("$SECRETD" check-policy "$policy" 2>&1) || fail "$base.policy does not parse: $out"
  lineno=0
  while IFS= read -r line || [ -n "$line" ]; do
    lineno=$((lineno + 1))
    case "$line" in '' | '#'*) continue ;; esac
    read -r -a fields <<<"$line"
    run_case "$policy" "$base.cases:$lineno: $line" "${fields[@]}"
  done <"$cases"
done

# ---- broken policies: exit 1, the message names file:line:col ----
for bad in "$DATA"/bad_*.policy; do
  expect=$(sed -n '1s/^# expect: //p' "$bad")
  if [ -z "$expect" ]; then
    fail "$(basename "$bad"): no \"# expect:\" first line"
    continue
  fi
  policy=$(stage "$bad")
  rc=0
  "$SECRETD" check-policy "$policy" >"$T/stdout" 2>"$T/stderr" || rc=$?
  checked=$((checked + 1))
  [ "$rc" -eq 1 ] || fail "$(basename "$bad"): want exit 1, got $rc"
  [ -s "$T/stdout" ] && fail "$(basename "$bad"): printed to stdout: $(cat "$T/stdout")"
  grep -qF "secretd: $policy:$expect" "$T/stderr" ||
    fail "$(basename "$bad"): want \"secretd: $policy:$expect...\", got \"$(cat "$T/stderr")\""
  # With --as as well, a broken policy decides nothing.
  rc=0
  "$SECRETD" check-policy "$policy" --as uid=0 host read x >/dev/null 2>&1 || rc=$?
  [ "$rc" -eq 1 ] || fail "$(basename "$bad") --as: want exit 1, got $rc"
done

# ---- the plain check, file checks and usage errors ----
policy=$(stage "$DATA/contract.policy")
out=$("$SECRETD" check-policy "$policy")
[ "$out" = "$policy: OK, 4 rules" ] || fail "check-policy said \"$out\""
checked=$((checked + 1))

# expect_exit CODE STDERR-SUBSTRING ARGS...: one refused invocation.
expect_exit() {
  local want=$1 msg=$2 rc=0
  shift 2
  "$SECRETD" check-policy "$@" >"$T/stdout" 2>"$T/stderr" || rc=$?
  checked=$((checked + 1))
  [ "$rc" -eq "$want" ] || fail "check-policy $*: want exit $want, got $rc"
  grep -qF -- "$msg" "$T/stderr" || fail "check-policy $*: stderr lacks \"$msg\": $(cat "$T/stderr")"
}

chmod 0664 "$policy"
expect_exit 1 "secretd: policy $policy: mode 0664 lets group or others write it" "$policy"
chmod 0646 "$policy"
expect_exit 1 "mode 0646 lets group or others write it" "$policy" --as uid=0 host read x
# A link is followed, as Kubernetes mounts ConfigMaps; its target is checked.
ln -s "$policy" "$T/link.policy"
expect_exit 1 "secretd: policy $T/link.policy: mode 0646 lets group or others write it" "$T/link.policy"
chmod 0644 "$policy"
"$SECRETD" check-policy "$T/link.policy" >/dev/null || fail "a link to a good policy was refused"
expect_exit 1 "secretd: policy $T/missing.policy: No such file or directory" "$T/missing.policy"
expect_exit 2 "unknown permission \"reed\"" "$policy" --as uid=0 reed x
expect_exit 2 "unknown permission \"all\"" "$policy" --as uid=0 all x
expect_exit 2 "bad secret name" "$policy" --as uid=0 read a/../b
expect_exit 2 "bad secret name" "$policy" --as uid=0 read 'app/*'
expect_exit 2 "--as uid=x: expected a number" "$policy" --as uid=x read a
expect_exit 2 "--as nobody=1: unknown selector" "$policy" --as uid=1 nobody=1 read a
expect_exit 2 "--as container=3f2a9c51e0b7: a caller has one full container id" "$policy" \
  --as uid=1 container=3f2a9c51e0b7 read a
expect_exit 2 "--as container=*: a caller has one full container id" "$policy" \
  --as uid=1 'container=*' read a
expect_exit 2 "--as pod=abc: expected a pod UID" "$policy" --as uid=1 pod=abc read a
expect_exit 2 "--as unit=a/b: expected a systemd unit name" "$policy" --as uid=0 unit=a/b read a
expect_exit 2 "--as unit=: expected a systemd unit name" "$policy" --as uid=0 unit= read a
expect_exit 2 "--as unit=b.service: the caller's unit is already given" "$policy" \
  --as uid=0 unit=a.service unit=b.service read a
expect_exit 2 "--as unit: unknown selector" "$policy" --as uid=0 unit read a
expect_exit 2 "--as needs the caller's uid=N or user=NAME" "$policy" --as host read a
expect_exit 2 "already given" "$policy" --as uid=1 uid=2 read a
expect_exit 2 "usage: secretd check-policy" "$policy" --as read a
expect_exit 2 "usage: secretd check-policy"

echo "# $checked checks"
if [ "$failures" -ne 0 ]; then
  echo "FAIL t_policy_regress: $failures failure(s)" >&2
  exit 1
fi
echo "PASS t_policy_regress"
