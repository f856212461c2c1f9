/*
 * The offline verifier: replay the chain across files in order from the
 * master key, and with the vault's checkpoint also find a cut-off tail.
 * What secretd audit-verify (audit_verify.c) runs.
 */
#include "audit.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "audit_chain.h"
#include "audit_record.h"

#define CHAIN_LEN AUDIT_CHAIN_LEN

struct verifier {
	struct audit_keys *k;
	struct audit_parsed rec; /* the record being checked */
	bool have_prev;
	uint64_t prev_seq, prev_epoch;
	uint8_t prev_chain[CHAIN_LEN];
	uint64_t records, first_seq;
	bool started_mid;
	char first_ts[AUDIT_TS_MAX], last_ts[AUDIT_TS_MAX];
	bool have_ckpt, ckpt_seen;
	struct audit_ckpt ckpt;
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

/* Check the epoch and seq of r against the record before it. */
static int v_sequence(struct verifier *v, const struct audit_event *r)
{
	bool opens = audit_record_opens_epoch(r);

	if (r->seq != v->prev_seq + 1)
		return v_fail(v, r->seq, "seq %llu follows %llu (%s)", (unsigned long long)r->seq,
			      (unsigned long long)v->prev_seq,
			      r->seq <= v->prev_seq ? "record inserted, duplicated or reordered"
						    : "record removed or reordered");
	if (opens && r->epoch != v->prev_epoch + 1)
		return v_fail(v, r->seq, "epoch %llu at a %s record follows epoch %llu "
			      "(must be one more)", (unsigned long long)r->epoch, r->op,
			      (unsigned long long)v->prev_epoch);
	if (!opens && r->epoch != v->prev_epoch)
		return v_fail(v, r->seq, "epoch changes from %llu to %llu without a start or "
			      "epoch record (record re-sealed or edited)",
			      (unsigned long long)v->prev_epoch, (unsigned long long)r->epoch);
	return 0;
}

/*
 * The first record given, when it is not seq 1: the earlier files are not
 * given, so the chain starts here, but only where the broker began a file.
 * Such a record names the chain value before it under its own MAC, which
 * is then checked like any other; anywhere else the records before it were
 * cut off.
 */
static int v_start_mid(struct verifier *v, const struct audit_event *r)
{
	bool opens = audit_record_opens_epoch(r);

	if (!r->file_start)
		return v_fail(v, r->seq, "the first record given is not the first the broker "
			      "wrote into its file (records before it removed; give the "
			      "earlier files too)");
	if (!r->has_prev)
		return v_fail(v, r->seq, "the first record given begins a file but does not name "
			      "the chain before it (written by an older secretd): give the "
			      "earlier files too");
	if (opens && r->epoch == 0)
		return v_fail(v, r->seq, "epoch 0 at a %s record", r->op);
	memcpy(v->prev_chain, r->prev, CHAIN_LEN);
	v->prev_seq = r->seq - 1;
	v->prev_epoch = opens ? r->epoch - 1 : r->epoch;
	v->started_mid = true;
	return 0;
}

static int v_record(struct verifier *v, const char *line, size_t len)
{
	const struct audit_event *r = &v->rec.ev;
	uint8_t mac[CHAIN_LEN];
	int rc;

	if (!audit_record_parse(line, len, &v->rec))
		return v_fail(v, 0, "after seq %llu: not a valid audit record (edited or damaged "
			      "line)", (unsigned long long)v->prev_seq);
	if (r->epoch >= r->seq)
		return v_fail(v, r->seq, "epoch %llu is impossible at this seq",
			      (unsigned long long)r->epoch);
	if (v->have_prev)
		rc = v_sequence(v, r);
	else if (r->seq != 1)
		rc = v_start_mid(v, r);
	else if (r->epoch != 0)
		rc = v_fail(v, r->seq, "the first record is not in epoch 0");
	else
		rc = 0; /* the chain before seq 1 is all zero */
	if (rc != 0)
		return rc;
	if (r->has_prev && sodium_memcmp(r->prev, v->prev_chain, CHAIN_LEN) != 0)
		return v_fail(v, r->seq, "begins a file but names another chain value before it "
			      "than the record before it has");
	if (audit_keys_to(v->k, v->prev_epoch) != 0 ||
	    audit_chain_mac(v->k, v->prev_chain, line, v->rec.body_len, mac) != 0)
		return v_fail(v, r->seq, "key derivation failed");
	if (sodium_memcmp(mac, r->chain, CHAIN_LEN) != 0)
		return v_fail(v, r->seq, "chain MAC mismatch (record edited, inserted, removed, "
			      "reordered or re-sealed)");
	if (audit_keys_to(v->k, r->epoch) != 0)
		return v_fail(v, r->seq, "key derivation failed");
	if (v->have_ckpt && r->seq == v->ckpt.seq) {
		if (r->epoch != v->ckpt.epoch || sodium_memcmp(r->chain, v->ckpt.chain, CHAIN_LEN) != 0)
			return v_fail(v, r->seq, "does not match the vault's checkpoint (log rewritten)");
		v->ckpt_seen = true;
	}
	if (!v->have_prev) {
		v->first_seq = r->seq;
		snprintf(v->first_ts, sizeof(v->first_ts), "%s", r->ts);
	}
	snprintf(v->last_ts, sizeof(v->last_ts), "%s", r->ts);
	v->have_prev = true;
	v->prev_seq = r->seq;
	v->prev_epoch = r->epoch;
	memcpy(v->prev_chain, r->chain, CHAIN_LEN);
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
	struct verifier *v = NULL;
	int rc = -EINVAL;

	if (reportlen > 0)
		report[0] = '\0';
	if (master == NULL || (files == NULL && nfiles > 0) || sodium_init() < 0)
		return -EINVAL;
	v = calloc(1, sizeof(*v));
	if (v == NULL || (v->k = audit_keys_new(master)) == NULL) {
		snprintf(report, reportlen, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	v->report = report;
	v->reportlen = reportlen;
	if (checkpoint != NULL && checkpoint_len > 0) {
		if (audit_ckpt_open(v->k, checkpoint, checkpoint_len, &v->ckpt) != 0) {
			snprintf(report, reportlen, "the vault's audit checkpoint fails authentication "
				 "(wrong key, or the checkpoint was altered)");
			rc = 1;
			goto out;
		}
		v->have_ckpt = true;
	}
	for (size_t i = 0; i < nfiles; i++) {
		rc = v_file(v, files[i]);
		if (rc != 0)
			goto out;
	}
	if (v->have_ckpt && !v->ckpt_seen && (v->records == 0 || v->prev_seq < v->ckpt.seq)) {
		snprintf(report, reportlen, "log ends at seq %llu but the vault's checkpoint is at "
			 "seq %llu: records cut off", (unsigned long long)v->prev_seq,
			 (unsigned long long)v->ckpt.seq);
		rc = 1;
		goto out;
	}
	v_summary(v);
	rc = 0;
out:
	if (v != NULL)
		audit_keys_free(v->k);
	free(v);
	return rc;
}
