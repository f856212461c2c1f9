/*
 * The fleet's protocol over etcd: the data key, compare-and-retry writes,
 * direct reads, snapshots and the watch.  See fleet.h.
 */
#include "fleet.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <secretd/names.h>

#define DATAKEY_TERM 1
#define SNAPSHOT_KEY_MAX (ETCD_KEY_MAX + 1)

struct fleet {
	uv_loop_t *loop;
	struct etcd_client *c;
	char prefix[FLEET_PREFIX_MAX + 1];
	uint8_t *cluster_key; /* sodium_malloc; wiped once the data key is open */
	uint8_t *dk;          /* sodium_malloc */
	bool ready;
	unsigned keep, max_retries;
	unsigned refs;        /* operations running, plus one until fleet_free */
	fleet_ready_cb ready_cb;
	void *ready_arg;
	uint8_t dk_rec[FLEET_DATAKEY_REC_LEN];
};

enum op_kind { OP_PUT, OP_RM, OP_GET };

struct fleet_op {
	struct fleet *f;
	enum op_kind kind;
	char name[NAME_MAX_LEN];
	size_t nlen;
	uint8_t *value;      /* put: sodium_malloc'd plaintext */
	size_t vlen;
	uint8_t *sealed;     /* put: this attempt's sealed record (ciphertext) */
	size_t sealed_len;
	uint32_t cur;        /* the head's version as last read (0: none) */
	int64_t cur_mod;     /* its mod_revision (0: absent) */
	bool cur_removed;
	uint32_t want;       /* get: the version asked for */
	uv_timer_t timer;
	fleet_done_cb cb;
	fleet_get_cb get_cb;
	void *arg;
	struct fleet_result res;
};

static void fleet_unref(struct fleet *f)
{
	if (--f->refs > 0)
		return;
	if (f->cluster_key != NULL)
		sodium_free(f->cluster_key);
	if (f->dk != NULL)
		sodium_free(f->dk);
	free(f);
}

const char *fleet_prefix(const struct fleet *f)
{
	return f->prefix;
}

/* The data key. */

static void set_ready(struct fleet *f, int status)
{
	if (status == ETCD_OK)
		f->ready = true;
	sodium_memzero(f->cluster_key, FLEET_KEY_LEN);
	f->ready_cb(f, status, f->ready_arg);
	fleet_unref(f);
}

static void open_datakey(struct fleet *f, const struct etcd_kv *kv)
{
	set_ready(f, fleet_datakey_open(f->cluster_key, f->prefix, DATAKEY_TERM, kv->value,
					kv->value_len, f->dk));
}

static const struct etcd_kv *find_kv(const struct etcd_kv *kvs, size_t n, const uint8_t *key,
				     size_t klen)
{
	for (size_t i = 0; i < n; i++)
		if (kvs[i].key_len == klen && memcmp(kvs[i].key, key, klen) == 0)
			return &kvs[i];
	return NULL;
}

static void on_datakey_create(const struct etcd_result *res, void *arg)
{
	struct fleet *f = arg;
	uint8_t key[FLEET_ETCD_KEY_MAX];
	size_t klen = fleet_key_datakey(key, sizeof(key), f->prefix, DATAKEY_TERM);
	const struct etcd_kv *kv;

	if (res->status != ETCD_OK) {
		set_ready(f, res->status);
		return;
	}
	if (res->txn.succeeded) {
		set_ready(f, ETCD_OK); /* ours is the fleet's key */
		return;
	}
	sodium_memzero(f->dk, FLEET_KEY_LEN);
	kv = find_kv(res->txn.kvs, res->txn.n, key, klen);
	if (kv == NULL)
		set_ready(f, ETCD_E_PROTOCOL); /* the compare said it exists */
	else
		open_datakey(f, kv);
}

static void on_datakey_read(const struct etcd_result *res, void *arg)
{
	struct fleet *f = arg;
	uint8_t key[FLEET_ETCD_KEY_MAX];
	size_t klen = fleet_key_datakey(key, sizeof(key), f->prefix, DATAKEY_TERM);
	const struct etcd_kv *kv;
	int rc;

	if (res->status != ETCD_OK) {
		set_ready(f, res->status);
		return;
	}
	kv = find_kv(res->range.kvs, res->range.n, key, klen);
	if (kv != NULL) {
		open_datakey(f, kv);
		return;
	}
	/* The first node of the fleet: create it unless another node just did. */
	rc = fleet_datakey_new(f->cluster_key, f->prefix, DATAKEY_TERM, f->dk, f->dk_rec);
	if (rc == ETCD_OK) {
		struct etcd_cmp cmp = { .target = ETCD_CMP_CREATE, .result = ETCD_CMP_EQUAL,
					.key = key, .klen = klen, .number = 0 };
		struct etcd_op put = { .kind = ETCD_OP_PUT, .key = key, .klen = klen,
				       .value = f->dk_rec, .vlen = sizeof(f->dk_rec) };
		struct etcd_op get = { .kind = ETCD_OP_RANGE, .key = key, .klen = klen };
		struct etcd_txn t = { &cmp, 1, &put, 1, &get, 1 };

		rc = etcd_txn(f->c, &t, on_datakey_create, f);
	}
	if (rc != ETCD_OK)
		set_ready(f, rc);
}

int fleet_new(uv_loop_t *loop, struct etcd_client *client, const struct fleet_config *cfg,
	      fleet_ready_cb ready, void *arg, struct fleet **out)
{
	const char *prefix = cfg->prefix != NULL ? cfg->prefix : FLEET_DEFAULT_PREFIX;
	uint8_t key[FLEET_ETCD_KEY_MAX];
	struct fleet *f;
	size_t klen;
	int rc;

	if (!fleet_prefix_valid(prefix, strlen(prefix)) || cfg->keep_versions == 0 ||
	    cfg->cluster_key == NULL)
		return ETCD_E_INVALID;
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return ETCD_E_NOMEM;
	f->loop = loop;
	f->c = client;
	memcpy(f->prefix, prefix, strlen(prefix) + 1);
	f->keep = cfg->keep_versions;
	f->max_retries = cfg->max_retries ? cfg->max_retries : FLEET_DEFAULT_RETRIES;
	f->ready_cb = ready;
	f->ready_arg = arg;
	f->refs = 2; /* the caller's, and the data key's read until ready */
	f->cluster_key = sodium_malloc(FLEET_KEY_LEN);
	f->dk = sodium_malloc(FLEET_KEY_LEN);
	if (f->cluster_key == NULL || f->dk == NULL) {
		f->refs = 1;
		fleet_unref(f);
		return ETCD_E_NOMEM;
	}
	memcpy(f->cluster_key, cfg->cluster_key, FLEET_KEY_LEN);
	klen = fleet_key_datakey(key, sizeof(key), f->prefix, DATAKEY_TERM);
	rc = etcd_range(client, key, klen, NULL, 0, 0, 0, on_datakey_read, f);
	if (rc != ETCD_OK) {
		f->refs = 1;
		fleet_unref(f);
		return rc;
	}
	*out = f;
	return ETCD_OK;
}

void fleet_free(struct fleet *f)
{
	if (f != NULL)
		fleet_unref(f);
}

/* Operations. */

static void on_op_closed(uv_handle_t *h)
{
	struct fleet_op *op = h->data;
	struct fleet *f = op->f;

	if (op->value != NULL)
		sodium_free(op->value);
	free(op->sealed);
	free(op);
	fleet_unref(f);
}

static void op_finish(struct fleet_op *op, int status)
{
	op->res.status = status;
	if (op->kind == OP_GET)
		op->get_cb(&op->res, NULL, 0, op->arg);
	else
		op->cb(&op->res, op->arg);
	uv_close((uv_handle_t *)&op->timer, on_op_closed);
}

static int op_new(struct fleet *f, enum op_kind kind, const char *name, size_t nlen,
		  struct fleet_op **out)
{
	struct fleet_op *op;

	if (!f->ready)
		return ETCD_E_INVALID;
	if (!name_valid(name, nlen, NULL))
		return ETCD_E_INVALID;
	op = calloc(1, sizeof(*op));
	if (op == NULL)
		return ETCD_E_NOMEM;
	if (uv_timer_init(f->loop, &op->timer) != 0) {
		free(op);
		return ETCD_E_NOMEM;
	}
	op->timer.data = op;
	op->f = f;
	op->kind = kind;
	memcpy(op->name, name, nlen);
	op->nlen = nlen;
	f->refs++;
	*out = op;
	return ETCD_OK;
}

/* The head's state from a set of kvs (absent when not among them). */
static int take_head(struct fleet_op *op, const struct etcd_kv *kvs, size_t n)
{
	uint8_t key[FLEET_ETCD_KEY_MAX];
	size_t klen = fleet_key_head(key, sizeof(key), op->f->prefix, op->name, op->nlen);
	const struct etcd_kv *kv = find_kv(kvs, n, key, klen);

	op->cur = 0;
	op->cur_mod = 0;
	op->cur_removed = false;
	if (kv == NULL)
		return ETCD_OK;
	if (fleet_head_decode(kv->value, kv->value_len, &op->cur, &op->cur_removed) != ETCD_OK)
		return ETCD_E_INTEGRITY;
	op->cur_mod = kv->mod_revision;
	return ETCD_OK;
}

static void note_header(struct fleet_op *op, const struct etcd_result *res)
{
	op->res.cluster_id = res->header.cluster_id;
	op->res.revision = res->header.revision;
	op->res.error = res->error;
}

static void send_write(struct fleet_op *op);

static void on_backoff(uv_timer_t *t)
{
	send_write(t->data);
}

/* A lost compare: the answer carries the new head; go again after a short pause. */
static void retry_write(struct fleet_op *op)
{
	uint64_t ms;

	if (op->res.attempts >= op->f->max_retries) {
		op_finish(op, ETCD_E_CONFLICT);
		return;
	}
	ms = randombytes_uniform(1u + (op->res.attempts < 6 ? 1u << op->res.attempts : 64u));
	if (ms == 0) {
		send_write(op);
		return;
	}
	if (uv_timer_start(&op->timer, on_backoff, ms, 0) != 0)
		op_finish(op, ETCD_E_NOMEM);
}

static void on_write(const struct etcd_result *res, void *arg)
{
	struct fleet_op *op = arg;
	uint8_t key[FLEET_ETCD_KEY_MAX];
	const struct etcd_kv *mine;
	size_t klen;

	note_header(op, res);
	if (res->status != ETCD_OK) {
		op_finish(op, res->status);
		return;
	}
	if (res->txn.succeeded) {
		op->res.version = op->kind == OP_PUT ? op->cur + 1 : op->cur;
		op_finish(op, ETCD_OK);
		return;
	}
	if (op->kind == OP_PUT) {
		klen = fleet_key_version(key, sizeof(key), op->f->prefix, op->name, op->nlen,
					 op->cur + 1);
		mine = find_kv(res->txn.kvs, res->txn.n, key, klen);
		if (mine != NULL && mine->value_len == op->sealed_len &&
		    sodium_memcmp(mine->value, op->sealed, op->sealed_len) == 0) {
			/* An earlier send of this very txn committed. */
			op->res.version = op->cur + 1;
			op->res.revision = mine->mod_revision;
			op_finish(op, ETCD_OK);
			return;
		}
	}
	if (take_head(op, res->txn.kvs, res->txn.n) != ETCD_OK) {
		op_finish(op, ETCD_E_INTEGRITY);
		return;
	}
	if (op->kind == OP_RM && (op->cur_mod == 0 || op->cur_removed)) {
		/* Removed meanwhile, by another node or by a lost answer of ours. */
		op->res.version = op->cur;
		op_finish(op, op->cur_mod == 0 ? ETCD_E_NOTFOUND : ETCD_OK);
		return;
	}
	retry_write(op);
}

static int seal_attempt(struct fleet_op *op)
{
	struct fleet *f = op->f;
	size_t cap = op->vlen + FLEET_SEALED_OVERHEAD;

	if (op->sealed == NULL && (op->sealed = malloc(cap)) == NULL)
		return ETCD_E_NOMEM;
	return fleet_seal(f->dk, DATAKEY_TERM, f->prefix, op->name, op->nlen, op->cur + 1,
			  op->value, op->vlen, op->sealed, cap, &op->sealed_len);
}

static void send_write(struct fleet_op *op)
{
	struct fleet *f = op->f;
	uint8_t hkey[FLEET_ETCD_KEY_MAX], vkey[FLEET_ETCD_KEY_MAX];
	uint8_t from[FLEET_ETCD_KEY_MAX], upto[FLEET_ETCD_KEY_MAX], head[FLEET_HEAD_LEN];
	size_t hlen, vlen = 0, flen, ulen;
	struct etcd_op succ[3], fail[2];
	size_t nsucc = 0, nfail = 0;
	int rc;

	hlen = fleet_key_head(hkey, sizeof(hkey), f->prefix, op->name, op->nlen);
	flen = fleet_key_versions(from, sizeof(from), f->prefix, op->name, op->nlen);
	struct etcd_cmp cmp = { .target = ETCD_CMP_MOD, .result = ETCD_CMP_EQUAL,
				.key = hkey, .klen = hlen, .number = op->cur_mod };

	op->res.attempts++;
	if (op->kind == OP_PUT) {
		if (op->cur == UINT32_MAX) {
			op_finish(op, ETCD_E_INVALID);
			return;
		}
		if ((rc = seal_attempt(op)) != ETCD_OK) {
			op_finish(op, rc);
			return;
		}
		vlen = fleet_key_version(vkey, sizeof(vkey), f->prefix, op->name, op->nlen,
					 op->cur + 1);
		fleet_head_encode(head, op->cur + 1, false);
		succ[nsucc++] = (struct etcd_op){ .kind = ETCD_OP_PUT, .key = hkey, .klen = hlen,
						  .value = head, .vlen = sizeof(head) };
		succ[nsucc++] = (struct etcd_op){ .kind = ETCD_OP_PUT, .key = vkey, .klen = vlen,
						  .value = op->sealed, .vlen = op->sealed_len };
		if (op->cur + 1 > f->keep) {
			/* Everything below the oldest kept version. */
			ulen = fleet_key_version(upto, sizeof(upto), f->prefix, op->name, op->nlen,
						 op->cur + 2 - f->keep);
			succ[nsucc++] = (struct etcd_op){ .kind = ETCD_OP_DELETE, .key = from,
							  .klen = flen, .end = upto, .elen = ulen };
		}
		fail[nfail++] = (struct etcd_op){ .kind = ETCD_OP_RANGE, .key = hkey, .klen = hlen };
		fail[nfail++] = (struct etcd_op){ .kind = ETCD_OP_RANGE, .key = vkey, .klen = vlen };
	} else {
		memcpy(upto, from, flen);
		upto[flen - 1] = '@' + 1; /* the end of "v/<name>@": every version */
		fleet_head_encode(head, op->cur, true);
		succ[nsucc++] = (struct etcd_op){ .kind = ETCD_OP_PUT, .key = hkey, .klen = hlen,
						  .value = head, .vlen = sizeof(head) };
		succ[nsucc++] = (struct etcd_op){ .kind = ETCD_OP_DELETE, .key = from, .klen = flen,
						  .end = upto, .elen = flen };
		fail[nfail++] = (struct etcd_op){ .kind = ETCD_OP_RANGE, .key = hkey, .klen = hlen };
	}
	struct etcd_txn t = { &cmp, 1, succ, nsucc, fail, nfail };

	rc = etcd_txn(f->c, &t, on_write, op);
	if (rc != ETCD_OK)
		op_finish(op, rc);
}

static void on_first_head(const struct etcd_result *res, void *arg)
{
	struct fleet_op *op = arg;

	note_header(op, res);
	if (res->status != ETCD_OK) {
		op_finish(op, res->status);
		return;
	}
	if (take_head(op, res->range.kvs, res->range.n) != ETCD_OK) {
		op_finish(op, ETCD_E_INTEGRITY);
		return;
	}
	if (op->kind == OP_RM && (op->cur_mod == 0 || op->cur_removed)) {
		op_finish(op, ETCD_E_NOTFOUND);
		return;
	}
	send_write(op);
}

static int read_head(struct fleet_op *op, etcd_cb cb)
{
	uint8_t key[FLEET_ETCD_KEY_MAX];
	size_t klen = fleet_key_head(key, sizeof(key), op->f->prefix, op->name, op->nlen);

	return etcd_range(op->f->c, key, klen, NULL, 0, 0, 0, cb, op);
}

static void op_abandon(struct fleet_op *op)
{
	/* Nothing was sent: no callback, just the memory. */
	uv_close((uv_handle_t *)&op->timer, on_op_closed);
}

int fleet_put(struct fleet *f, const char *name, size_t nlen, const uint8_t *value,
	      size_t vlen, fleet_done_cb cb, void *arg)
{
	struct fleet_op *op;
	int rc;

	if (vlen > ETCD_VALUE_MAX - FLEET_SEALED_OVERHEAD)
		return ETCD_E_INVALID;
	if ((rc = op_new(f, OP_PUT, name, nlen, &op)) != ETCD_OK)
		return rc;
	op->cb = cb;
	op->arg = arg;
	op->value = sodium_malloc(vlen > 0 ? vlen : 1);
	if (op->value == NULL) {
		op_abandon(op);
		return ETCD_E_NOMEM;
	}
	if (vlen > 0)
		memcpy(op->value, value, vlen);
	op->vlen = vlen;
	rc = read_head(op, on_first_head);
	if (rc != ETCD_OK)
		op_abandon(op);
	return rc;
}

int fleet_rm(struct fleet *f, const char *name, size_t nlen, fleet_done_cb cb, void *arg)
{
	struct fleet_op *op;
	int rc;

	if ((rc = op_new(f, OP_RM, name, nlen, &op)) != ETCD_OK)
		return rc;
	op->cb = cb;
	op->arg = arg;
	rc = read_head(op, on_first_head);
	if (rc != ETCD_OK)
		op_abandon(op);
	return rc;
}

/* Direct reads. */

static void on_get_version(const struct etcd_result *res, void *arg)
{
	struct fleet_op *op = arg;
	struct fleet_item it = { .kind = FLEET_K_VERSION };
	uint8_t key[FLEET_ETCD_KEY_MAX], *plain = NULL;
	size_t klen, plen = 0;
	const struct etcd_kv *kv;
	int rc;

	note_header(op, res);
	if (res->status != ETCD_OK) {
		op_finish(op, res->status);
		return;
	}
	klen = fleet_key_version(key, sizeof(key), op->f->prefix, op->name, op->nlen, op->want);
	kv = find_kv(res->range.kvs, res->range.n, key, klen);
	if (kv == NULL) {
		op_finish(op, ETCD_E_NOTFOUND);
		return;
	}
	it.name = op->name;
	it.name_len = op->nlen;
	it.version = op->want;
	it.sealed = kv->value;
	it.sealed_len = kv->value_len;
	rc = fleet_unseal(op->f, &it, &plain, &plen);
	if (rc != ETCD_OK) {
		op_finish(op, rc);
		return;
	}
	op->res.version = op->want;
	op->res.status = ETCD_OK;
	op->get_cb(&op->res, plain, plen, op->arg);
	sodium_free(plain);
	uv_close((uv_handle_t *)&op->timer, on_op_closed);
}

static void on_get_head(const struct etcd_result *res, void *arg)
{
	struct fleet_op *op = arg;
	uint8_t key[FLEET_ETCD_KEY_MAX];
	size_t klen;
	int rc;

	note_header(op, res);
	if (res->status != ETCD_OK) {
		op_finish(op, res->status);
		return;
	}
	if (take_head(op, res->range.kvs, res->range.n) != ETCD_OK) {
		op_finish(op, ETCD_E_INTEGRITY);
		return;
	}
	if (op->cur_mod == 0 || op->cur_removed || op->want > op->cur) {
		op_finish(op, ETCD_E_NOTFOUND);
		return;
	}
	if (op->want == 0)
		op->want = op->cur;
	klen = fleet_key_version(key, sizeof(key), op->f->prefix, op->name, op->nlen, op->want);
	rc = etcd_range(op->f->c, key, klen, NULL, 0, res->header.revision, 0, on_get_version, op);
	if (rc != ETCD_OK)
		op_finish(op, rc);
}

int fleet_get(struct fleet *f, const char *name, size_t nlen, uint32_t version,
	      fleet_get_cb cb, void *arg)
{
	struct fleet_op *op;
	int rc;

	if ((rc = op_new(f, OP_GET, name, nlen, &op)) != ETCD_OK)
		return rc;
	op->get_cb = cb;
	op->arg = arg;
	op->want = version;
	rc = read_head(op, on_get_head);
	if (rc != ETCD_OK)
		op_abandon(op);
	return rc;
}

int fleet_unseal(struct fleet *f, const struct fleet_item *it, uint8_t **out, size_t *outlen)
{
	uint8_t *plain;
	size_t cap;
	int rc;

	*out = NULL;
	*outlen = 0;
	if (!f->ready || it->kind != FLEET_K_VERSION || it->sealed == NULL ||
	    it->sealed_len < FLEET_SEALED_OVERHEAD)
		return it->kind == FLEET_K_VERSION ? ETCD_E_INTEGRITY : ETCD_E_INVALID;
	cap = it->sealed_len - FLEET_SEALED_OVERHEAD;
	plain = sodium_malloc(cap > 0 ? cap : 1);
	if (plain == NULL)
		return ETCD_E_NOMEM;
	rc = fleet_open(f->dk, DATAKEY_TERM, f->prefix, it->name, it->name_len, it->version,
			it->sealed, it->sealed_len, plain, cap, outlen);
	if (rc != ETCD_OK) {
		sodium_free(plain);
		return rc;
	}
	*out = plain;
	return ETCD_OK;
}

/* Items from kvs, shared by snapshots and the watch. */

static void item_from_kv(const struct fleet *f, const struct etcd_kv *kv, bool put,
			 struct fleet_item *it)
{
	struct fleet_key k;
	uint32_t term, version;

	memset(it, 0, sizeof(*it));
	fleet_key_parse(f->prefix, kv->key, kv->key_len, &k);
	it->kind = k.kind;
	it->name = k.name;
	it->name_len = k.name_len;
	it->version = k.version;
	it->mod_revision = kv->mod_revision;
	if (!put)
		return;
	if (k.kind == FLEET_K_HEAD) {
		it->status = fleet_head_decode(kv->value, kv->value_len, &it->version,
					       &it->removed);
	} else if (k.kind == FLEET_K_VERSION) {
		it->sealed = kv->value;
		it->sealed_len = kv->value_len;
		if (fleet_sealed_info(kv->value, kv->value_len, &term, &version) != ETCD_OK ||
		    version != k.version || term != DATAKEY_TERM)
			it->status = ETCD_E_INTEGRITY;
	}
}

/* Snapshots. */

struct snapshot {
	struct fleet *f;
	fleet_item_fn item;
	fleet_snapshot_cb done;
	void *arg;
	int64_t revision;
	uint8_t next[SNAPSHOT_KEY_MAX];
	size_t next_len;
	uint8_t end[FLEET_PREFIX_MAX];
	size_t end_len;
};

static void snapshot_end(struct snapshot *s, int status, uint64_t cluster_id)
{
	s->done(status, s->revision, cluster_id, s->arg);
	fleet_unref(s->f);
	free(s);
}

static void on_snapshot_page(const struct etcd_result *res, void *arg)
{
	struct snapshot *s = arg;
	const struct etcd_kv *last;
	struct fleet_item it;
	int rc;

	if (res->status != ETCD_OK) {
		snapshot_end(s, res->status, 0);
		return;
	}
	if (s->revision == 0)
		s->revision = res->header.revision;
	for (size_t i = 0; i < res->range.n; i++) {
		item_from_kv(s->f, &res->range.kvs[i], true, &it);
		if ((rc = s->item(&it, s->arg)) != 0) {
			snapshot_end(s, rc, res->header.cluster_id);
			return;
		}
	}
	if (!res->range.more || res->range.n == 0) {
		snapshot_end(s, ETCD_OK, res->header.cluster_id);
		return;
	}
	last = &res->range.kvs[res->range.n - 1];
	if (last->key_len + 1 > sizeof(s->next)) {
		snapshot_end(s, ETCD_E_PROTOCOL, 0);
		return;
	}
	/* The next page starts just after the last key: key + "\0". */
	memcpy(s->next, last->key, last->key_len);
	s->next[last->key_len] = 0;
	s->next_len = last->key_len + 1;
	rc = etcd_range(s->f->c, s->next, s->next_len, s->end, s->end_len, s->revision,
			FLEET_SNAPSHOT_PAGE, on_snapshot_page, s);
	if (rc != ETCD_OK)
		snapshot_end(s, rc, 0);
}

int fleet_snapshot(struct fleet *f, fleet_item_fn item, fleet_snapshot_cb done, void *arg)
{
	struct snapshot *s;
	size_t plen = strlen(f->prefix);
	int rc;

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return ETCD_E_NOMEM;
	s->f = f;
	s->item = item;
	s->done = done;
	s->arg = arg;
	memcpy(s->next, f->prefix, plen);
	s->next_len = plen;
	s->end_len = etcd_prefix_end((const uint8_t *)f->prefix, plen, s->end);
	rc = etcd_range(f->c, s->next, s->next_len, s->end, s->end_len, 0, FLEET_SNAPSHOT_PAGE,
			on_snapshot_page, s);
	if (rc != ETCD_OK) {
		free(s);
		return rc;
	}
	f->refs++;
	return ETCD_OK;
}

/* The watch. */

struct fleet_watch {
	struct fleet *f;
	struct etcd_watch *w;
	fleet_watch_cb cb;
	void *arg;
	struct fleet_change *buf;
	size_t cap;
};

static void on_etcd_watch(struct etcd_watch *ew, int status, const struct etcd_watch_msg *msg,
			  void *arg)
{
	struct fleet_watch *fw = arg;
	int64_t revision = 0;

	(void)ew;
	if (status == ETCD_E_COMPACTED) {
		fw->cb(status, msg != NULL ? msg->compact_revision : 0, NULL, 0, fw->arg);
		return;
	}
	if (status != ETCD_OK) {
		fw->cb(status, 0, NULL, 0, fw->arg);
		return;
	}
	if (msg->n > fw->cap) {
		struct fleet_change *bigger = realloc(fw->buf, msg->n * sizeof(*bigger));

		if (bigger == NULL) {
			/* Cannot hand these over: say so; the broker resyncs. */
			fw->cb(ETCD_E_NOMEM, 0, NULL, 0, fw->arg);
			return;
		}
		fw->buf = bigger;
		fw->cap = msg->n;
	}
	for (size_t i = 0; i < msg->n; i++) {
		const struct etcd_event *ev = &msg->events[i];

		fw->buf[i].type = ev->type;
		item_from_kv(fw->f, &ev->kv, ev->type == ETCD_EVENT_PUT, &fw->buf[i].item);
		revision = ev->kv.mod_revision;
	}
	if (msg->n == 0 && !msg->created)
		revision = msg->header.revision;
	fw->cb(ETCD_OK, revision, fw->buf, msg->n, fw->arg);
}

int fleet_watch(struct fleet *f, int64_t from_revision, fleet_watch_cb cb, void *arg,
		struct fleet_watch **out)
{
	struct fleet_watch *fw = calloc(1, sizeof(*fw));
	uint8_t end[FLEET_PREFIX_MAX];
	size_t plen = strlen(f->prefix), elen;
	int rc;

	if (fw == NULL)
		return ETCD_E_NOMEM;
	fw->f = f;
	fw->cb = cb;
	fw->arg = arg;
	elen = etcd_prefix_end((const uint8_t *)f->prefix, plen, end);
	rc = etcd_watch_start(f->c, (const uint8_t *)f->prefix, plen, end, elen, from_revision,
			      on_etcd_watch, fw, &fw->w);
	if (rc != ETCD_OK) {
		free(fw);
		return rc;
	}
	f->refs++;
	*out = fw;
	return ETCD_OK;
}

void fleet_watch_stop(struct fleet_watch *fw)
{
	struct fleet *f = fw->f;

	etcd_watch_stop(fw->w);
	free(fw->buf);
	free(fw);
	fleet_unref(f);
}
