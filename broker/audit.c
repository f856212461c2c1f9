/*
 * The tamper-evident audit log.
 *
 * Each record is one JSON line, written with one write(2) before the answer
 * is sent.  Its last field, "chain", is BLAKE2b-256 keyed with the epoch key
 * over the previous record's chain value and this record's bytes up to
 * ",\"chain\":", so a record edited, removed, inserted or reordered breaks
 * the chain.  The epoch key ratchets forward (K' = H("secretd-ratchet" || K))
 * and the old one is wiped, so whoever later reads the broker's memory holds
 * only keys that cannot re-seal earlier epochs.
 *
 * The record that opens an epoch ("start" after a restart, "epoch" after a
 * ratchet) carries the new epoch number but is sealed with the OLD key, and
 * only then is the key ratcheted.  Sealing it with the new key would let the
 * holder of key K_e forge a fake epoch change inside epoch e-1 and re-seal
 * the rest of that epoch; with the old key the epoch boundaries are fixed.
 *
 * A checkpoint (last seq, its epoch and chain, MAC'd with a static key) is
 * handed to the server with every sync and kept in the vault, so a log cut
 * short is found by audit_verify().
 */
#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#define CHAIN_LEN 32
#define RECORD_MAX 4096                      /* a record, newline included */
#define PEND_MAX (64 * RECORD_MAX)           /* records queued for one write(2) */
#define TAIL_READ (2 * RECORD_MAX + 16)      /* a torn tail plus the last record */
#define KDF_CONTEXT "sdauditk"
#define KDF_SUB_CHAIN 2
#define KDF_SUB_CKPT 3
#define RATCHET_LABEL "secretd-ratchet"
#define CKPT_MAGIC "SDCK1"
#define CKPT_MAGIC_LEN 5
#define CKPT_BODY_LEN (CKPT_MAGIC_LEN + 8 + 8 + CHAIN_LEN)
#define CKPT_LEN (CKPT_BODY_LEN + CHAIN_LEN)
#define CHAIN_PREFIX ",\"chain\":\""
#define CHAIN_PREFIX_LEN (sizeof(CHAIN_PREFIX) - 1)
#define CHAIN_SUFFIX_LEN (CHAIN_PREFIX_LEN + 2 * CHAIN_LEN + 2) /* ...hex"} */
#define TS_MAX 40

/* Output bounds of the variable fields (escaped bytes, marker included). */
#define OP_MAX_OUT 32
#define NAME_MAX_OUT 512
#define DECISION_MAX_OUT 16
#define CGROUP_MAX_OUT 1024
#define ID_MAX_OUT 80
#define TEXT_MAX_OUT 256
#define TRUNC_MARK "..."

#define DEFAULT_EPOCH_RECORDS 1000
#define DEFAULT_EPOCH_SECONDS 60

_Static_assert(CKPT_LEN <= AUDIT_CHECKPOINT_MAX, "checkpoint blob too large");

/*
 * Key material, in one sodium_malloc block.  The hash state lives here too
 * because a keyed BLAKE2b state holds the key.  Its size is a multiple of 64
 * (the state's alignment), which keeps sodium_malloc's pointer aligned.
 */
struct audit_keys {
	crypto_generichash_state st;
	uint8_t chain_key[AUDIT_KEY_LEN]; /* K_epoch */
	uint8_t ckpt_key[AUDIT_KEY_LEN];  /* static, seals checkpoint blobs */
	uint8_t tmp[AUDIT_KEY_LEN];
};

struct audit {
	char *path;
	int fd;           /* -1 while no file is open */
	dev_t dev;        /* of the open file, to notice it renamed away */
	ino_t ino;
	struct audit_options opt;
	struct audit_keys *k;

	uint64_t seq;               /* of the last record written; 0 none */
	uint64_t epoch;             /* chain_key is K_epoch */
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
	uint64_t drops; /* times queued records were forgotten */
	struct {
		uint64_t seq, last_epoch;
		uint8_t chain[CHAIN_LEN];
		unsigned epoch_count;
		bool last_was_stop;
	} before_pend;

	char buf[RECORD_MAX];
};

/* A record to write.  Strings carry lengths; NULL / negative = omitted. */
struct rec {
	const char *op;
	const char *name;
	size_t name_len;
	long long version;
	const char *decision;
	unsigned rule;
	unsigned long long uid, gid;
	long long pid;
	const char *cgroup;
	size_t cgroup_len;
	const char *container;
	const char *pod;
	const char *error;
	long long count;
	/* fields of the log's own records */
	long long degraded_us;
	long long refused;
	long long torn_bytes;
	const char *note;
	bool new_file; /* the first record in its file */
};

/* What the parser learns from one line. */
struct rec_view {
	uint64_t seq;
	uint64_t epoch;
	const char *op;
	size_t op_len;
	const char *ts;
	size_t ts_len;
	size_t body_len; /* bytes the MAC covers */
	uint8_t chain[CHAIN_LEN];
	bool new_file;   /* "file":"new" */
};

/* ---- time --------------------------------------------------------------- */

static uint64_t mono_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int format_ts(char *out, size_t cap)
{
	struct timespec ts;
	struct tm tm;
	int n;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || gmtime_r(&ts.tv_sec, &tm) == NULL)
		return -1;
	n = snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
		     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     ts.tv_nsec / 1000);
	return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* ---- keys ------------------------------------------------------------------ */

static struct audit_keys *keys_new(const uint8_t master[32])
{
	struct audit_keys *k = sodium_malloc(sizeof(*k));

	if (k == NULL)
		return NULL;
	sodium_memzero(k, sizeof(*k));
	if (crypto_kdf_derive_from_key(k->chain_key, AUDIT_KEY_LEN, KDF_SUB_CHAIN, KDF_CONTEXT,
				       master) != 0 ||
	    crypto_kdf_derive_from_key(k->ckpt_key, AUDIT_KEY_LEN, KDF_SUB_CKPT, KDF_CONTEXT,
				       master) != 0) {
		sodium_free(k);
		return NULL;
	}
	return k;
}

static void keys_free(struct audit_keys *k)
{
	if (k != NULL)
		sodium_free(k); /* sodium_free wipes the block */
}

/* out = BLAKE2b-256(key; a || b), the state kept in the key block. */
static int keyed_hash(struct audit_keys *k, const uint8_t *key, const uint8_t *a, size_t alen,
		      const uint8_t *b, size_t blen, uint8_t out[CHAIN_LEN])
{
	int rc = -1;

	if (crypto_generichash_init(&k->st, key, key != NULL ? AUDIT_KEY_LEN : 0, CHAIN_LEN) != 0 ||
	    crypto_generichash_update(&k->st, a, alen) != 0 ||
	    crypto_generichash_update(&k->st, b, blen) != 0 ||
	    crypto_generichash_final(&k->st, out, CHAIN_LEN) != 0)
		goto out;
	rc = 0;
out:
	sodium_memzero(&k->st, sizeof(k->st));
	return rc;
}

/* K_{e+1} = BLAKE2b-256("secretd-ratchet" || K_e); K_e is gone afterwards. */
static int ratchet(struct audit_keys *k)
{
	int rc = keyed_hash(k, NULL, (const uint8_t *)RATCHET_LABEL, sizeof(RATCHET_LABEL) - 1,
			    k->chain_key, AUDIT_KEY_LEN, k->tmp);

	if (rc == 0)
		memcpy(k->chain_key, k->tmp, AUDIT_KEY_LEN);
	sodium_memzero(k->tmp, sizeof(k->tmp));
	return rc;
}

static int ratchet_n(struct audit_keys *k, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		if (ratchet(k) != 0)
			return -1;
	return 0;
}

static int chain_mac(struct audit_keys *k, const uint8_t prev[CHAIN_LEN], const char *body,
		     size_t len, uint8_t out[CHAIN_LEN])
{
	return keyed_hash(k, k->chain_key, prev, CHAIN_LEN, (const uint8_t *)body, len, out);
}

/* ---- checkpoint blob ----------------------------------------------------- */

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)(v & 0xff);
		v >>= 8;
	}
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static int ckpt_seal(struct audit_keys *k, uint64_t seq, uint64_t epoch,
		     const uint8_t chain[CHAIN_LEN], uint8_t out[CKPT_LEN])
{
	memcpy(out, CKPT_MAGIC, CKPT_MAGIC_LEN);
	put_be64(out + CKPT_MAGIC_LEN, seq);
	put_be64(out + CKPT_MAGIC_LEN + 8, epoch);
	memcpy(out + CKPT_MAGIC_LEN + 16, chain, CHAIN_LEN);
	return keyed_hash(k, k->ckpt_key, out, CKPT_BODY_LEN, NULL, 0, out + CKPT_BODY_LEN);
}

struct ckpt {
	uint64_t seq;
	uint64_t epoch;
	uint8_t chain[CHAIN_LEN];
};

/* 0 when the blob is well-formed and its MAC holds. */
static int ckpt_open(struct audit_keys *k, const uint8_t *blob, size_t len, struct ckpt *c)
{
	uint8_t mac[CHAIN_LEN];
	int rc = -1;

	if (len != CKPT_LEN || memcmp(blob, CKPT_MAGIC, CKPT_MAGIC_LEN) != 0)
		return -1;
	if (keyed_hash(k, k->ckpt_key, blob, CKPT_BODY_LEN, NULL, 0, mac) != 0 ||
	    sodium_memcmp(mac, blob + CKPT_BODY_LEN, CHAIN_LEN) != 0)
		goto out;
	c->seq = get_be64(blob + CKPT_MAGIC_LEN);
	c->epoch = get_be64(blob + CKPT_MAGIC_LEN + 8);
	memcpy(c->chain, blob + CKPT_MAGIC_LEN + 16, CHAIN_LEN);
	rc = 0;
out:
	sodium_memzero(mac, sizeof(mac));
	return rc;
}

/* ---- building a record ------------------------------------------------------ */

struct builder {
	char *p;
	size_t len, cap;
	bool overflow;
	bool first;
};

static void b_raw(struct builder *b, const char *s, size_t n)
{
	if (b->overflow || n > b->cap - b->len) {
		b->overflow = true;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void b_key(struct builder *b, const char *key)
{
	b_raw(b, b->first ? "{\"" : ",\"", 2);
	b->first = false;
	b_raw(b, key, strlen(key));
	b_raw(b, "\":", 2);
}

/* Bytes one input byte takes once escaped. */
static size_t esc_width(unsigned char c)
{
	if (c == '"' || c == '\\')
		return 2;
	return c >= 0x20 && c <= 0x7e ? 1 : 6;
}

static void b_esc(struct builder *b, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";
	char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };

	if (c == '"' || c == '\\') {
		char e[2] = { '\\', (char)c };
		b_raw(b, e, 2);
	} else if (c >= 0x20 && c <= 0x7e) {
		char ch = (char)c;
		b_raw(b, &ch, 1);
	} else {
		b_raw(b, u, sizeof(u));
	}
}

/*
 * A string field, escaped: everything outside printable ASCII as \u00XX
 * (the cgroup path is chosen by whoever made the container).  When the
 * escaped form would exceed max bytes it is cut and marked with "...".
 */
static void b_str(struct builder *b, const char *key, const char *s, size_t n, size_t max)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t total = 0, out = 0, i;

	b_key(b, key);
	b_raw(b, "\"", 1);
	for (i = 0; i < n; i++)
		total += esc_width(u[i]);
	if (total <= max) {
		for (i = 0; i < n; i++)
			b_esc(b, u[i]);
	} else {
		for (i = 0; i < n && out + esc_width(u[i]) <= max - (sizeof(TRUNC_MARK) - 1); i++) {
			out += esc_width(u[i]);
			b_esc(b, u[i]);
		}
		b_raw(b, TRUNC_MARK, sizeof(TRUNC_MARK) - 1);
	}
	b_raw(b, "\"", 1);
}

static void b_cstr(struct builder *b, const char *key, const char *s, size_t max)
{
	b_str(b, key, s != NULL ? s : "", s != NULL ? strlen(s) : 0, max);
}

static void b_num(struct builder *b, const char *key, long long v)
{
	char num[24];
	int n = snprintf(num, sizeof(num), "%lld", v);

	b_key(b, key);
	b_raw(b, num, n > 0 ? (size_t)n : 0);
}

static void b_unum(struct builder *b, const char *key, unsigned long long v)
{
	char num[24];
	int n = snprintf(num, sizeof(num), "%llu", v);

	b_key(b, key);
	b_raw(b, num, n > 0 ? (size_t)n : 0);
}

static void hex_encode(const uint8_t *in, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
}

/*
 * Lay out the record's body (up to, not including, ",\"chain\":") in a->buf
 * in the agreed field order.  Returns its length, or 0 if it did not fit.
 */
static size_t build_body(struct audit *a, const struct rec *r, uint64_t seq, uint64_t epoch)
{
	struct builder b = { .p = a->buf, .cap = sizeof(a->buf) - CHAIN_SUFFIX_LEN - 1,
			     .first = true };
	char ts[TS_MAX];

	if (format_ts(ts, sizeof(ts)) != 0)
		return 0;
	b_cstr(&b, "ts", ts, TS_MAX);
	b_unum(&b, "seq", seq);
	b_cstr(&b, "op", r->op, OP_MAX_OUT);
	if (r->name != NULL)
		b_str(&b, "name", r->name, r->name_len, NAME_MAX_OUT);
	if (r->version >= 0)
		b_num(&b, "version", r->version);
	b_cstr(&b, "decision", r->decision, DECISION_MAX_OUT);
	b_unum(&b, "rule", r->rule);
	b_unum(&b, "uid", r->uid);
	b_unum(&b, "gid", r->gid);
	b_num(&b, "pid", r->pid);
	b_str(&b, "cgroup", r->cgroup != NULL ? r->cgroup : "", r->cgroup != NULL ? r->cgroup_len : 0,
	      CGROUP_MAX_OUT);
	b_cstr(&b, "container", r->container, ID_MAX_OUT);
	b_cstr(&b, "pod", r->pod, ID_MAX_OUT);
	if (r->error != NULL)
		b_cstr(&b, "error", r->error, TEXT_MAX_OUT);
	if (r->count >= 0)
		b_num(&b, "count", r->count);
	if (r->degraded_us >= 0)
		b_num(&b, "degraded_us", r->degraded_us);
	if (r->refused >= 0)
		b_num(&b, "refused", r->refused);
	if (r->torn_bytes >= 0)
		b_num(&b, "torn_bytes", r->torn_bytes);
	if (r->note != NULL)
		b_cstr(&b, "note", r->note, TEXT_MAX_OUT);
	if (r->new_file)
		b_cstr(&b, "file", "new", 4);
	b_unum(&b, "epoch", epoch);
	return b.overflow ? 0 : b.len;
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

	if (fstat(a->fd, &st) != 0) {
		err = errno;
		set_degraded(a, err, "fstat");
		return -err;
	}
	if (st.st_nlink == 0) {
		set_degraded(a, ENOENT, "the file was removed");
		return -ENOENT;
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
	if (done > 0) {
		/* O_APPEND: our bytes are the last ones in the file */
		a->torn_pending = true;
		a->good_size = st.st_size;
		if (fstat(a->fd, &st) == 0 && st.st_size >= (off_t)done)
			a->good_size = st.st_size - (off_t)done;
		(void)fix_torn(a);
	}
	set_degraded(a, err, "write");
	return -err;
}

/*
 * Seal and write one record.  opens_epoch: the record announces epoch+1, is
 * sealed with the current key, and the key ratchets once it is written.
 * Nothing changes in memory unless the write succeeded.
 */
/* The whole record, chain included, in a->buf; 0 or -errno. */
static int seal_record(struct audit *a, const struct rec *r, uint64_t epoch,
		       uint8_t chain[CHAIN_LEN], size_t *out_len)
{
	size_t len = build_body(a, r, a->seq + 1, epoch);

	if (len == 0)
		return -E2BIG;
	if (chain_mac(a->k, a->chain, a->buf, len, chain) != 0)
		return -EINVAL;
	memcpy(a->buf + len, CHAIN_PREFIX, CHAIN_PREFIX_LEN);
	len += CHAIN_PREFIX_LEN;
	hex_encode(chain, CHAIN_LEN, a->buf + len);
	len += 2 * CHAIN_LEN;
	memcpy(a->buf + len, "\"}\n", 3);
	*out_len = len + 3;
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

static int write_record(struct audit *a, const struct rec *r, bool opens_epoch)
{
	uint64_t epoch = opens_epoch ? a->epoch + 1 : a->epoch;
	uint8_t chain[CHAIN_LEN];
	struct rec marked = *r;
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
	marked.new_file = a->file_empty;
	rc = seal_record(a, &marked, epoch, chain, &len);
	if (rc == 0)
		rc = write_all(a, a->buf, len);
	if (rc != 0)
		return rc;
	a->file_empty = false;
	a->seq++;
	a->last_epoch = epoch;
	memcpy(a->chain, chain, CHAIN_LEN);
	a->last_was_stop = strcmp(r->op, "stop") == 0;
	if (opens_epoch) {
		if (ratchet(a->k) != 0)
			return -EINVAL;
		a->epoch = epoch;
		a->epoch_count = 0;
		a->epoch_started_ms = mono_ms();
	} else {
		a->epoch_count++;
	}
	return 0;
}

/* A record of the log's own, in the broker's name. */
static struct rec own_rec(const char *op)
{
	struct rec r = {
		.op = op, .version = -1, .decision = "allow", .rule = 0,
		.uid = getuid(), .gid = getgid(), .pid = getpid(),
		.count = -1, .degraded_us = -1, .refused = -1, .torn_bytes = -1,
	};
	return r;
}

static int write_epoch_record(struct audit *a)
{
	struct rec r = own_rec("epoch");

	return write_record(a, &r, true);
}

/* ---- parsing a record (broker restart and audit_verify) ----------------------- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1; /* upper case is not what the broker writes */
}

struct cursor {
	const char *p;
	size_t i, n;
};

/* A JSON string; s and len get the raw (still escaped) contents. */
static bool p_string(struct cursor *c, const char **s, size_t *len)
{
	size_t start;

	if (c->i >= c->n || c->p[c->i] != '"')
		return false;
	start = ++c->i;
	while (c->i < c->n) {
		unsigned char ch = (unsigned char)c->p[c->i];

		if (ch == '"') {
			*s = c->p + start;
			*len = c->i - start;
			c->i++;
			return true;
		}
		if (ch < 0x20)
			return false;
		if (ch == '\\') {
			if (c->i + 1 >= c->n)
				return false;
			ch = (unsigned char)c->p[c->i + 1];
			if (ch == 'u') {
				if (c->i + 6 > c->n)
					return false;
				for (size_t k = 2; k < 6; k++) {
					char h = c->p[c->i + k];
					if (hexval(h) < 0 && !(h >= 'A' && h <= 'F'))
						return false;
				}
				c->i += 6;
				continue;
			}
			if (strchr("\"\\/bfnrt", ch) == NULL || ch == '\0')
				return false;
			c->i += 2;
			continue;
		}
		c->i++;
	}
	return false;
}

/* An integer (what the broker writes: no fraction, no exponent). */
static bool p_number(struct cursor *c, bool *neg, uint64_t *v)
{
	size_t start;

	*neg = false;
	*v = 0;
	if (c->i < c->n && c->p[c->i] == '-') {
		*neg = true;
		c->i++;
	}
	start = c->i;
	while (c->i < c->n && c->p[c->i] >= '0' && c->p[c->i] <= '9') {
		uint64_t d = (uint64_t)(c->p[c->i] - '0');

		if (*v > (UINT64_MAX - d) / 10)
			return false;
		*v = *v * 10 + d;
		c->i++;
	}
	if (c->i == start || (c->i - start > 1 && c->p[start] == '0'))
		return false;
	return true;
}

static bool key_is(const char *k, size_t klen, const char *want)
{
	return klen == strlen(want) && memcmp(k, want, klen) == 0;
}

static bool parse_chain_hex(const char *p, uint8_t out[CHAIN_LEN])
{
	for (size_t i = 0; i < CHAIN_LEN; i++) {
		int hi = hexval(p[2 * i]), lo = hexval(p[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

/*
 * One line (without its newline): a flat JSON object whose first field is
 * "ts", whose field before the chain is "epoch", and which ends with
 * ",\"chain\":\"<64 hex>\"}".
 */
static bool parse_record(const char *line, size_t len, struct rec_view *v)
{
	struct cursor c = { .p = line, .i = 1 };
	const char *sfx;
	bool have_seq = false, have_op = false, first = true, last_epoch = false;

	memset(v, 0, sizeof(*v));
	if (len + 1 > RECORD_MAX || len < CHAIN_SUFFIX_LEN + 2 || line[0] != '{')
		return false;
	sfx = line + len - CHAIN_SUFFIX_LEN;
	if (memcmp(sfx, CHAIN_PREFIX, CHAIN_PREFIX_LEN) != 0 ||
	    !parse_chain_hex(sfx + CHAIN_PREFIX_LEN, v->chain) ||
	    memcmp(sfx + CHAIN_PREFIX_LEN + 2 * CHAIN_LEN, "\"}", 2) != 0)
		return false;
	v->body_len = (size_t)(sfx - line);
	c.n = v->body_len;
	while (c.i < c.n) {
		const char *k, *s;
		size_t klen, slen;
		bool neg;
		uint64_t num = 0;

		if (!first && (c.p[c.i++] != ',' || c.i >= c.n))
			return false;
		if (!p_string(&c, &k, &klen) || c.i >= c.n || c.p[c.i++] != ':' || c.i >= c.n)
			return false;
		if (first != key_is(k, klen, "ts"))
			return false;
		first = false;
		last_epoch = false;
		if (c.p[c.i] == '"') {
			if (!p_string(&c, &s, &slen))
				return false;
			if (key_is(k, klen, "ts")) {
				if (slen >= TS_MAX)
					return false;
				v->ts = s;
				v->ts_len = slen;
			} else if (key_is(k, klen, "op")) {
				if (have_op)
					return false;
				have_op = true;
				v->op = s;
				v->op_len = slen;
			} else if (key_is(k, klen, "file")) {
				v->new_file = key_is(s, slen, "new");
			} else if (key_is(k, klen, "seq") || key_is(k, klen, "epoch")) {
				return false;
			}
			continue;
		}
		if (!p_number(&c, &neg, &num))
			return false;
		if (key_is(k, klen, "seq")) {
			if (have_seq || neg || num == 0)
				return false;
			have_seq = true;
			v->seq = num;
		} else if (key_is(k, klen, "epoch")) {
			if (neg)
				return false;
			v->epoch = num;
			last_epoch = true;
		} else if (key_is(k, klen, "ts") || key_is(k, klen, "op")) {
			return false;
		}
	}
	return have_seq && have_op && last_epoch && v->ts != NULL;
}

static bool op_is(const struct rec_view *v, const char *op)
{
	return key_is(v->op, v->op_len, op);
}

static bool opens_epoch(const struct rec_view *v)
{
	return op_is(v, "start") || op_is(v, "epoch");
}

/* ---- opening ---------------------------------------------------------------- */

static int pread_all(int fd, char *buf, size_t len, off_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, off + (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		got += (size_t)n;
	}
	return 0;
}

/* Where the existing file leaves off. */
struct tail {
	bool have;            /* a last record was found */
	struct rec_view last;
	long long torn_bytes; /* cut off a partial last line; -1 none */
};

/*
 * Read the file's last record.  A partial last line (a crash mid-write) is
 * cut off and counted in t->torn_bytes.
 */
static int read_tail(struct audit *a, struct tail *t, char *err, size_t errlen)
{
	char chunk[TAIL_READ];
	struct stat st;
	size_t n, end, start;
	off_t base;
	const char *nl;
	int rc;

	t->have = false;
	t->torn_bytes = -1;
	if (fstat(a->fd, &st) != 0) {
		rc = -errno;
		snprintf(err, errlen, "audit log %s: fstat: %s", a->path, strerror(-rc));
		return rc;
	}
	if (st.st_size == 0)
		return 0;
	n = (size_t)st.st_size < sizeof(chunk) ? (size_t)st.st_size : sizeof(chunk);
	base = st.st_size - (off_t)n;
	rc = pread_all(a->fd, chunk, n, base);
	if (rc != 0) {
		snprintf(err, errlen, "audit log %s: read: %s", a->path, strerror(-rc));
		return rc;
	}
	end = n;
	if (chunk[n - 1] != '\n') {
		nl = memrchr(chunk, '\n', n);
		if (nl == NULL && base > 0)
			goto not_a_record; /* longer than any record could be */
		end = nl != NULL ? (size_t)(nl - chunk) + 1 : 0;
		if (ftruncate(a->fd, base + (off_t)end) != 0) {
			rc = -errno;
			snprintf(err, errlen, "audit log %s: cutting off a partial last line: %s",
				 a->path, strerror(-rc));
			return rc;
		}
		t->torn_bytes = (long long)(n - end);
		if (end == 0)
			return 0; /* the file held nothing but the partial line */
	}
	/* chunk[0 .. end) ends with the newline of the last complete line */
	nl = end > 1 ? memrchr(chunk, '\n', end - 1) : NULL;
	if (nl == NULL && base > 0)
		goto not_a_record;
	start = nl != NULL ? (size_t)(nl - chunk) + 1 : 0;
	if (!parse_record(chunk + start, end - 1 - start, &t->last))
		goto not_a_record;
	t->last.op = t->last.ts = NULL; /* they pointed into chunk */
	if (t->last.epoch >= t->last.seq) {
		/* every epoch opens with a record of its own: a larger number is forged */
		snprintf(err, errlen, "audit log %s: the last record's epoch is impossible; "
			 "move the file aside", a->path);
		return -EINVAL;
	}
	t->have = true;
	return 0;
not_a_record:
	snprintf(err, errlen, "audit log %s: the last line is not an audit record; "
		 "move the file aside", a->path);
	return -EINVAL;
}

/*
 * Where to continue: the file's last record, or the vault checkpoint when
 * the file is new or ends before it (then the gap stays visible).
 */
static void choose_start(struct audit *a, const struct tail *t, const uint8_t *blob, size_t blen,
			 bool *fresh, char *note, size_t notelen)
{
	struct ckpt c;
	bool have_ckpt = false;

	note[0] = '\0';
	*fresh = true;
	if (blob != NULL && blen > 0) {
		if (ckpt_open(a->k, blob, blen, &c) == 0)
			have_ckpt = true;
		else
			snprintf(note, notelen, "the vault's audit checkpoint failed authentication "
				 "and was ignored");
	}
	if (t->have) {
		*fresh = false;
		a->seq = t->last.seq;
		a->epoch = t->last.epoch;
		memcpy(a->chain, t->last.chain, CHAIN_LEN);
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
	keys_free(a->k);
	free(a->pend);
	free(a->path);
	free(a);
}

int audit_open(const char *path, const uint8_t master[32],
	       const struct audit_options *opt, const uint8_t *checkpoint,
	       size_t checkpoint_len, struct audit **out, char *err, size_t errlen)
{
	struct audit *a = NULL;
	struct tail t;
	struct stat st;
	struct rec r;
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
	if (a == NULL || (a->path = strdup(path)) == NULL || (a->k = keys_new(master)) == NULL ||
	    (a->pend = malloc(PEND_MAX)) == NULL) {
		snprintf(err, errlen, "audit log %s: out of memory", path);
		rc = -ENOMEM;
		goto out;
	}
	a->fd = a->sync_fd = a->retired_fd = -1;
	a->healthy = true;
	opts_fill(&a->opt, opt);
	a->fd = open_log(path, &st, &what);
	if (a->fd < 0) {
		rc = a->fd;
		snprintf(err, errlen, "audit log %s: %s: %s", path, what, strerror(-rc));
		goto out;
	}
	a->dev = st.st_dev;
	a->ino = st.st_ino;
	rc = read_tail(a, &t, err, errlen);
	if (rc != 0)
		goto out;
	a->file_empty = !t.have; /* empty, or nothing but a torn line, now cut */
	choose_start(a, &t, checkpoint, checkpoint_len, &fresh, note, sizeof(note));
	/* Sealing the start record needs K_epoch of the record before it. */
	if (ratchet_n(a->k, a->epoch) != 0) {
		snprintf(err, errlen, "audit log %s: key derivation failed", path);
		rc = -EINVAL;
		goto out;
	}
	r = own_rec("start");
	r.torn_bytes = t.torn_bytes;
	r.note = note[0] != '\0' ? note : NULL;
	rc = write_record(a, &r, !fresh);
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

static struct rec event_rec(const struct audit_event *ev)
{
	const struct identity *who = ev->who;
	struct rec r = {
		.op = ev->op, .name = ev->name, .name_len = ev->name_len,
		.version = ev->version, .decision = ev->decision, .rule = ev->rule,
		.uid = who->uid, .gid = who->gid, .pid = who->pid,
		.cgroup = who->cgroup, .cgroup_len = who->cgroup != NULL ? strlen(who->cgroup) : 0,
		.container = who->container, .pod = who->pod,
		.error = ev->error, .count = ev->count,
		.degraded_us = -1, .refused = -1, .torn_bytes = -1,
	};
	return r;
}

int audit_queue(struct audit *a, const struct audit_event *ev)
{
	uint8_t chain[CHAIN_LEN];
	struct rec r;
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
	r = event_rec(ev);
	rc = seal_record(a, &r, a->epoch, chain, &len);
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
	struct rec r;
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
	r = event_rec(ev);
	rc = write_record(a, &r, false);
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
	struct rec r;
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
	r = own_rec("degraded");
	r.error = a->problem;
	r.degraded_us = (long long)(mono_ms() - a->degraded_since_ms) * 1000;
	r.refused = (long long)a->refused;
	rc = write_record(a, &r, false);
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
	struct rec r;
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
	r = own_rec("reopen");
	return write_record(a, &r, false);
}

/* ---- durability ------------------------------------------------------------- */

uint64_t audit_sync_begin(struct audit *a, uint8_t *checkpoint, size_t *len)
{
	if (len != NULL)
		*len = 0;
	(void)flush_pending(a); /* on failure: degraded, and nothing more to cover */
	if (checkpoint != NULL && len != NULL && a->seq > 0 &&
	    ckpt_seal(a->k, a->seq, a->last_epoch, a->chain, checkpoint) == 0)
		*len = CKPT_LEN;
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
	struct rec r;

	if (a == NULL)
		return -EINVAL;
	if (a->last_was_stop)
		return 0;
	if (!a->healthy)
		return -EIO;
	r = own_rec("stop");
	return write_record(a, &r, false);
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

/* ---- verifying ---------------------------------------------------------------- */

struct verifier {
	struct audit_keys *k;
	uint64_t key_epoch;   /* k->chain_key is K_key_epoch */
	bool have_prev;
	uint64_t prev_seq, prev_epoch;
	uint8_t prev_chain[CHAIN_LEN];
	uint64_t records, first_seq;
	bool started_mid;
	char first_ts[TS_MAX], last_ts[TS_MAX];
	bool have_ckpt, ckpt_seen;
	struct ckpt ckpt;
	char *report;
	size_t reportlen;
	const char *file;
	unsigned long line;
};

static int v_fail(struct verifier *v, uint64_t seq, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int v_fail(struct verifier *v, uint64_t seq, const char *fmt, ...)
{
	char what[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (seq > 0)
		snprintf(v->report, v->reportlen, "%s:%lu: seq %llu: %s", v->file, v->line,
			 (unsigned long long)seq, what);
	else
		snprintf(v->report, v->reportlen, "%s:%lu: %s", v->file, v->line, what);
	return 1;
}

static int v_key_to(struct verifier *v, uint64_t epoch)
{
	if (epoch < v->key_epoch)
		return -1;
	if (ratchet_n(v->k, epoch - v->key_epoch) != 0)
		return -1;
	v->key_epoch = epoch;
	return 0;
}

static void copy_ts(char *dst, const struct rec_view *r)
{
	memcpy(dst, r->ts, r->ts_len);
	dst[r->ts_len] = '\0';
}

/* Check the epoch and seq of r against the record before it. */
static int v_sequence(struct verifier *v, const struct rec_view *r)
{
	if (r->seq != v->prev_seq + 1)
		return v_fail(v, r->seq, "seq %llu follows %llu (%s)", (unsigned long long)r->seq,
			      (unsigned long long)v->prev_seq,
			      r->seq <= v->prev_seq ? "record inserted, duplicated or reordered"
						    : "record removed or reordered");
	if (opens_epoch(r) && r->epoch != v->prev_epoch + 1)
		return v_fail(v, r->seq, "epoch %llu at a %.*s record follows epoch %llu "
			      "(must be one more)", (unsigned long long)r->epoch, (int)r->op_len,
			      r->op, (unsigned long long)v->prev_epoch);
	if (!opens_epoch(r) && r->epoch != v->prev_epoch)
		return v_fail(v, r->seq, "epoch changes from %llu to %llu without a start or "
			      "epoch record (record re-sealed or edited)",
			      (unsigned long long)v->prev_epoch, (unsigned long long)r->epoch);
	return 0;
}

static int v_record(struct verifier *v, const char *line, size_t len)
{
	struct rec_view r;
	uint8_t mac[CHAIN_LEN];
	int rc;

	if (!parse_record(line, len, &r))
		return v_fail(v, 0, "after seq %llu: not a valid audit record (edited or damaged "
			      "line)", (unsigned long long)v->prev_seq);
	if (r.epoch >= r.seq)
		return v_fail(v, r.seq, "epoch %llu is impossible at this seq",
			      (unsigned long long)r.epoch);
	if (!v->have_prev && r.seq != 1) {
		/*
		 * Earlier files not given: this record's chain is the starting
		 * point, but only where the broker began a file.  Anywhere else
		 * the records before it were cut off.
		 */
		if (!r.new_file)
			return v_fail(v, r.seq, "the first record given is not the first the broker "
				      "wrote into its file (records before it removed; give the "
				      "earlier files too)");
		v->started_mid = true;
		if (v_key_to(v, r.epoch) != 0)
			return v_fail(v, r.seq, "key derivation failed");
	} else {
		if (!v->have_prev) {
			memset(v->prev_chain, 0, CHAIN_LEN);
			if (r.epoch != 0)
				return v_fail(v, r.seq, "the first record is not in epoch 0");
		} else if ((rc = v_sequence(v, &r)) != 0) {
			return rc;
		}
		if (v_key_to(v, v->have_prev ? v->prev_epoch : 0) != 0 ||
		    chain_mac(v->k, v->prev_chain, line, r.body_len, mac) != 0)
			return v_fail(v, r.seq, "key derivation failed");
		if (sodium_memcmp(mac, r.chain, CHAIN_LEN) != 0)
			return v_fail(v, r.seq, "chain MAC mismatch (record edited, inserted, removed, "
				      "reordered or re-sealed)");
		if (v_key_to(v, r.epoch) != 0)
			return v_fail(v, r.seq, "key derivation failed");
	}
	if (v->have_ckpt && r.seq == v->ckpt.seq) {
		if (r.epoch != v->ckpt.epoch || sodium_memcmp(r.chain, v->ckpt.chain, CHAIN_LEN) != 0)
			return v_fail(v, r.seq, "does not match the vault's checkpoint (log rewritten)");
		v->ckpt_seen = true;
	}
	if (!v->have_prev) {
		v->first_seq = r.seq;
		copy_ts(v->first_ts, &r);
	}
	copy_ts(v->last_ts, &r);
	v->have_prev = true;
	v->prev_seq = r.seq;
	v->prev_epoch = r.epoch;
	memcpy(v->prev_chain, r.chain, CHAIN_LEN);
	v->records++;
	return 0;
}

static int v_file(struct verifier *v, const char *file)
{
	FILE *f = fopen(file, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;

	v->file = file;
	v->line = 0;
	if (f == NULL) {
		rc = -errno;
		snprintf(v->report, v->reportlen, "%s: %s", file, strerror(errno));
		return rc;
	}
	while ((n = getline(&line, &cap, f)) > 0) {
		v->line++;
		if (line[n - 1] != '\n') {
			rc = v_fail(v, 0, "after seq %llu: incomplete last line (torn write or cut "
				    "file)", (unsigned long long)v->prev_seq);
			break;
		}
		rc = v_record(v, line, (size_t)n - 1);
		if (rc != 0)
			break;
	}
	if (rc == 0 && ferror(f)) {
		rc = -EIO;
		snprintf(v->report, v->reportlen, "%s: read error", file);
	}
	free(line);
	fclose(f);
	return rc;
}

static void v_summary(struct verifier *v)
{
	char extra[160] = "";

	if (v->started_mid)
		snprintf(extra, sizeof(extra), " (starting at seq %llu, earlier files not given)",
			 (unsigned long long)v->first_seq);
	if (v->have_ckpt) {
		size_t used = strlen(extra);

		if (v->ckpt_seen)
			snprintf(extra + used, sizeof(extra) - used, ", vault checkpoint at seq %llu matches",
				 (unsigned long long)v->ckpt.seq);
		else
			snprintf(extra + used, sizeof(extra) - used,
				 ", vault checkpoint at seq %llu precedes the files given",
				 (unsigned long long)v->ckpt.seq);
	}
	if (v->records == 0)
		snprintf(v->report, v->reportlen, "OK: 0 records%s", extra);
	else
		snprintf(v->report, v->reportlen, "OK: %llu records, seq %llu..%llu, %s .. %s%s",
			 (unsigned long long)v->records, (unsigned long long)v->first_seq,
			 (unsigned long long)v->prev_seq, v->first_ts, v->last_ts, extra);
}

int audit_verify(const uint8_t master[32], const char *const *files, size_t nfiles,
		 const uint8_t *checkpoint, size_t checkpoint_len,
		 char *report, size_t reportlen)
{
	struct verifier v = { .report = report, .reportlen = reportlen };
	int rc = -EINVAL;

	if (reportlen > 0)
		report[0] = '\0';
	if (master == NULL || (files == NULL && nfiles > 0) || sodium_init() < 0)
		return -EINVAL;
	v.k = keys_new(master);
	if (v.k == NULL) {
		snprintf(report, reportlen, "out of memory");
		return -ENOMEM;
	}
	if (checkpoint != NULL && checkpoint_len > 0) {
		if (ckpt_open(v.k, checkpoint, checkpoint_len, &v.ckpt) != 0) {
			snprintf(report, reportlen, "the vault's audit checkpoint fails authentication "
				 "(wrong key, or the checkpoint was altered)");
			rc = 1;
			goto out;
		}
		v.have_ckpt = true;
	}
	for (size_t i = 0; i < nfiles; i++) {
		rc = v_file(&v, files[i]);
		if (rc != 0)
			goto out;
	}
	if (v.have_ckpt && !v.ckpt_seen && (v.records == 0 || v.prev_seq < v.ckpt.seq)) {
		snprintf(report, reportlen, "log ends at seq %llu but the vault's checkpoint is at "
			 "seq %llu: records cut off", (unsigned long long)v.prev_seq,
			 (unsigned long long)v.ckpt.seq);
		rc = 1;
		goto out;
	}
	v_summary(&v);
	rc = 0;
out:
	keys_free(v.k);
	return rc;
}
