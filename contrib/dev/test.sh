#!/usr/bin/env bash
# Run every test: install what is missing, build, and run the whole ctest
# suite (unit, integration as root with real cgroups and runc containers),
# then again built with ASan + UBSan, then each fuzzer for a bounded time.
#   SECRETD_TEST_QUICK=1   skip the clang, fortify, sanitizer and fuzzing passes
#   SECRETD_FUZZ_SECONDS=N seconds per fuzzer (default 60)
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
jobs=$(nproc)
fuzz_seconds=${SECRETD_FUZZ_SECONDS:-30}

"$top/contrib/dev/deps.sh"

step() { printf '\n=== %s\n' "$*"; }

step "build and test (RelWithDebInfo)"
cmake -S "$top" -B "$top/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$top/build" -j"$jobs"
(cd "$top/build" && ctest --output-on-failure --timeout 600)

[ "${SECRETD_TEST_QUICK:-0}" = 1 ] && exit 0

# The builds an operator will try: clang for the whole tree, and the
# fortify level current distributions default to.  Unit tests run on each.
step "build with clang, and with _FORTIFY_SOURCE=3 (unit tests)"
CC=clang cmake -S "$top" -B "$top/build-clang" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$top/build-clang" -j"$jobs"
(cd "$top/build-clang" && ctest -L unit --output-on-failure)
cmake -S "$top" -B "$top/build-fortify3" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS="-U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=3" >/dev/null
cmake --build "$top/build-fortify3" -j"$jobs"
(cd "$top/build-fortify3" && ctest -L unit --output-on-failure)

step "build and test with ASan + UBSan"
cmake -S "$top" -B "$top/build-asan" -DCMAKE_BUILD_TYPE=Debug -DSECRETD_SANITIZE=ON >/dev/null
cmake --build "$top/build-asan" -j"$jobs"
(cd "$top/build-asan" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure --timeout 900)

step "fuzz each parser for ${fuzz_seconds}s"
CC=clang cmake -S "$top" -B "$top/build-fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSECRETD_FUZZ=ON -DSECRETD_FUZZ_SECONDS="$fuzz_seconds" >/dev/null
cmake --build "$top/build-fuzz" -j"$jobs" --target fuzzers
# Each fuzzer's closing statistics (executions, coverage) are printed for the record.
rc=0
(cd "$top/build-fuzz" && ctest -L fuzz -V >fuzz.log 2>&1) || rc=$?
grep -E "Start +[0-9]+: fuzz/|#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::peak_rss_mb|ERROR|SUMMARY" \
  "$top/build-fuzz/fuzz.log" | sed -E 's/^[0-9]+: //'
[ "$rc" -eq 0 ] || tail -n 60 "$top/build-fuzz/fuzz.log"
grep -E "tests passed|tests failed" "$top/build-fuzz/fuzz.log" | tail -n 1
exit "$rc"
