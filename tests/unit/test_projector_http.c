/* test_projector_http.c — the pure parts of the projector's HTTP API:
 * percent-decoding, routes, the tokens file, bearer tokens, the rate
 * limiter, the Prometheus text format and the answer cache. */
#include <math.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "projector_http.h"

static bool dec(const char *in, bool plus, const char *want)
{
	char out[256];
	size_t n;
	if (!wb_http_pct_decode(in, strlen(in), plus, out, &n))
		return want == NULL;
	return want && n == strlen(want) && memcmp(out, want, n) == 0;
}

static void test_decode(void)
{
	ok(dec("shopify%3A820982911946154508", false,
	       "shopify:820982911946154508"),
	   "%%3A decodes");
	ok(dec("shopify%3a820982911946154508", false,
	       "shopify:820982911946154508"),
	   "lower-case hex too");
	ok(dec("shopify:820982911946154508", false,
	       "shopify:820982911946154508"),
	   "raw colon passes");
	ok(dec("a+b", false, "a+b") && dec("a+b", true, "a b") &&
		   dec("a%2Bb", true, "a+b"),
	   "'+' is a space only in queries; %%2B is a plus");
	ok(dec("a%2Fb", false, "a/b"), "%%2F is a slash inside the value");
	ok(dec("%", false, NULL) && dec("a%4", false, NULL) &&
		   dec("%zz", false, NULL) && dec("%4g", false, NULL),
	   "truncated or non-hex escapes fail");
	ok(dec("a%00b", false, NULL), "an escaped NUL fails");
	ok(dec("%E2%9C%93", false, "\xe2\x9c\x93"), "UTF-8 bytes decode");
	ok(dec("", false, ""), "empty decodes to empty");
}

static void test_values(void)
{
	ok(wb_http_value_ok("jon@example.com", 15), "plain value");
	ok(wb_http_value_ok("caf\xc3\xa9", 5), "UTF-8 value");
	ok(!wb_http_value_ok("", 0), "empty value refused");
	ok(!wb_http_value_ok("a\nb", 3) && !wb_http_value_ok("a\x7f", 2),
	   "control characters refused");
	ok(!wb_http_value_ok("\xc3", 1) && !wb_http_value_ok("\xc0\xaf", 2) &&
		   !wb_http_value_ok("\xed\xa0\x80", 3) &&
		   !wb_http_value_ok("\xc2\x85", 2),
	   "truncated, overlong, surrogate and C1 refused");
	char big[WB_HTTP_VALUE_MAX + 2];
	memset(big, 'a', sizeof(big));
	ok(wb_http_value_ok(big, WB_HTTP_VALUE_MAX) &&
		   !wb_http_value_ok(big, WB_HTTP_VALUE_MAX + 1),
	   "at most %d bytes", WB_HTTP_VALUE_MAX);
}

static enum wb_route rt(const char *path, struct wb_route_match *m)
{
	wb_http_route(path, m);
	return m->route;
}

static void test_routes(void)
{
	struct wb_route_match m;
	ok(rt("/v1/orders/shopify%3A820982911946154508", &m) ==
			   WB_ROUTE_ORDER &&
		   !m.bad_id &&
		   strcmp(m.id, "shopify:820982911946154508") == 0 &&
		   m.idlen == 26,
	   "order route, id decoded");
	ok(rt("/v1/orders/shopify:820982911946154508", &m) == WB_ROUTE_ORDER &&
		   strcmp(m.id, "shopify:820982911946154508") == 0,
	   "raw id accepted");
	ok(rt("/v1/orders/a%2Fb/timeline", &m) == WB_ROUTE_TIMELINE &&
		   strcmp(m.id, "a/b") == 0,
	   "an encoded slash stays in the id");
	ok(rt("/v1/orders/x/returns", &m) == WB_ROUTE_ORDER_RETURNS,
	   "order returns");
	ok(rt("/v1/returns/945000954", &m) == WB_ROUTE_RETURN &&
		   strcmp(m.id, "945000954") == 0,
	   "return");
	ok(rt("/v1/orders", &m) == WB_ROUTE_ORDERS, "lookup");
	ok(rt("/v1/orders/x/actions/cancel", &m) == WB_ROUTE_ACTION &&
		   strcmp(m.action, "cancel") == 0,
	   "action");
	ok(rt("/v1/orders/x/actions/explode", &m) == WB_ROUTE_UNKNOWN,
	   "unknown action kind");
	ok(rt("/v1/actions/act-1", &m) == WB_ROUTE_ACTION_STATUS,
	   "action status");
	ok(rt("/healthz", &m) == WB_ROUTE_HEALTHZ &&
		   rt("/readyz", &m) == WB_ROUTE_READYZ &&
		   rt("/metrics", &m) == WB_ROUTE_METRICS &&
		   rt("/v1/openapi.json", &m) == WB_ROUTE_OPENAPI,
	   "operational routes");
	const char *unknown[] = {"/",          "",
				 "/v1",        "/v1/",
				 "/v1/orders/", "/v1/orders//timeline",
				 "/v2/orders/x", "/v1/orders/x/y",
				 "/v1/orders/x/timeline/",
				 "/healthz/",  "/v1/orders/x/timeline/more",
				 "v1/orders/x", "/a/b/c/d/e/f/g/h",
				 NULL};
	bool all = true;
	for (int i = 0; unknown[i]; i++)
		if (rt(unknown[i], &m) != WB_ROUTE_UNKNOWN) {
			diag("routed: %s", unknown[i]);
			all = false;
		}
	ok(all, "unknown paths (trailing slash, empty segment, depth)");
	ok(rt("/v1/orders/a%00b", &m) == WB_ROUTE_ORDER && m.bad_id,
	   "escaped NUL: bad id");
	ok(rt("/v1/orders/a%zz", &m) == WB_ROUTE_ORDER && m.bad_id,
	   "bad escape: bad id");
	ok(rt("/v1/orders/%0A", &m) == WB_ROUTE_ORDER && m.bad_id,
	   "newline: bad id");
	char path[2048] = "/v1/orders/";
	memset(path + 11, 'x', 257);
	ok(rt(path, &m) == WB_ROUTE_ORDER && m.bad_id, "257-byte id: bad id");
	memset(path + 11, 'x', 1500);
	ok(rt(path, &m) == WB_ROUTE_ORDER && m.bad_id,
	   "1500-byte id: bad id");
	ok(strcmp(wb_http_route_name(WB_ROUTE_ORDER), "/v1/orders/{id}") ==
			   0 &&
		   strcmp(wb_http_route_name(WB_ROUTE_UNKNOWN), "unknown") == 0,
	   "route names");
}

static void sha_hex(const char *tok, char out[65])
{
	uint8_t d[32];
	SHA256((const unsigned char *)tok, strlen(tok), d);
	wb_hex(d, 32, out);
}

static void test_tokens(void)
{
	char msg[256] = "", h1[65], h2[65], h3[65], text[1024];
	sha_hex("wbt_alpha", h1);
	sha_hex("wbt_beta", h2);
	sha_hex("wbt_gamma", h3);
	snprintf(text, sizeof(text),
		 "# tokens\n\n%s acme.myshopify.com read\r\n"
		 "  %s\tother read,act   # trailing comment\n"
		 "%s acme act\n",
		 h1, h2, h3);
	wb_tokens *t = NULL;
	ok(wb_tokens_parse(text, strlen(text), "tok", &t, msg, sizeof(msg)) ==
			   WB_OK &&
		   t->n == 3,
	   "parses three tokens (%s)", msg);
	struct wb_token *a = wb_tokens_find(t, "wbt_alpha", 9);
	struct wb_token *b = wb_tokens_find(t, "wbt_beta", 8);
	struct wb_token *g = wb_tokens_find(t, "wbt_gamma", 9);
	ok(a && strcmp(a->merchant, "acme.myshopify.com") == 0 &&
		   a->scopes == WB_SCOPE_READ,
	   "first token: merchant and read");
	ok(b && strcmp(b->merchant, "other") == 0 &&
		   b->scopes == (WB_SCOPE_READ | WB_SCOPE_ACT),
	   "second: read,act (tab, CRLF, comment)");
	ok(g && g->scopes == WB_SCOPE_ACT, "third: act only");
	ok(!wb_tokens_find(t, "wbt_alph", 8) &&
		   !wb_tokens_find(t, "wbt_alphaa", 10) &&
		   !wb_tokens_find(t, "", 0) &&
		   !wb_tokens_find(NULL, "wbt_alpha", 9),
	   "near misses are not found");
	ok(!wb_tokens_find(t, h1, 64), "the hash itself is not a token");

	/* buckets carry over a reload */
	a->bucket.level = 0.25;
	a->bucket.last_us = 42;
	wb_tokens *t2 = NULL;
	wb_tokens_parse(text, strlen(text), "tok", &t2, msg, sizeof(msg));
	wb_tokens_carry_buckets(t2, t);
	struct wb_token *a2 = wb_tokens_find(t2, "wbt_alpha", 9);
	ok(a2 && a2->bucket.level == 0.25 && a2->bucket.last_us == 42,
	   "reload keeps the rate-limit state");
	wb_tokens_free(t2);
	wb_tokens_free(t);
	wb_tokens_free(NULL);

	ok(wb_tokens_parse("", 0, "tok", &t, msg, sizeof(msg)) == WB_OK &&
		   t->n == 0 && !wb_tokens_find(t, "x", 1),
	   "empty file: no tokens");
	wb_tokens_free(t);

	struct {
		const char *text;
		const char *want;
	} bad[] = {
		{"abc acme read\n", ":1: the first field must be 64 hex"},
		{"%s acme\n", ":1: expected"},
		{"\n%s acme read extra\n", ":2: expected"},
		{"%s acme write\n", ":1: scopes"},
		{"%s acme read,\n", ":1: scopes"},
		{"%s acme ,read\n", ":1: scopes"},
		{"%s acme read\n%s other act\n",
		 ":2: the same token as line 1"},
		{"wbt_abcdef acme read\n", "looks like a token itself"},
		{"%s acme\x01x read\n", ":1: bad merchant"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char tx[512];
		snprintf(tx, sizeof(tx), bad[i].text, h1, h1);
		t = NULL;
		wb_err rc = wb_tokens_parse(tx, strlen(tx), "tok", &t, msg,
					    sizeof(msg));
		ok(rc == WB_EPARSE && t == NULL && strstr(msg, bad[i].want),
		   "bad file %zu: %s", i, msg);
	}
	char nul[80 + 64];
	snprintf(nul, sizeof(nul), "%s acme read\n", h1);
	nul[3] = '\0';
	ok(wb_tokens_parse(nul, strlen(h1) + 11, "tok", &t, msg,
			   sizeof(msg)) == WB_EPARSE &&
		   strstr(msg, "NUL"),
	   "NUL byte: %s", msg);
}

static void test_bearer(void)
{
	const char *tok;
	size_t n;
	ok(wb_http_bearer("Bearer wbt_abc-DEF_123", &tok, &n) && n == 15 &&
		   memcmp(tok, "wbt_abc-DEF_123", 15) == 0,
	   "Bearer token");
	ok(wb_http_bearer("bearer   abc== ", &tok, &n) && n == 5 &&
		   memcmp(tok, "abc==", 5) == 0,
	   "case-insensitive scheme, padding, trailing blanks");
	ok(!wb_http_bearer("Basic abc", &tok, &n) &&
		   !wb_http_bearer("Bearer", &tok, &n) &&
		   !wb_http_bearer("Bearer ", &tok, &n) &&
		   !wb_http_bearer("Bearerabc", &tok, &n) &&
		   !wb_http_bearer("Bearer a b", &tok, &n) &&
		   !wb_http_bearer("Bearer a\"b", &tok, &n) &&
		   !wb_http_bearer("Bearer =abc", &tok, &n) &&
		   !wb_http_bearer(NULL, &tok, &n),
	   "other schemes and malformed tokens refused");
}

static void test_bucket(void)
{
	struct wb_bucket b = {0};
	int64_t retry = 0, t0 = 1000000;
	int taken = 0;
	for (int i = 0; i < 20; i++)
		taken += wb_bucket_take(&b, 10, 5, t0, &retry);
	ok(taken == 5, "a full bucket allows the burst (5), got %d", taken);
	ok(!wb_bucket_take(&b, 10, 5, t0, &retry) && retry == 100,
	   "empty: retry after 100 ms at 10/s (%lld)", (long long)retry);
	ok(!wb_bucket_take(&b, 10, 5, t0 + 50000, &retry) && retry == 50,
	   "half refilled: 50 ms more (%lld)", (long long)retry);
	ok(wb_bucket_take(&b, 10, 5, t0 + 100000, &retry),
	   "one unit after 100 ms");
	ok(!wb_bucket_take(&b, 10, 5, t0 + 100000, &retry), "then empty");
	taken = 0;
	for (int i = 0; i < 20; i++)
		taken += wb_bucket_take(&b, 10, 5, t0 + 60000000, &retry);
	ok(taken == 5, "refills to the burst, never above");
	ok(!wb_bucket_take(&b, 10, 5, t0 + 50000000, &retry),
	   "a clock going back adds nothing");
	struct wb_bucket u = {0};
	bool all = true;
	for (int i = 0; i < 1000; i++)
		all = all && wb_bucket_take(&u, 0, 1, t0, &retry);
	ok(all, "rate 0: unlimited");
	/* sustained rate: 1000 requests over 10 s at 50/s, burst 10 */
	struct wb_bucket s = {0};
	taken = 0;
	for (int i = 0; i < 1000; i++)
		taken += wb_bucket_take(&s, 50, 10, t0 + i * 10000, &retry);
	ok(taken >= 500 && taken <= 511, "50/s over 10 s: %d taken", taken);
}

static void test_prom(void)
{
	wb_buf b;
	wb_buf_init(&b);
	wb_prom_family(&b, "x_total", "counter", "Help with \\ and\nnewline.");
	const char *l[] = {"route", "/v1/orders/{id}", "weird", "a\"b\\c\nd",
			   NULL};
	wb_prom_sample(&b, "x_total", l, 3);
	wb_prom_sample(&b, "x_total", NULL, 0.5);
	wb_buf_putc(&b, 0);
	int before = tap_failed;
	ok(strcmp((char *)b.data,
		  "# HELP x_total Help with \\\\ and\\nnewline.\n"
		  "# TYPE x_total counter\n"
		  "x_total{route=\"/v1/orders/{id}\","
		  "weird=\"a\\\"b\\\\c\\nd\"} 3\n"
		  "x_total 0.5\n") == 0,
	   "family, escaping, integral and fractional values");
	if (tap_failed != before)
		diag("%s", (char *)b.data);
	wb_buf_reset(&b);

	struct wb_histo h;
	memset(&h, 0, sizeof(h));
	ok(!wb_histo_any(&h), "empty histogram");
	wb_histo_observe_us(&h, 50);      /* <= 0.0001 */
	wb_histo_observe_us(&h, 100);     /* <= 0.0001 (le is inclusive) */
	wb_histo_observe_us(&h, 3000);    /* <= 0.005 */
	wb_histo_observe_us(&h, 60000000); /* +Inf */
	ok(wb_histo_any(&h), "non-empty histogram");
	const char *hl[] = {"route", "r", NULL};
	wb_prom_histogram(&b, "lat_seconds", hl, &h);
	wb_buf_putc(&b, 0);
	const char *s = (char *)b.data;
	ok(strstr(s, "lat_seconds_bucket{route=\"r\",le=\"0.0001\"} 2\n") &&
		   strstr(s, "lat_seconds_bucket{route=\"r\",le=\"0.0025\"} "
			     "2\n") &&
		   strstr(s, "lat_seconds_bucket{route=\"r\",le=\"0.005\"} "
			     "3\n") &&
		   strstr(s, "lat_seconds_bucket{route=\"r\",le=\"10\"} 3\n") &&
		   strstr(s, "lat_seconds_bucket{route=\"r\",le=\"+Inf\"} "
			     "4\n") &&
		   strstr(s, "lat_seconds_sum{route=\"r\"} 60.00315\n") &&
		   strstr(s, "lat_seconds_count{route=\"r\"} 4\n"),
	   "cumulative buckets, +Inf, sum in seconds, count");
	/* buckets strictly cumulative and +Inf last before _sum */
	int nb = 0;
	double prev = -1;
	bool mono = true;
	const char *p = s;
	while ((p = strstr(p, "_bucket{"))) {
		const char *v = strchr(p, '}') + 2;
		double x = atof(v);
		mono = mono && x >= prev;
		prev = x;
		nb++;
		p = v;
	}
	ok(nb == WB_HISTO_BUCKETS + 1 && mono,
	   "%d buckets, non-decreasing", nb);
	ok(strstr(s, "le=\"+Inf\"") < strstr(s, "_sum"), "+Inf before _sum");
	ok(s[strlen(s) - 1] == '\n', "ends in a newline");
	wb_buf_finish(&b);
}

/* applied seq per partition, as the cache's callback sees it */
static int64_t applied_now[4];

static int64_t applied_of(void *ud, int32_t p)
{
	(void)ud;
	return p >= 0 && p < 4 ? applied_now[p] : -1;
}

static bool cget(struct wb_http_cache *c, const char *m, const char *id,
		 int64_t now, const char *want)
{
	wb_buf b;
	wb_buf_init(&b);
	bool hit = wb_http_cache_get(c, m, id, now, applied_of, NULL, &b);
	bool same = want ? hit && b.len == strlen(want) &&
				   memcmp(b.data, want, b.len) == 0
			 : !hit;
	wb_buf_finish(&b);
	return same;
}

static void test_cache(void)
{
	ok(wb_http_cache_create(0, 1000) == NULL &&
		   wb_http_cache_create(16, 0) == NULL,
	   "no slots or no TTL: no cache");
	ok(cget(NULL, "m", "o", 0, NULL), "a NULL cache always misses");
	wb_http_cache_put(NULL, "m", "o", 0, 0, 0, "x", 1);

	struct wb_http_cache *c = wb_http_cache_create(64, 1000000);
	applied_now[1] = 7;
	wb_http_cache_put(c, "acme", "shopify:1", 1, 7, 100, "{\"a\":1}", 7);
	ok(cget(c, "acme", "shopify:1", 200, "{\"a\":1}"), "hit");
	ok(cget(c, "other", "shopify:1", 200, NULL),
	   "another merchant never gets it");
	ok(cget(c, "acme", "shopify:2", 200, NULL), "another id misses");
	ok(cget(c, "acmeshopify:1", "", 200, NULL) &&
		   cget(c, "acme\0shopify", "1", 200, NULL),
	   "merchant and id do not run together");
	applied_now[1] = 8;
	ok(cget(c, "acme", "shopify:1", 300, NULL),
	   "anything applied in the order's partition: a miss");
	applied_now[1] = 7;
	applied_now[2] = 99;
	ok(cget(c, "acme", "shopify:1", 300, "{\"a\":1}"),
	   "other partitions do not matter");
	ok(cget(c, "acme", "shopify:1", 100 + 1000000, NULL),
	   "expired after the TTL");
	ok(cget(c, "acme", "shopify:1", 50, NULL),
	   "a clock before the entry's birth: a miss");
	wb_http_cache_put(c, "acme", "shopify:1", 1, 7, 500, "{\"a\":2}", 7);
	ok(cget(c, "acme", "shopify:1", 600, "{\"a\":2}"), "replaced");
	char big[WB_HTTP_VALUE_MAX + 2];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	wb_http_cache_put(c, big, "o", 1, 7, 500, "z", 1);
	ok(cget(c, big, "o", 600, NULL), "over-long keys are not cached");
	uint64_t hits, misses;
	wb_http_cache_stats(c, &hits, &misses);
	ok(hits == 3 && misses == 7, "hits %llu misses %llu",
	   (unsigned long long)hits, (unsigned long long)misses);
	/* collisions in a tiny table replace, never mix up */
	struct wb_http_cache *t = wb_http_cache_create(2, 1000000);
	char id[32], body[32];
	for (int i = 0; i < 50; i++) {
		snprintf(id, sizeof(id), "o%d", i);
		snprintf(body, sizeof(body), "b%d", i);
		wb_http_cache_put(t, "m", id, 0, 0, 0, body, strlen(body));
	}
	bool right = true;
	int found = 0;
	applied_now[0] = 0;
	for (int i = 0; i < 50; i++) {
		snprintf(id, sizeof(id), "o%d", i);
		snprintf(body, sizeof(body), "b%d", i);
		wb_buf b;
		wb_buf_init(&b);
		if (wb_http_cache_get(t, "m", id, 1, applied_of, NULL, &b)) {
			found++;
			right = right && b.len == strlen(body) &&
				memcmp(b.data, body, b.len) == 0;
		}
		wb_buf_finish(&b);
	}
	ok(right && found >= 1 && found <= 2,
	   "2 slots, 50 keys: %d found, each with its own body", found);
	wb_http_cache_destroy(t);
	wb_http_cache_destroy(c);
	wb_http_cache_destroy(NULL);
}

int main(void)
{
	test_decode();
	test_values();
	test_routes();
	test_tokens();
	test_bearer();
	test_bucket();
	test_prom();
	test_cache();
	return tap_done();
}
