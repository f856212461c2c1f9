/*
 * Who is on the other end of a Unix socket, from the kernel only.
 *
 * uid, gid and pid come from SO_PEERCRED (fixed at connect(), translated into
 * the broker's user and pid namespaces), never from /proc/<pid>/status, which
 * a setuid after connect would change.  Supplementary groups come from
 * SO_PEERGROUPS.  The cgroup is read from /proc/<pid>/cgroup (only that file,
 * read in the broker's cgroup namespace, is trusted: a process can forge its
 * mountinfo), and `host` from the number of NSpid entries in
 * /proc/<pid>/status.
 *
 * A pid can be recycled between connect() and our reads.  With SO_PEERPIDFD
 * we hold a pidfd for the very process that connected; we read the /proc
 * files first and then confirm through the pidfd that it has not exited, so
 * the pid still named it while we read.  Without SO_PEERPIDFD we compare the
 * start time in /proc/<pid>/stat before and after the reads, which catches a
 * process replaced during the reads but not before them (pidfd_verified
 * stays false).  An exited process (even a zombie not yet reaped) is never
 * taken for the caller.
 *
 * States in which /proc shows a process's cgroup as something it is not:
 *  - Its main thread (the thread-group leader, whose entry /proc/<pid> is)
 *    is exiting or a zombie while other threads live on.  The kernel then
 *    prints "/" on every cgroup v1 line (the v2 line keeps the real path,
 *    with " (deleted)" once that cgroup is removed), and the pidfd stays
 *    alive.  So after reading the cgroup file we read the leader's state and
 *    flags from /proc/<pid>/stat: a zombie ('Z', 'X') or PF_EXITING refuses
 *    the identity.  The kernel prints "/" exactly while PF_EXITING is set,
 *    which is never cleared, so a leader not exiting after the read was not
 *    exiting during it.  On a unified-only host (the file is one "0::"
 *    line) nothing read depends on PF_EXITING: there a zombie leader is
 *    refused on the State line of /proc/<pid>/status, read anyway for
 *    NSpid, and stat is not read (one file fewer per connection).
 *  - A process moving between cgroups.  The kernel composes the whole file
 *    in one go under its cgroup lock, and we take it in one read, so its
 *    lines are one consistent snapshot, taken after connect().  Moving needs
 *    write access to the destination, so a process that could move could as
 *    well have connected from there; the identity is that of the moment of
 *    the read and is kept for the connection's life.
 *  - Threads in different cgroups (per-thread "tasks" on cgroup v1, threaded
 *    subtrees on v2).  SO_PEERCRED names the process, not the thread, and
 *    the file shows the leader's cgroup.  Putting a thread somewhere needs
 *    the same rights as putting the leader there (and on v2 every thread
 *    stays inside the process's threaded domain), so the leader's cgroup is
 *    the one the process answers for; a thread gains nothing by being
 *    elsewhere.
 */
#include "peer.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cgroup.h"
#include "proc_parse.h"

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

/* Longer cgroup files (v1 hosts list every hierarchy) count as malformed. */
#define CGROUP_FILE_MAX 16384
#define STAT_FILE_MAX 1024
/* The task flag set when a thread starts to exit (include/linux/sched.h). */
#define PF_EXITING 0x00000004UL

/* What was read from /proc/<pid> inside one verified window. */
struct proc_view {
	char cgroup[CGROUP_FILE_MAX];
	size_t cgroup_len;
	int cgroup_err; /* 0 or a negative errno */
	int nspid;      /* entries in NSpid, or a negative errno */
};

/* Why the process read is not to be taken for the caller. */
enum verdict { VERDICT_OK, VERDICT_EXITED, VERDICT_LEADER_EXITING };

__attribute__((format(printf, 2, 3)))
static void set_problem(struct identity *id, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(id->problem, sizeof(id->problem), fmt, ap);
	va_end(ap);
}

static int read_creds(int fd, struct identity *id)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) != 0)
		return -errno;
	if (len != sizeof(uc))
		return -EPROTO;
	id->uid = uc.uid;
	id->gid = uc.gid;
	id->pid = uc.pid;
	id->creds = true;
	return 0;
}

/*
 * Supplementary groups.  -ENOMEM is fatal; any other failure leaves the
 * identity unestablished, since a gid= rule could not be decided.
 */
static int read_groups(int fd, struct identity *id)
{
	socklen_t len = 32 * sizeof(gid_t);
	gid_t *groups = NULL;
	int rc = -1, err = ERANGE;

	for (int attempt = 0; attempt < 2; attempt++) {
		gid_t *bigger = realloc(groups, len > 0 ? len : sizeof(gid_t));

		if (bigger == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		groups = bigger;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0) {
			if (len % sizeof(gid_t) != 0) {
				err = EPROTO;
				break;
			}
			id->ngroups = len / sizeof(gid_t);
			id->groups = groups;
			groups = NULL;
			rc = 0;
			goto out;
		}
		/* ERANGE: len now holds the size the kernel needs. */
		err = errno;
		if (err != ERANGE)
			break;
	}
	set_problem(id, "no supplementary groups from the kernel (SO_PEERGROUPS: %s)",
		    strerror(err));
	rc = 0;
out:
	free(groups);
	return rc;
}

/*
 * A pidfd for the peer; -ENOPROTOOPT when the kernel lacks SO_PEERPIDFD
 * (before 6.5).  Other errors, ESRCH or EINVAL for a caller already reaped,
 * are never taken as "unsupported": the start-time fallback could then
 * accept a recycled pid.
 */
static int peer_pidfd(int fd)
{
	int pidfd = -1;
	socklen_t len = sizeof(pidfd);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) != 0)
		return -errno;
	if (len != sizeof(pidfd) || pidfd < 0) {
		if (pidfd >= 0)
			close(pidfd);
		return -EPROTO;
	}
	return pidfd;
}

/*
 * Read a whole small /proc file below dirfd; -EFBIG if it does not fit in
 * cap.  The files read here (cgroup, stat) are single-record seq files:
 * the kernel composes the whole text and hands out as much as asked, so a
 * read shorter than what was asked is the whole file and no read for the
 * end of the file follows.
 */
static int read_file_at(int dirfd, const char *name, char *buf, size_t cap, size_t *len)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	int rc = -1;

	*len = 0;
	if (fd < 0)
		return -errno;
	for (;;) {
		size_t want = cap - *len;
		ssize_t n;

		if (want == 0) {
			rc = -EFBIG;
			goto out;
		}
		n = read(fd, buf + *len, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto out;
		}
		*len += (size_t)n;
		if ((size_t)n < want)
			break; /* the end of the file, or n == 0 */
	}
	rc = 0;
out:
	close(fd);
	return rc;
}

/*
 * The number of NSpid entries in dirfd/status, and in *state (when not
 * NULL) the leader's state letter from the State line before it, or '\0'
 * (none, or the file could not be read).  Read a chunk at a time and
 * scanned by proc_parse.c: the Groups line before it can be very long.
 */
static int status_nspid(int dirfd, char *state)
{
	char chunk[4096];
	struct proc_status_scan scan;
	int fd = openat(dirfd, "status", O_RDONLY | O_CLOEXEC | O_NOCTTY);
	int rc;

	if (state != NULL)
		*state = '\0';
	if (fd < 0)
		return -errno;
	proc_status_init(&scan);
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto out;
		}
		if (n == 0 || proc_status_feed(&scan, chunk, (size_t)n))
			break;
	}
	rc = scan.nspid;
	if (state != NULL)
		*state = scan.state;
out:
	close(fd);
	return rc;
}

/* State (field 3), flags (field 9) and start time (field 22) from dirfd/stat. */
static int stat_read(int dirfd, struct proc_stat *st)
{
	char buf[STAT_FILE_MAX];
	size_t len;
	int rc = read_file_at(dirfd, "stat", buf, sizeof(buf), &len);

	return rc != 0 ? rc : proc_stat_parse(buf, len, st);
}

/* The leader is exiting or gone: /proc no longer shows its true cgroup. */
static bool leader_exiting(const struct proc_stat *st)
{
	return st->state == 'Z' || st->state == 'X' || (st->flags & PF_EXITING) != 0;
}

/*
 * The cgroup file is one "0::" line (a unified-only host).  On v1 lines the
 * kernel prints "/" for a task with PF_EXITING set (proc_cgroup_show); on
 * the unified line it keeps printing the cgroup the task was in.
 */
static bool unified_only(const struct proc_view *v)
{
	return v->cgroup_err == 0 && v->cgroup_len > 3 && memcmp(v->cgroup, "0::", 3) == 0 &&
	       memchr(v->cgroup, '\n', v->cgroup_len) == v->cgroup + v->cgroup_len - 1;
}

/* True while the pidfd's process has not exited (a zombie has). */
static bool pidfd_alive(int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };
	int n;

	do
		n = poll(&p, 1, 0);
	while (n < 0 && errno == EINTR);
	return n == 0;
}

/*
 * Read cgroup and NSpid of the caller, then decide whether what we read
 * was the caller's true view (see the top of this file).
 */
static enum verdict read_window(int dirfd, int pidfd, struct proc_view *v)
{
	struct proc_stat s0, s1;
	bool timed = pidfd < 0 && stat_read(dirfd, &s0) == 0;
	bool after;
	char state;

	v->cgroup_err = read_file_at(dirfd, "cgroup", v->cgroup, sizeof(v->cgroup),
				     &v->cgroup_len);
	v->nspid = status_nspid(dirfd, &state);
	if (pidfd >= 0 && state != '\0' && unified_only(v)) {
		/*
		 * No v1 line, so nothing read depends on PF_EXITING: the one
		 * line shows the leader's true cgroup even while it exits.
		 * A zombie leader is still refused, on its State from status
		 * (read after the cgroup file; a zombie stays one), so stat
		 * is not read.
		 */
		if (!pidfd_alive(pidfd))
			return VERDICT_EXITED;
		return state == 'Z' || state == 'X' ? VERDICT_LEADER_EXITING : VERDICT_OK;
	}
	/* The leader's state after the reads, then (pidfd) that it still lives. */
	after = stat_read(dirfd, &s1) == 0;
	if (pidfd >= 0 ? !pidfd_alive(pidfd) : !(timed && after && s0.start == s1.start))
		return VERDICT_EXITED;
	if (!after)
		return VERDICT_EXITED;
	return leader_exiting(&s1) ? VERDICT_LEADER_EXITING : VERDICT_OK;
}

/* Turn what was read into the identity's cgroup fields and verdict. */
static int apply_view(struct identity *id, const struct proc_view *v, int own_depth)
{
	struct cgroup_info *info = malloc(sizeof(*info));
	int rc = -ENOMEM;

	if (info == NULL)
		goto out;
	rc = 0;
	if (v->cgroup_err != 0) {
		set_problem(id, "cannot read the caller's cgroup file: %s", strerror(-v->cgroup_err));
		goto out;
	}
	if (cgroup_parse(v->cgroup, v->cgroup_len, info) != 0) {
		set_problem(id, "malformed cgroup file: %s", info->problem);
		goto out;
	}
	if (v->nspid <= 0) {
		set_problem(id, "cannot read NSpid of the caller: %s", strerror(-v->nspid));
		goto out;
	}
	if (info->path[0] != '\0') {
		id->cgroup = strdup(info->path);
		if (id->cgroup == NULL) {
			rc = -ENOMEM;
			goto out;
		}
	}
	memcpy(id->container, info->container, sizeof(id->container));
	memcpy(id->pod, info->pod, sizeof(id->pod));
	id->host = v->nspid == own_depth;
	if (info->problem[0] != '\0')
		set_problem(id, "%s", info->problem);
out:
	free(info);
	return rc;
}

/* Everything after the credentials: pidfd, /proc reads, verification. */
static int resolve_process(int fd, struct identity *id)
{
	char dir[32];
	int own = peer_own_pidns_depth();
	int pidfd = -1, dirfd = -1, rc = 0;
	struct proc_view *v = NULL;
	enum verdict verdict;

	if (id->pid <= 0) {
		set_problem(id, "%s", "caller's pid is not visible in the broker's pid namespace");
		goto out;
	}
	if (own <= 0) {
		set_problem(id, "%s", "cannot read the broker's own pid namespace depth");
		goto out;
	}
	pidfd = peer_pidfd(fd);
	if (pidfd == -ESRCH || pidfd == -EINVAL) {
		set_problem(id, "%s", "caller exited before its cgroup could be read");
		goto out;
	}
	if (pidfd < 0 && pidfd != -ENOPROTOOPT) {
		set_problem(id, "no pidfd for the caller (SO_PEERPIDFD: %s)", strerror(-pidfd));
		goto out;
	}
	snprintf(dir, sizeof(dir), "/proc/%d", (int)id->pid);
	dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		set_problem(id, "%s", errno == ENOENT || errno == ESRCH
					      ? "caller exited before its cgroup could be read"
					      : "cannot open the caller's /proc directory");
		goto out;
	}
	v = malloc(sizeof(*v));
	if (v == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	verdict = read_window(dirfd, pidfd, v);
	if (verdict == VERDICT_EXITED) {
		set_problem(id, "%s", "caller exited before its cgroup could be read");
		goto out;
	}
	if (verdict == VERDICT_LEADER_EXITING) {
		set_problem(id, "%s", "caller's main thread has exited: /proc no longer shows "
			    "its true cgroup (a caller must keep its main thread)");
		goto out;
	}
	id->pidfd_verified = pidfd >= 0;
	rc = apply_view(id, v, own);
out:
	free(v);
	if (dirfd >= 0)
		close(dirfd);
	if (pidfd >= 0)
		close(pidfd);
	return rc;
}

/* The rest of peer_identify, once the credentials are in id. */
static int identify_rest(int fd, struct identity *id)
{
	int rc = read_groups(fd, id);

	if (rc != 0)
		goto out;
	if (id->problem[0] == '\0')
		rc = resolve_process(fd, id);
	if (rc != 0)
		goto out;
	id->established = id->problem[0] == '\0';
out:
	if (rc != 0)
		identity_clear(id);
	return rc;
}

int peer_identify(int fd, struct identity *id)
{
	int rc;

	memset(id, 0, sizeof(*id));
	rc = read_creds(fd, id);
	return rc != 0 ? rc : identify_rest(fd, id);
}

int peer_identify_cred(int fd, const struct ucred *cred, struct identity *id)
{
	memset(id, 0, sizeof(*id));
	id->uid = cred->uid;
	id->gid = cred->gid;
	id->pid = cred->pid;
	id->creds = true;
	return identify_rest(fd, id);
}

int peer_own_pidns_depth(void)
{
	static int depth;
	int dirfd;

	if (depth > 0)
		return depth;
	dirfd = open("/proc/self", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return -errno;
	depth = status_nspid(dirfd, NULL);
	close(dirfd);
	if (depth <= 0) {
		int err = depth;

		depth = 0;
		return err;
	}
	return depth;
}
