/* WATCH subscriptions: the state at once, then pushed events. */
#include "watch.h"

#include <stdlib.h>
#include <string.h>

#include <secretd/exitcodes.h>

#include "secretctl.h"

int watch_subscribe(struct conn *c, char *const *patterns, size_t n, const char *context,
		    watch_fn fn, void *arg)
{
	struct wire_request req = { .type = WIRE_WATCH, .nitems = n };
	struct wire_str *items = calloc(n > 0 ? n : 1, sizeof(*items));
	struct wire_str cursor, name;
	uint32_t version;
	int rc = EXIT_ERROR;

	if (items == NULL) {
		ctl_err("%s: out of memory", context);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		items[i].ptr = (const uint8_t *)patterns[i];
		items[i].len = strlen(patterns[i]);
	}
	req.items = items;
	rc = conn_open(c);
	if (rc == EXIT_OK)
		rc = conn_request(c, &req, context);
	if (rc != EXIT_OK)
		goto out;
	cursor = c->resp.items_raw;
	while (rc == EXIT_OK && wire_pairs_next(&cursor, &name, &version))
		rc = fn(arg, &name, version);
out:
	free(items);
	return rc;
}

int watch_event(struct conn *c, const char *context, watch_fn fn, void *arg)
{
	const struct wire_response *r = &c->resp;
	int rc;

	rc = conn_recv(c, context);
	if (rc != EXIT_OK)
		return rc;
	if (r->type != WIRE_EVENT) {
		ctl_err("%s: the broker sent an answer nobody asked for", context);
		return EXIT_ERROR;
	}
	if (r->status != WIRE_OK) {
		ctl_err("%s: the broker ended the subscription: %.*s", context,
			(int)r->value.len, (const char *)r->value.ptr);
		rc = exit_for_status(r->status);
		return rc != EXIT_OK ? rc : EXIT_ERROR;
	}
	return fn(arg, &r->name, r->version);
}
