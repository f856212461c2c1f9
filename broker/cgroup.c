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
 * The container id and pod UID are derived from the path of EVERY line.
 * When two lines give different non-empty container ids or pod UIDs, the
 * caller has neither (a conflict is reported, never resolved by guessing).
 * A path outside the broker's cgroup namespace ("/.." or "/../...") on any
 * line yields no cgroup identity at all: path, container and pod are empty.
 * Either case sets `problem`.
 *
 * Container id: the innermost path segment that is either exactly 64
 * lowercase hex digits (Docker and containerd with cgroupfs: /docker/<id>,
 * /kubepods/<qos>/pod<uid>/<id>, plain runc: /<id>, /default/<id>) or
 * "<runtime>-<64 hex>" optionally followed by ".scope", where runtime is one
 * of docker, cri-containerd, crio, libpod, runc, crun (systemd drivers, and
 * Podman's cgroupfs "libpod-<id>").  "crio-conmon-<id>.scope" and
 * "libpod-conmon-<id>.scope" hold the runtime's monitor, not the container,
 * and give no id.  Nested runtimes (docker-in-docker, kind) give the
 * innermost id; crun's "/container" sub-cgroup below a scope is just a
 * further segment without an id.
 *
 * Pod UID: the innermost segment "pod<uuid>" (cgroupfs driver) or
 * "<anything>-pod<uuid>.slice" or "pod<uuid>.slice" (systemd driver, where
 * the UUID's dashes are written as underscores).  The UUID is 8-4-4-4-12
 * lowercase hex digits separated all by '-' or all by '_'; it is reported
 * with '-'.
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

/* Runtimes whose systemd scopes (and Podman's cgroupfs cgroups) are named
 * "<runtime>-<id>[.scope]". */
static const char *const runtime_prefixes[] = {
	"docker", "cri-containerd", "crio", "libpod", "runc", "crun",
};

/* The container id a segment names, or NULL. */
static const char *segment_container(const char *s, size_t n)
{
	if (n == CONTAINER_ID_LEN && all_lower_hex(s, n))
		return s;
	if (has_suffix(s, n, ".scope"))
		n -= strlen(".scope");
	for (size_t i = 0; i < sizeof(runtime_prefixes) / sizeof(runtime_prefixes[0]); i++) {
		size_t pl = strlen(runtime_prefixes[i]);

		if (n == pl + 1 + CONTAINER_ID_LEN && has_prefix(s, n, runtime_prefixes[i]) &&
		    s[pl] == '-' && all_lower_hex(s + pl + 1, CONTAINER_ID_LEN))
			return s + pl + 1;
	}
	return NULL;
}

/* A UUID of lowercase hex with one kind of separator; copied out with '-'. */
static bool parse_uuid(const char *s, size_t n, char out[POD_UID_LEN + 1])
{
	char sep;

	if (n != UUID_LEN)
		return false;
	sep = s[8];
	if (sep != '-' && sep != '_')
		return false;
	for (size_t i = 0; i < UUID_LEN; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != sep : !is_lower_hex(s[i]))
			return false;
		out[i] = dash ? '-' : s[i];
	}
	out[UUID_LEN] = '\0';
	return true;
}

/* The pod UID a segment names, into out; false if none. */
static bool segment_pod(const char *s, size_t n, char out[POD_UID_LEN + 1])
{
	bool slice = has_suffix(s, n, ".slice");
	size_t base = slice ? n - strlen(".slice") : n;
	size_t tail = strlen("pod") + UUID_LEN;

	if (base == tail && has_prefix(s, base, "pod"))
		return parse_uuid(s + 3, UUID_LEN, out);
	if (slice && base > tail && s[base - tail - 1] == '-' &&
	    has_prefix(s + base - tail, tail, "pod"))
		return parse_uuid(s + base - UUID_LEN, UUID_LEN, out);
	return false;
}

static void path_ids(const char *p, size_t len, char container[CONTAINER_ID_LEN + 1],
		     char pod[POD_UID_LEN + 1])
{
	size_t i = 0;

	container[0] = '\0';
	pod[0] = '\0';
	while (i < len) {
		const char *seg = p + i;
		const char *slash = memchr(seg, '/', len - i);
		size_t n = slash != NULL ? (size_t)(slash - seg) : len - i;
		const char *cid = segment_container(seg, n);
		char uid[POD_UID_LEN + 1];

		/* Later segments are deeper: the innermost wins. */
		if (cid != NULL) {
			memcpy(container, cid, CONTAINER_ID_LEN);
			container[CONTAINER_ID_LEN] = '\0';
		}
		if (segment_pod(seg, n, uid))
			memcpy(pod, uid, sizeof(uid));
		i += n + 1;
	}
}

void cgroup_path_ids(const char *path, char container[CONTAINER_ID_LEN + 1],
		     char pod[POD_UID_LEN + 1])
{
	path_ids(path, strlen(path), container, pod);
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

/* Merge one line's id into the running one; false on disagreement. */
static bool merge_id(char *have, const char *got)
{
	if (got[0] == '\0')
		return true;
	if (have[0] == '\0') {
		memcpy(have, got, strlen(got) + 1);
		return true;
	}
	return strcmp(have, got) == 0;
}

int cgroup_parse(const char *text, size_t len, struct cgroup_info *out)
{
	struct cg_line lines[CGROUP_MAX_LINES];
	size_t nlines;
	const struct cg_line *chosen;
	bool outside = false, cid_conflict = false, pod_conflict = false;

	memset(out, 0, sizeof(*out));
	if (split_lines(text, len, lines, &nlines, out) != 0)
		return -1;
	for (size_t i = 0; i < nlines; i++) {
		char cid[CONTAINER_ID_LEN + 1], pod[POD_UID_LEN + 1];

		if (path_outside(lines[i].path, lines[i].path_len))
			outside = true;
		path_ids(lines[i].path, lines[i].path_len, cid, pod);
		if (!merge_id(out->container, cid))
			cid_conflict = true;
		if (!merge_id(out->pod, pod))
			pod_conflict = true;
	}
	if (outside) {
		memset(out, 0, sizeof(*out));
		(void)set_problem(out, "cgroup path is outside the broker's cgroup namespace");
		return 0;
	}
	chosen = choose_line(lines, nlines);
	memcpy(out->path, chosen->path, chosen->path_len);
	out->path[chosen->path_len] = '\0';
	/* Either disagreement makes the whole derivation suspect: drop both. */
	if (cid_conflict || pod_conflict) {
		out->container[0] = '\0';
		out->pod[0] = '\0';
		(void)set_problem(out, cid_conflict ? "cgroup lines disagree about the container"
					      : "cgroup lines disagree about the pod");
	}
	return 0;
}
