/*
 * Parsing of /proc/<pid>/cgroup: the cgroup path, container id and pod UID.
 *
 * Which line gives the path
 * -------------------------
 * The file has one line a hierarchy, "ID:CONTROLLERS:PATH".
 *  - A file whose only line is the cgroup v2 line "0::PATH" (a pure v2 host):
 *    that PATH.
 *  - Otherwise (a v1 or hybrid host): the PATH of the "name=systemd" line if
 *    there is one, because systemd and every container runtime keep that
 *    tree shaped like the units and containers; else the "0::" line; else the
 *    first controller line.
 *
 * The ids of a path
 * ------------------
 * Walking a path from the root down, a segment may name a container id or
 * a pod UID; in path order they form the path's chain of ids.
 *
 * Container id: a segment that is exactly 64 lowercase hex digits (Docker
 * and containerd with cgroupfs: /docker/<id>, /kubepods/<qos>/pod<uid>/<id>,
 * plain runc: /<id>, /default/<id>), or "<runtime>-<64 hex>" optionally
 * followed by ".scope", where runtime is one of docker, cri-containerd,
 * crio, libpod, libpod-payload (Podman's --cgroups=split), runc, crun,
 * nerdctl.  "crio-conmon-<id>.scope" and "libpod-conmon-<id>.scope" hold
 * the runtime's monitor, not the container, and give no id; nor does an
 * unprefixed "<id>.scope".  crun's "/container" sub-cgroup below a scope is
 * a further segment without an id.
 *
 * Pod UID: a segment "pod<uid>" (cgroupfs driver), "pod<uid>.slice" or
 * "<anything>-pod<uid>.slice" (systemd driver), where <uid> is a UUID,
 * 8-4-4-4-12 lowercase hex digits separated all by '-' or all by '_'
 * (reported with '-'), or the 32 lowercase hex digits kubelet gives static
 * pods (reported as they are).
 *
 * runc's "slice:prefix:name" form, which its cgroupfs driver writes as one
 * literal cgroup name when the kubelet uses the systemd driver and the
 * runtime does not ("kubepods-besteffort-pod<uid>.slice:cri-containerd:<id>",
 * under /, /system.slice/containerd.service, /kuberuntime/containerd,
 * /podruntime.slice ...), names the slice's pod and then the container; the
 * prefix is cri-containerd, cri-o, crio or docker and the slice is empty or
 * ends in ".slice".
 *
 * The caller's ids: the OUTERMOST
 * -------------------------------
 * The container id is the first container id of the chain, and the pod UID
 * the first pod UID that comes before it (a pod below a container is not
 * that container's pod).  A segment created by the host's runtime is the
 * outermost one: a process that can write its own cgroup (Podman with
 * --systemd, privileged containers, delegated subtrees, a kind or minikube
 * node) can only add segments below it, and an inner "libpod-<other>.scope"
 * or "kubepods-pod<other>.slice" must not let it take another container's
 * or pod's identity.  So nested runtimes (docker in docker, kind, minikube)
 * give the enclosing container's id and no pod: what runs inside is that
 * container's own business, and a broker that must tell it apart runs inside
 * it (in its cgroup namespace, where those ids are the outermost).
 *
 * Agreement between lines
 * -----------------------
 * Every line's chain is derived.  Lines agree when each chain is a prefix of
 * the longest one: the same nesting seen at two depths, as on a hybrid host
 * where the v1 lines reach a kind node's pod while the unified line stops at
 * the node container.  The ids come from the longest chain.  Chains that
 * diverge (unrelated ids across hierarchies) give neither id: a conflict is
 * reported, never resolved by guessing.  A path outside the broker's cgroup
 * namespace ("/.." or "/../...") on any line yields no cgroup identity at
 * all: path, container and pod are empty.  Either case sets `problem`.
 *
 * The text is untrusted (a caller chooses the names of cgroups delegated to
 * it): every field is handled with explicit lengths.  Malformed input is a
 * NUL byte, an empty file, an empty or over-long line, a line without two
 * ':' separators, a hierarchy ID that is not 1-9 digits, a hierarchy listed
 * twice, a v2 line with controllers or a v1 line without, a path not
 * starting with '/', or more than CGROUP_MAX_LINES lines.
 */
#include "cgroup.h"

#include <string.h>

#define CGROUP_MAX_LINES 64
#define UUID_LEN 36

/* One id a cgroup path names. */
enum cg_id_kind { CG_ID_CONTAINER = 1, CG_ID_POD };

struct cg_id {
	enum cg_id_kind kind;
	char value[CONTAINER_ID_LEN + 1]; /* a pod UID with '-' separators */
};

/* A walk over the chain of ids of one path, outermost first. */
struct cgroup_ids {
	const char *path;
	size_t len, pos;
	struct cg_id ids[2]; /* the ids of the current segment */
	size_t npending, pending;
};

struct cg_line {
	unsigned long hier;
	const char *ctl;
	size_t ctl_len;
	const char *path;
	size_t path_len;
};

static bool is_lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static bool all_lower_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_lower_hex(s[i]))
			return false;
	return true;
}

static bool bytes_eq(const char *s, size_t n, const char *lit)
{
	size_t l = strlen(lit); /* lit is our own constant */

	return n == l && memcmp(s, lit, l) == 0;
}

static bool has_prefix(const char *s, size_t n, const char *lit)
{
	size_t l = strlen(lit);

	return n >= l && memcmp(s, lit, l) == 0;
}

static bool has_suffix(const char *s, size_t n, const char *lit)
{
	size_t l = strlen(lit);

	return n >= l && memcmp(s + n - l, lit, l) == 0;
}

/*
 * Runtimes whose systemd scopes (and Podman's cgroupfs cgroups) are named
 * "<runtime>-<id>[.scope]": Podman's --cgroups=split names the container's
 * own cgroup "libpod-payload-<id>", nerdctl "nerdctl-<id>.scope".
 */
static const char *const runtime_prefixes[] = {
	"docker", "cri-containerd", "crio", "libpod", "libpod-payload", "runc", "crun",
	"nerdctl",
};

/*
 * The prefixes of runc's "slice:prefix:name" form, which runc's cgroupfs
 * driver writes literally as one cgroup name when the kubelet uses the
 * systemd driver and the runtime does not (containerd's SystemdCgroup=false).
 */
static const char *const colon_prefixes[] = {
	"cri-containerd", "cri-o", "crio", "docker",
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static bool in_list(const char *s, size_t n, const char *const *list, size_t count)
{
	for (size_t i = 0; i < count; i++)
		if (bytes_eq(s, n, list[i]))
			return true;
	return false;
}

static void set_container(struct cg_id *id, const char *hex)
{
	id->kind = CG_ID_CONTAINER;
	memcpy(id->value, hex, CONTAINER_ID_LEN);
	id->value[CONTAINER_ID_LEN] = '\0';
}

/* The container id a segment names ("<id>" or "<runtime>-<id>[.scope]"). */
static bool segment_container(const char *s, size_t n, struct cg_id *id)
{
	if (n == CONTAINER_ID_LEN && all_lower_hex(s, n)) {
		set_container(id, s);
		return true;
	}
	if (has_suffix(s, n, ".scope"))
		n -= strlen(".scope");
	if (n < CONTAINER_ID_LEN + 2 || s[n - CONTAINER_ID_LEN - 1] != '-' ||
	    !all_lower_hex(s + n - CONTAINER_ID_LEN, CONTAINER_ID_LEN) ||
	    !in_list(s, n - CONTAINER_ID_LEN - 1, runtime_prefixes, COUNT(runtime_prefixes)))
		return false;
	set_container(id, s + n - CONTAINER_ID_LEN);
	return true;
}

/*
 * A pod UID: a UUID of lowercase hex with one kind of separator (copied
 * out with '-'), or the 32 lowercase hex digits kubelet gives static pods.
 */
static bool parse_pod_uid(const char *s, size_t n, struct cg_id *id)
{
	char sep;

	if (n == POD_UID_HEX_LEN && all_lower_hex(s, n)) {
		memcpy(id->value, s, n);
		id->value[n] = '\0';
		id->kind = CG_ID_POD;
		return true;
	}
	if (n != UUID_LEN)
		return false;
	sep = s[8];
	if (sep != '-' && sep != '_')
		return false;
	for (size_t i = 0; i < UUID_LEN; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != sep : !is_lower_hex(s[i]))
			return false;
		id->value[i] = dash ? '-' : s[i];
	}
	id->value[UUID_LEN] = '\0';
	id->kind = CG_ID_POD;
	return true;
}

/* The pod UID a segment names: "pod<uid>[.slice]" or "<x>-pod<uid>.slice". */
static bool segment_pod(const char *s, size_t n, struct cg_id *id)
{
	bool slice = has_suffix(s, n, ".slice");
	size_t base = slice ? n - strlen(".slice") : n;

	for (size_t ulen = UUID_LEN; ulen >= POD_UID_HEX_LEN; ulen -= UUID_LEN - POD_UID_HEX_LEN) {
		size_t tail = strlen("pod") + ulen;

		if (base == tail && has_prefix(s, base, "pod"))
			return parse_pod_uid(s + 3, ulen, id);
		if (slice && base > tail && s[base - tail - 1] == '-' &&
		    has_prefix(s + base - tail, tail, "pod"))
			return parse_pod_uid(s + base - ulen, ulen, id);
	}
	return false;
}

/*
 * "<slice>:<prefix>:<64 hex>": the pod of the slice (if any), then the
 * container.  The slice is empty (runc's default) or a "….slice" name.
 */
static size_t segment_colon(const char *s, size_t n, struct cg_id ids[2])
{
	const char *c1 = memchr(s, ':', n), *c2;
	size_t slen, plen, k = 0;

	if (c1 == NULL)
		return 0;
	c2 = memchr(c1 + 1, ':', n - (size_t)(c1 - s) - 1);
	if (c2 == NULL || (size_t)(s + n - c2 - 1) != CONTAINER_ID_LEN ||
	    !all_lower_hex(c2 + 1, CONTAINER_ID_LEN))
		return 0;
	slen = (size_t)(c1 - s);
	plen = (size_t)(c2 - c1 - 1);
	if (!in_list(c1 + 1, plen, colon_prefixes, COUNT(colon_prefixes)) ||
	    (slen != 0 && !has_suffix(s, slen, ".slice")))
		return 0;
	if (slen != 0 && segment_pod(s, slen, &ids[0]))
		k++;
	set_container(&ids[k++], c2 + 1);
	return k;
}

/* The ids one segment names, in nesting order (at most a pod, then a container). */
static size_t segment_ids(const char *s, size_t n, struct cg_id ids[2])
{
	if (memchr(s, ':', n) != NULL)
		return segment_colon(s, n, ids);
	if (segment_container(s, n, &ids[0]) || segment_pod(s, n, &ids[0]))
		return 1;
	return 0;
}

static void cgroup_ids_begin(struct cgroup_ids *it, const char *path, size_t len)
{
	memset(it, 0, sizeof(*it));
	it->path = path;
	it->len = len;
}

static bool cgroup_ids_next(struct cgroup_ids *it, struct cg_id *out)
{
	if (it->pending < it->npending) {
		*out = it->ids[it->pending++];
		return true;
	}
	while (it->pos < it->len) {
		const char *seg = it->path + it->pos;
		const char *slash = memchr(seg, '/', it->len - it->pos);
		size_t n = slash != NULL ? (size_t)(slash - seg) : it->len - it->pos;

		it->pos += n + 1;
		it->npending = segment_ids(seg, n, it->ids);
		it->pending = 0;
		if (it->npending > 0) {
			*out = it->ids[it->pending++];
			return true;
		}
	}
	return false;
}

/*
 * The caller's ids from one chain (see the top of this file): the
 * outermost container id, and the outermost pod UID above it.
 */
static void chain_ids(const char *p, size_t len, char container[CONTAINER_ID_LEN + 1],
		      char pod[POD_UID_LEN + 1])
{
	struct cgroup_ids it;
	struct cg_id id;

	container[0] = '\0';
	pod[0] = '\0';
	cgroup_ids_begin(&it, p, len);
	while (container[0] == '\0' && cgroup_ids_next(&it, &id)) {
		if (id.kind == CG_ID_CONTAINER)
			memcpy(container, id.value, CONTAINER_ID_LEN + 1);
		else if (pod[0] == '\0')
			memcpy(pod, id.value, strlen(id.value) + 1);
	}
}

void cgroup_path_ids(const char *path, char container[CONTAINER_ID_LEN + 1],
		     char pod[POD_UID_LEN + 1])
{
	chain_ids(path, strlen(path), container, pod);
}

static size_t chain_length(const char *p, size_t len)
{
	struct cgroup_ids it;
	struct cg_id id;
	size_t n = 0;

	cgroup_ids_begin(&it, p, len);
	while (cgroup_ids_next(&it, &id))
		n++;
	return n;
}

/*
 * Whether the chain of [a, alen) is a prefix of that of [b, blen); on a
 * mismatch *pod_differs says whether a pod UID was involved.
 */
static bool chain_is_prefix(const char *a, size_t alen, const char *b, size_t blen,
			    bool *pod_differs)
{
	struct cgroup_ids ia, ib;
	struct cg_id x, y;

	cgroup_ids_begin(&ia, a, alen);
	cgroup_ids_begin(&ib, b, blen);
	while (cgroup_ids_next(&ia, &x)) {
		if (!cgroup_ids_next(&ib, &y)) {
			*pod_differs = x.kind == CG_ID_POD;
			return false;
		}
		if (x.kind != y.kind || strcmp(x.value, y.value) != 0) {
			*pod_differs = x.kind == CG_ID_POD || y.kind == CG_ID_POD;
			return false;
		}
	}
	return true;
}

static bool path_outside(const char *p, size_t n)
{
	return bytes_eq(p, n, "/..") || has_prefix(p, n, "/../");
}

static int set_problem(struct cgroup_info *out, const char *why)
{
	size_t n = strlen(why);

	if (n >= sizeof(out->problem))
		n = sizeof(out->problem) - 1;
	memcpy(out->problem, why, n);
	out->problem[n] = '\0';
	return -1;
}

/* One line "ID:CONTROLLERS:PATH" (without its newline). */
static int parse_line(const char *s, size_t n, struct cg_line *l, struct cgroup_info *out)
{
	const char *c1 = memchr(s, ':', n);
	const char *c2;
	size_t idlen;

	if (c1 == NULL)
		return set_problem(out, "cgroup line without ':' fields");
	c2 = memchr(c1 + 1, ':', n - (size_t)(c1 - s) - 1);
	if (c2 == NULL)
		return set_problem(out, "cgroup line without a path field");
	idlen = (size_t)(c1 - s);
	if (idlen == 0 || idlen > 9)
		return set_problem(out, "bad cgroup hierarchy id");
	l->hier = 0;
	for (size_t i = 0; i < idlen; i++) {
		if (s[i] < '0' || s[i] > '9')
			return set_problem(out, "bad cgroup hierarchy id");
		l->hier = l->hier * 10 + (unsigned long)(s[i] - '0');
	}
	l->ctl = c1 + 1;
	l->ctl_len = (size_t)(c2 - l->ctl);
	l->path = c2 + 1;
	l->path_len = n - (size_t)(l->path - s);
	if ((l->hier == 0) != (l->ctl_len == 0))
		return set_problem(out, "cgroup line with mismatched hierarchy and controllers");
	if (l->path_len == 0 || l->path[0] != '/')
		return set_problem(out, "cgroup path does not start with '/'");
	if (l->path_len >= CGROUP_PATH_MAX)
		return set_problem(out, "cgroup path too long");
	return 0;
}

/* Split text into lines; every line checked, hierarchies unique. */
static int split_lines(const char *text, size_t len, struct cg_line *lines, size_t *nlines,
		       struct cgroup_info *out)
{
	size_t pos = 0;

	*nlines = 0;
	if (len == 0)
		return set_problem(out, "empty cgroup file");
	if (memchr(text, '\0', len) != NULL)
		return set_problem(out, "NUL byte in cgroup file");
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - (text + pos)) : len - pos;

		if (n == 0)
			return set_problem(out, "empty line in cgroup file");
		if (*nlines == CGROUP_MAX_LINES)
			return set_problem(out, "too many lines in cgroup file");
		if (parse_line(text + pos, n, &lines[*nlines], out) != 0)
			return -1;
		for (size_t i = 0; i < *nlines; i++)
			if (lines[i].hier == lines[*nlines].hier)
				return set_problem(out, "cgroup hierarchy listed twice");
		(*nlines)++;
		pos += n + 1;
	}
	return 0;
}

/* The line whose path is the caller's cgroup (see the top of this file). */
static const struct cg_line *choose_line(const struct cg_line *lines, size_t nlines)
{
	const struct cg_line *v2 = NULL;

	for (size_t i = 0; i < nlines; i++) {
		if (bytes_eq(lines[i].ctl, lines[i].ctl_len, "name=systemd"))
			return &lines[i];
		if (lines[i].hier == 0)
			v2 = &lines[i];
	}
	return v2 != NULL ? v2 : &lines[0];
}

int cgroup_parse(const char *text, size_t len, struct cgroup_info *out)
{
	struct cg_line lines[CGROUP_MAX_LINES];
	size_t nlines, longest = 0, most = 0;
	const struct cg_line *chosen, *ref;
	bool outside = false, conflict = false, pod_conflict = false;

	memset(out, 0, sizeof(*out));
	if (split_lines(text, len, lines, &nlines, out) != 0)
		return -1;
	for (size_t i = 0; i < nlines; i++) {
		size_t n = chain_length(lines[i].path, lines[i].path_len);

		if (path_outside(lines[i].path, lines[i].path_len))
			outside = true;
		if (n > most) {
			most = n;
			longest = i;
		}
	}
	if (outside) {
		memset(out, 0, sizeof(*out));
		(void)set_problem(out, "cgroup path is outside the broker's cgroup namespace");
		return 0;
	}
	/* Lines agree when each one's chain is a prefix of the longest one. */
	ref = &lines[longest];
	for (size_t i = 0; i < nlines && !conflict; i++)
		conflict = !chain_is_prefix(lines[i].path, lines[i].path_len, ref->path,
					    ref->path_len, &pod_conflict);
	chosen = choose_line(lines, nlines);
	memcpy(out->path, chosen->path, chosen->path_len);
	out->path[chosen->path_len] = '\0';
	/* A disagreement makes the whole derivation suspect: neither id is given. */
	if (conflict) {
		(void)set_problem(out, pod_conflict ? "cgroup lines disagree about the pod"
						    : "cgroup lines disagree about the container");
		return 0;
	}
	chain_ids(ref->path, ref->path_len, out->container, out->pod);
	return 0;
}
