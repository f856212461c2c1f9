#!/usr/bin/env bash
# secretctl put NAME --generate N [--charset ...]: the value is made in the
# client from libsodium's generator, stored, and never printed (only the
# version); lengths and charsets as asked; usage errors change nothing.
source "$TESTLIB"

start_broker

note "default charset alnum, the version printed and nothing else"
expect_status 0 "$CTL" put gen/a --generate 32
assert_eq "$OUT" "1" "put --generate prints the version only"
assert_eq "$ERR" "" "nothing on stderr"
"$CTL" get gen/a >"$T/a" || fail "get gen/a"
assert_eq "$(stat -c %s "$T/a")" "32" "length of the generated value"
grep -qvE '^[A-Za-z0-9]{32}$' "$T/a" && fail "alnum value has other bytes: $(od -c "$T/a" | head -2)"
assert_eq "$(tr -d 'A-Za-z0-9' <"$T/a" | wc -c)" "0" "alnum only"

note "a second put makes version 2 with another value"
expect_status 0 "$CTL" put gen/a --generate 32
assert_eq "$OUT" "2"
"$CTL" get gen/a >"$T/a2"
cmp -s "$T/a" "$T/a2" && fail "two generated values are the same"
"$CTL" get gen/a --version 1 | cmp - "$T/a" || fail "version 1 kept"

note "hex and base64, and lengths 1 and 65536"
expect_status 0 "$CTL" put gen/h --generate 4096 --charset hex
"$CTL" get gen/h >"$T/h"
assert_eq "$(stat -c %s "$T/h")" "4096"
assert_eq "$(tr -d '0-9a-f' <"$T/h" | wc -c)" "0" "hex only"
# every one of the 16 digits appears in 4096 draws (each is missing with p < 1e-100)
assert_eq "$(fold -w1 "$T/h" | sort -u | tr -d '\n')" "0123456789abcdef" "all hex digits drawn"
expect_status 0 "$CTL" put gen/b --charset=base64 --generate=65536
"$CTL" get gen/b >"$T/b"
assert_eq "$(stat -c %s "$T/b")" "65536"
assert_eq "$(tr -d 'A-Za-z0-9+/' <"$T/b" | wc -c)" "0" "base64 alphabet only"
assert_eq "$(fold -w1 "$T/b" | sort -u | wc -l)" "64" "all 64 base64 characters drawn"
expect_status 0 "$CTL" put gen/one --generate 1
"$CTL" get gen/one >"$T/one"
assert_eq "$(stat -c %s "$T/one")" "1"

note "the value never appears in output, argv or the audit log"
for f in "$T/a2" "$T/h"; do
  v=$(cat "$f")
  assert_not_contains "$(cat "$T/audit.log")" "$v" "generated value in the audit log"
  assert_not_contains "$(cat "$T/broker.log")" "$v" "generated value in the broker log"
done

note "usage errors exit 2 and store nothing"
for args in "--generate 0" "--generate 1048577" "--generate -1" "--generate 1x" "--generate ''" \
  "--generate 8 --charset base32" "--charset hex" "--generate 8 --from-file /etc/hostname"; do
  eval "expect_status 2 \"\$CTL\" put gen/bad $args"
done
expect_status 3 "$CTL" get gen/bad
# above the broker's max-secret-size (65536 by default): its refusal, exit 1
expect_status 1 "$CTL" put gen/bad --generate 65537
assert_contains "$ERR" "too large"
expect_status 3 "$CTL" get gen/bad
expect_status 2 "$CTL" put gen/bad --generate

note "stdin is not read with --generate"
expect_status 0 "$CTL" put gen/stdin --generate 8 </dev/zero
"$CTL" get gen/stdin >"$T/s"
assert_eq "$(tr -d 'A-Za-z0-9' <"$T/s" | wc -c)" "0" "value from the generator, not stdin"

stop_broker
echo "PASS $TEST_NAME"
