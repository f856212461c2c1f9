#include "namelist.h"

#include <stdlib.h>
#include <string.h>

#include "reply.h"

static bool grow(void **buf, size_t unit, size_t *cap, size_t need)
{
	size_t n = *cap ? *cap : 64;
	void *bigger;

	if (need <= *cap)
		return true;
	while (n < need)
		n *= 2;
	bigger = realloc(*buf, n * unit);
	if (bigger == NULL)
		return false;
	*buf = bigger;
	*cap = n;
	return true;
}

int namelist_add(struct namelist *l, const char *name, size_t len, uint32_t version)
{
	size_t cap = l->cap;

	if (l->encoded + l->per_name + len > l->max_bytes) {
		l->too_many = true;
		return 1;
	}
	/* lens and versions grow together (the same need from the same cap). */
	if (!grow((void **)&l->text, 1, &l->text_cap, l->text_len + len) ||
	    !grow((void **)&l->lens, sizeof(size_t), &cap, l->count + 1) ||
	    !grow((void **)&l->versions, sizeof(uint32_t), &l->cap, l->count + 1)) {
		l->nomem = true;
		return 1;
	}
	memcpy(l->text + l->text_len, name, len);
	l->text_len += len;
	l->lens[l->count] = len;
	l->versions[l->count++] = version;
	l->encoded += l->per_name + len;
	return 0;
}

int namelist_to_reply(struct namelist *l, struct reply *r, bool with_versions)
{
	size_t off = 0;

	r->items = calloc(l->count ? l->count : 1, sizeof(*r->items));
	if (r->items == NULL)
		return -1;
	for (size_t i = 0; i < l->count; i++) {
		r->items[i].ptr = (const uint8_t *)l->text + off;
		r->items[i].len = l->lens[i];
		off += l->lens[i];
	}
	r->item_text = l->text;
	l->text = NULL;
	if (with_versions) {
		r->versions = l->versions;
		l->versions = NULL;
	}
	r->resp.items = r->items;
	r->resp.versions = r->versions;
	r->resp.nitems = l->count;
	return 0;
}

void namelist_free(struct namelist *l)
{
	free(l->text);
	free(l->lens);
	free(l->versions);
	l->text = NULL;
	l->lens = NULL;
	l->versions = NULL;
}
