# Run commands in real runc containers, for integration tests that need a
# caller the kernel sees as containerised (own pid, mount, net, ipc and uts
# namespaces; a runtime-shaped cgroup).  A library to `source`; it needs root,
# runc and a static busybox, and works on cgroup v1, hybrid and pure v2 hosts
# (runc's cgroupfs driver; no systemd needed).
#
#   source tests/integration/runc.sh
#   runc_rootfs "$T/rootfs" "$SECRETCTL"          # busybox + secretctl + its libs
#   cid=$(runc_cid web-$$)                          # the 64-hex id it will get
#   out=$(runc_run web-$$ "$T/rootfs" 1000 1000 "$T/sock:/run/secretd" -- \
#         secretctl whoami)                         # status = the command's
#   runc_cleanup                                    # at exit: anything left over
#
# Each container gets cgroupsPath "/secretd-test/<id>" (Docker's cgroupfs
# shape), where <id> is $RUNC_CID if set, else sha256(NAME), so `runc_cid NAME`
# tells it in advance.  RUNC_CGROUPS_PATH, when set, is used as the path
# instead (e.g. "/system.slice/docker-<id>.scope" or
# "/kubepods/besteffort/pod<uid>/<id>"; runc's cgroupfs driver creates any
# shape, no systemd involved).
#
# MOUNTS are SRC:DST bind mounts (SRC a host file or folder, DST absolute),
# SRC:DST:ro for read-only ones, or tmpfs:DST for a tmpfs of the container's
# own.  The command runs in the foreground with runc's stdin, stdout and
# stderr; runc_run returns its exit status.  RUNC_CAPS, when set, is the
# container's whole capability set (space-separated CAP_ names) instead of
# runc's default three for root and none for other users.

RUNC=${RUNC:-runc}
# A runc state folder of this test's own ($$ is the test's shell even in
# $(...) subshells), so runc_cleanup finds every container it started and
# tests never see each other's.
RUNC_ROOT=${RUNC_ROOT:-/run/secretd-test-runc/$$}

# runc_require: install runc and busybox-static when missing (Debian).
runc_require() {
  local pkgs=()
  command -v "$RUNC" >/dev/null 2>&1 || pkgs+=(runc)
  if [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then
    pkgs+=(busybox-static)
  fi
  [ ${#pkgs[@]} -eq 0 ] && return 0
  echo "# installing ${pkgs[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" >&2 ||
    { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" >&2; }
}

# runc_cid NAME: the container id runc_run NAME will put in its cgroup path.
runc_cid() {
  if [ -n "${RUNC_CID:-}" ]; then
    echo "$RUNC_CID"
  else
    printf '%s' "$1" | sha256sum | cut -c1-64
  fi
}

# runc_cgroup NAME: the cgroup path runc_run NAME will use.
runc_cgroup() {
  if [ -n "${RUNC_CGROUPS_PATH:-}" ]; then
    echo "$RUNC_CGROUPS_PATH"
  else
    echo "/secretd-test/$(runc_cid "$1")"
  fi
}

# Copy host file $2 into rootfs $1 at the same path, following symlinks.
_runc_copy_same_path() {
  mkdir -p "$1$(dirname "$2")"
  cp -L "$2" "$1$2"
}

# runc_rootfs DIR BIN...: a busybox root file system in DIR, with each BIN
# in /usr/local/bin and the shared libraries and loader it needs.
runc_rootfs() {
  local dir=$1 bin lib applet
  shift
  runc_require || return 1
  mkdir -p "$dir"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,proc,sys,dev,tmp,root,run/secretd}
  chmod 1777 "$dir/tmp"
  cp -L /bin/busybox "$dir/bin/busybox"
  # Applets as symlinks where busybox says they live, else in /bin.
  if "$dir/bin/busybox" --list-full >/dev/null 2>&1; then
    while read -r applet; do
      [ -e "$dir/$applet" ] || [ -L "$dir/$applet" ] || ln -s /bin/busybox "$dir/$applet"
    done < <("$dir/bin/busybox" --list-full)
  else
    while read -r applet; do
      [ -e "$dir/bin/$applet" ] || ln -s busybox "$dir/bin/$applet"
    done < <("$dir/bin/busybox" --list)
  fi
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' \
    >"$dir/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
  for bin in "$@"; do
    [ -x "$bin" ] || { echo "runc_rootfs: not an executable: $bin" >&2; return 1; }
    cp -L "$bin" "$dir/usr/local/bin/$(basename "$bin")"
    # Lines are "name => /path (addr)", "/path (addr)" (the loader) or
    # "linux-vdso.so.1 (addr)" (nothing to copy).
    while read -r lib; do
      _runc_copy_same_path "$dir" "$lib" || return 1
    done < <(ldd "$bin" 2>/dev/null | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p')
  done
}

# JSON string literal of $1 (control characters other than newline and tab
# refused).
_runc_json() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\t'/\\t}
  if [[ "$s" == *[$'\001'-$'\037']* ]]; then
    echo "runc_run: control character in [$1]" >&2
    return 1
  fi
  printf '"%s"' "$s"
}

# _runc_config ROOTFS UID GID CGROUPS_PATH MOUNTS... -- CMD...: config.json
_runc_config() {
  local rootfs=$1 uid=$2 gid=$3 cgpath=$4 m src dst opt args="" mounts="" sep="" caps
  shift 4
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    m=$1
    shift
    if [[ "$m" == tmpfs:* ]]; then
      dst=${m#tmpfs:}
      [[ "$dst" == /* ]] || { echo "runc_run: bad mount [$m]" >&2; return 1; }
      dst=$(_runc_json "$dst") || return 1
      mounts+=", {\"destination\": $dst, \"type\": \"tmpfs\", \"source\": \"tmpfs\", \"options\": [\"nosuid\", \"nodev\", \"mode=1777\", \"size=16m\"]}"
      continue
    fi
    src=${m%%:*}
    dst=${m#*:}
    opt=rw
    if [[ "$dst" == *:ro ]]; then
      dst=${dst%:ro}
      opt=ro
    fi
    [[ "$src" == /* && "$dst" == /* ]] || { echo "runc_run: bad mount [$m]" >&2; return 1; }
    src=$(_runc_json "$src") || return 1
    dst=$(_runc_json "$dst") || return 1
    mounts+=", {\"destination\": $dst, \"type\": \"bind\", \"source\": $src, \"options\": [\"rbind\", \"$opt\", \"nosuid\", \"nodev\"]}"
  done
  [ "${1:-}" = -- ] || { echo "runc_run: missing -- before the command" >&2; return 1; }
  shift
  [ $# -gt 0 ] || { echo "runc_run: no command" >&2; return 1; }
  for m in "$@"; do
    args+="$sep$(_runc_json "$m")" || return 1
    sep=", "
  done
  # root in the container keeps runc's default small capability set;
  # anyone else gets none.
  caps='"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"'
  [ "$uid" = 0 ] || caps=''
  # RUNC_CAPS, when set, is the whole set instead (e.g. Docker's
  # "CAP_CHOWN CAP_FOWNER ..." for an init container that sets owners).
  if [ -n "${RUNC_CAPS+set}" ]; then
    caps=""
    sep=""
    for m in $RUNC_CAPS; do
      [[ "$m" =~ ^CAP_[A-Z_]+$ ]] || { echo "runc_run: bad capability [$m]" >&2; return 1; }
      caps+="$sep\"$m\""
      sep=", "
    done
  fi
  cat <<JSON
{
  "ociVersion": "1.0.2",
  "process": {
    "terminal": false,
    "user": {"uid": $uid, "gid": $gid},
    "args": [$args],
    "env": ["PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME=/root"],
    "cwd": "/",
    "capabilities": {"bounding": [$caps], "effective": [$caps], "permitted": [$caps], "ambient": [$caps]},
    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
    "noNewPrivileges": true
  },
  "root": {"path": $(_runc_json "$rootfs"), "readonly": true},
  "hostname": "secretd-test",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777", "size=16m"]}
    $mounts
  ],
  "linux": {
    "cgroupsPath": $(_runc_json "$cgpath"),
    "resources": {"devices": [{"allow": false, "access": "rwm"}]},
    "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
    "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
    "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
  }
}
JSON
}

# runc_run NAME ROOTFS UID GID MOUNTS... -- CMD...: run CMD in a new
# container NAME as UID:GID, in the foreground; returns CMD's exit status
# (runc's own failures give 1 or more with a message on stderr).
runc_run() {
  local name=$1 rootfs=$2 uid=$3 gid=$4 bundle rc=0
  shift 4
  [[ "$name" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || { echo "runc_run: bad name [$name]" >&2; return 1; }
  [[ "$uid" =~ ^[0-9]+$ && "$gid" =~ ^[0-9]+$ ]] || { echo "runc_run: bad uid/gid" >&2; return 1; }
  rootfs=$(cd "$rootfs" && pwd) || return 1
  mkdir -p "$RUNC_ROOT/bundles" || return 1
  bundle=$(mktemp -d "$RUNC_ROOT/bundles/$name.XXXXXX") || return 1
  if ! _runc_config "$rootfs" "$uid" "$gid" "$(runc_cgroup "$name")" "$@" >"$bundle/config.json"; then
    rm -rf "$bundle"
    return 1
  fi
  # A container left by an earlier, killed run of the same test.
  "$RUNC" --root "$RUNC_ROOT" delete -f "$name" >/dev/null 2>&1 || true
  "$RUNC" --root "$RUNC_ROOT" run --bundle "$bundle" "$name" || rc=$?
  "$RUNC" --root "$RUNC_ROOT" delete -f "$name" >/dev/null 2>&1 || true
  rm -rf "$bundle"
  return $rc
}

# runc_cleanup: delete every container runc_run started in this test (also
# ones still running after a kill), their bundles and the empty parent
# cgroups runc leaves behind.  Safe to call more than once.
runc_cleanup() {
  local name root
  if [ -d "$RUNC_ROOT" ]; then
    while read -r name; do
      [ -z "$name" ] || "$RUNC" --root "$RUNC_ROOT" delete -f "$name" >/dev/null 2>&1 || true
    done < <("$RUNC" --root "$RUNC_ROOT" list -q 2>/dev/null)
    rm -rf "$RUNC_ROOT"
    rmdir "$(dirname "$RUNC_ROOT")" 2>/dev/null || true
  fi
  for root in /sys/fs/cgroup /sys/fs/cgroup/*; do
    [ ! -d "$root/secretd-test" ] || rmdir "$root/secretd-test" 2>/dev/null || true
  done
  return 0
}
