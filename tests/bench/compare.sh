#!/usr/bin/env bash
# compare.sh BUILD_DIR: secretd side by side with the null server and the
# contract's floor (secretd-null --floor), and Redis when installed, and an
# older secretd when OLD= names one, in one run.
#
#   tests/bench/compare.sh build
#   OLD=/tmp/old/build/broker/secretd SECONDS_PER_RUN=5 tests/bench/compare.sh build
#
# Builds nothing.  Everything runs in a fresh temporary directory: a new vault,
# a policy permitting root, a 32-byte value under bench/key, and the broker
# with the per-identity limits raised out of the way (--rate, --rate-burst,
# and where the binary has them --connect-rate, --connect-burst, all at
# 10000000), so that every answer is a real get.  Then for each load (-c 1,
# -c 50, -c 50 --reconnect) each server is measured in turn, with -n chosen
# from a short probe so a run lasts about SECONDS_PER_RUN seconds, and that
# ROUNDS times (3 unless set), the servers taking turns within each round so
# that a slow spell of the machine falls on all of them; each row reports
# the round of median rps, so one stalled run does not set the figure.  CPU per
# request is the server process's utime+stime (all its threads, from
# /proc/PID/stat) over the run, divided by the successful answers.
#
# This is a benchmark, not a test: it never fails on a figure, and it is not
# registered with ctest (a timed benchmark must never be a test).  Run it as
# root (the policy permits uid 0) on an otherwise quiet machine; the load
# generator shares the CPUs with the server, as it would in production.
set -euo pipefail

usage() { echo "usage: [OLD=secretd] [SECONDS_PER_RUN=5] [ROUNDS=3] $0 BUILD_DIR" >&2; exit 2; }
[ $# -eq 1 ] || usage
BUILD=$1
SECRETD=$BUILD/broker/secretd
SECRETCTL=$BUILD/client/secretctl
BENCH=$BUILD/tests/bench/secretd-bench
NULLD=$BUILD/tests/bench/secretd-null
SECS=${SECONDS_PER_RUN:-5}
ROUNDS=${ROUNDS:-3}
OLD=${OLD:-}
for f in "$SECRETD" "$SECRETCTL" "$BENCH" "$NULLD" ${OLD:+"$OLD"}; do
  [ -x "$f" ] || { echo "compare.sh: $f: not an executable (build first)" >&2; exit 1; }
done
[[ "$SECS" =~ ^[1-9][0-9]{0,2}$ ]] || { echo "compare.sh: SECONDS_PER_RUN wants 1..999" >&2; exit 2; }
[[ "$ROUNDS" =~ ^[1-9][0-9]?$ ]] || { echo "compare.sh: ROUNDS wants 1..99" >&2; exit 2; }

T=$(mktemp -d /tmp/secretd-compare.XXXXXX)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$T"
}
trap cleanup EXIT
TICK=$(getconf CLK_TCK)
VALUE=0123456789abcdef0123456789abcdef # 32 bytes, no newline

# cpu_ticks PID: utime+stime of the whole process (fields 14 and 15; the
# command name in field 2 may hold spaces, so count from the last ')').
cpu_ticks() {
  local s
  s=$(<"/proc/$1/stat")
  s=${s##*) }
  # shellcheck disable=SC2086
  set -- $s
  echo $(( ${12} + ${13} ))
}

wait_socket() { # wait_socket PID SOCKET CHECK-COMMAND...
  local pid=$1 sock=$2
  shift 2
  for _ in $(seq 1 200); do
    if [ -S "$sock" ] && "$@" >/dev/null 2>&1; then return 0; fi
    kill -0 "$pid" 2>/dev/null || { echo "compare.sh: server for $sock exited" >&2; exit 1; }
    sleep 0.05
  done
  echo "compare.sh: $sock did not answer within 10 s" >&2
  exit 1
}

# start_secretd LABEL BINARY: a fresh broker in $T/LABEL; sets PID_<LABEL>.
start_secretd() {
  local label=$1 bin=$2 d=$T/$1 extra=()
  mkdir -p "$d"
  "$bin" init --vault "$d/vault.db" --key-file "$d/master.key" >/dev/null
  printf 'permit all ** uid=0\n' >"$d/policy.conf"
  chmod 0644 "$d/policy.conf"
  # A broker from before the connection limits has no such options.
  if grep -aq -- 'connect-burst' "$bin"; then
    extra=(--connect-rate 10000000 --connect-burst 10000000)
  fi
  "$bin" run --socket "$d/sock" --vault "$d/vault.db" --key-file "$d/master.key" \
    --policy "$d/policy.conf" --audit-log "$d/audit.log" \
    --rate 10000000 --rate-burst 10000000 "${extra[@]}" >"$d/broker.log" 2>&1 &
  PIDS+=($!)
  printf -v "PID_$label" %s $!
  wait_socket $! "$d/sock" "$SECRETCTL" -s "$d/sock" ping
  printf %s "$VALUE" | "$SECRETCTL" -s "$d/sock" put bench/key >/dev/null
}

# start_floor: secretd-null --floor, the least a broker keeping the contract
# does (a sealed value opened, a MAC-chained record written before the answer).
start_floor() {
  mkdir -p "$T/floor"
  "$NULLD" -s "$T/floor/sock" --floor "$T/floor/audit.log" 2>"$T/floor/log" &
  PIDS+=($!)
  # shellcheck disable=SC2034 # read through ${!pid} in measure
  PID_floor=$!
  wait_socket $! "$T/floor/sock" "$BENCH" -s "$T/floor/sock" -c 1 -n 1 bench/key
}

start_null() {
  mkdir -p "$T/null"
  "$NULLD" -s "$T/null/sock" 2>"$T/null/log" &
  PIDS+=($!)
  # shellcheck disable=SC2034 # read through ${!pid} in measure
  PID_null=$!
  wait_socket $! "$T/null/sock" "$BENCH" -s "$T/null/sock" -c 1 -n 1 bench/key
}

HAVE_REDIS=0
start_redis() {
  command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null || return 0
  mkdir -p "$T/redis"
  redis-server --port 0 --unixsocket "$T/redis/sock" --unixsocketperm 700 \
    --save '' --appendonly no --dir "$T/redis" >"$T/redis/log" 2>&1 &
  PIDS+=($!)
  # shellcheck disable=SC2034 # read through ${!pid} in measure
  PID_redis=$!
  wait_socket $! "$T/redis/sock" redis-benchmark -s "$T/redis/sock" -n 1 -t ping -q
  # Without -r the benchmark's key is the literal key:__rand_int__: set it
  # once so that every timed get returns the 32-byte value.
  redis-benchmark -s "$T/redis/sock" -n 1 -t set -d 32 -q >/dev/null
  HAVE_REDIS=1
}

# run_bench LABEL SOCK CLIENTS N [--reconnect]: "rps p50 p99 errors".
run_bench() {
  local sock=$2 c=$3 n=$4 out
  shift 4
  out=$("$BENCH" -s "$sock" -c "$c" -n "$n" "$@" bench/key 2>"$T/bench.err" || true)
  if [ -s "$T/bench.err" ]; then sed 's/^/    /' "$T/bench.err" >&2; fi
  sed -n 's/^rps=\([0-9.]*\) p50_us=\([0-9]*\) p99_us=\([0-9]*\) errors=\([0-9]*\)$/\1 \2 \3 \4/p' \
    <<<"$out" | tail -n 1
}

# run_redis CLIENTS N [-k 0]: "rps p50 p99 0" (redis-benchmark's csv in ms).
run_redis() {
  local c=$1 n=$2
  shift 2
  redis-benchmark -s "$T/redis/sock" -c "$c" -n "$n" -t get -d 32 --csv "$@" 2>/dev/null |
    awk '/^"GET/ { gsub(/"/, "", $0); split($0, f, ",");
      printf "%s %d %d 0\n", f[2], f[5] * 1000 + 0.5, f[7] * 1000 + 0.5 }'
}

# measure LABEL CLIENTS [--reconnect]: one timed run, "rps p50 p99 errors
# cpu_us requests" on stdout.
measure() {
  local label=$1 c=$2 mode=${3:-} pid sock r n t0 t1 rps p50 p99 err ok cpu
  local args=() kargs=()
  [ "$mode" = --reconnect ] && args=(--reconnect) && kargs=(-k 0)
  pid=PID_$label
  pid=${!pid}
  sock=$T/$label/sock
  # A short probe sets -n for about $SECS seconds.
  if [ "$label" = redis ]; then
    r=$(run_redis "$c" 2000 "${kargs[@]}")
  else
    r=$(run_bench "$label" "$sock" "$c" 2000 "${args[@]}")
  fi
  n=$(awk -v r="${r%% *}" -v s="$SECS" 'BEGIN { n = int(r * s); if (n < 1000) n = 1000; print n }')
  t0=$(cpu_ticks "$pid")
  if [ "$label" = redis ]; then
    r=$(run_redis "$c" "$n" "${kargs[@]}")
  else
    r=$(run_bench "$label" "$sock" "$c" "$n" "${args[@]}")
  fi
  t1=$(cpu_ticks "$pid")
  read -r rps p50 p99 err <<<"${r:-0 0 0 $n}"
  ok=$(( n - err ))
  cpu=$(awk -v d=$(( t1 - t0 )) -v hz="$TICK" -v ok="$ok" \
    'BEGIN { if (ok > 0) printf "%.1f", d / hz * 1e6 / ok; else print "-" }')
  echo "$rps $p50 $p99 $err $cpu $n"
}

# row LABEL LOAD FILE: the table's row from the rounds in FILE (one measure
# line each): the round of median rps gives rps, p50 and p99; CPU is the
# median of the rounds' CPU; requests and errors are summed.
row() {
  local label=$1 load=$2 file=$3 rps p50 p99 err cpu n ratio cratio
  read -r rps p50 p99 _ <<<"$(sort -n -k1,1 "$file" | awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }')"
  cpu=$(awk '$5 != "-" { print $5 }' "$file" | sort -n | awk '{ l[NR] = $1 } END { print NR ? l[int((NR + 1) / 2)] : "-" }')
  err=$(awk '{ s += $4 } END { print s + 0 }' "$file")
  n=$(awk '{ s += $6 } END { print s + 0 }' "$file")
  [ "$label" = null ] && NULL_RPS=$rps && NULL_CPU=$cpu
  ratio=$(awk -v a="$rps" -v b="${NULL_RPS:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
  cratio=$(awk -v a="$cpu" -v b="${NULL_CPU:-0}" 'BEGIN { if (b > 0 && a != "-") printf "%.2f", a / b; else print "-" }')
  printf '| %-7s | %-20s | %9s | %10s | %6s | %6s | %6s | %8s | %5s | %5s |\n' \
    "$label" "$load" "$n" "$rps" "$p50" "$p99" "$err" "$cpu" "$ratio" "$cratio"
}

start_null
start_floor
start_secretd new "$SECRETD"
[ -n "$OLD" ] && start_secretd old "$OLD"
start_redis
SERVERS=(null floor new)
[ -n "$OLD" ] && SERVERS+=(old)
[ "$HAVE_REDIS" = 1 ] && SERVERS+=(redis)

echo "# $(date -u +%FT%TZ) $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# new = $SECRETD${OLD:+, old = $OLD}; $ROUNDS rounds of about $SECS s a run, the servers in turn"
echo "# in each round; each row is the round of median rps (CPU: the median round's); ratios against the null server"
echo "| server  | load                 |  requests |        rps |    p50 |    p99 | errors | CPU µs/req | ×rps | ×CPU |"
echo "| ---     | ---                  |       --- |        --- |    --- |    --- |    --- |      --- |   --- |   --- |"
for load in "1" "50" "50 --reconnect"; do
  for s in "${SERVERS[@]}"; do : >"$T/rounds.$s"; done
  for _ in $(seq 1 "$ROUNDS"); do
    for s in "${SERVERS[@]}"; do
      # shellcheck disable=SC2086
      measure "$s" $load >>"$T/rounds.$s"
    done
  done
  NULL_RPS=0 NULL_CPU=0
  for s in "${SERVERS[@]}"; do
    row "$s" "-c $load" "$T/rounds.$s"
  done
done
