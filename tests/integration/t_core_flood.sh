#!/usr/bin/env bash
# A connect flood does not stall anyone: a uid with no rights connects and
# closes in a tight loop from two processes, and meanwhile every ping by
# another user (a new connection each) is answered within a second.
source "$TESTLIB"
RUN="$T/run"
mkdir -m 1777 "$RUN"

write_policy <<'POLICY'
permit all   **      uid=0 host
POLICY
start_broker
cat >"$T/flood.py" <<'PY'
import socket, sys, time
path, seconds, ready = sys.argv[1], float(sys.argv[2]), sys.argv[3]
end = time.monotonic() + seconds
n = 0
open(ready, "w").close()
while time.monotonic() < end:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        n += 1
    except OSError:
        pass
    s.close()
print(n)
PY
FLOODERS=()
stop_flooders() { for p in "${FLOODERS[@]}"; do kill "$p" 2>/dev/null || true; done; }
at_exit stop_flooders
for i in 1 2; do
  setpriv --reuid 2001 --regid 2001 --clear-groups -- \
    /usr/bin/python3 "$T/flood.py" "$SECRETD_SOCKET" 12 "$RUN/ready.$i" >"$RUN/flood.$i" &
  FLOODERS+=($!)
done
wait_for "the flood to start" test -e "$RUN/ready.1" -a -e "$RUN/ready.2"
sleep 1 # let the backlog fill
worst=0
for i in $(seq 1 20); do
  start=$(date +%s%N)
  expect_status 0 as_user 1000 1000 "$CTL" ping
  ms=$((($(date +%s%N) - start) / 1000000))
  ((ms > worst)) && worst=$ms
done
for p in "${FLOODERS[@]}"; do wait "$p" || true; done
FLOODERS=()
note "connections made by the flood: $(cat "$RUN/flood.1") + $(cat "$RUN/flood.2"); worst ping: $worst ms"
# A sanitized build (and its sanitized secretctl) is several times slower.
bound=1000
[ "${SECRETD_SANITIZED:-0}" = 1 ] && bound=4000
((worst < bound)) || fail "a ping took $worst ms during the connect flood (bound $bound ms)"
expect_status 0 "$CTL" ping
stop_broker
echo "PASS $TEST_NAME"
