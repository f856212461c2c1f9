/*
 * libFuzzer harness for the fleet's etcd records, the parts read from
 * etcd: keys (classified under a fixed prefix), heads, the wrapped data key
 * and sealed versions.  A key that classifies as a name must name a valid
 * secret; a sealed record that opens must open to its declared length; a
 * random record never opens under the fixed key (the tag holds).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "fleet_record.h"
#include <secretd/names.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t fixed_key[FLEET_KEY_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf = malloc(size ? size : 1), dk[FLEET_KEY_LEN], *out;
	struct fleet_key k;
	uint32_t v, term;
	bool removed;
	size_t outlen;

	if (buf == NULL || sodium_init() < 0)
		abort();
	memcpy(buf, data, size);
	fleet_key_parse("/secretd/", buf, size, &k);
	if ((k.kind == FLEET_K_HEAD || k.kind == FLEET_K_VERSION) &&
	    !name_valid(k.name, k.name_len, NULL))
		abort();
	if (k.kind == FLEET_K_VERSION && k.version == 0)
		abort();
	if (fleet_head_decode(buf, size, &v, &removed) == ETCD_OK && (size != FLEET_HEAD_LEN || v == 0))
		abort();
	if (fleet_datakey_open(fixed_key, "/secretd/", 1, buf, size, dk) == ETCD_OK)
		abort(); /* a forged tag */
	if (fleet_sealed_info(buf, size, &term, &v) == ETCD_OK) {
		if (size < FLEET_SEALED_OVERHEAD)
			abort();
		out = malloc(size - FLEET_SEALED_OVERHEAD + 1);
		if (out == NULL)
			abort();
		if (fleet_open(fixed_key, term, "/secretd/", "a/b", 3, v, buf, size, out,
			       size - FLEET_SEALED_OVERHEAD, &outlen) == ETCD_OK)
			abort();
		free(out);
	}
	free(buf);
	return 0;
}
