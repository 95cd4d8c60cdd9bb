/*
 * ledger_service.c — waybill-ledger: consumes <prefix>events, appends each
 * accepted event to the store, publishes committed entries to
 * <prefix>ledger and rejected records to <prefix>dlq.
 *
 * One thread does everything, because librdkafka 2.0.2's batch consume API
 * can lose or duplicate messages across rebalances: records come from
 * rd_kafka_consumer_poll() one at a time and are batched here. A batch ends
 * at ledger.batch.max records or ledger.batch.wait.ms after its first one,
 * and is committed as one synced WriteBatch together with the next offset
 * of every partition it read (see ledger_store.c). On assignment the
 * consumer starts each partition at the offset stored in the ledger, never
 * at Kafka's committed offset, which is written only for lag monitoring.
 *
 * Publishing is an outbox: the log itself holds what must be sent, and a
 * per-partition cursor (stored with later batches) says how far Kafka has
 * acknowledged. After a crash everything past the cursor is sent again, so
 * orders.ledger may repeat a seq but never skips one; consumers skip seqs
 * they have applied.
 */
#include "wb_ledger.h"

#include <assert.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define DLQ_FLAG (1ULL << 63)
#define PUMP_MAX 20000 /* backlog entries published per loop turn */

struct part {
	int64_t sent;   /* highest seq handed to the producer */
	int64_t acked;  /* highest seq acknowledged with no gap before it */
	bool resend;    /* a delivery failed: send again from acked + 1 */
};

struct pending_dlq {
	struct wb_dlq_record rec;
	wb_buf data; /* topic, key, value and error copied */
};

struct svc {
	const wb_config *cfg;
	wb_ledger *store;
	rd_kafka_t *consumer, *producer;
	rd_kafka_topic_t *ledger_topic, *dlq_topic;
	char events_topic[256], ledger_name[256], dlq_name[256];
	char group[256], instance[300];
	int32_t ledger_partitions;

	struct part *parts;
	int32_t nparts;

	struct pending_dlq *dlq; /* staged in the batch being built */
	size_t ndlq, capdlq;
	struct pending_dlq *dlq_fly; /* staged in the batch being committed */
	size_t ndlq_fly, capdlq_fly;
	int64_t submitted_us;
	int64_t batch_now_ms; /* recorded_at of the batch's entries */
	bool dlq_resend;
	uint64_t *dlq_done;
	size_t ndlq_done, capdlq_done;

	size_t batch_records;
	int64_t batch_started_us;
	int64_t batch_max, batch_wait_us;
	size_t record_max;
	bool publish;
	bool cursor_dirty;
	int64_t last_cursor_commit_us, last_kafka_commit_us;

	/* counters */
	uint64_t consumed, appended, duplicates, rejected, published,
		publish_failed, commits;
	uint64_t duplicates_differing; /* skipped, but the payload differed */
	uint64_t rejected_merchant;    /* of rejected: order of another
					  merchant */
	uint64_t rejected_event_id;    /* of rejected: event_id recorded for
					  another order/merchant/type */
	int64_t commit_us_total;
	int64_t first_record_us, last_commit_us; /* for the append rate */
	bool fatal;
	char fatal_msg[512];
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static struct part *part_get(struct svc *s, int32_t p)
{
	if (p >= s->nparts) {
		int32_t n = p + 1;
		s->parts = wb_xrealloc(s->parts, (size_t)n * sizeof(*s->parts));
		for (int32_t i = s->nparts; i < n; i++) {
			s->parts[i].sent = s->parts[i].acked =
				wb_ledger_published(s->store, i);
			s->parts[i].resend = false;
		}
		s->nparts = n;
	}
	return &s->parts[p];
}

static void fatal(struct svc *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void fatal(struct svc *s, const char *fmt, ...)
{
	if (s->fatal)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->fatal_msg, sizeof(s->fatal_msg), fmt, ap);
	va_end(ap);
	s->fatal = true;
	stop_requested = 1;
}

/* ---- producing ------------------------------------------------------- */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *ud)
{
	(void)rk;
	struct svc *s = ud;
	uint64_t tag = (uint64_t)(uintptr_t)m->_private;
	if (tag & DLQ_FLAG) {
		uint64_t id = tag & ~DLQ_FLAG;
		if (m->err) {
			wb_log(WB_LOG_WARN, "dlq_publish_failed",
			       "id=%llu err=%s", (unsigned long long)id,
			       rd_kafka_err2name(m->err));
			s->dlq_resend = true;
			return;
		}
		if (s->ndlq_done == s->capdlq_done) {
			s->capdlq_done = s->capdlq_done ? 2 * s->capdlq_done : 64;
			s->dlq_done = wb_xrealloc(s->dlq_done,
						  s->capdlq_done * sizeof(uint64_t));
		}
		s->dlq_done[s->ndlq_done++] = id;
		return;
	}
	int32_t p = m->partition;
	int64_t seq = (int64_t)(tag >> 16);
	struct part *pt = part_get(s, p);
	if (m->err) {
		s->publish_failed++;
		wb_log(WB_LOG_WARN, "publish_failed",
		       "partition=%d seq=%lld err=%s", p, (long long)seq,
		       rd_kafka_err2name(m->err));
		pt->resend = true;
		return;
	}
	if (seq == pt->acked + 1) {
		pt->acked = seq;
		s->published++;
		s->cursor_dirty = true;
	}
}

static bool produce(struct svc *s, rd_kafka_topic_t *t, int32_t partition,
		    const void *key, size_t keylen, wb_buf *value,
		    uint64_t tag, rd_kafka_headers_t *hdrs)
{
	for (;;) {
		rd_kafka_resp_err_t err;
		if (hdrs) {
			err = rd_kafka_producev(
				s->producer, RD_KAFKA_V_RKT(t),
				RD_KAFKA_V_PARTITION(partition),
				RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				RD_KAFKA_V_KEY(key, keylen),
				RD_KAFKA_V_VALUE(value->data, value->len),
				RD_KAFKA_V_HEADERS(hdrs),
				RD_KAFKA_V_OPAQUE((void *)(uintptr_t)tag),
				RD_KAFKA_V_END);
		} else {
			err = rd_kafka_produce(t, partition,
					       RD_KAFKA_MSG_F_COPY, value->data,
					       value->len, key, keylen,
					       (void *)(uintptr_t)tag)
				      ? rd_kafka_last_error()
				      : RD_KAFKA_RESP_ERR_NO_ERROR;
		}
		if (!err)
			return true;
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			wb_log(WB_LOG_WARN, "produce_failed", "topic=%s err=%s",
			       rd_kafka_topic_name(t), rd_kafka_err2name(err));
			if (hdrs)
				rd_kafka_headers_destroy(hdrs);
			return false;
		}
		rd_kafka_poll(s->producer, 10);
	}
}

/* Publishes one committed entry to <prefix>ledger partition p, keyed by
 * its order id. */
static bool publish_entry(struct svc *s, int32_t p, int64_t seq,
			  const char *order_id, size_t order_len,
			  const uint8_t *entry, size_t len, wb_buf *scratch)
{
	wb_buf_reset(scratch);
	wb_avro_frame(WB_SCHEMA_LEDGER_ENTRY, scratch);
	wb_buf_append(scratch, entry, len);
	uint64_t tag = (uint64_t)seq << 16 | (uint32_t)p;
	if (!produce(s, s->ledger_topic, p, order_id, order_len, scratch, tag,
		     NULL))
		return false;
	part_get(s, p)->sent = seq;
	return true;
}

/* Sends entries the producer has not been given yet (start-up backlog,
 * or a resend after a failed delivery), a bounded number per call. */
static void pump_backlog(struct svc *s)
{
	if (!s->publish)
		return;
	wb_buf scratch;
	wb_buf_init(&scratch);
	int budget = PUMP_MAX;
	int32_t np = wb_ledger_partition_count(s->store);
	for (int32_t p = 0; p < np && budget > 0; p++) {
		struct part *pt = part_get(s, p);
		int64_t head;
		wb_ledger_head(s->store, p, &head, NULL);
		if (pt->resend) {
			pt->resend = false;
			pt->sent = pt->acked;
		}
		if (pt->sent >= head)
			continue;
		wb_ledger_iter *it =
			wb_ledger_iter_create(s->store, p, pt->sent + 1);
		const uint8_t *entry;
		size_t len;
		while (budget-- > 0 && wb_ledger_iter_next(it, &entry, &len)) {
			struct wb_entry e;
			struct wb_event_view v;
			char msg[256];
			if (wb_entry_parse(entry, len, &e, msg, sizeof(msg)) ||
			    wb_event_peek(e.event, e.event_len, &v, msg,
					  sizeof(msg))) {
				fatal(s, "stored entry %d/%lld unreadable: %s",
				      p, (long long)(pt->sent + 1), msg);
				break;
			}
			if (e.seq != pt->sent + 1) {
				fatal(s, "partition %d: log gap after seq %lld",
				      p, (long long)pt->sent);
				break;
			}
			if (!publish_entry(s, p, e.seq, v.order_id.p,
					   v.order_id.n, entry, len, &scratch))
				break;
		}
		wb_ledger_iter_destroy(it);
	}
	wb_buf_finish(&scratch);
}

static void publish_dlq(struct svc *s, const struct wb_dlq_record *r)
{
	rd_kafka_headers_t *h = rd_kafka_headers_new(2);
	char source[512];
	snprintf(source, sizeof(source), "waybill-ledger %s/%d@%lld",
		 r->topic, r->partition, (long long)r->offset);
	rd_kafka_header_add(h, "waybill.error", -1, r->error, -1);
	rd_kafka_header_add(h, "waybill.source", -1, source, -1);
	wb_buf v = {(uint8_t *)r->value, r->value_len, r->value_len};
	if (!produce(s, s->dlq_topic, RD_KAFKA_PARTITION_UA, r->key,
		     r->key_len, &v, r->id | DLQ_FLAG, h))
		s->dlq_resend = true;
}

static void dlq_resend_one(const struct wb_dlq_record *r, void *ud)
{
	publish_dlq(ud, r);
}

/* ---- consuming ------------------------------------------------------- */

static void stage_dlq(struct svc *s, const rd_kafka_message_t *m,
		      const char *error)
{
	if (s->ndlq == s->capdlq) {
		s->capdlq = s->capdlq ? 2 * s->capdlq : 16;
		s->dlq = wb_xrealloc(s->dlq, s->capdlq * sizeof(*s->dlq));
	}
	struct pending_dlq *d = &s->dlq[s->ndlq++];
	memset(d, 0, sizeof(*d));
	wb_buf_init(&d->data);
	const char *topic = rd_kafka_topic_name(m->rkt);
	/* copy everything into one buffer; pointers are set after it stops
	 * moving */
	size_t topic_off = 0;
	wb_buf_append(&d->data, topic, strlen(topic) + 1);
	size_t err_off = d->data.len;
	wb_buf_append(&d->data, error, strlen(error) + 1);
	size_t key_off = d->data.len;
	wb_buf_append(&d->data, m->key, m->key ? m->key_len : 0);
	size_t val_off = d->data.len;
	wb_buf_append(&d->data, m->payload, m->payload ? m->len : 0);
	d->rec.topic = (const char *)d->data.data + topic_off;
	d->rec.error = (const char *)d->data.data + err_off;
	d->rec.key = m->key ? d->data.data + key_off : NULL;
	d->rec.key_len = m->key ? m->key_len : 0;
	d->rec.value = m->payload ? d->data.data + val_off : NULL;
	d->rec.value_len = m->payload ? m->len : 0;
	d->rec.partition = m->partition;
	d->rec.offset = m->offset;
	wb_ledger_batch_dlq(s->store, &d->rec);
	s->rejected++;
	wb_log(WB_LOG_WARN, "record_rejected",
	       "topic=%s partition=%d offset=%lld error=%s", topic,
	       m->partition, (long long)m->offset, wb_log_q(error));
}

/* A slice as a NUL-terminated string, cut at buflen - 1 bytes. */
static const char *slice_str(struct wb_slice v, char *buf, size_t buflen)
{
	snprintf(buf, buflen, "%.*s", (int)(v.n < buflen ? v.n : buflen - 1),
		 v.p);
	return buf;
}

static void process_record(struct svc *s, const rd_kafka_message_t *m,
			   wb_buf *reenc)
{
	char msg[512], eid[160];
	const uint8_t *body;
	size_t len;
	struct wb_event_view v;
	s->consumed++;
	wb_ledger_batch_offset(s->store, s->events_topic, m->partition,
			       m->offset + 1);
	if (!m->payload || m->len == 0) {
		stage_dlq(s, m, "empty record (no value)");
		return;
	}
	if (m->len > s->record_max) {
		snprintf(msg, sizeof(msg),
			 "record of %zu bytes over ledger.record.max.bytes "
			 "(%zu)",
			 m->len, s->record_max);
		stage_dlq(s, m, msg);
		return;
	}
	if (wb_avro_unframe(WB_SCHEMA_ORDER_EVENT, m->payload, m->len, &body,
			    &len, msg, sizeof(msg)) ||
	    wb_event_peek(body, len, &v, msg, sizeof(msg))) {
		stage_dlq(s, m, msg);
		return;
	}
	if (!v.canonical) {
		/* hash only the one encoding every correct writer produces */
		json_t *j = NULL;
		wb_buf_reset(reenc);
		if (wb_avro_decode(WB_SCHEMA_ORDER_EVENT, body, len, &j, msg,
				   sizeof(msg)) ||
		    wb_avro_encode(WB_SCHEMA_ORDER_EVENT, j, reenc, msg,
				   sizeof(msg)) ||
		    wb_event_peek(reenc->data, reenc->len, &v, msg,
				  sizeof(msg))) {
			json_decref(j);
			stage_dlq(s, m, msg);
			return;
		}
		json_decref(j);
		body = reenc->data;
		len = reenc->len;
	}
	if ((int32_t)m->partition >= s->ledger_partitions) {
		fatal(s, "%s has partition %d but %s only %d", s->events_topic,
		      m->partition, s->ledger_name, s->ledger_partitions);
		return;
	}
	enum wb_append_outcome out;
	wb_err rc = wb_ledger_batch_add(s->store, m->partition, body, len, &v,
					s->batch_now_ms, &out, msg,
					sizeof(msg));
	if (rc) {
		fatal(s, "%s", msg);
		return;
	}
	switch (out) {
	case WB_APPEND_ADDED:
		s->appended++;
		break;
	case WB_APPEND_DUPLICATE:
		s->duplicates++;
		break;
	case WB_APPEND_DUPLICATE_DIFFERS:
		/* skipped like any redelivery, but never silently */
		s->duplicates_differing++;
		wb_log(WB_LOG_WARN, "duplicate_differs",
		       "event_id=%s topic=%s partition=%d offset=%lld msg=%s",
		       wb_log_q(slice_str(v.event_id, eid, sizeof(eid))),
		       rd_kafka_topic_name(m->rkt), m->partition,
		       (long long)m->offset, wb_log_q(msg));
		break;
	case WB_APPEND_REFUSED_MERCHANT:
		s->rejected_merchant++;
		stage_dlq(s, m, msg);
		break;
	case WB_APPEND_REFUSED_EVENT_ID:
		s->rejected_event_id++;
		stage_dlq(s, m, msg);
		break;
	}
}

static void free_dlq_list(struct pending_dlq *list, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		wb_buf_finish(&list[i].data);
	*n = 0;
}

/* A commit finished: hand its entries and DLQ records to the producer.
 * Nothing reaches Kafka before it is durable in the ledger. */
static void on_committed(struct svc *s)
{
	s->last_commit_us = wb_mono_us();
	s->commit_us_total += s->last_commit_us - s->submitted_us;
	s->commits++;
	if (s->publish) {
		wb_buf scratch;
		wb_buf_init(&scratch);
		size_t n = wb_ledger_committed_count(s->store);
		for (size_t i = 0; i < n && !s->fatal; i++) {
			struct wb_ledger_appended a;
			wb_ledger_committed_entry(s->store, i, &a);
			if (a.seq != part_get(s, a.partition)->sent + 1)
				continue; /* backlog first: pump sends it */
			publish_entry(s, a.partition, a.seq, a.order_id,
				      strlen(a.order_id), a.entry, a.entry_len,
				      &scratch);
		}
		wb_buf_finish(&scratch);
	}
	for (size_t i = 0; i < s->ndlq_fly; i++)
		publish_dlq(s, &s->dlq_fly[i].rec);
	free_dlq_list(s->dlq_fly, &s->ndlq_fly);
}

/* Collects the commit in flight, waiting up to timeout_ms (-1: until it
 * is done). */
static void collect_commit(struct svc *s, int timeout_ms)
{
	char msg[512];
	wb_err rc;
	if (wb_ledger_commit_wait(s->store, timeout_ms, msg, sizeof(msg),
				  &rc) != 1)
		return;
	if (rc)
		fatal(s, "%s", msg);
	else
		on_committed(s);
}

/* Seals the batch being built (with the outbox bookkeeping) and hands it
 * to the store's commit thread; the previous commit is collected first. */
static void commit_batch(struct svc *s, bool force)
{
	if (s->fatal)
		return;
	for (int32_t p = 0; p < s->nparts; p++)
		wb_ledger_batch_published(s->store, p, s->parts[p].acked);
	for (size_t i = 0; i < s->ndlq_done; i++)
		wb_ledger_batch_dlq_sent(s->store, s->dlq_done[i]);
	s->ndlq_done = 0;
	bool cursor_only = s->batch_records == 0;
	if (wb_ledger_batch_empty(s->store) && !s->cursor_dirty)
		return;
	if (cursor_only && !force &&
	    wb_mono_us() - s->last_cursor_commit_us < 1000000)
		return;
	collect_commit(s, -1);
	if (s->fatal)
		return;
	char msg[512];
	s->submitted_us = wb_mono_us();
	if (wb_ledger_batch_submit(s->store, msg, sizeof(msg))) {
		fatal(s, "%s", msg);
		return;
	}
	/* the staged DLQ records now travel with the batch in flight */
	struct pending_dlq *tmp = s->dlq_fly;
	size_t tmpcap = s->capdlq_fly;
	s->dlq_fly = s->dlq;
	s->ndlq_fly = s->ndlq;
	s->capdlq_fly = s->capdlq;
	s->dlq = tmp;
	s->capdlq = tmpcap;
	s->ndlq = 0;
	s->cursor_dirty = false;
	s->last_cursor_commit_us = wb_mono_us();
	s->batch_records = 0;
}

static void commit_kafka_offsets(struct svc *s)
{
	/* For lag monitoring only: the ledger's own offsets are the truth. */
	rd_kafka_topic_partition_list_t *a = NULL;
	if (rd_kafka_assignment(s->consumer, &a) || !a)
		return;
	for (int i = 0; i < a->cnt; i++) {
		int64_t off = wb_ledger_offset(s->store, s->events_topic,
					       a->elems[i].partition);
		a->elems[i].offset = off;
	}
	rd_kafka_commit(s->consumer, a, 1);
	rd_kafka_topic_partition_list_destroy(a);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *parts, void *ud)
{
	struct svc *s = ud;
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		for (int i = 0; i < parts->cnt; i++) {
			int64_t off = wb_ledger_offset(s->store,
						       parts->elems[i].topic,
						       parts->elems[i].partition);
			parts->elems[i].offset =
				off >= 0 ? off : RD_KAFKA_OFFSET_BEGINNING;
			wb_log(WB_LOG_INFO, "partition_assigned",
			       "topic=%s partition=%d offset=%lld",
			       parts->elems[i].topic,
			       parts->elems[i].partition, (long long)off);
		}
		rd_kafka_assign(rk, parts);
		return;
	}
	/* Revoked (or an error): finish the batch we hold, then let go. */
	commit_batch(s, true);
	collect_commit(s, -1);
	wb_log(WB_LOG_INFO, "partitions_revoked", "count=%d reason=%s",
	       parts ? parts->cnt : 0, rd_kafka_err2name(err));
	rd_kafka_assign(rk, NULL);
}

/* ---- set-up ---------------------------------------------------------- */

static rd_kafka_t *make_client(struct svc *s, rd_kafka_type_t type,
			       const char *const *kv, char *msg, size_t msglen)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	/* defaults first, so kafka.* keys from the config can override */
	for (const char *const *p = kv; *p; p += 2)
		if (wb_kafka_conf_set(conf, p[0], p[1], msg, msglen)) {
			rd_kafka_conf_destroy(conf);
			return NULL;
		}
	rd_kafka_conf_destroy(conf);
	conf = wb_kafka_conf_new(s->cfg, msg, msglen);
	if (!conf)
		return NULL;
	for (const char *const *p = kv; *p; p += 2) {
		char key[128];
		snprintf(key, sizeof(key), "kafka.%s", p[0]);
		if (!wb_config_is_set(s->cfg, key) &&
		    wb_kafka_conf_set(conf, p[0], p[1], msg, msglen)) {
			rd_kafka_conf_destroy(conf);
			return NULL;
		}
	}
	rd_kafka_conf_set_opaque(conf, s);
	if (type == RD_KAFKA_PRODUCER)
		rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	else
		rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
	char errstr[512];
	rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
	if (!rk) {
		wb_fail(msg, msglen, WB_EKAFKA, "%s", errstr);
		return NULL;
	}
	return rk;
}

/* Group and static-membership ids. Two ledgers must never share an
 * instance id (the broker fences the older one), and ledgers of different
 * topic prefixes must not share a group (the assignor would hand one the
 * other's partitions). */
static void default_group_ids(const wb_config *cfg, char *group,
			      size_t glen, char *instance, size_t ilen)
{
	const char *g = wb_config_get(cfg, "ledger.group.id");
	if (g) {
		snprintf(group, glen, "%s", g);
	} else {
		const char *prefix = wb_config_get(cfg, "topic.prefix");
		size_t n = strlen(prefix);
		if (n && prefix[n - 1] == '.')
			n--;
		snprintf(group, glen, "waybill-ledger.%.*s", (int)n, prefix);
	}
	const char *i = wb_config_get(cfg, "ledger.instance.id");
	if (i) {
		snprintf(instance, ilen, "%s", i);
		return;
	}
	char *abs = realpath(wb_config_get(cfg, "ledger.data.dir"), NULL);
	const char *dir = abs ? abs : wb_config_get(cfg, "ledger.data.dir");
	uint64_t h = wb_fnv1a(WB_FNV_OFFSET, dir, strlen(dir));
	free(abs);
	snprintf(instance, ilen, "%s-%016llx", group, (unsigned long long)h);
}

static wb_err svc_setup(struct svc *s, char *msg, size_t msglen)
{
	const wb_config *cfg = s->cfg;
	wb_kafka_topic(cfg, "events", s->events_topic, sizeof(s->events_topic));
	wb_kafka_topic(cfg, "ledger", s->ledger_name, sizeof(s->ledger_name));
	wb_kafka_topic(cfg, "dlq", s->dlq_name, sizeof(s->dlq_name));
	s->batch_max = wb_config_get_int(cfg, "ledger.batch.max");
	if (s->batch_max <= 0)
		s->batch_max = 1;
	s->batch_wait_us = wb_config_get_int(cfg, "ledger.batch.wait.ms") * 1000;
	s->record_max = (size_t)wb_config_get_int(cfg, "ledger.record.max.bytes");
	s->publish = wb_config_get_bool(cfg, "ledger.publish");

	struct wb_ledger_options o = {
		.dir = wb_config_get(cfg, "ledger.data.dir"),
		.sync = wb_config_get_bool(cfg, "ledger.sync"),
		.order_cache = (size_t)wb_config_get_int(cfg, "ledger.order.cache"),
	};
	wb_err rc = wb_ledger_open(&o, &s->store, msg, msglen);
	if (rc)
		return rc;
	static const char *const producer_kv[] = {
		"enable.idempotence", "true",
		"acks", "all",
		"linger.ms", "5",
		"batch.num.messages", "10000",
		"queue.buffering.max.messages", "1000000",
		"compression.type", "lz4",
		NULL};
	s->producer = make_client(s, RD_KAFKA_PRODUCER, producer_kv, msg,
				  msglen);
	if (!s->producer)
		return WB_EKAFKA;
	default_group_ids(cfg, s->group, sizeof(s->group), s->instance,
			  sizeof(s->instance));
	const char *consumer_kv[] = {
		"group.id", s->group,
		"group.instance.id", s->instance,
		"enable.auto.commit", "false",
		"enable.auto.offset.store", "false",
		"auto.offset.reset", "error",
		"session.timeout.ms", "10000",
		"fetch.max.bytes", "52428800",
		"max.partition.fetch.bytes", "4194304",
		"queued.max.messages.kbytes", "262144",
		NULL};
	s->consumer = make_client(s, RD_KAFKA_CONSUMER, consumer_kv, msg,
				  msglen);
	if (!s->consumer)
		return WB_EKAFKA;
	rd_kafka_poll_set_consumer(s->consumer);

	int ev = wb_kafka_partition_count(s->producer, s->events_topic, 10000,
					  msg, msglen);
	if (ev < 0)
		return WB_EKAFKA;
	s->ledger_partitions = wb_kafka_partition_count(
		s->producer, s->ledger_name, 10000, msg, msglen);
	if (s->ledger_partitions < 0)
		return WB_EKAFKA;
	if (wb_kafka_partition_count(s->producer, s->dlq_name, 10000, msg,
				     msglen) < 0)
		return WB_EKAFKA;
	if (s->ledger_partitions < ev)
		return wb_fail(msg, msglen, WB_ECONFIG,
			       "%s has %d partitions but %s has %d: the ledger "
			       "topic needs at least as many",
			       s->ledger_name, s->ledger_partitions,
			       s->events_topic, ev);
	s->ledger_topic = rd_kafka_topic_new(s->producer, s->ledger_name, NULL);
	s->dlq_topic = rd_kafka_topic_new(s->producer, s->dlq_name, NULL);

	rd_kafka_topic_partition_list_t *sub =
		rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(sub, s->events_topic,
					  RD_KAFKA_PARTITION_UA);
	rd_kafka_resp_err_t err = rd_kafka_subscribe(s->consumer, sub);
	rd_kafka_topic_partition_list_destroy(sub);
	if (err)
		return wb_fail(msg, msglen, WB_EKAFKA, "subscribe %s: %s",
			       s->events_topic, rd_kafka_err2str(err));
	/* what a previous run committed but did not get acknowledged */
	wb_ledger_dlq_each(s->store, dlq_resend_one, s);
	return WB_OK;
}

static void svc_teardown(struct svc *s)
{
	if (s->consumer) {
		rd_kafka_consumer_close(s->consumer);
		rd_kafka_destroy(s->consumer);
	}
	if (s->ledger_topic)
		rd_kafka_topic_destroy(s->ledger_topic);
	if (s->dlq_topic)
		rd_kafka_topic_destroy(s->dlq_topic);
	if (s->producer)
		rd_kafka_destroy(s->producer);
	wb_ledger_close(s->store);
	free_dlq_list(s->dlq, &s->ndlq);
	free_dlq_list(s->dlq_fly, &s->ndlq_fly);
	free(s->dlq);
	free(s->dlq_fly);
	free(s->dlq_done);
	free(s->parts);
}

/* One stats line. append_rate is appended events over the time from the
 * first record consumed to the last commit, so idle time before and after
 * a load does not dilute it (ops/bench-ledger reads it). */
static void log_stats(struct svc *s)
{
	int64_t lag = 0;
	for (int32_t p = 0; p < s->nparts; p++) {
		int64_t head;
		wb_ledger_head(s->store, p, &head, NULL);
		lag += head - s->parts[p].acked;
	}
	double busy = s->last_commit_us > s->first_record_us
			      ? (double)(s->last_commit_us - s->first_record_us) / 1e6
			      : 0.0;
	wb_log(WB_LOG_INFO, "stats",
	       "consumed=%llu appended=%llu duplicates=%llu "
	       "duplicates_differing=%llu rejected=%llu "
	       "rejected_merchant=%llu rejected_event_id=%llu "
	       "published=%llu publish_failed=%llu unpublished=%lld "
	       "commits=%llu avg_commit_us=%lld busy_s=%.3f append_rate=%.0f",
	       (unsigned long long)s->consumed,
	       (unsigned long long)s->appended,
	       (unsigned long long)s->duplicates,
	       (unsigned long long)s->duplicates_differing,
	       (unsigned long long)s->rejected,
	       (unsigned long long)s->rejected_merchant,
	       (unsigned long long)s->rejected_event_id,
	       (unsigned long long)s->published,
	       (unsigned long long)s->publish_failed, (long long)lag,
	       (unsigned long long)s->commits,
	       (long long)(s->commits ? s->commit_us_total / (int64_t)s->commits
				      : 0),
	       busy, busy > 0 ? (double)s->appended / busy : 0.0);
}

static void run_loop(struct svc *s)
{
	wb_buf reenc;
	wb_buf_init(&reenc);
	int64_t stats_every = wb_config_get_int(s->cfg, "ledger.stats.interval.ms") * 1000;
	int64_t last_stats = wb_mono_us();
	while (!stop_requested) {
		int timeout = 100;
		if (s->batch_records) {
			int64_t left = s->batch_started_us + s->batch_wait_us -
				       wb_mono_us();
			timeout = left > 0 ? (int)(left / 1000) : 0;
		}
		if (wb_ledger_commit_inflight(s->store))
			timeout = 1; /* come back soon to collect it */
		rd_kafka_message_t *m =
			rd_kafka_consumer_poll(s->consumer, timeout);
		bool got = m != NULL;
		if (m) {
			if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
			    m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
				fatal(s, "%s [%d]: stored offset no longer on "
					 "the broker (%s); refusing to skip "
					 "events",
				      m->rkt ? rd_kafka_topic_name(m->rkt) : "?",
				      m->partition, rd_kafka_message_errstr(m));
			} else if (m->err) {
				if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
					wb_log(WB_LOG_WARN, "consume_error",
					       "err=%s msg=%s",
					       rd_kafka_err2name(m->err),
					       wb_log_q(rd_kafka_message_errstr(m)));
			} else {
				if (s->batch_records++ == 0) {
					s->batch_started_us = wb_mono_us();
					s->batch_now_ms = wb_now_ms();
				}
				if (!s->first_record_us)
					s->first_record_us = s->batch_started_us;
				process_record(s, m, &reenc);
			}
			rd_kafka_message_destroy(m);
		}
		collect_commit(s, 0);
		/* A batch is submitted when full, or once its wait is over and
		 * the previous commit has finished: while a commit is in flight
		 * the batch keeps growing, so batches match the commit latency
		 * under load and stay small (low latency) when idle. The clock
		 * is read every 64 records, not for each one. */
		if (s->batch_records >= (size_t)s->batch_max ||
		    (s->batch_records && (!got || !(s->batch_records & 63)) &&
		     !wb_ledger_commit_inflight(s->store) &&
		     wb_mono_us() - s->batch_started_us >= s->batch_wait_us))
			commit_batch(s, true);
		else if (!s->batch_records)
			commit_batch(s, false); /* outbox cursor, at most 1/s */
		rd_kafka_poll(s->producer, 0);
		char ferr[256];
		if (rd_kafka_fatal_error(s->consumer, ferr, sizeof(ferr)) ||
		    rd_kafka_fatal_error(s->producer, ferr, sizeof(ferr)))
			fatal(s, "Kafka client failed: %s", ferr);
		if (s->dlq_resend) {
			s->dlq_resend = false;
			wb_ledger_dlq_each(s->store, dlq_resend_one, s);
		}
		/* Heads include staged and in-flight entries; only when no
		 * batch is open or in flight are they all durable. */
		if (!s->batch_records && !wb_ledger_commit_inflight(s->store))
			pump_backlog(s);
		int64_t now = wb_mono_us();
		if (now - s->last_kafka_commit_us > 1000000) {
			commit_kafka_offsets(s);
			s->last_kafka_commit_us = now;
		}
		if (stats_every > 0 && now - last_stats >= stats_every) {
			log_stats(s);
			last_stats = now;
		}
	}
	/* orderly stop: commit what we hold, wait for acknowledgements */
	commit_batch(s, true);
	collect_commit(s, -1);
	for (int i = 0; i < 100 && !s->fatal; i++) {
		pump_backlog(s);
		rd_kafka_flush(s->producer, 100);
		bool all = true;
		for (int32_t p = 0; p < s->nparts; p++) {
			int64_t head;
			wb_ledger_head(s->store, p, &head, NULL);
			if (s->parts[p].acked < head)
				all = false;
		}
		if (all && rd_kafka_outq_len(s->producer) == 0)
			break;
	}
	commit_batch(s, true);
	collect_commit(s, -1);
	log_stats(s);
	wb_buf_finish(&reenc);
}

int wb_ledger_service_run(const wb_config *cfg)
{
	struct svc s = {.cfg = cfg};
	char msg[512] = "";
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	wb_err rc = svc_setup(&s, msg, sizeof(msg));
	if (rc) {
		wb_log(WB_LOG_ERROR, "startup_failed", "code=%s msg=%s",
		       wb_strerror(rc), wb_log_q(msg));
		svc_teardown(&s);
		return rc == WB_ECONFIG ? 2 : 1;
	}
	wb_log(WB_LOG_INFO, "started",
	       "events=%s ledger=%s dlq=%s group=%s instance=%s data_dir=%s "
	       "sync=%s batch_max=%lld",
	       s.events_topic, s.ledger_name, s.dlq_name, s.group, s.instance,
	       wb_log_q(wb_config_get(cfg, "ledger.data.dir")),
	       wb_config_get(cfg, "ledger.sync"), (long long)s.batch_max);
	run_loop(&s);
	int status = 0;
	if (s.fatal) {
		wb_log(WB_LOG_ERROR, "fatal", "msg=%s", wb_log_q(s.fatal_msg));
		status = 1;
	}
	svc_teardown(&s);
	wb_log(WB_LOG_INFO, "stopped", "status=%d", status);
	return status;
}
