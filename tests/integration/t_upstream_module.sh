#!/usr/bin/env bash
# upstream = etcd: the broker dlopens secretd-upstream-etcd.so as root,
# before privileges drop, so it must refuse a module anyone but root may
# have changed (the file or its folder writable by group or others, or owned
# by another user), a module of another build (its version is not the
# broker's, or the structs both lay out differ in size), and a file dlopen
# cannot load.  Each refusal is exit 1 with one
# line on stderr naming the module and why, and nothing is ever served.
# A correctly owned copy, in the same setup, starts and serves (it does not
# wait for etcd, which is on a closed port here).
#
# "Beside the executable" is where a broker looks first, so each case is a
# copy of the built secretd and its module in a folder of its own, varied.
source "$TESTLIB"

MODULE=secretd-upstream-etcd.so
BUILT_MODULE="$(dirname "$SECRETD")/$MODULE"
[ -f "$BUILT_MODULE" ] || fail "no $MODULE beside $SECRETD"
VERSION=$("$SECRETD" --version | sed -n 's/^secretd //p')
[ -n "$VERSION" ] || fail "secretd --version: $("$SECRETD" --version)"
REFUSED_TRUST="(owned by root, writable by nobody else)"
REFUSED_BUILD="is not the module of secretd $VERSION"

# Only a broker with no module beside it looks in the installed folder
# (SECRETD_MODULE_DIR, from the install prefix); a module found beside it but
# not trusted is refused by name.  If this machine has a module installed
# there, the brokers run in a mount namespace where that folder is empty, so
# that the "no module" case tests the refusal; where no mount namespace can be
# made, that one case is skipped, and says so.
BUILD=$(cd "$(dirname "$SECRETD")/.." && pwd)
[ -f "$BUILD/CMakeCache.txt" ] || fail "no build tree above $SECRETD"
MODULE_DIR=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:PATH=//p' "$BUILD/CMakeCache.txt")
case "$MODULE_DIR" in
  /*) ;;
  *) MODULE_DIR="$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$BUILD/CMakeCache.txt")/$MODULE_DIR" ;;
esac
MODULE_DIR="$MODULE_DIR/secretd"
HIDE=()
INSTALLED_SEEN=no
if [ -e "$MODULE_DIR/$MODULE" ]; then
  # shellcheck disable=SC2016 # $0 and $@ are the inner shell's
  HIDE=(unshare -m -- sh -c 'mount -t tmpfs -o mode=0755 secretd-test "$0" && exec "$@"' "$MODULE_DIR")
  if hide_err=$("${HIDE[@]}" true 2>&1); then
    note "a module is installed in $MODULE_DIR: hidden from this test's brokers"
  else
    note "a module is installed in $MODULE_DIR and no mount namespace can hide it: $hide_err"
    HIDE=()
    INSTALLED_SEEN=yes
  fi
fi

# An etcd endpoint on a loopback port nobody listens on (bound, then closed).
PORT=$(python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
)
head -c 32 /dev/urandom >"$T/cluster.key"
chmod 0400 "$T/cluster.key"
printf 'permit all ** uid=0 host\n' | write_policy

# copy_broker NAME: d=$T/NAME, root's and mode 0755, holding secretd and
# the module as built (both 0755), and a vault of its own.
copy_broker() {
  d="$T/$1"
  mkdir "$d"
  cp "$SECRETD" "$BUILT_MODULE" "$d/"
  chown root:root "$d" "$d/secretd" "$d/$MODULE"
  chmod 0755 "$d" "$d/secretd" "$d/$MODULE"
  "$SECRETD" init --vault "$d/vault.db" --key-file "$d/master.key" >/dev/null
}

# run_copy DIR: DIR's secretd as a broker with upstream = etcd, until it
# exits or answers ping on its socket (at most 10 s).  RC is its exit status,
# or "serving" (then it runs on as BROKER_PID, which lib.sh stops at exit);
# ERR its stderr.
run_copy() {
  local d=$1 pid _
  "${HIDE[@]}" "$d/secretd" run --socket "$d/secretd.sock" --vault "$d/vault.db" \
    --key-file "$d/master.key" --policy "$T/policy.conf" --audit-log "$d/audit.log" \
    --upstream etcd --etcd-endpoints "http://127.0.0.1:$PORT" --etcd-prefix "/$TEST_NAME/" \
    --cluster-key-file "$T/cluster.key" >"$d/out" 2>"$d/err" &
  pid=$!
  # shellcheck disable=SC2034 # lib.sh's: its stop_broker and on_exit stop it
  BROKER_PID=$pid
  RC=running
  for _ in $(seq 1 200); do
    if ! kill -0 "$pid" 2>/dev/null; then
      RC=0
      wait "$pid" || RC=$?
      # shellcheck disable=SC2034 # as above
      BROKER_PID=""
      break
    fi
    if SECRETD_SOCKET="$d/secretd.sock" "$CTL" ping >/dev/null 2>&1; then
      RC=serving
      break
    fi
    sleep 0.05
  done
  ERR=$(cat "$d/err")
  [ "$RC" != running ] || fail "broker in $d neither exited nor served within 10 s: $ERR"
}

# expect_refused DIR WHAT TEXT...: exit 1, one line on stderr holding every
# TEXT, no socket made and none answering.
expect_refused() {
  local d=$1 what=$2
  shift 2
  run_copy "$d"
  [ "$RC" != serving ] || fail "$what: the module was loaded and the broker serves"
  assert_eq "$RC" "1" "exit status with $what"
  [ "$(wc -l <"$d/err")" -eq 1 ] || fail "$what: not one line on stderr: $ERR"
  local text
  for text in "$@"; do assert_contains "$ERR" "$text" "message for $what"; done
  # The module is loaded before the socket is made: a refusal binds nothing.
  [ ! -e "$d/secretd.sock" ] || fail "$what: a socket was left at $d/secretd.sock"
  expect_status 5 env SECRETD_SOCKET="$d/secretd.sock" "$CTL" ping
}

note "control: a copy owned by root, mode 0755, loads and serves while etcd is unreachable"
copy_broker ok
run_copy "$d"
assert_eq "$RC" "serving" "the correct copy's broker (stderr: $ERR)"
for text in "$REFUSED_TRUST" "$REFUSED_BUILD" "upstream = etcd:"; do
  assert_not_contains "$ERR" "$text" "the correct copy's stderr"
done
expect_status 0 env SECRETD_SOCKET="$d/secretd.sock" "$CTL" status
# The module's own code answers these: it was loaded and created.
assert_contains "$OUT" "upstream=etcd" "status of the correct copy"
assert_contains "$OUT" "connected=no" "status of the correct copy"
note "an etcd it cannot reach is logged once, not at every retry (one a second)"
reached() { [ "$(grep -c 'cannot open the fleet in etcd' "$d/err" || true)" -ge 1 ]; }
wait_for "a warning that etcd cannot be reached" reached
sleep 2.5
assert_eq "$(grep -c 'cannot open the fleet in etcd' "$d/err")" "1" "warnings for an unreachable etcd after three retries"
stop_broker

# loose_case NAME WHAT CHANGE TARGET: a copy with CHANGE (a chmod mode, or
# "nobody" for chown) made to TARGET is refused, the message naming that
# copy and what it must be: a module found beside the executable but not
# trusted is never passed over for the installed one.
loose_case() {
  local name=$1 what=$2 change=$3 target=$4
  note "refused: $what"
  copy_broker "$name"
  case "$change" in
    nobody) chown nobody "$d/$target" ;;
    *) chmod "$change" "$d/$target" ;;
  esac
  [ "$(stat -c %U "$d/$target")" != root ] || [ "$(stat -c %a "$d/$target")" != 755 ] ||
    fail "$what: the copy was not changed"
  expect_refused "$d" "$what" "$d/$MODULE" "$REFUSED_TRUST" "is wrong"
}
loose_case so-gw "a module writable by its group" g+w "$MODULE"
loose_case so-ow "a module writable by others" o+w "$MODULE"
loose_case so-nobody "a module owned by nobody" nobody "$MODULE"
loose_case dir-gw "a module in a folder writable by its group" g+w .
loose_case dir-ow "a module in a folder writable by others" o+w .
loose_case dir-nobody "a module in a folder owned by nobody" nobody .

note "refused: a module whose folder's folder others may write (they could swap the folder)"
mkdir -m 0755 "$T/open-above"
chmod o+w "$T/open-above"
copy_broker above
mv "$d" "$T/open-above/"
d="$T/open-above/above"
expect_refused "$d" "a folder above writable by others" "$d/$MODULE" "$REFUSED_TRUST" \
  "a folder on its path is wrong"

note "refused: a link to a module in a folder others may write (the link's target is checked)"
copy_broker link
mkdir -m 0755 "$T/open-target"
chmod o+w "$T/open-target"
mv "$d/$MODULE" "$T/open-target/$MODULE"
ln -s "$T/open-target/$MODULE" "$d/$MODULE"
expect_refused "$d" "a link into a folder writable by others" "$d/$MODULE" "$REFUSED_TRUST" \
  "a folder on its path is wrong"
note "a link to a module in a folder nobody else may write is followed"
chmod o-w "$T/open-target"
run_copy "$d"
assert_eq "$RC" "serving" "the broker with a link to a trusted module (stderr: $ERR)"
stop_broker

if [ "$INSTALLED_SEEN" = yes ]; then
  note "SKIPPED: no module beside the executable (the installed one would be found)"
else
  note "refused: no module beside the executable (and none installed)"
  copy_broker missing
  rm "$d/$MODULE"
  expect_refused "$d" "no module" "$MODULE" "$REFUSED_TRUST" "No such file or directory"
fi

# patch_module FILE version WANT NEW | patch_module FILE abi: change, in
# place, the string secretd_upstream_etcd.version points at (WANT to NEW,
# the same length), or the first of its abi sizes (the size of the ops
# table, plus 8).  The symbol from .dynsym; for the version, the relocation
# that fills in its first member; that address in the file.  Whatever else
# in the module holds the same bytes is left alone.
patch_module() {
python3 - "$@" <<'PY'
import struct, sys

path, mode = sys.argv[1], sys.argv[2]
d = bytearray(open(path, "rb").read())
if d[:4] != b"\x7fELF" or d[4] != 2 or d[5] != 1:
    sys.exit("not a little-endian ELF64 file")
phoff, shoff = struct.unpack_from("<QQ", d, 0x20)
phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", d, 0x36)
secs = [struct.unpack_from("<IIQQQQIIQQ", d, shoff + i * shentsize) for i in range(shnum)]
def entries(kind):  # (offset of each entry) of every section of that type
    for s in secs:
        if s[1] == kind:
            yield s, range(s[4], s[4] + s[5], s[9])
addr = None
for s, offs in entries(11):  # SHT_DYNSYM
    names = secs[s[6]][4]
    for off in offs:
        name, _, _, _, value, _ = struct.unpack_from("<IBBHQQ", d, off)
        if bytes(d[names + name:d.index(b"\0", names + name)]) == b"secretd_upstream_etcd":
            addr = value
if addr is None:
    sys.exit("no secretd_upstream_etcd in .dynsym")
def file_offset(vaddr):
    for i in range(phnum):
        p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from("<IIQQQQ", d, phoff + i * phentsize)
        if p_type == 1 and p_vaddr <= vaddr < p_vaddr + p_filesz:  # PT_LOAD
            return vaddr - p_vaddr + p_offset
    sys.exit("address %#x is in no loaded segment" % vaddr)
if mode == "abi":
    at = file_offset(addr + 8)  # after the version pointer
    (size,) = struct.unpack_from("<Q", d, at)
    if not 64 <= size <= 4096:
        sys.exit("the first abi size is %d, not an ops table's" % size)
    struct.pack_into("<Q", d, at, size + 8)
    open(path, "wb").write(d)
    sys.exit(0)
want, new = sys.argv[3].encode(), sys.argv[4].encode()
target = None
for s, offs in entries(4):  # SHT_RELA; a relative one has no symbol
    for off in offs:
        r_offset, r_info, r_addend = struct.unpack_from("<QQq", d, off)
        if r_offset == addr and r_info >> 32 == 0:
            target = r_addend
if target is None:
    sys.exit("no relative relocation fills in secretd_upstream_etcd.version")
at = file_offset(target)
have = bytes(d[at:d.index(b"\0", at)])
if have != want:
    sys.exit("the module's version is %r, not %r" % (have, want))
d[at:at + len(new)] = new
open(path, "wb").write(d)
PY
}

note "refused: a module of another build (its version string patched, same length)"
copy_broker other-build
OTHER="${VERSION%?}x"
[ "$OTHER" != "$VERSION" ] || OTHER="${VERSION%?}y"
patch_module "$d/$MODULE" version "$VERSION" "$OTHER" || fail "cannot patch the module's version"
! cmp -s "$BUILT_MODULE" "$d/$MODULE" || fail "patching the version left the module unchanged"
assert_eq "$(cmp -l "$BUILT_MODULE" "$d/$MODULE" | wc -l)" "1" "bytes the version patch changed"
grep -qaF -- "$OTHER" "$d/$MODULE" || fail "the patched module does not hold $OTHER"
expect_refused "$d" "another build's module" "$d/$MODULE" "$REFUSED_BUILD"

note "refused: a module of this version whose shared structs differ (an abi size patched)"
copy_broker other-abi
patch_module "$d/$MODULE" abi || fail "cannot patch the module's abi"
assert_eq "$(cmp -l "$BUILT_MODULE" "$d/$MODULE" | wc -l)" "1" "bytes the abi patch changed"
expect_refused "$d" "a module built from other sources" "$d/$MODULE" "$REFUSED_BUILD" \
  "built from other sources"

note "refused: a module dlopen cannot load (a text file, trusted otherwise)"
copy_broker not-elf
# Longer than an ELF header, so that the loader reads it and says why.
printf 'this is not a shared object, only a text file named like one\n%.0s' 1 2 3 >"$d/$MODULE"
chmod 0755 "$d/$MODULE"
expect_refused "$d" "a text file as the module" "upstream = etcd: $d/$MODULE" "invalid ELF header"

echo "PASS $TEST_NAME"
