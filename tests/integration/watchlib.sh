# Shared by the tests of WATCH (t_watch, t_inject_watch, t_exec_watch),
# sourced after lib.sh once the broker runs.  They start running for real
# the moment the broker speaks protocol 2's WATCH; until then they skip
# cleanly, saying why, with status 0.

# require_watch: WATCH "x" on a raw connection; skip unless the answer is OK.
require_watch() {
  local hex
  hex=$(raw_exchange "0000000702070001000178")
  # header (8 hex digits), version, type, then the status byte
  if [ "${hex:10:2}" != "87" ] || [ "${hex:12:2}" != "00" ]; then
    echo "# the broker answered WATCH with: ${hex:0:64}"
    echo "SKIP: broker has no WATCH"
    exit 0
  fi
}

# wait_long SECONDS WHAT CMD...: like wait_for, for the cases with a known
# longer delay (a restart's 10 s grace, a reconnection's back-off).
wait_long() {
  local secs=$1 what=$2
  shift 2
  for _ in $(seq 1 $((secs * 20))); do
    "$@" && return 0
    sleep 0.05
  done
  fail "$what did not happen within $secs s"
}
