/*
 * libFuzzer harness for the etcd gateway parsers: the input (exact length,
 * in an exact-size heap copy, never terminated) goes to every answer parser
 * and to the error and token readers; whatever parses must keep its
 * promises (lengths within limits, revisions not negative, a token of
 * visible ASCII).  The same bytes are then fed to the watch stream splitter
 * in pieces cut at the first input byte, each message parsed as a watch
 * message.  Never a crash, a leak or a sanitizer report.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "etcd_json.h"
#include "etcd_stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_kvs(const struct etcd_kv *kvs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (kvs[i].key_len == 0 || kvs[i].key_len > ETCD_KEY_MAX ||
		    kvs[i].value_len > ETCD_VALUE_MAX || kvs[i].mod_revision < 0 ||
		    kvs[i].create_revision < 0 || kvs[i].version < 0)
			abort();
		/* Touch every byte, so ASan sees a short allocation. */
		volatile uint8_t x = 0;
		for (size_t k = 0; k < kvs[i].key_len; k++)
			x ^= kvs[i].key[k];
		for (size_t k = 0; k < kvs[i].value_len; k++)
			x ^= kvs[i].value[k];
		(void)x;
	}
}

static int on_message(const char *msg, size_t len, void *arg)
{
	struct etcd_watch_msg m;

	(void)arg;
	if (etcd_json_watch(msg, len, &m) == ETCD_OK) {
		if (m.header.revision < 0 || m.compact_revision < 0)
			abort();
		for (size_t i = 0; i < m.n; i++)
			check_kvs(&m.events[i].kv, 1);
		etcd_watch_msg_free(&m);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1);
	struct etcd_range_resp r;
	struct etcd_txn_resp t;
	struct etcd_status_resp st;
	struct etcd_error e;
	struct etcd_stream s;
	char token[ETCD_TOKEN_MAX + 1];
	size_t cut;

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	if (etcd_json_range(buf, size, &r) == ETCD_OK) {
		if (r.header.revision < 0)
			abort();
		check_kvs(r.kvs, r.n);
		etcd_range_free(&r);
	}
	if (etcd_json_txn(buf, size, &t) == ETCD_OK) {
		check_kvs(t.kvs, t.n);
		if (t.deleted < 0)
			abort();
		etcd_txn_free(&t);
	}
	(void)etcd_json_status(buf, size, &st);
	if (etcd_json_error(buf, size, &e)) {
		for (size_t i = 0; e.message[i] != '\0'; i++)
			if (e.message[i] < 0x20 || e.message[i] >= 0x7f)
				abort();
	}
	if (etcd_json_token(buf, size, token, sizeof(token)) == ETCD_OK) {
		if (token[0] == '\0' || strlen(token) > ETCD_TOKEN_MAX)
			abort();
		for (size_t i = 0; token[i] != '\0'; i++)
			if (token[i] <= 0x20 || token[i] >= 0x7f)
				abort();
	}
	etcd_stream_init(&s, 4096);
	cut = size > 0 ? data[0] % (size + 1) : 0;
	if (etcd_stream_feed(&s, buf, cut, on_message, NULL) == 0)
		(void)etcd_stream_feed(&s, buf + cut, size - cut, on_message, NULL);
	etcd_stream_free(&s);
	free(buf);
	return 0;
}
