/* list: the names a caller may list, matching a glob, sorted. */
#include <stdlib.h>
#include <string.h>

#include <secretd/names.h>

#include "glob.h"
#include "namelist.h"
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
	struct namelist names;
};

static int list_one(const char *name, size_t len, void *arg)
{
	struct list_ctx *l = arg;
	unsigned line;

	if (l->glob->len > 0 && !glob_match((const char *)l->glob->ptr, l->glob->len, name, len))
		return 0;
	if (!policy_eval(l->rq->svc->policy, l->rq->id, PERM_LIST, name, len, &line))
		return 0;
	return namelist_add(&l->names, name, len, 0);
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
	struct list_ctx l = {
		.rq = rq, .glob = &rq->wire->name,
		.names = { .max_bytes = LIST_MAX_BYTES, .per_name = 2 },
	};

	if (!glob_valid(&rq->wire->name)) {
		request_fail(rq, WIRE_INVALID, "error", "bad glob",
			     "bad glob: use name characters, '/' and '*' only, at most 255 bytes");
		return OP_DONE;
	}
	if (vault_list(rq->svc->vault, list_one, &l) < 0 || l.names.nomem || l.names.too_many ||
	    namelist_to_reply(&l.names, r, false) != 0) {
		if (l.names.too_many)
			request_fail(rq, WIRE_INVALID, "error", "too many names",
				     "too many names for one answer; narrow the glob");
		else
			request_fail(rq, WIRE_ERROR, "error", "list failed", "listing failed");
	} else {
		r->ev.decision = "allow";
		r->ev.count = (long long)r->resp.nitems;
		r->resp.status = WIRE_OK;
	}
	namelist_free(&l.names);
	return OP_DONE;
}
