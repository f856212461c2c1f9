/* The one way the broker asks NSS for a user or a group (reentrant, any size). */
#ifndef SECRETD_NSS_H
#define SECRETD_NSS_H

#include <sys/types.h>

/* 0 and the ids; -ENOENT when there is no such name; another -errno on failure. */
int nss_user(const char *name, uid_t *uid, gid_t *gid);
int nss_group(const char *name, gid_t *gid);

#endif
