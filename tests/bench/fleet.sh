#!/usr/bin/env bash
# fleet.sh BUILD_DIR: a fleet on loopback, measured.  Three etcd members
# (etcd-server from Debian, ports of their own, data in a temporary folder)
# and three brokers with upstream = etcd (A, B, C), plus a broker with
# upstream = none (N) for the reference.  Prints a table of:
#
#  - propagation: from an acknowledged put through A (secretctl put has
#    returned) to the new version announced on B (a `secretctl watch` line
#    read from B, which B writes once its replica holds the version), over
#    PUTS puts (default 1,000); p50, p99, max.  The put's own latency (start
#    of secretctl put to its return) beside it.  A negative gap (B knew
#    before A's answer reached the caller) is reported as it is, with the
#    share of such puts, and beside it the time from the put's start.
#  - write throughput through etcd: secretd-bench --put 32 -c 50 on A.
#  - get throughput, 50 clients, on the replica B against N, alternated
#    ROUNDS times (default 3) in the same minute, each run ~SECONDS_PER_RUN s.
#  - RSS (VmRSS) of B before and after 10,000 names were replicated to it
#    (put through A, 2,500 concurrent clients at a time, 4 times), and of N
#    with the same 10,000 names put into it directly.
#
#   tests/bench/fleet.sh build
#   PUTS=200 ROUNDS=1 tests/bench/fleet.sh build
#
# A benchmark, not a test: never fails on a figure, not registered with
# ctest.  Run it as root (the policy permits uid 0) on a quiet machine; the
# load generator, etcd and the brokers share the CPUs.
set -euo pipefail

usage() { echo "usage: [PUTS=1000] [ROUNDS=3] [SECONDS_PER_RUN=5] $0 BUILD_DIR" >&2; exit 2; }
[ $# -eq 1 ] || usage
BUILD=$1
SECRETD=$BUILD/broker/secretd
SECRETCTL=$BUILD/client/secretctl
BENCH=$BUILD/tests/bench/secretd-bench
PUTS=${PUTS:-1000}
ROUNDS=${ROUNDS:-3}
SECS=${SECONDS_PER_RUN:-5}
for f in "$SECRETD" "$SECRETCTL" "$BENCH"; do
  [ -x "$f" ] || { echo "fleet.sh: $f: not an executable (build first)" >&2; exit 1; }
done
command -v etcd >/dev/null && command -v etcdctl >/dev/null ||
  { echo "fleet.sh: etcd and etcdctl needed (Debian: etcd-server etcd-client)" >&2; exit 1; }

T=$(mktemp -d /tmp/secretd-fleetbench.XXXXXX)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$T"
}
trap cleanup EXIT
say() { echo "# $*" >&2; }

# ---- etcd: three members on 127.0.0.1 --------------------------------------
base=$(python3 - <<'PY'
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(200):
    b = random.randrange(20000, 40000, 10)
    if all(free(b + i) for i in range(6)):
        print(b); break
PY
)
[ -n "$base" ] || { echo "fleet.sh: no free ports" >&2; exit 1; }
INITIAL="" ENDPOINTS=""
for i in 1 2 3; do
  INITIAL+="${INITIAL:+,}m$i=http://127.0.0.1:$((base + 2 * i - 1))"
  ENDPOINTS+="${ENDPOINTS:+,}http://127.0.0.1:$((base + 2 * i - 2))"
done
for i in 1 2 3; do
  c=http://127.0.0.1:$((base + 2 * i - 2)) p=http://127.0.0.1:$((base + 2 * i - 1))
  etcd --name "m$i" --data-dir "$T/etcd-m$i" --listen-client-urls "$c" --advertise-client-urls "$c" \
    --listen-peer-urls "$p" --initial-advertise-peer-urls "$p" --initial-cluster "$INITIAL" \
    --initial-cluster-token secretd-fleetbench --initial-cluster-state new \
    --logger zap --log-level warn >"$T/etcd-m$i.log" 2>&1 &
  PIDS+=($!)
done
for _ in $(seq 1 200); do
  ETCDCTL_API=3 etcdctl --endpoints "$ENDPOINTS" endpoint health >/dev/null 2>&1 && break
  sleep 0.05
done
ETCDCTL_API=3 etcdctl --endpoints "$ENDPOINTS" endpoint health >/dev/null 2>&1 ||
  { tail -n 5 "$T"/etcd-m*.log >&2; echo "fleet.sh: etcd not healthy" >&2; exit 1; }
say "etcd $(etcd --version | sed -n 's/^etcd Version: //p'): $ENDPOINTS"

# ---- brokers ---------------------------------------------------------------
head -c 32 /dev/urandom >"$T/cluster.key"
chmod 0400 "$T/cluster.key"
printf 'permit all ** uid=0\n' >"$T/policy.conf"
chmod 0644 "$T/policy.conf"
LIMITS=(--rate 10000000 --rate-burst 10000000 --connect-rate 10000000 --connect-burst 10000000
  --max-connections 100000 --max-connections-per-peer 100000)

# start_broker LABEL [options...]: broker in $T/LABEL, socket $T/LABEL/sock.
start_broker() {
  local label=$1 d=$T/$1
  shift
  mkdir -p "$d"
  "$SECRETD" init --vault "$d/vault.db" --key-file "$d/master.key" >/dev/null
  "$SECRETD" run --socket "$d/sock" --vault "$d/vault.db" --key-file "$d/master.key" \
    --policy "$T/policy.conf" --audit-log "$d/audit.log" "${LIMITS[@]}" "$@" >"$d/broker.log" 2>&1 &
  PIDS+=($!)
  printf -v "PID_$label" %s $!
  for _ in $(seq 1 200); do
    "$SECRETCTL" -s "$d/sock" ping >/dev/null 2>&1 && return 0
    kill -0 "$!" 2>/dev/null || { cat "$d/broker.log" >&2; exit 1; }
    sleep 0.05
  done
  echo "fleet.sh: broker $label did not answer" >&2
  exit 1
}
FLEET=(--upstream etcd --etcd-endpoints "$ENDPOINTS" --cluster-key-file "$T/cluster.key")
for n in A B C; do start_broker "$n" "${FLEET[@]}"; done
start_broker N
status() { "$SECRETCTL" -s "$T/$1/sock" status | sed -n "s/^$2=//p"; }
for n in A B C; do
  for _ in $(seq 1 200); do [ "$(status "$n" connected)" = yes ] && break; sleep 0.05; done
  [ "$(status "$n" connected)" = yes ] || { echo "fleet.sh: broker $n not connected" >&2; exit 1; }
done
rss() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"; }
RSS_B0=$(rss "$PID_B")
RSS_N0=$(rss "$PID_N")
say "brokers A B C follow etcd; N has upstream none"

# ---- propagation -------------------------------------------------------------
say "propagation: $PUTS puts through A, watched on B"
python3 - "$SECRETCTL" "$T/A/sock" "$T/B/sock" "$PUTS" >"$T/prop.out" <<'PY'
import os, subprocess, sys, threading, time
ctl, a, b, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
name = "bench/prop"
w = subprocess.Popen([ctl, "-s", b, "watch", name], stdout=subprocess.PIPE, bufsize=0)
seen = {}
cond = threading.Condition()
# A thread of its own reads B's watch stream and stamps each line as it
# arrives, also while the main thread waits for a put to return.
def reader():
    for line in w.stdout:
        t = time.monotonic()
        nm, ver = line.decode().split()
        if nm == name:
            with cond:
                seen.setdefault(int(ver), t)
                cond.notify_all()
threading.Thread(target=reader, daemon=True).start()
time.sleep(0.3)
gaps, puts, whole = [], [], []
for i in range(n):
    t0 = time.monotonic()
    p = subprocess.run([ctl, "-s", a, "put", name], input=b"v%d" % i, capture_output=True)
    t1 = time.monotonic()
    if p.returncode != 0:
        sys.exit("put %d exited %d: %s" % (i, p.returncode, p.stderr.decode()))
    v = int(p.stdout)
    with cond:
        if not cond.wait_for(lambda: v in seen, timeout=10):
            sys.exit("version %d never reached B" % v)
    gaps.append(seen[v] - t1)
    puts.append(t1 - t0)
    whole.append(seen[v] - t0)
w.terminate()
def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100.0 * (len(xs) - 1))))] * 1000
early = sum(1 for g in gaps if g < 0) * 100.0 / len(gaps)
print("%.2f %.2f %.2f %.2f %.2f %.2f %.2f %.0f" % (pct(gaps, 50), pct(gaps, 99), max(gaps) * 1000,
      pct(puts, 50), pct(puts, 99), pct(whole, 50), pct(whole, 99), early))
PY
read -r PROP50 PROP99 PROPMAX PUT50 PUT99 WHOLE50 WHOLE99 EARLY <"$T/prop.out"

# ---- write throughput --------------------------------------------------------
bench_line() { sed -n 's/^rps=\([0-9.]*\) p50_us=\([0-9]*\) p99_us=\([0-9]*\) errors=\([0-9]*\)$/\1 \2 \3 \4/p' | tail -n 1; }
say "write throughput: 50 clients, --put 32, on A"
read -r WRPS WP50 WP99 WERR < <("$BENCH" -s "$T/A/sock" -c 50 -n 5000 --put 32 bench/write 2>"$T/w.err" | bench_line)
printf 'vvvv' | "$SECRETCTL" -s "$T/N/sock" put bench/write/c0 >/dev/null
read -r NWRPS _ _ _ < <("$BENCH" -s "$T/N/sock" -c 50 -n 5000 --put 32 bench/write 2>/dev/null | bench_line)

# The reference: etcd alone, 50 clients putting through the same JSON
# gateway the brokers use (/v3/kv/put, one keep-alive connection each), for
# as long as the broker's run took, in the same minute.
say "write throughput of etcd alone: 50 clients, /v3/kv/put"
ETCDW=$(python3 - "$ENDPOINTS" <<'PY'
import base64, http.client, json, sys, threading, time
eps = [e[len("http://"):] for e in sys.argv[1].split(",")]
stop = time.monotonic() + 5
counts = [0] * 50
val = base64.b64encode(b"v" * 200).decode()
def worker(i):
    host, port = eps[i % len(eps)].split(":")
    c = http.client.HTTPConnection(host, int(port))
    key = base64.b64encode(b"/etcd-bench/c%d" % i).decode()
    body = json.dumps({"key": key, "value": val})
    while time.monotonic() < stop:
        c.request("POST", "/v3/kv/put", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        if r.status == 200:
            counts[i] += 1
t0 = time.monotonic()
ts = [threading.Thread(target=worker, args=(i,)) for i in range(50)]
for t in ts: t.start()
for t in ts: t.join()
print("%.1f" % (sum(counts) / (time.monotonic() - t0)))
PY
)

# ---- get throughput: replica against none -----------------------------------
printf '0123456789abcdef0123456789abcdef' | "$SECRETCTL" -s "$T/N/sock" put bench/key >/dev/null
printf '0123456789abcdef0123456789abcdef' | "$SECRETCTL" -s "$T/A/sock" put bench/key >/dev/null
for _ in $(seq 1 100); do "$SECRETCTL" -s "$T/B/sock" get bench/key >/dev/null 2>&1 && break; sleep 0.05; done
probe=$("$BENCH" -s "$T/N/sock" -c 50 -n 20000 bench/key 2>/dev/null | bench_line | cut -d' ' -f1)
GN=$(python3 -c "print(max(20000, int(float('${probe:-10000}') * $SECS)))")
say "get throughput: 50 clients, $GN gets a run, B and N alternated $ROUNDS times"
GETS=()
for r in $(seq 1 "$ROUNDS"); do
  for n in B N; do
    read -r rps p50 p99 err < <("$BENCH" -s "$T/$n/sock" -c 50 -n "$GN" bench/key 2>/dev/null | bench_line)
    GETS+=("$r $n $rps $p50 $p99 $err")
  done
done

# ---- RSS with 10,000 names -------------------------------------------------
say "RSS: 10,000 names put through A (40 x 250 clients), replicated to B; the same into N"
RSS_ERR=0
for k in $(seq 1 40); do
  "$BENCH" -s "$T/A/sock" -c 250 -n 250 --put 32 "bench/rss$k" >/dev/null 2>"$T/rss.err" ||
    RSS_ERR=$((RSS_ERR + $(sed -n 's/.*WARNING: \([0-9]*\) of.*/\1/p' "$T/rss.err")))
  "$BENCH" -s "$T/N/sock" -c 250 -n 250 --put 32 "bench/rss$k" >/dev/null 2>&1 || true
done
[ "$RSS_ERR" -eq 0 ] || say "($RSS_ERR of those puts were refused: $(tail -n 1 "$T/rss.err"))"
want=$(( $("$SECRETCTL" -s "$T/A/sock" list | wc -l) ))
for _ in $(seq 1 600); do [ "$(status B secrets)" -ge "$want" ] && break; sleep 0.1; done
SECRETS_B=$(status B secrets)
SECRETS_N=$("$SECRETCTL" -s "$T/N/sock" list | wc -l)
sleep 1
RSS_B1=$(rss "$PID_B")
RSS_N1=$(rss "$PID_N")

# ---- table -------------------------------------------------------------------
printf '\n%-46s %s\n' "fleet: 3 etcd members, 3 brokers, loopback" "$(date -u +%FT%TZ), $(nproc) CPUs"
printf '%-46s p50 %s ms, p99 %s ms, max %s ms (%s puts)\n' "propagation, put acked on A -> watch on B" \
  "$PROP50" "$PROP99" "$PROPMAX" "$PUTS"
printf '%-46s %s%% of puts\n' "  B announced it before A's answer arrived" "$EARLY"
printf '%-46s p50 %s ms, p99 %s ms\n' "put started on A -> watch on B" "$WHOLE50" "$WHOLE99"
printf '%-46s p50 %s ms, p99 %s ms\n' "secretctl put on A, start to return" "$PUT50" "$PUT99"
printf '%-46s %s puts/s, p50 %s us, p99 %s us, errors %s\n' "write throughput via etcd, 50 clients" \
  "$WRPS" "$WP50" "$WP99" "$WERR"
printf '%-46s %s puts/s\n' "  (upstream none, same 50 clients)" "$NWRPS"
printf '%-46s %s puts/s (Python, 200-byte values)\n' "  (etcd alone, 50 clients, JSON gateway)" "$ETCDW"
printf '%-46s\n' "get throughput, 50 clients (round broker rps p50_us p99_us errors)"
for g in "${GETS[@]}"; do printf '  %s\n' "$g"; done
python3 - "${GETS[@]}" <<'PY'
import sys
rows = [r.split() for r in sys.argv[1:]]
b = [float(r[2]) for r in rows if r[1] == "B"]
n = [float(r[2]) for r in rows if r[1] == "N"]
mb, mn = sum(b) / len(b), sum(n) / len(n)
print("%-46s B %.0f rps, N %.0f rps: B/N = %.3f" % ("  mean", mb, mn, mb / mn))
PY
printf '%-46s B %s kB -> %s kB with %s names; N %s kB -> %s kB with %s names\n' \
  "RSS (VmRSS)" "$RSS_B0" "$RSS_B1" "$SECRETS_B" "$RSS_N0" "$RSS_N1" "$SECRETS_N"
[ "$RSS_ERR" -eq 0 ] || printf '%-46s %s\n' "  puts refused while filling" "$RSS_ERR"
