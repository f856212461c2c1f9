#!/bin/sh
# secretd with Podman, step by step.  Run as root in a login session on a host
# where secretd.service serves /run/secretd/secretd.sock and
# /etc/secretd/policy.conf is contrib/podman/policy.conf; the images come from
# "podman build" of contrib/docker/Dockerfile.secretctl and
# Dockerfile.secretctl-busybox, tagged localhost/secretctl:0.1 and
# localhost/secretctl-busybox:0.1.  Every step prints
# what it shows; any failure stops the script with a non-zero status.
#
# SECRETD_DIR (default /run/secretd) is the socket's folder on the host;
# WEB_SECRETS (default /run/secretd-apps/web) is step 3's folder, which must
# be on tmpfs (/run is, on systemd hosts).
set -eu

# Every container mounts the socket's folder, read-only.  Not the socket
# file: a restarted broker makes a new socket, which a bind mount of the old
# file would never see.  Connecting works through a read-only mount, and the
# container cannot replace the socket with one of its own.  On SELinux hosts
# also give the client containers --security-opt label=disable (or a policy
# module allowing container_t to connect to the socket); never relabel
# /run/secretd with :z or :Z.
SECRETD_DIR=${SECRETD_DIR:-/run/secretd}
SECRETD_MOUNT=$SECRETD_DIR:/run/secretd:ro
export SECRETD_SOCKET="${SECRETD_SOCKET:-$SECRETD_DIR/secretd.sock}"

# 1. By uid: containers run as 10002 read apps/web/*.
printf '%s' 'db-password-for-the-demo' | secretctl put apps/web/db-password
podman run --rm --user 10002:10002 -v "$SECRETD_MOUNT" localhost/secretctl:0.1 get apps/web/db-password
echo

# 2. By container: create the container, store its secret under its id, start
#    it.  Inside, "secretctl whoami" tells the container its own full id.
cid=$(podman create --user 10002:10002 -v "$SECRETD_MOUNT" localhost/secretctl-busybox:0.1 \
    sh -c 'id=$(secretctl whoami | sed -n "s/^container=//p")
           secretctl get "containers/$id/api-token"')
printf '%s' 'api-token-for-the-demo' | secretctl put "containers/$cid/api-token"
podman start --attach "$cid"
echo
podman rm "$cid" >/dev/null
secretctl rm "containers/$cid/api-token"

# 3. Init container: inject writes the app's secrets into a folder on the
#    host's tmpfs, which the app then mounts read-only and never talks to
#    the broker.  Not a tmpfs *volume*: the engine mounts a fresh, empty
#    tmpfs for such a volume whenever no running container holds it, so
#    what inject wrote would be gone when the app starts.
WEB_SECRETS=${WEB_SECRETS:-/run/secretd-apps/web}
install -d -m 0700 -o 10002 -g 10002 "$WEB_SECRETS"
podman run --rm --user 10002:10002 -v "$SECRETD_MOUNT" -v "$WEB_SECRETS:/secrets" \
    localhost/secretctl:0.1 inject --dir /secrets apps/web/db-password=db-password
podman run --rm --user 10002:10002 -v "$WEB_SECRETS:/secrets:ro" localhost/secretctl-busybox:0.1 \
    sh -c 'test -s /secrets/db-password && echo "web read: $(cat /secrets/db-password)"'
rm -rf "$WEB_SECRETS"

# 4. What the broker sees of a container: the way to write a rule for it.
podman run --rm --user 10002:10002 -v "$SECRETD_MOUNT" localhost/secretctl:0.1 whoami

# 5. Another uid is denied (exit status 4).
if podman run --rm --user 10003:10003 -v "$SECRETD_MOUNT" localhost/secretctl:0.1 get apps/web/db-password; then
    echo "unexpected: uid 10003 read apps/web/db-password" >&2
    exit 1
fi
echo "uid 10003 was denied, as it should be"

# 6. Rootless (cgroup v2 and a systemd user session only): the same commands
#    as an ordinary user (uid 1000 here) reach the same socket; their
#    containers match the users/1000/** rule of policy.conf:
#      podman run --rm -v /run/secretd:/run/secretd:ro \
#          localhost/secretctl:0.1 get users/1000/token
