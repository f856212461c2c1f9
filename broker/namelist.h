/*
 * The names an answer lists (list, watch), collected one by one within a
 * byte bound, then handed to the reply that owns them from then on.
 */
#ifndef SECRETD_NAMELIST_H
#define SECRETD_NAMELIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct reply;

struct namelist {
	size_t max_bytes;    /* on the wire, at most */
	size_t per_name;     /* wire bytes a name costs besides itself */
	char *text;          /* the names, one after another */
	size_t text_len, text_cap;
	size_t *lens;
	uint32_t *versions;
	size_t count, cap;
	size_t encoded;
	bool too_many, nomem;
};

/* 0, or 1 with too_many or nomem set: stop collecting. */
int namelist_add(struct namelist *l, const char *name, size_t len, uint32_t version);
/* The reply's items (and, with_versions, its versions) from l; l is emptied. */
int namelist_to_reply(struct namelist *l, struct reply *r, bool with_versions);
void namelist_free(struct namelist *l);

#endif
