#!/usr/bin/env bash
# metrics.sh BUILD_DIR: what the metrics endpoint costs under load.  Two
# brokers in one run: M with --metrics-listen on 127.0.0.1 and a scraper
# fetching /metrics every 100 ms (curl, one connection a scrape, as
# Prometheus does at a far slower rate), and O without a metrics listener.
# secretd-bench get, 50 clients, persistent connections, ~SECONDS_PER_RUN s a
# run, alternated O, M, M... ROUNDS times (default 3): O, then M with its
# listener idle, then M with the scraper running (only during that run).  A benchmark, not a test; run as root.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: [ROUNDS=3] [SECONDS_PER_RUN=5] $0 BUILD_DIR" >&2; exit 2; }
BUILD=$1
SECRETD=$BUILD/broker/secretd
SECRETCTL=$BUILD/client/secretctl
BENCH=$BUILD/tests/bench/secretd-bench
ROUNDS=${ROUNDS:-3}
SECS=${SECONDS_PER_RUN:-5}
command -v curl >/dev/null || { echo "metrics.sh: curl needed" >&2; exit 1; }
T=$(mktemp -d /tmp/secretd-metricsbench.XXXXXX)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$T"
}
trap cleanup EXIT
printf 'permit all ** uid=0\n' >"$T/policy.conf"
chmod 0644 "$T/policy.conf"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start() { # LABEL [options]
  local d=$T/$1
  shift
  mkdir -p "$d"
  "$SECRETD" init --vault "$d/vault.db" --key-file "$d/master.key" >/dev/null
  "$SECRETD" run --socket "$d/sock" --vault "$d/vault.db" --key-file "$d/master.key" \
    --policy "$T/policy.conf" --audit-log "$d/audit.log" --rate 10000000 --rate-burst 10000000 \
    --connect-rate 10000000 --connect-burst 10000000 "$@" >"$d/log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 200); do "$SECRETCTL" -s "$d/sock" ping >/dev/null 2>&1 && break; sleep 0.05; done
  printf '0123456789abcdef0123456789abcdef' | "$SECRETCTL" -s "$d/sock" put bench/key >/dev/null
}
start O
PID_O=${PIDS[-1]}
start M --metrics-listen "127.0.0.1:$PORT"
PID_M=${PIDS[-1]}
TICK=$(getconf CLK_TCK)
# utime+stime of a whole process, in clock ticks (fields 14 and 15).
cpu_ticks() {
  local st
  st=$(<"/proc/$1/stat")
  st=${st##*) }
  # shellcheck disable=SC2086
  set -- $st
  echo $((${12} + ${13}))
}
# run PID SOCK: "rps p50 p99 errors cpu_us_per_request" for one run.
run() {
  local c0 c1 rps p50 p99 err
  c0=$(cpu_ticks "$1")
  read -r rps p50 p99 err < <("$BENCH" -s "$2" -c 50 -n "$N" bench/key 2>/dev/null | line)
  c1=$(cpu_ticks "$1")
  echo "$rps $p50 $p99 $err $(python3 -c "print('%.2f' % (($c1 - $c0) * 1e6 / $TICK / max(1, $N - $err)))")"
}
curl -fsS "http://127.0.0.1:$PORT/metrics" >"$T/m1" || { echo "metrics.sh: no /metrics" >&2; exit 1; }
line() { sed -n 's/^rps=\([0-9.]*\) p50_us=\([0-9]*\) p99_us=\([0-9]*\) errors=\([0-9]*\)$/\1 \2 \3 \4/p' | tail -n 1; }
probe=$("$BENCH" -s "$T/O/sock" -c 50 -n 20000 bench/key 2>/dev/null | line | cut -d' ' -f1)
N=$(python3 -c "print(max(20000, int(float('${probe:-10000}') * $SECS)))")
ROWS=()
for r in $(seq 1 "$ROUNDS"); do
  ROWS+=("$r off $(run "$PID_O" "$T/O/sock") -")
  ROWS+=("$r listening $(run "$PID_M" "$T/M/sock") 0")
  ( n=0; while :; do curl -fsS -o /dev/null "http://127.0.0.1:$PORT/metrics" && n=$((n + 1)); echo $n >"$T/scrapes"; sleep 0.1; done ) &
  SCR=$!
  row=$(run "$PID_M" "$T/M/sock")
  kill "$SCR"; wait "$SCR" 2>/dev/null || true
  ROWS+=("$r on $row $(cat "$T/scrapes")")
done
printf 'metrics endpoint under load: %s gets a run, 50 clients, %s, %s CPUs\n' "$N" "$(date -u +%FT%TZ)" "$(nproc)"
printf '%-6s %-10s %10s %7s %7s %6s %10s %8s\n' round metrics rps p50_us p99_us errors cpu_us/req scrapes
for row in "${ROWS[@]}"; do
  # shellcheck disable=SC2086
  printf '%-6s %-10s %10s %7s %7s %6s %10s %8s\n' $row
done
python3 - "${ROWS[@]}" <<'PY'
import sys
rows = [r.split() for r in sys.argv[1:]]
mean = lambda k: sum(float(r[2]) for r in rows if r[1] == k) / sum(1 for r in rows if r[1] == k)
on, idle, off = mean("on"), mean("listening"), mean("off")
print("mean: off %.0f rps; listening, not scraped %.0f rps (%.3f); scraped every 100 ms %.0f rps (%.3f)"
      % (off, idle, idle / off, on, on / off))
cpu = lambda k: sum(float(r[6]) for r in rows if r[1] == k) / sum(1 for r in rows if r[1] == k)
print("broker CPU per request: off %.2f us; listening %.2f us; scraped %.2f us" % (cpu("off"), cpu("listening"), cpu("on")))
PY
echo "/metrics: $(wc -c <"$T/m1") bytes, $(grep -vc '^#' "$T/m1") samples"
