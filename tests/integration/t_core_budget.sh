#!/usr/bin/env bash
# Large buffers are shared fairly and answers keep room: sixteen identities
# with no rights, each with 64 connections announcing a 64 KiB frame, sending
# 20 KiB of it and stalling (enough to take every large buffer the old
# broker had), must not make a permitted caller's get of a 60 KB value fail,
# and no answer that was not sent is audited as allowed.
source "$TESTLIB"
RUN="$T/run"
mkdir -m 1777 "$RUN"

write_policy <<'POLICY'
permit all   **      uid=0 host
permit read  app/**  uid=1000
POLICY
# Half-sent frames must stay for the whole test, not time out.
start_broker --request-timeout 60000 --max-connections-per-peer 1000
head -c 61440 /dev/urandom >"$T/value"
"$CTL" put app/sixty-kb --from-file "$T/value" >/dev/null

# stall.py SOCKET N READY: N connections, each a header promising 64 KiB and
# 60 KiB of it; then nothing until killed.
cat >"$T/stall.py" <<'PY'
import socket, struct, sys, time
path, n, ready = sys.argv[1], int(sys.argv[2]), sys.argv[3]
conns = []
for _ in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        s.sendall(struct.pack(">I", 65536) + b"\x01\x03" + b"x" * (20 * 1024))
    except OSError:
        pass  # the broker may refuse it a buffer: it closes, that is fine
    conns.append(s)
open(ready, "w").close()
time.sleep(120)
PY
STALLERS=()
stop_stallers() { for p in "${STALLERS[@]}"; do kill "$p" 2>/dev/null || true; done; }
at_exit stop_stallers
for uid in $(seq 3001 3016); do
  setpriv --reuid "$uid" --regid "$uid" --clear-groups -- \
    /usr/bin/python3 "$T/stall.py" "$SECRETD_SOCKET" 64 "$RUN/ready.$uid" 2>"$RUN/stall.$uid.err" &
  STALLERS+=($!)
done
for uid in $(seq 3001 3016); do
  wait_for "stalling connections of uid $uid" test -e "$RUN/ready.$uid"
done
sleep 1
note "1024 stalled connections announcing 64 KiB each are open; broker VmRSS $(sed -n "s/^VmRSS:[[:space:]]*//p" /proc/$BROKER_PID/status), descriptors $(ls /proc/$BROKER_PID/fd | wc -l)"

ok=0
for i in $(seq 1 20); do
  rc=0
  sleep 0.1; as_user 1000 1000 "$CTL" get app/sixty-kb >"$T/got.$i" 2>"$T/err" || rc=$?
  if [ "$rc" -eq 0 ] && cmp -s "$T/value" "$T/got.$i"; then
    ok=$((ok + 1))
  else
    note "get $i failed with $rc: $(cat "$T/err")"
  fi
done
note "gets of 60 KB by uid 1000 during the stall: $ok of 20"
allowed=$(grep -c '"op":"get","name":"app/sixty-kb".*"decision":"allow".*"uid":1000,' "$T/audit.log" || true)
stop_stallers
[ "$allowed" -eq "$ok" ] || fail "$allowed gets audited as allowed, but $ok answers were served"
[ "$ok" -eq 20 ] || fail "only $ok of 20 gets served while others hold large buffers"
stop_broker
echo "PASS $TEST_NAME"
