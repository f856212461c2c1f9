/* The identity of one connection: only ownership rules live here. */
#include "identity.h"

#include <stdlib.h>
#include <string.h>

void identity_clear(struct identity *id)
{
	if (id == NULL)
		return;
	free(id->groups);
	free(id->cgroup);
	free(id->unit);
	/* Zero everything so a reused struct never carries a stale identity. */
	memset(id, 0, sizeof(*id));
}

bool identity_in_group(const struct identity *id, gid_t gid)
{
	if (id->gid == gid)
		return true;
	for (size_t i = 0; i < id->ngroups; i++)
		if (id->groups[i] == gid)
			return true;
	return false;
}
