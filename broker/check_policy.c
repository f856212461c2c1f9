/*
 * `secretd check-policy PATH [--as SELECTOR... PERM NAME]`: parse a policy
 * as the broker would (same file checks, same parser) and, with --as,
 * decide one request for a described caller through the same policy_eval()
 * the broker uses, naming the line that decided.  It lets an operator
 * answer "why was I denied" without a live container.
 */
#include "commands.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <secretd/names.h>

#include "cgroup.h"
#include "config.h"
#include "identity.h"
#include "nss.h"
#include "policy.h"

#define ID_MAX 4294967294U /* (uid_t)-1 means "no id" */
#define MAX_GROUPS 65536

/* What the --as selectors said, before it becomes an identity. */
struct caller {
	struct identity id;
	bool have_uid, have_gid;
	bool user_gid; /* gid is user='s primary group, not yet overridden */
	/* An explicit container= or pod= wins over what cgroup= implies. */
	char container[CONTAINER_ID_LEN + 1];
	char pod[POD_UID_LEN + 1];
};

static int usage(void)
{
	fprintf(stderr, "usage: secretd check-policy PATH [--as SELECTOR... PERM NAME]\n"
		"  SELECTOR: uid=N gid=N groups=N[,N...] user=NAME group=NAME cgroup=PATH\n"
		"            container=FULL-ID pod=UID unit=NAME host any\n"
		"  PERM: read, write, list or delete\n");
	return 2;
}

static int bad_selector(const char *sel, const char *why)
{
	fprintf(stderr, "secretd: --as %s: %s\n", sel, why);
	return -1;
}

static int add_group(struct identity *id, gid_t gid)
{
	gid_t *grown;

	if (id->ngroups >= MAX_GROUPS)
		return -1;
	grown = realloc(id->groups, (id->ngroups + 1) * sizeof(*grown));
	if (grown == NULL)
		return -1;
	grown[id->ngroups++] = gid;
	id->groups = grown;
	return 0;
}

/* groups=N[,N...]: each item a number, no empty items. */
static int parse_groups(const char *sel, const char *list, struct identity *id)
{
	char *copy = strdup(list), *save = NULL, *item;
	size_t len = strlen(list);
	int rc = -1;

	if (copy == NULL) {
		bad_selector(sel, "out of memory");
		goto out;
	}
	if (len == 0 || list[0] == ',' || list[len - 1] == ',' || strstr(list, ",,") != NULL) {
		bad_selector(sel, "expected numbers separated by commas");
		goto out;
	}
	for (item = strtok_r(copy, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
		unsigned g;

		if (config_parse_uint(item, 0, ID_MAX, &g) != 0) {
			bad_selector(sel, "expected numbers separated by commas");
			goto out;
		}
		if (add_group(id, (gid_t)g) != 0) {
			bad_selector(sel, "too many groups");
			goto out;
		}
	}
	rc = 0;
out:
	free(copy);
	return rc;
}

/* user=NAME / group=NAME through NSS, as the policy parser resolves them. */
static int lookup(const char *name, bool user, unsigned *id, unsigned *primary_gid)
{
	uid_t uid = 0;
	gid_t gid = 0;
	int rc = user ? nss_user(name, &uid, &gid) : nss_group(name, &gid);

	if (rc != 0)
		return -1;
	*id = user ? (unsigned)uid : (unsigned)gid;
	if (user)
		*primary_gid = (unsigned)gid;
	return 0;
}

static bool hex_string(const char *s, size_t want)
{
	if (strlen(s) != want)
		return false;
	for (size_t i = 0; i < want; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
		      (s[i] >= 'A' && s[i] <= 'F')))
			return false;
	return true;
}

/* 8-4-4-4-12 hex digits, or the 32 of a static pod's UID. */
static bool pod_valid(const char *s)
{
	if (hex_string(s, POD_UID_HEX_LEN))
		return true;
	if (strlen(s) != POD_UID_LEN)
		return false;
	for (size_t i = 0; i < POD_UID_LEN; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		char c = s[i];
		bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
			   (c >= 'A' && c <= 'F');

		if (dash ? c != '-' : !hex)
			return false;
	}
	return true;
}

static void copy_lower(char *dst, const char *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = (src[i] >= 'A' && src[i] <= 'F') ? (char)(src[i] - 'A' + 'a') : src[i];
	dst[n] = '\0';
}

static int set_uid(struct caller *c, const char *sel, unsigned uid)
{
	if (c->have_uid)
		return bad_selector(sel, "the caller's uid is already given");
	c->id.uid = (uid_t)uid;
	c->have_uid = true;
	return 0;
}

static int set_gid(struct caller *c, const char *sel, unsigned gid)
{
	if (c->have_gid)
		return bad_selector(sel, "the caller's gid is already given");
	c->id.gid = (gid_t)gid;
	c->have_gid = true;
	return 0;
}

static int set_cgroup(struct caller *c, const char *sel, const char *path)
{
	if (path[0] != '/' || strlen(path) >= CGROUP_PATH_MAX)
		return bad_selector(sel, "expected an absolute cgroup path");
	if (c->id.cgroup != NULL)
		return bad_selector(sel, "the caller's cgroup is already given");
	c->id.cgroup = strdup(path);
	if (c->id.cgroup == NULL)
		return bad_selector(sel, "out of memory");
	/* The broker learns container and pod from the path; so do we. */
	cgroup_path_ids(path, c->id.container, c->id.pod);
	return 0;
}

/* The characters of a systemd unit name (unit_name_is_valid()). */
static bool unit_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > UNIT_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || strchr(":-_.\\@", ch) != NULL))
			return false;
	}
	return true;
}

/* One --as word: v is what follows '=' ("" for a bare word). */
typedef int (*describe_fn)(struct caller *c, const char *sel, const char *v);

static int as_host(struct caller *c, const char *sel, const char *v)
{
	(void)sel;
	(void)v;
	c->id.host = true;
	return 0;
}

static int as_any(struct caller *c, const char *sel, const char *v)
{
	(void)c;
	(void)sel;
	(void)v;
	return 0; /* holds for every caller: describes nothing more */
}

static int as_uid(struct caller *c, const char *sel, const char *v)
{
	unsigned n;

	if (config_parse_uint(v, 0, ID_MAX, &n) != 0)
		return bad_selector(sel, "expected a number");
	return set_uid(c, sel, n);
}

static int as_gid(struct caller *c, const char *sel, const char *v)
{
	unsigned n;

	if (config_parse_uint(v, 0, ID_MAX, &n) != 0)
		return bad_selector(sel, "expected a number");
	return set_gid(c, sel, n);
}

static int as_groups(struct caller *c, const char *sel, const char *v)
{
	return parse_groups(sel, v, &c->id);
}

static int as_user(struct caller *c, const char *sel, const char *v)
{
	unsigned n, gid = 0;

	if (lookup(v, true, &n, &gid) != 0)
		return bad_selector(sel, "unknown user");
	if (set_uid(c, sel, n) != 0)
		return -1;
	/* Like a login: the user's primary group unless gid= says otherwise. */
	if (!c->have_gid) {
		c->id.gid = (gid_t)gid;
		c->user_gid = true;
	}
	return 0;
}

static int as_group(struct caller *c, const char *sel, const char *v)
{
	unsigned n, gid = 0;

	if (lookup(v, false, &n, &gid) != 0)
		return bad_selector(sel, "unknown group");
	if (add_group(&c->id, (gid_t)n) != 0)
		return bad_selector(sel, "too many groups");
	return 0;
}

static int as_cgroup(struct caller *c, const char *sel, const char *v)
{
	return set_cgroup(c, sel, v);
}

static int as_container(struct caller *c, const char *sel, const char *v)
{
	/*
	 * A real caller has one full id; from a prefix or "*" neither
	 * ${container} nor a longer rule id could be evaluated truly.
	 */
	if (!hex_string(v, CONTAINER_ID_LEN))
		return bad_selector(sel, "a caller has one full container id: give all 64 hex "
				    "digits (docker inspect --format '{{.Id}}' NAME, or "
				    "the container= line of secretctl whoami)");
	copy_lower(c->container, v, CONTAINER_ID_LEN);
	return 0;
}

static int as_pod(struct caller *c, const char *sel, const char *v)
{
	if (!pod_valid(v))
		return bad_selector(sel, "expected a pod UID (8-4-4-4-12 hex digits, or 32 for "
				    "a static pod)");
	copy_lower(c->pod, v, strlen(v));
	return 0;
}

/* unit=NAME: systemd (PID 1) loading a credential for that unit. */
static int as_unit(struct caller *c, const char *sel, const char *v)
{
	if (!unit_name_valid(v))
		return bad_selector(sel, "expected a systemd unit name (e.g. backup.service)");
	if (c->id.unit != NULL)
		return bad_selector(sel, "the caller's unit is already given");
	c->id.unit = strdup(v);
	if (c->id.unit == NULL)
		return bad_selector(sel, "out of memory");
	return 0;
}

static const struct {
	const char *name;
	bool value; /* NAME=VALUE; otherwise a bare word */
	describe_fn describe;
} as_words[] = {
	{ "uid", true, as_uid },
	{ "gid", true, as_gid },
	{ "groups", true, as_groups },
	{ "user", true, as_user },
	{ "group", true, as_group },
	{ "cgroup", true, as_cgroup },
	{ "container", true, as_container },
	{ "pod", true, as_pod },
	{ "unit", true, as_unit },
	{ "host", false, as_host },
	{ "any", false, as_any },
};

static int describe_one(struct caller *c, const char *sel)
{
	const char *eq = strchr(sel, '=');
	size_t klen = eq != NULL ? (size_t)(eq - sel) : strlen(sel);

	for (size_t i = 0; i < sizeof(as_words) / sizeof(as_words[0]); i++)
		if (as_words[i].value == (eq != NULL) && strlen(as_words[i].name) == klen &&
		    strncmp(sel, as_words[i].name, klen) == 0)
			return as_words[i].describe(c, sel, eq != NULL ? eq + 1 : "");
	return bad_selector(sel, "unknown selector (expected uid=, gid=, groups=, user=, "
			    "group=, cgroup=, container=, pod=, unit= or host)");
}

/*
 * Turn the --as selectors into an identity the broker could have built:
 * established, with kernel credentials.  A uid is required; the gid
 * defaults to the user's primary group (user=) or to the uid's number.
 */
static int describe(struct caller *c, int n, char **sels)
{
	for (int i = 0; i < n; i++)
		if (describe_one(c, sels[i]) != 0)
			return -1;
	if (!c->have_uid) {
		fprintf(stderr, "secretd: --as needs the caller's uid=N or user=NAME\n");
		return -1;
	}
	if (!c->have_gid && !c->user_gid)
		c->id.gid = c->id.uid;
	if (c->container[0] != '\0')
		memcpy(c->id.container, c->container, sizeof(c->container));
	if (c->pod[0] != '\0')
		memcpy(c->id.pod, c->pod, sizeof(c->pod));
	c->id.creds = true;
	c->id.pidfd_verified = true;
	c->id.established = true;
	return 0;
}

static int check_only(const char *path)
{
	struct policy *p = NULL;
	char err[1024];

	if (policy_load(path, &p, err, sizeof(err)) != 0) {
		fprintf(stderr, "secretd: %s\n", err);
		return 1;
	}
	printf("%s: OK, %zu rule%s\n", path, policy_rule_count(p),
	       policy_rule_count(p) == 1 ? "" : "s");
	policy_free(p);
	return 0;
}

static int evaluate(const char *path, int nsel, char **sels, const char *perm_word,
		    const char *name)
{
	struct caller c;
	struct policy *p = NULL;
	const char *why = NULL, *text;
	unsigned perm, line = 0;
	char err[1024];
	bool permit;
	int ret = 2;

	memset(&c, 0, sizeof(c));
	perm = policy_perm_from_name(perm_word);
	if (perm == 0) {
		fprintf(stderr, "secretd: unknown permission \"%s\" "
			"(expected read, write, list or delete)\n", perm_word);
		goto out;
	}
	if (!name_valid(name, strlen(name), &why)) {
		fprintf(stderr, "secretd: bad secret name: %s\n", why != NULL ? why : "invalid");
		goto out;
	}
	if (describe(&c, nsel, sels) != 0)
		goto out;
	ret = 1;
	if (policy_load(path, &p, err, sizeof(err)) != 0) {
		fprintf(stderr, "secretd: %s\n", err);
		goto out;
	}
	permit = policy_eval(p, &c.id, perm, name, strlen(name), &line);
	text = policy_rule_text(p, line);
	if (line == 0 || text == NULL)
		printf("deny (no rule matched: default deny)\n");
	else
		printf("%s (line %u: %s)\n", permit ? "permit" : "deny", line, text);
	ret = permit ? 0 : 1;
out:
	identity_clear(&c.id);
	policy_free(p);
	return ret;
}

int cmd_check_policy(int argc, char **argv)
{
	if (argc == 2 && argv[1][0] != '-')
		return check_only(argv[1]);
	/* PATH --as SELECTOR... PERM NAME: at least one selector. */
	if (argc >= 6 && argv[1][0] != '-' && strcmp(argv[2], "--as") == 0)
		return evaluate(argv[1], argc - 5, argv + 3, argv[argc - 2], argv[argc - 1]);
	return usage();
}
