/* The watch stream's message splitter. */
#include "etcd_stream.h"

#include <stdlib.h>
#include <string.h>

#include "etcd_err.h"

void etcd_stream_init(struct etcd_stream *s, size_t max)
{
	memset(s, 0, sizeof(*s));
	s->max = max;
}

void etcd_stream_reset(struct etcd_stream *s)
{
	s->len = 0;
}

void etcd_stream_free(struct etcd_stream *s)
{
	free(s->buf);
	s->buf = NULL;
	s->len = s->cap = 0;
}

static int append(struct etcd_stream *s, const char *data, size_t n)
{
	if (n > s->max - s->len)
		return ETCD_E_PROTOCOL;
	if (s->len + n > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		char *bigger;

		while (cap < s->len + n)
			cap *= 2;
		if (cap > s->max)
			cap = s->max;
		bigger = realloc(s->buf, cap);
		if (bigger == NULL)
			return ETCD_E_NOMEM;
		s->buf = bigger;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, data, n);
	s->len += n;
	return 0;
}

int etcd_stream_feed(struct etcd_stream *s, const char *data, size_t n, etcd_stream_fn fn,
		     void *arg)
{
	const char *nl;
	size_t held, line;
	int rc;

	while (n > 0) {
		nl = memchr(data, '\n', n);
		if (nl == NULL)
			return append(s, data, n);
		line = (size_t)(nl - data);
		if (s->len > 0) {
			rc = append(s, data, line);
			if (rc != 0)
				return rc;
			held = s->len;
			s->len = 0;
			rc = fn(s->buf, held, arg);
		} else if (line > s->max) {
			return ETCD_E_PROTOCOL;
		} else {
			rc = line > 0 ? fn(data, line, arg) : 0;
		}
		if (rc != 0)
			return rc;
		data += line + 1;
		n -= line + 1;
	}
	return 0;
}
