/* Operations about the broker and the caller: ping, whoami, status. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "reply.h"
#include "request.h"
#include "services.h"
#include "upstream.h"
#include "vault.h"

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

#define STATUS_KEYS 9

/* status: who may ask (secretctl(1)): root on the host, or list on every name. */
static bool may_see_status(struct request *rq, unsigned *rule)
{
	const struct identity *id = rq->id;

	*rule = 0;
	if (id->creds && id->uid == 0 && id->host)
		return true;
	return policy_eval(rq->svc->policy, id, PERM_LIST, "**", 2, rule);
}

static int status_text(struct services *svc, char *text, size_t cap,
		       struct wire_str items[2 * STATUS_KEYS])
{
	struct upstream_status st = { .state = "none", .problem = "" };
	char revision[24], lag[24], secrets[24];
	const char *values[STATUS_KEYS][2];
	size_t count = 0, pos = 0;

	if (svc->upstream != NULL)
		upstream_status(svc->upstream, &st);
	if (vault_count(svc->vault, &count) != VAULT_OK)
		return -1;
	snprintf(revision, sizeof(revision), "%lld", (long long)st.revision);
	snprintf(lag, sizeof(lag), "%llu", (unsigned long long)st.lag_ms);
	snprintf(secrets, sizeof(secrets), "%zu", count);
	values[0][0] = "upstream", values[0][1] = svc->upstream != NULL ? "etcd" : "none";
	values[1][0] = "connected", values[1][1] = st.connected ? "yes" : "no";
	values[2][0] = "revision", values[2][1] = revision;
	values[3][0] = "lag_ms", values[3][1] = lag;
	values[4][0] = "secrets", values[4][1] = secrets;
	values[5][0] = "audit", values[5][1] = gate_healthy(svc->gate) ? "ok" : "degraded";
	values[6][0] = "version", values[6][1] = SECRETD_VERSION;
	values[7][0] = "state", values[7][1] = st.state;
	values[8][0] = "problem", values[8][1] = st.problem;
	for (size_t i = 0; i < STATUS_KEYS; i++) {
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

enum op_result op_status(struct request *rq)
{
	struct reply *r = rq->reply;
	size_t cap = 1024;
	unsigned rule;

	if (!may_see_status(rq, &rule)) {
		r->ev.rule = rule;
		request_fail(rq, WIRE_DENIED, "deny", NULL, "permission denied");
		return OP_DONE;
	}
	r->ev.rule = rule;
	r->ev.decision = "allow";
	r->item_text = malloc(cap);
	r->items = calloc(2 * STATUS_KEYS, sizeof(*r->items));
	if (r->item_text == NULL || r->items == NULL ||
	    status_text(rq->svc, r->item_text, cap, r->items) != 0) {
		request_fail(rq, WIRE_ERROR, "error", "status unavailable", "status unavailable");
		return OP_DONE;
	}
	r->resp.status = WIRE_OK;
	r->resp.items = r->items;
	r->resp.nitems = 2 * STATUS_KEYS;
	return OP_DONE;
}
