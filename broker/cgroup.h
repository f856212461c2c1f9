/*
 * Parsing of /proc/<pid>/cgroup into a cgroup path, a container id and a
 * Kubernetes pod UID.  Pure functions over untrusted bytes (fuzzed).
 */
#ifndef SECRETD_CGROUP_H
#define SECRETD_CGROUP_H

#include <stdbool.h>
#include <stddef.h>

#include "identity.h"

#define CGROUP_PATH_MAX 4096

struct cgroup_info {
	char path[CGROUP_PATH_MAX]; /* chosen path; "" when none */
	char container[CONTAINER_ID_LEN + 1];
	char pod[POD_UID_LEN + 1];
	/* Set when lines disagreed or the path is outside our namespace. */
	char problem[120];
};

/*
 * Parse the whole contents of a /proc/<pid>/cgroup file (len bytes, not
 * terminated).  Returns 0 on success (fields possibly empty), -1 when the
 * text is malformed (problem says why).
 */
int cgroup_parse(const char *text, size_t len, struct cgroup_info *out);

/* Derive container id and pod UID from one cgroup path (terminated). */
void cgroup_path_ids(const char *path, char container[CONTAINER_ID_LEN + 1],
		     char pod[POD_UID_LEN + 1]);

#endif
