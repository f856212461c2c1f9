#!/usr/bin/env bash
# cmake --install: binaries, man pages, bash completion, the systemd unit and
# socket, sysusers and logrotate files and example configuration at the
# GNUInstallDirs paths; the unit's ExecStart follows the install prefix
# (never DESTDIR); the installed units pass systemd-analyze verify; the
# binaries are linked with full RELRO and -z now.
source "$TESTLIB"

BUILD=$(cd "$(dirname "$SECRETD")/.." && pwd)
[ -f "$BUILD/CMakeCache.txt" ] || fail "no build tree above $SECRETD"
CFG_PREFIX=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$BUILD/CMakeCache.txt")

note "full RELRO and BIND_NOW on the built binaries"
relro_now() { # FILE: GNU_RELRO segment, and BIND_NOW or FLAGS_1 NOW
  local f=$1
  readelf -lW "$f" | grep -q GNU_RELRO || fail "$f: no GNU_RELRO segment"
  if readelf -dW "$f" | grep -q '(NEEDED)'; then
    readelf -dW "$f" | grep -Eq '\(BIND_NOW\)|\(FLAGS_1\).*NOW' || fail "$f: not linked with -z now"
  fi
}
relro_now "$SECRETD"
relro_now "$SECRETCTL"
[ -z "${SECRETCTL_STATIC:-}" ] || relro_now "$SECRETCTL_STATIC"

note "cmake --install --prefix into a temporary prefix"
P="$T/prefix"
expect_status 0 cmake --install "$BUILD" --prefix "$P"
for f in sbin/secretd bin/secretctl \
  share/man/man1/secretctl.1 share/man/man5/secretd-policy.5 share/man/man8/secretd.8 \
  share/bash-completion/completions/secretctl \
  lib/systemd/system/secretd.service lib/systemd/system/secretd.socket \
  lib/sysusers.d/secretd.conf etc/logrotate.d/secretd \
  share/doc/secretd/examples/secretd.conf share/doc/secretd/examples/policy-host.conf \
  share/doc/secretd/examples/policy-docker.conf share/doc/secretd/examples/policy-podman.conf \
  share/doc/secretd/examples/policy-kubernetes.conf; do
  [ -f "$P/$f" ] || fail "not installed: $f"
done
[ -x "$P/sbin/secretd" ] && [ -x "$P/bin/secretctl" ] || fail "binaries not executable"
relro_now "$P/sbin/secretd"
if find "$P" -perm /6000 -type f | grep -q .; then fail "setuid/setgid files installed"; fi
UNIT="$P/lib/systemd/system/secretd.service"
assert_eq "$(grep '^ExecStart=' "$UNIT")" \
  "ExecStart=$P/sbin/secretd run --config /etc/secretd/secretd.conf" "installed ExecStart"
grep -qx 'Type=notify' "$UNIT" || fail "secretd.service is not Type=notify"
cmp -s <(grep -v '^ExecStart=' "$UNIT") <(grep -v '^ExecStart=' "$SOURCE_DIR/contrib/systemd/secretd.service") ||
  fail "the installed unit differs from contrib/ in more than ExecStart"
"$P/sbin/secretd" check-policy "$P/share/doc/secretd/examples/policy-host.conf" >/dev/null ||
  fail "the installed example policy does not parse"
bash -n "$P/share/bash-completion/completions/secretctl" || fail "completion: syntax"

if command -v systemd-analyze >/dev/null 2>&1; then
  note "systemd-analyze verify on the installed unit and socket"
  rc=0
  MANPATH="$P/share/man" systemd-analyze verify "$UNIT" "$P/lib/systemd/system/secretd.socket" \
    >"$T/verify.out" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ] || grep -q 'secretd' "$T/verify.out"; then
    fail "systemd-analyze verify (exit $rc): $(cat "$T/verify.out")"
  fi
  note "(a unit naming a missing binary is refused: the check can fail)"
  sed "s|^ExecStart=$P/sbin/secretd |ExecStart=$T/nowhere/secretd |" "$UNIT" >"$T/secretd.service"
  rc=0
  MANPATH="$P/share/man" systemd-analyze verify "$T/secretd.service" >"$T/verify.out" 2>&1 || rc=$?
  [ "$rc" -ne 0 ] || grep -q 'nowhere' "$T/verify.out" || fail "verify accepted a missing ExecStart binary"
else
  fail "systemd-analyze is missing (Debian package systemd)"
fi

note "DESTDIR: a staging root that never appears inside the files"
D="$T/dest"
DESTDIR="$D" cmake --install "$BUILD" >"$T/destdir.out" 2>&1 || fail "DESTDIR install: $(tail -3 "$T/destdir.out")"
[ -x "$D$CFG_PREFIX/sbin/secretd" ] || fail "DESTDIR: no $CFG_PREFIX/sbin/secretd"
assert_eq "$(grep '^ExecStart=' "$D$CFG_PREFIX/lib/systemd/system/secretd.service")" \
  "ExecStart=$CFG_PREFIX/sbin/secretd run --config /etc/secretd/secretd.conf" "ExecStart under DESTDIR"
if grep -rl "$D" "$D" | grep -q .; then fail "DESTDIR leaked into installed files: $(grep -rl "$D" "$D")"; fi

note "the sysusers file creates the secretd user in a scratch root"
mkdir -p "$T/sysroot/etc"
expect_status 0 systemd-sysusers --root="$T/sysroot" "$P/lib/sysusers.d/secretd.conf"
grep -q '^secretd:' "$T/sysroot/etc/passwd" || fail "no secretd user"

echo "PASS $TEST_NAME"
