/*
 * The access policy: parsing the rule file and deciding one request.
 * Grammar in CONTRACT.md ("permit|deny PERMS PATTERN SELECTOR...").
 * Parsing fails closed: any error rejects the whole file.
 */
#ifndef SECRETD_POLICY_H
#define SECRETD_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "identity.h"

enum perm {
	PERM_READ = 1u << 0,
	PERM_WRITE = 1u << 1,
	PERM_LIST = 1u << 2,
	PERM_DELETE = 1u << 3,
};
#define PERM_ALL (PERM_READ | PERM_WRITE | PERM_LIST | PERM_DELETE)

struct policy;

/*
 * Parse policy text (len bytes, not terminated).  User and group names are
 * resolved here.  On error returns -1 and writes "LINE:COL: reason" into err;
 * `source` (a file name) prefixes the message when not NULL.
 */
int policy_parse(const char *text, size_t len, const char *source,
		 struct policy **out, char *err, size_t errlen);

/*
 * Read and parse a policy file, refusing one writable by group or others.
 * Same error convention as policy_parse.
 */
int policy_load(const char *path, struct policy **out, char *err, size_t errlen);

/*
 * Decide whether `who` may do `perm` (one enum perm bit) on `name` (len
 * bytes).  Last matching rule wins; *line gets its line number, 0 for the
 * default deny.  Pure: no I/O, no allocation failure paths.
 */
bool policy_eval(const struct policy *p, const struct identity *who,
		 unsigned perm, const char *name, size_t len, unsigned *line);

void policy_free(struct policy *p);

/* Number of rules (for the "loaded N rules" log line). */
size_t policy_rule_count(const struct policy *p);

/*
 * The text of the rule on `line` as written (comment and outer blanks
 * removed), for `check-policy --as`; NULL when no rule is on that line.
 */
const char *policy_rule_text(const struct policy *p, unsigned line);

/* Parse "read", "write", "list", "delete" into a perm bit; 0 if unknown. */
unsigned policy_perm_from_name(const char *word);

#endif
