#!/usr/bin/env bash
# secretctl inject on the host: files on a real tmpfs with the mode and owner
# asked for, byte-exact; all or nothing; no temporary file left after any
# failure; refusal of disk folders and of a DIR that is a symbolic link; a
# link planted at a final name is replaced, its target untouched.
source "$TESTLIB"

[ "$(id -u)" = 0 ] || fail "needs root"

# mount_tmpfs DIR SIZE: a tmpfs of its own at DIR, unmounted at exit.
mount_tmpfs() {
  mkdir -p "$1"
  mount -t tmpfs -o "size=$2,mode=0755" tmpfs "$1" || fail "cannot mount a tmpfs at $1"
  at_exit "umount '$1'"
}
D="$T/secrets"
mount_tmpfs "$D" 1m

write_policy <<'POLICY'
permit all   **          uid=0 host
permit read  app/**      uid=1000
deny   read  app/secret  any
POLICY
start_broker

put() { "$CTL" put "$1" <"$2" >/dev/null || fail "put $1"; }
printf 's3cret-pass' >"$T/v.db"
printf 'tok\nwith newline\n' >"$T/v.token"
printf '\000\001\377\000binary\000\n\000' >"$T/v.blob"
: >"$T/v.empty"
printf 'one' >"$T/v.one"
printf 'two' >"$T/v.two"
head -c 65536 /dev/urandom >"$T/v.big"
put db/password "$T/v.db"
put app/token "$T/v.token"
put bin/blob "$T/v.blob"
put e/empty "$T/v.empty"
put app/one "$T/v.one"
put app/two "$T/v.two"
put app/secret "$T/v.one"
put app/big "$T/v.big"

# listing DIR: every name in it, hidden ones too, on one line.
listing() { ls -A "$1" | tr '\n' ' ' | sed 's/ $//'; }
# mode_owner FILE: "mode uid gid type" without following a link.
mode_owner() { stat -c '%a %u %g %F' "$1" | sed 's/regular empty file/regular file/'; }

note "inject into a tmpfs as root: default mode 0400, root's owner, default and renamed FILEs"
expect_status 0 "$CTL" inject --dir "$D" db/password app/token=token bin/blob e/empty app/big
assert_eq "$OUT" "" "inject prints nothing on success"
assert_eq "$(listing "$D")" "app_big bin_blob db_password e_empty token" "files in DIR"
for f in app_big bin_blob db_password e_empty token; do
  assert_eq "$(mode_owner "$D/$f")" "400 0 0 regular file" "mode and owner of $f"
done
cmp "$D/db_password" "$T/v.db" || fail "db_password differs"
cmp "$D/token" "$T/v.token" || fail "token differs (trailing newline must be kept)"
cmp "$D/bin_blob" "$T/v.blob" || fail "binary value with NULs differs"
cmp "$D/app_big" "$T/v.big" || fail "64 KiB value differs"
assert_eq "$(stat -c %s "$D/e_empty")" "0" "empty value gives an empty file"
assert_eq "$(stat -f -c %T "$D")" "tmpfs" "DIR is a tmpfs"

note "--owner and --mode as root"
mkdir "$D/om"
expect_status 0 "$CTL" inject --dir "$D/om" --owner 1234:5678 --mode 0640 db/password app/token=t
assert_eq "$(mode_owner "$D/om/db_password")" "640 1234 5678 regular file"
assert_eq "$(mode_owner "$D/om/t")" "640 1234 5678 regular file"
expect_status 0 "$CTL" inject --dir "$D/om" --mode=0 --owner=0:0 app/one
assert_eq "$(mode_owner "$D/om/app_one")" "0 0 0 regular file" "mode 0"
expect_status 0 "$CTL" inject --dir "$D/om" --mode 755 app/two
assert_eq "$(mode_owner "$D/om/app_two")" "755 0 0 regular file" "mode without a leading 0"

note "a second run replaces the files in place (same names, new contents)"
printf 'new-pass' | "$CTL" put db/password >/dev/null
expect_status 0 "$CTL" inject --dir "$D" db/password
assert_eq "$(cat "$D/db_password")" "new-pass" "replaced value"
assert_eq "$(listing "$D")" "app_big bin_blob db_password e_empty om token" "no extra file after a replace"

note "DIR given with trailing slashes is the same directory"
expect_status 0 "$CTL" inject --dir "$D/om//" app/one=slash
assert_eq "$(mode_owner "$D/om/slash")" "400 0 0 regular file"

note "a non-root caller: the default owner is its own uid and gid"
mkdir -m 0700 "$D/u"
chown 1000:1000 "$D/u"
expect_status 0 as_user 1000 1000 "$CTL" inject --dir "$D/u" app/one app/two=second
assert_eq "$(mode_owner "$D/u/app_one")" "400 1000 1000 regular file"
assert_eq "$(mode_owner "$D/u/second")" "400 1000 1000 regular file"
assert_eq "$(cat "$D/u/app_one")" "one"
assert_eq "$(cat "$D/u/second")" "two"

note "all or nothing: one denied name and nothing is written, earlier files untouched"
mkdir -m 0700 "$D/aon"
chown 1000:1000 "$D/aon"
printf 'old' >"$D/aon/app_one"
chown 1000:1000 "$D/aon/app_one"
expect_status 4 as_user 1000 1000 "$CTL" inject --dir "$D/aon" app/one app/two app/secret
assert_contains "$ERR" "secretctl: "
assert_eq "$(listing "$D/aon")" "app_one" "only the earlier file in DIR after a denial"
assert_eq "$(cat "$D/aon/app_one")" "old" "earlier file not replaced after a denial"
note "... a denied name first, and a name not found last"
expect_status 4 as_user 1000 1000 "$CTL" inject --dir "$D/aon" app/secret app/one
expect_status 3 as_user 1000 1000 "$CTL" inject --dir "$D/aon" app/one app/missing
assert_eq "$(listing "$D/aon")" "app_one" "nothing written when a name is not found"
note "... a name outside the caller's rules is denied, not 'not found'"
expect_status 4 as_user 1000 1000 "$CTL" inject --dir "$D/aon" app/one nowhere/missing
assert_eq "$(listing "$D/aon")" "app_one"
note "... an unreachable broker: exit 5, nothing written"
expect_status 5 "$CTL" -s "$T/no-such.sock" inject --dir "$D/aon" app/one
assert_eq "$(listing "$D/aon")" "app_one"
assert_eq "$(cat "$D/aon/app_one")" "old"

note "failures while writing leave no temporary file and none of this run's files"
note "... chown refused (a non-root caller asks for owner 0:0)"
mkdir -m 0700 "$D/w"
chown 1000:1000 "$D/w"
expect_status 1 as_user 1000 1000 "$CTL" inject --dir "$D/w" --owner 0:0 app/one app/two
assert_contains "$ERR" "setting the owner"
assert_eq "$(listing "$D/w")" "" "DIR empty after a refused chown"
note "... a rename that fails (the second target is a directory): the first is unlinked again"
mkdir "$D/w2" "$D/w2/token"
expect_status 1 "$CTL" inject --dir "$D/w2" db/password app/token=token
assert_contains "$ERR" "renaming into place"
assert_eq "$(listing "$D/w2")" "token" "rolled back: only the planted directory left"
[ -d "$D/w2/token" ] || fail "the planted directory was replaced"
note "... a full tmpfs (ENOSPC while writing)"
F="$T/full"
mount_tmpfs "$F" 64k
dd if=/dev/zero of="$F/filler" bs=4k count=64 2>/dev/null || true
expect_status 1 "$CTL" inject --dir "$F" db/password app/big
assert_contains "$ERR" "No space left on device"
assert_eq "$(listing "$F")" "filler" "only the filler after ENOSPC"
rm "$F/filler"
expect_status 0 "$CTL" inject --dir "$F" db/password
assert_eq "$(listing "$F")" "db_password" "the same tmpfs works once there is room"

note "killed while writing: SIGKILL leaves nothing, SIGTERM waits until every file is placed"
SYS_FSYNC=$(echo SYS_fsync | cpp -include sys/syscall.h -P - | tail -n 1)
# slow_inject DIR: inject app/one and app/two into DIR in the background, the
# second fsync (the second file's) held 2 s by strace; returns once secretctl
# sits in an fsync, its pid in INJECT_PID and strace's in TRACER.
slow_inject() {
  strace -f -qq -o /dev/null -e trace=fsync -e inject=fsync:delay_enter=2000000:when=2 \
    "$CTL" inject --dir "$1" app/one app/two &
  TRACER=$!
  for _ in $(seq 200); do
    INJECT_PID=$(pgrep -P "$TRACER" || true)
    if [ -n "$INJECT_PID" ] &&
      [ "$(cut -d ' ' -f 1 "/proc/$INJECT_PID/syscall" 2>/dev/null)" = "$SYS_FSYNC" ]; then
      return 0
    fi
    sleep 0.05
  done
  fail "secretctl inject never reached its fsync under strace"
}
# kill_halfway SIGNAL DIR: send SIGNAL to a slow inject into DIR; its status in KILLED_RC.
kill_halfway() {
  slow_inject "$2"
  kill "-$1" "$INJECT_PID"
  KILLED_RC=0
  wait "$TRACER" || KILLED_RC=$?
}
K="$T/killed"
mount_tmpfs "$K" 1m
kill_halfway KILL "$K"
assert_eq "$KILLED_RC" "137" "exit status of strace after SIGKILL of secretctl"
assert_eq "$(listing "$K")" "" "nothing in DIR after SIGKILL halfway (an unnamed file vanishes)"
kill_halfway TERM "$K"
assert_eq "$KILLED_RC" "143" "SIGTERM still ends secretctl, once the files are placed"
assert_eq "$(listing "$K")" "app_one app_two" "SIGTERM halfway: every file placed, nothing else"
cmp "$K/app_two" "$T/v.two" || fail "app_two differs after SIGTERM halfway"

note "SIGKILL at a link or a rename never leaves a .secretctl- file holding a secret"
# kill_at SYSCALLS WHEN DIR: inject app/one app/two into DIR, SIGKILLed by
# strace at the WHENth call of SYSCALLS; strace's status in KILLED_RC.
kill_at() {
  KILLED_RC=0
  # LeakSanitizer cannot run under ptrace: in a sanitized build a run that
  # is not killed would fail at exit for that reason alone.
  ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
    strace -f -qq -o /dev/null -e "trace=$1" -e "inject=$1:signal=SIGKILL:when=$2" \
    "$CTL" inject --dir "$3" app/one app/two || KILLED_RC=$?
}
tmpnames() { ls -A "$1" | grep -c '^\.secretctl-' || true; }
R="$T/renamekill"
mount_tmpfs "$R" 1m
# Free final names are linked in one step: there is no rename to be killed at
# (the old code linked a .secretctl- name first and was killed holding it).
kill_at renameat,renameat2 1 "$R"
assert_eq "$(tmpnames "$R")" "0" "a .secretctl- file left after SIGKILL at the rename"
assert_eq "$KILLED_RC" "0" "inject into free names renames nothing"
assert_eq "$(listing "$R")" "app_one app_two" "both files placed"
rm -f "$R"/*
kill_at linkat 2 "$R"
assert_eq "$KILLED_RC" "137" "killed at the second link"
assert_eq "$(listing "$R")" "app_one" "SIGKILL at the second link: the first file, nothing else"
# A name already taken needs a temporary name and a rename; SIGKILL in that
# window leaves one, and the next run in the directory removes it.
kill_at renameat,renameat2 1 "$R"
assert_eq "$KILLED_RC" "137" "killed at the rename over a taken name"
assert_eq "$(tmpnames "$R")" "1" "the one window: a taken name, between link and rename"
expect_status 0 "$CTL" inject --dir "$R" app/one
assert_eq "$(listing "$R")" "app_one" "the next run removed the killed run's temporary name"
expect_status 0 "$CTL" get app/two -o "$R/app_two"
kill_at renameat,renameat2 1 "$R"
expect_status 0 "$CTL" get app/one -o "$R/app_one"
assert_eq "$(listing "$R")" "app_one app_two" "get -o removes a killed run's temporary name too"

note "refusal on a disk folder, and --allow-disk"
DISK="$T/disk"
mkdir "$DISK"
FSTYPE=$(stat -f -c %T "$DISK")
if [ "$FSTYPE" = tmpfs ] || [ "$FSTYPE" = ramfs ]; then
  fail "$T is itself on $FSTYPE: cannot test the disk refusal here"
fi
expect_status 1 "$CTL" inject --dir "$DISK" db/password
assert_contains "$ERR" "is not on tmpfs or ramfs"
assert_contains "$ERR" "--allow-disk"
assert_eq "$(listing "$DISK")" "" "nothing written on a disk folder"
expect_status 0 "$CTL" inject --allow-disk --dir "$DISK" db/password
assert_eq "$(cat "$DISK/db_password")" "new-pass"
assert_eq "$(mode_owner "$DISK/db_password")" "400 0 0 regular file"
assert_eq "$(listing "$DISK")" "db_password" "no temporary file left on disk"

note "a symbolic link planted at a final name: replaced, its target untouched"
mkdir "$D/ln"
printf 'original' >"$T/target"
chmod 0644 "$T/target"
ln -s "$T/target" "$D/ln/token"
ln -s "$T/created-by-link" "$D/ln/app_one"
expect_status 0 "$CTL" inject --dir "$D/ln" app/token=token app/one
assert_eq "$(cat "$T/target")" "original" "the link's target was written"
assert_eq "$(stat -c %a "$T/target")" "644" "the link's target mode changed"
[ ! -e "$T/created-by-link" ] || fail "a dangling link's target was created"
assert_eq "$(mode_owner "$D/ln/token")" "400 0 0 regular file" "token is a file now"
cmp "$D/ln/token" "$T/v.token" || fail "token contents after replacing the link"
assert_eq "$(cat "$D/ln/app_one")" "one"
assert_eq "$(listing "$D/ln")" "app_one token" "no temporary file left"

note "DIR that is itself a symbolic link is refused, with or without a trailing /"
ln -s "$D/u" "$T/dirlink"
expect_status 1 "$CTL" inject --dir "$T/dirlink" db/password
assert_contains "$ERR" "is a symbolic link"
expect_status 1 "$CTL" inject --dir "$T/dirlink/" db/password
assert_contains "$ERR" "is a symbolic link"
assert_eq "$(listing "$D/u")" "app_one second" "nothing written through the link"
note "a DIR that does not exist, and a file as DIR"
expect_status 1 "$CTL" inject --dir "$D/nonexistent" db/password
expect_status 1 "$CTL" inject --dir "$D/db_password" db/password

note "usage errors exit 2, before anything is fetched (the broker is unreachable here)"
mkdir "$D/usage"
U=("$CTL" -s "$T/no-such.sock" inject)
for bad in "db/password=a/b" "db/password=." "db/password=.." "db/password=" "../x" "a//b" ""; do
  expect_status 2 "${U[@]}" --dir "$D/usage" "$bad"
done
expect_status 2 "${U[@]}" --dir "$D/usage" db/password app/x=db_password
assert_contains "$ERR" "db_password"
expect_status 2 "${U[@]}" --dir "$D/usage" a/b a_b
expect_status 2 "${U[@]}" db/password
assert_contains "$ERR" "--dir"
expect_status 2 "${U[@]}" --dir "$D/usage"
for m in 0999 4755 1000 abc -1 ""; do
  expect_status 2 "${U[@]}" --dir "$D/usage" --mode "$m" db/password
done
for o in root:root 1000 :1000 1000: -1:0 "1000:1000:1" 4294967295:0; do
  expect_status 2 "${U[@]}" --dir "$D/usage" --owner "$o" db/password
done
expect_status 2 "${U[@]}" --dir "$D/usage" --bogus db/password
assert_eq "$(listing "$D/usage")" "" "nothing written by usage errors"

stop_broker
echo "PASS $TEST_NAME"
