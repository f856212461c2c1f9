#!/bin/sh
# secretd with Podman, step by step.  Run as root in a login session on a host
# where secretd.service serves /run/secretd/secretd.sock and
# /etc/secretd/policy.conf is contrib/podman/policy.conf; build the images
# with "podman build" from contrib/docker/Dockerfile.secretctl and
# Dockerfile.secretctl-busybox, tagged localhost/secretctl:0.1 and
# localhost/secretctl-busybox:0.1.
set -eu

# The socket's folder, read-only (not the socket file: a restarted broker
# makes a new socket).  On SELinux hosts also give the client containers
# --security-opt label=disable (or a policy module allowing container_t to
# connect to the socket); never relabel /run/secretd with :z or :Z.
SECRETD_MOUNT=/run/secretd:/run/secretd:ro

# 1. By uid (rootful).
printf '%s' 'db-password-for-the-demo' | secretctl put apps/web/db-password
podman run --rm --user 10002:10002 -v "$SECRETD_MOUNT" localhost/secretctl:0.1 get apps/web/db-password
echo

# 2. By container id (rootful): create, store under the id, start.
cid=$(podman create --user 10002:10002 -v "$SECRETD_MOUNT" localhost/secretctl-busybox:0.1 \
    sh -c 'id=$(secretctl whoami | sed -n "s/^container=//p")
           secretctl get "containers/$id/api-token"')
printf '%s' 'api-token-for-the-demo' | secretctl put "containers/$cid/api-token"
podman start --attach "$cid"
echo
podman rm "$cid" >/dev/null
secretctl rm "containers/$cid/api-token"

# 3. Init-container pattern without compose: inject into a tmpfs volume that
#    the app then mounts read-only.
podman volume create --opt type=tmpfs --opt device=tmpfs \
    --opt o=size=1m,mode=0700,uid=10002,gid=10002 web-secrets >/dev/null
podman run --rm --user 10002:10002 -v "$SECRETD_MOUNT" -v web-secrets:/secrets \
    localhost/secretctl:0.1 inject --dir /secrets apps/web/db-password=db-password
podman run --rm --user 10002:10002 -v web-secrets:/secrets:ro \
    localhost/secretctl-busybox:0.1 ls -l /secrets
podman volume rm web-secrets >/dev/null

# 4. Rootless: the same commands as an ordinary user (uid 1000 here) reach
#    the same socket; their containers match the users/1000/** rule:
#      podman run --rm -v /run/secretd:/run/secretd:ro \
#          localhost/secretctl:0.1 get users/1000/token
