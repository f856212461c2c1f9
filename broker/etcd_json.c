/*
 * etcd gateway JSON, with jansson.  jansson was chosen over json-c because
 * it parses strict RFC 8259 from a buffer with an explicit length
 * (json_loadb), refuses duplicate object keys on request
 * (JSON_REJECT_DUPLICATES), refuses NUL inside strings and trailing bytes
 * by default, and reports integer overflow instead of wrapping; json-c's
 * tokener accepts comments, single quotes and other extensions unless each
 * is switched off, and keeps the last of duplicate keys silently.
 */
#include "etcd_json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

static json_t *load(const char *buf, size_t len)
{
	json_error_t jerr;
	json_t *root;

	if (buf == NULL || len == 0 || len > ETCD_JSON_MAX)
		return NULL;
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root != NULL && !json_is_object(root)) {
		json_decref(root);
		return NULL;
	}
	return root;
}

/* Decimal digits only (a leading '-' when neg_ok), no sign, space or 0x. */
static int parse_digits(const char *s, size_t n, bool neg_ok, int64_t *i, uint64_t *u)
{
	char tmp[24], *end;
	size_t k = 0;

	if (n == 0 || n >= sizeof(tmp))
		return -1;
	if (s[0] == '-') {
		if (!neg_ok || n == 1)
			return -1;
		k = 1;
	}
	for (; k < n; k++)
		if (s[k] < '0' || s[k] > '9')
			return -1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	errno = 0;
	if (i != NULL)
		*i = strtoll(tmp, &end, 10);
	else
		*u = strtoull(tmp, &end, 10);
	return (errno != 0 || *end != '\0') ? -1 : 0;
}

/* An int64 field: absent is 0; a string of digits or a JSON integer. */
static int get_i64(const json_t *obj, const char *name, int64_t *out)
{
	const json_t *v = json_object_get(obj, name);

	*out = 0;
	if (v == NULL)
		return 0;
	if (json_is_integer(v)) {
		*out = (int64_t)json_integer_value(v);
		return 0;
	}
	if (!json_is_string(v))
		return -1;
	return parse_digits(json_string_value(v), json_string_length(v), true, out, NULL);
}

/* A revision-like field: an int64 that may not be negative. */
static int get_rev(const json_t *obj, const char *name, int64_t *out)
{
	return (get_i64(obj, name, out) != 0 || *out < 0) ? -1 : 0;
}

static int get_u64(const json_t *obj, const char *name, uint64_t *out)
{
	const json_t *v = json_object_get(obj, name);

	*out = 0;
	if (v == NULL)
		return 0;
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0)
			return -1;
		*out = (uint64_t)json_integer_value(v);
		return 0;
	}
	if (!json_is_string(v))
		return -1;
	return parse_digits(json_string_value(v), json_string_length(v), false, NULL, out);
}

static int get_bool(const json_t *obj, const char *name, bool *out)
{
	const json_t *v = json_object_get(obj, name);

	*out = false;
	if (v == NULL)
		return 0;
	if (!json_is_boolean(v))
		return -1;
	*out = json_is_true(v);
	return 0;
}

/* An optional object field: NULL when absent, -1 when of another type. */
static int get_obj(const json_t *obj, const char *name, const json_t **out)
{
	*out = json_object_get(obj, name);
	return (*out == NULL || json_is_object(*out)) ? 0 : -1;
}

static int get_array(const json_t *obj, const char *name, const json_t **out)
{
	*out = json_object_get(obj, name);
	return (*out == NULL || json_is_array(*out)) ? 0 : -1;
}

/* A printable-ASCII copy of a string field, truncated to cap - 1. */
static int get_text(const json_t *obj, const char *name, char *out, size_t cap)
{
	const json_t *v = json_object_get(obj, name);
	const char *s;
	size_t n, k;

	out[0] = '\0';
	if (v == NULL)
		return 0;
	if (!json_is_string(v))
		return -1;
	s = json_string_value(v);
	n = json_string_length(v);
	if (n > cap - 1)
		n = cap - 1;
	for (k = 0; k < n; k++)
		out[k] = (s[k] >= 0x20 && s[k] < 0x7f) ? s[k] : '?';
	out[n] = '\0';
	return 0;
}

/* A base64 bytes field: absent is empty (NULL, 0).  At most max decoded bytes. */
static int get_bytes(const json_t *obj, const char *name, size_t max, uint8_t **out,
		     size_t *outlen)
{
	const json_t *v = json_object_get(obj, name);
	const char *s, *end = NULL;
	size_t n, cap, got = 0;
	uint8_t *bin;

	*out = NULL;
	*outlen = 0;
	if (v == NULL)
		return 0;
	if (!json_is_string(v))
		return -1;
	s = json_string_value(v);
	n = json_string_length(v);
	if (n == 0)
		return 0;
	if (n % 4 != 0 || n / 4 * 3 > max + 2)
		return -1;
	cap = n / 4 * 3;
	bin = malloc(cap);
	if (bin == NULL)
		return -1;
	if (sodium_base642bin(bin, cap, s, n, NULL, &got, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    end != s + n || got > max) {
		free(bin);
		return -1;
	}
	*out = bin;
	*outlen = got;
	return 0;
}

static int parse_header(const json_t *root, struct etcd_header *h)
{
	const json_t *hdr;

	memset(h, 0, sizeof(*h));
	if (get_obj(root, "header", &hdr) != 0 || hdr == NULL)
		return -1;
	if (get_u64(hdr, "cluster_id", &h->cluster_id) != 0 ||
	    get_u64(hdr, "member_id", &h->member_id) != 0 ||
	    get_rev(hdr, "revision", &h->revision) != 0 ||
	    get_u64(hdr, "raft_term", &h->raft_term) != 0)
		return -1;
	return 0;
}

void etcd_kv_free(struct etcd_kv *kv)
{
	free(kv->key);
	free(kv->value);
	memset(kv, 0, sizeof(*kv));
}

static int parse_kv(const json_t *o, struct etcd_kv *kv)
{
	memset(kv, 0, sizeof(*kv));
	if (!json_is_object(o))
		return -1;
	if (get_bytes(o, "key", ETCD_KEY_MAX, &kv->key, &kv->key_len) != 0 ||
	    get_bytes(o, "value", ETCD_VALUE_MAX, &kv->value, &kv->value_len) != 0 ||
	    get_rev(o, "create_revision", &kv->create_revision) != 0 ||
	    get_rev(o, "mod_revision", &kv->mod_revision) != 0 ||
	    get_rev(o, "version", &kv->version) != 0 || kv->key_len == 0) {
		etcd_kv_free(kv);
		return -1;
	}
	return 0;
}

static void kvs_free(struct etcd_kv *kvs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		etcd_kv_free(&kvs[i]);
	free(kvs);
}

/* Append the kvs array (may be NULL) to *kvs / *n. */
static int append_kvs(const json_t *arr, struct etcd_kv **kvs, size_t *n)
{
	size_t add, i;
	struct etcd_kv *grown;

	if (arr == NULL)
		return 0;
	add = json_array_size(arr);
	if (add == 0)
		return 0;
	if (add > ETCD_JSON_MAX / 16 - *n)
		return -1;
	grown = realloc(*kvs, (*n + add) * sizeof(**kvs));
	if (grown == NULL)
		return -1;
	*kvs = grown;
	for (i = 0; i < add; i++) {
		if (parse_kv(json_array_get(arr, i), &grown[*n]) != 0)
			return -1;
		(*n)++;
	}
	return 0;
}

int etcd_json_range(const char *buf, size_t len, struct etcd_range_resp *out)
{
	json_t *root = load(buf, len);
	const json_t *kvs;
	int rc = ETCD_E_PROTOCOL;

	memset(out, 0, sizeof(*out));
	if (root == NULL)
		return ETCD_E_PROTOCOL;
	if (parse_header(root, &out->header) != 0 || get_array(root, "kvs", &kvs) != 0 ||
	    get_bool(root, "more", &out->more) != 0 || get_rev(root, "count", &out->count) != 0)
		goto out;
	if (append_kvs(kvs, &out->kvs, &out->n) != 0)
		goto out;
	rc = ETCD_OK;
out:
	if (rc != ETCD_OK)
		etcd_range_free(out);
	json_decref(root);
	return rc;
}

void etcd_range_free(struct etcd_range_resp *r)
{
	kvs_free(r->kvs, r->n);
	memset(r, 0, sizeof(*r));
}

/* One element of a txn's responses: exactly one known member. */
static int parse_txn_item(const json_t *item, struct etcd_txn_resp *out)
{
	const json_t *range, *put, *del, *kvs;
	int64_t deleted;
	int kinds;

	if (!json_is_object(item) || get_obj(item, "response_range", &range) != 0 ||
	    get_obj(item, "response_put", &put) != 0 ||
	    get_obj(item, "response_delete_range", &del) != 0)
		return -1;
	kinds = (range != NULL) + (put != NULL) + (del != NULL);
	if (kinds != 1)
		return -1;
	if (range != NULL)
		return (get_array(range, "kvs", &kvs) != 0 ||
			append_kvs(kvs, &out->kvs, &out->n) != 0) ? -1 : 0;
	if (del != NULL) {
		if (get_rev(del, "deleted", &deleted) != 0 || deleted > INT64_MAX - out->deleted)
			return -1;
		out->deleted += deleted;
	}
	return 0;
}

int etcd_json_txn(const char *buf, size_t len, struct etcd_txn_resp *out)
{
	json_t *root = load(buf, len);
	const json_t *resps;
	int rc = ETCD_E_PROTOCOL;

	memset(out, 0, sizeof(*out));
	if (root == NULL)
		return ETCD_E_PROTOCOL;
	if (parse_header(root, &out->header) != 0 ||
	    get_bool(root, "succeeded", &out->succeeded) != 0 ||
	    get_array(root, "responses", &resps) != 0)
		goto out;
	for (size_t i = 0; resps != NULL && i < json_array_size(resps); i++)
		if (parse_txn_item(json_array_get(resps, i), out) != 0)
			goto out;
	rc = ETCD_OK;
out:
	if (rc != ETCD_OK)
		etcd_txn_free(out);
	json_decref(root);
	return rc;
}

void etcd_txn_free(struct etcd_txn_resp *r)
{
	kvs_free(r->kvs, r->n);
	memset(r, 0, sizeof(*r));
}

static int parse_event(const json_t *o, struct etcd_event *ev)
{
	const json_t *type, *kv;

	memset(ev, 0, sizeof(*ev));
	if (!json_is_object(o) || get_obj(o, "kv", &kv) != 0 || kv == NULL)
		return -1;
	type = json_object_get(o, "type");
	if (type == NULL || (json_is_string(type) && strcmp(json_string_value(type), "PUT") == 0))
		ev->type = ETCD_EVENT_PUT;
	else if (json_is_string(type) && strcmp(json_string_value(type), "DELETE") == 0)
		ev->type = ETCD_EVENT_DELETE;
	else
		return -1;
	return parse_kv(kv, &ev->kv);
}

/* The gateway wraps each stream message in "result", or sends {"error":{...}}. */
int etcd_json_watch(const char *buf, size_t len, struct etcd_watch_msg *out)
{
	json_t *root = load(buf, len);
	const json_t *res, *evs;
	size_t i, n;
	int rc = ETCD_E_PROTOCOL;

	memset(out, 0, sizeof(*out));
	if (root == NULL)
		return ETCD_E_PROTOCOL;
	if (get_obj(root, "result", &res) != 0 || res == NULL)
		goto out;
	if (parse_header(res, &out->header) != 0 || get_i64(res, "watch_id", &out->watch_id) != 0 ||
	    get_bool(res, "created", &out->created) != 0 ||
	    get_bool(res, "canceled", &out->canceled) != 0 ||
	    get_rev(res, "compact_revision", &out->compact_revision) != 0 ||
	    get_text(res, "cancel_reason", out->cancel_reason, sizeof(out->cancel_reason)) != 0 ||
	    get_array(res, "events", &evs) != 0)
		goto out;
	n = evs != NULL ? json_array_size(evs) : 0;
	if (n > 0) {
		out->events = calloc(n, sizeof(*out->events));
		if (out->events == NULL) {
			rc = ETCD_E_NOMEM;
			goto out;
		}
	}
	for (i = 0; i < n; i++) {
		if (parse_event(json_array_get(evs, i), &out->events[i]) != 0)
			goto out;
		out->n++;
	}
	rc = ETCD_OK;
out:
	if (rc != ETCD_OK)
		etcd_watch_msg_free(out);
	json_decref(root);
	return rc;
}

void etcd_watch_msg_free(struct etcd_watch_msg *m)
{
	for (size_t i = 0; i < m->n; i++)
		etcd_kv_free(&m->events[i].kv);
	free(m->events);
	memset(m, 0, sizeof(*m));
}

int etcd_json_status(const char *buf, size_t len, struct etcd_status_resp *out)
{
	json_t *root = load(buf, len);
	int rc = ETCD_E_PROTOCOL;

	memset(out, 0, sizeof(*out));
	if (root == NULL)
		return ETCD_E_PROTOCOL;
	if (parse_header(root, &out->header) == 0 && get_u64(root, "leader", &out->leader) == 0 &&
	    get_text(root, "version", out->version, sizeof(out->version)) == 0)
		rc = ETCD_OK;
	json_decref(root);
	return rc;
}

int etcd_json_token(const char *buf, size_t len, char *token, size_t cap)
{
	json_t *root = load(buf, len);
	struct etcd_header h;
	const json_t *t;
	const char *s;
	size_t n, k;
	int rc = ETCD_E_PROTOCOL;

	token[0] = '\0';
	if (root == NULL)
		return ETCD_E_PROTOCOL;
	t = json_object_get(root, "token");
	if (parse_header(root, &h) != 0 || !json_is_string(t))
		goto out;
	s = json_string_value(t);
	n = json_string_length(t);
	if (n == 0 || n > ETCD_TOKEN_MAX || n >= cap)
		goto out;
	/* It goes into an HTTP header: visible ASCII only. */
	for (k = 0; k < n; k++)
		if (s[k] <= 0x20 || s[k] >= 0x7f)
			goto out;
	memcpy(token, s, n);
	token[n] = '\0';
	rc = ETCD_OK;
out:
	json_decref(root);
	return rc;
}

bool etcd_json_error(const char *buf, size_t len, struct etcd_error *e)
{
	json_t *root = load(buf, len);
	const json_t *err, *src;
	int64_t code = 0;
	bool is_error = false;

	memset(e, 0, sizeof(*e));
	if (root == NULL)
		return false;
	err = json_object_get(root, "error");
	if (err == NULL)
		goto out;
	/* Unary answers: {"error":"text","code":N,"message":"text"}. */
	src = json_is_object(err) ? err : root;
	if (get_i64(src, json_is_object(err) ? "grpc_code" : "code", &code) != 0 ||
	    code < 0 || code > 1000)
		code = -1;
	e->code = (int)code;
	if (get_text(src, "message", e->message, sizeof(e->message)) != 0 || e->message[0] == '\0')
		(void)get_text(root, "error", e->message, sizeof(e->message));
	is_error = true;
out:
	json_decref(root);
	return is_error;
}

/* Requests. */

static json_t *b64(const uint8_t *p, size_t n)
{
	size_t cap = sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL);
	char *s = malloc(cap);
	json_t *j;

	if (s == NULL)
		return NULL;
	sodium_bin2base64(s, cap, n > 0 ? p : (const uint8_t *)"", n,
			  sodium_base64_VARIANT_ORIGINAL);
	j = json_string(s);
	free(s);
	return j;
}

static json_t *i64str(int64_t v)
{
	char s[24];

	snprintf(s, sizeof(s), "%lld", (long long)v);
	return json_string(s);
}

/* json_object_set_new that remembers a failure (a NULL value counts). */
static void set(json_t *o, const char *k, json_t *v, bool *ok)
{
	if (v == NULL || o == NULL || json_object_set_new(o, k, v) != 0)
		*ok = false;
}

static char *dump(json_t *o, bool ok)
{
	char *s = NULL;

	if (ok && o != NULL)
		s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

static json_t *range_obj(const uint8_t *key, size_t klen, const uint8_t *end, size_t elen,
			 int64_t revision, int64_t limit, bool keys_only, bool *ok)
{
	json_t *o = json_object();

	set(o, "key", b64(key, klen), ok);
	if (end != NULL)
		set(o, "range_end", b64(end, elen), ok);
	if (revision > 0)
		set(o, "revision", i64str(revision), ok);
	if (limit > 0)
		set(o, "limit", i64str(limit), ok);
	if (keys_only)
		set(o, "keys_only", json_true(), ok);
	return o;
}

char *etcd_req_range(const uint8_t *key, size_t klen, const uint8_t *end, size_t elen,
		     int64_t revision, int64_t limit, bool keys_only)
{
	bool ok = true;
	json_t *o = range_obj(key, klen, end, elen, revision, limit, keys_only, &ok);

	return dump(o, ok);
}

static const char *const cmp_targets[] = { "VERSION", "CREATE", "MOD", "VALUE" };
static const char *const cmp_results[] = { "EQUAL", "GREATER", "LESS", "NOT_EQUAL" };
static const char *const cmp_fields[] = { "version", "create_revision", "mod_revision" };

static json_t *cmp_obj(const struct etcd_cmp *c, bool *ok)
{
	json_t *o = json_object();

	if ((unsigned)c->target > ETCD_CMP_VALUE || (unsigned)c->result > ETCD_CMP_NOT_EQUAL) {
		*ok = false;
		return o;
	}
	set(o, "key", b64(c->key, c->klen), ok);
	set(o, "target", json_string(cmp_targets[c->target]), ok);
	set(o, "result", json_string(cmp_results[c->result]), ok);
	if (c->target == ETCD_CMP_VALUE)
		set(o, "value", b64(c->value, c->vlen), ok);
	else
		set(o, cmp_fields[c->target], i64str(c->number), ok);
	return o;
}

static json_t *op_obj(const struct etcd_op *op, bool *ok)
{
	json_t *o = json_object(), *inner = json_object();

	switch (op->kind) {
	case ETCD_OP_RANGE:
		json_decref(inner);
		inner = range_obj(op->key, op->klen, op->end, op->elen, 0, 0, false, ok);
		set(o, "request_range", inner, ok);
		return o;
	case ETCD_OP_PUT:
		set(inner, "key", b64(op->key, op->klen), ok);
		set(inner, "value", b64(op->value, op->vlen), ok);
		set(o, "request_put", inner, ok);
		return o;
	case ETCD_OP_DELETE:
		set(inner, "key", b64(op->key, op->klen), ok);
		if (op->end != NULL)
			set(inner, "range_end", b64(op->end, op->elen), ok);
		set(o, "request_delete_range", inner, ok);
		return o;
	}
	json_decref(inner);
	*ok = false;
	return o;
}

static json_t *ops_array(const struct etcd_op *ops, size_t n, bool *ok)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		if (a == NULL || json_array_append_new(a, op_obj(&ops[i], ok)) != 0)
			*ok = false;
	return a;
}

char *etcd_req_txn(const struct etcd_txn *t)
{
	bool ok = true;
	json_t *o = json_object(), *cmps = json_array();

	for (size_t i = 0; i < t->ncmp; i++)
		if (cmps == NULL || json_array_append_new(cmps, cmp_obj(&t->cmp[i], &ok)) != 0)
			ok = false;
	set(o, "compare", cmps, &ok);
	set(o, "success", ops_array(t->success, t->nsuccess, &ok), &ok);
	set(o, "failure", ops_array(t->failure, t->nfailure, &ok), &ok);
	return dump(o, ok);
}

char *etcd_req_watch(const uint8_t *key, size_t klen, const uint8_t *end, size_t elen,
		     int64_t start_revision)
{
	bool ok = true;
	json_t *o = json_object(), *c = json_object();

	set(c, "key", b64(key, klen), &ok);
	if (end != NULL)
		set(c, "range_end", b64(end, elen), &ok);
	if (start_revision > 0)
		set(c, "start_revision", i64str(start_revision), &ok);
	set(c, "progress_notify", json_true(), &ok);
	set(o, "create_request", c, &ok);
	return dump(o, ok);
}

char *etcd_req_auth(const char *user, const char *password, size_t plen)
{
	bool ok = true;
	json_t *o = json_object();

	set(o, "name", json_string(user), &ok);
	set(o, "password", json_stringn(password, plen), &ok);
	return dump(o, ok);
}

size_t etcd_prefix_end(const uint8_t *prefix, size_t plen, uint8_t *end)
{
	size_t n = plen;

	while (n > 0 && prefix[n - 1] == 0xff)
		n--;
	if (n == 0)
		return 0;
	memcpy(end, prefix, n);
	end[n - 1]++;
	return n;
}

const char *etcd_strerror(int err)
{
	switch (err) {
	case ETCD_OK: return "ok";
	case ETCD_E_UNAVAILABLE: return "etcd unavailable";
	case ETCD_E_PROTOCOL: return "etcd sent a malformed answer";
	case ETCD_E_CLUSTER: return "etcd answered with another cluster id";
	case ETCD_E_ROLLBACK: return "etcd answered with an older revision than already applied";
	case ETCD_E_AUTH: return "etcd refused authentication or permission";
	case ETCD_E_COMPACTED: return "required revision has been compacted";
	case ETCD_E_SERVER: return "etcd answered an error";
	case ETCD_E_NOMEM: return "out of memory";
	case ETCD_E_CANCELED: return "etcd client closing";
	case ETCD_E_CONFLICT: return "too many concurrent changes to one name";
	case ETCD_E_NOTFOUND: return "no such name in etcd";
	case ETCD_E_INTEGRITY: return "an etcd record failed authentication";
	case ETCD_E_KEY: return "the cluster key does not open the fleet data key";
	case ETCD_E_INVALID: return "invalid argument";
	}
	return "unknown etcd error";
}
