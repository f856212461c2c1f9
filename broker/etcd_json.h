/*
 * etcd v3 gRPC-JSON gateway messages: building request bodies and parsing
 * answers.  Pure functions, no I/O, usable from any thread.
 *
 * The gateway (etcd 3.4, grpc-gateway v1 with OrigName and no EmitDefaults)
 * writes int64 fields as JSON strings ("revision":"42"), bytes as standard
 * base64, and leaves out every field at its default (false, 0, "", PUT).
 * The parsers accept exactly that: a known field of the wrong type, a
 * number that is not decimal digits in range, bad base64, a duplicate key or
 * anything but one JSON object is ETCD_E_PROTOCOL.  Unknown fields are
 * ignored (newer etcd adds some).  Every input is taken with its length; it
 * need not be terminated.
 *
 * Parsed keys and values are malloc'd copies (etcd holds only ciphertext, so
 * nothing here is secret); free a parsed message with its _free function.
 */
#ifndef SECRETD_ETCD_JSON_H
#define SECRETD_ETCD_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "etcd_err.h"

#define ETCD_JSON_MAX (64u << 20)  /* largest answer we parse */
#define ETCD_KEY_MAX 4096          /* longest key we accept from etcd */
#define ETCD_VALUE_MAX (2u << 20)  /* etcd's own request limit is 1.5 MiB */
#define ETCD_TOKEN_MAX 1024
#define ETCD_MESSAGE_MAX 256       /* error text kept from etcd */

/* The header on every answer. */
struct etcd_header {
	uint64_t cluster_id;
	uint64_t member_id;
	int64_t revision;
	uint64_t raft_term;
};

struct etcd_kv {
	uint8_t *key;
	size_t key_len;
	uint8_t *value;
	size_t value_len;
	int64_t create_revision;
	int64_t mod_revision;
	int64_t version;
};

/* /v3/kv/range; also what a txn's request_range answers collect into. */
struct etcd_range_resp {
	struct etcd_header header;
	struct etcd_kv *kvs;
	size_t n;
	bool more;
	int64_t count;
};

/*
 * /v3/kv/txn.  kvs gathers the kvs of every response_range of the branch
 * that ran, in order; deleted sums the response_delete_range counts.
 */
struct etcd_txn_resp {
	struct etcd_header header;
	bool succeeded;
	struct etcd_kv *kvs;
	size_t n;
	int64_t deleted;
};

enum etcd_event_type { ETCD_EVENT_PUT = 0, ETCD_EVENT_DELETE = 1 };

struct etcd_event {
	enum etcd_event_type type;
	struct etcd_kv kv; /* a DELETE has key and mod_revision only */
};

/* One message of the /v3/watch stream. */
struct etcd_watch_msg {
	struct etcd_header header;
	int64_t watch_id;
	bool created;
	bool canceled;
	int64_t compact_revision;   /* > 0: the start revision was compacted */
	char cancel_reason[ETCD_MESSAGE_MAX];
	struct etcd_event *events;
	size_t n;
};

/* /v3/maintenance/status */
struct etcd_status_resp {
	struct etcd_header header;
	uint64_t leader;
	char version[32];
};

/* An error answer: {"error":..,"code":N,"message":..} or a stream's {"error":{..}}. */
struct etcd_error {
	int code;                     /* gRPC code: 3 invalid, 9 precondition, 14 unavailable, 16 unauthenticated */
	char message[ETCD_MESSAGE_MAX]; /* printable ASCII only, truncated */
};

/* gRPC codes the client acts on. */
#define ETCD_GRPC_UNAVAILABLE 14
#define ETCD_GRPC_UNAUTHENTICATED 16
#define ETCD_GRPC_FAILED_PRECONDITION 9
#define ETCD_GRPC_OUT_OF_RANGE 11

/*
 * If buf is an error answer, fill *e and return true.  False for anything
 * else (an ordinary answer, or not JSON at all).
 */
bool etcd_json_error(const char *buf, size_t len, struct etcd_error *e);

/* Parsers: 0 or ETCD_E_PROTOCOL / ETCD_E_NOMEM; *out is zeroed first. */
int etcd_json_range(const char *buf, size_t len, struct etcd_range_resp *out);
int etcd_json_txn(const char *buf, size_t len, struct etcd_txn_resp *out);
int etcd_json_watch(const char *buf, size_t len, struct etcd_watch_msg *out);
int etcd_json_status(const char *buf, size_t len, struct etcd_status_resp *out);
/* /v3/auth/authenticate: the token, printable and at most ETCD_TOKEN_MAX. */
int etcd_json_token(const char *buf, size_t len, char *token, size_t cap);

void etcd_range_free(struct etcd_range_resp *r);
void etcd_txn_free(struct etcd_txn_resp *r);
void etcd_watch_msg_free(struct etcd_watch_msg *m);
void etcd_kv_free(struct etcd_kv *kv);

/* Request bodies.  Each returns a malloc'd terminated string, or NULL (no memory). */

/* keys_only and count_only off; limit 0 = none; revision 0 = current. */
char *etcd_req_range(const uint8_t *key, size_t klen, const uint8_t *end, size_t elen,
		     int64_t revision, int64_t limit, bool keys_only);

enum etcd_cmp_target { ETCD_CMP_VERSION, ETCD_CMP_CREATE, ETCD_CMP_MOD, ETCD_CMP_VALUE };
enum etcd_cmp_result { ETCD_CMP_EQUAL, ETCD_CMP_GREATER, ETCD_CMP_LESS, ETCD_CMP_NOT_EQUAL };

struct etcd_cmp {
	enum etcd_cmp_target target;
	enum etcd_cmp_result result;
	const uint8_t *key;
	size_t klen;
	int64_t number;        /* VERSION, CREATE, MOD */
	const uint8_t *value;  /* VALUE */
	size_t vlen;
};

enum etcd_op_kind { ETCD_OP_RANGE, ETCD_OP_PUT, ETCD_OP_DELETE };

struct etcd_op {
	enum etcd_op_kind kind;
	const uint8_t *key;
	size_t klen;
	const uint8_t *end;    /* RANGE, DELETE: range end, or NULL for the key alone */
	size_t elen;
	const uint8_t *value;  /* PUT */
	size_t vlen;
};

struct etcd_txn {
	const struct etcd_cmp *cmp;
	size_t ncmp;
	const struct etcd_op *success;
	size_t nsuccess;
	const struct etcd_op *failure;
	size_t nfailure;
};

char *etcd_req_txn(const struct etcd_txn *t);
char *etcd_req_watch(const uint8_t *key, size_t klen, const uint8_t *end, size_t elen,
		     int64_t start_revision);
/* The password is copied into the body; the caller wipes the body after use. */
char *etcd_req_auth(const char *user, const char *password, size_t plen);

/*
 * The range end that covers every key starting with prefix (etcd's
 * "prefix + 1" rule) into end (cap >= plen).  Returns its length, or 0 when
 * prefix is all 0xff (then etcd wants "\0": every key from prefix on).
 */
size_t etcd_prefix_end(const uint8_t *prefix, size_t plen, uint8_t *end);

#endif
