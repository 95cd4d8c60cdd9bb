/*
 * projector_http.c — waybill-projector's HTTP API on libmicrohttpd: the
 * agent-facing read routes over wb_views, health, readiness, Prometheus
 * metrics and the OpenAPI document (projectors/openapi.json, which is the
 * reference for every route, parameter, answer and error).
 *
 * Threads: libmicrohttpd's pool (epoll, projector.http.threads) runs the
 * handlers; a waiter thread resumes requests suspended on ?min_position
 * (so a waiting request never holds a pool thread); a housekeeping thread
 * computes the apply rate and reloads the tokens file when it changes.
 *
 * Order of checks for /v1 data routes: route (404), method (405), one
 * Authorization header (400), bearer token (401), scope (403), rate limit (429), parameters (400/414), then
 * min_position, then the store. The merchant comes only from the token;
 * another merchant's order takes exactly the path of a missing one.
 */
#include "projector_http.h"
#include "projector_internal.h" /* wb_json_write */

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#define QUERY_MAX 4096          /* raw query string bytes */
#define BODY_MAX (64u << 10)    /* request body bytes (actions) */
#define LOOKUP_DEFAULT 20
#define LOOKUP_MAX 100
#define WAITERS_MAX 10000
#define RATE_WINDOW 10          /* seconds of the apply-rate gauge */

/* Statuses the API answers with, in the order of the metrics arrays. */
static const unsigned statuses[] = {200, 400, 401, 403, 404, 405, 413,
				    414, 429, 500, 501, 503};
#define NSTATUS (sizeof(statuses) / sizeof(statuses[0]))

static size_t status_index(unsigned s)
{
	for (size_t i = 0; i < NSTATUS; i++)
		if (statuses[i] == s)
			return i;
	return 9; /* 500 */
}

enum req_state {
	REQ_FIRST = 0, /* the handler's first call: headers only */
	REQ_BODY,      /* reading an upload (if any) */
	REQ_NEW,       /* being answered */
	REQ_WAITING,   /* suspended on min_position */
	REQ_RESUMED,   /* resumed: answer now */
};

struct req {
	int64_t t0;
	enum req_state state;
	/* counted in h->resumed until libmicrohttpd reports the request
	 * complete, i.e. until its answer has left (or the client has) */
	bool resumed;
	struct wb_route_match m;
	bool head;
	bool method_ok;
	/* upload */
	wb_buf body;
	bool body_too_big;
	/* parsed query */
	char *lookup_value;
	enum wb_lookup lookup_kind;
	int64_t limit;
	int64_t min_position; /* -1 = none */
	int64_t deadline_us;
	bool behind;
	struct wb_token *tok; /* set once authorized */
	/* position and freshness, read before the store is queried */
	bool pos_taken, caught_up;
	int64_t pos, src, rec;
	char merchant[WB_HTTP_VALUE_MAX + 1];
	struct MHD_Connection *conn;
	struct req *next; /* waiter list */
};

struct wb_projector_http {
	struct MHD_Daemon *d;
	wb_views *views;
	uint16_t port;
	char listen[128];

	/* config */
	double rate, burst;
	int64_t wait_max_ms;
	int64_t ready_max_lag;

	/* tokens: readers load the pointer; a reload swaps it and keeps
	 * the old table until destroy (reloads are rare and small). */
	char *tokens_path;
	wb_tokens *tokens;
	wb_tokens **retired;
	size_t nretired;
	struct stat tokens_st;
	uint64_t tokens_reloads, tokens_reload_failures;

	struct wb_http_cache *cache;

	/* metrics */
	struct wb_histo req[WB_ROUTE_COUNT][NSTATUS];
	uint64_t rate_milli; /* entries/s * 1000, over RATE_WINDOW s */
	uint64_t samples[RATE_WINDOW + 1];
	int64_t sample_us[RATE_WINDOW + 1];
	unsigned nsamples;

	/* waiters */
	pthread_mutex_t wlock;
	pthread_cond_t wcond;  /* waiter thread */
	pthread_cond_t hcond;  /* housekeeping thread */
	struct req *waiters;
	size_t nwaiters;
	int resumed; /* resumed, not answered yet */
	bool stopping;
	pthread_t waiter_thread, house_thread;
	bool threads;
};

/* ---- responses ---------------------------------------------------------- */

struct hdr {
	const char *name, *value;
};

static void record(wb_projector_http *h, struct req *r, unsigned status)
{
	int64_t us = wb_mono_us() - r->t0;
	wb_histo_observe_us(&h->req[r->m.route][status_index(status)], us);
	if (status >= 500)
		wb_log(WB_LOG_WARN, "http_answer", "route=%s status=%u us=%lld",
		       wb_http_route_name(r->m.route), status, (long long)us);
	else
		wb_log(WB_LOG_DEBUG, "http_answer",
		       "route=%s status=%u us=%lld",
		       wb_http_route_name(r->m.route), status, (long long)us);
}

/* Queues body (malloc'ed, taken over) with status and headers. */
static enum MHD_Result send_raw(wb_projector_http *h, struct MHD_Connection *c,
				struct req *r, unsigned status, char *body,
				size_t len, const char *ctype,
				const struct hdr *extra)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		len, body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
				"no-store");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	for (; extra && extra->name; extra++)
		if (extra->value)
			MHD_add_response_header(resp, extra->name,
						extra->value);
	enum MHD_Result ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	record(h, r, status);
	return ret;
}

static enum MHD_Result send_json(wb_projector_http *h, struct MHD_Connection *c,
				 struct req *r, unsigned status, json_t *j,
				 const struct hdr *extra)
{
	wb_buf b;
	wb_buf_init(&b);
	wb_json_write(&b, j);
	json_decref(j);
	wb_buf_putc(&b, '\n');
	return send_raw(h, c, r, status, (char *)b.data, b.len,
			"application/json", extra);
}

#define PUTS(b, lit) wb_buf_append((b), lit, sizeof(lit) - 1)

/* Appends s as a JSON string. */
static void json_str(wb_buf *b, const char *s)
{
	wb_buf_putc(b, '"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			wb_buf_putc(b, '\\');
			wb_buf_putc(b, ch);
		} else if (ch < 0x20 || ch == 0x7f) {
			char u[8];
			snprintf(u, sizeof(u), "\\u%04x", ch);
			wb_buf_append(b, u, 6);
		} else {
			wb_buf_putc(b, ch);
		}
	}
	wb_buf_putc(b, '"');
}

static void put_i64_or_null(wb_buf *b, int64_t v, bool null)
{
	if (null)
		PUTS(b, "null");
	else
		wb_json_put_int(b, v);
}

/* '{', [error, message,] position and freshness (as every data answer
 * has them) and [min_position, behind]; sets *pos and r->behind. */
/* The store's position and freshness, read before it is queried: an
 * answer reflects at least the position it states, never less. */
static void take_position_snap(wb_projector_http *h, struct req *r,
			       int64_t *applied, int32_t max, int32_t *np)
{
	struct wb_views_pos p;
	wb_views_read_position(h->views, &p, applied, max);
	r->pos = p.position;
	r->src = p.latest_source_time;
	r->rec = p.last_recorded_at;
	r->caught_up = p.caught_up;
	r->pos_taken = true;
	if (np)
		*np = p.partitions;
}

static void take_position(wb_projector_http *h, struct req *r)
{
	take_position_snap(h, r, NULL, 0, NULL);
}

static void envelope_begin(wb_projector_http *h, struct req *r,
			   wb_buf *b, const char *error, const char *message,
			   int64_t *pos)
{
	if (!r->pos_taken)
		take_position(h, r);
	int64_t p = r->pos, src = r->src, rec = r->rec;
	bool caught_up = r->caught_up;
	int64_t lag = 0;
	if (!caught_up && rec > 0) {
		lag = wb_now_ms() - rec;
		if (lag < 0)
			lag = 0;
	}
	wb_buf_putc(b, '{');
	if (error) {
		PUTS(b, "\"error\":");
		json_str(b, error);
		PUTS(b, ",\"message\":");
		json_str(b, message);
		wb_buf_putc(b, ',');
	}
	PUTS(b, "\"position\":");
	put_i64_or_null(b, p, false);
	PUTS(b, ",\"freshness\":{\"latest_source_time\":");
	put_i64_or_null(b, src, src <= 0);
	PUTS(b, ",\"last_recorded_at\":");
	put_i64_or_null(b, rec, rec <= 0);
	PUTS(b, ",\"projection_lag_ms\":");
	put_i64_or_null(b, lag, !caught_up && rec <= 0);
	const char *cu = caught_up ? ",\"caught_up\":true}"
				   : ",\"caught_up\":false}";
	wb_buf_append(b, cu, strlen(cu));
	if (r->min_position >= 0) {
		r->behind = p < r->min_position;
		PUTS(b, ",\"min_position\":");
		put_i64_or_null(b, r->min_position, false);
		const char *bh = r->behind ? ",\"behind\":true"
					   : ",\"behind\":false";
		wb_buf_append(b, bh, strlen(bh));
	}
	*pos = p;
}

/* A data answer: the envelope, then the members of fields (an object,
 * taken over; may be NULL) and "raw_key": raw (already JSON; may be NULL),
 * with the Waybill-Position header (and Waybill-Behind when behind). */
static enum MHD_Result send_data_raw(wb_projector_http *h,
				     struct MHD_Connection *c, struct req *r,
				     unsigned status, json_t *fields,
				     const char *raw_key, const char *raw,
				     size_t rawlen, const char *error,
				     const char *message)
{
	wb_buf b;
	wb_buf_init(&b);
	wb_buf_reserve(&b, 256 + rawlen);
	int64_t pos;
	envelope_begin(h, r, &b, error, message, &pos);
	if (fields) {
		/* its members, after the envelope's */
		size_t at = b.len;
		wb_json_write(&b, fields);
		json_decref(fields);
		if (b.len - at > 2) {
			b.data[at] = ',';
			b.len--; /* its closing brace */
		} else {
			b.len = at;
		}
	}
	if (raw_key) {
		PUTS(&b, ",\"");
		wb_buf_append(&b, raw_key, strlen(raw_key));
		PUTS(&b, "\":");
		wb_buf_append(&b, raw, rawlen);
	}
	PUTS(&b, "}\n");
	char ps[24];
	snprintf(ps, sizeof(ps), "%lld", (long long)pos);
	struct hdr hs[] = {{"Waybill-Position", ps},
			   {"Waybill-Behind", r->behind ? "true" : NULL},
			   {NULL, NULL}};
	return send_raw(h, c, r, status, (char *)b.data, b.len,
			"application/json", hs);
}

static enum MHD_Result send_data(wb_projector_http *h,
				 struct MHD_Connection *c, struct req *r,
				 unsigned status, json_t *fields,
				 const char *error, const char *message)
{
	return send_data_raw(h, c, r, status, fields, NULL, NULL, 0, error,
			     message);
}

static enum MHD_Result send_error(wb_projector_http *h,
				  struct MHD_Connection *c, struct req *r,
				  unsigned status,
				  const char *code, const char *message,
				  const struct hdr *extra)
{
	json_t *o = json_pack("{s:s,s:s}", "error", code, "message", message);
	return send_json(h, c, r, status, o, extra);
}

/* An error answer to an authorized data request: like every such answer
 * it carries position and freshness. */
static enum MHD_Result send_fail(wb_projector_http *h,
				 struct MHD_Connection *c, struct req *r,
				 unsigned status, const char *code,
				 const char *message)
{
	return send_data(h, c, r, status, NULL, code, message);
}

/* ---- tokens ------------------------------------------------------------- */

static wb_tokens *tokens_get(wb_projector_http *h)
{
	return __atomic_load_n(&h->tokens, __ATOMIC_ACQUIRE);
}

/* Loads the tokens file when it changed (or at start: force). */
static void tokens_reload(wb_projector_http *h, bool force)
{
	if (!h->tokens_path)
		return;
	struct stat st;
	if (stat(h->tokens_path, &st) != 0) {
		if (force || h->tokens_st.st_ino != 0)
			wb_log(WB_LOG_ERROR, "tokens_reload",
			       "path=%s error=%s",
			       wb_log_q(h->tokens_path),
			       wb_log_q(strerror(errno)));
		memset(&h->tokens_st, 0, sizeof(h->tokens_st));
		return;
	}
	if (!force && st.st_ino == h->tokens_st.st_ino &&
	    st.st_size == h->tokens_st.st_size &&
	    st.st_mtim.tv_sec == h->tokens_st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == h->tokens_st.st_mtim.tv_nsec)
		return;
	h->tokens_st = st;
	wb_tokens *t = NULL;
	char msg[512];
	if (wb_tokens_load(h->tokens_path, &t, msg, sizeof(msg))) {
		__atomic_fetch_add(&h->tokens_reload_failures, 1,
				   __ATOMIC_RELAXED);
		wb_log(WB_LOG_ERROR, "tokens_reload", "error=%s kept=%zu",
		       wb_log_q(msg), tokens_get(h) ? tokens_get(h)->n : 0);
		return;
	}
	wb_tokens *old = tokens_get(h);
	wb_tokens_carry_buckets(t, old);
	__atomic_store_n(&h->tokens, t, __ATOMIC_RELEASE);
	if (old) {
		h->retired = wb_xrealloc(
			h->retired, (h->nretired + 1) * sizeof(*h->retired));
		h->retired[h->nretired++] = old;
	}
	h->tokens_reloads++;
	wb_log(WB_LOG_INFO, "tokens_loaded", "path=%s tokens=%zu",
	       wb_log_q(h->tokens_path), t->n);
}

/* ---- query parameters --------------------------------------------------- */

struct args {
	struct req *r;
	enum wb_route route;
	size_t raw;
	const char *err_code;
	char err[200];
	unsigned err_status;
	int nlookup;
	bool have_wait;
	int64_t wait_ms;
};

static bool parse_int_arg(struct args *a, const char *k, const char *v,
			  int64_t min, int64_t max, int64_t *out)
{
	if (wb_parse_i64(v, min, max, out))
		return true;
	a->err_code = "bad_parameter";
	snprintf(a->err, sizeof(a->err),
		 "%s must be an integer from %lld to %lld", k, (long long)min,
		 (long long)max);
	return false;
}

static enum MHD_Result arg_iter(void *cls, enum MHD_ValueKind kind,
				const char *key, const char *value)
{
	(void)kind;
	struct args *a = cls;
	size_t kl = strlen(key), vl = value ? strlen(value) : 0;
	a->raw += kl + vl + 2;
	if (a->raw > QUERY_MAX) {
		a->err_status = 414;
		a->err_code = "uri_too_long";
		snprintf(a->err, sizeof(a->err),
			 "the query string is over %d bytes", QUERY_MAX);
		return MHD_NO;
	}
	char k[64], v[QUERY_MAX + 1];
	size_t kn, vn;
	if (kl >= sizeof(k) || !wb_http_pct_decode(key, kl, true, k, &kn) ||
	    !wb_http_pct_decode(value ? value : "", vl, true, v, &vn)) {
		a->err_code = "bad_parameter";
		snprintf(a->err, sizeof(a->err),
			 "a query parameter is not valid percent-encoding");
		return MHD_NO;
	}
	struct req *r = a->r;
	static const struct {
		const char *name;
		enum wb_lookup kind;
	} lookups[] = {{"email", WB_LOOKUP_EMAIL},
		       {"name", WB_LOOKUP_NAME},
		       {"tracking", WB_LOOKUP_TRACKING},
		       {"channel_order_id", WB_LOOKUP_CHANNEL_ORDER_ID}};
	if (strcmp(k, "min_position") == 0) {
		if (r->min_position >= 0)
			goto dup;
		return parse_int_arg(a, k, v, 0, INT64_MAX, &r->min_position)
			       ? MHD_YES
			       : MHD_NO;
	}
	if (strcmp(k, "wait_ms") == 0) {
		if (a->have_wait)
			goto dup;
		a->have_wait = true;
		return parse_int_arg(a, k, v, 0, 3600000, &a->wait_ms)
			       ? MHD_YES
			       : MHD_NO;
	}
	if (a->route == WB_ROUTE_ORDERS) {
		if (strcmp(k, "limit") == 0) {
			if (r->limit)
				goto dup;
			return parse_int_arg(a, k, v, 1, LOOKUP_MAX,
					     &r->limit)
				       ? MHD_YES
				       : MHD_NO;
		}
		for (size_t i = 0; i < 4; i++) {
			if (strcmp(k, lookups[i].name) != 0)
				continue;
			if (++a->nlookup > 1) {
				a->err_code = "bad_parameter";
				snprintf(a->err, sizeof(a->err),
					 "give exactly one of email, name, "
					 "tracking, channel_order_id");
				return MHD_NO;
			}
			if (!wb_http_value_ok(v, vn)) {
				a->err_code = "bad_parameter";
				snprintf(a->err, sizeof(a->err),
					 "%s must be 1 to %d bytes of UTF-8 "
					 "without control characters",
					 k, WB_HTTP_VALUE_MAX);
				return MHD_NO;
			}
			r->lookup_kind = lookups[i].kind;
			r->lookup_value = wb_xstrndup(v, vn);
			return MHD_YES;
		}
	}
	a->err_code = "unknown_parameter";
	snprintf(a->err, sizeof(a->err), "unknown query parameter %.64s",
		 wb_http_value_ok(k, kn) ? k : "(unprintable)");
	return MHD_NO;
dup:
	a->err_code = "bad_parameter";
	snprintf(a->err, sizeof(a->err), "%s given twice", k);
	return MHD_NO;
}

/* ---- waiting for a position --------------------------------------------- */

static void *waiter_main(void *arg)
{
	wb_projector_http *h = arg;
	pthread_mutex_lock(&h->wlock);
	for (;;) {
		while (!h->waiters && !h->stopping)
			pthread_cond_wait(&h->wcond, &h->wlock);
		if (h->stopping && !h->waiters)
			break;
		int64_t target = INT64_MAX, deadline = INT64_MAX;
		for (struct req *r = h->waiters; r; r = r->next) {
			if (r->min_position < target)
				target = r->min_position;
			if (r->deadline_us < deadline)
				deadline = r->deadline_us;
		}
		bool stopping = h->stopping;
		pthread_mutex_unlock(&h->wlock);
		if (!stopping) {
			/* Short slices, so a newer waiter with a lower
			 * target or an earlier deadline is seen soon. */
			int64_t left = (deadline - wb_mono_us()) / 1000;
			int slice = left < 0 ? 0 : left > 5 ? 5 : (int)left;
			wb_views_wait(h->views, target, slice);
		}
		int64_t pos = wb_views_position(h->views);
		int64_t now = wb_mono_us();
		pthread_mutex_lock(&h->wlock);
		struct req **pp = &h->waiters;
		while (*pp) {
			struct req *r = *pp;
			if (h->stopping || pos >= r->min_position ||
			    now >= r->deadline_us) {
				*pp = r->next;
				h->nwaiters--;
				r->state = REQ_RESUMED;
				r->resumed = true;
				__atomic_fetch_add(&h->resumed, 1,
						   __ATOMIC_RELAXED);
				MHD_resume_connection(r->conn);
			} else {
				pp = &r->next;
			}
		}
	}
	pthread_mutex_unlock(&h->wlock);
	return NULL;
}

/* ---- handlers ----------------------------------------------------------- */

static enum MHD_Result not_found(wb_projector_http *h, struct MHD_Connection *c,
				 struct req *r, const char *what)
{
	return send_data(h, c, r, 404, NULL, "not_found", what);
}

static enum MHD_Result store_error(wb_projector_http *h,
				   struct MHD_Connection *c, struct req *r,
				   wb_err e)
{
	wb_log(WB_LOG_ERROR, "http_store_error", "route=%s error=%s",
	       wb_http_route_name(r->m.route), wb_strerror(e));
	return send_fail(h, c, r, 500, "internal",
			 "the read models could not answer");
}

static json_t *wrap(const char *key, json_t *res)
{
	json_t *o = json_object();
	json_object_set_new(o, key, res);
	return o;
}

static int64_t applied_cb(void *ud, int32_t partition)
{
	return wb_views_applied(ud, partition);
}

#define SNAP_MAX 1024

/* GET /v1/orders/{id}, through the answer cache (projector_cache.c). */
static enum MHD_Result answer_order(wb_projector_http *h,
				    struct MHD_Connection *c, struct req *r)
{
	/* the position the answer states, and what each partition had
	 * applied (the stamp of a cached answer), before anything is read */
	int64_t snap[SNAP_MAX];
	int32_t np = 0;
	take_position_snap(h, r, snap, h->cache ? SNAP_MAX : 0, &np);
	if (!h->cache || np > SNAP_MAX)
		np = 0;
	int64_t now = wb_mono_us();
	wb_buf body;
	wb_buf_init(&body);
	if (wb_http_cache_get(h->cache, r->merchant, r->m.id, now, applied_cb,
			      h->views, &body)) {
		enum MHD_Result ret =
			send_data_raw(h, c, r, 200, NULL, "order",
				      (const char *)body.data, body.len, NULL,
				      NULL);
		wb_buf_finish(&body);
		return ret;
	}
	int32_t part = -1;
	wb_err e = wb_views_order_json(h->views, r->merchant, r->m.id, &body,
				       &part);
	if (e) {
		wb_buf_finish(&body);
		if (e == WB_ENOTFOUND)
			return not_found(h, c, r, "no such order");
		return store_error(h, c, r, e);
	}
	if (part >= 0 && part < np)
		wb_http_cache_put(h->cache, r->merchant, r->m.id,
				  (int32_t)part, snap[part], now,
				  (const char *)body.data, body.len);
	enum MHD_Result ret =
		send_data_raw(h, c, r, 200, NULL, "order",
			      (const char *)body.data, body.len, NULL, NULL);
	wb_buf_finish(&body);
	return ret;
}

static enum MHD_Result answer_data(wb_projector_http *h,
				   struct MHD_Connection *c, struct req *r)
{
	const char *mer = r->merchant;
	json_t *res = NULL;
	wb_err e;
	if (r->m.route == WB_ROUTE_ORDER)
		return answer_order(h, c, r); /* takes the position itself */
	take_position(h, r);
	switch (r->m.route) {
	case WB_ROUTE_TIMELINE:
	case WB_ROUTE_ORDER_RETURNS:
	case WB_ROUTE_RETURN: {
		/* one store query, its answer under one key */
		static const struct {
			wb_err (*query)(wb_views *, const char *, const char *,
					json_t **);
			const char *key, *missing;
		} q[] = {
			[WB_ROUTE_TIMELINE] = {wb_views_timeline, "timeline",
					       "no such order"},
			[WB_ROUTE_ORDER_RETURNS] = {wb_views_order_returns,
						    "returns",
						    "no such order"},
			[WB_ROUTE_RETURN] = {wb_views_return, "return",
					     "no such return"},
		};
		e = q[r->m.route].query(h->views, mer, r->m.id, &res);
		if (e == WB_ENOTFOUND)
			return not_found(h, c, r, q[r->m.route].missing);
		if (e)
			return store_error(h, c, r, e);
		return send_data(h, c, r, 200, wrap(q[r->m.route].key, res),
				 NULL, NULL);
	}
	case WB_ROUTE_ORDERS: {
		json_t *ids = NULL;
		int64_t limit = r->limit ? r->limit : LOOKUP_DEFAULT;
		e = wb_views_find(h->views, mer, r->lookup_kind,
				  r->lookup_value, (size_t)limit + 1, &ids);
		if (e == WB_ENOTFOUND) {
			ids = json_array();
		} else if (e) {
			return store_error(h, c, r, e);
		}
		/* "orders":[views...],"has_more":b as text: the views are
		 * written by the store, never built as jansson values */
		wb_buf list;
		wb_buf_init(&list);
		wb_buf_putc(&list, '[');
		size_t i, n = 0;
		json_t *id;
		bool more = json_array_size(ids) > (size_t)limit;
		json_array_foreach(ids, i, id)
		{
			if (i == (size_t)limit)
				break;
			if (!json_is_string(id))
				continue;
			size_t at = list.len;
			if (n)
				wb_buf_putc(&list, ',');
			e = wb_views_order_json(h->views, mer,
						json_string_value(id), &list,
						NULL);
			if (e == WB_OK) {
				n++;
			} else {
				list.len = at;
				if (e != WB_ENOTFOUND) {
					json_decref(ids);
					wb_buf_finish(&list);
					return store_error(h, c, r, e);
				}
			}
		}
		json_decref(ids);
		PUTS(&list, "],\"has_more\":");
		if (more)
			PUTS(&list, "true");
		else
			PUTS(&list, "false");
		enum MHD_Result ret = send_data_raw(
			h, c, r, 200, NULL, "orders", (const char *)list.data,
			list.len, NULL, NULL);
		wb_buf_finish(&list);
		return ret;
	}
	default:
		return send_fail(h, c, r, 500, "internal", "unrouted");
	}
}

static enum MHD_Result answer_healthz(wb_projector_http *h,
				      struct MHD_Connection *c,
				      struct req *r)
{
	return send_json(h, c, r, 200, json_pack("{s:s}", "status", "ok"),
			 NULL);
}

static enum MHD_Result answer_readyz(wb_projector_http *h,
				     struct MHD_Connection *c, struct req *r)
{
	json_t *parts = json_array();
	bool ready;
	const char *why = NULL;
	int32_t np = wb_views_partitions(h->views);
	ready = np > 0;
	if (!ready)
		why = "no ledger partition known yet";
	for (int32_t i = 0; i < np; i++) {
		int64_t l = wb_views_lag(h->views, i);
		json_array_append_new(
			parts, json_pack("{s:i,s:o}", "partition", (int)i,
					 "lag", l < 0 ? json_null()
						      : json_integer(l)));
		if (l < 0 || l > h->ready_max_lag) {
			ready = false;
			why = l < 0 ? "a partition's lag is unknown"
				    : "a partition lags more than "
				      "projector.ready.max.lag";
		}
	}
	json_t *o = json_pack("{s:b,s:I,s:I,s:o}", "ready", ready, "position",
			      (json_int_t)wb_views_position(h->views),
			      "max_lag", (json_int_t)h->ready_max_lag,
			      "partitions", parts);
	if (why)
		json_object_set_new(o, "reason", json_string(why));
	return send_json(h, c, r, ready ? 200 : 503, o, NULL);
}

static enum MHD_Result answer_metrics(wb_projector_http *h,
				      struct MHD_Connection *c,
				      struct req *r)
{
	wb_buf b;
	wb_buf_init(&b);
	struct wb_views_stats st;
	wb_views_stats(h->views, &st);
	wb_prom_family(&b, "waybill_projector_entries_applied_total",
		       "counter",
		       "Ledger entries folded into the read models.");
	wb_prom_sample(&b, "waybill_projector_entries_applied_total", NULL,
		       (double)st.applied);
	wb_prom_family(&b, "waybill_projector_entries_skipped_total",
		       "counter",
		       "Ledger entries skipped because their seq was already "
		       "applied.");
	wb_prom_sample(&b, "waybill_projector_entries_skipped_total", NULL,
		       (double)st.skipped);
	wb_prom_family(&b, "waybill_projector_entries_foreign_total",
		       "counter",
		       "Ledger entries not applied because they name another "
		       "merchant than their order.");
	wb_prom_sample(&b, "waybill_projector_entries_foreign_total", NULL,
		       (double)st.foreign);
	wb_prom_family(&b, "waybill_projector_commits_total", "counter",
		       "Batches committed to the read-model store.");
	wb_prom_sample(&b, "waybill_projector_commits_total", NULL,
		       (double)st.commits);
	wb_prom_family(&b, "waybill_projector_apply_seconds_total", "counter",
		       "Time spent applying and committing batches.");
	wb_prom_sample(&b, "waybill_projector_apply_seconds_total", NULL,
		       (double)st.apply_us / 1e6);
	wb_prom_family(&b, "waybill_projector_apply_rate", "gauge",
		       "Entries applied per second over the last 10 seconds.");
	wb_prom_sample(
		&b, "waybill_projector_apply_rate", NULL,
		(double)__atomic_load_n(&h->rate_milli, __ATOMIC_RELAXED) /
			1000.0);
	wb_prom_family(&b, "waybill_projector_position", "gauge",
		       "Sum over partitions of the last applied ledger seq "
		       "(the position answers state).");
	wb_prom_sample(&b, "waybill_projector_position", NULL,
		       (double)wb_views_position(h->views));
	int32_t np = wb_views_partitions(h->views);
	wb_prom_family(&b, "waybill_projector_applied_seq", "gauge",
		       "Last applied ledger seq, per partition.");
	for (int32_t p = 0; p < np; p++) {
		char ps[16];
		snprintf(ps, sizeof(ps), "%d", p);
		const char *l[] = {"partition", ps, NULL};
		wb_prom_sample(&b, "waybill_projector_applied_seq", l,
			       (double)wb_views_applied(h->views, p));
	}
	wb_prom_family(&b, "waybill_projector_lag_entries", "gauge",
		       "Entries of the ledger topic not yet applied, per "
		       "partition, as last measured (absent while unknown).");
	for (int32_t p = 0; p < np; p++) {
		int64_t lag = wb_views_lag(h->views, p);
		if (lag < 0)
			continue;
		char ps[16];
		snprintf(ps, sizeof(ps), "%d", p);
		const char *l[] = {"partition", ps, NULL};
		wb_prom_sample(&b, "waybill_projector_lag_entries", l,
			       (double)lag);
	}
	int64_t src = 0, rec = 0;
	wb_views_freshness(h->views, &src, &rec);
	wb_prom_family(&b, "waybill_projector_latest_source_time_seconds",
		       "gauge",
		       "Latest channel source_time applied (Unix seconds).");
	wb_prom_sample(&b, "waybill_projector_latest_source_time_seconds",
		       NULL, (double)src / 1000.0);
	wb_prom_family(&b, "waybill_projector_last_recorded_at_seconds",
		       "gauge",
		       "recorded_at of the last applied ledger entry (Unix "
		       "seconds).");
	wb_prom_sample(&b, "waybill_projector_last_recorded_at_seconds", NULL,
		       (double)rec / 1000.0);
	/* the (route, status) series that have seen a request */
	struct series {
		const struct wb_histo *h;
		const char *labels[5];
		char status[8];
	} used[WB_ROUTE_COUNT * NSTATUS];
	size_t nused = 0;
	for (int rt = 0; rt < WB_ROUTE_COUNT; rt++) {
		for (size_t s = 0; s < NSTATUS; s++) {
			if (!wb_histo_any(&h->req[rt][s]))
				continue;
			struct series *u = &used[nused++];
			u->h = &h->req[rt][s];
			snprintf(u->status, sizeof(u->status), "%u",
				 statuses[s]);
			u->labels[0] = "route";
			u->labels[1] = wb_http_route_name((enum wb_route)rt);
			u->labels[2] = "status";
			u->labels[3] = u->status;
			u->labels[4] = NULL;
		}
	}
	wb_prom_family(&b, "waybill_http_requests_total", "counter",
		       "HTTP requests answered, by route and status.");
	for (size_t k = 0; k < nused; k++) {
		uint64_t n = 0;
		for (size_t i = 0; i <= WB_HISTO_BUCKETS; i++)
			n += __atomic_load_n(&used[k].h->buckets[i],
					     __ATOMIC_RELAXED);
		wb_prom_sample(&b, "waybill_http_requests_total",
			       used[k].labels, (double)n);
	}
	wb_prom_family(&b, "waybill_http_request_duration_seconds",
		       "histogram",
		       "Time from a request's headers to its answer being "
		       "queued, by route and status.");
	for (size_t k = 0; k < nused; k++)
		wb_prom_histogram(&b, "waybill_http_request_duration_seconds",
				  used[k].labels, used[k].h);
	uint64_t hits, misses;
	wb_http_cache_stats(h->cache, &hits, &misses);
	wb_prom_family(&b, "waybill_http_cache_hits_total", "counter",
		       "GET /v1/orders/{id} answers served from the cache.");
	wb_prom_sample(&b, "waybill_http_cache_hits_total", NULL,
		       (double)hits);
	wb_prom_family(&b, "waybill_http_cache_misses_total", "counter",
		       "GET /v1/orders/{id} answers that read the store.");
	wb_prom_sample(&b, "waybill_http_cache_misses_total", NULL,
		       (double)misses);
	pthread_mutex_lock(&h->wlock);
	size_t nw = h->nwaiters;
	pthread_mutex_unlock(&h->wlock);
	wb_prom_family(&b, "waybill_http_waiting_requests", "gauge",
		       "Requests waiting for ?min_position.");
	wb_prom_sample(&b, "waybill_http_waiting_requests", NULL, (double)nw);
	wb_tokens *t = tokens_get(h);
	wb_prom_family(&b, "waybill_http_tokens", "gauge",
		       "Bearer tokens loaded from projector.tokens.file.");
	wb_prom_sample(&b, "waybill_http_tokens", NULL,
		       (double)(t ? t->n : 0));
	wb_prom_family(&b, "waybill_http_token_reload_failures_total",
		       "counter",
		       "Times the tokens file changed but could not be "
		       "loaded (the previous tokens stay in force).");
	wb_prom_sample(&b, "waybill_http_token_reload_failures_total", NULL,
		       (double)__atomic_load_n(&h->tokens_reload_failures,
					       __ATOMIC_RELAXED));
	/* The metrics request itself is recorded after this text. */
	return send_raw(h, c, r, 200, (char *)b.data, b.len,
			"text/plain; version=0.0.4; charset=utf-8", NULL);
}

static enum MHD_Result answer_openapi(wb_projector_http *h,
				      struct MHD_Connection *c,
				      struct req *r)
{
	return send_raw(h, c, r, 200, wb_xstrdup(wb_schema_text_openapi),
			strlen(wb_schema_text_openapi), "application/json",
			NULL);
}

static enum MHD_Result count_authz(void *cls, enum MHD_ValueKind kind,
				   const char *key, const char *value)
{
	(void)kind;
	(void)value;
	if (strcasecmp(key, MHD_HTTP_HEADER_AUTHORIZATION) == 0)
		++*(unsigned *)cls;
	return MHD_YES;
}

/* Authenticates r and applies the rate limit; false when an answer was
 * queued (*ret). */
/* Refuses a request for its credentials: status with a WWW-Authenticate
 * challenge (RFC 6750 3). Always false, for authorize's returns. */
static bool refuse(wb_projector_http *h, struct MHD_Connection *c,
		   struct req *r, unsigned status, const char *code,
		   const char *challenge, const char *message,
		   enum MHD_Result *ret)
{
	struct hdr hs[] = {{"WWW-Authenticate", challenge}, {NULL, NULL}};
	*ret = send_error(h, c, r, status, code, message, hs);
	return false;
}

static bool authorize(wb_projector_http *h, struct MHD_Connection *c,
		      struct req *r, unsigned scope, enum MHD_Result *ret)
{
	/* libmicrohttpd hands out the first of repeated headers; a second
	 * Authorization would be ignored whatever it holds (RFC 6750 3.1:
	 * more than one credential is an invalid_request, 400) */
	unsigned n_authz = 0;
	MHD_get_connection_values(c, MHD_HEADER_KIND, count_authz, &n_authz);
	if (n_authz > 1)
		return refuse(h, c, r, 400, "bad_request",
			      "Bearer realm=\"waybill\", error=\"invalid_request\"",
			      "more than one Authorization header", ret);
	const char *authz = MHD_lookup_connection_value(
		c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	const char *tok;
	size_t len;
	if (!authz || !wb_http_bearer(authz, &tok, &len))
		return refuse(h, c, r, 401, "unauthorized",
			      "Bearer realm=\"waybill\"",
			      "an Authorization: Bearer token is required", ret);
	struct wb_token *t = wb_tokens_find(tokens_get(h), tok, len);
	if (!t)
		return refuse(h, c, r, 401, "unauthorized",
			      "Bearer realm=\"waybill\", error=\"invalid_token\"",
			      "the bearer token is not valid", ret);
	if (!(t->scopes & scope)) {
		const char *need = scope == WB_SCOPE_ACT ? "act" : "read";
		char www[96];
		snprintf(www, sizeof(www),
			 "Bearer realm=\"waybill\", "
			 "error=\"insufficient_scope\", scope=\"%s\"",
			 need);
		char m[64];
		snprintf(m, sizeof(m), "the token lacks the %s scope", need);
		return refuse(h, c, r, 403, "forbidden", www, m, ret);
	}
	int64_t retry_ms = 0;
	pthread_mutex_lock(&t->lock);
	bool okay = wb_bucket_take(&t->bucket, h->rate, h->burst,
				   wb_mono_us(), &retry_ms);
	pthread_mutex_unlock(&t->lock);
	if (!okay) {
		char ra[24];
		snprintf(ra, sizeof(ra), "%lld",
			 (long long)((retry_ms + 999) / 1000));
		struct hdr hs[] = {{"Retry-After", ra}, {NULL, NULL}};
		*ret = send_error(h, c, r, 429, "rate_limited",
				  "too many requests for this token; retry "
				  "after Retry-After seconds",
				  hs);
		return false;
	}
	r->tok = t;
	snprintf(r->merchant, sizeof(r->merchant), "%s", t->merchant);
	return true;
}

/* Everything after the route's method is known to fit. */
static enum MHD_Result dispatch(wb_projector_http *h, struct MHD_Connection *c,
				struct req *r)
{
	enum MHD_Result ret;
	switch (r->m.route) {
	case WB_ROUTE_HEALTHZ:
		return answer_healthz(h, c, r);
	case WB_ROUTE_READYZ:
		return answer_readyz(h, c, r);
	case WB_ROUTE_METRICS:
		return answer_metrics(h, c, r);
	case WB_ROUTE_OPENAPI:
		return answer_openapi(h, c, r);
	default:
		break;
	}
	bool action = r->m.route == WB_ROUTE_ACTION;
	if (!authorize(h, c, r, action ? WB_SCOPE_ACT : WB_SCOPE_READ, &ret))
		return ret;
	struct args a = {.r = r, .route = r->m.route, .err_status = 400};
	r->min_position = -1;
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, arg_iter, &a);
	if (a.err_code)
		return send_fail(h, c, r, a.err_status, a.err_code, a.err);
	if (r->m.bad_id)
		return send_fail(h, c, r, 400, "bad_id",
				 "the id must be 1 to 256 bytes of "
				 "percent-encoded UTF-8 without control "
				 "characters");
	if (r->m.route == WB_ROUTE_ORDERS && !r->lookup_value)
		return send_fail(h, c, r, 400, "bad_parameter",
				 "give exactly one of email, name, "
				 "tracking, channel_order_id");
	if (a.have_wait && r->min_position < 0)
		return send_fail(h, c, r, 400, "bad_parameter",
				 "wait_ms needs min_position");
	if (action) {
		if (r->body_too_big)
			return send_fail(h, c, r, 413, "body_too_large",
					 "the body is over 64 KiB");
		json_error_t je;
		json_t *body = NULL;
		if (r->body.len)
			body = json_loadb((const char *)r->body.data,
					  r->body.len, JSON_REJECT_DUPLICATES,
					  &je);
		if (!body || !json_is_object(body)) {
			json_decref(body);
			return send_fail(h, c, r, 400, "bad_json",
					 "the body must be a JSON object");
		}
		json_decref(body);
	}
	if (action || r->m.route == WB_ROUTE_ACTION_STATUS)
		return send_fail(h, c, r, 501, "not_implemented",
				 "order actions are not available yet");
	if (r->min_position >= 0 && a.have_wait && a.wait_ms > 0 &&
	    wb_views_position(h->views) < r->min_position) {
		int64_t w = a.wait_ms < h->wait_max_ms ? a.wait_ms
						       : h->wait_max_ms;
		pthread_mutex_lock(&h->wlock);
		bool room = h->nwaiters < WAITERS_MAX && !h->stopping;
		if (room) {
			r->conn = c;
			r->deadline_us = wb_mono_us() + w * 1000;
			r->state = REQ_WAITING;
			MHD_suspend_connection(c);
			r->next = h->waiters;
			h->waiters = r;
			h->nwaiters++;
			pthread_cond_signal(&h->wcond);
		}
		pthread_mutex_unlock(&h->wlock);
		if (room)
			return MHD_YES;
	}
	return answer_data(h, c, r);
}

static bool method_ok(const struct req *r, const char *method)
{
	if (r->m.route == WB_ROUTE_ACTION)
		return strcmp(method, MHD_HTTP_METHOD_POST) == 0;
	return strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
	       strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
}

/* The per-request state, made on the handler's first call for a request.
 * (Not in a URI log callback: libmicrohttpd 0.9.75 calls that before it
 * parses the query, and a query that exhausts the connection's memory
 * then closes the connection without the completion callback, leaking
 * what the log callback made.) */
static struct req *request_start(void)
{
	struct req *r = wb_xcalloc(1, sizeof(*r));
	r->t0 = wb_mono_us();
	r->min_position = -1;
	r->state = REQ_FIRST;
	return r;
}

/* libmicrohttpd 0.9.75 closes a keep-alive connection whose answer was
 * queued in the first call for a request, so every answer is given in a
 * later call: after the body (if any) has been read. */
static enum MHD_Result handler(void *cls, struct MHD_Connection *c,
			       const char *url, const char *method,
			       const char *version, const char *upload_data,
			       size_t *upload_data_size, void **con_cls)
{
	(void)version;
	wb_projector_http *h = cls;
	struct req *r = *con_cls;
	if (!r)
		*con_cls = r = request_start();
	switch (r->state) {
	case REQ_FIRST:
		wb_http_route(url, &r->m);
		r->head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
		r->method_ok = method_ok(r, method);
		r->state = REQ_BODY;
		return MHD_YES;
	case REQ_BODY:
		if (*upload_data_size) {
			/* Only actions keep their body; the rest is read
			 * and dropped. */
			if (r->body.len + *upload_data_size > BODY_MAX)
				r->body_too_big = true;
			else if (r->m.route == WB_ROUTE_ACTION &&
				 r->method_ok)
				wb_buf_append(&r->body, upload_data,
					      *upload_data_size);
			*upload_data_size = 0;
			return MHD_YES;
		}
		r->state = REQ_NEW;
		if (r->m.route == WB_ROUTE_UNKNOWN)
			return send_error(h, c, r, 404, "not_found",
					  "no such route", NULL);
		if (!r->method_ok) {
			struct hdr hs[] = {
				{"Allow", r->m.route == WB_ROUTE_ACTION
						  ? "POST"
						  : "GET, HEAD"},
				{NULL, NULL}};
			return send_error(h, c, r, 405, "method_not_allowed",
					  "this route does not take that "
					  "method",
					  hs);
		}
		return dispatch(h, c, r);
	case REQ_RESUMED:
		/* h->resumed drops in completed(): a queued answer is not yet
		 * sent, and stopping the daemon now would cut it off */
		r->state = REQ_NEW;
		return answer_data(h, c, r);
	default:
		return MHD_YES; /* waiting, or already answered */
	}
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	(void)c;
	(void)toe;
	wb_projector_http *h = cls;
	struct req *r = *con_cls;
	if (!r)
		return;
	if (r->resumed) /* answered, or the client left */
		__atomic_fetch_sub(&h->resumed, 1, __ATOMIC_RELAXED);
	free(r->lookup_value);
	wb_buf_finish(&r->body);
	free(r);
	*con_cls = NULL;
}

/* Leaves the URL as received: projector_route.c decodes each part. */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	return strlen(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char m[512];
	vsnprintf(m, sizeof(m), fmt, ap);
	for (char *p = m; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	wb_log(WB_LOG_DEBUG, "microhttpd", "message=%s", wb_log_q(m));
}

/* ---- housekeeping ------------------------------------------------------- */

static void *house_main(void *arg)
{
	wb_projector_http *h = arg;
	pthread_mutex_lock(&h->wlock);
	while (!h->stopping) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&h->hcond, &h->wlock, &ts);
		if (h->stopping)
			break;
		pthread_mutex_unlock(&h->wlock);
		/* apply rate over the last RATE_WINDOW samples */
		struct wb_views_stats st;
		wb_views_stats(h->views, &st);
		uint64_t n = st.applied;
		int64_t now = wb_mono_us();
		unsigned k = h->nsamples % (RATE_WINDOW + 1);
		h->samples[k] = n;
		h->sample_us[k] = now;
		h->nsamples++;
		unsigned have = h->nsamples < RATE_WINDOW + 1
					? h->nsamples
					: RATE_WINDOW + 1;
		unsigned oldest = (h->nsamples - have) % (RATE_WINDOW + 1);
		double dt = (double)(now - h->sample_us[oldest]) / 1e6;
		uint64_t milli = 0;
		if (have > 1 && dt > 0)
			milli = (uint64_t)((double)(n - h->samples[oldest]) /
					   dt * 1000.0);
		__atomic_store_n(&h->rate_milli, milli, __ATOMIC_RELAXED);
		tokens_reload(h, false);
		pthread_mutex_lock(&h->wlock);
	}
	pthread_mutex_unlock(&h->wlock);
	return NULL;
}

/* ---- the service's side ------------------------------------------------- */

uint16_t wb_projector_http_port(const wb_projector_http *h)
{
	return h ? h->port : 0;
}

wb_err wb_projector_http_start(const wb_config *cfg, wb_views *views,
			       wb_projector_http **out, char *msg,
			       size_t msglen)
{
	*out = NULL;
	int64_t threads, conn_limit, timeout, rate, burst, wait_max, max_lag,
		cache_n, cache_ttl;
	const struct {
		const char *key;
		int64_t min, max, *out;
	} ints[] = {
		{"projector.http.threads", 1, 64, &threads},
		{"projector.http.connection.limit", 1, 1000000, &conn_limit},
		{"projector.http.connection.timeout.s", 0, 86400, &timeout},
		{"projector.http.rate.limit", 0, 10000000, &rate},
		{"projector.http.rate.burst", 1, 10000000, &burst},
		{"projector.http.wait.max.ms", 0, 600000, &wait_max},
		{"projector.ready.max.lag", 0, INT64_MAX, &max_lag},
		{"projector.http.cache.entries", 0, 1 << 24, &cache_n},
		{"projector.http.cache.ttl.ms", 0, 3600000, &cache_ttl},
	};
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		wb_err rc = wb_config_get_int_range(cfg, ints[i].key,
						    ints[i].min, ints[i].max,
						    ints[i].out, msg, msglen);
		if (rc)
			return rc;
	}
	const char *listen = wb_config_get(cfg, "projector.http.listen");
	struct sockaddr_storage ss;
	wb_err rc = wb_parse_listen("projector.http.listen", listen, &ss, msg,
				    msglen);
	if (rc)
		return rc;

	wb_projector_http *h = wb_xcalloc(1, sizeof(*h));
	h->views = views;
	h->rate = (double)rate;
	h->burst = (double)burst;
	h->wait_max_ms = wait_max;
	h->ready_max_lag = max_lag;
	h->cache = wb_http_cache_create((size_t)cache_n, cache_ttl * 1000);
	pthread_mutex_init(&h->wlock, NULL);
	pthread_cond_init(&h->wcond, NULL);
	pthread_cond_init(&h->hcond, NULL);
	const char *tf = wb_config_get(cfg, "projector.tokens.file");
	if (tf && *tf) {
		h->tokens_path = wb_xstrdup(tf);
		wb_tokens *t = NULL;
		rc = wb_tokens_load(tf, &t, msg, msglen);
		if (rc) {
			wb_projector_http_stop(h);
			return rc;
		}
		stat(tf, &h->tokens_st);
		h->tokens = t;
		wb_log(WB_LOG_INFO, "tokens_loaded", "path=%s tokens=%zu",
		       wb_log_q(tf), t->n);
	} else {
		wb_log(WB_LOG_WARN, "no_tokens",
		       "reason=\"projector.tokens.file is not set; every /v1 "
		       "data request gets 401\"");
	}

	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD |
			 MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
			 MHD_USE_TURBO;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	h->d = MHD_start_daemon(
		flags, 0, NULL, NULL, handler, h, MHD_OPTION_SOCK_ADDR,
		(struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE,
		(unsigned)threads, MHD_OPTION_CONNECTION_LIMIT,
		(unsigned)conn_limit, MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned)timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
		(size_t)(64u << 10), MHD_OPTION_UNESCAPE_CALLBACK, no_unescape,
		NULL, MHD_OPTION_NOTIFY_COMPLETED, completed, h,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
		MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
	if (!h->d) {
		int e = errno;
		wb_fail(msg, msglen, WB_EIO,
			"cannot listen on %s (projector.http.listen): %s",
			listen, e ? strerror(e) : "libmicrohttpd refused");
		wb_projector_http_stop(h);
		return WB_EIO;
	}
	const union MHD_DaemonInfo *di =
		MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	h->port = di ? di->port : 0;
	if (pthread_create(&h->waiter_thread, NULL, waiter_main, h) != 0 ||
	    pthread_create(&h->house_thread, NULL, house_main, h) != 0)
		abort();
	h->threads = true;
	char host[64] = "";
	if (ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr,
			  host, sizeof(host));
	else
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr,
			  host, sizeof(host));
	snprintf(h->listen, sizeof(h->listen),
		 ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host,
		 (unsigned)h->port);
	wb_log(WB_LOG_INFO, "http_listening",
	       "listen=%s threads=%lld connection_limit=%lld timeout_s=%lld "
	       "rate_limit=%lld burst=%lld",
	       h->listen, (long long)threads, (long long)conn_limit,
	       (long long)timeout, (long long)rate, (long long)burst);
	*out = h;
	return WB_OK;
}

void wb_projector_http_stop(wb_projector_http *h)
{
	if (!h)
		return;
	if (h->threads) {
		pthread_mutex_lock(&h->wlock);
		h->stopping = true;
		pthread_cond_broadcast(&h->wcond);
		pthread_cond_broadcast(&h->hcond);
		pthread_mutex_unlock(&h->wlock);
		pthread_join(h->waiter_thread, NULL);
		pthread_join(h->house_thread, NULL);
		/* The waiter resumed every waiting request on its way out:
		 * let them be answered (behind) rather than cut off. */
		for (int i = 0; i < 1000 && __atomic_load_n(&h->resumed,
							    __ATOMIC_RELAXED);
		     i++)
			usleep(1000);
	}
	if (h->d)
		MHD_stop_daemon(h->d);
	wb_http_cache_destroy(h->cache);
	wb_tokens_free(h->tokens);
	for (size_t i = 0; i < h->nretired; i++)
		wb_tokens_free(h->retired[i]);
	free(h->retired);
	free(h->tokens_path);
	pthread_mutex_destroy(&h->wlock);
	pthread_cond_destroy(&h->wcond);
	pthread_cond_destroy(&h->hcond);
	free(h);
}
