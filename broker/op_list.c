/* list: the names a caller may list, matching a glob, sorted. */
#include <stdlib.h>
#include <string.h>

#include <secretd/names.h>

#include "glob.h"
#include "ops.h"
#include "reply.h"
#include "request.h"
#include "services.h"

/*
 * The answer's buffer must fit the identity's share of large buffers
 * (BUFFERS_SHARE), less the frame's own header.
 */
#define LIST_MAX_BYTES (BUFFERS_SHARE - 64)

struct list_ctx {
	struct request *rq;
	const struct wire_str *glob;
	char *text;          /* the names, one after another */
	size_t text_len, text_cap;
	size_t *lens;        /* and their lengths */
	size_t count, lens_cap;
	size_t encoded;      /* bytes the names take on the wire */
	bool too_many, nomem;
};

static bool grow(void **buf, size_t *cap, size_t need, size_t unit)
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

static int list_one(const char *name, size_t len, void *arg)
{
	struct list_ctx *l = arg;
	unsigned line;

	if (l->glob->len > 0 && !glob_match((const char *)l->glob->ptr, l->glob->len, name, len))
		return 0;
	if (!policy_eval(l->rq->svc->policy, l->rq->id, PERM_LIST, name, len, &line))
		return 0;
	if (l->encoded + 2 + len > LIST_MAX_BYTES) {
		l->too_many = true;
		return 1;
	}
	if (!grow((void **)&l->text, &l->text_cap, l->text_len + len, 1) ||
	    !grow((void **)&l->lens, &l->lens_cap, l->count + 1, sizeof(size_t))) {
		l->nomem = true;
		return 1;
	}
	memcpy(l->text + l->text_len, name, len);
	l->text_len += len;
	l->lens[l->count++] = len;
	l->encoded += 2 + len;
	return 0;
}

/* A glob is made of name characters, '/' and '*'. */
static bool glob_valid(const struct wire_str *g)
{
	if (g->len > NAME_MAX_LEN)
		return false;
	for (size_t i = 0; i < g->len; i++) {
		uint8_t ch = g->ptr[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-' ||
		      ch == '/' || ch == '*'))
			return false;
	}
	return true;
}

enum op_result op_list(struct request *rq)
{
	struct reply *r = rq->reply;
	struct list_ctx l = { .rq = rq, .glob = &rq->wire->name };
	size_t off = 0;

	if (!glob_valid(&rq->wire->name)) {
		request_fail(rq, WIRE_INVALID, "error", "bad glob",
			     "bad glob: use name characters, '/' and '*' only, at most 255 bytes");
		return OP_DONE;
	}
	if (vault_list(rq->svc->vault, list_one, &l) < 0 || l.nomem || l.too_many ||
	    (r->items = calloc(l.count ? l.count : 1, sizeof(*r->items))) == NULL) {
		if (l.too_many)
			request_fail(rq, WIRE_INVALID, "error", "too many names",
				     "too many names for one answer; narrow the glob");
		else
			request_fail(rq, WIRE_ERROR, "error", "list failed", "listing failed");
		free(l.text);
		free(l.lens);
		return OP_DONE;
	}
	for (size_t i = 0; i < l.count; i++) {
		r->items[i].ptr = (const uint8_t *)l.text + off;
		r->items[i].len = l.lens[i];
		off += l.lens[i];
	}
	free(l.lens);
	r->item_text = l.text;
	r->ev.decision = "allow";
	r->ev.count = (long long)l.count;
	r->resp.status = WIRE_OK;
	r->resp.items = r->items;
	r->resp.nitems = l.count;
	return OP_DONE;
}
