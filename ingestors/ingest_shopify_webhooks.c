/*
 * ingest_shopify_webhooks.c — `waybill-ingest shopify-webhooks`: the HTTP
 * receiver of Shopify's webhooks (POST /webhooks/shopify), plus GET
 * /metrics (Prometheus text) and GET /healthz.
 *
 * A webhook is answered 200 only once Kafka has acknowledged every record
 * it produced (design.md §10), so Shopify retries whatever we did not
 * keep; 503 when that does not happen within ingest.http.ack.timeout.ms.
 * In order, per request:
 *
 *   1. Content-Length over ingest.http.max.body.bytes: 413 before reading
 *      the body; a chunked body is counted while it streams and gets 413
 *      once it passes the cap (what follows is read and thrown away).
 *   2. X-Shopify-Hmac-Sha256 against every configured secret, in constant
 *      time, over the raw bytes: 401 before anything is parsed.
 *   3. shopify_map.c turns the body into canonical events. All of them are
 *      encoded before the first is sent, so a webhook becomes either all
 *      its events or, if it cannot be mapped (bad JSON, a topic we do not
 *      map, no order id, an event over ledger.record.max.bytes, which the
 *      ledger would refuse after our 200...), one <prefix>dlq record with
 *      the raw body (its head if over WB_INGEST_DLQ_MAX_VALUE) and headers
 *      waybill.error / waybill.source — never half of each.
 *   4. The records are queued with the request as their opaque and the
 *      connection is suspended (no thread waits for Kafka). The producer's
 *      delivery thread counts the acknowledgements down; the last one
 *      resumes the connection, and the handler answers 200, or 503 if any
 *      record failed or timed out (librdkafka's message.timeout.ms is the
 *      ack timeout, so every record is reported within it).
 *
 * Threads: libmicrohttpd's epoll thread pool (ingest.http.threads) runs
 * the handlers; the producer's own thread serves delivery reports; the
 * main thread waits for a signal and then drains: new webhooks get 503,
 * Kafka is flushed (which resumes every suspended connection), the
 * answers go out, and only then is the daemon stopped (stopping it with
 * suspended connections is forbidden by libmicrohttpd's API).
 */
#include "wb_ingest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WEBHOOK_PATH "/webhooks/shopify"
#define SOURCE "shopify-webhooks"
#define MAX_SECRETS 2
/* A chunked body over the cap is read on (and dropped) up to this many
 * times the cap before the connection is simply closed. */
#define DISCARD_FACTOR 8
/* Stats line every this many ms. */
#define STATS_EVERY_MS 10000

/* Counters exposed on /metrics; the order of this enum is the order there. */
enum {
	C_RECEIVED,
	C_UNAUTHORIZED,
	C_TOO_LARGE,
	C_ACCEPTED,
	C_DLQ,
	C_KAFKA_TIMEOUTS,
	C_KAFKA_ERRORS,
	C_EVENTS,
	C_COUNT
};

static const struct {
	const char *name, *help;
} counter_info[C_COUNT] = {
	{"waybill_shopify_webhooks_received_total",
	 "POST /webhooks/shopify requests."},
	{"waybill_shopify_webhooks_unauthorized_total",
	 "Webhooks answered 401: missing or wrong X-Shopify-Hmac-Sha256."},
	{"waybill_shopify_webhooks_too_large_total",
	 "Webhooks answered 413: body over ingest.http.max.body.bytes."},
	{"waybill_shopify_webhooks_accepted_total",
	 "Webhooks answered 200 after Kafka acknowledged all their events."},
	{"waybill_shopify_webhooks_dlq_total",
	 "Authentic webhooks that could not be mapped, answered 200 after "
	 "their DLQ record was acknowledged."},
	{"waybill_shopify_webhooks_kafka_timeouts_total",
	 "Webhooks answered 503: Kafka did not acknowledge within "
	 "ingest.http.ack.timeout.ms."},
	{"waybill_shopify_webhooks_kafka_errors_total",
	 "Webhooks answered 503: Kafka refused or failed a record (queue "
	 "full, broker error, shutting down)."},
	{"waybill_shopify_events_produced_total",
	 "Canonical events of accepted webhooks, acknowledged by Kafka."},
};

/* Upper bounds of the ack latency histogram, seconds. */
static const double ack_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1,
				     0.25,  0.5,  1,     2.5,  5};
#define NBUCKETS (sizeof(ack_buckets) / sizeof(*ack_buckets))

struct server {
	wb_ingest_producer *prod;
	char events_topic[256], dlq_topic[256];
	char *secrets[MAX_SECRETS];
	size_t nsecrets;
	size_t max_body;
	const char *source;
	struct MHD_Daemon *mhd;
	struct MHD_Response *r_ok, *r_401, *r_413, *r_503, *r_404, *r_405,
		*r_health;
	_Atomic uint64_t counters[C_COUNT];
	_Atomic uint64_t ack_hist[NBUCKETS + 1];
	_Atomic uint64_t ack_sum_us;
	atomic_long waiting; /* suspended connections */
	atomic_bool draining;
	/* suspended requests, oldest first, for the ack deadline */
	pthread_mutex_t wait_mu;
	struct req *wait_head, *wait_tail;
	int64_t ack_us;
};

enum req_state { R_RECEIVING, R_WAITING };

struct req {
	struct server *s;
	struct MHD_Connection *conn;
	enum req_state state;
	wb_buf body;
	size_t seen; /* body bytes received, kept or not */
	bool too_big;
	bool dlq;         /* the record produced is a DLQ record */
	unsigned nevents; /* events produced */
	int64_t t0;       /* monotonic us when the body was complete */
	/* Records not yet reported, plus one held by the handler until it
	 * has suspended the connection: whoever takes it to zero resumes. */
	atomic_int pending;
	atomic_bool failed, timed_out;
	/* The request is freed when both the HTTP side (completed) and every
	 * record's delivery report have let go of it: a webhook answered 503
	 * at its deadline may still have records in flight. */
	atomic_int refs;
	atomic_bool resumed;   /* MHD_resume_connection called (once) */
	int64_t deadline_us;   /* monotonic: answer 503 after this */
	struct req *wprev, *wnext;
	bool listed;
};

static void req_unref(struct req *r)
{
	if (atomic_fetch_sub(&r->refs, 1) == 1) {
		wb_buf_finish(&r->body);
		free(r);
	}
}

/* Resumes r's suspended connection, at most once: the last delivery report
 * and the deadline may both try. */
static void resume_once(struct req *r)
{
	if (!atomic_exchange(&r->resumed, true))
		MHD_resume_connection(r->conn);
}

static void wait_unlink(struct server *s, struct req *r)
{
	if (!r->listed)
		return;
	if (r->wprev)
		r->wprev->wnext = r->wnext;
	else
		s->wait_head = r->wnext;
	if (r->wnext)
		r->wnext->wprev = r->wprev;
	else
		s->wait_tail = r->wprev;
	r->wprev = r->wnext = NULL;
	r->listed = false;
}

/* Called every 100 ms by the main thread: webhooks whose records Kafka has
 * not acknowledged by their deadline are answered 503 now, whatever
 * librdkafka's own timers would say later. Under the list's lock, so a
 * listed request cannot complete (and be freed) meanwhile. */
static void expire_waiting(struct server *s)
{
	int64_t now = wb_mono_us();
	pthread_mutex_lock(&s->wait_mu);
	for (struct req *r = s->wait_head; r && r->deadline_us <= now;) {
		struct req *next = r->wnext;
		atomic_store(&r->timed_out, true);
		atomic_store(&r->failed, true);
		wait_unlink(s, r);
		resume_once(r);
		r = next;
	}
	pthread_mutex_unlock(&s->wait_mu);
}

static void count(struct server *s, int c, uint64_t n)
{
	atomic_fetch_add_explicit(&s->counters[c], n, memory_order_relaxed);
}

/* ---- responses ---------------------------------------------------------- */

static struct MHD_Response *text_response(const char *text)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
		strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
	if (r)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
					"text/plain; charset=utf-8");
	return r;
}

static bool responses_create(struct server *s)
{
	s->r_ok = text_response("ok\n");
	s->r_401 = text_response("unauthorized: X-Shopify-Hmac-Sha256 does "
				 "not match the body\n");
	s->r_413 = text_response("payload too large\n");
	s->r_503 = text_response("not stored: Kafka did not acknowledge in "
				 "time; retry\n");
	s->r_404 = text_response("not found\n");
	s->r_405 = text_response("method not allowed\n");
	s->r_health = text_response("ok\n");
	if (s->r_503)
		MHD_add_response_header(s->r_503, MHD_HTTP_HEADER_RETRY_AFTER,
					"5");
	if (s->r_405)
		MHD_add_response_header(s->r_405, MHD_HTTP_HEADER_ALLOW, "POST");
	return s->r_ok && s->r_401 && s->r_413 && s->r_503 && s->r_404 &&
	       s->r_405 && s->r_health;
}

static void responses_destroy(struct server *s)
{
	struct MHD_Response *all[] = {s->r_ok,	s->r_401, s->r_413,
				      s->r_503, s->r_404, s->r_405,
				      s->r_health};
	for (size_t i = 0; i < sizeof(all) / sizeof(*all); i++)
		if (all[i])
			MHD_destroy_response(all[i]);
}

static void metrics_text(struct server *s, wb_buf *b)
{
	char line[512];
	for (int c = 0; c < C_COUNT; c++) {
		int n = snprintf(line, sizeof(line),
				 "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64
				 "\n",
				 counter_info[c].name, counter_info[c].help,
				 counter_info[c].name, counter_info[c].name,
				 atomic_load(&s->counters[c]));
		wb_buf_append(b, line, (size_t)n);
	}
	int n = snprintf(line, sizeof(line),
			 "# HELP waybill_shopify_webhooks_waiting Webhooks "
			 "waiting for Kafka's acknowledgement.\n"
			 "# TYPE waybill_shopify_webhooks_waiting gauge\n"
			 "waybill_shopify_webhooks_waiting %ld\n"
			 "# HELP waybill_shopify_webhook_ack_seconds From a "
			 "complete body to Kafka's last acknowledgement.\n"
			 "# TYPE waybill_shopify_webhook_ack_seconds "
			 "histogram\n",
			 atomic_load(&s->waiting));
	wb_buf_append(b, line, (size_t)n);
	uint64_t cum = 0;
	for (size_t i = 0; i <= NBUCKETS; i++) {
		cum += atomic_load(&s->ack_hist[i]);
		if (i < NBUCKETS)
			n = snprintf(line, sizeof(line),
				     "waybill_shopify_webhook_ack_seconds_bucket"
				     "{le=\"%g\"} %" PRIu64 "\n",
				     ack_buckets[i], cum);
		else
			n = snprintf(line, sizeof(line),
				     "waybill_shopify_webhook_ack_seconds_bucket"
				     "{le=\"+Inf\"} %" PRIu64 "\n"
				     "waybill_shopify_webhook_ack_seconds_sum "
				     "%.6f\n"
				     "waybill_shopify_webhook_ack_seconds_count "
				     "%" PRIu64 "\n",
				     cum, (double)atomic_load(&s->ack_sum_us) / 1e6,
				     cum);
		wb_buf_append(b, line, (size_t)n);
	}
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status,
			     struct MHD_Response *r)
{
	return MHD_queue_response(c, status, r);
}

static enum MHD_Result reply_metrics(struct server *s, struct MHD_Connection *c)
{
	wb_buf b;
	wb_buf_init(&b);
	metrics_text(s, &b);
	struct MHD_Response *r = MHD_create_response_from_buffer(
		b.len, b.data, MHD_RESPMEM_MUST_COPY);
	wb_buf_finish(&b);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				"text/plain; version=0.0.4; charset=utf-8");
	enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return rc;
}

/* ---- Kafka -------------------------------------------------------------- */

static void on_delivery(void *opaque, wb_err err, const char *reason)
{
	(void)reason; /* the producer logs failures with the record's ids */
	struct req *r = opaque;
	if (err) {
		if (err == WB_ETIMEOUT)
			atomic_store(&r->timed_out, true);
		atomic_store(&r->failed, true);
	}
	/* r stays valid until our reference goes (req_unref), and so does
	 * the connection: it is suspended until resumed, once. */
	if (atomic_fetch_sub(&r->pending, 1) == 1)
		resume_once(r);
	req_unref(r);
}

/* Queues one record for r (an event, or with why the raw body to the
 * DLQ); false (with r->failed set) if it was refused. */
static bool send_one(struct req *r, const struct wb_ingest_record *rec,
		     const char *why, const char *source)
{
	struct server *s = r->s;
	const char *topic = why ? s->dlq_topic : s->events_topic;
	char msg[512];
	atomic_fetch_add(&r->pending, 1);
	atomic_fetch_add(&r->refs, 1); /* the delivery report's */
	wb_err rc = why ? wb_ingest_producer_send_dlq_async(
				  s->prod, topic, rec->key, rec->key_len,
				  rec->value, rec->value_len, why, source, r,
				  msg, sizeof(msg))
			: wb_ingest_producer_send_async(s->prod, topic, rec,
							NULL, r, msg,
							sizeof(msg));
	if (rc == WB_OK)
		return true;
	atomic_fetch_sub(&r->refs, 1);
	atomic_fetch_sub(&r->pending, 1);
	atomic_store(&r->failed, true);
	wb_log(WB_LOG_ERROR, "produce_refused", "topic=%s event_id=%s error=%s",
	       wb_log_q(topic), wb_log_q(rec->event_id), wb_log_q(msg));
	return false;
}

/* The raw body to the DLQ with the reason. */
static void send_dlq(struct req *r, const struct wb_shopify_ctx *c,
		     const char *why)
{
	char source[512];
	snprintf(source, sizeof(source),
		 SOURCE " topic=%.80s shop=%.255s webhook_id=%.128s",
		 c->topic ? c->topic : "-", c->shop ? c->shop : "-",
		 c->webhook_id ? c->webhook_id : "-");
	struct wb_ingest_record rec = {
		.value = r->body.data,
		.value_len = r->body.len,
		.key = c->webhook_id,
		.key_len = c->webhook_id ? strlen(c->webhook_id) : 0,
		.event_id = "-"};
	r->dlq = true;
	wb_log(WB_LOG_WARN, "webhook_to_dlq",
	       "topic=%s shop=%s webhook_id=%s bytes=%zu reason=%s",
	       wb_log_q(c->topic ? c->topic : "-"),
	       wb_log_q(c->shop ? c->shop : "-"),
	       wb_log_q(c->webhook_id ? c->webhook_id : "-"), r->body.len,
	       wb_log_q(why));
	send_one(r, &rec, why, source);
}

/* Maps the body and queues its events, or the DLQ record. */
static void produce(struct req *r, struct MHD_Connection *conn)
{
	struct server *s = r->s;
	struct wb_shopify_ctx c = {
		.shop = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						    "X-Shopify-Shop-Domain"),
		.topic = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						     "X-Shopify-Topic"),
		.webhook_id = MHD_lookup_connection_value(
			conn, MHD_HEADER_KIND, "X-Shopify-Webhook-Id"),
		.event_id = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							"X-Shopify-Event-Id"),
		.triggered_at = -1,
		.now_ms = wb_now_ms(),
		.source = s->source};
	const char *trig = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						       "X-Shopify-Triggered-At");
	int64_t t;
	if (trig && wb_parse_time_ms(trig, &t) && t >= 0)
		c.triggered_at = t;
	char why[512] = "";
	json_t *evs = json_array();
	wb_err rc = wb_shopify_map_webhook(&c, (const char *)r->body.data,
					   r->body.len, evs, why, sizeof(why));
	/* Encode everything first: all events or the DLQ, never a part. */
	size_t n = json_array_size(evs);
	wb_buf *bufs = n ? wb_xcalloc(n, sizeof(*bufs)) : NULL;
	struct wb_ingest_record *recs = n ? wb_xcalloc(n, sizeof(*recs)) : NULL;
	for (size_t i = 0; rc == WB_OK && i < n; i++) {
		char sub[400];
		wb_buf_init(&bufs[i]);
		rc = wb_ingest_event_json(json_array_get(evs, i), s->source,
					  c.now_ms, &bufs[i], &recs[i], sub,
					  sizeof(sub));
		/* authentic, but the ledger would refuse it after our 200 */
		if (rc == WB_OK)
			rc = wb_ingest_producer_check(s->prod, &recs[i], sub,
						      sizeof(sub));
		if (rc)
			snprintf(why, sizeof(why), "event %zu: %s", i, sub);
	}
	if (rc == WB_OK) {
		for (size_t i = 0; i < n; i++) {
			if (!send_one(r, &recs[i], NULL, NULL))
				break;
			r->nevents++;
		}
	} else {
		send_dlq(r, &c, why);
	}
	for (size_t i = 0; i < n; i++)
		wb_buf_finish(&bufs[i]);
	free(bufs);
	free(recs);
	json_decref(evs);
}

/* ---- the handler ----------------------------------------------------------- */

static enum MHD_Result finish_webhook(struct req *r, struct MHD_Connection *c)
{
	struct server *s = r->s;
	atomic_fetch_sub(&s->waiting, 1);
	uint64_t us = (uint64_t)(wb_mono_us() - r->t0);
	size_t b = 0;
	while (b < NBUCKETS && (double)us / 1e6 > ack_buckets[b])
		b++;
	atomic_fetch_add_explicit(&s->ack_hist[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->ack_sum_us, us, memory_order_relaxed);
	pthread_mutex_lock(&s->wait_mu);
	wait_unlink(s, r);
	pthread_mutex_unlock(&s->wait_mu);
	if (atomic_load(&r->pending) > 0) {
		/* resumed at the deadline with records still in flight */
		atomic_store(&r->timed_out, true);
		atomic_store(&r->failed, true);
	}
	if (atomic_load(&r->failed)) {
		count(s, atomic_load(&r->timed_out) ? C_KAFKA_TIMEOUTS
						    : C_KAFKA_ERRORS,
		      1);
		return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, s->r_503);
	}
	if (r->dlq) {
		count(s, C_DLQ, 1);
	} else {
		count(s, C_ACCEPTED, 1);
		count(s, C_EVENTS, r->nevents);
	}
	return reply(c, MHD_HTTP_OK, s->r_ok);
}

/* The whole body is in: authenticate, map, produce, suspend. */
static enum MHD_Result body_complete(struct req *r, struct MHD_Connection *c)
{
	struct server *s = r->s;
	if (r->too_big) {
		count(s, C_TOO_LARGE, 1);
		return reply(c, MHD_HTTP_CONTENT_TOO_LARGE, s->r_413);
	}
	const char *hmac = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						       "X-Shopify-Hmac-Sha256");
	if (!wb_shopify_hmac_valid(hmac, r->body.data, r->body.len,
				   (const char *const *)s->secrets,
				   s->nsecrets)) {
		count(s, C_UNAUTHORIZED, 1);
		wb_log(WB_LOG_DEBUG, "webhook_unauthorized", "reason=%s",
		       hmac ? "hmac_mismatch" : "no_hmac_header");
		return reply(c, MHD_HTTP_UNAUTHORIZED, s->r_401);
	}
	if (atomic_load(&s->draining)) {
		count(s, C_KAFKA_ERRORS, 1);
		return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, s->r_503);
	}
	r->t0 = wb_mono_us();
	atomic_store(&r->pending, 1);
	produce(r, c);
	r->state = R_WAITING;
	atomic_fetch_add(&s->waiting, 1);
	if (atomic_load(&r->pending) == 1) {
		/* nothing in flight (refused at once, or already all
		 * acknowledged): drop the handler's hold and answer now */
		atomic_fetch_sub(&r->pending, 1);
		return finish_webhook(r, c);
	}
	MHD_suspend_connection(c);
	/* listed after suspending: the deadline must not resume a connection
	 * that is not suspended yet; nothing frees r before we return */
	r->deadline_us = r->t0 + s->ack_us;
	pthread_mutex_lock(&s->wait_mu);
	r->wprev = s->wait_tail;
	if (s->wait_tail)
		s->wait_tail->wnext = r;
	else
		s->wait_head = r;
	s->wait_tail = r;
	r->listed = true;
	pthread_mutex_unlock(&s->wait_mu);
	if (atomic_fetch_sub(&r->pending, 1) == 1)
		/* every record was already acknowledged */
		resume_once(r);
	return MHD_YES;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c,
			       const char *url, const char *method,
			       const char *version, const char *upload,
			       size_t *upload_size, void **con_cls)
{
	(void)version;
	struct server *s = cls;
	struct req *r = *con_cls;
	if (!r) {
		if (strcmp(url, WEBHOOK_PATH) != 0) {
			if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
			    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
				return reply(c, MHD_HTTP_NOT_FOUND, s->r_404);
			if (strcmp(url, "/metrics") == 0)
				return reply_metrics(s, c);
			if (strcmp(url, "/healthz") == 0)
				return reply(c, MHD_HTTP_OK, s->r_health);
			return reply(c, MHD_HTTP_NOT_FOUND, s->r_404);
		}
		if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
			return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, s->r_405);
		count(s, C_RECEIVED, 1);
		const char *cl = MHD_lookup_connection_value(
			c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		int64_t len = 0;
		if (cl && (!wb_parse_i64(cl, 0, INT64_MAX, &len) ||
			   (uint64_t)len > s->max_body)) {
			/* refused before a byte of the body is read */
			count(s, C_TOO_LARGE, 1);
			return reply(c, MHD_HTTP_CONTENT_TOO_LARGE, s->r_413);
		}
		r = wb_xcalloc(1, sizeof(*r));
		r->s = s;
		r->conn = c;
		atomic_store(&r->refs, 1); /* the HTTP side's */
		wb_buf_init(&r->body);
		if (len > 0)
			wb_buf_reserve(&r->body, (size_t)len);
		*con_cls = r;
		return MHD_YES;
	}
	if (r->state == R_WAITING)
		return finish_webhook(r, c);
	if (*upload_size) {
		size_t n = *upload_size;
		r->seen += n;
		if (r->seen > s->max_body)
			r->too_big = true;
		if (!r->too_big)
			wb_buf_append(&r->body, upload, n);
		*upload_size = 0;
		if (r->seen / DISCARD_FACTOR > s->max_body) {
			count(s, C_TOO_LARGE, 1);
			return MHD_NO; /* enough: close the connection */
		}
		return MHD_YES;
	}
	return body_complete(r, c);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	struct req *r = *con_cls;
	if (!r)
		return;
	struct server *s = r->s;
	pthread_mutex_lock(&s->wait_mu);
	wait_unlink(s, r);
	pthread_mutex_unlock(&s->wait_mu);
	*con_cls = NULL;
	req_unref(r);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char text[512];
	vsnprintf(text, sizeof(text), fmt, ap);
	size_t n = strlen(text);
	while (n && (text[n - 1] == '\n' || text[n - 1] == ' '))
		text[--n] = '\0';
	wb_log(WB_LOG_WARN, "http_error", "reason=%s", wb_log_q(text));
}

/* ---- configuration and main ------------------------------------------------ */

static int usage_error(const char *why)
{
	fprintf(stderr, "waybill-ingest shopify-webhooks: %s\n", why);
	return WB_INGEST_EXIT_USAGE;
}

/* Splits the comma-separated secrets (blanks around them dropped). */
static bool load_secrets(struct server *s, const wb_config *cfg)
{
	const char *v = wb_config_get(cfg, "ingest.shopify.webhook.secrets");
	if (!v || !*v) {
		usage_error("no webhook secret: set WAYBILL_SHOPIFY_WEBHOOK_"
			    "SECRETS (or ingest.shopify.webhook.secrets in "
			    "--config FILE) to the app's client secret");
		return false;
	}
	const char *p = v;
	while (*p) {
		const char *comma = strchr(p, ',');
		const char *end = comma ? comma : p + strlen(p);
		const char *a = p, *b = end;
		while (a < b && (*a == ' ' || *a == '\t'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		if (a < b) {
			if (s->nsecrets == MAX_SECRETS) {
				usage_error("ingest.shopify.webhook.secrets: "
					    "at most two secrets (the current "
					    "and the previous one)");
				return false;
			}
			s->secrets[s->nsecrets++] =
				wb_xstrndup(a, (size_t)(b - a));
		}
		p = comma ? comma + 1 : end;
	}
	if (s->nsecrets == 0) {
		usage_error("ingest.shopify.webhook.secrets holds no secret");
		return false;
	}
	return true;
}

static void server_free(struct server *s)
{
	responses_destroy(s);
	for (size_t i = 0; i < s->nsecrets; i++) {
		/* not left in freed memory */
		explicit_bzero(s->secrets[i], strlen(s->secrets[i]));
		free(s->secrets[i]);
	}
}

static void log_stats(struct server *s, const char *event)
{
	uint64_t v[C_COUNT];
	for (int i = 0; i < C_COUNT; i++)
		v[i] = atomic_load(&s->counters[i]);
	wb_log(WB_LOG_INFO, event,
	       "received=%" PRIu64 " accepted=%" PRIu64 " unauthorized=%" PRIu64
	       " too_large=%" PRIu64 " dlq=%" PRIu64 " kafka_timeouts=%" PRIu64
	       " kafka_errors=%" PRIu64 " events=%" PRIu64 " waiting=%ld",
	       v[C_RECEIVED], v[C_ACCEPTED], v[C_UNAUTHORIZED], v[C_TOO_LARGE],
	       v[C_DLQ], v[C_KAFKA_TIMEOUTS], v[C_KAFKA_ERRORS], v[C_EVENTS],
	       atomic_load(&s->waiting));
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Stops taking webhooks, lets every waiting one get its answer, stops. */
static void drain(struct server *s, int ack_timeout_ms)
{
	atomic_store(&s->draining, true);
	MHD_socket lsock = MHD_quiesce_daemon(s->mhd);
	char msg[512];
	/* Flushing delivers every report, which resumes every waiting
	 * connection; a record still unacknowledged is purged and reported
	 * failed, so its webhook gets 503. */
	int64_t until = wb_mono_us() + (ack_timeout_ms + 5000) * 1000LL;
	do {
		if (wb_ingest_producer_flush(s->prod, ack_timeout_ms + 1000, msg,
					     sizeof(msg)) != WB_OK)
			wb_log(WB_LOG_WARN, "flush_incomplete", "error=%s",
			       wb_log_q(msg));
		/* a webhook past its draining check may still be queueing */
		for (int i = 0; i < 20 && atomic_load(&s->waiting) > 0; i++)
			sleep_ms(10);
	} while (atomic_load(&s->waiting) > 0 && wb_mono_us() < until);
	sleep_ms(50); /* let the last answers leave */
	MHD_stop_daemon(s->mhd);
	s->mhd = NULL;
	if (lsock != MHD_INVALID_SOCKET)
		close(lsock);
}

int wb_ingest_shopify_webhooks_main(const wb_config *cfg, int nargs,
				    char **args, volatile sig_atomic_t *stop)
{
	(void)args;
	if (nargs != 0)
		return usage_error("takes no arguments (see --help)");
	int64_t threads, conn_limit, conn_timeout, max_body, ack_ms;
	char msg[512];
	if (wb_config_get_int_range(cfg, "ingest.http.threads", 1, 64,
				    &threads, msg, sizeof(msg)) ||
	    wb_config_get_int_range(cfg, "ingest.http.connection.limit", 1,
				    1000000, &conn_limit, msg, sizeof(msg)) ||
	    wb_config_get_int_range(cfg, "ingest.http.connection.timeout.s", 1,
				    3600, &conn_timeout, msg, sizeof(msg)) ||
	    wb_config_get_int_range(cfg, "ingest.http.max.body.bytes", 1,
				    WB_SHOPIFY_MAX_BODY, &max_body, msg,
				    sizeof(msg)) ||
	    wb_config_get_int_range(cfg, "ingest.http.ack.timeout.ms", 100,
				    600000, &ack_ms, msg, sizeof(msg)))
		return usage_error(msg);
	const char *listen = wb_config_get(cfg, "ingest.http.listen");
	struct sockaddr_storage ss;
	if (wb_parse_listen("ingest.http.listen", listen, &ss, msg,
			    sizeof(msg)) != WB_OK)
		return usage_error(msg);

	/* jansson gives every JSON object a hash table of over 1 KiB, and
	 * each allocation that large makes glibc consolidate its fastbins:
	 * thousands of small blocks per webhook. Without fastbins small
	 * blocks go to the per-thread cache and that work disappears (6% of
	 * the CPU per webhook, measured on the orders/create sample). */
	mallopt(M_MXFAST, 0);

	static struct server srv; /* one per process; counters start at 0 */
	struct server *s = &srv;
	memset(s, 0, sizeof(*s));
	s->max_body = (size_t)max_body;
	s->ack_us = ack_ms * 1000;
	pthread_mutex_init(&s->wait_mu, NULL);
	const char *src = wb_config_get(cfg, "ingest.source");
	s->source = src && *src ? src : SOURCE;
	if (!load_secrets(s, cfg)) {
		server_free(s);
		return WB_INGEST_EXIT_USAGE;
	}
	wb_kafka_topic(cfg, "events", s->events_topic, sizeof(s->events_topic));
	wb_kafka_topic(cfg, "dlq", s->dlq_topic, sizeof(s->dlq_topic));

	/* A webhook is answered by its deadline (expire_waiting), whatever
	 * librdkafka does: with the broker stopped, a record's own timeout was
	 * reported up to 2.5 s after message.timeout.ms (its scan runs once a
	 * second and an in-flight request waits for request.timeout.ms). The
	 * records still time out around the deadline, so none lingers. */
	char timeout[32], req_timeout[32];
	long long msg_ms = ack_ms;
	snprintf(timeout, sizeof(timeout), "%lld", msg_ms);
	snprintf(req_timeout, sizeof(req_timeout), "%lld",
		 msg_ms / 2 > 100 ? msg_ms / 2 : 100);
	const char *overrides[] = {"message.timeout.ms", timeout,
				   "request.timeout.ms", req_timeout,
				   "linger.ms", "5", NULL};
	wb_err err;
	s->prod = wb_ingest_producer_create_ex(cfg, s->events_topic, overrides,
					       &err, msg, sizeof(msg));
	if (!s->prod) {
		fprintf(stderr, "waybill-ingest shopify-webhooks: %s\n", msg);
		server_free(s);
		return err == WB_ECONFIG ? WB_INGEST_EXIT_USAGE
					 : WB_INGEST_EXIT_FAIL;
	}
	/* the DLQ must exist too: an unmappable webhook would otherwise wait
	 * for a topic that never comes */
	if (wb_ingest_producer_check_topic(s->prod, s->dlq_topic, msg,
					   sizeof(msg)) != WB_OK) {
		fprintf(stderr, "waybill-ingest shopify-webhooks: %s\n", msg);
		wb_ingest_producer_destroy(s->prod);
		server_free(s);
		return WB_INGEST_EXIT_FAIL;
	}
	msg[0] = '\0';
	if (wb_ingest_producer_start(s->prod, on_delivery, msg, sizeof(msg)) ||
	    !responses_create(s)) {
		fprintf(stderr, "waybill-ingest shopify-webhooks: %s\n",
			msg[0] ? msg : "cannot create responses");
		wb_ingest_producer_destroy(s->prod);
		server_free(s);
		return WB_INGEST_EXIT_FAIL;
	}

	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD |
			 MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
			 MHD_USE_TURBO;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* the logger first, so that no option's complaint escapes it */
	s->mhd = MHD_start_daemon(
		flags, 0, NULL, NULL, handler, s, MHD_OPTION_EXTERNAL_LOGGER,
		mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
		(struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE,
		(unsigned)threads, MHD_OPTION_CONNECTION_LIMIT,
		(unsigned)conn_limit, MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned)conn_timeout, MHD_OPTION_NOTIFY_COMPLETED, completed,
		s, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
	if (!s->mhd) {
		int e = errno;
		fprintf(stderr,
			"waybill-ingest shopify-webhooks: cannot listen on %s "
			"(ingest.http.listen): %s\n",
			listen, e ? strerror(e) : "libmicrohttpd refused");
		wb_ingest_producer_destroy(s->prod);
		server_free(s);
		return WB_INGEST_EXIT_FAIL;
	}
	const union MHD_DaemonInfo *di =
		MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
	char host[64] = "";
	if (ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr,
			  host, sizeof(host));
	else
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host,
			  sizeof(host));
	wb_log(WB_LOG_INFO, "http_listening",
	       "listen=%s%s%s:%u threads=%lld connection_limit=%lld "
	       "max_body=%lld ack_timeout_ms=%lld secrets=%zu topic=%s dlq=%s",
	       ss.ss_family == AF_INET6 ? "[" : "", host,
	       ss.ss_family == AF_INET6 ? "]" : "",
	       di ? (unsigned)di->port : 0u, (long long)threads,
	       (long long)conn_limit, (long long)max_body, (long long)ack_ms,
	       s->nsecrets, wb_log_q(s->events_topic), wb_log_q(s->dlq_topic));

	int64_t next_stats = wb_mono_us() + STATS_EVERY_MS * 1000LL;
	while (!(stop && *stop)) {
		sleep_ms(100);
		expire_waiting(s);
		if (wb_mono_us() >= next_stats) {
			log_stats(s, "stats");
			next_stats += STATS_EVERY_MS * 1000LL;
		}
	}
	wb_log(WB_LOG_INFO, "draining", "waiting=%ld", atomic_load(&s->waiting));
	drain(s, (int)ack_ms);
	wb_ingest_producer_destroy(s->prod);
	log_stats(s, "stopped");
	server_free(s);
	return WB_INGEST_EXIT_OK;
}
