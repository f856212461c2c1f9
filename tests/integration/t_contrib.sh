#!/usr/bin/env bash
# The deployment material in contrib/ is usable as shipped: the systemd unit
# passes systemd-analyze verify, secretd.conf is accepted by the real broker
# (which finds its key through $CREDENTIALS_DIRECTORY as the unit arranges),
# every policy and every rule quoted in a comment passes check-policy and
# decides the example requests as documented, the YAML parses, clients reach
# the broker through a read-only mount of the socket's folder, the man pages
# render without warnings, and the README's Deployment section quotes the files exactly.
set -eu
source "$TESTLIB"
: "${SOURCE_DIR:?SOURCE_DIR must name the repository root}"
C="$SOURCE_DIR/contrib"

need_tool() { # need_tool COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >&2 || true
  command -v "$1" >/dev/null 2>&1 || fail "$1 is missing (Debian package $2)"
}

# ---- policies -------------------------------------------------------------
# check_policy FILE: a copy in $T (mode 0644, ours) through check-policy.
check_policy() {
  local copy="$T/policy.$RANDOM.conf"
  cp "$1" "$copy"
  chmod 0644 "$copy"
  expect_status 0 "$SECRETD" check-policy "$copy"
  assert_contains "$OUT" ": OK," "check-policy $1"
  POLICY_COPY=$copy
}

# decide WANT POLICY SELECTORS... PERM NAME: check-policy --as says WANT.
decide() {
  local want=$1 policy=$2 code=0
  shift 2
  [ "$want" = permit ] || code=1
  expect_status "$code" "$SECRETD" check-policy "$policy" --as "$@"
  assert_contains "$OUT" "$want" "check-policy --as $*"
}

HEX64=3f2a9c51e0b743fa87d67d5cb3dc609b8f6ecb635f155c4acf6b40f3affb8644
OTHER64=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
POD=1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901
KPOD=/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${POD//-/_}.slice/cri-containerd-$HEX64.scope
ROOT_SESSION=/user.slice/user-0.slice/session-1.scope

note "every policy.conf in contrib/ parses"
POLICIES=$(find "$C" -name policy.conf | sort)
[ -n "$POLICIES" ] || fail "no policy.conf under contrib/"
for p in $POLICIES; do check_policy "$p"; done

note "systemd policy: root in a login session administers; root in a hostPID container does not"
check_policy "$C/systemd/policy.conf"
decide permit "$POLICY_COPY" uid=0 host cgroup=$ROOT_SESSION write app/x
decide deny "$POLICY_COPY" uid=0 host cgroup=$KPOD write app/x
decide permit "$POLICY_COPY" uid=0 host cgroup=$ROOT_SESSION read app/backup/signing-key
decide deny "$POLICY_COPY" uid=34 cgroup=/system.slice/backup.service read app/backup/signing-key
decide permit "$POLICY_COPY" uid=34 cgroup=/system.slice/backup.service read app/backup/db

note "kubernetes policy: a pod reads its own UID's secrets, not another pod's"
check_policy "$C/kubernetes/policy.conf"
decide permit "$POLICY_COPY" uid=10003 cgroup=$KPOD read pods/$POD/api-token
decide deny "$POLICY_COPY" uid=10003 cgroup=$KPOD read pods/aaaaaaaa-5f60-7182-93a4-b5c6d7e8f901/api-token
decide permit "$POLICY_COPY" uid=10003 cgroup=$KPOD read containers/$HEX64/x
decide permit "$POLICY_COPY" uid=10002 cgroup=$KPOD read apps/web/db-password
decide deny "$POLICY_COPY" uid=10003 cgroup=$KPOD read apps/web/db-password
decide deny "$POLICY_COPY" uid=0 host cgroup=$KPOD read apps/web/db-password
decide permit "$POLICY_COPY" uid=0 host cgroup=$ROOT_SESSION write apps/web/db-password
note "kubernetes policy: a pod-shaped cgroup in a user's delegated subtree is not a pod"
decide deny "$POLICY_COPY" uid=1000 \
  cgroup=/user.slice/user-1000.slice/user@1000.service/kubepods-pod${POD//-/_}.slice/x read pods/$POD/api-token

note "docker policy: a container reads under its own id; a forged cgroup under /user.slice does not"
check_policy "$C/docker/policy.conf"
decide permit "$POLICY_COPY" uid=10002 cgroup=/system.slice/docker-$HEX64.scope read containers/$HEX64/api-token
decide deny "$POLICY_COPY" uid=10002 cgroup=/system.slice/docker-$HEX64.scope read containers/$OTHER64/api-token
decide deny "$POLICY_COPY" uid=1000 \
  cgroup=/user.slice/user-1000.slice/user@1000.service/app.slice/docker-$HEX64.scope read containers/$HEX64/api-token
decide permit "$POLICY_COPY" uid=10002 cgroup=/system.slice/docker-$OTHER64.scope read apps/web/db-password
decide deny "$POLICY_COPY" uid=10003 cgroup=/system.slice/docker-$OTHER64.scope read apps/web/db-password
decide permit "$POLICY_COPY" uid=0 cgroup=/system.slice/docker-$HEX64.scope read apps/legacy/x
note "docker policy: both cgroup drivers, exact depth"
decide permit "$POLICY_COPY" uid=10002 cgroup=/docker/$HEX64 read containers/$HEX64/api-token
decide permit "$POLICY_COPY" uid=10002 cgroup=/docker/$OTHER64 read apps/web/db-password
decide deny "$POLICY_COPY" uid=10002 cgroup=/docker/$HEX64/sub read containers/$HEX64/api-token
decide deny "$POLICY_COPY" uid=10002 cgroup=/system.slice/docker-$HEX64.scope/sub read apps/web/db-password
decide deny "$POLICY_COPY" uid=10003 cgroup=/docker/$OTHER64 read apps/web/db-password

note "podman policy: rootless containers get their user's secrets only"
check_policy "$C/podman/policy.conf"
RL=/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-$HEX64.scope
decide permit "$POLICY_COPY" uid=100999 cgroup=$RL read users/1000/token
decide deny "$POLICY_COPY" uid=100999 cgroup=$RL read containers/$HEX64/token
decide permit "$POLICY_COPY" uid=10002 cgroup=/machine.slice/libpod-$HEX64.scope read containers/$HEX64/token
note "podman policy: systemd (runc and crun) and cgroupfs managers, exact depth"
for cg in /machine.slice/libpod-$HEX64.scope /machine.slice/libpod-$HEX64.scope/container /libpod_parent/libpod-$HEX64; do
  decide permit "$POLICY_COPY" uid=10002 cgroup=$cg read containers/$HEX64/token
  decide permit "$POLICY_COPY" uid=10002 cgroup=$cg read apps/web/x
  decide deny "$POLICY_COPY" uid=10003 cgroup=$cg read apps/web/x
  decide deny "$POLICY_COPY" uid=10002 cgroup=$cg/sub read apps/web/x
done
decide deny "$POLICY_COPY" uid=10002 cgroup=/machine.slice/libpod-conmon-$HEX64.scope/x read apps/web/x

note "rules quoted in comments are rules of the policy.conf beside them"
norm() { sed -E 's/^#[[:space:]]*//; s/[[:space:]]+/ /g; s/ $//'; }
for dir in systemd kubernetes docker podman; do
  RULES=$(grep -Ev '^[[:space:]]*(#|$)' "$C/$dir/policy.conf" | norm)
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    rule=$(norm <<<"$line")
    grep -qxF -- "$rule" <<<"$RULES" || fail "contrib/$dir: comment quotes [$rule], not in policy.conf"
  done < <(grep -hE '^#[[:space:]]+(permit|deny)[[:space:]]' "$C/$dir"/* 2>/dev/null || true)
done

# ---- man pages ----------------------------------------------------------
need_tool groff groff-base
need_tool man man-db
note "man pages render without warnings"
for page in "$C/man/secretd.8" "$C/man/secretctl.1" "$C/man/secretd-policy.5"; do
  [ -f "$page" ] || fail "missing $page"
  expect_status 0 groff -man -ww -z "$page"
  assert_eq "$ERR" "" "groff warnings for $page"
  expect_status 0 env MANWIDTH=80 man --warnings -l "$page"
  assert_eq "$ERR" "" "man warnings for $page"
  sections=(NAME SYNOPSIS DESCRIPTION FILES EXAMPLES "SEE ALSO")
  # A file format (section 5) has no options or exit status.
  case "$page" in *.5) ;; *) sections+=(OPTIONS "EXIT STATUS") ;; esac
  for section in "${sections[@]}"; do
    grep -q "^\.SH \"\?$section\"\?\$" "$page" || fail "$page has no $section section"
  done
done
note "the policy examples of secretd-policy(5) parse"
man -l "$C/man/secretd-policy.5" 2>/dev/null | sed -n '/^EXAMPLES/,/^       Which rule/p' | sed '1d;$d' |
  sed -E 's/^ {7}//; s/group=developers/group=root/' >"$T/man-example.conf"
check_policy "$T/man-example.conf"
assert_contains "$OUT" "OK, 6 rules" "secretd-policy(5) examples"

# ---- systemd ------------------------------------------------------------
note "secretd.service: the hardening the broker relies on, and nothing that blinds it"
UNIT="$C/systemd/secretd.service"
for want in 'User=secretd' 'NoNewPrivileges=yes' 'CapabilityBoundingSet=' 'ProtectSystem=strict' \
  'PrivateNetwork=yes' 'RestrictAddressFamilies=AF_UNIX' 'SystemCallFilter=@system-service' \
  'RuntimeDirectoryMode=0755' 'RuntimeDirectoryPreserve=yes' 'StateDirectory=secretd' \
  'LogsDirectory=secretd' 'UMask=0077' \
  'LoadCredentialEncrypted=master.key:/etc/credstore.encrypted/secretd.master.key'; do
  grep -qxF -- "$want" "$UNIT" || fail "secretd.service lacks [$want]"
done
for banned in ProtectProc ProcSubset PrivateUsers PrivatePIDs; do
  if grep -Eq "^$banned=" "$UNIT"; then fail "secretd.service sets $banned="; fi
done

if command -v systemd-analyze >/dev/null 2>&1; then
  note "systemd-analyze verify secretd.service"
  mkdir -p "$T/unit" "$T/bin" "$T/man/man1" "$T/man/man5" "$T/man/man8"
  cp "$SECRETD" "$T/bin/secretd"
  cp "$C/man/secretd.8" "$T/man/man8/"
  cp "$C/man/secretctl.1" "$T/man/man1/"
  cp "$C/man/secretd-policy.5" "$T/man/man5/"
  sed "s|^ExecStart=/usr/local/sbin/secretd |ExecStart=$T/bin/secretd |" "$UNIT" >"$T/unit/secretd.service"
  grep -q "^ExecStart=$T/bin/secretd " "$T/unit/secretd.service" || fail "ExecStart not rewritten"
  rc=0
  MANPATH="$T/man" systemd-analyze verify "$T/unit/secretd.service" >"$T/verify.out" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ] || grep -q 'secretd' "$T/verify.out"; then
    fail "systemd-analyze verify (exit $rc): $(cat "$T/verify.out")"
  fi
else
  echo "SKIP: systemd-analyze is not installed; secretd.service not verified"
fi

if command -v systemd-sysusers >/dev/null 2>&1; then
  note "secretd.sysusers creates the user secretd"
  mkdir -p "$T/sysroot/etc"
  expect_status 0 systemd-sysusers --root="$T/sysroot" "$C/systemd/secretd.sysusers"
  grep -q '^secretd:' "$T/sysroot/etc/passwd" || fail "sysusers made no secretd user: $ERR"
fi

note "secretd.conf is accepted as shipped; the key comes from \$CREDENTIALS_DIRECTORY"
mkdir -p "$T/creds"
"$SECRETD" init --vault "$T/vault.db" --key-file "$T/creds/master.key" >/dev/null
grep -Eq '^[[:space:]]*key-file[[:space:]]*=' "$C/systemd/secretd.conf" &&
  fail "secretd.conf sets key-file; the unit relies on \$CREDENTIALS_DIRECTORY"
printf 'permit all ** uid=0 host\n' | write_policy
mkdir -p "$T/run"
chmod 0755 "$T/run"
SOCK="$T/run/secretd.sock"
CREDENTIALS_DIRECTORY="$T/creds" "$SECRETD" run --config "$C/systemd/secretd.conf" \
  --socket "$SOCK" --vault "$T/vault.db" --policy "$T/policy.conf" \
  --audit-log "$T/audit.log" >>"$T/broker.log" 2>&1 &
BROKER_PID=$!
for _ in $(seq 1 100); do
  "$CTL" -s "$SOCK" ping >/dev/null 2>&1 && break
  kill -0 "$BROKER_PID" 2>/dev/null || fail "broker with secretd.conf exited: $(tail -n 3 "$T/broker.log")"
  sleep 0.05
done
expect_status 0 "$CTL" -s "$SOCK" ping
printf 'from-contrib' | "$CTL" -s "$SOCK" put contrib/check >/dev/null

note "a client reaches the broker through a read-only bind mount of the socket's folder"
mkdir -p "$T/ro"
expect_status 0 unshare -m sh -c '
  mount --make-rprivate / &&
  mount --bind "$1" "$2" && mount -o remount,bind,ro "$1" "$2" &&
  if touch "$2/probe" 2>/dev/null; then echo "mount is writable"; exit 9; fi &&
  "$3" -s "$2/secretd.sock" get contrib/check' sh "$T/run" "$T/ro" "$CTL"
assert_eq "$OUT" "from-contrib" "get through the read-only mount"
stop_broker

# ---- containers ---------------------------------------------------------
note "examples mount the socket's folder (read-only), never the socket file"
if grep -rnE '(-v|hostPath|source|path:)[^#]*secretd\.sock' "$C/docker" "$C/podman" "$C/kubernetes"; then
  fail "an example mounts the socket file instead of its folder"
fi
for f in "$C/docker/run-example.sh" "$C/podman/run-example.sh"; do
  bash -n "$f" || fail "$f: syntax"
  grep -qF 'SECRETD_DIR=${SECRETD_DIR:-/run/secretd}' "$f" || fail "$f: socket folder not /run/secretd by default"
  grep -qF 'SECRETD_MOUNT=$SECRETD_DIR:/run/secretd:ro' "$f" || fail "$f: no read-only folder mount"
done
grep -qF -- '- ${SECRETD_DIR:-/run/secretd}:/run/secretd:ro' "$C/docker/compose.yaml" || fail "compose.yaml: no read-only folder mount"
note "no example relies on a named tmpfs volume (fresh and empty whenever no container holds it)"
if grep -vE '^[[:space:]]*#' "$C/docker/compose.yaml" "$C"/*/run-example.sh | grep -nE 'type[=:] *tmpfs|volume create'; then
  fail "an example injects into a tmpfs volume"
fi
for f in "$C/kubernetes/pod-inject.yaml" "$C/kubernetes/pod-get.yaml"; do
  grep -qF '{ name: secretd, mountPath: /run/secretd, readOnly: true }' "$f" || fail "$f: no read-only folder mount"
done
grep -qF 'medium: Memory' "$C/kubernetes/pod-inject.yaml" || fail "pod-inject.yaml: emptyDir not in memory"
note "the native sidecar example: a one-shot init container, then inject --watch with restartPolicy Always"
python3 - "$C/kubernetes/pod-sidecar.yaml" <<'PY' || fail "pod-sidecar.yaml is not the sidecar the README describes"
import sys, yaml
pod = yaml.safe_load(open(sys.argv[1]))
init, side = pod["spec"]["initContainers"]
assert "restartPolicy" not in init and "--watch" not in init["args"], "first: one-shot"
assert side["restartPolicy"] == "Always" and "--watch" in side["args"], "second: a native sidecar"
for c in (init, side):
    assert {"name": "secretd", "mountPath": "/run/secretd", "readOnly": True} in c["volumeMounts"]
vols = {v["name"]: v for v in pod["spec"]["volumes"]}
assert vols["secrets"]["emptyDir"]["medium"] == "Memory"
app = pod["spec"]["containers"][0]
assert all(m["name"] != "secretd" for m in app["volumeMounts"]), "the app does not mount the socket"
assert all("subPath" not in m for m in app["volumeMounts"]), "no subPath: it never updates"
PY
grep -qxF '      hostPID: true' "$C/kubernetes/secretd-daemonset.yaml" || fail "DaemonSet without hostPID"

note "DaemonSet: node-critical, key from a Secret (not a hostPath), probes on /healthz, no ping"
DS="$C/kubernetes/secretd-daemonset.yaml"
python3 - "$DS" <<'PY' || fail "secretd-daemonset.yaml lacks what the README promises"
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
ds = next(d for d in docs if d["kind"] == "DaemonSet")
spec = ds["spec"]["template"]["spec"]
bad = []
def need(cond, what):
    if not cond:
        bad.append(what)
need(spec.get("priorityClassName") == "system-node-critical", "priorityClassName")
vols = {v["name"]: v for v in spec["volumes"]}
need(vols["master-key"].get("secret", {}).get("secretName") == "secretd-master-key", "key from the Secret")
need(vols["key"].get("emptyDir", {}).get("medium") == "Memory", "key copy in memory")
for v in vols.values():
    if "hostPath" in v:
        need("secretd-key" not in v["hostPath"]["path"] and v["hostPath"]["path"] != "/etc/secretd",
             "no key on a hostPath")
broker = next(c for c in spec["containers"] if c["name"] == "secretd")
args = broker["args"]
need("--metrics-listen" in args, "--metrics-listen")
need(args[args.index("--key-file") + 1] == "/run/secretd-key/master.key", "key-file is the memory copy")
for probe in ("livenessProbe", "readinessProbe"):
    p = broker[probe]
    need(p.get("httpGet", {}).get("path") == "/healthz" and "exec" not in p, probe + " on /healthz")
mounts = {m["name"]: m for c in spec["containers"] for m in c["volumeMounts"]}
need(mounts["key"].get("readOnly") is True, "broker mounts the key read-only")
prep = {m["name"]: m for m in spec["initContainers"][0]["volumeMounts"]}
need(prep["master-key"].get("readOnly") is True, "Secret mounted read-only")
need(any(c["name"] == "audit-rotate" for c in spec["containers"]), "audit-rotate sidecar")
if bad:
    sys.exit("missing: " + ", ".join(bad))
PY

note "fleet overlay: the DaemonSet follows the etcd StatefulSet (kustomize's strategic merge, redone here)"
python3 - "$C/kubernetes" <<'PY' || fail "contrib/kubernetes/fleet/ is not what its comments say"
import os, re, sys, yaml
k = sys.argv[1]
f = os.path.join(k, "fleet")
load = lambda p: [d for d in yaml.safe_load_all(open(p)) if d]
kust = load(f"{f}/kustomization.yaml")[0]
bad = []
def need(cond, what):
    if not cond:
        bad.append(what)
need(set(kust["resources"]) == {"../", "etcd-statefulset.yaml"}, "resources: the base and the StatefulSet")
need([p["path"] for p in kust["patches"]] == ["secretd-daemonset-fleet.yaml"], "one patch")
gen = {g["name"]: g for g in kust["configMapGenerator"]}["secretd-fleet-config"]
need(gen["files"] == ["secretd.conf"] and gen["namespace"] == "secretd", "config map from secretd.conf")
for r in kust["resources"] + [p["path"] for p in kust["patches"]] + gen["files"]:
    need(os.path.exists(os.path.join(f, r)), f"{r} exists")

# Strategic merge as kustomize does it for these fields: containers,
# initContainers, volumes merged by name, volumeMounts by mountPath, env by
# name; lists of scalars (args, command) replaced.
KEYS = {"containers": "name", "initContainers": "name", "volumes": "name",
        "volumeMounts": "mountPath", "env": "name", "ports": "containerPort"}
def merge(base, patch):
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, v in patch.items():
            if key in KEYS and isinstance(v, list) and key in base:
                mk = KEYS[key]
                items = [dict(x) for x in base[key]]
                for pv in v:
                    for i, bv in enumerate(items):
                        if bv.get(mk) == pv.get(mk):
                            items[i] = merge(bv, pv)
                            break
                    else:
                        items.append(pv)
                out[key] = items
            else:
                out[key] = merge(base.get(key), v) if key in base else v
        return out
    return patch
base = next(d for d in load(f"{k}/secretd-daemonset.yaml") if d["kind"] == "DaemonSet")
patch = load(f"{f}/secretd-daemonset-fleet.yaml")[0]
need((patch["kind"], patch["metadata"]["name"], patch["metadata"]["namespace"]) ==
     ("DaemonSet", base["metadata"]["name"], base["metadata"]["namespace"]), "the patch names the base's DaemonSet")
ds = merge(base, patch)
spec = ds["spec"]["template"]["spec"]
bspec = base["spec"]["template"]["spec"]
need([c["name"] for c in spec["containers"]] == [c["name"] for c in bspec["containers"]], "same containers")
need(spec.get("hostPID") is True and spec.get("priorityClassName") == "system-node-critical", "base spec kept")

prep = spec["initContainers"][0]
script = prep["command"][2]
bscript = bspec["initContainers"][0]["command"][2]
for line in bscript.splitlines():
    need(line in script.splitlines(), f"prepare keeps the base's line [{line.strip()}]")
for fn in ("cluster.key", "etcd-password"):
    need(f"/etc/secretd-fleet/$f" in script and fn in script, f"prepare copies {fn}")
need('chmod 0400 "/run/secretd-key/$f"' in script and 'chown 10001:10001 "/run/secretd-key/$f"' in script,
     "fleet files mode 0400, the broker's")
pm = {m["name"]: m for m in prep["volumeMounts"]}
need(pm.get("fleet", {}).get("readOnly") is True and pm["fleet"]["mountPath"] == "/etc/secretd-fleet",
     "Secret secretd-fleet mounted read-only in prepare")
vols = {v["name"]: v for v in spec["volumes"]}
need(vols["fleet"].get("secret", {}).get("secretName") == "secretd-fleet", "fleet volume is the Secret")
need(vols["fleet"]["secret"].get("defaultMode") == 0o400, "Secret volume mode 0400")
need(vols["config"].get("configMap", {}).get("name") == "secretd-fleet-config", "config volume")
need(vols["key"]["emptyDir"]["medium"] == "Memory", "the key folder is in memory")

broker = next(c for c in spec["containers"] if c["name"] == "secretd")
args = broker["args"]
bargs = next(c for c in bspec["containers"] if c["name"] == "secretd")["args"]
need(args[0] == "run" and all(a in args for a in bargs), "broker keeps the base's arguments")
conf_path = args[args.index("--config") + 1]
bm = {m["name"]: m for m in broker["volumeMounts"]}
need(conf_path == bm["config"]["mountPath"] + "/secretd.conf" and bm["config"].get("readOnly") is True,
     "--config names secretd.conf in the read-only config mount")
keydir = bm["key"]["mountPath"]
need(bm["key"].get("readOnly") is True and "fleet" not in bm, "broker: key folder read-only, no Secret")

conf = {}
for line in open(f"{f}/secretd.conf"):
    line = line.split("#", 1)[0].strip()
    if line:
        key, _, val = line.partition("=")
        conf[key.strip()] = val.strip()
need(conf.get("upstream") == "etcd", "upstream = etcd")
for key in ("cluster-key-file", "etcd-password-file"):
    need(os.path.dirname(conf.get(key, "")) == keydir, f"{key} in the broker's key folder")
need(os.path.basename(conf["cluster-key-file"]) == "cluster.key", "cluster-key-file is the copy")
need(os.path.basename(conf["etcd-password-file"]) == "etcd-password", "etcd-password-file is the copy")

docs = load(f"{f}/etcd-statefulset.yaml")
svc = next(d for d in docs if d["kind"] == "Service")
sts = next(d for d in docs if d["kind"] == "StatefulSet")
need(svc["spec"].get("clusterIP") == "None" and svc["spec"].get("publishNotReadyAddresses") is True,
     "headless Service, names before ready")
need(sts["spec"]["serviceName"] == svc["metadata"]["name"], "StatefulSet's serviceName is the Service")
need(sts["spec"]["replicas"] == 3 and sts["spec"].get("podManagementPolicy") == "Parallel", "3 members, Parallel")
need(svc["spec"]["selector"] == sts["spec"]["template"]["metadata"]["labels"], "Service selects the members")
need(sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data", "a PVC per member")
ns = sts["metadata"]["namespace"]
need(ns == svc["metadata"]["namespace"] == base["metadata"]["namespace"], "one namespace")
name = sts["metadata"]["name"]
dns = [f"{name}-{i}.{svc['metadata']['name']}.{ns}.svc.cluster.local" for i in range(3)]
need(conf.get("etcd-endpoints") == ",".join(f"http://{d}:2379" for d in dns),
     "etcd-endpoints are the three members' DNS names")
ctr = sts["spec"]["template"]["spec"]["containers"][0]
ea = dict(a[2:].split("=", 1) for a in ctr["args"])
need(ea["initial-cluster"] == ",".join(f"{name}-{i}=http://{d}:2380" for i, d in enumerate(dns)),
     "initial-cluster names the same members")
need(ea["name"] == "$(POD_NAME)" and any(e["name"] == "POD_NAME" for e in ctr["env"]), "member name from the pod")
need(ea["data-dir"].startswith(ctr["volumeMounts"][0]["mountPath"] + "/"), "data on the PVC")
if bad:
    sys.exit("fleet: " + "; ".join(bad))
PY

note "the DaemonSet's audit-rotate script, run for real: rotates, signals, the chain verifies"
python3 - "$DS" >"$T/rotate.sh" <<'PY'
import sys, yaml
ds = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "DaemonSet")
c = next(c for c in ds["spec"]["template"]["spec"]["containers"] if c["name"] == "audit-rotate")
print(c["command"][2])
PY
# Test scale: a 4000-byte threshold instead of 100 MiB (more than a fresh
# file's first records, so that it rotates once), a 0.1 s period, this
# test's log folder, and a broker binary of a name of its own, so that the
# script can only ever signal this test's broker (others may be running).
sed -i -e 's|^cd /var/log/secretd|cd "$LOGDIR"|' -e 's/sleep 60/sleep 0.1/' -e 's/104857600/4000/' \
  -e 's/= secretd \]/= sdrotbroker ]/' -e "s/= 10001 \]/= $(id -u) ]/" "$T/rotate.sh"
grep -q 'sdrotbroker' "$T/rotate.sh" && grep -q 'sleep 0.1' "$T/rotate.sh" || fail "rotate script not adapted"
mkdir -p "$T/logs"
cp "$SECRETD" "$T/sdrotbroker"
"$SECRETD" init --vault "$T/rv.db" --key-file "$T/rk.key" >/dev/null
RSOCK="$T/rot.sock"
"$T/sdrotbroker" run --socket "$RSOCK" --vault "$T/rv.db" --key-file "$T/rk.key" \
  --policy "$T/policy.conf" --audit-log "$T/logs/audit.log" >>"$T/broker.log" 2>&1 &
BROKER_PID=$!
wait_for "the broker for rotation" sh -c "'$CTL' -s '$RSOCK' ping >/dev/null"
LOGDIR="$T/logs" sh "$T/rotate.sh" >"$T/rotate.out" 2>&1 &
ROT=$!
at_exit "kill $ROT 2>/dev/null"
for i in $(seq 1 20); do "$CTL" -s "$RSOCK" ping >/dev/null || fail "ping $i"; done
wait_for "a rotation" sh -c "ls '$T/logs' | grep -q '^audit.log\.2'"
wait_for "a new audit.log after SIGHUP" sh -c "'$CTL' -s '$RSOCK' ping >/dev/null && test -s '$T/logs/audit.log'"
# Its line comes just after the signal, which the broker may have acted on first.
wait_for "the script's own line" grep -q "audit-rotate: audit.log\." "$T/rotate.out"
kill "$ROT"
wait "$ROT" 2>/dev/null || true
ROTATED=$(ls "$T/logs" | grep '^audit.log\.2' | sort)
assert_eq "$(wc -l <<<"$ROTATED")" 1 "one rotated file"
# The broker's lock beside the log is not a rotated file: left as it is.
[ -f "$T/logs/audit.log.lock" ] || fail "the rotation took audit.log.lock for a rotated file"
stop_broker
expect_status 0 "$SECRETD" audit-verify --key-file "$T/rk.key" --vault "$T/rv.db" \
  "$T/logs/$ROTATED" "$T/logs/audit.log"

note "YAML: no tabs, and it parses"
YAMLS=$(find "$C" -name '*.yaml' -o -name '*.yml' | sort)
for y in $YAMLS; do
  if grep -nP '\t' "$y"; then fail "$y contains a tab"; fi
done
if python3 -c 'import yaml' 2>/dev/null; then
  for y in $YAMLS; do
    python3 -c 'import sys, yaml; list(yaml.safe_load_all(open(sys.argv[1])))' "$y" || fail "$y does not parse"
  done
elif command -v kubectl >/dev/null 2>&1; then
  # kustomize parses every resource offline, without a cluster.
  note "(no PyYAML: parsing with kubectl kustomize)"
  expect_status 0 kubectl kustomize "$C/kubernetes"
  assert_contains "$OUT" "permit read       pods/\${pod}/**" "the ConfigMap carries policy.conf"
  mkdir -p "$T/kust"
  cp "$C"/kubernetes/pod-*.yaml "$T/kust/"
  printf 'resources:\n' >"$T/kust/kustomization.yaml"
  for y in "$T"/kust/pod-*.yaml; do printf '  - %s\n' "$(basename "$y")" >>"$T/kust/kustomization.yaml"; done
  expect_status 0 kubectl kustomize "$T/kust"
else
  echo "SKIP: neither PyYAML nor kubectl; YAML checked for tabs only"
fi

# ---- README: Deployment ----------------------------------------------------------
note "README Deployment: every code block is quoted exactly from the contrib/ file it names"
python3 - "$SOURCE_DIR" <<'PY' || fail "README quotes drifted from contrib/"
import re, sys
root = sys.argv[1]
text = open(f"{root}/README.md").read()
text = text.split("\n## Deployment\n", 1)[1].split("\n## ", 1)[0]
blocks = re.findall(r"(?:<!-- quoted from (\S+) -->\n)?```[a-z]*\n(.*?)\n```", text, re.S)
if not blocks:
    sys.exit("no code blocks")
bad = 0
for source, body in blocks:
    if not source:
        print("a code block without <!-- quoted from FILE -->:", body[:60], file=sys.stderr)
        bad += 1
    elif body not in open(f"{root}/{source}").read():
        print(f"block not found verbatim in {source}:", body[:60], file=sys.stderr)
        bad += 1
print(f"# {len(blocks)} blocks checked")
sys.exit(1 if bad else 0)
PY

echo "PASS: $TEST_NAME"
