/*
 * The tamper-evident audit log, as the broker writes it.
 *
 * Each record is one JSON line (audit_record.c), written with one write(2)
 * before the answer is sent, and chained to the one before it by a keyed
 * MAC whose key ratchets forward (audit_chain.c).
 *
 * The record that opens an epoch ("start" after a restart, "epoch" after a
 * ratchet) carries the new epoch number but is sealed with the OLD key, and
 * only then is the key ratcheted.  Sealing it with the new key would let the
 * holder of key K_e forge a fake epoch change inside epoch e-1 and re-seal
 * the rest of that epoch; with the old key the epoch boundaries are fixed.
 *
 * A checkpoint (last seq, its epoch and chain, MAC'd with a static key) is
 * handed to the server with every sync and kept in the vault, so a log cut
 * short is found by audit_verify() (audit_check.c).
 */
#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "audit_chain.h"
#include "audit_links.h"
#include "audit_record.h"
#include "audit_tail.h"
#include "lockfile.h"

#define CHAIN_LEN AUDIT_CHAIN_LEN
#define RECORD_MAX AUDIT_RECORD_MAX
#define PEND_MAX (256 * 1024)                /* records queued for one write(2) */

_Static_assert(PEND_MAX >= RECORD_MAX, "the queue holds any record");

#define DEFAULT_EPOCH_RECORDS 1000
#define DEFAULT_EPOCH_SECONDS 60

_Static_assert(AUDIT_CKPT_LEN <= AUDIT_CHECKPOINT_MAX, "checkpoint blob too large");

struct audit {
	char *path;
	/*
	 * Holds PATH.lock (lockfile.c) from audit_open to audit_close: one
	 * broker a log.  The lock file keeps its name when the log is renamed
	 * and reopened, so the lock outlives every rotation.
	 */
	int lock_fd;
	int fd;           /* -1 while no file is open */
	struct audit_links links; /* is fd's file still linked? (audit_links.h) */
	dev_t dev;        /* of the open file, to notice it renamed away */
	ino_t ino;
	struct audit_options opt;
	struct audit_keys *k;       /* the chain key is K_epoch */
	struct identity self;       /* the broker, in its own records */

	uint64_t seq;               /* of the last record written; 0 none */
	uint64_t epoch;             /* of the chain key */
	uint64_t last_epoch;        /* epoch field of the last record written */
	uint8_t chain[CHAIN_LEN];   /* chain value of the last record written */
	unsigned epoch_count;       /* records in this epoch after its opening one */
	uint64_t epoch_started_ms;  /* monotonic */
	bool last_was_stop;
	/*
	 * The file at fd holds no record yet: the next record written says
	 * "file":"new", so that audit_verify can tell a file the broker began
	 * from one whose first records were cut off.  Every path that switches
	 * files writes one of the log's own records at once (start, reopen,
	 * degraded), and request records are refused until it is written.
	 */
	bool file_empty;

	/* durability: audit_sync_run may fsync sync_fd on another thread */
	uint64_t synced_seq;
	uint64_t sync_failures; /* fsyncs that failed, wherever they ran */
	bool syncing;
	int sync_fd;
	int retired_fd; /* sync_fd replaced while the sync ran; closed at its end */

	bool healthy;
	char problem[320];
	uint64_t degraded_since_ms;
	uint64_t refused;
	bool torn_pending;  /* a failed write left bytes behind on fd ... */
	off_t good_size;    /* ... to be cut back to this size */

	/*
	 * Records sealed by audit_queue but not yet written: audit_flush writes
	 * them with one write(2).  seq, chain and epoch_count already count
	 * them; if that write fails they go back to what they were before.
	 */
	char *pend;
	size_t pend_len;
	/* "YYYY-MM-DDTHH:MM:SS." of ts_sec: one gmtime a second, not a record */
	time_t ts_sec;
	char ts_prefix[AUDIT_TS_MAX];
	size_t ts_prefix_len; /* 0: none yet */
	uint64_t drops; /* times queued records were forgotten */
	struct {
		uint64_t seq, last_epoch;
		uint8_t chain[CHAIN_LEN];
		unsigned epoch_count;
		bool last_was_stop;
	} before_pend;

	char buf[RECORD_MAX];
};

/* ---- time --------------------------------------------------------------- */

static uint64_t mono_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The record's time, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ" in UTC. */
static int format_ts(struct audit *a, char *out, size_t cap)
{
	struct timespec ts;
	long us;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return -1;
	if (a->ts_prefix_len == 0 || ts.tv_sec != a->ts_sec) {
		struct tm tm;
		int n;

		a->ts_prefix_len = 0;
		if (gmtime_r(&ts.tv_sec, &tm) == NULL)
			return -1;
		n = snprintf(a->ts_prefix, sizeof(a->ts_prefix), "%04d-%02d-%02dT%02d:%02d:%02d.",
			     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			     tm.tm_min, tm.tm_sec);
		if (n <= 0 || (size_t)n >= sizeof(a->ts_prefix))
			return -1;
		a->ts_sec = ts.tv_sec;
		a->ts_prefix_len = (size_t)n;
	}
	/* the prefix, six digits of microseconds, 'Z' and the terminator */
	if (a->ts_prefix_len + 8 > cap)
		return -1;
	memcpy(out, a->ts_prefix, a->ts_prefix_len);
	out += a->ts_prefix_len;
	us = ts.tv_nsec / 1000;
	for (int i = 5; i >= 0; i--) {
		out[i] = (char)('0' + us % 10);
		us /= 10;
	}
	out[6] = 'Z';
	out[7] = '\0';
	return 0;
}

/* ---- degraded state --------------------------------------------------------- */

static void set_degraded(struct audit *a, int err, const char *what)
{
	if (a->healthy) {
		a->healthy = false;
		a->degraded_since_ms = mono_ms();
		a->refused = 0;
	}
	if (what != NULL)
		snprintf(a->problem, sizeof(a->problem), "audit log %s: %s: %s", a->path, what,
			 strerror(err));
	else
		snprintf(a->problem, sizeof(a->problem), "audit log %s: %s", a->path, strerror(err));
}

/* ---- the file ---------------------------------------------------------------- */

/* Make a newly created file's directory entry durable. */
static int sync_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[4096];
	int fd, rc = 0;

	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else if ((size_t)(slash - path) < sizeof(dir))
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	else
		return -ENAMETOOLONG;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0 && errno != EINVAL)
		rc = -errno;
	close(fd);
	return rc;
}

/*
 * Open the log at path for appending, creating it (0600) when it is absent.
 * Never follows a symbolic link; refuses anything but a regular file.
 * Returns the fd or -errno; *what says which step failed.
 */
static int open_log(const char *path, struct stat *st, const char **what)
{
	int fd = -1;

	for (int attempt = 0; attempt < 4 && fd < 0; attempt++) {
		bool created = false;

		fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
		if (fd < 0 && errno == ENOENT) {
			fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW |
				  O_NOCTTY, 0600);
			if (fd < 0 && errno == EEXIST)
				continue; /* created under us: open that one */
			created = fd >= 0;
		}
		if (fd < 0) {
			*what = "open";
			return -errno;
		}
		if (created) {
			int rc = sync_dir(path);
			if (rc != 0) {
				close(fd);
				*what = "syncing its directory";
				return rc;
			}
		}
	}
	if (fd < 0) {
		*what = "open";
		return -EAGAIN;
	}
	if (fstat(fd, st) != 0) {
		int e = errno;
		close(fd);
		*what = "fstat";
		return -e;
	}
	if (!S_ISREG(st->st_mode)) {
		close(fd);
		*what = "not a regular file";
		return -EINVAL;
	}
	return fd;
}

/* Close fd, unless a sync running on another thread is using it. */
static void retire_fd(struct audit *a, int fd)
{
	if (fd < 0)
		return;
	if (a->syncing && fd == a->sync_fd) {
		if (a->retired_fd >= 0 && a->retired_fd != fd)
			close(a->retired_fd);
		a->retired_fd = fd;
		return;
	}
	close(fd);
}

/* Switch to a freshly opened file at a->path. */
static int switch_file(struct audit *a)
{
	const char *what = "open";
	struct stat st;
	int fd = open_log(a->path, &st, &what);

	if (fd < 0) {
		set_degraded(a, -fd, what);
		return fd;
	}
	retire_fd(a, a->fd);
	a->fd = fd;
	audit_links_watch(&a->links, fd);
	a->dev = st.st_dev;
	a->ino = st.st_ino;
	a->torn_pending = false;
	a->file_empty = st.st_size == 0;
	return 0;
}

/* Cut off what a failed write left on the current file. */
static int fix_torn(struct audit *a)
{
	if (!a->torn_pending || a->fd < 0)
		return 0;
	if (ftruncate(a->fd, a->good_size) != 0)
		return -errno;
	a->torn_pending = false;
	return 0;
}

/* True when the open file is no longer the one at a->path. */
static bool file_moved(const struct audit *a, bool *removed)
{
	struct stat st;

	*removed = false;
	if (a->fd < 0 || fstat(a->fd, &st) != 0 || st.st_nlink == 0) {
		*removed = true;
		return true;
	}
	/* Only a missing path means moved: EACCES after dropping privileges does not. */
	if (stat(a->path, &st) != 0)
		return errno == ENOENT;
	return st.st_dev != a->dev || st.st_ino != a->ino;
}

/*
 * One write(2) for the whole record (looping only on a partial write).  On
 * failure the bytes already written are cut off again, so no torn record
 * stays behind; if even that fails, fix_torn() retries later.
 */
static int write_all(struct audit *a, const char *p, size_t len)
{
	size_t done = 0;
	struct stat st;
	int err;

	if (audit_links_unsure(&a->links)) {
		if (fstat(a->fd, &st) != 0) {
			err = errno;
			set_degraded(a, err, "fstat");
			return -err;
		}
		if (st.st_nlink == 0) {
			set_degraded(a, ENOENT, "the file was removed");
			return -ENOENT;
		}
		audit_links_confirmed(&a->links);
	}
	while (done < len) {
		ssize_t n = write(a->fd, p + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? errno : EIO;
			goto fail;
		}
		done += (size_t)n;
	}
	return 0;
fail:
	/*
	 * O_APPEND: our bytes are the last ones in the file.  If even fstat
	 * fails they stay, and the next start cuts the torn line off.
	 */
	if (done > 0 && fstat(a->fd, &st) == 0 && st.st_size >= (off_t)done) {
		a->torn_pending = true;
		a->good_size = st.st_size - (off_t)done;
		(void)fix_torn(a);
	}
	set_degraded(a, err, "write");
	return -err;
}

/*
 * The whole record, chain included, in a->buf; 0 or -errno.  ev is the
 * caller's event: sealing works on a copy that gets ts, seq and epoch.
 */
static int seal_record(struct audit *a, const struct audit_event *ev, uint64_t epoch,
		       bool file_start, uint8_t chain[CHAIN_LEN], size_t *out_len)
{
	struct audit_event r = *ev;
	char ts[AUDIT_TS_MAX];
	size_t len;

	if (format_ts(a, ts, sizeof(ts)) != 0)
		return -EINVAL;
	r.ts = ts;
	r.seq = a->seq + 1;
	r.epoch = epoch;
	r.file_start = file_start;
	/* A file's first record names the chain before it, under its MAC. */
	r.has_prev = file_start;
	memcpy(r.prev, a->chain, CHAIN_LEN);
	len = audit_record_body(&r, a->buf, sizeof(a->buf) - AUDIT_RECORD_SUFFIX_LEN);
	if (len == 0)
		return -E2BIG;
	if (audit_chain_mac(a->k, a->chain, a->buf, len, chain) != 0)
		return -EINVAL;
	*out_len = audit_record_seal(a->buf, len, chain);
	return 0;
}

/* Write the queued records; on failure forget them (the log degrades). */
static int flush_pending(struct audit *a)
{
	int rc;

	if (a->pend_len == 0)
		return 0;
	rc = a->fd >= 0 ? write_all(a, a->pend, a->pend_len) : -EBADF;
	if (rc == -EBADF)
		set_degraded(a, EBADF, "no open file");
	if (rc != 0) {
		a->drops++;
		a->seq = a->before_pend.seq;
		a->last_epoch = a->before_pend.last_epoch;
		memcpy(a->chain, a->before_pend.chain, CHAIN_LEN);
		a->epoch_count = a->before_pend.epoch_count;
		a->last_was_stop = a->before_pend.last_was_stop;
	}
	a->pend_len = 0;
	return rc;
}

/*
 * Seal and write one record.  opens_epoch: the record announces epoch+1, is
 * sealed with the current key, and the key ratchets once it is written.
 * Nothing changes in memory unless the write succeeded.
 */
static int write_record(struct audit *a, const struct audit_event *ev, bool opens_epoch)
{
	uint64_t epoch = opens_epoch ? a->epoch + 1 : a->epoch;
	uint8_t chain[CHAIN_LEN];
	size_t len;
	int rc;

	/* Queued records come first: they are earlier in the chain. */
	rc = flush_pending(a);
	if (rc != 0)
		return rc;
	if (a->fd < 0) {
		set_degraded(a, EBADF, "no open file");
		return -EBADF;
	}
	rc = seal_record(a, ev, epoch, a->file_empty, chain, &len);
	if (rc == 0)
		rc = write_all(a, a->buf, len);
	if (rc != 0)
		return rc;
	a->file_empty = false;
	a->seq++;
	a->last_epoch = epoch;
	memcpy(a->chain, chain, CHAIN_LEN);
	a->last_was_stop = strcmp(ev->op, "stop") == 0;
	if (opens_epoch) {
		if (audit_keys_to(a->k, epoch) != 0)
			return -EINVAL;
		a->epoch = epoch;
		a->epoch_count = 0;
		a->epoch_started_ms = mono_ms();
	} else {
		a->epoch_count++;
	}
	return 0;
}

/* A record of the log's own, in the broker's name (its uid as it is now). */
static struct audit_event own_event(struct audit *a, const char *op)
{
	struct audit_event ev = {
		.op = op, .version = -1, .decision = "allow", .rule = 0, .who = &a->self,
		.count = -1,
	};

	a->self.uid = getuid();
	a->self.gid = getgid();
	a->self.pid = getpid();
	return ev;
}

static int write_epoch_record(struct audit *a)
{
	struct audit_event ev = own_event(a, "epoch");

	return write_record(a, &ev, true);
}

/* ---- opening ---------------------------------------------------------------- */

/*
 * Where to continue: the file's last record, or the vault checkpoint when
 * the file is new or ends before it (then the gap stays visible).
 */
static void choose_start(struct audit *a, const struct audit_tail *t, const uint8_t *blob, size_t blen,
			 bool *fresh, char *note, size_t notelen)
{
	struct audit_ckpt c;
	bool have_ckpt = false;

	note[0] = '\0';
	*fresh = true;
	if (blob != NULL && blen > 0) {
		if (audit_ckpt_open(a->k, blob, blen, &c) == 0)
			have_ckpt = true;
		else
			snprintf(note, notelen, "the vault's audit checkpoint failed authentication "
				 "and was ignored");
	}
	if (t->have) {
		*fresh = false;
		a->seq = t->seq;
		a->epoch = t->epoch;
		memcpy(a->chain, t->chain, CHAIN_LEN);
	}
	if (have_ckpt && c.seq > a->seq) {
		if (t->have)
			snprintf(note, notelen, "log ended at seq %llu but the vault's checkpoint is at "
				 "seq %llu: continuing after the checkpoint",
				 (unsigned long long)a->seq, (unsigned long long)c.seq);
		else
			snprintf(note, notelen, "new file: continuing after the vault's checkpoint");
		*fresh = false;
		a->seq = c.seq;
		a->epoch = c.epoch > a->epoch ? c.epoch : a->epoch;
		memcpy(a->chain, c.chain, CHAIN_LEN);
	}
	a->last_epoch = a->epoch;
}

static void opts_fill(struct audit_options *o, const struct audit_options *in)
{
	o->sync = in != NULL ? in->sync : AUDIT_SYNC_BATCH;
	o->epoch_records = in != NULL && in->epoch_records > 0 ? in->epoch_records
							       : DEFAULT_EPOCH_RECORDS;
	o->epoch_seconds = in != NULL && in->epoch_seconds > 0 ? in->epoch_seconds
							       : DEFAULT_EPOCH_SECONDS;
}

static void audit_free(struct audit *a)
{
	if (a == NULL)
		return;
	if (a->fd >= 0)
		close(a->fd);
	if (a->retired_fd >= 0)
		close(a->retired_fd);
	audit_links_close(&a->links);
	lockfile_release(a->lock_fd);
	audit_keys_free(a->k);
	free(a->pend);
	free(a->path);
	free(a);
}

int audit_open(const char *path, const uint8_t master[32],
	       const struct audit_options *opt, const uint8_t *checkpoint,
	       size_t checkpoint_len, struct audit **out, char *err, size_t errlen)
{
	struct audit *a = NULL;
	struct audit_tail t;
	struct stat st;
	struct audit_event ev;
	const char *what = "open";
	char note[200];
	bool fresh;
	int rc = -EINVAL;

	*out = NULL;
	if (path == NULL || master == NULL || sodium_init() < 0) {
		snprintf(err, errlen, "audit log: invalid arguments or libsodium unusable");
		return -EINVAL;
	}
	a = calloc(1, sizeof(*a));
	if (a != NULL) { /* before anything can fail: audit_free closes what is >= 0 */
		a->lock_fd = a->fd = a->sync_fd = a->retired_fd = -1;
		audit_links_init(&a->links);
	}
	if (a == NULL || (a->path = strdup(path)) == NULL || (a->k = audit_keys_new(master)) == NULL ||
	    (a->pend = malloc(PEND_MAX)) == NULL) {
		snprintf(err, errlen, "audit log %s: out of memory", path);
		rc = -ENOMEM;
		goto out;
	}
	a->healthy = true;
	opts_fill(&a->opt, opt);
	a->lock_fd = lockfile_take(path, "audit log", err, errlen);
	if (a->lock_fd < 0) {
		rc = a->lock_fd;
		goto out;
	}
	a->fd = open_log(path, &st, &what);
	if (a->fd < 0) {
		rc = a->fd;
		snprintf(err, errlen, "audit log %s: %s: %s", path, what, strerror(-rc));
		goto out;
	}
	audit_links_watch(&a->links, a->fd);
	a->dev = st.st_dev;
	a->ino = st.st_ino;
	rc = audit_tail_read(a->fd, a->path, &t, err, errlen);
	if (rc != 0)
		goto out;
	a->file_empty = !t.have; /* empty, or nothing but a torn line, now cut */
	choose_start(a, &t, checkpoint, checkpoint_len, &fresh, note, sizeof(note));
	/* Sealing the start record needs K_epoch of the record before it. */
	if (audit_keys_to(a->k, a->epoch) != 0) {
		snprintf(err, errlen, "audit log %s: key derivation failed", path);
		rc = -EINVAL;
		goto out;
	}
	ev = own_event(a, "start");
	ev.torn_bytes = t.torn_bytes;
	ev.note = note[0] != '\0' ? note : NULL;
	rc = write_record(a, &ev, !fresh);
	if (rc != 0) {
		snprintf(err, errlen, "%s", a->healthy ? "audit log: record too large" : a->problem);
		goto out;
	}
	a->epoch_count = 0;
	a->epoch_started_ms = mono_ms();
	*out = a;
	a = NULL;
	rc = 0;
out:
	audit_free(a);
	return rc;
}

/* ---- appending -------------------------------------------------------------- */

int audit_queue(struct audit *a, const struct audit_event *ev)
{
	uint8_t chain[CHAIN_LEN];
	size_t len;
	int rc;

	if (a == NULL || ev == NULL || ev->op == NULL || ev->decision == NULL || ev->who == NULL)
		return -EINVAL;
	if (!a->healthy) {
		a->refused++;
		return -EIO;
	}
	/* A ratchet wipes the key that sealed the queued records: write them first. */
	if (a->epoch_count >= a->opt.epoch_records) {
		rc = write_epoch_record(a);
		if (rc != 0)
			goto out;
	}
	rc = seal_record(a, ev, a->epoch, false, chain, &len);
	if (rc != 0)
		return rc;
	/* Writing the queue leaves a->buf, and the chain it was sealed on, alone. */
	if (a->pend_len + len > PEND_MAX) {
		rc = flush_pending(a);
		if (rc != 0)
			goto out;
	}
	if (a->pend_len == 0) {
		a->before_pend.seq = a->seq;
		a->before_pend.last_epoch = a->last_epoch;
		memcpy(a->before_pend.chain, a->chain, CHAIN_LEN);
		a->before_pend.epoch_count = a->epoch_count;
		a->before_pend.last_was_stop = a->last_was_stop;
	}
	memcpy(a->pend + a->pend_len, a->buf, len);
	a->pend_len += len;
	a->seq++;
	a->last_epoch = a->epoch;
	memcpy(a->chain, chain, CHAIN_LEN);
	a->last_was_stop = false;
	a->epoch_count++;
out:
	if (rc != 0 && !a->healthy)
		a->refused++;
	return rc;
}

int audit_watch_fd(const struct audit *a)
{
	return a == NULL ? -1 : audit_links_fd(&a->links);
}

void audit_watch_event(struct audit *a)
{
	if (a != NULL)
		audit_links_drain(&a->links);
}

void audit_watch_off(struct audit *a)
{
	if (a != NULL)
		audit_links_off(&a->links);
}

int audit_flush(struct audit *a)
{
	return a == NULL ? -EINVAL : flush_pending(a);
}

bool audit_pending(const struct audit *a)
{
	return a != NULL && a->pend_len > 0;
}

uint64_t audit_drops(const struct audit *a)
{
	return a->drops;
}

int audit_append(struct audit *a, const struct audit_event *ev)
{
	int rc;

	if (a == NULL || ev == NULL || ev->op == NULL || ev->decision == NULL || ev->who == NULL)
		return -EINVAL;
	if (!a->healthy) {
		a->refused++;
		return -EIO;
	}
	if (a->epoch_count >= a->opt.epoch_records) {
		rc = write_epoch_record(a);
		if (rc != 0)
			goto out;
	}
	rc = write_record(a, ev, false);
out:
	if (rc != 0 && !a->healthy)
		a->refused++; /* counted in the "degraded" record on recovery */
	return rc;
}

bool audit_healthy(const struct audit *a)
{
	return a != NULL && a->healthy;
}

const char *audit_problem(const struct audit *a)
{
	if (a == NULL)
		return "audit log not open";
	return a->healthy ? "" : a->problem;
}

int audit_recover(struct audit *a)
{
	struct audit_event ev;
	bool removed;
	int rc;

	if (a == NULL)
		return -EINVAL;
	if (a->healthy)
		return 0;
	if (file_moved(a, &removed)) {
		/* a moved file still gets its torn tail cut; a removed one is gone */
		if (!removed)
			(void)fix_torn(a);
		rc = switch_file(a);
		if (rc != 0)
			return rc;
	}
	rc = fix_torn(a);
	if (rc != 0) {
		set_degraded(a, -rc, "cutting off a partial record");
		return rc;
	}
	ev = own_event(a, "degraded");
	ev.error = a->problem;
	ev.degraded = true;
	ev.degraded_us = (long long)(mono_ms() - a->degraded_since_ms) * 1000;
	ev.refused = (long long)a->refused;
	rc = write_record(a, &ev, false);
	if (rc != 0)
		return rc;
	a->healthy = true;
	a->problem[0] = '\0';
	a->refused = 0;
	return 0;
}

/* True when the path names the very file the descriptor writes to. */
static bool still_at_path(const struct audit *a)
{
	struct stat by_fd, by_path;

	return fstat(a->fd, &by_fd) == 0 && stat(a->path, &by_path) == 0 &&
	       by_fd.st_dev == by_path.st_dev && by_fd.st_ino == by_path.st_ino &&
	       by_fd.st_nlink > 0;
}

int audit_reopen(struct audit *a)
{
	struct audit_event ev;
	int rc;

	if (a == NULL)
		return -EINVAL;
	(void)flush_pending(a);
	/*
	 * SIGHUP also means "reload the policy": when the file at the path is
	 * still the one we write, there is nothing to reopen (and after --user
	 * the broker may not be allowed to open it again).
	 */
	if (a->healthy && a->fd >= 0 && still_at_path(a))
		return 0;
	/* What went into the old file is made durable before leaving it. */
	if (a->fd >= 0) {
		(void)fix_torn(a);
		if (fdatasync(a->fd) != 0) {
			set_degraded(a, errno, "fsync before reopening");
			a->sync_failures++;
		} else if (a->synced_seq < a->seq)
			a->synced_seq = a->seq;
	}
	rc = switch_file(a);
	if (rc != 0)
		return rc;
	if (!a->healthy)
		return audit_recover(a);
	ev = own_event(a, "reopen");
	return write_record(a, &ev, false);
}

/* ---- durability ------------------------------------------------------------- */

uint64_t audit_sync_begin(struct audit *a, uint8_t *checkpoint, size_t *len)
{
	struct audit_ckpt c = { 0 };

	if (len != NULL)
		*len = 0;
	(void)flush_pending(a); /* on failure: degraded, and nothing more to cover */
	c.seq = a->seq;
	c.epoch = a->last_epoch;
	memcpy(c.chain, a->chain, CHAIN_LEN);
	if (checkpoint != NULL && len != NULL && a->seq > 0 &&
	    audit_ckpt_seal(a->k, &c, checkpoint) == 0)
		*len = AUDIT_CKPT_LEN;
	a->sync_fd = a->fd;
	a->syncing = true;
	return a->seq;
}

int audit_sync_run(struct audit *a)
{
	int fd = a->sync_fd;

	if (fd < 0)
		return -EBADF;
	while (fdatasync(fd) != 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

void audit_sync_end(struct audit *a, uint64_t covered, int result)
{
	a->syncing = false;
	a->sync_fd = -1;
	if (a->retired_fd >= 0) {
		close(a->retired_fd);
		a->retired_fd = -1;
	}
	if (result != 0) {
		set_degraded(a, -result, "fsync");
		a->sync_failures++;
		return;
	}
	if (covered > a->synced_seq)
		a->synced_seq = covered;
}

bool audit_dirty(const struct audit *a)
{
	return a->seq > a->synced_seq;
}

uint64_t audit_last_seq(const struct audit *a)
{
	return a->seq;
}

uint64_t audit_synced_seq(const struct audit *a)
{
	return a->synced_seq;
}

uint64_t audit_sync_failures(const struct audit *a)
{
	return a->sync_failures;
}

int audit_tick(struct audit *a)
{
	bool removed;

	if (a == NULL)
		return -EINVAL;
	(void)flush_pending(a);
	if (!a->healthy)
		return 0; /* audit_recover's business */
	if (file_moved(a, &removed)) {
		if (!removed)
			return audit_reopen(a);
		/* Written into a removed file: degraded until a new one exists. */
		set_degraded(a, ENOENT, "the file was removed");
		return audit_recover(a);
	}
	if (a->epoch_count > 0 &&
	    mono_ms() - a->epoch_started_ms >= (uint64_t)a->opt.epoch_seconds * 1000u)
		return write_epoch_record(a);
	return 0;
}

int audit_stop(struct audit *a)
{
	struct audit_event ev;

	if (a == NULL)
		return -EINVAL;
	if (a->last_was_stop)
		return 0;
	if (!a->healthy)
		return -EIO;
	ev = own_event(a, "stop");
	return write_record(a, &ev, false);
}

int audit_close(struct audit *a)
{
	int rc = 0;

	if (a == NULL)
		return 0;
	rc = flush_pending(a);
	if (!a->last_was_stop)
		rc = audit_stop(a);
	if (a->fd >= 0) {
		if (fdatasync(a->fd) != 0 && rc == 0)
			rc = -errno;
		if (close(a->fd) != 0 && rc == 0)
			rc = -errno;
		a->fd = -1;
	}
	audit_free(a);
	return rc;
}

