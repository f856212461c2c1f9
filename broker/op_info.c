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

/*
 * An answer of key/value pairs (whoami, status): pairs[0..n) copied into
 * one buffer the reply owns, so that nothing points at the caller's stack.
 */
static enum op_result pairs_answer(struct request *rq, const char *const (*pairs)[2], size_t n)
{
	struct reply *r = rq->reply;
	size_t cap = 0, pos = 0;

	for (size_t i = 0; i < n; i++)
		cap += strlen(pairs[i][0]) + strlen(pairs[i][1]);
	r->item_text = malloc(cap > 0 ? cap : 1);
	r->items = calloc(2 * n, sizeof(*r->items));
	if (r->item_text == NULL || r->items == NULL) {
		request_fail(rq, WIRE_ERROR, "error", "out of memory", "out of memory");
		return OP_DONE;
	}
	for (size_t i = 0; i < 2 * n; i++) {
		const char *v = pairs[i / 2][i % 2];
		size_t len = strlen(v);

		memcpy(r->item_text + pos, v, len);
		r->items[i].ptr = (const uint8_t *)r->item_text + pos;
		r->items[i].len = len;
		pos += len;
	}
	r->ev.decision = "allow";
	r->resp.status = WIRE_OK;
	r->resp.items = r->items;
	r->resp.nitems = 2 * n;
	return OP_DONE;
}

/* whoami: what the broker sees. */
enum op_result op_whoami(struct request *rq)
{
	const struct identity *id = rq->id;
	char groups[1024] = "", uid[16], gid[16], pid[16];
	size_t glen = 0;

	for (size_t i = 0; i < id->ngroups && glen + 12 < sizeof(groups); i++)
		glen += (size_t)snprintf(groups + glen, sizeof(groups) - glen, "%s%u",
					 i ? "," : "", (unsigned)id->groups[i]);
	snprintf(uid, sizeof(uid), "%u", (unsigned)id->uid);
	snprintf(gid, sizeof(gid), "%u", (unsigned)id->gid);
	snprintf(pid, sizeof(pid), "%d", (int)id->pid);
	const char *const pairs[][2] = {
		{ "uid", id->creds ? uid : "" },
		{ "gid", id->creds ? gid : "" },
		{ "groups", groups },
		{ "pid", id->creds ? pid : "" },
		{ "cgroup", id->cgroup != NULL ? id->cgroup : "" },
		{ "container", id->container },
		{ "pod", id->pod },
		{ "host", id->established ? (id->host ? "yes" : "no") : "" },
		{ "pidfd", id->pidfd_verified ? "yes" : "no" },
		{ "identity", id->established ? "ok" : id->problem },
	};

	return pairs_answer(rq, pairs, sizeof(pairs) / sizeof(pairs[0]));
}

/* status: who may ask (secretctl(1)): root on the host, or list on every name. */
static bool may_see_status(struct request *rq, unsigned *rule)
{
	const struct identity *id = rq->id;

	*rule = 0;
	if (id->creds && id->uid == 0 && id->host)
		return true;
	return policy_eval(rq->svc->policy, id, PERM_LIST, "**", 2, rule);
}

enum op_result op_status(struct request *rq)
{
	struct services *svc = rq->svc;
	struct upstream_status st = { .state = "none", .problem = "" };
	char revision[24], lag[24], secrets[24];
	size_t count = 0;
	unsigned rule;

	if (!may_see_status(rq, &rule)) {
		rq->reply->ev.rule = rule;
		request_fail(rq, WIRE_DENIED, "deny", NULL, "permission denied");
		return OP_DONE;
	}
	rq->reply->ev.rule = rule;
	if (vault_count(svc->vault, &count) != VAULT_OK) {
		request_fail(rq, WIRE_ERROR, "error", "status unavailable", "status unavailable");
		return OP_DONE;
	}
	if (svc->upstream != NULL)
		upstream_status(svc->upstream, &st);
	snprintf(revision, sizeof(revision), "%lld", (long long)st.revision);
	snprintf(lag, sizeof(lag), "%llu", (unsigned long long)st.lag_ms);
	snprintf(secrets, sizeof(secrets), "%zu", count);
	const char *const pairs[][2] = {
		{ "upstream", svc->upstream != NULL ? "etcd" : "none" },
		{ "connected", st.connected ? "yes" : "no" },
		{ "revision", revision },
		{ "lag_ms", lag },
		{ "secrets", secrets },
		{ "audit", gate_healthy(svc->gate) ? "ok" : "degraded" },
		{ "version", SECRETD_VERSION },
		{ "state", st.state },
		{ "problem", st.problem },
	};

	return pairs_answer(rq, pairs, sizeof(pairs) / sizeof(pairs[0]));
}
