/* The writer: queued jobs, and the batch on the worker thread. */
#include "writer.h"

#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "log.h"

TAILQ_HEAD(job_list, writer_job);

struct writer {
	uv_loop_t *loop;
	struct vault_writer *vw;
	struct job_list queue; /* waiting for the next batch */
	struct job_list batch; /* on the worker thread */
	struct vault_op *ops;
	size_t nops, ops_cap;
	uv_work_t work;
	bool busy;
	uint8_t ckpt_pending[AUDIT_CHECKPOINT_MAX], ckpt_running[AUDIT_CHECKPOINT_MAX];
	size_t ckpt_pending_len;
	bool ckpt_dirty;
	void (*done_fn)(void *arg);
	void *done_arg;
};

int writer_new(uv_loop_t *loop, struct vault_writer *vw, struct writer **out)
{
	struct writer *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return UV_ENOMEM;
	w->loop = loop;
	w->vw = vw;
	TAILQ_INIT(&w->queue);
	TAILQ_INIT(&w->batch);
	*out = w;
	return 0;
}

void writer_free(struct writer *w)
{
	if (w == NULL)
		return;
	free(w->ops);
	free(w);
}

static void writer_work(uv_work_t *work)
{
	struct writer *w = work->data;

	(void)vault_write_batch(w->vw, w->ops, w->nops);
}

static void writer_after(uv_work_t *work, int status)
{
	struct writer *w = work->data;
	struct job_list done = TAILQ_HEAD_INITIALIZER(done);
	struct writer_job *job;
	size_t i = 0;

	(void)status;
	/* Reads from here on see this commit (vault_hold_reads). */
	vault_writer_committed(w->vw);
	/*
	 * Take every result out of the batch before completing anyone: a
	 * completion lets its connection go on to its next (pipelined) put,
	 * which may start the next batch in w->ops.
	 */
	TAILQ_FOREACH(job, &w->batch, link) {
		job->op.result = w->ops[i].result;
		job->op.version = w->ops[i].version;
		i++;
	}
	if (i < w->nops && w->ops[i].kind == VAULT_OP_CHECKPOINT && w->ops[i].result != VAULT_OK)
		log_warn("storing the audit checkpoint in the vault failed: %s",
			 vault_strerror(w->ops[i].result));
	TAILQ_CONCAT(&done, &w->batch, link);
	w->nops = 0;
	w->busy = false;
	while ((job = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, job, link);
		job->done(job);
	}
	writer_kick(w);
	if (w->done_fn != NULL)
		w->done_fn(w->done_arg);
}

static int ops_reserve(struct writer *w, size_t n)
{
	struct vault_op *bigger;

	if (n <= w->ops_cap)
		return 0;
	bigger = realloc(w->ops, n * sizeof(*bigger));
	if (bigger == NULL)
		return -1;
	w->ops = bigger;
	w->ops_cap = n;
	return 0;
}

void writer_kick(struct writer *w)
{
	struct writer_job *job;
	size_t n = 0;
	int rc;

	if (w->busy || (TAILQ_EMPTY(&w->queue) && !w->ckpt_dirty))
		return;
	TAILQ_FOREACH(job, &w->queue, link)
		n++;
	if (ops_reserve(w, n + 1) != 0) {
		log_err("writer: out of memory (the tick tries again)");
		return;
	}
	w->nops = 0;
	TAILQ_FOREACH(job, &w->queue, link)
		w->ops[w->nops++] = job->op;
	if (w->ckpt_dirty) {
		memcpy(w->ckpt_running, w->ckpt_pending, w->ckpt_pending_len);
		w->ops[w->nops++] = (struct vault_op){ .kind = VAULT_OP_CHECKPOINT,
						       .value = w->ckpt_running,
						       .value_len = w->ckpt_pending_len };
	}
	w->work.data = w;
	rc = uv_queue_work(w->loop, &w->work, writer_work, writer_after);
	if (rc != 0) {
		/* Everything stays queued; the tick tries again. */
		log_err("writer: cannot queue work: %s", uv_strerror(rc));
		w->nops = 0;
		return;
	}
	w->ckpt_dirty = false;
	TAILQ_CONCAT(&w->batch, &w->queue, link);
	w->busy = true;
}

void writer_submit(struct writer *w, struct writer_job *job)
{
	TAILQ_INSERT_TAIL(&w->queue, job, link);
	writer_kick(w);
}

void writer_checkpoint(struct writer *w, const uint8_t *blob, size_t len)
{
	if (len > sizeof(w->ckpt_pending))
		return;
	memcpy(w->ckpt_pending, blob, len);
	w->ckpt_pending_len = len;
	w->ckpt_dirty = true;
	writer_kick(w);
}

bool writer_idle(const struct writer *w)
{
	return !w->busy && TAILQ_EMPTY(&w->queue);
}

void writer_on_done(struct writer *w, void (*fn)(void *arg), void *arg)
{
	w->done_fn = fn;
	w->done_arg = arg;
}
