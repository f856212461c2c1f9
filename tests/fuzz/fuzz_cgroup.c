/*
 * libFuzzer harness for the /proc/<pid>/cgroup parser: parse the input with
 * its exact length (no terminator), check what a successful parse promises,
 * and run the path deriver on a terminated copy.  Never a crash, a read past
 * the input or a sanitizer report.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cgroup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_id(const char *s, size_t want)
{
	size_t n = strlen(s);

	if (n != 0 && n != want)
		abort();
}

/* A pod UID is a UUID with '-' or a static pod's 32 hex digits. */
static void check_pod(const char *s)
{
	size_t n = strlen(s);

	if (n != 0 && n != POD_UID_LEN && n != POD_UID_HEX_LEN)
		abort();
	if (n == POD_UID_LEN && (s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-'))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cgroup_info info;
	char cid[CONTAINER_ID_LEN + 1], pod[POD_UID_LEN + 1];
	/* An exact-size heap copy, so ASan sees any read past the input. */
	char *text = malloc(size ? size : 1);
	char *path;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	if (cgroup_parse(text, size, &info) == 0) {
		if (info.path[0] != '\0' && info.path[0] != '/')
			abort();
		check_id(info.container, CONTAINER_ID_LEN);
		check_pod(info.pod);
		/* The ids come from some line's path; the chosen path alone
		 * may not carry them (v1 and hybrid hosts). */
	} else if (info.path[0] != '\0' || info.problem[0] == '\0') {
		abort();
	}
	free(text);

	path = malloc(size + 1);
	if (path == NULL)
		return 0;
	memcpy(path, data, size);
	path[size] = '\0';
	cgroup_path_ids(path, cid, pod);
	check_id(cid, CONTAINER_ID_LEN);
	check_pod(pod);
	free(path);
	return 0;
}
