#include "reply.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void reply_drop_content(struct reply *r)
{
	vault_secret_free(r->secret);
	free(r->items);
	free(r->versions);
	free(r->item_text);
	r->secret = NULL;
	r->items = NULL;
	r->versions = NULL;
	r->item_text = NULL;
}

void reply_error(struct reply *r, uint8_t status, const char *fmt, ...)
{
	va_list ap;
	int n;

	reply_drop_content(r);
	va_start(ap, fmt);
	n = vsnprintf(r->message, sizeof(r->message), fmt, ap);
	va_end(ap);
	if (n < 0)
		r->message[0] = '\0';
	memset(&r->resp, 0, sizeof(r->resp));
	r->resp.type = r->type;
	r->resp.status = status;
	r->resp.value.ptr = (const uint8_t *)r->message;
	r->resp.value.len = strlen(r->message);
}
