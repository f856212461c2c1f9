# Helpers to run a command inside a cgroup made under /sys/fs/cgroup with a
# runtime-shaped path, on pure cgroup v2, hybrid and v1 hosts alike.
# Sourced after lib.sh.

# The hierarchies a test cgroup is made in: on v2 the one tree; on hybrid and
# v1 hosts the name=systemd tree (whose line the broker reads) and the
# unified tree when mounted, so the caller's lines agree.
cgroup_roots() {
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    echo /sys/fs/cgroup
    return
  fi
  [ -d /sys/fs/cgroup/systemd ] && echo /sys/fs/cgroup/systemd
  [ -f /sys/fs/cgroup/unified/cgroup.procs ] && echo /sys/fs/cgroup/unified
  return 0
}

CGROUP_MADE=()

# make_cgroup PATH: create PATH (starting with /) in every root; remembered for cleanup.
make_cgroup() {
  local root
  for root in $(cgroup_roots); do
    mkdir -p "$root$1"
    CGROUP_MADE+=("$root$1")
  done
}

remove_cgroups() {
  local d i
  for ((i = ${#CGROUP_MADE[@]} - 1; i >= 0; i--)); do
    d=${CGROUP_MADE[$i]}
    # Remove the leaf and any parents we made that are now empty.
    while [ -d "$d" ] && [[ "$d" == /sys/fs/cgroup/* ]] && rmdir "$d" 2>/dev/null; do
      d=$(dirname "$d")
    done
  done
}

# in_cgroup PATH CMD...: run CMD with its process moved into PATH first.
in_cgroup() {
  local path=$1
  shift
  make_cgroup "$path"
  local procs=()
  local root
  for root in $(cgroup_roots); do procs+=("$root$path/cgroup.procs"); done
  sh -c 'for f in "$@"; do [ "$f" = -- ] && break; echo $$ > "$f" || exit 97; done
         while [ "$1" != -- ]; do shift; done; shift; exec "$@"' sh "${procs[@]}" -- "$@"
}

random_hex() { head -c "$(($1 / 2))" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
random_uuid() {
  local h
  h=$(random_hex 32)
  echo "${h:0:8}-${h:8:4}-${h:12:4}-${h:16:4}-${h:20:12}"
}

# whoami_field KEY: from the whoami output in $OUT.
whoami_field() { sed -n "s/^$1=//p" <<<"$OUT"; }
