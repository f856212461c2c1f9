/* Operations about the broker and the caller: ping, whoami. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "reply.h"
#include "request.h"
#include "services.h"

enum op_result op_ping(struct request *rq)
{
	struct reply *r = rq->reply;

	r->ev.decision = "allow";
	r->resp.status = WIRE_OK;
	r->resp.value.ptr = (const uint8_t *)rq->svc->banner;
	r->resp.value.len = strlen(rq->svc->banner);
	return OP_DONE;
}

#define WHOAMI_KEYS 10

/* whoami: what the broker sees, as key/value pairs into text. */
static int whoami_text(const struct identity *id, char *text, size_t cap,
		       struct wire_str items[2 * WHOAMI_KEYS])
{
	char groups[1024] = "";
	size_t glen = 0, pos = 0;
	const char *values[WHOAMI_KEYS][2];
	char uid[16], gid[16], pid[16];

	for (size_t i = 0; i < id->ngroups && glen + 12 < sizeof(groups); i++)
		glen += (size_t)snprintf(groups + glen, sizeof(groups) - glen, "%s%u",
					 i ? "," : "", (unsigned)id->groups[i]);
	snprintf(uid, sizeof(uid), "%u", (unsigned)id->uid);
	snprintf(gid, sizeof(gid), "%u", (unsigned)id->gid);
	snprintf(pid, sizeof(pid), "%d", (int)id->pid);
	values[0][0] = "uid", values[0][1] = id->creds ? uid : "";
	values[1][0] = "gid", values[1][1] = id->creds ? gid : "";
	values[2][0] = "groups", values[2][1] = groups;
	values[3][0] = "pid", values[3][1] = id->creds ? pid : "";
	values[4][0] = "cgroup", values[4][1] = id->cgroup != NULL ? id->cgroup : "";
	values[5][0] = "container", values[5][1] = id->container;
	values[6][0] = "pod", values[6][1] = id->pod;
	values[7][0] = "host", values[7][1] = id->established ? (id->host ? "yes" : "no") : "";
	values[8][0] = "pidfd", values[8][1] = id->pidfd_verified ? "yes" : "no";
	values[9][0] = "identity", values[9][1] = id->established ? "ok" : id->problem;
	for (size_t i = 0; i < WHOAMI_KEYS; i++) {
		for (size_t k = 0; k < 2; k++) {
			size_t len = strlen(values[i][k]);

			if (pos + len > cap)
				return -1;
			memcpy(text + pos, values[i][k], len);
			items[2 * i + k].ptr = (const uint8_t *)text + pos;
			items[2 * i + k].len = len;
			pos += len;
		}
	}
	return 0;
}

enum op_result op_whoami(struct request *rq)
{
	struct reply *r = rq->reply;
	const struct identity *id = rq->id;
	size_t cap = 2048 + (id->cgroup != NULL ? strlen(id->cgroup) : 0);

	r->ev.decision = "allow";
	r->item_text = malloc(cap);
	r->items = calloc(2 * WHOAMI_KEYS, sizeof(*r->items));
	if (r->item_text == NULL || r->items == NULL ||
	    whoami_text(id, r->item_text, cap, r->items) != 0) {
		request_fail(rq, WIRE_ERROR, "error", "out of memory", "out of memory");
		return OP_DONE;
	}
	r->resp.status = WIRE_OK;
	r->resp.items = r->items;
	r->resp.nitems = 2 * WHOAMI_KEYS;
	return OP_DONE;
}
