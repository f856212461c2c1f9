/* The contract's floor of a get (floor.h). */
#include "floor.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "secretd/wire.h"

#define VALUE_LEN 32u
#define CHAIN_LEN 32u
#define RECORDS_CAP (256u * 1024u) /* records queued for one write(2) */
#define RECORD_MAX 512u
#define NAME "bench/key"

static int log_fd = -1;
static uint8_t key[crypto_aead_chacha20poly1305_ietf_KEYBYTES];
static uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];
static uint8_t sealed[VALUE_LEN + crypto_aead_chacha20poly1305_ietf_ABYTES];
static crypto_generichash_state keyed; /* the MAC's state after its key */
static uint8_t chain[CHAIN_LEN];
static uint64_t seq;
static char records[RECORDS_CAP];
static size_t records_len;
static time_t ts_sec = -1;
static char ts_head[32]; /* "2026-12-03T09:49:47." for ts_sec */
static size_t ts_head_len;

int floor_open(const char *path)
{
	static const uint8_t value[VALUE_LEN] = "0123456789abcdef0123456789abcdef";
	uint8_t mac_key[crypto_generichash_KEYBYTES];
	unsigned long long n;

	if (sodium_init() < 0)
		return -1;
	log_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (log_fd < 0) {
		fprintf(stderr, "secretd-null: %s: %s\n", path, strerror(errno));
		return -1;
	}
	crypto_aead_chacha20poly1305_ietf_keygen(key);
	randombytes_buf(nonce, sizeof(nonce));
	randombytes_buf(mac_key, sizeof(mac_key));
	if (crypto_aead_chacha20poly1305_ietf_encrypt(sealed, &n, value, sizeof(value),
						      (const uint8_t *)NAME, strlen(NAME),
						      NULL, nonce, key) != 0 ||
	    crypto_generichash_init(&keyed, mac_key, sizeof(mac_key), CHAIN_LEN) != 0)
		return -1;
	return 0;
}

static char *put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

#define PUT(p, lit) put((p), (lit), sizeof(lit) - 1)

static char *put_u64(char *p, uint64_t v)
{
	char digits[20];
	size_t n = 0;

	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	while (n > 0)
		*p++ = digits[--n];
	return p;
}

static char *put_ts(char *p)
{
	struct timespec now;
	struct tm tm;
	long us;

	if (clock_gettime(CLOCK_REALTIME, &now) != 0)
		now.tv_sec = now.tv_nsec = 0;
	if (now.tv_sec != ts_sec && gmtime_r(&now.tv_sec, &tm) != NULL) {
		ts_sec = now.tv_sec;
		ts_head_len = strftime(ts_head, sizeof(ts_head), "%Y-%m-%dT%H:%M:%S.", &tm);
	}
	p = put(p, ts_head, ts_head_len);
	us = now.tv_nsec / 1000;
	for (long d = 100000; d > 0; d /= 10)
		*p++ = (char)('0' + us / d % 10);
	return p;
}

/* The record of one get, the shape of secretd's for the benchmark's caller. */
static void queue_record(void)
{
	char *start = records + records_len, *p = start;
	crypto_generichash_state st = keyed;
	uint8_t mac[CHAIN_LEN];

	p = PUT(p, "{\"ts\":\"");
	p = put_ts(p);
	p = PUT(p, "Z\",\"seq\":");
	p = put_u64(p, ++seq);
	p = PUT(p, ",\"op\":\"get\",\"name\":\"" NAME "\",\"version\":1,\"decision\":\"allow\","
		   "\"rule\":1,\"uid\":0,\"gid\":0,\"pid\":5051,\"cgroup\":\"/\",\"container\":\"\","
		   "\"pod\":\"\",\"epoch\":0");
	(void)crypto_generichash_update(&st, chain, sizeof(chain));
	(void)crypto_generichash_update(&st, (const uint8_t *)start, (size_t)(p - start));
	(void)crypto_generichash_final(&st, mac, sizeof(mac));
	memcpy(chain, mac, sizeof(chain));
	p = PUT(p, ",\"chain\":\"");
	sodium_bin2hex(p, 2 * CHAIN_LEN + 1, mac, sizeof(mac));
	p += 2 * CHAIN_LEN;
	p = PUT(p, "\"}\n");
	records_len = (size_t)(p - records);
}

size_t floor_answer(uint8_t *out, size_t cap)
{
	uint8_t value[VALUE_LEN];
	struct wire_response resp = {
		.type = WIRE_GET, .status = WIRE_OK, .version = 1,
		.value = { value, sizeof(value) },
	};
	long n;

	if (records_len + RECORD_MAX > RECORDS_CAP)
		return 0;
	if (crypto_aead_chacha20poly1305_ietf_decrypt(value, NULL, NULL, sealed, sizeof(sealed),
						      (const uint8_t *)NAME, strlen(NAME),
						      nonce, key) != 0)
		return 0;
	n = wire_encode_response(&resp, out, cap);
	sodium_memzero(value, sizeof(value));
	if (n <= 0)
		return 0;
	queue_record();
	return (size_t)n;
}

int floor_write(void)
{
	size_t off = 0, len = records_len;

	/* written or not, these records are done with: their answers go, or close */
	records_len = 0;
	while (off < len) {
		ssize_t n = write(log_fd, records + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}
