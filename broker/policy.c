/*
 * The access policy: a line-oriented rule file, parsed whole or not at all,
 * and one pure decision function.
 *
 *   permit|deny  PERMS  PATTERN  SELECTOR...
 *
 * Lexing follows OpenBSD doas: lines longer than POLICY_MAX_LINE, NUL and
 * other control bytes (tab excepted) are errors reported with line and
 * column; '#' starts a comment that runs to the end of the line; tokens are
 * separated by spaces and tabs.  User and group names are resolved to
 * numbers here, once, so evaluation never touches NSS.
 */
#include "policy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "glob.h"
#include "nss.h"
#include "number.h"

#define POLICY_MAX_LINE 4096
#define POLICY_MAX_FILE (1024 * 1024)
/*
 * A pattern with variables is expanded into a stack buffer of this size.
 * The parser refuses any pattern whose longest expansion would not fit, so
 * a rule can never silently fail to match because of the buffer.
 */
#define SUBST_MAX 4096
#define ID_MAX 4294967294UL /* (uid_t)-1 and (gid_t)-1 mean "no id" */
#define QUOTE_MAX 64        /* longest piece of policy text quoted in an error */
#define CONTAINER_PREFIX_MIN 12
#define NSS_BUF_MAX (1024 * 1024)

struct token {
	const char *p;
	size_t len;
};

struct parser {
	const char *source;
	unsigned line;
	/* Columns: the byte at `base` is in column base_col of the current line. */
	const char *base;
	size_t base_col;
	char *err;
	size_t errlen;
};

struct selector;

/*
 * One selector keyword: how its word is parsed and when it holds.  A
 * selector is one line of keywords[] below; both the parser and the
 * evaluation read it from there.
 */
struct keyword {
	const char *name;
	bool value; /* written NAME=VALUE; otherwise a bare word */
	/* v/n: the value after '=' (NULL/0 for a bare word). */
	int (*parse)(struct parser *ps, const char *v, size_t n, struct selector *s);
	bool (*holds)(const struct selector *s, const struct identity *who);
};

struct selector {
	const struct keyword *kw;
	unsigned id;       /* uid=, gid=, user=, group= */
	const char *glob;  /* cgroup=, unit=: points into the rule's text */
	size_t glen;
	/* container= (id or prefix), pod=: lowercase; "" stands for '*'. */
	char value[CONTAINER_ID_LEN + 1];
	size_t vlen;
};

struct rule {
	bool permit;
	unsigned perms;
	unsigned line;
	char *text; /* the rule as written, comment and outer blanks removed */
	const char *pattern; /* points into text */
	size_t plen;
	bool has_vars;
	struct selector *sels;
	size_t nsels;
};

struct policy {
	struct rule *rules;
	size_t nrules, cap;
};

/*
 * A variable of patterns: its value for a caller, false when the caller
 * lacks it.  Values are checked to be digits, hex and the characters of a
 * name segment, so nothing a caller controls can smuggle '/' or '*' into
 * the pattern.
 */
typedef bool (*variable_fn)(const struct identity *who, char *num, size_t numlen,
			    const char **val, size_t *len);

static bool var_uid(const struct identity *who, char *num, size_t numlen, const char **val,
		    size_t *len);
static bool var_container(const struct identity *who, char *num, size_t numlen,
			  const char **val, size_t *len);
static bool var_pod(const struct identity *who, char *num, size_t numlen, const char **val,
		    size_t *len);
static bool var_unit(const struct identity *who, char *num, size_t numlen, const char **val,
		     size_t *len);

struct variable {
	const char *name; /* as written, "${...}" */
	size_t len;
	size_t maxval;    /* longest value it can expand to */
	variable_fn value;
};

static const struct variable variables[] = {
	{ "${uid}", 6, 10, var_uid },
	{ "${container}", 12, CONTAINER_ID_LEN, var_container },
	{ "${pod}", 6, POD_UID_LEN, var_pod },
	{ "${unit}", 7, UNIT_NAME_MAX, var_unit },
};
#define VAR_COUNT (int)(sizeof(variables) / sizeof(variables[0]))

static const struct {
	const char *name;
	unsigned bits;
} perm_names[] = {
	{ "read", PERM_READ },
	{ "write", PERM_WRITE },
	{ "list", PERM_LIST },
	{ "delete", PERM_DELETE },
	{ "all", PERM_ALL },
};

/* ---- errors ---- */

/* Report an error at the byte `at` of the current line; always returns -1. */
__attribute__((format(printf, 3, 4)))
static int perr(struct parser *ps, const char *at, const char *fmt, ...)
{
	size_t col = ps->base_col + (size_t)(at - ps->base);
	int n;
	va_list ap;

	if (ps->source != NULL)
		n = snprintf(ps->err, ps->errlen, "%s:%u:%zu: ", ps->source, ps->line, col);
	else
		n = snprintf(ps->err, ps->errlen, "%u:%zu: ", ps->line, col);
	if (n < 0 || (size_t)n >= ps->errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Arguments for "%.*s%s": a token quoted, cut at QUOTE_MAX bytes. */
#define QUOTED(p, len) (int)((len) > QUOTE_MAX ? QUOTE_MAX : (len)), (p), \
	((len) > QUOTE_MAX ? "..." : "")

/* ---- small lexical helpers ---- */

static bool is_name_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

static bool is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static char lower_hex(char c)
{
	return (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
}

/* "." or "..": never a segment of a name. */
static bool bytes_dots(const char *s, size_t n)
{
	return (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.');
}

static bool token_is(const struct token *t, const char *word)
{
	size_t n = strlen(word);

	return t->len == n && memcmp(t->p, word, n) == 0;
}

/* Next blank-separated token at or after *pos in [*pos, end); false at end. */
static bool next_token(const char **pos, const char *end, struct token *t)
{
	const char *p = *pos;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p == end)
		return false;
	t->p = p;
	while (p < end && *p != ' ' && *p != '\t')
		p++;
	t->len = (size_t)(p - t->p);
	*pos = p;
	return true;
}

/* Numbers: decimal digits only, at most ID_MAX (number.c). */
static bool parse_id(const char *s, size_t len, unsigned *out)
{
	unsigned long v;

	if (number_parse(s, len, 10, 0, ID_MAX, &v) != 0)
		return false;
	*out = (unsigned)v;
	return true;
}

/* ---- name resolution (parse time only) ---- */

/* 0 and *id on success, -ENOENT when unknown, another -errno on failure. */
static int lookup_id(const char *name, bool user, unsigned *id)
{
	uid_t uid = 0;
	gid_t gid = 0;
	int rc = user ? nss_user(name, &uid, &gid) : nss_group(name, &gid);

	if (rc == 0)
		*id = user ? (unsigned)uid : (unsigned)gid;
	return rc;
}

/* ---- rule parts ---- */

static int parse_perms(struct parser *ps, const struct token *t, unsigned *out)
{
	const char *p = t->p, *end = t->p + t->len;
	unsigned bits = 0;

	for (;;) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *item_end = comma != NULL ? comma : end;
		size_t n = (size_t)(item_end - p);
		size_t i;

		if (n == 0)
			return perr(ps, p, "empty item in permission list \"%.*s%s\"",
				    QUOTED(t->p, t->len));
		for (i = 0; i < sizeof(perm_names) / sizeof(perm_names[0]); i++)
			if (strlen(perm_names[i].name) == n &&
			    memcmp(perm_names[i].name, p, n) == 0)
				break;
		if (i == sizeof(perm_names) / sizeof(perm_names[0]))
			return perr(ps, p, "unknown permission \"%.*s%s\" "
				    "(expected read, write, list, delete or all)", QUOTED(p, n));
		/* A repeated permission is harmless, so it is accepted. */
		bits |= perm_names[i].bits;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	*out = bits;
	return 0;
}

/* "${uid}, ... or ${unit}": the variables, for the error messages. */
static void variable_names(char *buf, size_t cap)
{
	size_t n = 0;

	buf[0] = '\0';
	for (int i = 0; i < VAR_COUNT && n < cap; i++) {
		const char *sep = i == 0 ? "" : i + 1 == VAR_COUNT ? " or " : ", ";
		int w = snprintf(buf + n, cap - n, "%s%s", sep, variables[i].name);

		if (w < 0)
			break;
		n += (size_t)w;
	}
}

/* Which variable starts at p (a '$'), or -1. */
static int variable_at(const char *p, const char *end)
{
	for (int v = 0; v < VAR_COUNT; v++)
		if ((size_t)(end - p) >= variables[v].len &&
		    memcmp(p, variables[v].name, variables[v].len) == 0)
			return v;
	return -1;
}

/* One pattern segment [p, end), not empty. *grow gets its expansion. */
static int check_pattern_segment(struct parser *ps, const char *p, const char *end,
				 size_t *grow, bool *vars)
{
	size_t n = (size_t)(end - p);

	if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
		return perr(ps, p, "segment \"%.*s\" not allowed in a pattern", (int)n, p);
	if (n == 2 && p[0] == '*' && p[1] == '*')
		return 0;
	for (const char *q = p; q < end; q++) {
		unsigned char c = (unsigned char)*q;

		if (c == '*' && q + 1 < end && q[1] == '*')
			return perr(ps, q, "\"**\" must be a whole segment of the pattern");
		if (c == '$') {
			int v = variable_at(q, end);
			const char *close;

			if (v < 0) {
				char known[128];

				variable_names(known, sizeof(known));
				close = memchr(q, '}', (size_t)(end - q));
				if (q + 1 >= end || q[1] != '{' || close == NULL)
					return perr(ps, q, "'$' in a pattern must start %s", known);
				return perr(ps, q, "unknown variable \"%.*s%s\" (expected %s)",
					    QUOTED(q, (size_t)(close - q) + 1), known);
			}
			*grow += variables[v].maxval;
			*vars = true;
			q += variables[v].len - 1;
			continue;
		}
		if (!is_name_char(c) && c != '*') {
			if (c > 0x20 && c < 0x7f)
				return perr(ps, q, "character '%c' not allowed in a pattern", c);
			return perr(ps, q, "byte 0x%02x not allowed in a pattern", c);
		}
	}
	return 0;
}

static int parse_pattern(struct parser *ps, const struct token *t, struct rule *r)
{
	const char *p = t->p, *end = t->p + t->len;
	size_t expanded = 0;
	bool vars = false;

	for (;;) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		const char *seg_end = slash != NULL ? slash : end;
		size_t grow = 0;

		if (seg_end == p)
			return perr(ps, p, "empty segment in pattern \"%.*s%s\"",
				    QUOTED(t->p, t->len));
		if (check_pattern_segment(ps, p, seg_end, &grow, &vars) != 0)
			return -1;
		expanded += (size_t)(seg_end - p) + grow + 1;
		if (slash == NULL)
			break;
		p = slash + 1;
	}
	if (expanded > SUBST_MAX)
		return perr(ps, t->p, "pattern longer than %d bytes once its variables are "
			    "substituted", SUBST_MAX);
	r->has_vars = vars;
	r->plen = t->len;
	return 0;
}

/* uid=N, gid=N */
static int parse_number(struct parser *ps, const char *what, const char *v, size_t n,
			struct selector *s)
{
	if (!parse_id(v, n, &s->id))
		return perr(ps, v, "%s=%.*s%s: expected a number from 0 to %lu", what,
			    QUOTED(v, n), ID_MAX);
	return 0;
}

static int parse_uid(struct parser *ps, const char *v, size_t n, struct selector *s)
{
	return parse_number(ps, "uid", v, n, s);
}

static int parse_gid(struct parser *ps, const char *v, size_t n, struct selector *s)
{
	return parse_number(ps, "gid", v, n, s);
}

/* A bare word (any, host): nothing to parse. */
static int parse_word(struct parser *ps, const char *v, size_t n, struct selector *s)
{
	(void)ps;
	(void)v;
	(void)n;
	(void)s;
	return 0;
}

/*
 * cgroup=GLOB: an absolute path; the same segment rules as a pattern, but
 * any printable byte is allowed since cgroup names are freer than secret
 * names ("getty@tty1.service", "cri-containerd:...").  "/" alone is the root.
 */
static int parse_cgroup(struct parser *ps, const char *v, size_t n, struct selector *s)
{
	const char *p = v + 1, *end = v + n;

	if (n == 0 || v[0] != '/')
		return perr(ps, v, "cgroup= needs an absolute path pattern starting with '/'");
	while (n > 1) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		const char *seg_end = slash != NULL ? slash : end;
		size_t len = (size_t)(seg_end - p);

		if (len == 0)
			return perr(ps, p, "empty segment in cgroup pattern");
		for (const char *q = p; q < seg_end; q++) {
			if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
				return perr(ps, q, "byte 0x%02x not allowed in a cgroup pattern",
					    (unsigned char)*q);
			if (*q == '*' && q + 1 < seg_end && q[1] == '*' && len != 2)
				return perr(ps, q, "\"**\" must be a whole segment of the "
					    "cgroup pattern");
		}
		if (slash == NULL)
			break;
		p = slash + 1;
	}
	s->glob = v;
	s->glen = n;
	return 0;
}

/*
 * unit=GLOB: a systemd unit name, '*' for any run of its characters.  Unit
 * names have one segment, so '/' and "**" have no place in it.
 */
static int parse_unit(struct parser *ps, const char *v, size_t n, struct selector *s)
{
	if (n == 0)
		return perr(ps, v, "unit= needs a unit name or a pattern (e.g. backup.service, "
			    "app-*.service)");
	if (n > UNIT_NAME_MAX)
		return perr(ps, v, "unit= pattern longer than %d bytes", UNIT_NAME_MAX);
	for (const char *q = v; q < v + n; q++) {
		if (*q == '/')
			return perr(ps, q, "'/' not allowed in a unit pattern");
		if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
			return perr(ps, q, "byte 0x%02x not allowed in a unit pattern",
				    (unsigned char)*q);
		if (*q == '*' && q + 1 < v + n && q[1] == '*')
			return perr(ps, q, "\"**\" in a unit pattern (a unit name has no '/': "
				    "write *)");
	}
	s->glob = v;
	s->glen = n;
	return 0;
}

static int parse_container(struct parser *ps, const char *v, size_t n, struct selector *s)
{
	if (n == 1 && v[0] == '*')
		return 0;
	if (n < CONTAINER_PREFIX_MIN || n > CONTAINER_ID_LEN)
		goto bad;
	for (size_t i = 0; i < n; i++) {
		if (!is_hex((unsigned char)v[i]))
			goto bad;
		s->value[i] = lower_hex(v[i]);
	}
	s->value[n] = '\0';
	s->vlen = n;
	return 0;
bad:
	return perr(ps, v, "container=%.*s%s: expected a container id (64 hex digits), "
		    "a prefix of at least %d of them, or *", QUOTED(v, n), CONTAINER_PREFIX_MIN);
}

/* 8-4-4-4-12 hex digits, or the 32 hex digits of a static pod's UID. */
static bool pod_uid_valid(const char *v, size_t n)
{
	if (n == POD_UID_HEX_LEN) {
		for (size_t i = 0; i < n; i++)
			if (!is_hex((unsigned char)v[i]))
				return false;
		return true;
	}
	if (n != POD_UID_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? v[i] != '-' : !is_hex((unsigned char)v[i]))
			return false;
	}
	return true;
}

static int parse_pod(struct parser *ps, const char *v, size_t n, struct selector *s)
{
	if (n == 1 && v[0] == '*')
		return 0;
	if (!pod_uid_valid(v, n))
		return perr(ps, v, "pod=%.*s%s: expected a pod UID (8-4-4-4-12 hex digits, "
			    "or 32 for a static pod) or *", QUOTED(v, n));
	for (size_t i = 0; i < n; i++)
		s->value[i] = lower_hex(v[i]);
	s->value[n] = '\0';
	s->vlen = n;
	return 0;
}

static int parse_name(struct parser *ps, const char *v, size_t n, bool user,
		      struct selector *s)
{
	const char *what = user ? "user" : "group";
	char name[256];
	int rc;

	if (n == 0)
		return perr(ps, v, "%s= needs a name", what);
	if (n >= sizeof(name))
		return perr(ps, v, "unknown %s \"%.*s%s\"", what, QUOTED(v, n));
	memcpy(name, v, n);
	name[n] = '\0';
	rc = lookup_id(name, user, &s->id);
	if (rc == -ENOENT)
		return perr(ps, v, "unknown %s \"%.*s%s\"", what, QUOTED(v, n));
	if (rc != 0)
		return perr(ps, v, "looking up %s \"%.*s%s\": %s", what, QUOTED(v, n),
			    strerror(-rc));
	return 0;
}

static int parse_user(struct parser *ps, const char *v, size_t n, struct selector *s)
{
	return parse_name(ps, v, n, true, s);
}

static int parse_group(struct parser *ps, const char *v, size_t n, struct selector *s)
{
	return parse_name(ps, v, n, false, s);
}

/* ---- when a selector holds (pure) ---- */

static bool holds_any(const struct selector *s, const struct identity *who)
{
	(void)s;
	(void)who;
	return true;
}

static bool holds_uid(const struct selector *s, const struct identity *who)
{
	return who->creds && (unsigned)who->uid == s->id;
}

static bool holds_gid(const struct selector *s, const struct identity *who)
{
	return who->creds && identity_in_group(who, (gid_t)s->id);
}

static bool holds_host(const struct selector *s, const struct identity *who)
{
	(void)s;
	return who->established && who->host;
}

static bool holds_cgroup(const struct selector *s, const struct identity *who)
{
	return who->established && who->cgroup != NULL &&
	       glob_match(s->glob, s->glen, who->cgroup, strlen(who->cgroup));
}

static bool holds_container(const struct selector *s, const struct identity *who)
{
	return who->established && who->container[0] != '\0' &&
	       (s->vlen == 0 || strncasecmp(who->container, s->value, s->vlen) == 0);
}

static bool holds_pod(const struct selector *s, const struct identity *who)
{
	return who->established && who->pod[0] != '\0' &&
	       (s->vlen == 0 || strcasecmp(who->pod, s->value) == 0);
}

static bool holds_unit(const struct selector *s, const struct identity *who)
{
	return who->established && who->unit != NULL &&
	       glob_match(s->glob, s->glen, who->unit, strnlen(who->unit, UNIT_NAME_MAX + 1));
}

/* The selectors, in the order the error message lists them. */
static const struct keyword keywords[] = {
	{ "any", false, parse_word, holds_any },
	{ "uid", true, parse_uid, holds_uid },
	{ "gid", true, parse_gid, holds_gid },
	{ "user", true, parse_user, holds_uid },
	{ "group", true, parse_group, holds_gid },
	{ "cgroup", true, parse_cgroup, holds_cgroup },
	{ "container", true, parse_container, holds_container },
	{ "pod", true, parse_pod, holds_pod },
	{ "unit", true, parse_unit, holds_unit },
	{ "host", false, parse_word, holds_host },
};
#define KEYWORD_COUNT (sizeof(keywords) / sizeof(keywords[0]))

/* "any, uid=, ... or host": the keywords, for the error message. */
static void keyword_names(char *buf, size_t cap)
{
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < KEYWORD_COUNT && n < cap; i++) {
		const char *sep = i == 0 ? "" : i + 1 == KEYWORD_COUNT ? " or " : ", ";
		int w = snprintf(buf + n, cap - n, "%s%s%s", sep, keywords[i].name,
				 keywords[i].value ? "=" : "");

		if (w < 0)
			break;
		n += (size_t)w;
	}
}

static int parse_selector(struct parser *ps, const struct token *t, struct selector *s)
{
	const char *eq = memchr(t->p, '=', t->len);
	size_t klen = eq != NULL ? (size_t)(eq - t->p) : t->len;
	char known[160];

	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i < KEYWORD_COUNT; i++) {
		const struct keyword *kw = &keywords[i];

		if (kw->value != (eq != NULL) || strlen(kw->name) != klen ||
		    memcmp(t->p, kw->name, klen) != 0)
			continue;
		s->kw = kw;
		if (eq == NULL)
			return kw->parse(ps, NULL, 0, s);
		return kw->parse(ps, eq + 1, t->len - klen - 1, s);
	}
	keyword_names(known, sizeof(known));
	return perr(ps, t->p, "unknown selector \"%.*s%s\" (expected %s)", QUOTED(t->p, t->len),
		    known);
}

/* ---- lines and the file ---- */

static int add_rule(struct policy *p, struct rule *r)
{
	if (p->nrules == p->cap) {
		size_t cap = p->cap != 0 ? p->cap * 2 : 16;
		struct rule *grown = realloc(p->rules, cap * sizeof(*grown));

		if (grown == NULL)
			return -1;
		p->rules = grown;
		p->cap = cap;
	}
	p->rules[p->nrules++] = *r;
	return 0;
}

static void rule_free(struct rule *r)
{
	free(r->text);
	free(r->sels);
}

/* Bytes the lexer refuses anywhere, comments included. */
static int check_bytes(struct parser *ps, const char *line, size_t len)
{
	if (len > POLICY_MAX_LINE)
		return perr(ps, line + POLICY_MAX_LINE, "line longer than %d bytes",
			    POLICY_MAX_LINE);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if (c == '\0')
			return perr(ps, line + i, "NUL byte");
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return perr(ps, line + i, "control character 0x%02x", c);
	}
	return 0;
}

/*
 * The selectors of a rule, starting at *pos.  The text was copied into the
 * rule first, so the tokens here point into r->text and cgroup globs can
 * keep pointing there.
 */
static int parse_selectors(struct parser *ps, const char *pos, const char *end,
			   struct rule *r)
{
	const char *scan = pos;
	struct token t;
	size_t n = 0;

	while (next_token(&scan, end, &t))
		n++;
	if (n == 0)
		return perr(ps, end, "missing selector (write \"any\" for every caller)");
	r->sels = calloc(n, sizeof(*r->sels));
	if (r->sels == NULL)
		return perr(ps, pos, "out of memory");
	while (next_token(&pos, end, &t))
		if (parse_selector(ps, &t, &r->sels[r->nsels++]) != 0)
			return -1;
	return 0;
}

/* The rule text starts at the action token; parse the copy in r->text. */
static int parse_rule(struct parser *ps, const struct token *action, const char *end,
		      struct rule *r)
{
	const char *pos, *text_end;
	struct token t;
	size_t len = (size_t)(end - action->p);

	/* Trim trailing blanks so r->text is the rule exactly as an operator reads it. */
	while (len > 0 && (action->p[len - 1] == ' ' || action->p[len - 1] == '\t'))
		len--;
	r->text = malloc(len + 1);
	if (r->text == NULL)
		return perr(ps, action->p, "out of memory");
	memcpy(r->text, action->p, len);
	r->text[len] = '\0';
	/* Errors now point into the copy; keep their columns those of the file. */
	ps->base_col += (size_t)(action->p - ps->base);
	ps->base = r->text;
	pos = r->text + action->len;
	text_end = r->text + len;

	if (token_is(action, "permit"))
		r->permit = true;
	else if (!token_is(action, "deny"))
		return perr(ps, r->text, "unknown action \"%.*s%s\" (expected permit or deny)",
			    QUOTED(action->p, action->len));
	if (!next_token(&pos, text_end, &t))
		return perr(ps, text_end, "missing permissions after \"%s\"",
			    r->permit ? "permit" : "deny");
	if (parse_perms(ps, &t, &r->perms) != 0)
		return -1;
	if (!next_token(&pos, text_end, &t))
		return perr(ps, text_end, "missing pattern after the permissions");
	r->pattern = t.p;
	if (parse_pattern(ps, &t, r) != 0)
		return -1;
	return parse_selectors(ps, pos, text_end, r);
}

static int parse_line(struct parser *ps, const char *line, size_t len, struct policy *p)
{
	const char *hash, *end, *pos = line;
	struct rule r;
	struct token action;

	ps->base = line;
	ps->base_col = 1;
	if (check_bytes(ps, line, len) != 0)
		return -1;
	hash = memchr(line, '#', len);
	end = hash != NULL ? hash : line + len;
	if (!next_token(&pos, end, &action))
		return 0; /* blank or comment only */
	memset(&r, 0, sizeof(r));
	r.line = ps->line;
	if (parse_rule(ps, &action, end, &r) != 0 || add_rule(p, &r) != 0) {
		if (r.text != NULL && ps->err[0] == '\0')
			perr(ps, r.text, "out of memory");
		rule_free(&r);
		return -1;
	}
	return 0;
}

int policy_parse(const char *text, size_t len, const char *source,
		 struct policy **out, char *err, size_t errlen)
{
	char dummy[1];
	struct parser ps = { .source = source, .line = 0, .err = err, .errlen = errlen };
	struct policy *p = calloc(1, sizeof(*p));
	size_t off = 0;
	int rc = -1;

	if (err == NULL || errlen == 0) {
		ps.err = dummy;
		ps.errlen = sizeof(dummy);
	}
	ps.err[0] = '\0';
	if (p == NULL) {
		set_err(ps.err, ps.errlen, "%s%sout of memory", source ? source : "",
			source ? ": " : "");
		goto out;
	}
	while (off < len) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t llen = nl != NULL ? (size_t)(nl - (text + off)) : len - off;

		if (ps.line == UINT32_MAX) {
			set_err(ps.err, ps.errlen, "too many lines");
			goto out;
		}
		ps.line++;
		if (parse_line(&ps, text + off, llen, p) != 0)
			goto out;
		off += llen + 1;
	}
	*out = p;
	p = NULL;
	rc = 0;
out:
	policy_free(p);
	return rc;
}

/* ---- loading ---- */

static int read_all(int fd, char *buf, size_t cap, size_t *got)
{
	size_t total = 0;

	while (total < cap) {
		ssize_t n = read(fd, buf + total, cap - total);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		total += (size_t)n;
	}
	*got = total;
	return 0;
}

int policy_load(const char *path, struct policy **out, char *err, size_t errlen)
{
	char dummy[1];
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd, e, rc = -1;

	if (err == NULL || errlen == 0) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	/*
	 * Symbolic links are followed (a Kubernetes ConfigMap is mounted as
	 * links); the checks below apply to the file actually read.  O_NONBLOCK
	 * so a FIFO planted at the path cannot hang us in open().
	 */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		set_err(err, errlen, "policy %s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0) {
		set_err(err, errlen, "policy %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		set_err(err, errlen, "policy %s: not a regular file", path);
		goto out;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		set_err(err, errlen, "policy %s: mode %04o lets group or others write it",
			path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	/* Whoever owns the file decides who gets secrets: only root or ourselves. */
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		set_err(err, errlen, "policy %s: owned by uid %u; must be owned by root or "
			"by the user secretd runs as", path, (unsigned)st.st_uid);
		goto out;
	}
	if (st.st_size > POLICY_MAX_FILE) {
		set_err(err, errlen, "policy %s: larger than %d bytes", path, POLICY_MAX_FILE);
		goto out;
	}
	/* One byte more than fstat said, to notice a file that grew meanwhile. */
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		set_err(err, errlen, "policy %s: out of memory", path);
		goto out;
	}
	e = read_all(fd, buf, (size_t)st.st_size + 1, &got);
	if (e != 0) {
		set_err(err, errlen, "policy %s: %s", path, strerror(-e));
		goto out;
	}
	if (got > (size_t)st.st_size) {
		set_err(err, errlen, "policy %s: changed while being read", path);
		goto out;
	}
	rc = policy_parse(buf, got, path, out, err, errlen);
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return rc;
}

/* ---- evaluation ---- */

static bool only_chars(const char *s, size_t n, bool dash_ok)
{
	for (size_t i = 0; i < n; i++)
		if (!is_hex((unsigned char)s[i]) && !(dash_ok && s[i] == '-'))
			return false;
	return true;
}

static bool var_uid(const struct identity *who, char *num, size_t numlen, const char **val,
		    size_t *len)
{
	if (!who->creds)
		return false;
	*len = (size_t)snprintf(num, numlen, "%u", (unsigned)who->uid);
	*val = num;
	return *len < numlen;
}

static bool var_container(const struct identity *who, char *num, size_t numlen,
			  const char **val, size_t *len)
{
	(void)num;
	(void)numlen;
	*val = who->container;
	*len = strnlen(who->container, sizeof(who->container));
	return who->established && *len > 0 && *len < sizeof(who->container) &&
	       only_chars(*val, *len, false);
}

static bool var_pod(const struct identity *who, char *num, size_t numlen, const char **val,
		    size_t *len)
{
	(void)num;
	(void)numlen;
	*val = who->pod;
	*len = strnlen(who->pod, sizeof(who->pod));
	return who->established && *len > 0 && *len < sizeof(who->pod) &&
	       only_chars(*val, *len, true);
}

/*
 * A unit name goes into a pattern only when it could be a segment of a
 * secret name: name characters, not "." or "..".  A unit with others ('@',
 * ':', '\') can never name a secret through ${unit}; its rule does not match.
 */
static bool var_unit(const struct identity *who, char *num, size_t numlen, const char **val,
		     size_t *len)
{
	(void)num;
	(void)numlen;
	if (!who->established || who->unit == NULL)
		return false;
	*val = who->unit;
	*len = strnlen(who->unit, UNIT_NAME_MAX + 1);
	if (*len == 0 || *len > UNIT_NAME_MAX || bytes_dots(*val, *len))
		return false;
	for (size_t i = 0; i < *len; i++)
		if (!is_name_char((unsigned char)(*val)[i]))
			return false;
	return true;
}

/* Expand the rule's variables into buf; false when the caller lacks one. */
static bool substitute(const struct rule *r, const struct identity *who, char *buf,
		       size_t cap, size_t *outlen)
{
	const char *p = r->pattern, *end = r->pattern + r->plen;
	char num[16];
	size_t n = 0;

	while (p < end) {
		const char *val = p;
		size_t len = 1;
		int v = *p == '$' ? variable_at(p, end) : -1;

		if (v >= 0 && !variables[v].value(who, num, sizeof(num), &val, &len))
			return false;
		if (len > cap - n)
			return false;
		memcpy(buf + n, val, len);
		n += len;
		p += v >= 0 ? variables[v].len : 1;
	}
	*outlen = n;
	return true;
}

static bool rule_matches(const struct rule *r, const struct identity *who, unsigned perm,
			 const char *name, size_t len)
{
	char buf[SUBST_MAX];
	size_t blen;

	if ((r->perms & perm) != perm)
		return false;
	for (size_t i = 0; i < r->nsels; i++)
		if (!r->sels[i].kw->holds(&r->sels[i], who))
			return false;
	if (!r->has_vars)
		return glob_match(r->pattern, r->plen, name, len);
	return substitute(r, who, buf, sizeof(buf), &blen) &&
	       glob_match(buf, blen, name, len);
}

bool policy_eval(const struct policy *p, const struct identity *who,
		 unsigned perm, const char *name, size_t len, unsigned *line)
{
	bool permit = false;
	unsigned decided = 0;

	/* Last match wins, so the first match walking backwards decides. */
	if (p != NULL && who != NULL && name != NULL && perm != 0 && (perm & ~PERM_ALL) == 0) {
		for (size_t i = p->nrules; i-- > 0;) {
			if (rule_matches(&p->rules[i], who, perm, name, len)) {
				permit = p->rules[i].permit;
				decided = p->rules[i].line;
				break;
			}
		}
	}
	if (line != NULL)
		*line = decided;
	return permit;
}

void policy_free(struct policy *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->nrules; i++)
		rule_free(&p->rules[i]);
	free(p->rules);
	free(p);
}

size_t policy_rule_count(const struct policy *p)
{
	return p != NULL ? p->nrules : 0;
}

const char *policy_rule_text(const struct policy *p, unsigned line)
{
	for (size_t i = 0; p != NULL && i < p->nrules; i++)
		if (p->rules[i].line == line)
			return p->rules[i].text;
	return NULL;
}

unsigned policy_perm_from_name(const char *word)
{
	/* "all" is for rules only: a request asks for exactly one permission. */
	for (size_t i = 0; i < 4; i++)
		if (strcmp(word, perm_names[i].name) == 0)
			return perm_names[i].bits;
	return 0;
}
