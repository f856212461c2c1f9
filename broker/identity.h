/*
 * Who is calling: what the broker learned from the kernel about one
 * connection.  peer.c fills it once per connection; policy.c, audit.c and
 * server.c only read it.  Strings are owned by the struct (identity_clear).
 */
#ifndef SECRETD_IDENTITY_H
#define SECRETD_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define CONTAINER_ID_LEN 64 /* hex digits */
#define POD_UID_LEN 36      /* 8-4-4-4-12, the longest form of a pod UID */
#define POD_UID_HEX_LEN 32  /* a static pod's UID: 32 hex digits (an md5) */
#define UNIT_NAME_MAX 255   /* longest systemd unit name (UNIT_NAME_MAX - 1) */

struct identity {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	gid_t *groups; /* supplementary groups (malloc'd), ngroups of them */
	size_t ngroups;

	char *cgroup;  /* cgroup path, "/..." (malloc'd); NULL when unknown */
	char container[CONTAINER_ID_LEN + 1]; /* "" when none */
	char pod[POD_UID_LEN + 1];            /* "" when none; UUID or 32 hex */
	bool host;     /* shares the broker's pid namespace */
	/*
	 * The systemd unit on whose behalf PID 1 connects to load a credential
	 * (malloc'd), set only once the peer was found to be PID 1 of the
	 * broker's pid namespace with uid 0; NULL for every other caller.
	 */
	char *unit;

	bool creds;          /* uid/gid/pid came from SO_PEERCRED */
	bool pidfd_verified; /* the process was confirmed alive through a pidfd */
	/*
	 * True when cgroup, container, pod and host could be established for
	 * this very process.  A connection without it gets no secret.
	 */
	bool established;
	char problem[160]; /* why not established (for whoami and logs), "" if fine */
};

/* Release what the struct owns and reset it to "nobody known". */
void identity_clear(struct identity *id);

/* True if gid is the primary or a supplementary group. */
bool identity_in_group(const struct identity *id, gid_t gid);

#endif
