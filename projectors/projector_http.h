/*
 * projector_http.h — the inside of waybill-projector's HTTP API (the
 * service-facing part is the "HTTP" section of wb_projector.h). These are
 * the pure pieces, kept apart from libmicrohttpd so unit tests reach them:
 * percent-decoding and routing, the tokens file and bearer tokens, the
 * per-token rate limiter and the Prometheus text format.
 */
#ifndef WB_PROJECTOR_HTTP_H
#define WB_PROJECTOR_HTTP_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wb_common.h"

/* ---- percent-decoding and routes ---------------------------------------- */

/* Longest id or lookup value accepted, in bytes after decoding. */
#define WB_HTTP_VALUE_MAX 256

/* Decodes n bytes of a URL component: %HH escapes (either case) and, when
 * plus_space, '+' as a space. out needs n+1 bytes; it is NUL-terminated.
 * False for a malformed escape or an escaped NUL. */
bool wb_http_pct_decode(const char *in, size_t n, bool plus_space, char *out,
			size_t *outlen);

/* Whether a decoded id or lookup value is acceptable: 1 to
 * WB_HTTP_VALUE_MAX bytes of valid UTF-8 without control characters. */
bool wb_http_value_ok(const char *s, size_t n);

/* Routes, in the order of the metrics' route labels. */
enum wb_route {
	WB_ROUTE_UNKNOWN = 0,
	WB_ROUTE_ORDER,          /* /v1/orders/{id} */
	WB_ROUTE_ORDERS,         /* /v1/orders?email=|name=|tracking=|... */
	WB_ROUTE_TIMELINE,       /* /v1/orders/{id}/timeline */
	WB_ROUTE_ORDER_RETURNS,  /* /v1/orders/{id}/returns */
	WB_ROUTE_ACTION,         /* /v1/orders/{id}/actions/{kind} (POST) */
	WB_ROUTE_RETURN,         /* /v1/returns/{id} */
	WB_ROUTE_ACTION_STATUS,  /* /v1/actions/{id} */
	WB_ROUTE_HEALTHZ,
	WB_ROUTE_READYZ,
	WB_ROUTE_METRICS,
	WB_ROUTE_OPENAPI,        /* /v1/openapi.json */
	WB_ROUTE_COUNT
};

struct wb_route_match {
	enum wb_route route;
	bool bad_id;                        /* id present but unacceptable */
	char id[WB_HTTP_VALUE_MAX + 1];     /* decoded {id} */
	size_t idlen;
	char action[24];                    /* {kind} of an action route */
};

/* Matches a raw (still percent-encoded) request path, without the query.
 * An id that does not decode or fails wb_http_value_ok sets bad_id (the
 * route is still named). Unknown paths give WB_ROUTE_UNKNOWN. */
void wb_http_route(const char *path, struct wb_route_match *m);
/* The route's template, as in the OpenAPI document and metric labels. */
const char *wb_http_route_name(enum wb_route r);

/* ---- tokens ------------------------------------------------------------- */

enum { WB_SCOPE_READ = 1u << 0, WB_SCOPE_ACT = 1u << 1 };

/* Token bucket: refills at rate per second up to burst. */
struct wb_bucket {
	double level;
	int64_t last_us; /* 0 = never used: starts full */
};

/* Takes one unit at now_us. False when empty, with *retry_ms = how long
 * until one unit is there. rate <= 0 means unlimited. */
bool wb_bucket_take(struct wb_bucket *b, double rate, double burst,
		    int64_t now_us, int64_t *retry_ms);

struct wb_token {
	uint8_t digest[32];   /* SHA-256 of the token */
	char *merchant;
	unsigned scopes;
	int line;
	pthread_mutex_t lock; /* guards bucket */
	struct wb_bucket bucket;
};

typedef struct wb_tokens {
	struct wb_token *v;   /* sorted by digest */
	size_t n;
	bool locks;           /* the entries' locks are initialised */
} wb_tokens;

/* SHA-256 of a presented token. */
void wb_token_digest(const char *token, size_t len, uint8_t out[32]);

/* Parses a tokens file: one "<sha256 hex> <merchant> <scopes>" a line
 * (scopes comma-separated from read, act), '#' comments and blank lines.
 * name is used in messages ("FILE:LINE: ..."). */
wb_err wb_tokens_parse(const char *text, size_t len, const char *name,
		       wb_tokens **out, char *msg, size_t msglen);
wb_err wb_tokens_load(const char *path, wb_tokens **out, char *msg,
		      size_t msglen);
void wb_tokens_free(wb_tokens *t);
/* The entry of a presented token, or NULL. */
struct wb_token *wb_tokens_find(const wb_tokens *t, const char *token,
				size_t len);
/* Carries each bucket of old over to the entry of new with the same
 * digest, so a reload does not refill anyone's bucket. */
void wb_tokens_carry_buckets(wb_tokens *newt, const wb_tokens *old);

/* The token of an "Authorization: Bearer <token>" header value (scheme
 * case-insensitive, token68 characters only). */
bool wb_http_bearer(const char *authz, const char **token, size_t *len);

/* ---- Prometheus text format (version 0.0.4) ----------------------------- */

/* "# HELP name help\n# TYPE name type\n" (help escaped). */
void wb_prom_family(wb_buf *b, const char *name, const char *type,
		    const char *help);
/* name{labels} value\n; labels is "k","v",... NULL-terminated, values
 * escaped (\\, \", \n). Integral values print without a fraction. */
void wb_prom_sample(wb_buf *b, const char *name, const char *const *labels,
		    double value);

/* Latency histogram: bucket upper bounds in microseconds (printed in
 * seconds; the +Inf bucket is implied). */
#define WB_HISTO_BUCKETS 16
extern const int64_t wb_histo_bounds_us[WB_HISTO_BUCKETS];

/* One histogram series, updated with relaxed atomics from any thread:
 * per-bucket (not cumulative) counts, the last one for +Inf, and the sum. */
struct wb_histo {
	uint64_t buckets[WB_HISTO_BUCKETS + 1];
	uint64_t sum_us;
};
void wb_histo_observe_us(struct wb_histo *h, int64_t us);
/* Whether anything was observed. */
bool wb_histo_any(const struct wb_histo *h);
/* The cumulative name_bucket{labels,le="..."} lines (+Inf last), then
 * name_sum (seconds) and name_count, which equals the +Inf bucket. */
void wb_prom_histogram(wb_buf *b, const char *name, const char *const *labels,
		       const struct wb_histo *h);

/* ---- the answer cache (projector_cache.c) ------------------------------- */

/* Rendered order answers keyed by (merchant, order id), each stamped with
 * the applied seq of the order's ledger partition read before the store was
 * queried; served only while that seq is unchanged and for ttl_us. NULL
 * (no cache) when slots or ttl_us is 0; every function accepts NULL. */
struct wb_http_cache;
struct wb_http_cache *wb_http_cache_create(size_t slots, int64_t ttl_us);
void wb_http_cache_destroy(struct wb_http_cache *c);
/* Appends the body to out and returns true on a hit. */
bool wb_http_cache_get(struct wb_http_cache *c, const char *merchant,
		       const char *id, int64_t now_us,
		       int64_t (*applied)(void *ud, int32_t partition),
		       void *ud, wb_buf *out);
void wb_http_cache_put(struct wb_http_cache *c, const char *merchant,
		       const char *id, int32_t partition, int64_t stamp,
		       int64_t now_us, const char *body, size_t len);
void wb_http_cache_stats(const struct wb_http_cache *c, uint64_t *hits,
			 uint64_t *misses);

/* ---- the server --------------------------------------------------------- */

struct wb_projector_http;
/* The port it listens on (useful with projector.http.listen port 0). */
uint16_t wb_projector_http_port(const struct wb_projector_http *h);

/* ---- the OpenAPI document ----------------------------------------------- */

/* projectors/openapi.json, embedded at build time. */
extern const char wb_schema_text_openapi[];

#endif /* WB_PROJECTOR_HTTP_H */
