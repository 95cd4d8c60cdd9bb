/*
 * ingest_producer.c — the Kafka producer every ingest mode writes through.
 *
 * It exists so that each mode gets the same guarantees without repeating
 * them: idempotence and acks=all (design.md §10: nothing accepted is lost
 * or written twice by the client's own retries), murmur2_random so records
 * land on the partitions a Java client would pick (conventions §1), a
 * check that the topic exists before anything is queued (auto-creation is
 * off, and a record for a missing topic would sit in the queue until
 * message.timeout.ms), back-pressure on a full queue instead of dropping,
 * and an exact count of acknowledged and failed records so the caller can
 * say whether everything it accepted is in Kafka. Any kafka.* setting
 * overrides the defaults below.
 *
 * Delivery reports are served from the caller's thread (rd_kafka_poll in
 * send and flush) — or, once wb_ingest_producer_start was called (for
 * request/response callers such as shopify-webhooks, where many threads
 * send and each wants to hear about its own records), from a thread of the
 * producer's own, which also calls back per record. The counters are
 * atomic so both ways count exactly.
 *
 * Two size rules live here so that every mode keeps them alike. An event
 * over ledger.record.max.bytes is refused before it is produced: the
 * ledger would send it to its DLQ after the channel had been told it was
 * kept (the mode reports it as its own error instead). And a DLQ record of
 * raw input is cut to WB_INGEST_DLQ_MAX_VALUE (less, if message.max.bytes
 * says so) with a header waybill.truncated: raw input is capped only by
 * the mode's own input cap, and a DLQ record librdkafka refuses would leave
 * the input with no record anywhere.
 */
#include "wb_ingest.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* How long to wait for topic metadata: long enough for a healthy cluster,
 * short enough that a wrong address or topic is reported in seconds. */
#define METADATA_TIMEOUT_MS 5000
/* Serve delivery reports every this many records: each report frees its
 * copy of the record, so waiting too long only holds memory, while
 * polling on every record costs a lock per record. */
#define POLL_EVERY 512
/* Room kept under message.max.bytes for a record's key, headers and
 * librdkafka's own framing (about 100 bytes), so a value that passed the
 * size checks below is never refused by the client. */
#define WIRE_ROOM 4096

struct wb_ingest_producer {
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	char *topic;
	char *dlq_topic; /* the DLQ topic once checked to exist */
	size_t record_max; /* ledger.record.max.bytes */
	size_t msg_max;    /* librdkafka's message.max.bytes */
	_Atomic uint64_t sent, acked, failed;
	unsigned since_poll;
	/* after wb_ingest_producer_start */
	wb_ingest_delivery_fn on_delivery;
	pthread_t poller;
	bool polling;
	atomic_bool stop_polling;
};

/* Defaults for throughput and safety; a kafka.* key of the same name in
 * the configuration wins. linger/batch sizes let the client build large
 * batches at ~100k records/s; queue.buffering.max.messages bounds memory
 * (about that many records may wait for the broker at once). */
static const struct {
	const char *key, *value;
} defaults[] = {
	{"client.id", "waybill-ingest"},
	{"enable.idempotence", "true"},
	{"acks", "all"},
	{"partitioner", "murmur2_random"},
	{"linger.ms", "10"},
	{"batch.num.messages", "10000"},
	{"batch.size", "1000000"},
	{"queue.buffering.max.messages", "200000"},
	{"compression.codec", "lz4"},
};

/* The event_id is the first field of an OrderEvent body, so a failed
 * record can be named from its own bytes: no per-record bookkeeping on the
 * hot path for the rare failure. */
static void event_id_of(const rd_kafka_message_t *m, char *out, size_t outlen)
{
	const uint8_t *body, *p;
	size_t bodylen, n;
	snprintf(out, outlen, "?");
	if (wb_avro_unframe(WB_SCHEMA_ORDER_EVENT, m->payload, m->len, &body,
			    &bodylen, NULL, 0) != WB_OK)
		return;
	struct wb_avro_reader r = {body, body + bodylen, true};
	if (wb_avro_get_bytes(&r, &p, &n))
		snprintf(out, outlen, "%.*s", (int)(n < outlen ? n : outlen - 1),
			 (const char *)p);
}

static void log_failure(const char *topic, const rd_kafka_message_t *m,
			rd_kafka_resp_err_t err)
{
	char eid[257], key[257];
	event_id_of(m, eid, sizeof(eid));
	snprintf(key, sizeof(key), "%.*s",
		 (int)(m->key_len < sizeof(key) ? m->key_len : sizeof(key) - 1),
		 m->key ? (const char *)m->key : "");
	wb_log(WB_LOG_ERROR, "delivery_failed",
	       "topic=%s event_id=%s order_id=%s error=%s reason=%s",
	       wb_log_q(topic), wb_log_q(eid), wb_log_q(key),
	       rd_kafka_err2name(err), wb_log_q(rd_kafka_err2str(err)));
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	wb_ingest_producer *p = opaque;
	if (m->err) {
		p->failed++;
		log_failure(p->topic, m, m->err);
	} else {
		p->acked++;
	}
	/* Only send_async records carry an opaque (never NULL). */
	if (p->on_delivery && m->_private)
		p->on_delivery(m->_private,
			       !m->err ? WB_OK
			       : m->err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT
				       ? WB_ETIMEOUT
				       : WB_EKAFKA,
			       m->err ? rd_kafka_err2str(m->err) : NULL);
}

wb_ingest_producer *wb_ingest_producer_create(const wb_config *cfg,
					      const char *topic, wb_err *err,
					      char *msg, size_t msglen)
{
	return wb_ingest_producer_create_ex(cfg, topic, NULL, err, msg, msglen);
}

/* Sets key=value on conf unless the configuration says kafka.<key>. */
static bool conf_default(rd_kafka_conf_t *conf, const wb_config *cfg,
			 const char *k, const char *v, char *msg, size_t msglen)
{
	char key[128];
	snprintf(key, sizeof(key), "kafka.%s", k);
	return wb_config_get(cfg, key) ||
	       wb_kafka_conf_set(conf, k, v, msg, msglen) == WB_OK;
}

/* An integer property of conf as librdkafka holds it (its default or what
 * was set), so the DLQ cap follows whatever message.max.bytes is. */
static bool conf_int(rd_kafka_conf_t *conf, const char *k, int64_t *out,
		     char *msg, size_t msglen)
{
	char v[64];
	size_t n = sizeof(v);
	if (rd_kafka_conf_get(conf, k, v, &n) != RD_KAFKA_CONF_OK ||
	    !wb_parse_i64(v, 0, INT32_MAX, out)) {
		wb_fail(msg, msglen, WB_ECONFIG, "kafka.%s: cannot read it", k);
		return false;
	}
	return true;
}

wb_ingest_producer *wb_ingest_producer_create_ex(const wb_config *cfg,
						 const char *topic,
						 const char *const *overrides,
						 wb_err *err, char *msg,
						 size_t msglen)
{
	wb_err dummy;
	if (!err)
		err = &dummy;
	*err = WB_ECONFIG;
	rd_kafka_conf_t *conf = wb_kafka_conf_new(cfg, msg, msglen);
	if (!conf)
		return NULL;
	bool ok = true;
	for (size_t i = 0; ok && i < sizeof(defaults) / sizeof(defaults[0]);
	     i++)
		ok = conf_default(conf, cfg, defaults[i].key, defaults[i].value,
				  msg, msglen);
	for (size_t i = 0; ok && overrides && overrides[i]; i += 2)
		ok = conf_default(conf, cfg, overrides[i], overrides[i + 1], msg,
				  msglen);
	int64_t record_max = 0, msg_max = 0;
	if (ok)
		ok = wb_config_get_int_range(cfg, "ledger.record.max.bytes", 1,
					     INT32_MAX, &record_max, msg,
					     msglen) == WB_OK &&
		     conf_int(conf, "message.max.bytes", &msg_max, msg, msglen);
	if (!ok) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	wb_ingest_producer *p = wb_xcalloc(1, sizeof(*p));
	p->topic = wb_xstrdup(topic);
	p->record_max = (size_t)record_max;
	p->msg_max = (size_t)msg_max;
	rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	rd_kafka_conf_set_opaque(conf, p);
	char errstr[512];
	p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!p->rk) {
		/* rd_kafka_new takes the conf only on success. */
		rd_kafka_conf_destroy(conf);
		wb_fail(msg, msglen, WB_ECONFIG, "kafka producer: %s", errstr);
		wb_ingest_producer_destroy(p);
		return NULL;
	}
	char sub[512];
	if (wb_kafka_partition_count(p->rk, topic, METADATA_TIMEOUT_MS, sub,
				     sizeof(sub)) < 1) {
		*err = wb_fail(msg, msglen, WB_EKAFKA, "%s; brokers %s", sub,
			       wb_config_get(cfg, "kafka.bootstrap.servers"));
		wb_ingest_producer_destroy(p);
		return NULL;
	}
	p->rkt = rd_kafka_topic_new(p->rk, topic, NULL);
	if (!p->rkt) {
		*err = wb_fail(msg, msglen, WB_EKAFKA, "topic %s: %s", topic,
			       rd_kafka_err2str(rd_kafka_last_error()));
		wb_ingest_producer_destroy(p);
		return NULL;
	}
	*err = WB_OK;
	return p;
}

void wb_ingest_producer_destroy(wb_ingest_producer *p)
{
	if (!p)
		return;
	if (p->polling) {
		atomic_store(&p->stop_polling, true);
		pthread_join(p->poller, NULL);
	}
	if (p->rkt)
		rd_kafka_topic_destroy(p->rkt);
	if (p->rk)
		rd_kafka_destroy(p->rk);
	free(p->topic);
	free(p->dlq_topic);
	free(p);
}

wb_err wb_ingest_record_check(const struct wb_ingest_record *rec,
			      size_t record_max, char *msg, size_t msglen)
{
	if (rec->value_len <= record_max)
		return WB_OK;
	return wb_fail(msg, msglen, WB_ETOOBIG,
		       "encoded event %s is %zu bytes, over "
		       "ledger.record.max.bytes (%zu): the ledger would not "
		       "record it",
		       rec->event_id ? rec->event_id : "?", rec->value_len,
		       record_max);
}

size_t wb_ingest_producer_record_max(const wb_ingest_producer *p)
{
	/* an event librdkafka would refuse is as unrecordable */
	size_t wire = p->msg_max > WIRE_ROOM ? p->msg_max - WIRE_ROOM : 0;
	return p->record_max < wire ? p->record_max : wire;
}

wb_err wb_ingest_producer_check(const wb_ingest_producer *p,
				const struct wb_ingest_record *rec, char *msg,
				size_t msglen)
{
	size_t max = wb_ingest_producer_record_max(p);
	if (max < p->record_max && rec->value_len > max)
		return wb_fail(msg, msglen, WB_ETOOBIG,
			       "encoded event %s is %zu bytes, over the %zu "
			       "that kafka.message.max.bytes (%zu) lets through",
			       rec->event_id ? rec->event_id : "?",
			       rec->value_len, max, p->msg_max);
	return wb_ingest_record_check(rec, max, msg, msglen);
}

wb_err wb_ingest_producer_send(wb_ingest_producer *p,
			       const struct wb_ingest_record *rec, char *msg,
			       size_t msglen)
{
	wb_err rc = wb_ingest_producer_check(p, rec, msg, msglen);
	if (rc)
		return rc;
	for (;;) {
		/* F_COPY: librdkafka copies value and key into the message's
		 * own allocation, so the caller's buffer is reused at once. */
		if (rd_kafka_produce(p->rkt, RD_KAFKA_PARTITION_UA,
				     RD_KAFKA_MSG_F_COPY, (void *)rec->value,
				     rec->value_len, rec->key, rec->key_len,
				     NULL) == 0) {
			p->sent++;
			if (++p->since_poll >= POLL_EVERY) {
				p->since_poll = 0;
				rd_kafka_poll(p->rk, 0);
			}
			return WB_OK;
		}
		rd_kafka_resp_err_t err = rd_kafka_last_error();
		if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			/* Back-pressure: serving delivery reports frees
			 * queue space; wait for some rather than drop. */
			rd_kafka_poll(p->rk, 100);
			continue;
		}
		if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
			return wb_fail(msg, msglen, WB_ETOOBIG,
				       "encoded event is %zu bytes, over the "
				       "producer's message.max.bytes",
				       rec->value_len);
		/* Anything else means the client cannot go on (e.g. a fatal
		 * idempotence error): the record is accepted but failed. */
		p->sent++;
		p->failed++;
		char reason[512];
		if (err == RD_KAFKA_RESP_ERR__FATAL)
			rd_kafka_fatal_error(p->rk, reason, sizeof(reason));
		else
			snprintf(reason, sizeof(reason), "%s",
				 rd_kafka_err2str(err));
		wb_log(WB_LOG_ERROR, "produce_failed",
		       "topic=%s event_id=%s order_id=%s error=%s reason=%s",
		       wb_log_q(p->topic), wb_log_q(rec->event_id),
		       wb_log_q(rec->key), rd_kafka_err2name(err),
		       wb_log_q(reason));
		return wb_fail(msg, msglen, WB_EKAFKA, "produce to %s: %s",
			       p->topic, reason);
	}
}

/* The headers of a DLQ record of raw input, and how much of the value
 * goes in (*keep): all of it, or over the cap its head, with
 * waybill.truncated = the original length. The cap leaves room for the
 * key and the other headers under message.max.bytes. */
static rd_kafka_headers_t *dlq_headers(const wb_ingest_producer *p,
				       size_t key_len, size_t value_len,
				       const char *error, const char *source,
				       size_t *keep)
{
	size_t room = WIRE_ROOM + key_len + strlen(error) + strlen(source);
	size_t cap = p->msg_max > room ? p->msg_max - room : 0;
	if (cap > WB_INGEST_DLQ_MAX_VALUE)
		cap = WB_INGEST_DLQ_MAX_VALUE;
	rd_kafka_headers_t *h = rd_kafka_headers_new(3);
	rd_kafka_header_add(h, "waybill.error", -1, error, -1);
	rd_kafka_header_add(h, "waybill.source", -1, source, -1);
	*keep = value_len;
	if (value_len > cap) {
		char n[32];
		snprintf(n, sizeof(n), "%zu", value_len);
		rd_kafka_header_add(h, "waybill.truncated", -1, n, -1);
		*keep = cap;
		wb_log(WB_LOG_WARN, "dlq_truncated",
		       "bytes=%zu kept=%zu source=%s", value_len, cap,
		       wb_log_q(source));
	}
	return h;
}

wb_err wb_ingest_producer_send_dlq(wb_ingest_producer *p, const char *topic,
				   const char *key, size_t key_len,
				   const void *value, size_t value_len,
				   const char *error, const char *source,
				   char *msg, size_t msglen)
{
	if (!p->dlq_topic || strcmp(p->dlq_topic, topic) != 0) {
		char sub[512];
		if (wb_kafka_partition_count(p->rk, topic, METADATA_TIMEOUT_MS,
					     sub, sizeof(sub)) < 1)
			return wb_fail(msg, msglen, WB_EKAFKA, "%s", sub);
		free(p->dlq_topic);
		p->dlq_topic = wb_xstrdup(topic);
	}
	size_t keep;
	rd_kafka_headers_t *h =
		dlq_headers(p, key_len, value_len, error, source, &keep);
	for (;;) {
		rd_kafka_resp_err_t err = rd_kafka_producev(
			p->rk, RD_KAFKA_V_TOPIC(topic),
			RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			RD_KAFKA_V_KEY(key, key_len),
			RD_KAFKA_V_VALUE((void *)value, keep),
			RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
		if (!err) {
			p->sent++;
			return WB_OK;
		}
		/* The headers are ours again when producev fails. */
		if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			rd_kafka_poll(p->rk, 100);
			continue;
		}
		rd_kafka_headers_destroy(h);
		return wb_fail(msg, msglen,
			       err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE
				       ? WB_ETOOBIG
				       : WB_EKAFKA,
			       "produce to %s: %s", topic,
			       rd_kafka_err2str(err));
	}
}

wb_err wb_ingest_producer_check_topic(wb_ingest_producer *p, const char *topic,
				      char *msg, size_t msglen)
{
	char sub[512];
	if (wb_kafka_partition_count(p->rk, topic, METADATA_TIMEOUT_MS, sub,
				     sizeof(sub)) < 1)
		return wb_fail(msg, msglen, WB_EKAFKA, "%s", sub);
	return WB_OK;
}

static void *poller_main(void *arg)
{
	wb_ingest_producer *p = arg;
	/* rd_kafka_poll returns as soon as a report is served, so an ack
	 * reaches its caller without waiting for the timeout. */
	while (!atomic_load(&p->stop_polling))
		rd_kafka_poll(p->rk, 100);
	return NULL;
}

wb_err wb_ingest_producer_start(wb_ingest_producer *p,
				wb_ingest_delivery_fn on_delivery, char *msg,
				size_t msglen)
{
	if (p->polling)
		return wb_fail(msg, msglen, WB_EINVAL, "producer started twice");
	p->on_delivery = on_delivery;
	int e = pthread_create(&p->poller, NULL, poller_main, p);
	if (e)
		return wb_fail(msg, msglen, WB_ENOMEM,
			       "cannot start the delivery thread: %s",
			       strerror(e));
	p->polling = true;
	return WB_OK;
}

/* Queues one record with headers h (taken on success, destroyed on
 * failure) and opaque, without waiting. */
static wb_err produce_async(wb_ingest_producer *p, const char *topic,
			    const void *key, size_t key_len, const void *value,
			    size_t value_len, rd_kafka_headers_t *h,
			    void *opaque, char *msg, size_t msglen)
{
	rd_kafka_resp_err_t err = rd_kafka_producev(
		p->rk, RD_KAFKA_V_TOPIC(topic),
		RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		RD_KAFKA_V_KEY(key, key_len),
		RD_KAFKA_V_VALUE((void *)value, value_len),
		RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(opaque),
		RD_KAFKA_V_END);
	if (!err) {
		p->sent++;
		return WB_OK;
	}
	/* The headers are ours again when producev fails. */
	if (h)
		rd_kafka_headers_destroy(h);
	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		char reason[512];
		rd_kafka_fatal_error(p->rk, reason, sizeof(reason));
		return wb_fail(msg, msglen, WB_EKAFKA, "produce to %s: %s",
			       topic, reason);
	}
	return wb_fail(msg, msglen,
		       err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ? WB_ETOOBIG
								  : WB_EKAFKA,
		       "produce to %s: %s", topic, rd_kafka_err2str(err));
}

wb_err wb_ingest_producer_send_async(wb_ingest_producer *p, const char *topic,
				     const struct wb_ingest_record *rec,
				     const char *const *headers, void *opaque,
				     char *msg, size_t msglen)
{
	if (!topic || strcmp(topic, p->topic) == 0) {
		wb_err rc = wb_ingest_producer_check(p, rec, msg, msglen);
		if (rc)
			return rc;
	}
	rd_kafka_headers_t *h = NULL;
	if (headers) {
		h = rd_kafka_headers_new(4);
		for (size_t i = 0; headers[i]; i += 2)
			rd_kafka_header_add(h, headers[i], -1, headers[i + 1],
					    -1);
	}
	return produce_async(p, topic ? topic : p->topic, rec->key,
			     rec->key_len, rec->value, rec->value_len, h,
			     opaque, msg, msglen);
}

wb_err wb_ingest_producer_send_dlq_async(wb_ingest_producer *p,
					 const char *topic, const char *key,
					 size_t key_len, const void *value,
					 size_t value_len, const char *error,
					 const char *source, void *opaque,
					 char *msg, size_t msglen)
{
	size_t keep;
	rd_kafka_headers_t *h =
		dlq_headers(p, key_len, value_len, error, source, &keep);
	return produce_async(p, topic, key, key_len, value, keep, h, opaque,
			     msg, msglen);
}

wb_err wb_ingest_producer_flush(wb_ingest_producer *p, int timeout_ms,
				char *msg, size_t msglen)
{
	if (rd_kafka_flush(p->rk, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR)
		return WB_OK;
	/* Whatever is left is purged so that its delivery reports (with
	 * ERR__PURGE_*) are counted and logged as failures: the caller then
	 * knows exactly which events to resend. An in-flight one may in fact
	 * have been written; a resend is deduplicated by event_id. */
	uint64_t pending = p->sent - (p->acked + p->failed);
	rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
	rd_kafka_flush(p->rk, 1000);
	return wb_fail(msg, msglen, WB_ETIMEOUT,
		       "%" PRIu64 " events not acknowledged within %d ms; "
		       "purged and counted as failed",
		       pending, timeout_ms);
}

void wb_ingest_producer_counts(const wb_ingest_producer *p,
			       struct wb_ingest_counts *out)
{
	out->sent = p->sent;
	out->acked = p->acked;
	out->failed = p->failed;
}
