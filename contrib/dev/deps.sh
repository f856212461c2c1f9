#!/usr/bin/env bash
# Install what building and testing secretd needs, on Debian 12, only where
# missing (so a second run costs nothing).  Needs root, or sudo.
set -euo pipefail

packages=(
  build-essential cmake pkg-config clang libclang-rt-14-dev
  libsodium-dev libsqlite3-dev libuv1-dev libcap-ng-dev libcmocka-dev
  runc busybox-static util-linux python3 python3-yaml file sqlite3 procps
  systemd groff-base man-db strace
  mmdebstrap
  podman docker.io docker-compose prometheus curl uidmap podman-compose containernetworking-plugins
  etcd-server etcd-client libcurl4-openssl-dev libjansson-dev openssl
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
