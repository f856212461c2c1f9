/*
 * Giving up what the broker does not need, once, in a fixed order, every
 * step checked; the caller treats any failure as fatal.
 */
#ifndef SECRETD_PRIVILEGES_H
#define SECRETD_PRIVILEGES_H

#include <stddef.h>

/* Raise RLIMIT_NOFILE to its hard limit (many clients); returns the new limit. */
long privileges_raise_nofile(void);

/*
 * No core dumps, not dumpable (no ptrace by the same uid, no /proc/PID/mem),
 * no_new_privs; then, if user is not NULL, become that user through
 * libcap-ng with supplementary groups dropped and no capability left in any
 * set.  0, or -1 with a reason in err.
 */
int privileges_drop(const char *user, char *err, size_t errlen);

#endif
