/*
 * projector_route.c — percent-decoding and routing of the HTTP API.
 *
 * libmicrohttpd decodes the request path before the handler sees it, so an
 * id holding "%2F" would turn into two path segments and "%00" would cut
 * the string short. The server therefore installs an unescape callback that
 * leaves everything as received, and this file splits the raw path on '/'
 * first and decodes each segment (and each query argument) itself.
 */
#include "projector_http.h"

#include <string.h>

bool wb_http_pct_decode(const char *in, size_t n, bool plus_space, char *out,
			size_t *outlen)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '%') {
			uint8_t byte;
			if (i + 2 >= n || !wb_unhex(in + i + 1, 2, &byte, 1) ||
			    byte == 0)
				return false;
			out[o++] = (char)byte;
			i += 2;
		} else if (c == '\0') {
			return false;
		} else {
			out[o++] = plus_space && c == '+' ? ' ' : (char)c;
		}
	}
	out[o] = '\0';
	*outlen = o;
	return true;
}

/* Length of the UTF-8 sequence at s (at most n bytes), 0 if invalid
 * (overlong forms, surrogates and code points past U+10FFFF included). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	/* C1 controls */
	if (cp >= 0x80 && cp <= 0x9f)
		return 0;
	return len;
}

bool wb_http_value_ok(const char *s, size_t n)
{
	if (n == 0 || n > WB_HTTP_VALUE_MAX)
		return false;
	const unsigned char *u = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		if (u[i] < 0x20 || u[i] == 0x7f)
			return false;
		size_t l = utf8_len(u + i, n - i);
		if (l == 0)
			return false;
		i += l;
	}
	return true;
}

static const char *const route_names[WB_ROUTE_COUNT] = {
	[WB_ROUTE_UNKNOWN] = "unknown",
	[WB_ROUTE_ORDER] = "/v1/orders/{id}",
	[WB_ROUTE_ORDERS] = "/v1/orders",
	[WB_ROUTE_TIMELINE] = "/v1/orders/{id}/timeline",
	[WB_ROUTE_ORDER_RETURNS] = "/v1/orders/{id}/returns",
	[WB_ROUTE_ACTION] = "/v1/orders/{id}/actions/{kind}",
	[WB_ROUTE_RETURN] = "/v1/returns/{id}",
	[WB_ROUTE_ACTION_STATUS] = "/v1/actions/{id}",
	[WB_ROUTE_HEALTHZ] = "/healthz",
	[WB_ROUTE_READYZ] = "/readyz",
	[WB_ROUTE_METRICS] = "/metrics",
	[WB_ROUTE_OPENAPI] = "/v1/openapi.json",
};

const char *wb_http_route_name(enum wb_route r)
{
	return (unsigned)r < WB_ROUTE_COUNT ? route_names[r] : "unknown";
}

#define MAX_SEGS 6

static bool seg_is(const char *s, size_t n, const char *lit)
{
	return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

/* Decodes the {id} segment into m->id; sets bad_id when unacceptable. */
static void take_id(struct wb_route_match *m, const char *s, size_t n)
{
	if (n > 3 * WB_HTTP_VALUE_MAX) {
		m->bad_id = true;
		return;
	}
	char tmp[3 * WB_HTTP_VALUE_MAX + 1];
	size_t len;
	if (!wb_http_pct_decode(s, n, false, tmp, &len) ||
	    !wb_http_value_ok(tmp, len)) {
		m->bad_id = true;
		return;
	}
	memcpy(m->id, tmp, len + 1);
	m->idlen = len;
}

static const char *const action_kinds[] = {"cancel", "change-address",
					   "refund", "request-return", NULL};

void wb_http_route(const char *path, struct wb_route_match *m)
{
	memset(m, 0, sizeof(*m));
	m->route = WB_ROUTE_UNKNOWN;
	if (!path || path[0] != '/')
		return;
	const char *seg[MAX_SEGS];
	size_t len[MAX_SEGS];
	int n = 0;
	const char *p = path + 1;
	for (;;) {
		const char *e = strchr(p, '/');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (n == MAX_SEGS || l == 0)
			return; /* too deep, "//" or a trailing slash */
		seg[n] = p;
		len[n++] = l;
		if (!e)
			break;
		p = e + 1;
	}
	if (n == 1) {
		if (seg_is(seg[0], len[0], "healthz"))
			m->route = WB_ROUTE_HEALTHZ;
		else if (seg_is(seg[0], len[0], "readyz"))
			m->route = WB_ROUTE_READYZ;
		else if (seg_is(seg[0], len[0], "metrics"))
			m->route = WB_ROUTE_METRICS;
		return;
	}
	if (!seg_is(seg[0], len[0], "v1"))
		return;
	if (n == 2) {
		if (seg_is(seg[1], len[1], "orders"))
			m->route = WB_ROUTE_ORDERS;
		else if (seg_is(seg[1], len[1], "openapi.json"))
			m->route = WB_ROUTE_OPENAPI;
		return;
	}
	if (n == 3 && seg_is(seg[1], len[1], "returns")) {
		m->route = WB_ROUTE_RETURN;
	} else if (n == 3 && seg_is(seg[1], len[1], "actions")) {
		m->route = WB_ROUTE_ACTION_STATUS;
	} else if (seg_is(seg[1], len[1], "orders")) {
		if (n == 3)
			m->route = WB_ROUTE_ORDER;
		else if (n == 4 && seg_is(seg[3], len[3], "timeline"))
			m->route = WB_ROUTE_TIMELINE;
		else if (n == 4 && seg_is(seg[3], len[3], "returns"))
			m->route = WB_ROUTE_ORDER_RETURNS;
		else if (n == 5 && seg_is(seg[3], len[3], "actions")) {
			for (int i = 0; action_kinds[i]; i++) {
				if (seg_is(seg[4], len[4], action_kinds[i])) {
					m->route = WB_ROUTE_ACTION;
					memcpy(m->action, seg[4], len[4]);
					m->action[len[4]] = '\0';
				}
			}
		}
	}
	if (m->route != WB_ROUTE_UNKNOWN)
		take_id(m, seg[2], len[2]);
}
