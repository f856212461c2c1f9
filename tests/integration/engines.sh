# Real container engines for integration tests: Podman and Docker from
# Debian's packages, each with state of the test's own under $T, images built
# locally (no registry is reachable), no network.  A library to `source`
# after lib.sh.
#
#   source "$(dirname "$TESTLIB")/engines.sh"
#   engines_rootfs_tar "$T/busybox.tar"            # busybox-static, nothing else
#   podman_setup  || exit 0                        # "SKIP ..." printed when it cannot run
#   docker_setup  || exit 0                        # starts dockerd, stopped at exit
#
# After podman_setup, plain `podman` (and podman-compose) use $T/podman:
# CONTAINERS_CONF and CONTAINERS_STORAGE_CONF are exported.  After
# docker_setup, plain `docker` is Debian's client (first in PATH) talking to
# the test's dockerd through DOCKER_HOST.

ENGINES_BIN="$T/engine-bin"
# What the registry's busybox image sets; an imported tarball has no Env.
ENGINES_IMAGE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p "$ENGINES_BIN"
export PATH="$ENGINES_BIN:$PATH"

# engines_install PKG...: install missing Debian packages (the CI image may
# lack them; contrib/dev/deps.sh lists them too).
engines_install() {
  local p missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "# installing ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
    { apt-get update -q >&2 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }
}

# engines_rootfs DIR [BIN...]: a busybox-static root file system, each BIN
# in /usr/local/bin (static binaries only: no libraries are copied).
engines_rootfs() {
  local dir=$1 applet bin
  shift
  mkdir -p "$dir"/{bin,usr/local/bin,etc,proc,sys,dev,tmp,root,run/secretd,secrets}
  chmod 0755 "$dir"
  chmod 1777 "$dir/tmp"
  cp -L /bin/busybox "$dir/bin/busybox"
  while read -r applet; do
    [ -e "$dir/bin/$applet" ] || ln -s busybox "$dir/bin/$applet"
  done < <("$dir/bin/busybox" --list)
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$dir/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
  for bin in "$@"; do
    cp -L "$bin" "$dir/usr/local/bin/$(basename "$bin")"
  done
}

# engines_rootfs_tar TAR [BIN...]: the same, as a tarball for `import`.
engines_rootfs_tar() {
  local tar=$1 dir
  shift
  dir=$(mktemp -d "$T/rootfs.XXXXXX")
  engines_rootfs "$dir" "$@"
  tar -C "$dir" -cf "$tar" . || return 1
  rm -rf "$dir"
}

# engines_context DIR: a build context as contrib/docker/Dockerfile.secretctl
# expects it (the static secretctl at its root, as build-static/client has it).
engines_context() {
  mkdir -p "$1"
  cp "$SECRETCTL_STATIC" "$1/secretctl"
  chmod 0755 "$1/secretctl"
}

# engines_skip REASON: say why the engine cannot run here, and skip.
engines_skip() {
  echo "SKIP $TEST_NAME: $*"
  return 1
}

# ---- Podman ------------------------------------------------------------
PODMAN_DIR="$T/podman"

podman_setup() {
  [ "$(id -u)" = 0 ] || { engines_skip "needs root"; return 1; }
  engines_install podman runc busybox-static || { engines_skip "podman cannot be installed"; return 1; }
  mkdir -p "$PODMAN_DIR"/{root,runroot,tmp}
  # runc, not crun: crun refuses hybrid cgroup hosts.  cgroupfs unless
  # systemd runs the machine.  No network: the CI has no netavark/CNI and
  # secretctl talks to a Unix socket only.
  local manager=cgroupfs ulimits=""
  [ -d /run/systemd/system ] && manager=systemd
  # A runner without CAP_SYS_RESOURCE cannot raise RLIMIT_NOFILE/NPROC to
  # Podman's defaults (1048576): ask for what the hard limits allow.
  local eff
  eff=$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status)
  if (( (0x$eff >> 24 & 1) == 0 )); then  # CAP_SYS_RESOURCE is bit 24
    local nofile nproc
    nofile=$(ulimit -Hn)
    nproc=$(ulimit -Hu)
    [ "$nofile" = unlimited ] && nofile=1048576
    [ "$nproc" = unlimited ] && nproc=1048576
    # conmon lowers its own RLIMIT_NPROC to 32768 when it cannot raise it
    # (seen with Podman 4.3), and the container inherits through it.
    [ "$nproc" -gt 32768 ] && nproc=32768
    ulimits="default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]"
  fi
  cat >"$PODMAN_DIR/containers.conf" <<EOF
[containers]
netns = "none"
$ulimits
[engine]
cgroup_manager = "$manager"
runtime = "runc"
events_logger = "file"
events_logfile_path = "$PODMAN_DIR/events.log"
tmp_dir = "$PODMAN_DIR/tmp"
EOF
  cat >"$PODMAN_DIR/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$PODMAN_DIR/root"
runroot = "$PODMAN_DIR/runroot"
EOF
  export CONTAINERS_CONF="$PODMAN_DIR/containers.conf"
  export CONTAINERS_STORAGE_CONF="$PODMAN_DIR/storage.conf"
  at_exit podman_teardown
  local out
  out=$(podman run --rm --pull never --entrypoint /bin/true "$(podman_base_image)" 2>&1) ||
    { engines_skip "podman cannot run a container here: $out"; return 1; }
  note "podman $(podman version --format '{{.Client.Version}}'), cgroup manager $manager, runc"
}

# podman_base_image: busybox-static imported once (also tagged busybox:1.36
# for Dockerfile.secretctl-busybox's FROM).
podman_base_image() {
  if ! podman image exists docker.io/library/busybox:1.36; then
    [ -f "$T/busybox.tar" ] || engines_rootfs_tar "$T/busybox.tar" >&2
    podman import --quiet --change "ENV PATH=$ENGINES_IMAGE_PATH" --change 'CMD ["sh"]' \
      "$T/busybox.tar" docker.io/library/busybox:1.36 >/dev/null
  fi
  echo docker.io/library/busybox:1.36
}

podman_teardown() {
  [ -n "${CONTAINERS_CONF:-}" ] || return 0
  podman rm -a -f -t 0 >/dev/null 2>&1 || true
  podman volume rm -a -f >/dev/null 2>&1 || true
  podman system reset -f >/dev/null 2>&1 || true
  # Anything still mounted under the test's storage (overlay, shm).
  grep -F " $PODMAN_DIR/" /proc/self/mounts | cut -d' ' -f2 | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

# ---- Docker ------------------------------------------------------------
DOCKER_DIR="$T/docker"
DOCKERD_PID=""

docker_setup() {
  [ "$(id -u)" = 0 ] || { engines_skip "needs root"; return 1; }
  engines_install docker.io runc busybox-static || { engines_skip "docker.io cannot be installed"; return 1; }
  # Debian's client, not whatever else is first in PATH.
  ln -sf /usr/bin/docker "$ENGINES_BIN/docker"
  mkdir -p "$DOCKER_DIR"/{data,exec}
  export DOCKER_HOST="unix://$DOCKER_DIR/docker.sock"
  # Own data, exec and pid paths; no iptables, no docker0 bridge: nothing of
  # the host's network is touched.
  dockerd --iptables=false --ip-masq=false --bridge=none --storage-driver vfs \
    --data-root "$DOCKER_DIR/data" --exec-root "$DOCKER_DIR/exec" \
    --pidfile "$DOCKER_DIR/docker.pid" -H "$DOCKER_HOST" \
    >"$DOCKER_DIR/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  at_exit docker_teardown
  local i
  for i in $(seq 1 300); do
    docker version >/dev/null 2>&1 && break
    kill -0 "$DOCKERD_PID" 2>/dev/null ||
      { engines_skip "dockerd exited: $(tail -n 3 "$DOCKER_DIR/dockerd.log")"; return 1; }
    sleep 0.1
  done
  docker version >/dev/null 2>&1 || { engines_skip "dockerd did not answer in 30 s"; return 1; }
  local out
  out=$(docker run --rm --entrypoint /bin/true "$(docker_base_image)" 2>&1) ||
    { engines_skip "docker cannot run a container here: $out"; return 1; }
  note "dockerd $(docker version --format '{{.Server.Version}}'), cgroup driver $(docker info --format '{{.CgroupDriver}}')"
}

docker_base_image() {
  if ! docker image inspect busybox:1.36 >/dev/null 2>&1; then
    [ -f "$T/busybox.tar" ] || engines_rootfs_tar "$T/busybox.tar" >&2
    docker import --change "ENV PATH=$ENGINES_IMAGE_PATH" --change 'CMD ["sh"]' \
      "$T/busybox.tar" busybox:1.36 >/dev/null
  fi
  echo busybox:1.36
}

docker_teardown() {
  [ -n "$DOCKERD_PID" ] || return 0
  docker ps -aq 2>/dev/null | xargs -r docker rm -f >/dev/null 2>&1 || true
  kill -TERM "$DOCKERD_PID" 2>/dev/null || true
  local i
  for i in $(seq 1 150); do
    kill -0 "$DOCKERD_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$DOCKERD_PID" 2>/dev/null || true
  wait "$DOCKERD_PID" 2>/dev/null || true
  DOCKERD_PID=""
  grep -F " $DOCKER_DIR/" /proc/self/mounts | cut -d' ' -f2 | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
}
