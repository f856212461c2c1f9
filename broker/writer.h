/*
 * The writer: puts and deletes from every connection, batched into one
 * durable vault commit on a worker thread while the loop goes on serving.
 * Each job is completed through its own callback, on the loop thread, after
 * the commit; a job owns its name and value (they never point into a
 * connection's input buffer).  Audit checkpoints ride along in the batch.
 */
#ifndef SECRETD_WRITER_H
#define SECRETD_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tailq.h"

#include <uv.h>

#include "vault.h"

struct writer_job {
	TAILQ_ENTRY(writer_job) link;
	struct vault_op op; /* in: kind, name, value; out: result, version */
	void (*done)(struct writer_job *job);
};

struct writer;

int writer_new(uv_loop_t *loop, struct vault_writer *vw, struct writer **out);
void writer_free(struct writer *w);

/* Queue a job; its done callback runs once the batch holding it committed. */
void writer_submit(struct writer *w, struct writer_job *job);
/* Keep this audit checkpoint with the next commit (a newer one replaces it). */
void writer_checkpoint(struct writer *w, const uint8_t *blob, size_t len);
/* Start a batch if there is work and none runs (also from the tick: retries). */
void writer_kick(struct writer *w);
/* Nothing queued, nothing running. */
bool writer_idle(const struct writer *w);
/* Called after each batch completed (shutdown watches it). */
void writer_on_done(struct writer *w, void (*fn)(void *arg), void *arg);

#endif
