/* One request head, checked byte by byte against explicit lengths. */
#include "http_parse.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* The end of the head ("\r\n\r\n", or "\n\n" from lax clients), or 0. */
static size_t http_head_end(const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (i + 1 < len && buf[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* The line starting at BUF[*pos], without its "\r\n" or "\n"; advances *pos. */
static bool http_line(const char *buf, size_t end, size_t *pos, const char **line, size_t *n)
{
	const char *start = buf + *pos;
	const char *nl = memchr(start, '\n', end - *pos);
	size_t l;

	if (nl == NULL)
		return false;
	l = (size_t)(nl - start);
	*pos += l + 1;
	if (l > 0 && start[l - 1] == '\r')
		l--;
	*line = start;
	*n = l;
	return true;
}

static bool http_visible(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return n > 0;
}

static bool http_token_eq(const char *s, size_t n, const char *lit)
{
	return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

/* "GET SP target SP HTTP/1.x": status 0, or the one to answer with. */
static int http_request_line(const char *line, size_t n, struct http_request *req)
{
	const char *sp1 = memchr(line, ' ', n);
	const char *target, *sp2, *version, *q;
	size_t mlen, tlen, vlen, plen;

	if (sp1 == NULL)
		return 400;
	mlen = (size_t)(sp1 - line);
	target = sp1 + 1;
	sp2 = memchr(target, ' ', n - mlen - 1);
	if (sp2 == NULL)
		return 400;
	tlen = (size_t)(sp2 - target);
	version = sp2 + 1;
	vlen = n - mlen - tlen - 2;
	if (!http_visible(line, mlen) || !http_visible(target, tlen) || !http_visible(version, vlen))
		return 400;
	if (target[0] != '/')
		return 400;
	if (vlen < 5 || memcmp(version, "HTTP/", 5) != 0)
		return 400;
	if (!http_token_eq(version, vlen, "HTTP/1.1") && !http_token_eq(version, vlen, "HTTP/1.0"))
		return 505;
	if (!http_token_eq(line, mlen, "GET"))
		return 405;
	/* The query string, if any, is ignored. */
	q = memchr(target, '?', tlen);
	plen = q != NULL ? (size_t)(q - target) : tlen;
	if (http_token_eq(target, plen, "/metrics"))
		req->target = HTTP_TARGET_METRICS;
	else if (http_token_eq(target, plen, "/healthz"))
		req->target = HTTP_TARGET_HEALTHZ;
	else
		req->target = HTTP_TARGET_OTHER;
	return 0;
}

/* "Name: value": a visible name without spaces, any value; a body is refused. */
static int http_header(const char *line, size_t n)
{
	const char *colon = memchr(line, ':', n);
	size_t nlen, vlen;
	const char *v;

	if (colon == NULL)
		return 400;
	nlen = (size_t)(colon - line);
	if (!http_visible(line, nlen))
		return 400;
	v = colon + 1;
	vlen = n - nlen - 1;
	for (size_t i = 0; i < vlen; i++)
		if (((unsigned char)v[i] < 0x20 && v[i] != '\t') || (unsigned char)v[i] == 0x7f)
			return 400;
	while (vlen > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		vlen--;
	}
	if (nlen == 17 && strncasecmp(line, "Transfer-Encoding", 17) == 0)
		return 400;
	if (nlen == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
		while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
			vlen--;
		if (!(vlen == 1 && v[0] == '0'))
			return 400;
	}
	return 0;
}

int http_parse_request(const char *buf, size_t len, struct http_request *req)
{
	size_t end, pos = 0, n;
	const char *line;
	int st;

	if (len == 0)
		return 1;
	/* Only the head is looked at (a NUL in it is refused where it lies), so
	 * a verdict never changes as more bytes arrive. */
	end = http_head_end(buf, len < HTTP_MAX_REQUEST ? len : HTTP_MAX_REQUEST);
	if (end == 0)
		return len >= HTTP_MAX_REQUEST ? 431 : 1;
	if (!http_line(buf, end, &pos, &line, &n))
		return 400;
	st = http_request_line(line, n, req);
	if (st != 0)
		return st;
	while (http_line(buf, end, &pos, &line, &n) && n > 0) {
		st = http_header(line, n);
		if (st != 0)
			return st;
	}
	req->head_len = end;
	return 0;
}
