/*
 * ingest_shopify_poll.c — `waybill-ingest shopify-poll [--once]`:
 * reconciliation and backfill through the Shopify GraphQL Admin API.
 *
 * Webhooks can be lost (an outage longer than Shopify's retries, a
 * subscription created late), so this mode reads the orders updated since
 * a durable cursor, oldest first (sortKey UPDATED_AT, query
 * "updated_at:>='<cursor>'"), a page at a time (first/after/endCursor),
 * and emits per order a ChannelSnapshotObserved plus every event that can
 * be derived from its state. Their event_ids are the ones the webhooks
 * give for the same facts (shopify_map.c), so the ledger drops what it
 * already has and keeps what a lost webhook would have brought.
 *
 * The cursor (ingest.state.dir/shopify-poll-<shop>: the updated_at reached
 * and the ids of the orders at exactly that time, so that the next pass,
 * which asks for ">=" to miss nothing updated in the same second, skips
 * them) moves only after Kafka acknowledged every event of the page; it is
 * written atomically (ingest_state.c). A crash costs a re-read, which the
 * ledger deduplicates.
 *
 * HTTP: 429 waits for Retry-After; 5xx, timeouts and broken connections
 * are retried with capped exponential backoff and jitter; a THROTTLED
 * GraphQL error or a cost bucket (extensions.cost.throttleStatus) too empty
 * for the next page waits (needed - available) / restoreRate seconds; 401
 * and 403 stop at once with a clear error (a retry cannot fix a token);
 * a truncated or malformed body is retried and, if it persists, fails the
 * pass without moving the cursor.
 */
#include "wb_ingest.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SOURCE "shopify-poll"
/* Orders of the cursor's own updated_at remembered (ids of <= 20 digits:
 * the state line stays far under its 4 KiB). */
#define MAX_SEEN 100
/* Throttle waits per page before the pass gives up. */
#define MAX_THROTTLE_WAITS 30

/* The query. Per order it costs roughly (2 + 30x3) lines + 5x4
 * fulfillments + 5x3 refunds + 7 returns + ~25 order fields ≈ 160 points;
 * Shopify refuses a single query over 1000 (MAX_COST_EXCEEDED), hence the
 * default page of 5 orders. Fulfillment, refund and
 * return lines are left out to stay under that: a repaired
 * FulfillmentCreated/RefundIssued carries no lines (README "Channels"). */
static const char QUERY[] =
	"query WaybillOrders($first: Int!, $after: String, $query: String) {"
	" orders(first: $first, after: $after, query: $query,"
	" sortKey: UPDATED_AT) {"
	" pageInfo { hasNextPage endCursor }"
	" nodes { id legacyResourceId name email phone note createdAt"
	" updatedAt processedAt cancelledAt cancelReason displayFinancialStatus"
	" displayFulfillmentStatus currencyCode"
	" subtotalPriceSet { ...M } totalShippingPriceSet { ...M }"
	" totalTaxSet { ...M } totalDiscountsSet { ...M } totalPriceSet { ...M }"
	" currentSubtotalPriceSet { ...M } currentShippingPriceSet { ...M }"
	" currentTotalTaxSet { ...M } currentTotalDiscountsSet { ...M }"
	" currentTotalPriceSet { ...M }"
	" shippingAddress { name firstName lastName company address1 address2"
	" city province zip countryCodeV2 phone }"
	" lineItems(first: 30) { nodes { id sku title quantity currentQuantity"
	" originalUnitPriceSet { ...M } } }"
	" fulfillments(first: 5) { id legacyResourceId status displayStatus"
	" createdAt updatedAt estimatedDeliveryAt"
	" trackingInfo(first: 3) { company number url } }"
	" refunds(first: 5) { id legacyResourceId createdAt processedAt note"
	" totalRefundedSet { ...M } }"
	" returns(first: 5) { nodes { id status name } } } } }"
	" fragment M on MoneyBag { shopMoney { amount currencyCode } }";

struct cursor {
	bool set;
	int64_t ms;                 /* updated_at reached */
	char seen[MAX_SEEN][24];    /* orders at exactly ms */
	int nseen;
};

struct poller {
	const wb_config *cfg;
	volatile sig_atomic_t *stop;
	char url[2048];
	char shop[256];
	char state_name[128];
	const char *state_dir;
	const char *source;
	int64_t page_size, timeout_ms, max_attempts, backoff_max_ms;
	int64_t interval_ms, max_resp, flush_ms;
	CURL *curl;
	struct curl_slist *headers;
	wb_ingest_producer *prod;
	char dlq_topic[256];
	unsigned seed;
	/* this pass */
	uint64_t pages, orders, events, dlq, skipped, retries;
};

/* What one HTTP exchange gave. */
struct http_result {
	long status;
	wb_buf body;
	bool too_big;
	double retry_after; /* seconds, -1 if absent */
	char curl_error[CURL_ERROR_SIZE];
};

static int usage_error(const char *why)
{
	fprintf(stderr, "waybill-ingest shopify-poll: %s\n", why);
	return WB_INGEST_EXIT_USAGE;
}

/* Sleeps ms, waking every 100 ms to see a stop; false if stopped. */
static bool nap(struct poller *p, int64_t ms)
{
	while (ms > 0) {
		if (p->stop && *p->stop)
			return false;
		int64_t step = ms < 100 ? ms : 100;
		struct timespec ts = {0, (long)step * 1000000L};
		nanosleep(&ts, NULL);
		ms -= step;
	}
	return !(p->stop && *p->stop);
}

/* Capped exponential backoff with full jitter: 250 ms * 2^attempt. */
static int64_t backoff_ms(struct poller *p, int attempt)
{
	int64_t cap = 250LL << (attempt < 16 ? attempt : 16);
	if (cap > p->backoff_max_ms)
		cap = p->backoff_max_ms;
	return cap / 2 + (int64_t)(rand_r(&p->seed) % (unsigned)(cap / 2 + 1));
}

/* ---- cursor --------------------------------------------------------------- */

static wb_err cursor_load(struct poller *p, struct cursor *c, char *msg,
			  size_t msglen)
{
	memset(c, 0, sizeof(*c));
	char line[4096];
	bool found;
	wb_err rc = wb_ingest_state_load(p->state_dir, p->state_name, line,
					 sizeof(line), &found, msg, msglen);
	if (rc)
		return rc;
	if (!found) {
		const char *start = wb_config_get(p->cfg, "ingest.shopify.start");
		if (start && *start) {
			if (!wb_parse_time_ms(start, &c->ms) || c->ms < 0)
				return wb_fail(msg, msglen, WB_ECONFIG,
					       "ingest.shopify.start: '%s' is "
					       "not a time (RFC 3339 or epoch "
					       "ms)",
					       start);
			c->set = true;
		}
		return WB_OK;
	}
	json_t *j = json_loads(line, 0, NULL);
	const char *at = json_string_value(json_object_get(j, "updated_at"));
	json_t *seen = json_object_get(j, "seen");
	if (!at || !wb_parse_time_ms(at, &c->ms) || !json_is_array(seen)) {
		json_decref(j);
		return wb_fail(msg, msglen, WB_ECORRUPT,
			       "%s/%s: not a shopify-poll cursor; remove it to "
			       "start over from ingest.shopify.start",
			       p->state_dir, p->state_name);
	}
	c->set = true;
	size_t i;
	json_t *id;
	json_array_foreach(seen, i, id) {
		const char *s = json_string_value(id);
		if (s && strlen(s) < sizeof(c->seen[0]) && c->nseen < MAX_SEEN)
			memcpy(c->seen[c->nseen++], s, strlen(s) + 1);
	}
	json_decref(j);
	return WB_OK;
}

static wb_err cursor_save(struct poller *p, const struct cursor *c,
			  char *msg, size_t msglen)
{
	char at[32];
	wb_format_time_ms(c->ms, at);
	json_t *seen = json_array();
	for (int i = 0; i < c->nseen; i++)
		json_array_append_new(seen, json_string(c->seen[i]));
	json_t *j = json_pack("{s:s,s:o}", "updated_at", at, "seen", seen);
	char *line = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	wb_err rc = wb_ingest_state_save(p->state_dir, p->state_name, line, msg,
					 msglen);
	free(line);
	return rc;
}

static bool cursor_has(const struct cursor *c, const char *id)
{
	for (int i = 0; i < c->nseen; i++)
		if (strcmp(c->seen[i], id) == 0)
			return true;
	return false;
}

/* Moves the cursor over one order (pages come oldest first). */
static void cursor_advance(struct cursor *c, int64_t updated, const char *id)
{
	if (!c->set || updated > c->ms) {
		c->set = true;
		c->ms = updated;
		c->nseen = 0;
	}
	if (updated == c->ms && !cursor_has(c, id) && c->nseen < MAX_SEEN &&
	    strlen(id) < sizeof(c->seen[0]))
		memcpy(c->seen[c->nseen++], id, strlen(id) + 1);
}

/* ---- HTTP ------------------------------------------------------------------ */

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
	struct http_result *r = ud;
	size_t len = size * n;
	static const char name[] = "retry-after:";
	if (len > sizeof(name) && strncasecmp(data, name, sizeof(name) - 1) == 0) {
		char v[64];
		size_t vl = len - (sizeof(name) - 1);
		if (vl >= sizeof(v))
			vl = sizeof(v) - 1;
		memcpy(v, data + sizeof(name) - 1, vl);
		v[vl] = '\0';
		char *end;
		double secs = strtod(v, &end);
		/* seconds (Shopify sends "2.0"); an HTTP-date is not worth
		 * parsing: backoff covers it */
		if (end != v && isfinite(secs) && secs >= 0)
			r->retry_after = secs;
	}
	return len;
}

struct body_sink {
	struct http_result *r;
	size_t max;
};

static size_t on_body_capped(char *data, size_t size, size_t n, void *ud)
{
	struct body_sink *sink = ud;
	size_t len = size * n;
	if (sink->r->body.len + len > sink->max) {
		sink->r->too_big = true;
		return 0; /* makes curl fail with CURLE_WRITE_ERROR */
	}
	wb_buf_append(&sink->r->body, data, len);
	return len;
}

/* One POST of a GraphQL request; the result is in *r (status 0 on a
 * transport error, with curl_error). */
static void http_post(struct poller *p, const char *json, struct http_result *r)
{
	wb_buf_reset(&r->body);
	r->status = 0;
	r->too_big = false;
	r->retry_after = -1;
	r->curl_error[0] = '\0';
	struct body_sink sink = {r, (size_t)p->max_resp};
	CURL *c = p->curl;
	curl_easy_setopt(c, CURLOPT_URL, p->url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, p->headers);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(json));
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body_capped);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->curl_error);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)p->timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(p->timeout_ms < 10000 ? p->timeout_ms : 10000));
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "waybill-ingest shopify-poll");
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	CURLcode cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		if (r->too_big)
			snprintf(r->curl_error, sizeof(r->curl_error),
				 "response over ingest.shopify.max.response."
				 "bytes (%" PRId64 ")",
				 p->max_resp);
		else if (!r->curl_error[0])
			snprintf(r->curl_error, sizeof(r->curl_error), "%s",
				 curl_easy_strerror(cc));
		return;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
}

/* ---- one page ---------------------------------------------------------------- */

/* The request body for the page after `after` (NULL: the first). */
static char *request_json(struct poller *p, const struct cursor *c,
			  const char *after)
{
	json_t *vars = json_pack("{s:I}", "first", (json_int_t)p->page_size);
	json_object_set_new(vars, "after", after ? json_string(after) : json_null());
	if (c->set) {
		/* Shopify's search compares whole seconds: ask from the second
		 * the cursor is in; what was already read is skipped */
		char at[32], q[64];
		wb_format_time_ms(c->ms - c->ms % 1000, at);
		snprintf(q, sizeof(q), "updated_at:>='%.19sZ'", at);
		json_object_set_new(vars, "query", json_string(q));
	} else {
		json_object_set_new(vars, "query", json_null());
	}
	json_t *req = json_pack("{s:s,s:o}", "query", QUERY, "variables", vars);
	char *s = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	return s;
}

/* Seconds to wait before asking for `need` points again. */
static double bucket_wait(const struct wb_shopify_page *pg, double need)
{
	if (pg->currently_available < 0 || pg->restore_rate <= 0)
		return 1.0;
	double missing = need - pg->currently_available;
	return missing > 0 ? missing / pg->restore_rate : 0;
}

/* Fetches one page, retrying what a retry can fix. WB_OK with *pg
 * parsed; WB_EHTTP for 401/403/4xx (fatal=true), anything else after the
 * attempts ran out; WB_ETIMEOUT if stopped. */
static wb_err fetch_page(struct poller *p, const char *json,
			 struct wb_shopify_page *pg, bool *fatal, char *msg,
			 size_t msglen)
{
	struct http_result r;
	memset(&r, 0, sizeof(r));
	wb_buf_init(&r.body);
	*fatal = false;
	wb_err rc = WB_EHTTP;
	int attempt = 0, throttled = 0;
	for (;;) {
		http_post(p, json, &r);
		char why[512];
		int64_t wait = -1;
		if (r.status == 200) {
			rc = wb_shopify_page_parse((const char *)r.body.data,
						   r.body.len, pg, why,
						   sizeof(why));
			if (rc == WB_OK && !pg->throttled)
				break;
			if (rc == WB_OK) {
				/* THROTTLED: wait for the bucket to refill */
				double need = pg->requested_cost > 0
						      ? pg->requested_cost
						      : 100;
				double secs = bucket_wait(pg, need);
				wait = (int64_t)(secs * 1000) + 100;
				snprintf(why, sizeof(why),
					 "throttled (available %.0f of %.0f "
					 "needed, restoring %.0f/s)",
					 pg->currently_available, need,
					 pg->restore_rate);
				wb_shopify_page_finish(pg);
				if (++throttled > MAX_THROTTLE_WAITS) {
					rc = wb_fail(msg, msglen, WB_EHTTP,
						     "still throttled after %d "
						     "waits",
						     MAX_THROTTLE_WAITS);
					goto out;
				}
				attempt--; /* waiting is not failing */
			} else if (rc == WB_EHTTP) {
				/* a GraphQL error: the query or the scopes */
				*fatal = true;
				rc = wb_fail(msg, msglen, WB_EHTTP,
					     "%s from %s%s", why, p->url,
					     strstr(why, "MAX_COST") ?
					     "; lower ingest.shopify.page.size"
					     : "");
				goto out;
			}
			/* malformed or truncated: perhaps a cut connection */
		} else if (r.status == 401 || r.status == 403) {
			*fatal = true;
			rc = wb_fail(msg, msglen, WB_EHTTP,
				     "HTTP %ld from %s: the access token is %s "
				     "(ingest.shopify.access.token / "
				     "WAYBILL_SHOPIFY_ACCESS_TOKEN; scopes "
				     "read_orders, read_returns)",
				     r.status, p->url,
				     r.status == 401 ? "not valid"
						     : "missing a scope");
			goto out;
		} else if (r.status == 429) {
			wait = r.retry_after >= 0
				       ? (int64_t)(r.retry_after * 1000)
				       : backoff_ms(p, attempt);
			snprintf(why, sizeof(why), "HTTP 429 (Retry-After %s)",
				 r.retry_after >= 0 ? "given" : "absent");
		} else if (r.status >= 500 || r.status == 0) {
			if (r.status)
				snprintf(why, sizeof(why), "HTTP %ld", r.status);
			else
				snprintf(why, sizeof(why), "%s", r.curl_error);
		} else {
			*fatal = true;
			rc = wb_fail(msg, msglen, WB_EHTTP,
				     "HTTP %ld from %s: %.200s", r.status,
				     p->url,
				     r.body.len ? (const char *)r.body.data : "");
			goto out;
		}
		if (++attempt >= p->max_attempts) {
			rc = wb_fail(msg, msglen,
				     rc == WB_EPARSE ? WB_EPARSE : WB_EHTTP,
				     "%s from %s; gave up after %d attempts",
				     why, p->url, attempt);
			goto out;
		}
		if (wait < 0)
			wait = backoff_ms(p, attempt);
		if (wait > p->backoff_max_ms)
			wait = p->backoff_max_ms;
		p->retries++;
		wb_log(WB_LOG_WARN, "shopify_retry",
		       "reason=%s attempt=%d wait_ms=%lld", wb_log_q(why),
		       attempt, (long long)wait);
		if (!nap(p, wait)) {
			rc = wb_fail(msg, msglen, WB_ETIMEOUT, "stopped");
			goto out;
		}
		wb_buf_reset(&r.body);
	}
	rc = WB_OK;
out:
	wb_buf_finish(&r.body);
	return rc;
}

/* An order node Waybill cannot map goes to the DLQ with the reason. */
static wb_err node_to_dlq(struct poller *p, const json_t *node,
			  const char *why, char *msg, size_t msglen)
{
	char *raw = json_dumps(node, JSON_COMPACT);
	const char *id = json_string_value(json_object_get(node, "id"));
	char source[512];
	snprintf(source, sizeof(source), SOURCE " shop=%.255s order=%.100s",
		 p->shop, id ? id : "-");
	wb_log(WB_LOG_WARN, "order_to_dlq", "shop=%s order=%s reason=%s",
	       wb_log_q(p->shop), wb_log_q(id ? id : "-"), wb_log_q(why));
	wb_err rc = wb_ingest_producer_send_dlq(p->prod, p->dlq_topic, id,
						id ? strlen(id) : 0, raw,
						raw ? strlen(raw) : 0, why,
						source, msg, msglen);
	free(raw);
	if (rc == WB_OK)
		p->dlq++;
	return rc;
}

/* Maps and produces one page's orders; the cursor moves over them. */
static wb_err produce_page(struct poller *p, const struct wb_shopify_page *pg,
			   const struct cursor *from, struct cursor *to,
			   char *msg, size_t msglen)
{
	struct wb_shopify_ctx ctx = {.shop = p->shop, .triggered_at = -1,
				     .now_ms = wb_now_ms(), .source = p->source};
	wb_buf buf;
	wb_buf_init(&buf);
	wb_err rc = WB_OK;
	size_t i;
	json_t *node;
	json_array_foreach(pg->nodes, i, node) {
		const char *gid = json_string_value(json_object_get(node, "id"));
		const char *up = json_string_value(json_object_get(node,
								   "updatedAt"));
		const char *slash = gid ? strrchr(gid, '/') : NULL;
		const char *id = slash ? slash + 1 : gid;
		int64_t updated;
		bool timed = up && wb_parse_time_ms(up, &updated);
		p->orders++;
		/* already emitted by the pass that set the cursor. An order
		 * earlier in the cursor's second is read again (the query
		 * starts at the whole second) and deduplicated by the ledger:
		 * it may be one Shopify's search index showed late. */
		if (timed && id && from->set && updated == from->ms &&
		    cursor_has(from, id)) {
			p->skipped++;
			continue;
		}
		char why[512];
		json_t *evs = json_array();
		wb_err mrc = wb_shopify_map_graphql_order(&ctx, node, evs, why,
							  sizeof(why));
		size_t ev_i;
		json_t *ev;
		json_array_foreach(evs, ev_i, ev) {
			if (mrc)
				break;
			struct wb_ingest_record rec;
			char sub[400];
			mrc = wb_ingest_event_json(ev, p->source, ctx.now_ms,
						   &buf, &rec, sub, sizeof(sub));
			/* over ledger.record.max.bytes: as unmappable */
			if (mrc == WB_OK)
				mrc = wb_ingest_producer_check(p->prod, &rec,
							       sub, sizeof(sub));
			if (mrc) {
				snprintf(why, sizeof(why), "event %zu: %s", ev_i,
					 sub);
				break;
			}
			if ((rc = wb_ingest_producer_send(p->prod, &rec, msg,
							  msglen))) {
				json_decref(evs);
				goto out;
			}
			p->events++;
		}
		json_decref(evs);
		if (mrc && (rc = node_to_dlq(p, node, why, msg, msglen)))
			goto out;
		if (timed && id)
			cursor_advance(to, updated, id);
	}
out:
	wb_buf_finish(&buf);
	return rc;
}

/* One pass over everything updated since the cursor. */
static wb_err run_pass(struct poller *p, bool *fatal, char *msg,
		       size_t msglen)
{
	struct cursor cur, next;
	*fatal = false;
	wb_err rc = cursor_load(p, &cur, msg, msglen);
	if (rc) {
		*fatal = true;
		return rc;
	}
	next = cur;
	char after[1024] = "";
	bool first = true;
	double last_cost = -1;
	for (;;) {
		char *json = request_json(p, &cur, first ? NULL : after);
		struct wb_shopify_page pg;
		rc = fetch_page(p, json, &pg, fatal, msg, msglen);
		free(json);
		if (rc)
			return rc;
		p->pages++;
		rc = produce_page(p, &pg, &cur, &next, msg, msglen);
		bool more = pg.has_next;
		if (more)
			memcpy(after, pg.end_cursor, sizeof(after));
		/* the bucket: wait now rather than be throttled next page */
		double need = pg.requested_cost > 0 ? pg.requested_cost : last_cost;
		last_cost = need;
		double secs = need > 0 ? bucket_wait(&pg, need) : 0;
		wb_shopify_page_finish(&pg);
		if (rc)
			return rc;
		/* the cursor moves only over what Kafka has acknowledged */
		struct wb_ingest_counts before, after_c;
		wb_ingest_producer_counts(p->prod, &before);
		rc = wb_ingest_producer_flush(p->prod, (int)p->flush_ms, msg,
					      msglen);
		wb_ingest_producer_counts(p->prod, &after_c);
		if (rc || after_c.failed > before.failed) {
			if (!rc)
				rc = wb_fail(msg, msglen, WB_EKAFKA,
					     "%" PRIu64 " events not "
					     "acknowledged by Kafka",
					     after_c.failed - before.failed);
			return rc;
		}
		if (next.set && (next.ms != cur.ms || next.nseen != cur.nseen ||
				 !cur.set)) {
			if ((rc = cursor_save(p, &next, msg, msglen))) {
				*fatal = true;
				return rc;
			}
		}
		first = false;
		if (!more)
			break;
		if (secs > 0) {
			int64_t ms = (int64_t)(secs * 1000);
			if (ms > p->backoff_max_ms)
				ms = p->backoff_max_ms;
			wb_log(WB_LOG_INFO, "shopify_bucket_wait",
			       "wait_ms=%lld", (long long)ms);
			if (!nap(p, ms))
				return wb_fail(msg, msglen, WB_ETIMEOUT,
					       "stopped");
		}
		if (p->stop && *p->stop)
			return wb_fail(msg, msglen, WB_ETIMEOUT, "stopped");
	}
	return WB_OK;
}

/* ---- configuration and main --------------------------------------------------- */

static int setup(struct poller *p, const wb_config *cfg)
{
	char msg[512];
	if (wb_config_get_int_range(cfg, "ingest.shopify.page.size", 1, 250,
				    &p->page_size, msg, sizeof(msg)) ||
	    wb_config_get_int_range(cfg, "ingest.shopify.http.timeout.ms", 100,
				    600000, &p->timeout_ms, msg, sizeof(msg)) ||
	    wb_config_get_int_range(cfg, "ingest.shopify.max.attempts", 1, 100,
				    &p->max_attempts, msg, sizeof(msg)) ||
	    wb_config_get_int_range(cfg, "ingest.shopify.backoff.max.ms", 1,
				    3600000, &p->backoff_max_ms, msg,
				    sizeof(msg)) ||
	    wb_config_get_int_range(cfg, "ingest.shopify.poll.interval.ms", 1,
				    86400000, &p->interval_ms, msg,
				    sizeof(msg)) ||
	    wb_config_get_int_range(cfg, "ingest.shopify.max.response.bytes",
				    1024, 1 << 30, &p->max_resp, msg,
				    sizeof(msg)) ||
	    wb_config_get_int_range(cfg, "ingest.flush.timeout.ms", 0,
				    INT32_MAX, &p->flush_ms, msg, sizeof(msg)))
		return usage_error(msg);
	const char *base = wb_config_get(cfg, "ingest.shopify.api.url");
	const char *version = wb_config_get(cfg, "ingest.shopify.api.version");
	const char *token = wb_config_get(cfg, "ingest.shopify.access.token");
	if (!base || !*base)
		return usage_error("ingest.shopify.api.url is not set (e.g. "
				   "https://acme.myshopify.com)");
	if (strncmp(base, "http://", 7) && strncmp(base, "https://", 8))
		return usage_error("ingest.shopify.api.url must start with "
				   "http:// or https://");
	if (!version || !*version || strlen(version) > 32)
		return usage_error("ingest.shopify.api.version is not set");
	if (!token || !*token || strchr(token, '\n') || strchr(token, '\r'))
		return usage_error("no access token: set WAYBILL_SHOPIFY_ACCESS_"
				   "TOKEN (or ingest.shopify.access.token in "
				   "--config FILE)");
	size_t bl = strlen(base);
	while (bl && base[bl - 1] == '/')
		bl--;
	if (bl + strlen(version) + 40 > sizeof(p->url))
		return usage_error("ingest.shopify.api.url is too long");
	snprintf(p->url, sizeof(p->url), "%.*s/admin/api/%s/graphql.json",
		 (int)bl, base, version);
	/* merchant: configured, or the API's host */
	const char *shop = wb_config_get(cfg, "ingest.shopify.shop");
	if (shop && *shop) {
		snprintf(p->shop, sizeof(p->shop), "%s", shop);
	} else {
		const char *h = strstr(base, "://") + 3;
		size_t hl = strcspn(h, ":/");
		snprintf(p->shop, sizeof(p->shop), "%.*s",
			 (int)(hl < sizeof(p->shop) ? hl : 0), h);
	}
	if (!wb_shopify_shop_ok(p->shop))
		return usage_error("ingest.shopify.shop is not a shop domain "
				   "(letters, digits, '.', '-')");
	snprintf(p->state_name, sizeof(p->state_name), "shopify-poll-%.100s",
		 p->shop);
	p->state_dir = wb_config_get(cfg, "ingest.state.dir");
	if (!p->state_dir || !*p->state_dir)
		return usage_error("ingest.state.dir is not set");
	const char *src = wb_config_get(cfg, "ingest.source");
	p->source = src && *src ? src : SOURCE;
	char hdr[4200];
	snprintf(hdr, sizeof(hdr), "X-Shopify-Access-Token: %s", token);
	p->headers = curl_slist_append(NULL, "Content-Type: application/json");
	p->headers = curl_slist_append(p->headers, "Accept: application/json");
	p->headers = curl_slist_append(p->headers, hdr);
	explicit_bzero(hdr, sizeof(hdr));
	p->curl = curl_easy_init();
	if (!p->headers || !p->curl)
		return usage_error("cannot initialise libcurl");
	return WB_INGEST_EXIT_OK;
}

static void summary(struct poller *p, const char *event, const char *cursor)
{
	struct wb_ingest_counts c;
	wb_ingest_producer_counts(p->prod, &c);
	wb_log(WB_LOG_INFO, event,
	       "shop=%s pages=%" PRIu64 " orders=%" PRIu64 " skipped=%" PRIu64
	       " events=%" PRIu64 " dlq=%" PRIu64 " retries=%" PRIu64
	       " acked=%" PRIu64 " failed=%" PRIu64 " cursor=%s",
	       wb_log_q(p->shop), p->pages, p->orders, p->skipped, p->events,
	       p->dlq, p->retries, c.acked, c.failed, cursor);
}

int wb_ingest_shopify_poll_main(const wb_config *cfg, int nargs, char **args,
				volatile sig_atomic_t *stop)
{
	(void)args;
	if (nargs != 0)
		return usage_error("takes no arguments besides --once (see "
				   "--help)");
	bool once = wb_config_get_bool(cfg, "flag.once");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct poller p;
	memset(&p, 0, sizeof(p));
	p.cfg = cfg;
	p.stop = stop;
	p.seed = (unsigned)wb_mono_us();
	int rc = setup(&p, cfg);
	char msg[1024];
	if (rc == WB_INGEST_EXIT_OK) {
		char topic[256];
		wb_err err;
		wb_kafka_topic(cfg, "events", topic, sizeof(topic));
		wb_kafka_topic(cfg, "dlq", p.dlq_topic, sizeof(p.dlq_topic));
		p.prod = wb_ingest_producer_create(cfg, topic, &err, msg,
						   sizeof(msg));
		if (!p.prod) {
			fprintf(stderr, "waybill-ingest shopify-poll: %s\n", msg);
			rc = err == WB_ECONFIG ? WB_INGEST_EXIT_USAGE
					       : WB_INGEST_EXIT_FAIL;
		}
	}
	while (rc == WB_INGEST_EXIT_OK) {
		bool fatal;
		p.pages = p.orders = p.events = p.dlq = p.skipped = p.retries = 0;
		wb_log(WB_LOG_INFO, "shopify_poll_start", "shop=%s url=%s",
		       wb_log_q(p.shop), wb_log_q(p.url));
		wb_err prc = run_pass(&p, &fatal, msg, sizeof(msg));
		struct cursor cur;
		char at[32] = "none", sub[256];
		if (cursor_load(&p, &cur, sub, sizeof(sub)) == WB_OK && cur.set)
			wb_format_time_ms(cur.ms, at);
		bool stopped = stop && *stop;
		if (prc && !stopped) {
			wb_log(WB_LOG_ERROR, "shopify_poll_failed",
			       "shop=%s error=%s hint=\"the cursor did not move "
			       "past what Kafka acknowledged\"",
			       wb_log_q(p.shop), wb_log_q(msg));
			fprintf(stderr, "waybill-ingest shopify-poll: %s\n", msg);
		}
		summary(&p, prc ? "shopify_poll_incomplete" : "shopify_poll_done",
			at);
		if (once) {
			struct wb_ingest_counts c;
			wb_ingest_producer_counts(p.prod, &c);
			printf("pages=%" PRIu64 " orders=%" PRIu64 " skipped=%" PRIu64
			       " events=%" PRIu64 " dlq=%" PRIu64 " acked=%" PRIu64
			       " failed=%" PRIu64 " cursor=%s\n",
			       p.pages, p.orders, p.skipped, p.events, p.dlq,
			       c.acked, c.failed, at);
			fflush(stdout);
			rc = prc ? WB_INGEST_EXIT_FAIL : WB_INGEST_EXIT_OK;
			break;
		}
		if (stopped)
			break;
		if (prc && fatal) {
			rc = WB_INGEST_EXIT_FAIL;
			break;
		}
		if (!nap(&p, p.interval_ms))
			break;
	}
	wb_ingest_producer_destroy(p.prod);
	if (p.curl)
		curl_easy_cleanup(p.curl);
	curl_slist_free_all(p.headers);
	curl_global_cleanup();
	return rc;
}
