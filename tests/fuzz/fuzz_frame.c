/*
 * libFuzzer harness for the wire codec: decode the input as a request body
 * and as a response body; whatever decodes must re-encode to exactly the
 * same bytes (so the decoder accepts only the one canonical encoding and
 * the encoder's limits cover everything the decoder lets through), and a
 * decoded item list must walk to exactly nitems strings (or, for a WATCH
 * answer, nitems name/version pairs).  Any difference
 * aborts; sanitizers catch any out-of-bounds read.  The first four input
 * bytes are also tried as a frame header.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "secretd/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The encoding must be the header for `size`, then the input itself. */
static void check_same(const uint8_t *data, size_t size, const uint8_t *enc, long n,
		       size_t predicted)
{
	if (n < 0 || (size_t)n != WIRE_HEADER_SIZE + size || predicted != (size_t)n)
		abort();
	if (enc[0] != (uint8_t)(size >> 24) || enc[1] != (uint8_t)(size >> 16) ||
	    enc[2] != (uint8_t)(size >> 8) || enc[3] != (uint8_t)size)
		abort();
	if (memcmp(enc + WIRE_HEADER_SIZE, data, size) != 0)
		abort();
}

/* Walk a raw list of nitems strings into an array the encoder can take. */
static struct wire_str *walk_raw(struct wire_str raw, size_t nitems)
{
	struct wire_str cur = raw, item;
	struct wire_str *items = calloc(nitems ? nitems : 1, sizeof(*items));
	size_t n = 0;

	if (items == NULL)
		abort();
	while (wire_items_next(&cur, &item)) {
		if (n == nitems)
			abort();
		items[n++] = item;
	}
	if (n != nitems || cur.len != 0)
		abort();
	return items;
}

static void round_trip_request(const uint8_t *data, size_t size)
{
	struct wire_request req;
	struct wire_str *items;
	uint8_t *enc;
	size_t cap;

	if (wire_decode_request(data, size, &req) != 0)
		return;
	if (req.items != NULL || (req.type != WIRE_WATCH && req.nitems != 0))
		abort();
	items = walk_raw(req.items_raw, req.nitems);
	req.items = items;
	cap = wire_request_size(&req);
	enc = malloc(cap ? cap : 1);
	if (enc == NULL)
		abort();
	check_same(data, size, enc, wire_encode_request(&req, enc, cap), cap);
	/* One byte less must be refused, never overrun. */
	if (wire_encode_request(&req, enc, cap - 1) != WIRE_E_SPACE)
		abort();
	free(enc);
	free(items);
}

/* Walk a WATCH answer's pairs into the two arrays the encoder takes. */
static struct wire_str *walk_pairs(const struct wire_response *resp, uint32_t **versions)
{
	struct wire_str cur = resp->items_raw, name;
	struct wire_str *items = calloc(resp->nitems ? resp->nitems : 1, sizeof(*items));
	uint32_t *v = calloc(resp->nitems ? resp->nitems : 1, sizeof(*v));
	uint32_t version;
	size_t n = 0;

	if (items == NULL || v == NULL)
		abort();
	while (wire_pairs_next(&cur, &name, &version)) {
		if (n == resp->nitems)
			abort();
		items[n] = name;
		v[n++] = version;
	}
	if (n != resp->nitems || cur.len != 0)
		abort();
	*versions = v;
	return items;
}

static void round_trip_response(const uint8_t *data, size_t size)
{
	struct wire_response resp;
	struct wire_str *items;
	uint32_t *versions = NULL;
	uint8_t *enc;
	size_t cap;

	if (wire_decode_response(data, size, &resp) != 0)
		return;
	if (resp.items != NULL || resp.versions != NULL)
		abort();
	if (resp.status == WIRE_OK && resp.type == WIRE_WATCH) {
		items = walk_pairs(&resp, &versions);
		resp.versions = versions;
	} else {
		items = walk_raw(resp.items_raw, resp.nitems);
	}
	resp.items = items;
	cap = wire_response_size(&resp);
	enc = malloc(cap ? cap : 1);
	if (enc == NULL)
		abort();
	check_same(data, size, enc, wire_encode_response(&resp, enc, cap), cap);
	if (wire_encode_response(&resp, enc, cap - 1) != WIRE_E_SPACE)
		abort();
	free(enc);
	free(items);
	free(versions);
}

static void frame_header(const uint8_t *data, size_t size)
{
	uint32_t len = 0;
	int rc;

	if (size < WIRE_HEADER_SIZE)
		return;
	rc = wire_frame_length(data, WIRE_MAX_REQUEST, &len);
	if (rc == 0 && (len == 0 || len > WIRE_MAX_REQUEST))
		abort();
	if (rc != 0 && rc != WIRE_E_EMPTY && rc != WIRE_E_TOOBIG)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	round_trip_request(data, size);
	round_trip_response(data, size);
	frame_header(data, size);
	return 0;
}
