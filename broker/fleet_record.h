/*
 * The fleet's records in etcd, and their sealing.  Pure functions.
 *
 * Keys under the prefix P (etcd-prefix, e.g. "/secretd/"):
 *   P keys/1           the fleet data key, wrapped under the cluster key
 *   P n/<name>         the head of a name: its latest version, live or removed
 *   P v/<name>@<ver>   one kept version, sealed; <ver> is 10 decimal digits
 * Names never hold '@' (names.h), so "v/<name>@" is a prefix of that name's
 * versions only, and zero-padding makes etcd's byte order the version order.
 *
 * Values (binary, big-endian):
 *   data key:  "SDK1" | nonce[24] | XChaCha20-Poly1305(dk[32]) + tag[16]      (76 bytes)
 *              under crypto_kdf(cluster key, 1, "sdfleetk"),
 *              AD = "secretd-fleet-datakey" | be16 plen | P | be32 term
 *   head:      "SDH1" | be32 version | u8 flags (1 = removed)                  (9 bytes)
 *   version:   "SDV1" | be32 term | be32 version | nonce[24] | ct + tag[16]
 *              under the data key of that term,
 *              AD = "secretd-fleet-secret" | be16 plen | P | be32 term | be32 version
 *                   | be16 nlen | name
 * the same construction as the local vault's rows (vault_write.c): a sealed value
 * moved to another name, version or fleet prefix fails to open.  etcd holds
 * names, sizes and times, never a value.
 *
 * Errors: ETCD_E_INTEGRITY for a record that is malformed or fails to open,
 * ETCD_E_KEY when the cluster key does not open the data key.
 */
#ifndef SECRETD_FLEET_RECORD_H
#define SECRETD_FLEET_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "etcd_err.h"

#define FLEET_KEY_LEN 32
#define FLEET_PREFIX_MAX 128
#define FLEET_DATAKEY_REC_LEN (4 + 24 + FLEET_KEY_LEN + 16)
#define FLEET_HEAD_LEN 9
#define FLEET_SEALED_OVERHEAD (4 + 4 + 4 + 24 + 16)
#define FLEET_HEAD_REMOVED 1u
#define FLEET_ETCD_KEY_MAX (FLEET_PREFIX_MAX + 2 + 255 + 1 + 10)

/* What a key under the prefix is. */
enum fleet_key_kind { FLEET_K_OTHER, FLEET_K_DATAKEY, FLEET_K_HEAD, FLEET_K_VERSION };

struct fleet_key {
	enum fleet_key_kind kind;
	const char *name;  /* points into the key; not terminated */
	size_t name_len;
	uint32_t version;  /* VERSION: from the key; DATAKEY: the term */
};

/* A prefix is 1..FLEET_PREFIX_MAX visible ASCII bytes. */
bool fleet_prefix_valid(const char *prefix, size_t len);

/* Keys, into buf (cap >= FLEET_ETCD_KEY_MAX); return their length, 0 if it does not fit. */
size_t fleet_key_datakey(uint8_t *buf, size_t cap, const char *prefix, uint32_t term);
size_t fleet_key_head(uint8_t *buf, size_t cap, const char *prefix, const char *name,
		      size_t nlen);
size_t fleet_key_version(uint8_t *buf, size_t cap, const char *prefix, const char *name,
			 size_t nlen, uint32_t version);
/* "P v/<name>@", the start of a name's versions; its range end replaces '@' by 'A'. */
size_t fleet_key_versions(uint8_t *buf, size_t cap, const char *prefix, const char *name,
			  size_t nlen);

/*
 * Classify an etcd key (any bytes, with its length).  A HEAD or VERSION key
 * whose name is not a valid secret name, or whose version is not exactly 10
 * digits in 1..UINT32_MAX, is FLEET_K_OTHER: never trusted as a name.
 */
void fleet_key_parse(const char *prefix, const uint8_t *key, size_t klen, struct fleet_key *out);

/* Head records. */
void fleet_head_encode(uint8_t out[FLEET_HEAD_LEN], uint32_t version, bool removed);
int fleet_head_decode(const uint8_t *rec, size_t len, uint32_t *version, bool *removed);

/*
 * A new random data key (into dk, sodium_malloc'd by the caller) and its
 * record wrapped under cluster_key for prefix and term.
 */
int fleet_datakey_new(const uint8_t cluster_key[FLEET_KEY_LEN], const char *prefix,
		      uint32_t term, uint8_t dk[FLEET_KEY_LEN],
		      uint8_t rec[FLEET_DATAKEY_REC_LEN]);
int fleet_datakey_open(const uint8_t cluster_key[FLEET_KEY_LEN], const char *prefix,
		       uint32_t term, const uint8_t *rec, size_t len, uint8_t dk[FLEET_KEY_LEN]);

/* Seal value for (prefix, name, version) into out (cap >= vlen + FLEET_SEALED_OVERHEAD). */
int fleet_seal(const uint8_t dk[FLEET_KEY_LEN], uint32_t term, const char *prefix,
	       const char *name, size_t nlen, uint32_t version, const uint8_t *value,
	       size_t vlen, uint8_t *out, size_t cap, size_t *outlen);

/* The term and version a sealed record claims, without opening it. */
int fleet_sealed_info(const uint8_t *rec, size_t len, uint32_t *term, uint32_t *version);

/*
 * Open a sealed record for (prefix, name, version) into out (cap >= len -
 * FLEET_SEALED_OVERHEAD; the caller's sodium_malloc memory).  Fails unless
 * the record claims that version and term and authenticates.
 */
int fleet_open(const uint8_t dk[FLEET_KEY_LEN], uint32_t term, const char *prefix,
	       const char *name, size_t nlen, uint32_t version, const uint8_t *rec,
	       size_t len, uint8_t *out, size_t cap, size_t *outlen);

#endif
