# Boot a real systemd (Debian 12, systemd 252) as PID 1 of a runc container,
# for tests of what secretd does for systemd units.  A library to `source`
# after lib.sh; needs root, runc and network access to Debian's mirror the
# first time (mmdebstrap builds the root file system, which is then cached).
#
#   source tests/integration/systemd.sh
#   at_exit systemd_teardown
#   systemd_rootfs "$T/rootfs"               # extracted from the cached tarball
#   cp my.service "$T/rootfs/etc/systemd/system/"
#   systemd_boot "$T/rootfs" "$T/out:/out"   # PID 1 running, or fail
#   systemd_exec systemctl start my.service  # status = the command's
#
# The root file system: `mmdebstrap --variant=essential` of bookworm with
# SYSTEMD_PACKAGES (systemd and the libraries secretd and secretctl link
# against), as a tarball in $SYSTEMD_CACHE named after a hash of everything
# that goes into it, so a changed package list builds a new one and reruns
# cost only its extraction (about a second).  A build takes a minute or two.
#
# What systemd needs from the container (each point was found missing by
# trying without it):
#  - /run a tmpfs with SHARED propagation.  systemd sets up a unit's
#    credentials in "(sd-mkdcreds)", a child in a mount namespace of its own,
#    and moves the finished mount to /run/credentials/UNIT; the move reaches
#    PID 1's namespace (and so the unit) only by propagation.  On a real boot
#    systemd makes "/" shared itself, but not when it runs in a container
#    (it leaves that to the container manager), and runc gives every mount
#    private propagation: the unit then sees an empty $CREDENTIALS_DIRECTORY.
#    The "shared" option of the /run mount fixes that (runc 1.1's
#    rootfsPropagation does not reach the mounts below the root).
#  - a cgroup namespace and a writable cgroup mount at /sys/fs/cgroup (runc's
#    "cgroup" mount: the container's own subtree of every hierarchy), so
#    systemd can make its slices and units' cgroups;
#  - the capabilities of a system container (CAP_SYS_ADMIN for mounts and
#    namespaces, ...), intersected with the host's bounding set;
#  - `container=` in PID 1's environment, tmpfs /tmp, /run/lock, /dev/shm,
#    mqueue, a read-only /sys, and all device access (runc's default nodes).
# Binaries are bind-mounted read-only from the build tree; shared libraries
# they need that the root file system lacks (ASan's runtime in a sanitizer
# build) are copied in.

SYSTEMD_CACHE=${SYSTEMD_CACHE:-/var/cache/secretd-tests}
SYSTEMD_SUITE=bookworm
SYSTEMD_PACKAGES=(systemd libsodium23 libsqlite3-0 libuv1 libcap-ng0)
# Seconds for PID 1 to reach a settled state ("running" or "degraded").
SYSTEMD_BOOT_TIMEOUT=${SYSTEMD_BOOT_TIMEOUT:-60}
SYSTEMD_RUNC=${RUNC:-runc}
SYSTEMD_RUNC_ROOT=/run/secretd-test-systemd/$$
SYSTEMD_NAME=sd-$$
SYSTEMD_CGROUP=/secretd-test/systemd-$$
SYSTEMD_BUNDLE=""
SYSTEMD_BOOTED=0

# systemd_require: mmdebstrap and runc, installed when missing (Debian).
systemd_require() {
  local pkgs=()
  command -v mmdebstrap >/dev/null 2>&1 || pkgs+=(mmdebstrap)
  command -v "$SYSTEMD_RUNC" >/dev/null 2>&1 || pkgs+=(runc)
  [ ${#pkgs[@]} -eq 0 ] && return 0
  echo "# installing ${pkgs[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}" >&2 ||
    { apt-get update -q >&2 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}" >&2; }
}

# The mmdebstrap command line, one argument a line (the cache key hashes it).
_systemd_mmdebstrap_args() {
  local IFS=,
  printf '%s\n' --variant=essential "--include=${SYSTEMD_PACKAGES[*]}" \
    '--dpkgopt=path-exclude=/usr/share/man/*' '--dpkgopt=path-exclude=/usr/share/doc/*' \
    '--dpkgopt=path-exclude=/usr/share/locale/*' "$SYSTEMD_SUITE"
}

# systemd_tarball: print the cached root file system tarball, building it
# first when missing (under a lock, so parallel tests build it once).
systemd_tarball() {
  local key tar args=() a t0
  systemd_require || return 1
  key=$({ _systemd_mmdebstrap_args; dpkg --print-architecture; } | sha256sum | cut -c1-16)
  tar="$SYSTEMD_CACHE/debian12-systemd-$key.tar"
  mkdir -p "$SYSTEMD_CACHE" || return 1
  (
    flock 9
    [ -s "$tar" ] && exit 0
    while read -r a; do args+=("$a"); done < <(_systemd_mmdebstrap_args)
    echo "# building $tar (mmdebstrap ${args[*]})" >&2
    t0=$(date +%s)
    # mmdebstrap picks the output format from the name: keep ".tar".
    rm -rf "${tar%.tar}.new.tar"
    if ! mmdebstrap "${args[@]}" "${tar%.tar}.new.tar" >"$tar.log" 2>&1; then
      tail -n 20 "$tar.log" >&2
      rm -rf "${tar%.tar}.new.tar"
      exit 1
    fi
    mv "${tar%.tar}.new.tar" "$tar"
    echo "# built in $(($(date +%s) - t0)) s" >&2
  ) 9>"$SYSTEMD_CACHE/.lock" || return 1
  echo "$tar"
}

# systemd_rootfs DIR: a fresh root file system in DIR (must not exist).
systemd_rootfs() {
  local dir=$1 tar
  tar=$(systemd_tarball) || return 1
  mkdir -m 0755 "$dir" || return 1
  tar -C "$dir" -xf "$tar" || return 1
  # Nothing in a test needs a login prompt or timers firing mid-test.
  ln -sf /dev/null "$dir/etc/systemd/system/getty.target"
  ln -sf /dev/null "$dir/etc/systemd/system/timers.target"
  mkdir -p "$dir/usr/local/sbin" "$dir/usr/local/bin"
}

# systemd_install_bin ROOTFS BIN DEST: bind-mount point DEST (absolute, in
# the container) for host binary BIN, plus the libraries BIN needs that
# ROOTFS lacks.  Prints the mount for systemd_boot.
systemd_install_bin() {
  local rootfs=$1 bin=$2 dest=$3 lib
  [ -x "$bin" ] || { echo "systemd_install_bin: not an executable: $bin" >&2; return 1; }
  mkdir -p "$rootfs$(dirname "$dest")"
  : >"$rootfs$dest"
  while read -r lib; do
    [ -e "$rootfs$lib" ] && continue
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib" || return 1
  done < <(ldd "$bin" 2>/dev/null | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p')
  echo "$(readlink -f "$bin"):$dest:ro"
}

# Capabilities of a system container, those the host's bounding set has.
_systemd_caps() {
  local bnd name num out="" sep=""
  bnd=$((16#$(awk '/^CapBnd:/ {print $2}' /proc/self/status)))
  for name in CHOWN:0 DAC_OVERRIDE:1 DAC_READ_SEARCH:2 FOWNER:3 FSETID:4 KILL:5 SETGID:6 \
    SETUID:7 SETPCAP:8 LINUX_IMMUTABLE:9 NET_BIND_SERVICE:10 NET_ADMIN:12 NET_RAW:13 \
    IPC_LOCK:14 IPC_OWNER:15 SYS_CHROOT:18 SYS_PTRACE:19 SYS_ADMIN:21 SYS_NICE:23 \
    SYS_RESOURCE:24 MKNOD:27 AUDIT_WRITE:29 SETFCAP:31; do
    num=${name#*:}
    (((bnd >> num) & 1)) || continue
    out+="$sep\"CAP_${name%:*}\""
    sep=", "
  done
  echo "$out"
}

# _systemd_config ROOTFS MOUNTS...: config.json on stdout.  MOUNTS as in
# runc.sh: SRC:DST or SRC:DST:ro bind mounts.
_systemd_config() {
  local rootfs=$1 m src dst opt mounts="" caps nofile
  shift
  for m in "$@"; do
    src=${m%%:*}
    dst=${m#*:}
    opt=rw
    if [[ "$dst" == *:ro ]]; then
      dst=${dst%:ro}
      opt=ro
    fi
    [[ "$src" == /* && "$dst" == /* && "$src$dst" != *[\"\\]* ]] ||
      { echo "systemd_boot: bad mount [$m]" >&2; return 1; }
    mounts+=", {\"destination\": \"$dst\", \"type\": \"bind\", \"source\": \"$src\", \"options\": [\"rbind\", \"$opt\", \"nosuid\"]}"
  done
  caps=$(_systemd_caps)
  # At most our own hard limit: raising it needs CAP_SYS_RESOURCE.
  nofile=$(ulimit -Hn)
  [[ "$nofile" =~ ^[0-9]+$ ]] && [ "$nofile" -le 65536 ] || nofile=65536
  cat <<JSON
{
  "ociVersion": "1.0.2",
  "process": {
    "terminal": false,
    "user": {"uid": 0, "gid": 0},
    "args": ["/lib/systemd/systemd"],
    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "container=secretd-test"],
    "cwd": "/",
    "capabilities": {"bounding": [$caps], "effective": [$caps], "permitted": [$caps]},
    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": $nofile, "soft": $nofile}],
    "noNewPrivileges": false
  },
  "root": {"path": "$rootfs", "readonly": false},
  "hostname": "secretd-systemd-test",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "rw"]},
    {"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=755", "size=65536k", "shared"]},
    {"destination": "/run/lock", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "noexec", "mode=1777", "size=5m"]},
    {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777", "size=65536k"]}
    $mounts
  ],
  "linux": {
    "cgroupsPath": "$SYSTEMD_CGROUP",
    "resources": {"devices": [{"allow": true, "access": "rwm"}]},
    "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}]
  }
}
JSON
}

# systemd_exec CMD...: run CMD in the booted container (as root, stdin
# passed through); returns CMD's status.
systemd_exec() {
  "$SYSTEMD_RUNC" --root "$SYSTEMD_RUNC_ROOT" exec "$SYSTEMD_NAME" "$@"
}

# systemd_diagnose: what went on inside, on stderr (for failures).
systemd_diagnose() {
  [ "$SYSTEMD_BOOTED" = 1 ] || return 0
  {
    echo "--- systemctl --failed"
    systemd_exec systemctl --no-pager --failed 2>&1 || true
    echo "--- journal (last 40 lines)"
    systemd_exec journalctl --no-pager -n 40 2>&1 || true
  } >&2
}

# systemd_boot ROOTFS MOUNTS...: start the container with systemd as PID 1
# and wait (bounded) until it has settled; fails with a diagnosis when it
# does not.  ROOTFS must be absolute.
systemd_boot() {
  local rootfs=$1 state="" t0 deadline
  shift
  [[ "$rootfs" == /* && "$rootfs" != *[\"\\]* ]] || { echo "systemd_boot: bad rootfs" >&2; return 1; }
  mkdir -p "$SYSTEMD_RUNC_ROOT" || return 1
  SYSTEMD_BUNDLE=$(mktemp -d "$SYSTEMD_RUNC_ROOT/bundle.XXXXXX") || return 1
  _systemd_config "$rootfs" "$@" >"$SYSTEMD_BUNDLE/config.json" || return 1
  "$SYSTEMD_RUNC" --root "$SYSTEMD_RUNC_ROOT" delete -f "$SYSTEMD_NAME" >/dev/null 2>&1 || true
  t0=$(date +%s%N)
  "$SYSTEMD_RUNC" --root "$SYSTEMD_RUNC_ROOT" run -d --bundle "$SYSTEMD_BUNDLE" "$SYSTEMD_NAME" \
    </dev/null >"$SYSTEMD_BUNDLE/console.log" 2>&1 ||
    { cat "$SYSTEMD_BUNDLE/console.log" >&2; return 1; }
  SYSTEMD_BOOTED=1
  deadline=$((SECONDS + SYSTEMD_BOOT_TIMEOUT))
  while [ $SECONDS -lt $deadline ]; do
    # "starting" until the boot transaction is done; then running or
    # degraded (some unit failed: the test decides whether that matters).
    state=$(systemd_exec systemctl is-system-running 2>/dev/null) || true
    case "$state" in
      running | degraded)
        SYSTEMD_BOOT_MS=$((($(date +%s%N) - t0) / 1000000))
        return 0
        ;;
    esac
    sleep 0.1
  done
  echo "systemd_boot: PID 1 not settled after ${SYSTEMD_BOOT_TIMEOUT} s (state: ${state:-none})" >&2
  systemd_diagnose
  return 1
}

# systemd_teardown: kill and delete the container, its state and cgroups.
# Safe to call more than once and when nothing was started.
systemd_teardown() {
  local root
  if [ -d "$SYSTEMD_RUNC_ROOT" ]; then
    "$SYSTEMD_RUNC" --root "$SYSTEMD_RUNC_ROOT" kill "$SYSTEMD_NAME" KILL >/dev/null 2>&1 || true
    "$SYSTEMD_RUNC" --root "$SYSTEMD_RUNC_ROOT" delete -f "$SYSTEMD_NAME" >/dev/null 2>&1 || true
    rm -rf "$SYSTEMD_RUNC_ROOT"
    rmdir "$(dirname "$SYSTEMD_RUNC_ROOT")" 2>/dev/null || true
  fi
  SYSTEMD_BOOTED=0
  # systemd's own sub-cgroups, deepest first, then the empty parents.
  for root in /sys/fs/cgroup /sys/fs/cgroup/*; do
    [ -d "$root$SYSTEMD_CGROUP" ] &&
      { find "$root$SYSTEMD_CGROUP" -depth -type d -exec rmdir {} + 2>/dev/null || true; }
    [ ! -d "$root/secretd-test" ] || rmdir "$root/secretd-test" 2>/dev/null || true
  done
  return 0
}
