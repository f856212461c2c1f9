#!/usr/bin/env bash
# Values byte-exact both ways, sizes, versions, list order, rm, get -o,
# persistence across a restart.
source "$TESTLIB"
start_broker

note "binary value with NUL bytes round-trips byte-exact"
head -c 4096 /dev/urandom >"$T/bin.in"
printf 'a\0b\0\0c' >>"$T/bin.in"
expect_status 0 "$CTL" put app/bin --from-file "$T/bin.in"
assert_eq "$OUT" "1" "put prints the new version"
"$CTL" get app/bin >"$T/bin.out" || fail "get app/bin"
cmp -s "$T/bin.in" "$T/bin.out" || fail "binary value changed on the way"

note "value from stdin, nothing added on output"
printf 'hunter2' | "$CTL" put app/db/password >/dev/null
[ "$("$CTL" get app/db/password | od -An -c | tr -d ' \n')" = "hunter2" ] || fail "stdin value"

note "empty value"
"$CTL" put app/empty </dev/null >/dev/null || fail "put empty"
"$CTL" get app/empty >"$T/empty.out" || fail "get empty"
[ ! -s "$T/empty.out" ] || fail "empty value came back non-empty"

note "64 KiB is accepted, one byte more is refused and changes nothing"
head -c 65536 /dev/urandom >"$T/max.in"
expect_status 0 "$CTL" put app/max --from-file "$T/max.in"
head -c 65537 /dev/urandom >"$T/over.in"
expect_status 1 "$CTL" put app/max --from-file "$T/over.in"
assert_contains "$ERR" "too large"
"$CTL" get app/max >"$T/max.out"
cmp -s "$T/max.in" "$T/max.out" || fail "the refused put changed the value"
expect_status 0 "$CTL" ping

note "versions: latest, --version N, the last 10 kept"
for i in $(seq 1 12); do printf 'v%s' "$i" | "$CTL" put app/versioned >/dev/null; done
expect_status 0 "$CTL" get app/versioned
assert_eq "$OUT" "v12"
expect_status 0 "$CTL" get app/versioned --version 3
assert_eq "$OUT" "v3"
expect_status 3 "$CTL" get app/versioned --version 2
expect_status 3 "$CTL" get app/versioned --version 13

note "list is sorted bytewise and filtered by glob"
for n in b a/b a B; do printf x | "$CTL" put "list/$n" >/dev/null; done
expect_status 0 "$CTL" list 'list/**'
assert_eq "$OUT" "$(printf 'list/B\nlist/a\nlist/a/b\nlist/b')"
expect_status 0 "$CTL" list 'list/*'
assert_eq "$OUT" "$(printf 'list/B\nlist/a\nlist/b')"

note "rm removes every version"
expect_status 0 "$CTL" rm app/versioned
expect_status 3 "$CTL" get app/versioned
expect_status 3 "$CTL" get app/versioned --version 5
expect_status 3 "$CTL" rm app/versioned

note "bad names are usage errors"
expect_status 2 "$CTL" get 'app/../etc'
expect_status 2 "$CTL" get 'app//x'
expect_status 2 "$CTL" put 'sp ace' </dev/null

note "usage errors are one line on stderr, prefixed secretctl:"
for args in "frob" "" "-x get app/a" "get app/a -x" "get"; do
  # shellcheck disable=SC2086 # the words are the arguments
  expect_status 2 "$CTL" $args
  assert_eq "$(wc -l <"$T/err")" "1" "lines on stderr for [secretctl $args]"
  assert_eq "${ERR:0:11}" "secretctl: " "prefix for [secretctl $args]"
  assert_eq "$OUT" "" "stdout for [secretctl $args]"
done

note "get -o writes the file atomically with mode 0400"
expect_status 0 "$CTL" get app/db/password -o "$T/pw"
assert_eq "$(stat -c %a "$T/pw")" "400"
assert_eq "$(cat "$T/pw")" "hunter2"

note "everything survives a restart"
stop_broker
start_broker
"$CTL" get app/bin >"$T/bin.out2"
cmp -s "$T/bin.in" "$T/bin.out2" || fail "value lost across restart"
expect_status 0 "$CTL" get app/max
note "no value in the vault file, the broker's log or the audit log"
for f in "$T/vault.db" "$T/broker.log" "$T/audit.log"; do
  [ -f "$f" ] || continue
  ! grep -q hunter2 "$f" || fail "plaintext found in $f"
done
stop_broker
echo "PASS $TEST_NAME"
