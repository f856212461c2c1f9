#include "nss.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#define NSS_BUF_MAX (1024 * 1024)

static int lookup(const char *name, bool user, uid_t *uid, gid_t *gid)
{
	long hint = sysconf(user ? _SC_GETPW_R_SIZE_MAX : _SC_GETGR_R_SIZE_MAX);
	size_t cap = hint > 0 ? (size_t)hint : 1024;
	int rc = -ENOMEM;

	for (;;) {
		struct passwd pw, *pwr = NULL;
		struct group gr, *grr = NULL;
		char *buf = malloc(cap);
		int e;

		if (buf == NULL)
			break;
		e = user ? getpwnam_r(name, &pw, buf, cap, &pwr)
			 : getgrnam_r(name, &gr, buf, cap, &grr);
		if (e == ERANGE && cap < NSS_BUF_MAX) {
			free(buf);
			cap *= 2;
			continue;
		}
		if (pwr != NULL) {
			*uid = pwr->pw_uid;
			*gid = pwr->pw_gid;
			rc = 0;
		} else if (grr != NULL) {
			*gid = grr->gr_gid;
			rc = 0;
		} else if (e == 0 || e == ENOENT || e == ESRCH || e == EBADF || e == EPERM) {
			rc = -ENOENT; /* the "not found" answers getpwnam(3) lists */
		} else {
			rc = -e;
		}
		free(buf);
		break;
	}
	return rc;
}

int nss_user(const char *name, uid_t *uid, gid_t *gid)
{
	return lookup(name, true, uid, gid);
}

int nss_group(const char *name, gid_t *gid)
{
	uid_t ignored;

	return lookup(name, false, &ignored, gid);
}
