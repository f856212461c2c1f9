/* The fleet's etcd records: keys, heads, the wrapped data key, sealed versions. */
#include "fleet_record.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include <secretd/names.h>

#define NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_LEN crypto_aead_xchacha20poly1305_ietf_ABYTES
#define DK_MAGIC "SDK1"
#define HEAD_MAGIC "SDH1"
#define SEALED_MAGIC "SDV1"
#define DK_AD_TAG "secretd-fleet-datakey"
#define SECRET_AD_TAG "secretd-fleet-secret"
#define KDF_CONTEXT "sdfleetk"
#define KDF_SUBKEY_ID 1
#define AD_MAX (sizeof(SECRET_AD_TAG) - 1 + 2 + FLEET_PREFIX_MAX + 4 + 4 + 2 + NAME_MAX_LEN)
#define VERSION_DIGITS 10

static void put_be32(uint8_t *p, uint32_t x)
{
	p[0] = (uint8_t)(x >> 24);
	p[1] = (uint8_t)(x >> 16);
	p[2] = (uint8_t)(x >> 8);
	p[3] = (uint8_t)x;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be16(uint8_t *p, uint16_t x)
{
	p[0] = (uint8_t)(x >> 8);
	p[1] = (uint8_t)x;
}

bool fleet_prefix_valid(const char *prefix, size_t len)
{
	if (prefix == NULL || len == 0 || len > FLEET_PREFIX_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (prefix[i] <= 0x20 || prefix[i] >= 0x7f)
			return false;
	return true;
}

/* prefix + tag + name [+ tail] into buf. */
static size_t compose(uint8_t *buf, size_t cap, const char *prefix, const char *tag,
		      const char *name, size_t nlen, const char *tail)
{
	size_t plen = strlen(prefix), tlen = strlen(tag), xlen = tail ? strlen(tail) : 0;
	size_t need = plen + tlen + nlen + xlen;

	if (!fleet_prefix_valid(prefix, plen) || need > cap)
		return 0;
	memcpy(buf, prefix, plen);
	memcpy(buf + plen, tag, tlen);
	if (nlen > 0)
		memcpy(buf + plen + tlen, name, nlen);
	if (xlen > 0)
		memcpy(buf + plen + tlen + nlen, tail, xlen);
	return need;
}

size_t fleet_key_datakey(uint8_t *buf, size_t cap, const char *prefix, uint32_t term)
{
	char t[16];

	snprintf(t, sizeof(t), "%u", term);
	return compose(buf, cap, prefix, "keys/", t, strlen(t), NULL);
}

size_t fleet_key_head(uint8_t *buf, size_t cap, const char *prefix, const char *name,
		      size_t nlen)
{
	return name_valid(name, nlen, NULL) ? compose(buf, cap, prefix, "n/", name, nlen, NULL) : 0;
}

size_t fleet_key_version(uint8_t *buf, size_t cap, const char *prefix, const char *name,
			 size_t nlen, uint32_t version)
{
	char t[16];

	if (!name_valid(name, nlen, NULL) || version == 0)
		return 0;
	snprintf(t, sizeof(t), "@%010u", version);
	return compose(buf, cap, prefix, "v/", name, nlen, t);
}

size_t fleet_key_versions(uint8_t *buf, size_t cap, const char *prefix, const char *name,
			  size_t nlen)
{
	return name_valid(name, nlen, NULL) ? compose(buf, cap, prefix, "v/", name, nlen, "@") : 0;
}

/* Exactly digits decimal digits, value 1..UINT32_MAX. */
static bool parse_u32(const uint8_t *p, size_t n, size_t digits, uint32_t *out)
{
	uint64_t v = 0;

	if (n != digits && digits != 0)
		return false;
	if (n == 0 || n > VERSION_DIGITS)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	if (v == 0 || v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

void fleet_key_parse(const char *prefix, const uint8_t *key, size_t klen, struct fleet_key *out)
{
	size_t plen = strlen(prefix), rest;
	const uint8_t *p;

	memset(out, 0, sizeof(*out));
	if (klen <= plen + 2 || memcmp(key, prefix, plen) != 0)
		return;
	p = key + plen;
	rest = klen - plen;
	if (rest > 5 && memcmp(p, "keys/", 5) == 0) {
		/* A term has no leading zero: "keys/01" is not "keys/1". */
		if (p[5] != '0' && parse_u32(p + 5, rest - 5, 0, &out->version))
			out->kind = FLEET_K_DATAKEY;
		return;
	}
	if (memcmp(p, "n/", 2) == 0) {
		if (name_valid((const char *)p + 2, rest - 2, NULL)) {
			out->kind = FLEET_K_HEAD;
			out->name = (const char *)p + 2;
			out->name_len = rest - 2;
		}
		return;
	}
	if (memcmp(p, "v/", 2) == 0 && rest > 2 + 1 + VERSION_DIGITS &&
	    p[rest - VERSION_DIGITS - 1] == '@') {
		size_t nlen = rest - 2 - 1 - VERSION_DIGITS;

		if (name_valid((const char *)p + 2, nlen, NULL) &&
		    parse_u32(p + rest - VERSION_DIGITS, VERSION_DIGITS, VERSION_DIGITS,
			      &out->version)) {
			out->kind = FLEET_K_VERSION;
			out->name = (const char *)p + 2;
			out->name_len = nlen;
		}
	}
}

void fleet_head_encode(uint8_t out[FLEET_HEAD_LEN], uint32_t version, bool removed)
{
	memcpy(out, HEAD_MAGIC, 4);
	put_be32(out + 4, version);
	out[8] = removed ? FLEET_HEAD_REMOVED : 0;
}

int fleet_head_decode(const uint8_t *rec, size_t len, uint32_t *version, bool *removed)
{
	if (len != FLEET_HEAD_LEN || memcmp(rec, HEAD_MAGIC, 4) != 0 ||
	    (rec[8] & ~FLEET_HEAD_REMOVED) != 0 || get_be32(rec + 4) == 0)
		return ETCD_E_INTEGRITY;
	*version = get_be32(rec + 4);
	*removed = rec[8] == FLEET_HEAD_REMOVED;
	return ETCD_OK;
}

static size_t prefix_ad(uint8_t *ad, const char *tag, const char *prefix)
{
	size_t tlen = strlen(tag), plen = strlen(prefix);

	memcpy(ad, tag, tlen);
	put_be16(ad + tlen, (uint16_t)plen);
	memcpy(ad + tlen + 2, prefix, plen);
	return tlen + 2 + plen;
}

static size_t datakey_ad(uint8_t *ad, const char *prefix, uint32_t term)
{
	size_t off = prefix_ad(ad, DK_AD_TAG, prefix);

	put_be32(ad + off, term);
	return off + 4;
}

static size_t secret_ad(uint8_t *ad, const char *prefix, uint32_t term, uint32_t version,
			const char *name, size_t nlen)
{
	size_t off = prefix_ad(ad, SECRET_AD_TAG, prefix);

	put_be32(ad + off, term);
	put_be32(ad + off + 4, version);
	put_be16(ad + off + 8, (uint16_t)nlen);
	memcpy(ad + off + 10, name, nlen);
	return off + 10 + nlen;
}

static int derive_kek(const uint8_t cluster_key[FLEET_KEY_LEN], uint8_t **kek)
{
	*kek = sodium_malloc(FLEET_KEY_LEN);
	if (*kek == NULL)
		return ETCD_E_NOMEM;
	if (crypto_kdf_derive_from_key(*kek, FLEET_KEY_LEN, KDF_SUBKEY_ID, KDF_CONTEXT,
				       cluster_key) != 0) {
		sodium_free(*kek);
		*kek = NULL;
		return ETCD_E_KEY;
	}
	return ETCD_OK;
}

int fleet_datakey_new(const uint8_t cluster_key[FLEET_KEY_LEN], const char *prefix,
		      uint32_t term, uint8_t dk[FLEET_KEY_LEN],
		      uint8_t rec[FLEET_DATAKEY_REC_LEN])
{
	uint8_t ad[AD_MAX], *kek = NULL;
	size_t adlen;
	int rc;

	if (!fleet_prefix_valid(prefix, strlen(prefix)) || term == 0)
		return ETCD_E_INVALID;
	if ((rc = derive_kek(cluster_key, &kek)) != ETCD_OK)
		return rc;
	randombytes_buf(dk, FLEET_KEY_LEN);
	memcpy(rec, DK_MAGIC, 4);
	randombytes_buf(rec + 4, NONCE_LEN);
	adlen = datakey_ad(ad, prefix, term);
	crypto_aead_xchacha20poly1305_ietf_encrypt(rec + 4 + NONCE_LEN, NULL, dk, FLEET_KEY_LEN,
						   ad, adlen, NULL, rec + 4, kek);
	sodium_free(kek);
	return ETCD_OK;
}

int fleet_datakey_open(const uint8_t cluster_key[FLEET_KEY_LEN], const char *prefix,
		       uint32_t term, const uint8_t *rec, size_t len, uint8_t dk[FLEET_KEY_LEN])
{
	uint8_t ad[AD_MAX], *kek = NULL;
	size_t adlen;
	int rc;

	if (!fleet_prefix_valid(prefix, strlen(prefix)) || term == 0)
		return ETCD_E_INVALID;
	if (len != FLEET_DATAKEY_REC_LEN || memcmp(rec, DK_MAGIC, 4) != 0)
		return ETCD_E_INTEGRITY;
	if ((rc = derive_kek(cluster_key, &kek)) != ETCD_OK)
		return rc;
	adlen = datakey_ad(ad, prefix, term);
	rc = crypto_aead_xchacha20poly1305_ietf_decrypt(dk, NULL, NULL, rec + 4 + NONCE_LEN,
							FLEET_KEY_LEN + TAG_LEN, ad, adlen,
							rec + 4, kek) == 0 ? ETCD_OK : ETCD_E_KEY;
	if (rc != ETCD_OK)
		sodium_memzero(dk, FLEET_KEY_LEN);
	sodium_free(kek);
	return rc;
}

int fleet_seal(const uint8_t dk[FLEET_KEY_LEN], uint32_t term, const char *prefix,
	       const char *name, size_t nlen, uint32_t version, const uint8_t *value,
	       size_t vlen, uint8_t *out, size_t cap, size_t *outlen)
{
	uint8_t ad[AD_MAX];
	size_t adlen, hdr = 4 + 4 + 4 + NONCE_LEN;

	if (!fleet_prefix_valid(prefix, strlen(prefix)) || !name_valid(name, nlen, NULL) ||
	    version == 0 || term == 0 || vlen > SIZE_MAX - FLEET_SEALED_OVERHEAD ||
	    cap < vlen + FLEET_SEALED_OVERHEAD)
		return ETCD_E_INVALID;
	memcpy(out, SEALED_MAGIC, 4);
	put_be32(out + 4, term);
	put_be32(out + 8, version);
	randombytes_buf(out + 12, NONCE_LEN);
	adlen = secret_ad(ad, prefix, term, version, name, nlen);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + hdr, NULL,
						   vlen > 0 ? value : (const uint8_t *)"", vlen,
						   ad, adlen, NULL, out + 12, dk);
	*outlen = vlen + FLEET_SEALED_OVERHEAD;
	return ETCD_OK;
}

int fleet_sealed_info(const uint8_t *rec, size_t len, uint32_t *term, uint32_t *version)
{
	if (len < FLEET_SEALED_OVERHEAD || memcmp(rec, SEALED_MAGIC, 4) != 0 ||
	    get_be32(rec + 4) == 0 || get_be32(rec + 8) == 0)
		return ETCD_E_INTEGRITY;
	*term = get_be32(rec + 4);
	*version = get_be32(rec + 8);
	return ETCD_OK;
}

int fleet_open(const uint8_t dk[FLEET_KEY_LEN], uint32_t term, const char *prefix,
	       const char *name, size_t nlen, uint32_t version, const uint8_t *rec,
	       size_t len, uint8_t *out, size_t cap, size_t *outlen)
{
	uint8_t ad[AD_MAX];
	uint32_t rterm, rversion;
	size_t adlen, hdr = 4 + 4 + 4 + NONCE_LEN;
	unsigned long long got = 0;

	if (!fleet_prefix_valid(prefix, strlen(prefix)) || !name_valid(name, nlen, NULL))
		return ETCD_E_INVALID;
	if (fleet_sealed_info(rec, len, &rterm, &rversion) != ETCD_OK || rterm != term ||
	    rversion != version)
		return ETCD_E_INTEGRITY;
	if (cap < len - FLEET_SEALED_OVERHEAD)
		return ETCD_E_INVALID;
	adlen = secret_ad(ad, prefix, term, version, name, nlen);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, &got, NULL, rec + hdr, len - hdr,
						       ad, adlen, rec + 12, dk) != 0)
		return ETCD_E_INTEGRITY;
	*outlen = (size_t)got;
	return ETCD_OK;
}
