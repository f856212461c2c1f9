/*
 * libFuzzer harness for systemd credential addresses and the cgroup rule.
 * Input: ADDRESS [0xff CGROUP [0xff PID1_CGROUP]].  ADDRESS is parsed with
 * its exact length (an exact-size heap copy, so ASan sees any read past
 * it); a successful parse must give a unit and id that rebuild the name.
 * The cgroups (terminated copies) then go through credential_peer_vouches,
 * which must never vouch for a cgroup whose last segment is not the unit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "credential.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *dup_part(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);

	if (s != NULL) {
		memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

static void check_parse(const struct credential_req *r)
{
	char rebuilt[CREDENTIAL_NAME_CAP + 1];
	size_t ul = strlen(r->unit), il = strlen(r->id);

	if (ul == 0 || ul > CREDENTIAL_UNIT_MAX || il == 0 || il > CREDENTIAL_ID_MAX)
		abort();
	if (strchr(r->unit, '/') != NULL || strchr(r->id, '/') != NULL)
		abort();
	memcpy(rebuilt, "systemd/", 8);
	memcpy(rebuilt + 8, r->unit, ul);
	rebuilt[8 + ul] = '/';
	memcpy(rebuilt + 9 + ul, r->id, il + 1);
	if (strcmp(rebuilt, r->name) != 0)
		abort();
}

static void check_vouch(const char *cg, const char *pid1, const char *unit)
{
	struct identity id;
	const char *why = NULL, *last;

	memset(&id, 0, sizeof(id));
	id.pid = 2;
	id.host = true;
	id.creds = true;
	id.established = true;
	id.cgroup = (char *)(uintptr_t)cg;
	if (!credential_peer_vouches(&id, pid1, unit, &why)) {
		if (why == NULL)
			abort();
		return;
	}
	last = strrchr(cg, '/');
	if (last == NULL || strcmp(last + 1, unit) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *sep = memchr(data, 0xff, size);
	size_t alen = sep != NULL ? (size_t)(sep - data) : size;
	struct credential_req req;
	char *addr = malloc(alen ? alen : 1), *cg = NULL, *pid1 = NULL;

	if (addr == NULL)
		return 0;
	memcpy(addr, data, alen);
	if (credential_parse_address(addr, alen, &req) == 0)
		check_parse(&req);
	else if (req.unit[0] != '\0' || req.refusal != NULL)
		abort();
	if (sep != NULL) {
		const uint8_t *rest = sep + 1, *sep2;
		size_t rlen = size - alen - 1;

		sep2 = memchr(rest, 0xff, rlen);
		cg = dup_part(rest, sep2 != NULL ? (size_t)(sep2 - rest) : rlen);
		if (sep2 != NULL)
			pid1 = dup_part(sep2 + 1, rlen - (size_t)(sep2 - rest) - 1);
		if (cg != NULL && (sep2 == NULL || pid1 != NULL))
			check_vouch(cg, pid1, req.unit[0] != '\0' ? req.unit : "web.service");
	}
	free(pid1);
	free(cg);
	free(addr);
	return 0;
}
