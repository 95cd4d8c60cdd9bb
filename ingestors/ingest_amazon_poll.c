/*
 * ingest_amazon_poll.c — `waybill-ingest amazon-poll [--once]`: Amazon
 * SP-API Orders v0 into <prefix>events.
 *
 * One pass: getOrders with LastUpdatedAfter = the durable cursor and
 * LastUpdatedBefore = now - 2 min (Amazon's own minimum lag), following
 * NextToken; getOrderItems for every order (with its own NextToken); each
 * order through amazon_map.c; events to Kafka, unmappable orders to
 * <prefix>dlq with the reason. Only when Kafka has acknowledged everything
 * of the pass does the cursor move (to the LastUpdatedBefore the pass
 * covered), written atomically; a crash or a failed pass repeats the
 * window, and the repeats carry the same event ids, which the ledger drops.
 *
 * HTTP is libcurl with one reused handle (keep-alive). Per request:
 *   - an LWA access token (POST ingest.amazon.lwa.url, grant_type=
 *     refresh_token) renewed a margin before expires_in runs out, and once
 *     more on a 401/403 answer;
 *   - paced before it goes out: a token bucket per operation with SP-API's
 *     documented default rate and burst, its rate taken from
 *     x-amzn-RateLimit-Limit whenever an answer carries one, so item
 *     requests and NextToken pages do not run into 429s in the first place;
 *   - 429: wait what Retry-After says, else one request's worth of the
 *     x-amzn-RateLimit-Limit rate (else the documented default rate), and
 *     the bucket is taken as empty;
 *   - 5xx, timeouts, connection errors, broken or truncated JSON: capped
 *     exponential backoff with jitter, up to ingest.amazon.max.attempts;
 *   - other 4xx: the request fails (for getOrderItems: that order goes to
 *     the DLQ without its items; for getOrders: the pass fails).
 * Secrets (client secret, refresh token, access token) are never logged.
 */
#include "wb_ingest.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SOURCE "amazon-poll"
/* Amazon wants LastUpdatedBefore at least 2 minutes in the past. */
#define LAG_MS (2 * 60 * 1000)
#define MAX_BODY (32u << 20)
/* The Orders v0 usage plans (requests/s and burst): the pace until an
 * x-amzn-RateLimit-Limit header says otherwise. The header carries the
 * rate only, so the burst stays the documented one. */
#define RATE_GET_ORDERS 0.0167
#define BURST_GET_ORDERS 20
#define RATE_GET_ORDER_ITEMS 0.5
#define BURST_GET_ORDER_ITEMS 30
/* A rate header outside this is not believed. */
#define RATE_MIN 0.0001
#define RATE_MAX 10000.0
/* Item pages per order: far above any real order. */
#define MAX_ITEM_PAGES 100

/* One operation's token bucket: tokens refill at rate up to burst, a
 * request takes one. */
struct bucket {
	double rate, burst, tokens;
	int64_t at_us; /* tokens as of this time (monotonic) */
};

struct poller {
	const wb_config *cfg;
	volatile sig_atomic_t *stop;
	CURL *curl;
	char errbuf[CURL_ERROR_SIZE];
	const char *api_url, *lwa_url, *client_id, *client_secret,
		*refresh_token, *marketplaces, *merchant, *state_dir;
	char state_name[160];
	int64_t timeout_ms, max_attempts, backoff_max_ms, interval_ms;
	char *token;
	int64_t token_renew_us; /* renew at or after this (monotonic) */
	struct bucket orders, items;
	wb_ingest_producer *prod;
	char topic[256], dlq[256];
	wb_buf body;
	char retry_after[64], rate_limit[64];
	struct {
		uint64_t pages, orders, events, dlq, requests, retries;
	} st;
};

/* ---- small helpers ------------------------------------------------------ */

/* Sleeps ms, waking early when a stop is requested. false if stopped. */
static bool pause_ms(struct poller *pl, int64_t ms)
{
	int64_t end = wb_mono_us() + ms * 1000;
	while (!(pl->stop && *pl->stop)) {
		int64_t left = end - wb_mono_us();
		if (left <= 0)
			return true;
		if (left > 100000)
			left = 100000;
		struct timespec ts = {left / 1000000, (left % 1000000) * 1000};
		nanosleep(&ts, NULL);
	}
	return false;
}

static bool stopped(const struct poller *pl)
{
	return pl->stop && *pl->stop;
}

static void iso_time(int64_t ms, char out[32])
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Capped exponential backoff with up to 25% jitter, for attempt 1, 2... */
static int64_t backoff_ms(const struct poller *pl, int attempt)
{
	int64_t ms = 1000;
	for (int i = 1; i < attempt && ms < pl->backoff_max_ms; i++)
		ms *= 2;
	if (ms > pl->backoff_max_ms)
		ms = pl->backoff_max_ms;
	return ms + (ms > 3 ? (int64_t)(rand() % (int)(ms / 4 + 1)) : 0);
}

/* ---- HTTP ------------------------------------------------------------------ */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	wb_buf *b = ud;
	size_t len = size * n;
	if (b->len + len > MAX_BODY)
		return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
	wb_buf_append(b, p, len);
	return len;
}

static void keep_header(const char *line, size_t n, const char *name,
			char *out, size_t outlen)
{
	size_t k = strlen(name);
	if (n <= k + 1 || strncasecmp(line, name, k) != 0 || line[k] != ':')
		return;
	const char *v = line + k + 1;
	size_t vn = n - k - 1;
	while (vn && (*v == ' ' || *v == '\t'))
		v++, vn--;
	while (vn && (v[vn - 1] == '\r' || v[vn - 1] == '\n' ||
		      v[vn - 1] == ' '))
		vn--;
	snprintf(out, outlen, "%.*s", (int)vn, v);
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct poller *pl = ud;
	size_t len = size * n;
	if (len > 5 && strncmp(p, "HTTP/", 5) == 0) {
		/* a new response (after a redirect or a 100) */
		pl->retry_after[0] = pl->rate_limit[0] = '\0';
	}
	keep_header(p, len, "retry-after", pl->retry_after,
		    sizeof(pl->retry_after));
	keep_header(p, len, "x-amzn-ratelimit-limit", pl->rate_limit,
		    sizeof(pl->rate_limit));
	return len;
}

/* One request. *status = HTTP status, 0 when no answer came (then rc is
 * WB_ETIMEOUT or WB_EIO with the reason). Body in pl->body, NUL ended. */
static wb_err http(struct poller *pl, const char *url, const char *post,
		   struct curl_slist *headers, long *status, char *msg,
		   size_t msglen)
{
	CURL *h = pl->curl;
	wb_buf_reset(&pl->body);
	pl->retry_after[0] = pl->rate_limit[0] = '\0';
	pl->errbuf[0] = '\0';
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	if (post) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, post);
	} else {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	}
	pl->st.requests++;
	CURLcode cc = curl_easy_perform(h);
	/* the form holds secrets: libcurl must not keep a pointer to it */
	if (post)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);
	wb_buf_putc(&pl->body, '\0');
	pl->body.len--;
	*status = 0;
	if (cc != CURLE_OK) {
		const char *why = pl->errbuf[0] ? pl->errbuf
						: curl_easy_strerror(cc);
		if (cc == CURLE_WRITE_ERROR)
			return wb_fail(msg, msglen, WB_ETOOBIG,
				       "answer over %u bytes", MAX_BODY);
		return wb_fail(msg, msglen,
			       cc == CURLE_OPERATION_TIMEDOUT ? WB_ETIMEOUT
							      : WB_EIO,
			       "%s", why);
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	return WB_OK;
}

/* "errors":[{"code","message"}] of an SP-API error body, for messages. */
static void sp_error(const wb_buf *body, char *out, size_t outlen)
{
	json_t *j = json_loadb((const char *)body->data, body->len, 0, NULL);
	json_t *e = json_array_get(json_object_get(j, "errors"), 0);
	const char *code = json_string_value(json_object_get(e, "code"));
	const char *m = json_string_value(json_object_get(e, "message"));
	/* LWA errors: {"error":..., "error_description":...} */
	if (!code)
		code = json_string_value(json_object_get(j, "error"));
	if (!m)
		m = json_string_value(json_object_get(j, "error_description"));
	snprintf(out, outlen, "%s%s%.200s", code ? code : "no error code",
		 m ? ": " : "", m ? m : "");
	json_decref(j);
}

/* ---- LWA token ------------------------------------------------------------ */

static char *form_value(CURL *h, const char *v)
{
	return curl_easy_escape(h, v, 0);
}

/* Gets a new access token; retries like any request, except that a 4xx
 * (bad credentials) fails at once. */
static wb_err lwa_refresh(struct poller *pl, char *msg, size_t msglen)
{
	char *rt = form_value(pl->curl, pl->refresh_token);
	char *id = form_value(pl->curl, pl->client_id);
	char *sec = form_value(pl->curl, pl->client_secret);
	size_t n = strlen(rt) + strlen(id) + strlen(sec) + 80;
	char *form = wb_xmalloc(n);
	snprintf(form, n,
		 "grant_type=refresh_token&refresh_token=%s&client_id=%s&"
		 "client_secret=%s",
		 rt, id, sec);
	explicit_bzero(rt, strlen(rt));
	explicit_bzero(sec, strlen(sec));
	curl_free(rt);
	curl_free(id);
	curl_free(sec);
	struct curl_slist *hd = curl_slist_append(
		NULL, "Content-Type: application/x-www-form-urlencoded;"
		      "charset=UTF-8");
	hd = curl_slist_append(hd, "Accept: application/json");
	wb_err rc = WB_EHTTP;
	for (int attempt = 1; attempt <= pl->max_attempts; attempt++) {
		if (attempt > 1) {
			pl->st.retries++;
			if (!pause_ms(pl, backoff_ms(pl, attempt - 1))) {
				rc = wb_fail(msg, msglen, WB_ETIMEOUT,
					     "stopped");
				break;
			}
		}
		long status;
		char sub[300];
		rc = http(pl, pl->lwa_url, form, hd, &status, sub, sizeof(sub));
		if (rc == WB_ETOOBIG)
			break;
		if (rc) {
			wb_log(WB_LOG_WARN, "lwa_retry",
			       "attempt=%d error=%s", attempt, wb_log_q(sub));
			rc = wb_fail(msg, msglen, WB_EHTTP, "LWA token: %s",
				     sub);
			continue;
		}
		if (status == 200) {
			json_t *j = json_loadb((const char *)pl->body.data,
					       pl->body.len, 0, NULL);
			const char *tok = json_string_value(
				json_object_get(j, "access_token"));
			json_t *exp = json_object_get(j, "expires_in");
			if (tok && *tok && json_is_integer(exp) &&
			    json_integer_value(exp) > 0) {
				int64_t secs = json_integer_value(exp);
				/* renew a minute early, or halfway for
				 * short-lived tokens */
				int64_t margin = secs > 120 ? 60 : secs / 2;
				if (pl->token) {
					explicit_bzero(pl->token,
						       strlen(pl->token));
					free(pl->token);
				}
				pl->token = wb_xstrdup(tok);
				pl->token_renew_us =
					wb_mono_us() +
					(secs - margin) * 1000000;
				explicit_bzero(pl->body.data, pl->body.len);
				json_decref(j);
				wb_log(WB_LOG_INFO, "lwa_token",
				       "expires_in_s=%" PRId64
				       " renew_in_s=%" PRId64,
				       secs, secs - margin);
				rc = WB_OK;
				break;
			}
			json_decref(j);
			explicit_bzero(pl->body.data, pl->body.len);
			rc = wb_fail(msg, msglen, WB_EHTTP,
				     "LWA token: 200 without access_token and "
				     "expires_in");
			wb_log(WB_LOG_WARN, "lwa_retry",
			       "attempt=%d error=\"malformed answer\"",
			       attempt);
			continue;
		}
		sp_error(&pl->body, sub, sizeof(sub));
		rc = wb_fail(msg, msglen, WB_EHTTP, "LWA token: HTTP %ld %s",
			     status, sub);
		if (status == 429 || status >= 500) {
			wb_log(WB_LOG_WARN, "lwa_retry",
			       "attempt=%d status=%ld", attempt, status);
			continue;
		}
		rc = WB_ECONFIG; /* refused: the credentials are wrong */
		wb_fail(msg, msglen, WB_ECONFIG,
			"LWA refused the credentials: HTTP %ld %s", status,
			sub);
		break;
	}
	curl_slist_free_all(hd);
	explicit_bzero(form, strlen(form));
	free(form);
	return rc;
}

/* ---- SP-API GET with the retry rules --------------------------------------- */

static void bucket_init(struct bucket *b, double rate, double burst)
{
	*b = (struct bucket){rate, burst, burst, wb_mono_us()};
}

static void bucket_refill(struct bucket *b)
{
	int64_t now = wb_mono_us();
	b->tokens += (double)(now - b->at_us) / 1e6 * b->rate;
	if (b->tokens > b->burst)
		b->tokens = b->burst;
	b->at_us = now;
}

/* Waits until the operation may send a request, and takes its token.
 * false if stopped while waiting. */
static bool bucket_take(struct poller *pl, struct bucket *b, const char *op)
{
	bucket_refill(b);
	if (b->tokens < 1) {
		int64_t ms = (int64_t)((1 - b->tokens) / b->rate * 1000) + 1;
		wb_log(ms >= 1000 ? WB_LOG_INFO : WB_LOG_DEBUG, "amazon_pace",
		       "op=%s wait_ms=%" PRId64 " rate=%g", op, ms, b->rate);
		if (!pause_ms(pl, ms))
			return false;
		bucket_refill(b);
	}
	b->tokens -= 1;
	return true;
}

/* The rate of the answer's x-amzn-RateLimit-Limit, if it has a usable
 * one, becomes the bucket's from now on. */
static void bucket_rate(struct poller *pl, struct bucket *b)
{
	if (!pl->rate_limit[0])
		return;
	char *end;
	double r = strtod(pl->rate_limit, &end);
	if (end == pl->rate_limit || !(r >= RATE_MIN && r <= RATE_MAX))
		return;
	bucket_refill(b);
	b->rate = r;
}

/* How long a 429 asks us to wait. */
static int64_t throttle_ms(struct poller *pl, const struct bucket *b)
{
	char *end;
	int64_t ms = -1;
	if (pl->retry_after[0]) {
		errno = 0;
		long s = strtol(pl->retry_after, &end, 10);
		if (end != pl->retry_after && !*end && errno == 0 && s >= 0) {
			ms = s * 1000;
		} else {
			time_t when = curl_getdate(pl->retry_after, NULL);
			if (when > 0)
				ms = ((int64_t)when - time(NULL)) * 1000;
			if (ms < 0 && when > 0)
				ms = 0;
		}
	}
	if (ms < 0)
		ms = (int64_t)(1000.0 / b->rate + 0.5);
	if (ms > pl->backoff_max_ms)
		ms = pl->backoff_max_ms;
	return ms;
}

/* GET api_url + path_query; on success *out is the parsed answer. A 4xx
 * other than 401/403/429 is WB_ENOTFOUND (404) or WB_EHTTP, not retried. */
static wb_err sp_get(struct poller *pl, const char *op, const char *pq,
		     struct bucket *bk, json_t **out, char *msg, size_t msglen)
{
	char url[8192];
	snprintf(url, sizeof(url), "%s%s", pl->api_url, pq);
	bool refreshed = false;
	wb_err rc = WB_EHTTP;
	*out = NULL;
	for (int attempt = 1; attempt <= pl->max_attempts; attempt++) {
		/* the pace first: the token must not age while we wait */
		if (stopped(pl) || !bucket_take(pl, bk, op))
			return wb_fail(msg, msglen, WB_ETIMEOUT, "stopped");
		if (!pl->token || wb_mono_us() >= pl->token_renew_us) {
			if ((rc = lwa_refresh(pl, msg, msglen)))
				return rc;
		}
		char tokhdr[4096];
		snprintf(tokhdr, sizeof(tokhdr), "x-amz-access-token: %s",
			 pl->token);
		struct curl_slist *hd = curl_slist_append(NULL, tokhdr);
		explicit_bzero(tokhdr, sizeof(tokhdr));
		hd = curl_slist_append(hd, "Accept: application/json");
		long status;
		char sub[300];
		rc = http(pl, url, NULL, hd, &status, sub, sizeof(sub));
		curl_slist_free_all(hd);
		if (rc == WB_OK)
			bucket_rate(pl, bk);
		int64_t wait = -1;
		if (rc == WB_ETOOBIG)
			return wb_fail(msg, msglen, rc, "%s: %s", op, sub);
		if (rc) {
			rc = wb_fail(msg, msglen, rc, "%s: %s", op, sub);
			wait = backoff_ms(pl, attempt);
		} else if (status >= 200 && status < 300) {
			json_error_t je;
			json_t *j = json_loadb((const char *)pl->body.data,
					       pl->body.len,
					       JSON_REJECT_DUPLICATES, &je);
			if (j && json_is_object(json_object_get(j, "payload"))) {
				*out = j;
				return WB_OK;
			}
			rc = wb_fail(msg, msglen, WB_EPARSE,
				     "%s: HTTP %ld with %s", op, status,
				     j ? "no \"payload\" object"
				       : "broken or truncated JSON");
			json_decref(j);
			wait = backoff_ms(pl, attempt);
		} else if ((status == 401 || status == 403) && !refreshed) {
			/* the token may have been revoked or expired early */
			refreshed = true;
			free(pl->token);
			pl->token = NULL;
			rc = wb_fail(msg, msglen, WB_EHTTP, "%s: HTTP %ld", op,
				     status);
			wait = 0;
		} else if (status == 429) {
			wait = throttle_ms(pl, bk);
			/* Amazon's bucket is empty, whatever ours says: ours
			 * has the retry's token when the wait is over, and
			 * nothing more */
			bucket_refill(bk);
			bk->tokens = 1 - (double)wait / 1000 * bk->rate;
			rc = wb_fail(msg, msglen, WB_EHTTP,
				     "%s: HTTP 429 (throttled)", op);
		} else if (status >= 500) {
			sp_error(&pl->body, sub, sizeof(sub));
			rc = wb_fail(msg, msglen, WB_EHTTP, "%s: HTTP %ld %s",
				     op, status, sub);
			wait = backoff_ms(pl, attempt);
		} else {
			sp_error(&pl->body, sub, sizeof(sub));
			return wb_fail(msg, msglen,
				       status == 404 ? WB_ENOTFOUND : WB_EHTTP,
				       "%s: HTTP %ld %s", op, status, sub);
		}
		if (attempt == pl->max_attempts)
			break;
		pl->st.retries++;
		wb_log(WB_LOG_WARN, "amazon_retry",
		       "op=%s attempt=%d wait_ms=%" PRId64 " error=%s", op,
		       attempt, wait, wb_log_q(msg));
		if (wait > 0 && !pause_ms(pl, wait))
			return wb_fail(msg, msglen, WB_ETIMEOUT, "stopped");
	}
	return rc;
}

/* ---- one pass --------------------------------------------------------------- */

/* Appends ?name=value or &name=value (value URL-encoded) to a path. */
static void query_add(wb_buf *q, CURL *h, const char *name, const char *v)
{
	char *e = curl_easy_escape(h, v, 0);
	wb_buf_putc(q, memchr(q->data, '?', q->len) ? '&' : '?');
	wb_buf_append(q, name, strlen(name));
	wb_buf_putc(q, '=');
	wb_buf_append(q, e, strlen(e));
	curl_free(e);
}

/* Every item of the order (all pages). NULL with msg on failure; *permanent
 * says whether trying again later cannot help. */
static json_t *fetch_items(struct poller *pl, const char *order_id,
			   bool *permanent, char *msg, size_t msglen)
{
	json_t *all = json_array();
	char *next = NULL;
	*permanent = false;
	for (int page = 0; page < MAX_ITEM_PAGES; page++) {
		wb_buf q;
		wb_buf_init(&q);
		char *eid = curl_easy_escape(pl->curl, order_id, 0);
		const char *parts[] = {"/orders/v0/orders/", eid, "/orderItems"};
		for (int k = 0; k < 3; k++)
			wb_buf_append(&q, parts[k], strlen(parts[k]));
		curl_free(eid);
		if (next)
			query_add(&q, pl->curl, "NextToken", next);
		wb_buf_putc(&q, '\0');
		json_t *ans;
		wb_err rc = sp_get(pl, "getOrderItems", (const char *)q.data,
				   &pl->items, &ans, msg, msglen);
		wb_buf_finish(&q);
		free(next);
		next = NULL;
		if (rc) {
			*permanent = rc == WB_ENOTFOUND || rc == WB_EHTTP ||
				     rc == WB_ETOOBIG;
			/* 401/403 twice or 429/5xx to the end are not */
			if (strstr(msg, "HTTP 429") || strstr(msg, "HTTP 5") ||
			    strstr(msg, "HTTP 401") || strstr(msg, "HTTP 403"))
				*permanent = false;
			json_decref(all);
			return NULL;
		}
		json_t *pay = json_object_get(ans, "payload");
		json_t *items = json_object_get(pay, "OrderItems");
		if (!json_is_array(items)) {
			json_decref(ans);
			json_decref(all);
			*permanent = true;
			wb_fail(msg, msglen, WB_ESCHEMA,
				"getOrderItems: payload.OrderItems is not an "
				"array");
			return NULL;
		}
		json_array_extend(all, items);
		const char *nt = json_string_value(
			json_object_get(pay, "NextToken"));
		if (nt && *nt)
			next = wb_xstrdup(nt);
		json_decref(ans);
		if (!next)
			return all;
	}
	free(next);
	json_decref(all);
	*permanent = true;
	wb_fail(msg, msglen, WB_ETOOBIG, "getOrderItems: more than %d pages",
		MAX_ITEM_PAGES);
	return NULL;
}

static wb_err send_dlq(struct poller *pl, const char *order_id,
		       const json_t *order, const json_t *items,
		       const char *why)
{
	json_t *rec = json_pack("{s:O,s:O}", "order", order, "items",
				items ? items : json_null());
	char *value = json_dumps(rec, JSON_COMPACT);
	json_decref(rec);
	char key[128], msg[512];
	snprintf(key, sizeof(key), "amazon:%.100s", order_id ? order_id : "?");
	wb_err rc = wb_ingest_producer_send_dlq(
		pl->prod, pl->dlq, key, strlen(key), value,
		value ? strlen(value) : 0, why,
		"waybill-ingest amazon-poll getOrders", msg, sizeof(msg));
	free(value);
	if (rc) {
		wb_log(WB_LOG_ERROR, "dlq_failed", "order=%s error=%s",
		       wb_log_q(key), wb_log_q(msg));
		return rc;
	}
	pl->st.dlq++;
	wb_log(WB_LOG_WARN, "order_to_dlq", "order=%s topic=%s reason=%s",
	       wb_log_q(key), wb_log_q(pl->dlq), wb_log_q(why));
	return WB_OK;
}

/* One order: items, mapping, events; DLQ for what cannot be mapped. */
static wb_err handle_order(struct poller *pl, const json_t *order,
			   int64_t now, wb_buf *buf)
{
	char msg[1024];
	const char *oid = json_string_value(
		json_object_get(order, "AmazonOrderId"));
	pl->st.orders++;
	json_t *items = NULL;
	char items_why[1024] = "";
	if (oid && *oid) {
		bool permanent;
		items = fetch_items(pl, oid, &permanent, msg, sizeof(msg));
		if (!items && !permanent)
			return WB_EHTTP; /* the pass fails; cursor stays */
		if (!items)
			snprintf(items_why, sizeof(items_why), "%s", msg);
	}
	json_t *events = json_array(), *problems = json_array();
	struct wb_amazon_map_opts opts = {pl->merchant, SOURCE, now};
	wb_err rc = wb_amazon_map_order(order, items, &opts, events, problems,
					msg, sizeof(msg));
	if (rc) {
		rc = send_dlq(pl, oid, order, items, msg);
		goto out;
	}
	size_t i;
	json_t *ev;
	json_array_foreach(events, i, ev) {
		struct wb_ingest_record rec;
		char sub[512];
		rc = wb_ingest_event_json(ev, SOURCE, now, buf, &rec, sub,
					  sizeof(sub));
		if (rc == WB_OK)
			rc = wb_ingest_producer_send(pl->prod, &rec, sub,
						     sizeof(sub));
		if (rc == WB_EKAFKA) {
			wb_log(WB_LOG_ERROR, "producer_failed", "error=%s",
			       wb_log_q(sub));
			goto out;
		}
		if (rc) {
			json_array_append_new(problems, json_string(sub));
			rc = WB_OK;
			continue;
		}
		pl->st.events++;
	}
	if (items_why[0])
		json_array_append_new(problems, json_string(items_why));
	if (json_array_size(problems)) {
		char why[2048] = "";
		json_array_foreach(problems, i, ev) {
			size_t n = strlen(why);
			snprintf(why + n, sizeof(why) - n, "%s%s", i ? "; " : "",
				 json_string_value(ev));
		}
		rc = send_dlq(pl, oid, order, items, why);
	}
out:
	json_decref(events);
	json_decref(problems);
	json_decref(items);
	return rc;
}

/* The cursor: where the last completed pass ended. */
static wb_err cursor_load(struct poller *pl, int64_t *after, char *msg,
			  size_t msglen)
{
	char text[256];
	bool found;
	wb_err rc = wb_ingest_state_load(pl->state_dir, pl->state_name, text,
					 sizeof(text), &found, msg, msglen);
	if (rc)
		return rc;
	if (found) {
		if (!wb_parse_time_ms(text, after) || *after < 0)
			return wb_fail(msg, msglen, WB_ECORRUPT,
				       "%s/%s: '%s' is not a time; remove the "
				       "file to start from ingest.amazon.start",
				       pl->state_dir, pl->state_name, text);
		return WB_OK;
	}
	const char *start = wb_config_get(pl->cfg, "ingest.amazon.start");
	if (start && *start) {
		if (!wb_parse_time_ms(start, after) || *after < 0)
			return wb_fail(msg, msglen, WB_ECONFIG,
				       "ingest.amazon.start: '%s' is not an "
				       "RFC 3339 time or epoch ms",
				       start);
		return WB_OK;
	}
	*after = wb_now_ms() - 24 * 3600 * 1000LL;
	return WB_OK;
}

/* A pass over [cursor, now - 2 min]; WB_OK when it completed and Kafka
 * acknowledged everything (and the cursor moved). */
static wb_err pass(struct poller *pl)
{
	char msg[1024];
	int64_t after;
	wb_err rc = cursor_load(pl, &after, msg, sizeof(msg));
	if (rc) {
		wb_log(WB_LOG_ERROR, "cursor_failed", "error=%s",
		       wb_log_q(msg));
		return rc;
	}
	int64_t now = wb_now_ms();
	int64_t before = (now - LAG_MS) / 1000 * 1000;
	char a[32], b[32];
	iso_time(after, a);
	iso_time(before, b);
	if (before <= after) {
		wb_log(WB_LOG_INFO, "poll_skipped",
		       "last_updated_after=%s reason=\"cursor within 2 "
		       "minutes of now\"",
		       a);
		return WB_OK;
	}
	struct wb_ingest_counts c0;
	wb_ingest_producer_counts(pl->prod, &c0);
	uint64_t orders0 = pl->st.orders, events0 = pl->st.events,
		 dlq0 = pl->st.dlq;
	wb_log(WB_LOG_INFO, "poll_start",
	       "last_updated_after=%s last_updated_before=%s", a, b);
	int64_t covered = before; /* lowered if Amazon says so */
	char *next = NULL;
	wb_buf buf;
	wb_buf_init(&buf);
	for (;;) {
		wb_buf q;
		wb_buf_init(&q);
		wb_buf_append(&q, "/orders/v0/orders", 17);
		query_add(&q, pl->curl, "MarketplaceIds", pl->marketplaces);
		query_add(&q, pl->curl, "LastUpdatedAfter", a);
		query_add(&q, pl->curl, "LastUpdatedBefore", b);
		if (next)
			query_add(&q, pl->curl, "NextToken", next);
		wb_buf_putc(&q, '\0');
		json_t *ans;
		rc = sp_get(pl, "getOrders", (const char *)q.data, &pl->orders,
			    &ans, msg, sizeof(msg));
		wb_buf_finish(&q);
		free(next);
		next = NULL;
		if (rc) {
			wb_log(WB_LOG_ERROR, "poll_failed",
			       "error=%s hint=\"the cursor stays; the next "
			       "poll repeats the window\"",
			       wb_log_q(msg));
			break;
		}
		pl->st.pages++;
		json_t *pay = json_object_get(ans, "payload");
		json_t *orders = json_object_get(pay, "Orders");
		int64_t bound;
		if (wb_amazon_parse_time(json_string_value(json_object_get(
						 pay, "LastUpdatedBefore")),
					 &bound) == WB_OK &&
		    bound > after && bound < covered)
			covered = bound;
		if (!json_is_array(orders)) {
			rc = wb_fail(msg, sizeof(msg), WB_ESCHEMA,
				     "getOrders: payload.Orders is not an "
				     "array");
			wb_log(WB_LOG_ERROR, "poll_failed", "error=%s",
			       wb_log_q(msg));
			json_decref(ans);
			break;
		}
		size_t i;
		json_t *order;
		json_array_foreach(orders, i, order) {
			if (stopped(pl)) {
				rc = WB_ETIMEOUT;
				break;
			}
			if ((rc = handle_order(pl, order, now, &buf)))
				break;
		}
		const char *nt = json_string_value(
			json_object_get(pay, "NextToken"));
		if (!rc && nt && *nt)
			next = wb_xstrdup(nt);
		json_decref(ans);
		if (rc) {
			wb_log(WB_LOG_ERROR, "poll_failed",
			       "error=\"%s\" hint=\"the cursor stays\"",
			       rc == WB_ETIMEOUT ? "stopped"
						 : "an order could not be read");
			break;
		}
		if (!next)
			break;
	}
	wb_buf_finish(&buf);
	free(next);

	/* Everything of the pass must be in Kafka before the cursor moves. */
	int64_t flush_ms = wb_config_get_int(pl->cfg, "ingest.flush.timeout.ms");
	wb_err frc = wb_ingest_producer_flush(pl->prod, (int)flush_ms, msg,
					      sizeof(msg));
	struct wb_ingest_counts c1;
	wb_ingest_producer_counts(pl->prod, &c1);
	bool all_acked = frc == WB_OK && c1.failed == c0.failed &&
			 c1.acked - c0.acked == c1.sent - c0.sent;
	if (frc)
		wb_log(WB_LOG_ERROR, "flush_failed", "error=%s", wb_log_q(msg));
	if (rc == WB_OK && !all_acked)
		rc = WB_EKAFKA;
	char cv[32];
	iso_time(covered, cv);
	if (rc == WB_OK) {
		rc = wb_ingest_state_save(pl->state_dir, pl->state_name, cv,
					  msg, sizeof(msg));
		if (rc)
			wb_log(WB_LOG_ERROR, "cursor_failed", "error=%s",
			       wb_log_q(msg));
	}
	wb_log(rc ? WB_LOG_WARN : WB_LOG_INFO, "poll_done",
	       "orders=%" PRIu64 " events=%" PRIu64 " dlq=%" PRIu64
	       " acked=%" PRIu64 " failed=%" PRIu64 " cursor=%s",
	       pl->st.orders - orders0, pl->st.events - events0,
	       pl->st.dlq - dlq0, c1.acked - c0.acked, c1.failed - c0.failed,
	       rc ? a : cv);
	return rc;
}

/* ---- the mode -------------------------------------------------------------- */

static int usage_error(const char *why)
{
	fprintf(stderr, "waybill-ingest amazon-poll: %s\nusage: "
			"waybill-ingest amazon-poll [--once] [OPTIONS] (see "
			"--help)\n", why);
	return WB_INGEST_EXIT_USAGE;
}

static bool url_ok(const char *u)
{
	return u && (strncmp(u, "https://", 8) == 0 ||
		     strncmp(u, "http://", 7) == 0);
}

int wb_ingest_amazon_poll_main(const wb_config *cfg, int nargs, char **args,
			       volatile sig_atomic_t *stop)
{
	(void)args;
	if (nargs != 0)
		return usage_error("takes no arguments");
	struct poller pl = {.cfg = cfg, .stop = stop};
	bucket_init(&pl.orders, RATE_GET_ORDERS, BURST_GET_ORDERS);
	bucket_init(&pl.items, RATE_GET_ORDER_ITEMS, BURST_GET_ORDER_ITEMS);
	pl.api_url = wb_config_get(cfg, "ingest.amazon.api.url");
	pl.lwa_url = wb_config_get(cfg, "ingest.amazon.lwa.url");
	pl.client_id = wb_config_get(cfg, "ingest.amazon.client.id");
	pl.client_secret = wb_config_get(cfg, "ingest.amazon.client.secret");
	pl.refresh_token = wb_config_get(cfg, "ingest.amazon.refresh.token");
	pl.marketplaces = wb_config_get(cfg, "ingest.amazon.marketplace.ids");
	pl.merchant = wb_config_get(cfg, "ingest.amazon.merchant");
	pl.state_dir = wb_config_get(cfg, "ingest.state.dir");
	pl.timeout_ms = wb_config_get_int(cfg, "ingest.amazon.http.timeout.ms");
	pl.max_attempts = wb_config_get_int(cfg, "ingest.amazon.max.attempts");
	pl.backoff_max_ms =
		wb_config_get_int(cfg, "ingest.amazon.backoff.max.ms");
	pl.interval_ms =
		wb_config_get_int(cfg, "ingest.amazon.poll.interval.ms");
	bool once = wb_config_get_bool(cfg, "flag.once");
	if (!url_ok(pl.api_url) || !url_ok(pl.lwa_url))
		return usage_error("ingest.amazon.api.url and "
				   "ingest.amazon.lwa.url must be http(s) "
				   "URLs");
	if (!pl.client_id || !*pl.client_id || !pl.client_secret ||
	    !*pl.client_secret || !pl.refresh_token || !*pl.refresh_token)
		return usage_error(
			"credentials missing: set ingest.amazon.client.id, "
			"WAYBILL_AMAZON_CLIENT_SECRET and "
			"WAYBILL_AMAZON_REFRESH_TOKEN (or the keys in the "
			"--config file)");
	if (!pl.marketplaces || !*pl.marketplaces)
		return usage_error("ingest.amazon.marketplace.ids is empty");
	if (!pl.state_dir || !*pl.state_dir)
		return usage_error("ingest.state.dir is empty");
	if (pl.timeout_ms < 1 || pl.max_attempts < 1 ||
	    pl.max_attempts > 100 || pl.backoff_max_ms < 1 ||
	    pl.interval_ms < 0)
		return usage_error("ingest.amazon.http.timeout.ms, "
				   "max.attempts (1-100), backoff.max.ms and "
				   "poll.interval.ms must be positive numbers");
	int64_t flush_ms = wb_config_get_int(cfg, "ingest.flush.timeout.ms");
	if (flush_ms < 0 || flush_ms > INT32_MAX)
		return usage_error("ingest.flush.timeout.ms must be a "
				   "non-negative number of ms");
	/* merchant: configured, else the first marketplace */
	char merchant[128];
	if (!pl.merchant || !*pl.merchant) {
		snprintf(merchant, sizeof(merchant), "%.*s",
			 (int)strcspn(pl.marketplaces, ","), pl.marketplaces);
		pl.merchant = merchant;
	}
	/* one cursor per merchant and marketplace set */
	snprintf(pl.state_name, sizeof(pl.state_name), "amazon-%016" PRIx64,
		 wb_crc64_avro(pl.marketplaces, strlen(pl.marketplaces)) ^
			 wb_crc64_avro(pl.merchant, strlen(pl.merchant)));

	char msg[512];
	wb_kafka_topic(cfg, "events", pl.topic, sizeof(pl.topic));
	wb_kafka_topic(cfg, "dlq", pl.dlq, sizeof(pl.dlq));
	wb_err err;
	pl.prod = wb_ingest_producer_create(cfg, pl.topic, &err, msg,
					    sizeof(msg));
	if (!pl.prod) {
		fprintf(stderr, "waybill-ingest amazon-poll: %s\n", msg);
		return err == WB_ECONFIG ? WB_INGEST_EXIT_USAGE
					 : WB_INGEST_EXIT_FAIL;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	pl.curl = curl_easy_init();
	curl_easy_setopt(pl.curl, CURLOPT_ERRORBUFFER, pl.errbuf);
	curl_easy_setopt(pl.curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(pl.curl, CURLOPT_TIMEOUT_MS, (long)pl.timeout_ms);
	curl_easy_setopt(pl.curl, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(pl.timeout_ms < 10000 ? pl.timeout_ms : 10000));
	curl_easy_setopt(pl.curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(pl.curl, CURLOPT_USERAGENT,
			 "waybill/0.1 (Language=C; Platform=Linux)");
	curl_easy_setopt(pl.curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(pl.curl, CURLOPT_WRITEDATA, &pl.body);
	curl_easy_setopt(pl.curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(pl.curl, CURLOPT_HEADERDATA, &pl);
	curl_easy_setopt(pl.curl, CURLOPT_ACCEPT_ENCODING, "");
	wb_buf_init(&pl.body);
	srand((unsigned)wb_mono_us());
	wb_log(WB_LOG_INFO, "amazon_poll_start",
	       "api=%s marketplaces=%s merchant=%s state=%s/%s once=%s",
	       wb_log_q(pl.api_url), wb_log_q(pl.marketplaces),
	       wb_log_q(pl.merchant), wb_log_q(pl.state_dir), pl.state_name,
	       once ? "true" : "false");

	int rc_exit = WB_INGEST_EXIT_OK;
	for (;;) {
		int64_t t0 = wb_mono_us();
		wb_err rc = pass(&pl);
		if (once) {
			rc_exit = rc == WB_ECONFIG ? WB_INGEST_EXIT_USAGE
				  : rc	       ? WB_INGEST_EXIT_FAIL
					       : WB_INGEST_EXIT_OK;
			break;
		}
		if (rc == WB_ECONFIG) {
			rc_exit = WB_INGEST_EXIT_USAGE;
			break;
		}
		int64_t spent = (wb_mono_us() - t0) / 1000;
		if (stopped(&pl) ||
		    !pause_ms(&pl, pl.interval_ms > spent ? pl.interval_ms - spent
							  : 0))
			break;
	}
	if (stopped(&pl))
		wb_log(WB_LOG_WARN, "interrupted",
		       "hint=\"the cursor moved only for completed polls\"");
	struct wb_ingest_counts c;
	wb_ingest_producer_counts(pl.prod, &c);
	printf("orders=%" PRIu64 " events=%" PRIu64 " dlq=%" PRIu64
	       " acked=%" PRIu64 " failed=%" PRIu64 "\n",
	       pl.st.orders, pl.st.events, pl.st.dlq, c.acked, c.failed);
	fflush(stdout);
	wb_log(WB_LOG_INFO, "amazon_poll_done",
	       "pages=%" PRIu64 " orders=%" PRIu64 " events=%" PRIu64
	       " dlq=%" PRIu64 " requests=%" PRIu64 " retries=%" PRIu64,
	       pl.st.pages, pl.st.orders, pl.st.events, pl.st.dlq,
	       pl.st.requests, pl.st.retries);
	if (pl.token) {
		explicit_bzero(pl.token, strlen(pl.token));
		free(pl.token);
	}
	wb_buf_finish(&pl.body);
	curl_easy_cleanup(pl.curl);
	curl_global_cleanup();
	wb_ingest_producer_destroy(pl.prod);
	return rc_exit;
}
