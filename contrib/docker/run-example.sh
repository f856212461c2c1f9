#!/bin/sh
# secretd with Docker, step by step.  Run as root in a login session on a host
# where secretd.service serves /run/secretd/secretd.sock and
# /etc/secretd/policy.conf is contrib/docker/policy.conf; the images come from
# Dockerfile.secretctl and Dockerfile.secretctl-busybox.
set -eu

# Every container mounts the socket's folder, read-only.  Not the socket
# file: a restarted broker makes a new socket, which a bind mount of the old
# file would never see.  Connecting works through a read-only mount, and the
# container cannot replace the socket with one of its own.
SECRETD_MOUNT=/run/secretd:/run/secretd:ro

# 1. By uid: containers run as 10002 read apps/web/*.
printf '%s' 'db-password-for-the-demo' | secretctl put apps/web/db-password
docker run --rm --user 10002:10002 -v "$SECRETD_MOUNT" secretctl:0.1 get apps/web/db-password
echo

# 2. By container: create the container, store its secret under its id, start
#    it.  Inside, "secretctl whoami" tells the container its own full id.
cid=$(docker create --user 10002:10002 -v "$SECRETD_MOUNT" secretctl-busybox:0.1 \
    sh -c 'id=$(secretctl whoami | sed -n "s/^container=//p")
           secretctl get "containers/$id/api-token"')
printf '%s' 'api-token-for-the-demo' | secretctl put "containers/$cid/api-token"
docker start --attach "$cid"
echo
docker rm "$cid" >/dev/null
secretctl rm "containers/$cid/api-token"

# 3. What the broker sees of a container: the way to write a rule for it.
docker run --rm --user 10002:10002 -v "$SECRETD_MOUNT" secretctl:0.1 whoami

# 4. Another container is denied (exit status 4).
if docker run --rm --user 10003:10003 -v "$SECRETD_MOUNT" secretctl:0.1 get apps/web/db-password; then
    echo "unexpected: uid 10003 read apps/web/db-password" >&2
    exit 1
fi
