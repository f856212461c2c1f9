/* Dropping privileges with libcap-ng (style anchor: OpenBSD ntpd). */
#include "privileges.h"

#include "nss.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cap-ng.h>

long privileges_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -1;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			return -1;
	}
	return (long)rl.rlim_cur;
}

static int harden_process(char *err, size_t errlen)
{
	struct rlimit nocore = { 0, 0 };

	if (setrlimit(RLIMIT_CORE, &nocore) != 0) {
		snprintf(err, errlen, "setrlimit(RLIMIT_CORE): %s", strerror(errno));
		return -1;
	}
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
		snprintf(err, errlen, "prctl(PR_SET_DUMPABLE): %s", strerror(errno));
		return -1;
	}
	return 0;
}

static int become_user(const char *user, char *err, size_t errlen)
{
	uid_t uid = 0;
	gid_t gid = 0;
	int rc = nss_user(user, &uid, &gid);

	if (rc != 0) {
		snprintf(err, errlen, "user %s: %s", user,
			 rc == -ENOENT ? "no such user" : strerror(-rc));
		return -1;
	}
	capng_clear(CAPNG_SELECT_ALL);
	if (capng_change_id((int)uid, (int)gid,
			    CAPNG_DROP_SUPP_GRP | CAPNG_CLEAR_BOUNDING |
				    CAPNG_CLEAR_AMBIENT) != 0) {
		snprintf(err, errlen, "cannot become user %s (capng_change_id failed)", user);
		return -1;
	}
	/* Trust nothing: check that the switch really happened. */
	if (getuid() != uid || geteuid() != uid ||
	    getgid() != gid || getegid() != gid ||
	    getgroups(0, NULL) != 0) {
		snprintf(err, errlen, "user switch to %s did not take", user);
		return -1;
	}
	return 0;
}

static int check_no_capabilities(char *err, size_t errlen)
{
	capng_clear(CAPNG_SELECT_ALL);
	if (capng_get_caps_process() != 0) {
		snprintf(err, errlen, "cannot read own capabilities");
		return -1;
	}
	if (capng_have_capabilities(CAPNG_SELECT_CAPS) != CAPNG_NONE ||
	    capng_have_capabilities(CAPNG_SELECT_BOUNDS) != CAPNG_NONE ||
	    capng_have_capabilities(CAPNG_SELECT_AMBIENT) != CAPNG_NONE) {
		snprintf(err, errlen, "capabilities remain after dropping privileges");
		return -1;
	}
	return 0;
}

int privileges_drop(const char *user, char *err, size_t errlen)
{
	if (harden_process(err, errlen) != 0)
		return -1;
	if (user != NULL) {
		if (become_user(user, err, errlen) != 0)
			return -1;
		if (check_no_capabilities(err, errlen) != 0)
			return -1;
		/* setuid() re-enables dumpable on some kernels; set it again. */
		if (harden_process(err, errlen) != 0)
			return -1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		snprintf(err, errlen, "prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
		return -1;
	}
	return 0;
}
