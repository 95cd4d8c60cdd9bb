/*
 * test_projector_store.c — the read-model store without Kafka: applying
 * batches, skipping seqs at or below the checkpoint, refusing gaps,
 * checkpoints and Kafka offsets surviving a reopen (with the cache gone),
 * an uncommitted batch leaving no trace, lookups (normalised, moved when
 * an email changes), merchant scoping of every query, returns by id and by
 * order, the timeline, the OrderStatus outbox, position/wait/freshness,
 * a deterministic dump, and a store of another format refused.
 */
#include <pthread.h>
#include <rocksdb/c.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tap.h"
#include "projector_internal.h"
#include "wb_schema.h"

#define T0 1767225600000LL

static char dir[256];
static int64_t next_seq[8];
static json_t *versions; /* order id -> last version */

/* A LedgerEntry body: partition p, the next seq (or seq if > 0), the
 * order's next version, and an event built from JSON text. */
static void make_entry(wb_buf *out, int32_t p, int64_t seq, const char *merchant,
		       const char *oid, const char *type, int64_t t,
		       const char *payload)
{
	json_t *pl = json_loads(payload, 0, NULL);
	if (!pl) {
		diag("bad payload %s", payload);
		abort();
	}
	static int eid;
	char id[32];
	snprintf(id, sizeof(id), "ev-%d", ++eid);
	const char *colon = strchr(oid, ':');
	char channel[32];
	snprintf(channel, sizeof(channel), "%.*s", (int)(colon - oid), oid);
	json_t *ev = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:s,s:o}",
			       "event_id", id, "merchant", merchant,
			       "order_id", oid, "channel", channel, "type",
			       type, "source_time", (json_int_t)t,
			       "ingest_time", (json_int_t)t, "source", "test",
			       "payload", pl);
	wb_buf body;
	wb_buf_init(&body);
	char msg[256];
	if (wb_event_encode_json(ev, &body, msg, sizeof(msg))) {
		diag("encode: %s", msg);
		abort();
	}
	json_decref(ev);
	int64_t ver = json_integer_value(json_object_get(versions, oid)) + 1;
	json_object_set_new(versions, oid, json_integer(ver));
	if (seq <= 0)
		seq = ++next_seq[p];
	else
		next_seq[p] = seq;
	uint8_t hash[32] = {0};
	wb_buf_reset(out);
	wb_avro_put_long(out, p);
	wb_avro_put_long(out, seq);
	wb_avro_put_long(out, ver);
	wb_avro_put_long(out, t + 500);
	wb_avro_put_bytes(out, hash, 32);
	wb_avro_put_bytes(out, hash, 32);
	wb_buf_append(out, body.data, body.len);
	wb_buf_finish(&body);
}

static const char *placed(const char *name, const char *email)
{
	static char buf[4][1024];
	static int k;
	char *b = buf[k++ % 4];
	snprintf(b, 1024,
		 "{\"name\":\"%s\",\"email\":\"%s\",\"phone\":null,\"currency\":"
		 "\"USD\",\"totals\":{\"subtotal\":null,\"shipping\":null,"
		 "\"tax\":null,\"discounts\":null,\"total\":{\"amount\":1000,"
		 "\"currency\":\"USD\"}},\"lines\":[{\"line_id\":\"1\",\"sku\":"
		 "\"S\",\"title\":\"T\",\"quantity\":1,\"unit_price\":{\"amount\":"
		 "1000,\"currency\":\"USD\"}}],\"shipping_address\":null,"
		 "\"placed_at\":%lld}",
		 name, email, (long long)T0);
	return b;
}

static wb_err apply(wb_views *v, int32_t p, int64_t seq, const char *merchant,
		    const char *oid, const char *type, int64_t t,
		    const char *payload, bool *skipped)
{
	wb_buf e;
	wb_buf_init(&e);
	make_entry(&e, p, seq, merchant, oid, type, t, payload);
	char msg[512];
	bool sk = false;
	wb_err rc = wb_views_batch_apply(v, e.data, e.len, &sk, msg,
					 sizeof(msg));
	if (rc)
		diag("apply: %s", msg);
	if (skipped)
		*skipped = sk;
	wb_buf_finish(&e);
	return rc;
}

static int changed_count;
static void on_changed(const char *oid, json_t *view, void *ud)
{
	(void)oid;
	(void)view;
	(void)ud;
	changed_count++;
}

static wb_views *open_store(bool ro, size_t cache)
{
	struct wb_views_options o = {.dir = dir,
				     .read_only = ro,
				     .cache_orders = cache,
				     .return_windows = "m2=7,m3=0"};
	wb_views *v = NULL;
	char msg[256];
	if (wb_views_open(&o, &v, msg, sizeof(msg)))
		diag("open: %s", msg);
	return v;
}

static wb_err commit(wb_views *v)
{
	char msg[256];
	wb_err rc = wb_views_batch_commit(v, on_changed, NULL, msg,
					  sizeof(msg));
	if (rc)
		diag("commit: %s", msg);
	return rc;
}

static const char *str(json_t *j, const char *k)
{
	const char *s = json_string_value(json_object_get(j, k));
	return s ? s : "(none)";
}

static char *dump_to_string(wb_views *v)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	char msg[128];
	wb_views_dump(v, f, msg, sizeof(msg));
	fclose(f);
	return buf;
}

struct waiter {
	wb_views *v;
	int64_t pos;
	bool got;
};

static void *wait_thread(void *ud)
{
	struct waiter *w = ud;
	w->got = wb_views_wait(w->v, w->pos, 5000);
	return NULL;
}

static void test_apply_skip_gap(void)
{
	wb_views *v = open_store(false, 2);
	ok(v != NULL, "open a new store");
	ok(wb_views_position(v) == 0, "position 0");
	wb_views_batch_begin(v);
	ok(apply(v, 0, 0, "m1", "shopify:1", "OrderPlaced", T0,
		 placed("#1001", " Jon@Example.com "), NULL) == WB_OK,
	   "apply OrderPlaced");
	ok(apply(v, 0, 0, "m1", "shopify:1", "PaymentStatusChanged", T0 + 10,
		 "{\"status\":\"paid\",\"amount_paid\":null}", NULL) == WB_OK,
	   "apply PaymentStatusChanged");
	ok(apply(v, 1, 0, "m2", "shopify:2", "OrderPlaced", T0 + 20,
		 placed("#2002", "ann@example.com"), NULL) == WB_OK,
	   "apply to partition 1");
	wb_views_batch_offset(v, 0, 100);
	wb_views_batch_offset(v, 1, 7);
	ok(wb_views_position(v) == 0, "nothing visible before the commit");
	changed_count = 0;
	ok(commit(v) == WB_OK && changed_count == 2, "commit: 2 orders changed");
	ok(wb_views_position(v) == 3 && wb_views_applied(v, 0) == 2 &&
		   wb_views_applied(v, 1) == 1,
	   "position 3: partition 0 at seq 2, 1 at seq 1");
	ok(wb_views_offset(v, 0) == 100 && wb_views_offset(v, 1) == 7 &&
		   wb_views_offset(v, 5) == -1,
	   "next Kafka offsets stored");
	int64_t src, rec;
	wb_views_freshness(v, &src, &rec);
	ok(src == T0 + 20 && rec == T0 + 520, "freshness: source time, recorded_at");

	/* a repeat of seq 2 (the ledger's outbox resent it) is skipped */
	wb_views_batch_begin(v);
	bool skipped = false;
	ok(apply(v, 0, 2, "m1", "shopify:1", "OrderCancelled", T0 + 30,
		 "{\"reason\":\"customer\",\"cancelled_at\":1,\"note\":null}",
		 &skipped) == WB_OK &&
		   skipped,
	   "seq at the checkpoint is skipped");
	/* a gap is refused, and nothing of it is applied */
	char msg[512];
	wb_buf e;
	wb_buf_init(&e);
	make_entry(&e, 0, 5, "m1", "shopify:1", "OrderCancelled", T0 + 40,
		   "{\"reason\":\"customer\",\"cancelled_at\":1,\"note\":null}");
	ok(wb_views_batch_apply(v, e.data, e.len, &skipped, msg,
				sizeof(msg)) == WB_ECORRUPT,
	   "a gap is WB_ECORRUPT: %s", msg);
	ok(strstr(msg, "rebuild") != NULL, "the message says to rebuild");
	wb_buf_finish(&e);
	ok(commit(v) == WB_OK, "commit the skip");
	json_t *o = NULL;
	ok(wb_views_order(v, "m1", "shopify:1", &o) == WB_OK &&
		   strcmp(str(json_object_get(o, "order"), "status"), "open") ==
			   0,
	   "neither the repeat nor the gap changed the order");
	json_decref(o);

	/* an uncommitted batch leaves nothing behind, cached views included */
	wb_views_batch_begin(v);
	next_seq[0] = 2;
	json_object_set_new(versions, "shopify:1", json_integer(2));
	apply(v, 0, 3, "m1", "shopify:1", "OrderCancelled", T0 + 50,
	      "{\"reason\":\"fraud\",\"cancelled_at\":1,\"note\":null}", NULL);
	wb_views_batch_begin(v); /* dropped */
	ok(wb_views_applied(v, 0) == 2, "dropped batch: checkpoint unchanged");
	json_object_set_new(versions, "shopify:1", json_integer(2));
	apply(v, 0, 3, "m1", "shopify:1", "OrderUpdated", T0 + 60,
	      "{\"email\":\"jon2@example.com\",\"phone\":null,\"note\":null,"
	      "\"lines\":null,\"totals\":null}",
	      NULL);
	ok(commit(v) == WB_OK, "commit seq 3 again, another event");
	ok(wb_views_order(v, "m1", "shopify:1", &o) == WB_OK &&
		   strcmp(str(json_object_get(o, "order"), "status"), "open") ==
			   0 &&
		   strcmp(str(o, "email"), "jon2@example.com") == 0 &&
		   json_integer_value(json_object_get(o, "version")) == 3,
	   "the dropped cancellation is not in the view (version 3)");
	json_decref(o);

	/* wait: a reader blocks until a commit reaches its position */
	struct waiter w = {v, wb_views_position(v) + 1, false};
	pthread_t th;
	pthread_create(&th, NULL, wait_thread, &w);
	usleep(50000);
	wb_views_batch_begin(v);
	apply(v, 1, 0, "m2", "shopify:2", "FulfillmentCreated", T0 + 70,
	      "{\"fulfillment_id\":\"F\",\"lines\":[],\"carrier\":\"UPS\","
	      "\"tracking_numbers\":[\"1Z 999 AA\"],\"tracking_urls\":[]}",
	      NULL);
	commit(v);
	pthread_join(th, NULL);
	ok(w.got, "wb_views_wait woke up at the new position");
	ok(!wb_views_wait(v, wb_views_position(v) + 1, 50),
	   "wb_views_wait times out short of a position");
	struct wb_views_stats st;
	wb_views_stats(v, &st);
	ok(st.applied == 5 && st.skipped == 1 && st.commits == 3,
	   "stats: applied %llu skipped %llu commits %llu",
	   (unsigned long long)st.applied, (unsigned long long)st.skipped,
	   (unsigned long long)st.commits);
	wb_views_close(v);
}

static bool has(json_t *arr, const char *s)
{
	size_t i;
	json_t *x;
	json_array_foreach(arr, i, x) if (strcmp(json_string_value(x), s) == 0) return true;
	return false;
}

static void test_queries_after_reopen(void)
{
	wb_views *v = open_store(false, 0);
	ok(v && wb_views_position(v) == 5 && wb_views_applied(v, 0) == 3 &&
		   wb_views_offset(v, 0) == 100,
	   "reopen: checkpoints and offsets restored");
	int64_t src;
	wb_views_freshness(v, &src, NULL);
	ok(src == T0 + 70, "reopen: freshness restored");
	json_t *o = NULL;
	ok(wb_views_order(v, "m1", "shopify:1", &o) == WB_OK, "order found");
	ok(o && strcmp(str(o, "customer_status"), "processing") == 0 &&
		   json_object_get(o, "eligibility") != NULL,
	   "the answer is presented (customer_status, eligibility)");
	json_decref(o);
	o = NULL;
	ok(wb_views_order(v, "m2", "shopify:1", &o) == WB_ENOTFOUND && !o,
	   "another merchant's order is not found");
	ok(wb_views_order(v, "m1", "shopify:404", &o) == WB_ENOTFOUND,
	   "a missing order is not found");
	json_t *tl = NULL;
	ok(wb_views_timeline(v, "m1", "shopify:1", &tl) == WB_OK &&
		   json_array_size(tl) == 3,
	   "timeline of 3 entries");
	ok(tl && strcmp(str(json_array_get(tl, 0), "type"), "OrderPlaced") ==
			 0 &&
		   strcmp(str(json_array_get(tl, 2), "type"), "OrderUpdated") ==
			   0,
	   "in version order");
	json_decref(tl);
	tl = NULL;
	ok(wb_views_timeline(v, "m2", "shopify:1", &tl) == WB_ENOTFOUND,
	   "timeline of another merchant's order is not found");
	ok(wb_views_timeline(v, "m1", "shopify:", &tl) == WB_ENOTFOUND,
	   "a prefix of an order id is no order");

	json_t *f = NULL;
	ok(wb_views_find(v, "m1", WB_LOOKUP_EMAIL, "JON2@example.com ", 10,
			 &f) == WB_OK &&
		   json_array_size(f) == 1 && has(f, "shopify:1"),
	   "lookup by email, normalised");
	json_decref(f);
	ok(wb_views_find(v, "m1", WB_LOOKUP_EMAIL, "jon@example.com", 10, &f) ==
			   WB_OK &&
		   json_array_size(f) == 0,
	   "the old email no longer finds it");
	json_decref(f);
	ok(wb_views_find(v, "m2", WB_LOOKUP_EMAIL, "jon2@example.com", 10,
			 &f) == WB_OK &&
		   json_array_size(f) == 0,
	   "another merchant finds nothing");
	json_decref(f);
	ok(wb_views_find(v, "m1", WB_LOOKUP_NAME, "1001", 10, &f) == WB_OK &&
		   has(f, "shopify:1"),
	   "lookup by name without #");
	json_decref(f);
	ok(wb_views_find(v, "m2", WB_LOOKUP_TRACKING, "1z999aa", 10, &f) ==
			   WB_OK &&
		   has(f, "shopify:2"),
	   "lookup by tracking number (spaces, case)");
	json_decref(f);
	ok(wb_views_find(v, "m2", WB_LOOKUP_CHANNEL_ORDER_ID, "2", 10, &f) ==
			   WB_OK &&
		   has(f, "shopify:2"),
	   "lookup by channel order id");
	json_decref(f);
	ok(wb_views_find(v, "m1", WB_LOOKUP_EMAIL, "   ", 10, &f) == WB_OK &&
		   json_array_size(f) == 0,
	   "blank lookup finds nothing");
	json_decref(f);
	ok(wb_views_return_window(v, "m1") == 30 &&
		   wb_views_return_window(v, "m2") == 7 &&
		   wb_views_return_window(v, "m3") == 0,
	   "return windows: default, per merchant, none");

	/* returns, the same email on several orders */
	wb_views_batch_begin(v);
	next_seq[1] = 2;
	apply(v, 1, 0, "m2", "shopify:2", "ReturnRequested", T0 + 80,
	      "{\"return_id\":\"R1\",\"lines\":[],\"reason\":\"too big\"}",
	      NULL);
	apply(v, 1, 0, "m2", "shopify:3", "OrderPlaced", T0 + 90,
	      placed("#2003", "ann@example.com"), NULL);
	apply(v, 1, 0, "m2", "shopify:3", "ReturnRequested", T0 + 95,
	      "{\"return_id\":\"R2\",\"lines\":[],\"reason\":null}", NULL);
	ok(commit(v) == WB_OK, "commit returns");
	json_t *r = NULL;
	ok(wb_views_return(v, "m2", "R1", &r) == WB_OK &&
		   strcmp(str(r, "status"), "requested") == 0 &&
		   strcmp(str(r, "order_id"), "shopify:2") == 0,
	   "return by id, with its order");
	json_decref(r);
	r = NULL;
	ok(wb_views_return(v, "m1", "R1", &r) == WB_ENOTFOUND && !r,
	   "another merchant's return is not found");
	ok(wb_views_return(v, "m2", "R", &r) == WB_ENOTFOUND,
	   "a prefix of a return id is no return");
	ok(wb_views_order_returns(v, "m2", "shopify:2", &r) == WB_OK &&
		   json_array_size(r) == 1,
	   "returns by order");
	json_decref(r);
	ok(wb_views_order_returns(v, "m1", "shopify:2", &r) == WB_ENOTFOUND,
	   "returns of another merchant's order: not found");
	ok(wb_views_find(v, "m2", WB_LOOKUP_EMAIL, "ann@example.com", 10, &f) ==
			   WB_OK &&
		   json_array_size(f) == 2,
	   "one email, two orders");
	json_decref(f);
	ok(wb_views_find(v, "m2", WB_LOOKUP_EMAIL, "ann@example.com", 1, &f) ==
			   WB_OK &&
		   json_array_size(f) == 1,
	   "lookups honour the limit");
	json_decref(f);
	wb_views_close(v);

	/* read-only: queries and a dump beside nothing else */
	v = open_store(true, 0);
	ok(v && wb_views_position(v) == 8, "read-only open at position 8");
	char *d1 = dump_to_string(v);
	wb_views_close(v);
	v = open_store(true, 0);
	char *d2 = dump_to_string(v);
	ok(d1 && d2 && strcmp(d1, d2) == 0 && strstr(d1, "\"model\":\"view\"") &&
		   strstr(d1, "\"model\":\"lookup\"") &&
		   strstr(d1, "\"model\":\"timeline\"") &&
		   strstr(d1, "\"model\":\"return\"") &&
		   strstr(d1, "\"model\":\"checkpoint\""),
	   "dump: every model, the same twice");
	free(d1);
	free(d2);
	wb_views_close(v);
}

static int republished;
static void count_outbox(const char *oid, json_t *view, void *ud)
{
	(void)view;
	(void)ud;
	(void)oid;
	republished++;
}

static void test_outbox(void)
{
	wb_views *v = open_store(false, 0);
	wb_views_set_outbox(v, true);
	wb_views_batch_begin(v);
	apply(v, 2, 0, "m1", "shopify:10", "OrderPlaced", T0,
	      placed("#10", "x@example.com"), NULL);
	apply(v, 2, 0, "m1", "shopify:11", "OrderPlaced", T0,
	      placed("#11", "y@example.com"), NULL);
	commit(v);
	wb_views_close(v);
	/* a crash before Kafka acknowledged: both are still in the outbox */
	v = open_store(false, 0);
	wb_views_set_outbox(v, true);
	char msg[128];
	republished = 0;
	ok(wb_views_outbox_each(v, count_outbox, NULL, msg, sizeof(msg)) ==
			   WB_OK &&
		   republished == 2,
	   "outbox: 2 unacknowledged statuses after reopen");
	wb_views_outbox_done(v, "shopify:10", 1);
	wb_views_outbox_done(v, "shopify:11", 99); /* not that version */
	ok(wb_views_outbox_dirty(v), "an acknowledgement makes the outbox dirty");
	wb_views_batch_begin(v);
	commit(v);
	wb_views_close(v);
	v = open_store(false, 0);
	republished = 0;
	wb_views_outbox_each(v, count_outbox, NULL, msg, sizeof(msg));
	ok(republished == 1, "acknowledged status left the outbox");
	wb_views_close(v);
}

/* ---- lanes: two threads, one per lane, give what one thread gives ---- */

#define LANE_ENTRIES 4000
static wb_buf lane_entries[LANE_ENTRIES];

struct lane_job {
	wb_views *v;
	int lane;
	int errors;
};

static void *lane_thread(void *ud)
{
	struct lane_job *j = ud;
	char msg[256];
	wb_views_lane_begin(j->v, j->lane);
	for (int i = 0; i < LANE_ENTRIES; i++) {
		struct wb_entry e;
		wb_entry_parse(lane_entries[i].data, lane_entries[i].len, &e,
			       msg, sizeof(msg));
		if (e.partition % 2 != j->lane)
			continue;
		bool sk;
		if (wb_views_lane_apply(j->v, j->lane, lane_entries[i].data,
					lane_entries[i].len, &sk, msg,
					sizeof(msg)))
			j->errors++;
		wb_views_lane_offset(j->v, j->lane, e.partition, i + 1);
		if (i % 700 == 699 &&
		    wb_views_lane_commit(j->v, j->lane, NULL, NULL, msg,
					 sizeof(msg)))
			j->errors++;
	}
	if (wb_views_lane_commit(j->v, j->lane, NULL, NULL, msg, sizeof(msg)))
		j->errors++;
	return NULL;
}

static void test_lanes(void)
{
	/* 4 partitions, 400 orders, 10 entries each, interleaved */
	memset(next_seq, 0, sizeof(next_seq));
	json_object_clear(versions);
	for (int i = 0; i < LANE_ENTRIES; i++) {
		int o = i % 400, k = i / 400;
		char oid[32], pl[256];
		snprintf(oid, sizeof(oid), "shopify:%d", 5000 + o);
		wb_buf_init(&lane_entries[i]);
		if (k == 0)
			make_entry(&lane_entries[i], o % 4, 0, "m1", oid,
				   "OrderPlaced", T0 + i,
				   placed("#x", "lanes@example.com"));
		else {
			snprintf(pl, sizeof(pl),
				 "{\"fulfillment_id\":null,\"tracking_number\":"
				 "\"T%d\",\"carrier\":null,\"status\":\"%s\","
				 "\"carrier_time\":null,\"location\":null,"
				 "\"estimated_delivery\":null}",
				 o, k % 2 ? "in_transit" : "delivered");
			make_entry(&lane_entries[i], o % 4, 0, "m1", oid,
				   "ShipmentStatusChanged", T0 + i, pl);
		}
	}
	char one[300], two[300];
	snprintf(one, sizeof(one), "%s-one", dir);
	snprintf(two, sizeof(two), "%s-two", dir);
	wb_views_destroy(one, NULL, 0);
	wb_views_destroy(two, NULL, 0);
	char msg[256];
	struct wb_views_options o1 = {.dir = one}, o2 = {.dir = two, .lanes = 2};
	wb_views *v1 = NULL, *v2 = NULL;
	ok(wb_views_open(&o1, &v1, msg, sizeof(msg)) == WB_OK &&
		   wb_views_open(&o2, &v2, msg, sizeof(msg)) == WB_OK &&
		   wb_views_lanes(v2) == 2,
	   "a one-lane and a two-lane store");
	wb_views_batch_begin(v1);
	int errors = 0;
	for (int i = 0; i < LANE_ENTRIES; i++) {
		bool sk;
		struct wb_entry e;
		wb_entry_parse(lane_entries[i].data, lane_entries[i].len, &e,
			       msg, sizeof(msg));
		errors += wb_views_batch_apply(v1, lane_entries[i].data,
					       lane_entries[i].len, &sk, msg,
					       sizeof(msg)) != WB_OK;
		wb_views_batch_offset(v1, e.partition, i + 1);
		if (i % 1000 == 999)
			errors += commit(v1) != WB_OK;
	}
	errors += commit(v1) != WB_OK;
	struct lane_job j0 = {v2, 0, 0}, j1 = {v2, 1, 0};
	pthread_t t0, t1;
	pthread_create(&t0, NULL, lane_thread, &j0);
	pthread_create(&t1, NULL, lane_thread, &j1);
	pthread_join(t0, NULL);
	pthread_join(t1, NULL);
	ok(errors == 0 && j0.errors == 0 && j1.errors == 0,
	   "applied on one thread, and on two lanes at once");
	ok(wb_views_position(v1) == LANE_ENTRIES &&
		   wb_views_position(v2) == LANE_ENTRIES,
	   "both at position %d", LANE_ENTRIES);
	bool sk;
	ok(wb_views_lane_apply(v2, 1, lane_entries[0].data,
			       lane_entries[0].len, &sk, msg,
			       sizeof(msg)) == WB_EINVAL,
	   "a lane refuses another lane's partition: %s", msg);
	char *d1 = dump_to_string(v1), *d2 = dump_to_string(v2);
	ok(d1 && d2 && strcmp(d1, d2) == 0,
	   "the two-lane store's dump equals the one-lane store's");
	free(d1);
	free(d2);
	wb_views_close(v1);
	wb_views_close(v2);
	wb_views_destroy(one, NULL, 0);
	wb_views_destroy(two, NULL, 0);
	for (int i = 0; i < LANE_ENTRIES; i++)
		wb_buf_finish(&lane_entries[i]);
}

/* ---- a store of another format is refused, naming --rebuild ---- */

static void test_format(void)
{
	char fdir[300];
	snprintf(fdir, sizeof(fdir), "%s-format", dir);
	wb_views_destroy(fdir, NULL, 0);
	struct wb_views_options o = {.dir = fdir};
	wb_views *v = NULL;
	char msg[512];
	ok(wb_views_open(&o, &v, msg, sizeof(msg)) == WB_OK,
	   "a new store opens");
	wb_views_close(v);
	/* what an older build left: format "1" */
	static const char *const cfs[] = {"default", "views", "timeline",
					  "returns", "lookups", "checkpoints",
					  "outbox", "meta"};
	rocksdb_options_t *opts = rocksdb_options_create();
	const rocksdb_options_t *cf_opts[8];
	for (int i = 0; i < 8; i++)
		cf_opts[i] = opts;
	rocksdb_column_family_handle_t *h[8];
	char *err = NULL;
	rocksdb_t *db = rocksdb_open_column_families(opts, fdir, 8, cfs,
						     cf_opts, h, &err);
	ok(db && !err, "opened with RocksDB directly");
	if (db) {
		rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
		rocksdb_put_cf(db, wo, h[7], "format", 6, "1", 1, &err);
		rocksdb_writeoptions_destroy(wo);
		for (int i = 0; i < 8; i++)
			rocksdb_column_family_handle_destroy(h[i]);
		rocksdb_close(db);
	}
	rocksdb_free(err);
	rocksdb_options_destroy(opts);
	v = NULL;
	ok(wb_views_open(&o, &v, msg, sizeof(msg)) == WB_ECORRUPT && !v &&
		   strstr(msg, "format 1") && strstr(msg, "--rebuild"),
	   "format 1 refused: %s", msg);
	wb_views_destroy(fdir, NULL, 0);
}

/* An entry naming another merchant than its order's (an old ledger may
 * hold one): applied as far as the checkpoint goes, but the view,
 * lookups, timeline and OrderStatus stay as they were; counted. */
static void test_foreign_merchant(void)
{
	char saved[sizeof(dir)];
	memcpy(saved, dir, sizeof(dir));
	snprintf(dir, sizeof(dir), "/tmp/wb-test-projector-foreign-%d",
		 getpid());
	wb_views_destroy(dir, NULL, 0);
	wb_views *v = open_store(false, 4);
	const char *oid = "shopify:foreign-1";
	ok(apply(v, 6, 0, "m1", oid, "OrderPlaced", T0,
		 placed("#F1", "owner@example.com"), NULL) == WB_OK &&
		   commit(v) == WB_OK,
	   "foreign: m1 places the order");
	changed_count = 0;
	bool sk = true;
	ok(apply(v, 6, 0, "m9", oid, "OrderUpdated", T0 + 10,
		 "{\"email\":\"eve@example.com\",\"phone\":null,"
		 "\"note\":\"hijacked\",\"lines\":null,\"totals\":null}",
		 &sk) == WB_OK &&
		   !sk,
	   "foreign: m9's entry of the same order id is no error");
	ok(commit(v) == WB_OK && changed_count == 0,
	   "foreign: the commit changes no order (no OrderStatus)");
	struct wb_views_stats st;
	wb_views_stats(v, &st);
	ok(st.foreign == 1 && wb_views_applied(v, 6) == 2,
	   "foreign: counted, and the checkpoint moved past it");
	json_t *o = NULL;
	ok(wb_views_order(v, "m1", oid, &o) == WB_OK &&
		   strcmp(str(o, "email"), "owner@example.com") == 0 &&
		   json_is_null(json_object_get(o, "note")) &&
		   json_integer_value(json_object_get(o, "version")) == 1,
	   "foreign: m1's view unchanged, version 1");
	json_decref(o);
	o = NULL;
	ok(wb_views_order(v, "m9", oid, &o) == WB_ENOTFOUND,
	   "foreign: still not m9's order");
	json_t *f = NULL;
	ok(wb_views_find(v, "m1", WB_LOOKUP_EMAIL, "eve@example.com", 10,
			 &f) == WB_OK &&
		   json_array_size(f) == 0,
	   "foreign: no lookup by the intruder's email for m1");
	json_decref(f);
	f = NULL;
	ok(wb_views_find(v, "m9", WB_LOOKUP_EMAIL, "eve@example.com", 10,
			 &f) == WB_OK &&
		   json_array_size(f) == 0,
	   "foreign: nor for m9");
	json_decref(f);
	json_t *tl = NULL;
	ok(wb_views_timeline(v, "m1", oid, &tl) == WB_OK &&
		   json_array_size(tl) == 1,
	   "foreign: not in the timeline");
	json_decref(tl);
	/* in one batch with the owner's next entry: that one applies */
	changed_count = 0;
	ok(apply(v, 6, 0, "m9", oid, "OrderCancelled", T0 + 20,
		 "{\"reason\":\"fraud\",\"cancelled_at\":1767225600020,"
		 "\"note\":null}",
		 NULL) == WB_OK &&
		   apply(v, 6, 0, "m1", oid, "OrderUpdated", T0 + 30,
			 "{\"email\":null,\"phone\":null,\"note\":\"ok\","
			 "\"lines\":null,\"totals\":null}",
			 NULL) == WB_OK &&
		   commit(v) == WB_OK && changed_count == 1,
	   "foreign: a batch of a foreign and an own entry changes the order "
	   "once");
	o = NULL;
	ok(wb_views_order(v, "m1", oid, &o) == WB_OK &&
		   strcmp(str(o, "note"), "ok") == 0 &&
		   strcmp(str(json_object_get(o, "order"), "status"), "open") ==
			   0,
	   "foreign: the own entry applied, the foreign cancel did not");
	json_decref(o);
	wb_views_stats(v, &st);
	ok(st.foreign == 2, "foreign: 2 counted");
	wb_views_close(v);
	wb_views_destroy(dir, NULL, 0);
	memcpy(dir, saved, sizeof(dir));
}

/* projector.clock.ms: answers are presented at the configured time
 * (eligibility depends on it), the real clock when 0. */
static void test_clock(void)
{
	char saved[sizeof(dir)];
	memcpy(saved, dir, sizeof(dir));
	snprintf(dir, sizeof(dir), "/tmp/wb-test-projector-clock-%d",
		 getpid());
	wb_views_destroy(dir, NULL, 0);
	const char *oid = "pos:clock-1"; /* a till sale: delivered when placed */
	int64_t clocks[] = {T0 + 10 * 86400000LL, 0};
	for (int i = 0; i < 2; i++) {
		struct wb_views_options o = {.dir = dir, .clock_ms = clocks[i]};
		wb_views *v = NULL;
		char msg[256];
		if (wb_views_open(&o, &v, msg, sizeof(msg))) {
			ok(0, "clock: open: %s", msg);
			return;
		}
		if (i == 0)
			ok(apply(v, 7, 0, "m1", oid, "OrderPlaced", T0,
				 placed("#C1", "c@example.com"),
				 NULL) == WB_OK &&
				   commit(v) == WB_OK,
			   "clock: a POS sale placed at T0");
		json_t *a = NULL;
		wb_views_order(v, "m1", oid, &a);
		json_t *r = json_object_get(
			json_object_get(a, "eligibility"), "can_return");
		if (i == 0)
			ok(json_is_true(json_object_get(r, "allowed")) &&
				   strcmp(str(r, "reason"),
					  "within_return_window") == 0 &&
				   json_integer_value(json_object_get(
					   r, "window_ends_at")) ==
					   T0 + 30 * 86400000LL,
			   "clock T0+10d: can_return allowed, the window "
			   "ends at T0+30d");
		else
			ok(json_is_false(json_object_get(r, "allowed")) &&
				   strcmp(str(r, "reason"),
					  "return_window_expired") == 0,
			   "clock 0 (now, long after T0+30d): expired");
		json_decref(a);
		wb_views_close(v);
	}
	wb_views_destroy(dir, NULL, 0);
	memcpy(dir, saved, sizeof(dir));
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/wb-test-projector-store-%d", getpid());
	wb_views_destroy(dir, NULL, 0);
	versions = json_object();
	test_apply_skip_gap();
	test_queries_after_reopen();
	test_outbox();
	test_lanes();
	test_format();
	test_foreign_merchant();
	test_clock();
	char msg[256];
	ok(wb_views_destroy(dir, msg, sizeof(msg)) == WB_OK, "destroy the store");
	json_decref(versions);
	return tap_done();
}
