/*
 * projector_service.c — waybill-projector: consumes <prefix>ledger, folds
 * every entry into the read models (projector_store.c), publishes each
 * changed order's OrderStatus to <prefix>status, and runs the HTTP API.
 *
 * Exactly once into the models, like the ledger: records come from
 * rd_kafka_consumer_poll() one at a time (librdkafka 2.0.2's batch API can
 * lose or duplicate messages across rebalances) and are batched here until
 * nothing more is queued locally, projector.batch.max entries or
 * projector.batch.wait.ms (group commit: small batches when entries
 * trickle in, large ones while a backlog streams); a batch is committed
 * as one synced WriteBatch with the per-partition
 * checkpoint (last applied seq) and the next Kafka offset. On assignment
 * each partition starts at its stored offset (auto.offset.reset=error: an
 * offset Kafka no longer has stops the projector rather than skipping
 * entries), or at the beginning when none is stored (a new store, or one
 * rebuilt from a ledger data dir); entries the ledger's outbox published
 * twice, and those a rebuild already applied, are skipped by seq. A seq
 * past checkpoint+1 means entries are missing: the projector stops and
 * says how to rebuild.
 *
 * Apply lanes (projector.apply.threads): partition p's entries go to lane
 * p % lanes, each lane a thread with its own batches and WriteBatches
 * (orders never span partitions, so lanes share no view). This thread
 * polls Kafka and hands each record to its lane's queue; before a
 * rebalance changes the assignment every lane commits what it holds.
 *
 * OrderStatus publishing is an outbox too: the commit records every
 * changed order with its version, and the record is deleted once Kafka
 * acknowledged that version, so a crash in between re-sends it on start.
 *
 * --rebuild wipes the store and folds every entry of a ledger data dir or
 * backup (--ledger-dir, opened read-only through the ledger library) from
 * seq 1, then continues from Kafka; without --ledger-dir it rebuilds from
 * Kafka's beginning, which works only while Kafka still holds seq 1.
 */
#include "projector_internal.h"

#include <assert.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

struct svc;

/* One apply thread and its queue of Kafka records. */
struct lane {
	struct svc *s;
	int id;
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;       /* queue changed, or a request */
	rd_kafka_message_t **q;  /* ring */
	size_t qcap, qhead, qlen;
	bool stop;               /* finish: commit (unless fatal) and exit */
	uint64_t flush_req, flush_done; /* commit when the queue is empty */
	bool commit_soon;        /* commit even an empty batch (outbox) */
	/* the lane thread's own */
	size_t batch_records;
	int64_t batch_started_us;
	wb_buf scratch;
	/* counters, read by the stats line (relaxed atomics) */
	uint64_t consumed, applied, skipped, commits;
	int64_t first_record_us, last_commit_us;
};

struct svc {
	const wb_config *cfg;
	wb_views *views;
	rd_kafka_t *consumer, *producer;
	rd_kafka_topic_t *status_topic;
	char ledger_topic[256], status_name[256];
	char group[256], instance[300];
	int64_t batch_max, batch_wait_us;
	bool publish;
	/* per partition: no stored offset at assignment (written by the
	 * rebalance callback while every lane is idle) */
	bool fresh_start[WB_VIEWS_MAX_PARTITIONS];
	wb_projector_http *http;
	struct lane lanes[WB_VIEWS_MAX_LANES];
	int nlanes;

	uint64_t published, publish_failed; /* this thread's */
	int64_t last_outbox_commit_us, last_kafka_commit_us, last_lag_us;
	pthread_mutex_t fatal_mu;
	bool fatal;
	char fatal_msg[768];
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void fatal(struct svc *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void fatal(struct svc *s, const char *fmt, ...)
{
	pthread_mutex_lock(&s->fatal_mu);
	if (!s->fatal) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(s->fatal_msg, sizeof(s->fatal_msg), fmt, ap);
		va_end(ap);
		__atomic_store_n(&s->fatal, true, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&s->fatal_mu);
	stop_requested = 1;
	/* wake whoever waits on a lane */
	for (int i = 0; i < s->nlanes; i++) {
		pthread_mutex_lock(&s->lanes[i].mu);
		pthread_cond_broadcast(&s->lanes[i].cv);
		pthread_mutex_unlock(&s->lanes[i].mu);
	}
}

static bool is_fatal(struct svc *s)
{
	return __atomic_load_n(&s->fatal, __ATOMIC_ACQUIRE);
}

#define ADD(x, n) __atomic_fetch_add(&(x), (n), __ATOMIC_RELAXED)
#define GET(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define SET(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

/* ---- orders.status --------------------------------------------------- */

struct status_tag {
	int64_t version;
	char order_id[];
};

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *ud)
{
	(void)rk;
	struct svc *s = ud;
	struct status_tag *t = m->_private;
	if (m->err) {
		s->publish_failed++;
		wb_log(WB_LOG_WARN, "status_publish_failed",
		       "order_id=%s err=%s", wb_log_q(t->order_id),
		       rd_kafka_err2name(m->err));
		/* stays in the outbox: sent again on the next start */
	} else {
		s->published++;
		wb_views_outbox_done(s->views, t->order_id, t->version);
	}
	free(t);
}

/* Called by a lane after its commit (ud is the lane), or by the main
 * thread before the lanes start (ud is lane 0). */
static void publish_status(const char *order_id, const struct wb_order *o,
			   void *ud)
{
	struct lane *l = ud;
	struct svc *s = l->s;
	if (!s->publish || is_fatal(s))
		return;
	wb_buf_reset(&l->scratch);
	wb_avro_frame(WB_SCHEMA_ORDER_STATUS, &l->scratch);
	wb_order_status_write(o, &l->scratch);
	size_t n = strlen(order_id);
	struct status_tag *t = wb_xmalloc(sizeof(*t) + n + 1);
	t->version = wb_order_version(o);
	memcpy(t->order_id, order_id, n + 1);
	for (;;) {
		rd_kafka_resp_err_t err = rd_kafka_producev(
			s->producer, RD_KAFKA_V_RKT(s->status_topic),
			RD_KAFKA_V_PARTITION(RD_KAFKA_PARTITION_UA),
			RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			RD_KAFKA_V_KEY(order_id, n),
			RD_KAFKA_V_VALUE(l->scratch.data, l->scratch.len),
			RD_KAFKA_V_OPAQUE(t), RD_KAFKA_V_END);
		if (!err)
			return;
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			/* stays in the outbox: sent again on the next start */
			wb_log(WB_LOG_WARN, "status_publish_failed",
			       "order_id=%s err=%s", wb_log_q(order_id),
			       rd_kafka_err2name(err));
			free(t);
			return;
		}
		if (l->started)
			usleep(10000); /* the main thread serves callbacks */
		else
			rd_kafka_poll(s->producer, 10);
	}
}

/* ---- applying (lane threads) --------------------------------------- */

static void lane_commit(struct lane *l)
{
	struct svc *s = l->s;
	if (is_fatal(s))
		return;
	char msg[512];
	if (wb_views_lane_commit_orders(s->views, l->id, publish_status, l,
					msg, sizeof(msg))) {
		fatal(s, "%s", msg);
		return;
	}
	ADD(l->commits, 1);
	if (l->batch_records)
		SET(l->last_commit_us, wb_mono_us());
	l->batch_records = 0;
	wb_views_lane_begin(s->views, l->id);
}

static void process_record(struct lane *l, const rd_kafka_message_t *m)
{
	struct svc *s = l->s;
	char msg[512];
	const uint8_t *body;
	size_t len;
	ADD(l->consumed, 1);
	if (m->partition >= WB_VIEWS_MAX_PARTITIONS) {
		fatal(s, "%s [%d]: the projector holds at most %d partitions",
		      s->ledger_topic, m->partition, WB_VIEWS_MAX_PARTITIONS);
		return;
	}
	if (wb_avro_unframe(WB_SCHEMA_LEDGER_ENTRY, m->payload, m->len, &body,
			    &len, msg, sizeof(msg))) {
		fatal(s, "%s [%d] offset %lld: not a LedgerEntry: %s",
		      s->ledger_topic, m->partition, (long long)m->offset, msg);
		return;
	}
	struct wb_entry e;
	if (wb_entry_parse(body, len, &e, msg, sizeof(msg))) {
		fatal(s, "%s [%d] offset %lld: %s", s->ledger_topic,
		      m->partition, (long long)m->offset, msg);
		return;
	}
	if (e.partition != m->partition) {
		fatal(s, "%s [%d] offset %lld holds an entry of ledger "
			 "partition %d",
		      s->ledger_topic, m->partition, (long long)m->offset,
		      e.partition);
		return;
	}
	int64_t applied = wb_views_applied(s->views, e.partition);
	bool skipped;
	wb_err rc = wb_views_lane_apply(s->views, l->id, body, len, &skipped,
					msg, sizeof(msg));
	if (rc == WB_ECORRUPT && e.seq > applied + 1 &&
	    s->fresh_start[m->partition]) {
		fatal(s, "%s [%d]: Kafka's earliest available entry is seq "
			 "%lld (offset %lld), but the read models need seq "
			 "%lld next: Kafka's retention has dropped them. "
			 "Rebuild from the ledger: waybill-projector "
			 "--rebuild --ledger-dir=LEDGER_DATA_DIR (a ledger "
			 "data dir or `waybill backup`)",
		      s->ledger_topic, m->partition, (long long)e.seq,
		      (long long)m->offset, (long long)applied + 1);
		return;
	}
	if (rc) {
		fatal(s, "%s [%d] offset %lld: %s", s->ledger_topic,
		      m->partition, (long long)m->offset, msg);
		return;
	}
	/* once an entry was applied or skipped the partition's position is
	 * known: later gaps are plain gaps */
	s->fresh_start[m->partition] = false;
	wb_views_lane_offset(s->views, l->id, m->partition, m->offset + 1);
	if (skipped)
		ADD(l->skipped, 1);
	else
		ADD(l->applied, 1);
}

#define LANE_CHUNK 256

static void *lane_main(void *ud)
{
	struct lane *l = ud;
	struct svc *s = l->s;
	rd_kafka_message_t *chunk[LANE_CHUNK];
	wb_views_lane_begin(s->views, l->id);
	for (;;) {
		size_t n = 0;
		bool stop = false, flush = false, soon = false;
		pthread_mutex_lock(&l->mu);
		while (l->qlen == 0 && !l->stop &&
		       l->flush_req == l->flush_done && !l->commit_soon &&
		       (!l->batch_records || is_fatal(s)))
			pthread_cond_wait(&l->cv, &l->mu);
		while (n < LANE_CHUNK && l->qlen) {
			chunk[n++] = l->q[l->qhead];
			l->qhead = (l->qhead + 1) % l->qcap;
			l->qlen--;
		}
		bool empty = l->qlen == 0;
		stop = l->stop && empty;
		flush = l->flush_req != l->flush_done && empty;
		soon = l->commit_soon && empty;
		uint64_t req = l->flush_req;
		l->commit_soon = false;
		if (n)
			pthread_cond_broadcast(&l->cv); /* room in the queue */
		pthread_mutex_unlock(&l->mu);

		for (size_t i = 0; i < n; i++) {
			if (!is_fatal(s)) {
				if (l->batch_records++ == 0) {
					l->batch_started_us = wb_mono_us();
					if (!GET(l->first_record_us))
						SET(l->first_record_us,
						    l->batch_started_us);
				}
				process_record(l, chunk[i]);
			}
			rd_kafka_message_destroy(chunk[i]);
		}
		/* group commit: when nothing more is queued, or the batch is
		 * full or old enough */
		if ((l->batch_records &&
		     (empty || l->batch_records >= (size_t)s->batch_max ||
		      wb_mono_us() - l->batch_started_us >= s->batch_wait_us)) ||
		    flush || soon || stop)
			lane_commit(l);
		if (flush) {
			pthread_mutex_lock(&l->mu);
			l->flush_done = req;
			pthread_cond_broadcast(&l->cv);
			pthread_mutex_unlock(&l->mu);
		}
		if (stop)
			break;
	}
	return NULL;
}

/* Hands a record to its lane, waiting while the lane's queue is full. */
static void lane_push(struct svc *s, rd_kafka_message_t *m)
{
	struct lane *l = &s->lanes[m->partition % s->nlanes];
	pthread_mutex_lock(&l->mu);
	while (l->qlen == l->qcap && !is_fatal(s))
		pthread_cond_wait(&l->cv, &l->mu);
	if (is_fatal(s)) {
		pthread_mutex_unlock(&l->mu);
		rd_kafka_message_destroy(m);
		return;
	}
	l->q[(l->qhead + l->qlen) % l->qcap] = m;
	l->qlen++;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

/* Every lane applies what it was handed and commits; returns when all
 * have. */
static void lanes_flush(struct svc *s)
{
	for (int i = 0; i < s->nlanes; i++) {
		struct lane *l = &s->lanes[i];
		if (!l->started)
			continue;
		pthread_mutex_lock(&l->mu);
		uint64_t want = ++l->flush_req;
		pthread_cond_broadcast(&l->cv);
		while (l->flush_done < want && !is_fatal(s))
			pthread_cond_wait(&l->cv, &l->mu);
		pthread_mutex_unlock(&l->mu);
	}
}

static wb_err lanes_start(struct svc *s, char *msg, size_t msglen)
{
	for (int i = 0; i < s->nlanes; i++) {
		struct lane *l = &s->lanes[i];
		if (pthread_create(&l->thread, NULL, lane_main, l))
			return wb_fail(msg, msglen, WB_ENOMEM,
				       "cannot start apply thread %d", i);
		l->started = true;
	}
	return WB_OK;
}

static void lanes_stop(struct svc *s)
{
	for (int i = 0; i < s->nlanes; i++) {
		struct lane *l = &s->lanes[i];
		if (!l->started)
			continue;
		pthread_mutex_lock(&l->mu);
		l->stop = true;
		pthread_cond_broadcast(&l->cv);
		pthread_mutex_unlock(&l->mu);
	}
	for (int i = 0; i < s->nlanes; i++) {
		struct lane *l = &s->lanes[i];
		if (!l->started)
			continue;
		/* a fatal error leaves records queued: drop them, unapplied */
		pthread_join(l->thread, NULL);
		l->started = false;
		while (l->qlen) {
			rd_kafka_message_destroy(l->q[l->qhead]);
			l->qhead = (l->qhead + 1) % l->qcap;
			l->qlen--;
		}
	}
}

/* ---- Kafka set-up ---------------------------------------------------- */

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *parts, void *ud)
{
	struct svc *s = ud;
	/* the lanes apply and commit what they hold: stored offsets are then
	 * exactly what was applied */
	lanes_flush(s);
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		for (int i = 0; i < parts->cnt; i++) {
			int32_t p = parts->elems[i].partition;
			if (p >= WB_VIEWS_MAX_PARTITIONS) {
				fatal(s, "%s has partition %d; the projector "
					 "holds at most %d",
				      s->ledger_topic, p,
				      WB_VIEWS_MAX_PARTITIONS);
				continue;
			}
			int64_t off = wb_views_offset(s->views, p);
			parts->elems[i].offset =
				off >= 0 ? off : RD_KAFKA_OFFSET_BEGINNING;
			s->fresh_start[p] = off < 0;
			wb_log(WB_LOG_INFO, "partition_assigned",
			       "topic=%s partition=%d offset=%lld "
			       "applied_seq=%lld",
			       parts->elems[i].topic, p, (long long)off,
			       (long long)wb_views_applied(s->views, p));
		}
		rd_kafka_assign(rk, parts);
		return;
	}
	/* revoked (or an error): the lanes committed above; let go */
	wb_log(WB_LOG_INFO, "partitions_revoked", "count=%d reason=%s",
	       parts ? parts->cnt : 0, rd_kafka_err2name(err));
	rd_kafka_assign(rk, NULL);
}

static rd_kafka_t *make_client(struct svc *s, rd_kafka_type_t type,
			       const char *const *kv, char *msg, size_t msglen)
{
	rd_kafka_conf_t *conf = wb_kafka_conf_new(s->cfg, msg, msglen);
	if (!conf)
		return NULL;
	/* our defaults, unless a kafka.* key says otherwise */
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

/* A projector holds every partition, so each store gets its own group
 * (projectors with different data dirs must never split the partitions
 * between them), with a static membership id from the same data dir. */
static void group_ids(const wb_config *cfg, char *group, size_t glen,
		      char *instance, size_t ilen)
{
	const char *dir = wb_config_get(cfg, "projector.data.dir");
	char *abs = realpath(dir, NULL);
	const char *d = abs ? abs : dir;
	uint64_t h = wb_fnv1a(WB_FNV_OFFSET, d, strlen(d));
	free(abs);
	const char *g = wb_config_get(cfg, "projector.group.id");
	if (g) {
		snprintf(group, glen, "%s", g);
	} else {
		const char *prefix = wb_config_get(cfg, "topic.prefix");
		size_t n = strlen(prefix);
		if (n && prefix[n - 1] == '.')
			n--;
		snprintf(group, glen, "waybill-projector.%.*s.%016llx", (int)n,
			 prefix, (unsigned long long)h);
	}
	const char *i = wb_config_get(cfg, "projector.instance.id");
	if (i)
		snprintf(instance, ilen, "%s", i);
	else
		snprintf(instance, ilen, "%s-%016llx", group,
			 (unsigned long long)h);
}

static wb_err producer_setup(struct svc *s, char *msg, size_t msglen)
{
	static const char *const producer_kv[] = {
		"enable.idempotence", "true",
		"acks", "all",
		"partitioner", "murmur2_random",
		"linger.ms", "20",
		"batch.num.messages", "10000",
		"queue.buffering.max.messages", "1000000",
		"compression.type", "lz4",
		NULL};
	if (s->publish) {
		s->producer = make_client(s, RD_KAFKA_PRODUCER, producer_kv,
					  msg, msglen);
		if (!s->producer)
			return WB_EKAFKA;
		if (wb_kafka_partition_count(s->producer, s->status_name,
					     10000, msg, msglen) < 0)
			return WB_EKAFKA;
		s->status_topic =
			rd_kafka_topic_new(s->producer, s->status_name, NULL);
	}
	return WB_OK;
}

static wb_err consumer_setup(struct svc *s, char *msg, size_t msglen)
{
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
	if (wb_kafka_partition_count(s->consumer, s->ledger_topic, 10000, msg,
				     msglen) < 0)
		return WB_EKAFKA;
	rd_kafka_topic_partition_list_t *sub =
		rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(sub, s->ledger_topic,
					  RD_KAFKA_PARTITION_UA);
	rd_kafka_resp_err_t err = rd_kafka_subscribe(s->consumer, sub);
	rd_kafka_topic_partition_list_destroy(sub);
	if (err)
		return wb_fail(msg, msglen, WB_EKAFKA, "subscribe %s: %s",
			       s->ledger_topic, rd_kafka_err2str(err));
	return WB_OK;
}

/* ---- rebuild --------------------------------------------------------- */

/* Folds every entry of a ledger data dir (or backup) into the (empty)
 * store, in batches. */
static wb_err rebuild_from_ledger(struct svc *s, const char *dir, char *msg,
				  size_t msglen)
{
	struct wb_ledger_options o = {.dir = dir, .read_only = true};
	wb_ledger *l = NULL;
	wb_err rc = wb_ledger_open(&o, &l, msg, msglen);
	if (rc)
		return rc;
	wb_log(WB_LOG_INFO, "rebuild_started", "ledger_dir=%s",
	       wb_log_q(dir));
	int64_t t0 = wb_mono_us();
	wb_ledger_iter *it = wb_ledger_iter_create(l, -1, 0);
	const uint8_t *entry;
	size_t len;
	uint64_t n = 0, in_batch = 0;
	wb_views_batch_begin(s->views);
	while (!stop_requested && wb_ledger_iter_next(it, &entry, &len)) {
		bool skipped;
		rc = wb_views_batch_apply(s->views, entry, len, &skipped, msg,
					  msglen);
		if (rc)
			break;
		n++;
		if (++in_batch >= (uint64_t)s->batch_max) {
			rc = wb_views_batch_commit_orders(s->views, publish_status,
						   &s->lanes[0], msg, msglen);
			if (rc)
				break;
			in_batch = 0;
			if (s->producer)
				rd_kafka_poll(s->producer, 0);
		}
	}
	if (!rc)
		rc = wb_ledger_iter_error(it, msg, msglen);
	if (!rc)
		rc = wb_views_batch_commit_orders(s->views, publish_status,
					   &s->lanes[0], msg, msglen);
	wb_ledger_iter_destroy(it);
	wb_ledger_close(l);
	if (!rc && stop_requested)
		rc = wb_fail(msg, msglen, WB_EINVAL,
			     "rebuild interrupted after %llu entries",
			     (unsigned long long)n);
	if (rc)
		return rc;
	double secs = (double)(wb_mono_us() - t0) / 1e6;
	wb_log(WB_LOG_INFO, "rebuilt",
	       "ledger_dir=%s entries=%llu position=%lld secs=%.3f "
	       "rate=%.0f",
	       wb_log_q(dir), (unsigned long long)n,
	       (long long)wb_views_position(s->views), secs,
	       secs > 0 ? (double)n / secs : 0.0);
	return WB_OK;
}

/* ---- the loop -------------------------------------------------------- */

static void log_stats(struct svc *s)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
		     (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	uint64_t consumed = 0, applied = 0, skipped = 0, commits = 0;
	int64_t first = 0, last = 0;
	for (int i = 0; i < s->nlanes; i++) {
		struct lane *l = &s->lanes[i];
		consumed += GET(l->consumed);
		applied += GET(l->applied);
		skipped += GET(l->skipped);
		commits += GET(l->commits);
		int64_t f = GET(l->first_record_us), c = GET(l->last_commit_us);
		if (f && (!first || f < first))
			first = f;
		if (c > last)
			last = c;
	}
	double busy = last > first ? (double)(last - first) / 1e6 : 0.0;
	wb_log(WB_LOG_INFO, "stats",
	       "consumed=%llu applied=%llu skipped=%llu commits=%llu "
	       "published=%llu publish_failed=%llu position=%lld "
	       "busy_s=%.3f apply_rate=%.0f cpu_s=%.3f",
	       (unsigned long long)consumed, (unsigned long long)applied,
	       (unsigned long long)skipped, (unsigned long long)commits,
	       (unsigned long long)s->published,
	       (unsigned long long)s->publish_failed,
	       (long long)wb_views_position(s->views), busy,
	       busy > 0 ? (double)applied / busy : 0.0, cpu);
}

/* Entries in Kafka not yet applied, per assigned partition (from the
 * watermarks librdkafka caches; no broker round trip). */
static void update_lag(struct svc *s)
{
	rd_kafka_topic_partition_list_t *a = NULL;
	if (rd_kafka_assignment(s->consumer, &a) || !a)
		return;
	for (int i = 0; i < a->cnt; i++) {
		int32_t p = a->elems[i].partition;
		int64_t lo = -1, hi = -1;
		if (rd_kafka_get_watermark_offsets(s->consumer, s->ledger_topic,
						   p, &lo, &hi) ||
		    hi < 0)
			continue;
		int64_t off = wb_views_offset(s->views, p);
		if (off < 0)
			off = lo >= 0 ? lo : 0;
		wb_views_set_lag(s->views, p, hi > off ? hi - off : 0);
	}
	rd_kafka_topic_partition_list_destroy(a);
}

static void commit_kafka_offsets(struct svc *s)
{
	/* for lag monitoring only: the store's offsets are the truth */
	rd_kafka_topic_partition_list_t *a = NULL;
	if (rd_kafka_assignment(s->consumer, &a) || !a)
		return;
	int n = 0;
	for (int i = 0; i < a->cnt; i++) {
		int64_t off = wb_views_offset(s->views, a->elems[i].partition);
		a->elems[i].offset = off;
		if (off >= 0)
			n++;
	}
	if (n == a->cnt && n > 0)
		rd_kafka_commit(s->consumer, a, 1);
	rd_kafka_topic_partition_list_destroy(a);
}

static void run_loop(struct svc *s)
{
	int64_t stats_every =
		wb_config_get_int(s->cfg, "projector.stats.interval.ms") * 1000;
	int64_t last_stats = wb_mono_us();
	while (!stop_requested) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(s->consumer, 50);
		if (m && (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
			  m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE)) {
			fatal(s, "%s [%d]: the stored offset is no longer in "
				 "Kafka (%s); the entries after seq %lld are "
				 "gone from Kafka: rebuild from the ledger "
				 "with --rebuild --ledger-dir=LEDGER_DATA_DIR",
			      m->rkt ? rd_kafka_topic_name(m->rkt) : "?",
			      m->partition, rd_kafka_message_errstr(m),
			      (long long)wb_views_applied(s->views,
							  m->partition));
			rd_kafka_message_destroy(m);
		} else if (m && m->err) {
			if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
				wb_log(WB_LOG_WARN, "consume_error",
				       "err=%s msg=%s",
				       rd_kafka_err2name(m->err),
				       wb_log_q(rd_kafka_message_errstr(m)));
			rd_kafka_message_destroy(m);
		} else if (m) {
			/* drain what librdkafka has queued into the lanes */
			do {
				lane_push(s, m);
				m = rd_kafka_consumer_poll(s->consumer, 0);
			} while (m && !m->err && !stop_requested);
			if (m) /* an error event, or we are stopping */
				rd_kafka_message_destroy(m);
		}
		int64_t now = wb_mono_us();
		if (s->producer)
			rd_kafka_poll(s->producer, 0);
		if (wb_views_outbox_dirty(s->views) &&
		    now - s->last_outbox_commit_us > 1000000) {
			/* acknowledged statuses leave the outbox */
			struct lane *l0 = &s->lanes[0];
			pthread_mutex_lock(&l0->mu);
			l0->commit_soon = true;
			pthread_cond_broadcast(&l0->cv);
			pthread_mutex_unlock(&l0->mu);
			s->last_outbox_commit_us = now;
		}
		char ferr[256];
		if (rd_kafka_fatal_error(s->consumer, ferr, sizeof(ferr)) ||
		    (s->producer &&
		     rd_kafka_fatal_error(s->producer, ferr, sizeof(ferr))))
			fatal(s, "Kafka client failed: %s", ferr);
		if (now - s->last_lag_us > 200000) {
			update_lag(s);
			s->last_lag_us = now;
		}
		if (now - s->last_kafka_commit_us > 1000000) {
			commit_kafka_offsets(s);
			s->last_kafka_commit_us = now;
		}
		if (stats_every > 0 && now - last_stats >= stats_every) {
			log_stats(s);
			last_stats = now;
		}
	}
	/* orderly stop: the lanes commit what they hold; Kafka acknowledges
	 * the statuses, which then leave the outbox */
	lanes_stop(s);
	if (s->producer && !is_fatal(s)) {
		rd_kafka_flush(s->producer, 10000);
		char msg[512];
		if (wb_views_outbox_dirty(s->views) &&
		    wb_views_lane_commit(s->views, 0, NULL, NULL, msg,
					 sizeof(msg)))
			wb_log(WB_LOG_WARN, "outbox_commit_failed", "msg=%s",
			       wb_log_q(msg));
	}
	log_stats(s);
}

/* ---- entry point ----------------------------------------------------- */

static void republish(const char *order_id, const struct wb_order *o,
		      void *ud)
{
	publish_status(order_id, o, ud); /* ud: lane 0, not started */
}

static wb_err open_views(struct svc *s, bool wipe, char *msg, size_t msglen)
{
	const wb_config *cfg = s->cfg;
	const char *dir = wb_config_get(cfg, "projector.data.dir");
	if (wipe) {
		wb_err rc = wb_views_destroy(dir, msg, msglen);
		if (rc)
			return rc;
		wb_log(WB_LOG_INFO, "store_wiped", "data_dir=%s",
		       wb_log_q(dir));
	}
	int64_t days = wb_config_get_int(cfg, "projector.return.window.days");
	struct wb_views_options o = {
		.dir = dir,
		.cache_orders = (size_t)wb_config_get_int(
			cfg, "projector.cache.orders"),
		.return_window_days = days > 0 ? (int)days : -1,
		.return_windows = wb_config_get(
			cfg, "projector.return.window.merchants"),
		.sync = wb_config_get_bool(cfg, "projector.sync"),
		.lanes = s->nlanes,
		.clock_ms = wb_config_get_int(cfg, "projector.clock.ms"),
	};
	wb_err rc = wb_views_open(&o, &s->views, msg, msglen);
	if (rc)
		return rc;
	wb_views_set_outbox(s->views, s->publish);
	return WB_OK;
}

static bool http_wanted(const wb_config *cfg)
{
	const char *l = wb_config_get(cfg, "projector.http.listen");
	return l && *l && strcmp(l, "off") != 0;
}

static void svc_teardown(struct svc *s)
{
#ifdef WB_PROJECTOR_HTTP
	wb_projector_http_stop(s->http);
#endif
	lanes_stop(s);
	if (s->consumer) {
		rd_kafka_consumer_close(s->consumer);
		rd_kafka_destroy(s->consumer);
	}
	if (s->status_topic)
		rd_kafka_topic_destroy(s->status_topic);
	if (s->producer) {
		rd_kafka_flush(s->producer, 1000);
		/* whatever is still queued stays in the outbox */
		rd_kafka_purge(s->producer, RD_KAFKA_PURGE_F_QUEUE |
						    RD_KAFKA_PURGE_F_INFLIGHT);
		rd_kafka_poll(s->producer, 0);
		rd_kafka_destroy(s->producer);
	}
	wb_views_close(s->views);
	for (int i = 0; i < s->nlanes; i++) {
		struct lane *l = &s->lanes[i];
		free(l->q);
		wb_buf_finish(&l->scratch);
		pthread_mutex_destroy(&l->mu);
		pthread_cond_destroy(&l->cv);
	}
	pthread_mutex_destroy(&s->fatal_mu);
}

#define LANE_QUEUE 65536

int wb_projector_service_run(const wb_config *cfg)
{
	static struct svc s; /* large (per-partition flags); one per process */
	memset(&s, 0, sizeof(s));
	s.cfg = cfg;
	char msg[768] = "";
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	pthread_mutex_init(&s.fatal_mu, NULL);
	int64_t threads = wb_config_get_int(cfg, "projector.apply.threads");
	s.nlanes = threads < 1 ? 1
		   : threads > WB_VIEWS_MAX_LANES ? WB_VIEWS_MAX_LANES
						  : (int)threads;
	for (int i = 0; i < s.nlanes; i++) {
		struct lane *l = &s.lanes[i];
		l->s = &s;
		l->id = i;
		l->qcap = LANE_QUEUE;
		l->q = wb_xcalloc(l->qcap, sizeof(*l->q));
		pthread_mutex_init(&l->mu, NULL);
		pthread_cond_init(&l->cv, NULL);
		wb_buf_init(&l->scratch);
	}
	wb_kafka_topic(cfg, "ledger", s.ledger_topic, sizeof(s.ledger_topic));
	wb_kafka_topic(cfg, "status", s.status_name, sizeof(s.status_name));
	s.batch_max = wb_config_get_int(cfg, "projector.batch.max");
	if (s.batch_max <= 0)
		s.batch_max = 1;
	s.batch_wait_us =
		wb_config_get_int(cfg, "projector.batch.wait.ms") * 1000;
	s.publish = wb_config_get_bool(cfg, "projector.publish");
	bool rebuild = wb_config_get_bool(cfg, "flag.rebuild");
	group_ids(cfg, s.group, sizeof(s.group), s.instance,
		  sizeof(s.instance));
	const char *ledger_dir =
		wb_config_get(cfg, "projector.rebuild.ledger.dir");
	int status = 1;
	wb_err rc = open_views(&s, rebuild, msg, sizeof(msg));
	if (rc)
		goto failed;
	/* the producer first: a rebuild publishes as it goes */
	rc = producer_setup(&s, msg, sizeof(msg));
	if (rc)
		goto failed;
	if (s.publish) {
		rc = wb_views_outbox_each_order(s.views, republish,
						&s.lanes[0], msg, sizeof(msg));
		if (rc)
			goto failed;
	}
#ifdef WB_PROJECTOR_HTTP
	if (http_wanted(cfg)) {
		rc = wb_projector_http_start(cfg, s.views, &s.http, msg,
					     sizeof(msg));
		if (rc)
			goto failed;
	}
	const char *http = s.http ? "on" : "off";
#else
	const char *http = "disabled"; /* projector_http.c not built in */
	(void)http_wanted;
#endif
	wb_log(WB_LOG_INFO, "started",
	       "ledger=%s status=%s group=%s instance=%s data_dir=%s "
	       "position=%lld batch_max=%lld apply_threads=%d publish=%s "
	       "http=%s rebuild=%s",
	       s.ledger_topic, s.status_name, s.group, s.instance,
	       wb_log_q(wb_config_get(cfg, "projector.data.dir")),
	       (long long)wb_views_position(s.views), (long long)s.batch_max,
	       s.nlanes,
	       s.publish ? "true" : "false", http, rebuild ? "true" : "false");
	if (rebuild && ledger_dir) {
		rc = rebuild_from_ledger(&s, ledger_dir, msg, sizeof(msg));
		if (rc)
			goto failed;
	}
	/* the consumer only now: a long rebuild would overrun
	 * max.poll.interval.ms */
	rc = consumer_setup(&s, msg, sizeof(msg));
	if (!rc)
		rc = lanes_start(&s, msg, sizeof(msg));
	if (rc)
		goto failed;
	run_loop(&s);
	status = 0;
	if (s.fatal) {
		wb_log(WB_LOG_ERROR, "fatal", "msg=%s", wb_log_q(s.fatal_msg));
		fprintf(stderr, "waybill-projector: %s\n", s.fatal_msg);
		status = 3;
	}
	svc_teardown(&s);
	wb_log(WB_LOG_INFO, "stopped", "status=%d", status);
	return status;
failed:
	wb_log(WB_LOG_ERROR, "startup_failed", "code=%s msg=%s",
	       wb_strerror(rc), wb_log_q(msg));
	fprintf(stderr, "waybill-projector: %s\n", msg);
	svc_teardown(&s);
	return rc == WB_ECONFIG ? 2 : 1;
}
