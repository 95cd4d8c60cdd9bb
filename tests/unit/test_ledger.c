/*
 * test_ledger.c — the ledger store without Kafka: gapless seq per
 * partition and version per order, dedupe by event_id (within a batch and
 * across reopen), the hash chain and its verification, tamper detection,
 * offsets and the DLQ outbox surviving a reopen; an order stays its
 * merchant's (in a batch, in flight, stored, after a format-2 store is
 * migrated); a reused event_id is refused for another identity and
 * counted apart when only its payload differs; versions stay gapless
 * when the order cache is cleared mid-batch.
 */
#include <rocksdb/c.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#include "../tap.h"
#include "ledger_internal.h" /* key and value layouts, for the raw edits */
#include "wb_ledger.h"

static wb_buf bodies[64];
static int nbodies;

/* An encoded event of merchant for order pos:<order>: OrderCancelled
 * (cancelled_at = when), or OrderUpdated (note = the decimal of when) if
 * updated. */
static const uint8_t *event_of(const char *merchant, const char *order,
			       const char *event_id, bool updated,
			       int64_t when, size_t *len,
			       struct wb_event_view *v)
{
	char oid[128], note[32];
	snprintf(oid, sizeof(oid), "pos:%s", order);
	snprintf(note, sizeof(note), "%lld", (long long)when);
	json_t *payload =
		updated ? json_pack("{s:s}", "note", note)
			: json_pack("{s:s,s:I}", "reason", "customer",
				    "cancelled_at", (json_int_t)when);
	json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:s,s:o}",
			      "event_id", event_id, "merchant", merchant,
			      "order_id", oid, "channel", "pos", "type",
			      updated ? "OrderUpdated" : "OrderCancelled",
			      "source_time", (json_int_t)1000, "ingest_time",
			      (json_int_t)2000, "source", "test", "payload",
			      payload);
	wb_buf *b = &bodies[nbodies++ % 64];
	wb_buf_reset(b);
	char msg[256];
	if (wb_event_encode_json(j, b, msg, sizeof(msg)))
		diag("encode: %s", msg);
	json_decref(j);
	wb_event_peek(b->data, b->len, v, msg, sizeof(msg));
	*len = b->len;
	return b->data;
}

/* An encoded OrderCancelled event of merchant m1 for order/event id. */
static const uint8_t *event(const char *order, const char *event_id,
			    size_t *len, struct wb_event_view *v)
{
	return event_of("m1", order, event_id, false, 1000, len, v);
}

/* wb_ledger_batch_add of event_of(...); the outcome, or -1 on an error. */
static char add_msg[512];
static int add(wb_ledger *l, int32_t p, const char *merchant,
	       const char *order, const char *id, bool updated, int64_t when)
{
	size_t len;
	struct wb_event_view v;
	const uint8_t *body = event_of(merchant, order, id, updated, when,
				       &len, &v);
	enum wb_append_outcome out;
	add_msg[0] = 0;
	if (wb_ledger_batch_add(l, p, body, len, &v, 5000, &out, add_msg,
				sizeof(add_msg)))
		return -1;
	return (int)out;
}

static wb_err append(wb_ledger *l, int32_t p, const char *order,
		     const char *id)
{
	size_t len;
	struct wb_event_view v;
	const uint8_t *body = event(order, id, &len, &v);
	char msg[256];
	return wb_ledger_batch_append(l, p, body, len, &v, 5000, msg,
				      sizeof(msg));
}

static int replay_count(wb_ledger *l, int32_t p, int64_t *last_seq)
{
	wb_ledger_iter *it = wb_ledger_iter_create(l, p, 1);
	const uint8_t *e;
	size_t n;
	int count = 0;
	*last_seq = 0;
	while (wb_ledger_iter_next(it, &e, &n)) {
		struct wb_entry en;
		char msg[128];
		wb_entry_parse(e, n, &en, msg, sizeof(msg));
		if (en.seq != *last_seq + 1)
			return -1;
		*last_seq = en.seq;
		count++;
	}
	wb_ledger_iter_destroy(it);
	return count;
}

static void dlq_count(const struct wb_dlq_record *r, void *ud)
{
	int *n = ud;
	if (strcmp(r->error, "bad avro") == 0 && r->value_len == 3 &&
	    r->key == NULL && r->offset == 41)
		(*n)++;
}

static wb_ledger *open_at(const char *dir, const char *name, size_t cache,
			  bool ro)
{
	static char path[400];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	struct wb_ledger_options o = {.dir = path, .sync = false,
				      .order_cache = cache, .read_only = ro};
	wb_ledger *l = NULL;
	char msg[512];
	if (wb_ledger_open(&o, &l, msg, sizeof(msg)))
		diag("open %s: %s", path, msg);
	return l;
}

static int64_t version_of(wb_ledger *l, const char *order)
{
	char oid[128];
	snprintf(oid, sizeof(oid), "pos:%s", order);
	return wb_ledger_order_version(l, oid);
}

static bool commit(wb_ledger *l)
{
	char msg[512];
	wb_err rc = wb_ledger_batch_commit(l, msg, sizeof(msg));
	if (rc)
		diag("commit: %s", msg);
	return rc == WB_OK;
}

/* An order is its first merchant's: another merchant's event for it is
 * refused wherever the order's state is (this batch, the batch in flight,
 * the cache, the store), and nothing of it is appended. */
static void test_tenants(const char *dir)
{
	wb_ledger *l = open_at(dir, "tenants", 0, false);
	wb_ledger_batch_begin(l);
	ok(add(l, 0, "acme", "t1", "t-1", false, 1) == WB_APPEND_ADDED,
	   "acme's order t1");
	ok(add(l, 0, "other-shop", "t1", "t-2", false, 2) ==
			   WB_APPEND_REFUSED_MERCHANT &&
		   strstr(add_msg, "order pos:t1 belongs to another merchant"),
	   "another merchant's event for it, same batch: refused (%s)",
	   add_msg);
	ok(wb_ledger_batch_count(l) == 1, "nothing appended for it");
	/* in flight: submitted, not yet collected */
	char msg[512];
	ok(wb_ledger_batch_submit(l, msg, sizeof(msg)) == WB_OK, "submit");
	ok(add(l, 1, "other-shop", "t1", "t-3", false, 3) ==
		   WB_APPEND_REFUSED_MERCHANT,
	   "refused while acme's batch is in flight");
	ok(add(l, 1, "acme", "t1", "t-4", false, 4) == WB_APPEND_ADDED,
	   "acme's next event for t1 is accepted");
	ok(commit(l), "commit");
	ok(version_of(l, "t1") == 2, "t1 at version 2");
	wb_ledger_close(l);

	l = open_at(dir, "tenants", 0, false);
	wb_ledger_batch_begin(l);
	ok(add(l, 0, "other-shop", "t1", "t-5", true, 5) ==
		   WB_APPEND_REFUSED_MERCHANT,
	   "after a reopen (the stored state): refused");
	ok(add(l, 0, "other-shop", "t2", "t-6", false, 6) == WB_APPEND_ADDED,
	   "other-shop's own order t2 is fine");
	ok(add(l, 0, "acme", "t1", "t-7", false, 7) == WB_APPEND_ADDED,
	   "acme's t1 goes on");
	ok(commit(l), "commit");
	ok(version_of(l, "t1") == 3 && version_of(l, "t2") == 1,
	   "t1 at version 3, t2 at 1");
	int foreign = 0, n = 0;
	wb_ledger_iter *it = wb_ledger_iter_order_create(l, "pos:t1");
	const uint8_t *e;
	size_t len;
	while (wb_ledger_iter_next(it, &e, &len)) {
		struct wb_entry en;
		struct wb_event_view v;
		wb_entry_parse(e, len, &en, msg, sizeof(msg));
		wb_event_peek(en.event, en.event_len, &v, msg, sizeof(msg));
		foreign += !(v.merchant.n == 4 && !memcmp(v.merchant.p, "acme", 4));
		n++;
	}
	wb_ledger_iter_destroy(it);
	ok(n == 3 && foreign == 0, "t1's entries: 3, all acme's (%d foreign)",
	   foreign);
	struct wb_verify_result r;
	wb_ledger_verify(l, &r, msg, sizeof(msg));
	ok(r.ok, "verify passes (%s)", r.reason);
	wb_ledger_close(l);
}

/* A recorded event_id: the same event again is a duplicate; the same
 * identity with another payload a duplicate counted apart; another order,
 * merchant or type refused. In the batch being built, in the one in
 * flight and in the store alike. */
static void test_event_ids(const char *dir)
{
	wb_ledger *l = open_at(dir, "ids", 0, false);
	char msg[512];
	for (int stage = 0; stage < 3; stage++) {
		static const char *const where[] = {"same batch", "in flight",
						    "stored"};
		char id[32], o[32];
		snprintf(id, sizeof(id), "x-%d", stage);
		snprintf(o, sizeof(o), "x%d", stage);
		wb_ledger_batch_begin(l);
		ok(add(l, 0, "acme", o, id, false, 100) == WB_APPEND_ADDED,
		   "%s: %s recorded", where[stage], id);
		if (stage == 1)
			wb_ledger_batch_submit(l, msg, sizeof(msg));
		else if (stage == 2)
			commit(l);
		ok(add(l, 0, "acme", o, id, false, 100) == WB_APPEND_DUPLICATE,
		   "%s: the same event again is a duplicate", where[stage]);
		ok(add(l, 0, "acme", o, id, false, 101) ==
				   WB_APPEND_DUPLICATE_DIFFERS &&
			   strstr(add_msg, "another payload"),
		   "%s: same identity, other payload: duplicate_differs (%s)",
		   where[stage], add_msg);
		ok(add(l, 0, "acme", "elsewhere", id, false, 100) ==
				   WB_APPEND_REFUSED_EVENT_ID &&
			   strstr(add_msg, "already recorded for another "
					   "order/merchant/type"),
		   "%s: another order: refused (%s)", where[stage], add_msg);
		ok(add(l, 0, "other-shop", o, id, false, 100) ==
			   WB_APPEND_REFUSED_EVENT_ID,
		   "%s: another merchant: refused", where[stage]);
		ok(add(l, 0, "acme", o, id, true, 100) ==
			   WB_APPEND_REFUSED_EVENT_ID,
		   "%s: another type: refused", where[stage]);
		ok(version_of(l, o) == 1 && version_of(l, "elsewhere") == 0,
		   "%s: nothing appended for any of them", where[stage]);
		commit(l);
	}
	size_t len;
	struct wb_event_view v;
	const uint8_t *body = event_of("acme", "x9", "x-0", false, 100, &len,
				       &v);
	wb_ledger_batch_begin(l);
	ok(wb_ledger_batch_append(l, 0, body, len, &v, 1, msg, sizeof(msg)) ==
		   WB_EINVAL,
	   "wb_ledger_batch_append: a refusal is WB_EINVAL");
	body = event_of("acme", "x0", "x-0", false, 100, &len, &v);
	ok(wb_ledger_batch_append(l, 0, body, len, &v, 1, msg, sizeof(msg)) ==
		   WB_ECONFLICT,
	   "wb_ledger_batch_append: a duplicate is WB_ECONFLICT");
	wb_ledger_close(l);
}

/* The order cache holds 2 orders; a batch of 5 orders, each twice: the
 * cache is cleared midway, and versions must still come from the batch. */
static void test_order_cache(const char *dir)
{
	wb_ledger *l = open_at(dir, "cache", 2, false);
	wb_ledger_batch_begin(l);
	char id[32], o[32];
	for (int round = 0; round < 2; round++)
		for (int i = 0; i < 5; i++) {
			snprintf(id, sizeof(id), "c-%d-%d", round, i);
			snprintf(o, sizeof(o), "c%d", i);
			add(l, i % 2, "acme", o, id, false, round);
		}
	bool twos = true;
	for (int i = 0; i < 5; i++) {
		snprintf(o, sizeof(o), "c%d", i);
		twos = twos && version_of(l, o) == 2;
	}
	ok(twos, "every order at version 2 within the batch");
	commit(l);
	char msg[512];
	struct wb_verify_result r;
	wb_ledger_verify(l, &r, msg, sizeof(msg));
	ok(r.ok && r.orders == 5, "verify: versions gapless (%s)", r.reason);
	wb_ledger_close(l);
}

/* RocksDB opened directly, every family with plain options. */
struct raw {
	rocksdb_t *db;
	rocksdb_options_t *opts;
	rocksdb_column_family_handle_t *h[8];
};

static bool raw_open(struct raw *r, const char *path)
{
	r->opts = rocksdb_options_create();
	const char *cfs[] = {"default", "log", "by_order", "dedupe",
			     "orders", "heads", "offsets", "outbox"};
	const rocksdb_options_t *cfo[8];
	for (int i = 0; i < 8; i++)
		cfo[i] = r->opts;
	char *err = NULL;
	r->db = rocksdb_open_column_families(r->opts, path, 8, cfs, cfo, r->h,
					     &err);
	if (err)
		diag("raw open: %s", err);
	rocksdb_free(err);
	return r->db != NULL;
}

static void raw_put(struct raw *r, int cf, const void *k, size_t kl,
		    const void *v, size_t vl)
{
	rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
	char *err = NULL;
	rocksdb_put_cf(r->db, wo, r->h[cf], k, kl, v, vl, &err);
	rocksdb_free(err);
	rocksdb_writeoptions_destroy(wo);
}

static char *raw_get(struct raw *r, int cf, const void *k, size_t kl,
		     size_t *vl)
{
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	char *err = NULL;
	char *v = rocksdb_get_cf(r->db, ro, r->h[cf], k, kl, vl, &err);
	rocksdb_free(err);
	rocksdb_readoptions_destroy(ro);
	return v;
}

static void raw_close(struct raw *r)
{
	for (int i = 0; i < 8; i++)
		rocksdb_column_family_handle_destroy(r->h[i]);
	rocksdb_close(r->db);
	rocksdb_options_destroy(r->opts);
}

/* A format-2 store (V1 order states, dedupe values without the identity
 * hash), made by rewriting a new one through RocksDB: read-only opens read
 * it; a writable open migrates it, and the order is then its first
 * entry's merchant's, even though a foreign entry followed it back when
 * nothing checked. */
static void test_migration(const char *dir)
{
	wb_ledger *l = open_at(dir, "v1", 0, false);
	wb_ledger_batch_begin(l);
	add(l, 0, "acme", "v1", "v-1", false, 1);
	add(l, 1, "acme", "v1", "v-2", false, 2);
	add(l, 1, "bolt", "other", "v-3", false, 3);
	commit(l);
	wb_ledger_close(l);

	char path[400];
	snprintf(path, sizeof(path), "%s/v1", dir);
	struct raw r;
	ok(raw_open(&r, path), "raw open");
	raw_put(&r, CF_DEFAULT, "format", 6, "2", 1);
	const char *orders[] = {"pos:v1", "pos:other"};
	int64_t versions[] = {3, 1};
	for (int i = 0; i < 2; i++) {
		uint8_t key[INDEX_KEY_MAX], state[9] = {ORDER_STATE_V1};
		size_t kl = hashed_key(key, orders[i], strlen(orders[i]));
		be64(state + 1, (uint64_t)versions[i]);
		raw_put(&r, CF_ORDERS, key, kl, state, 9);
	}
	/* pos:v1 version 3: an entry of another merchant, appended "before
	 * the check existed" (partition 0 seq 2) */
	size_t len;
	struct wb_event_view v;
	const uint8_t *body = event_of("intruder", "v1", "v-4", false, 4, &len,
				       &v);
	uint8_t prev[WB_HASH_LEN], hash[WB_HASH_LEN];
	size_t hl;
	uint8_t hk[4] = {0, 0, 0, 0};
	char *head = raw_get(&r, CF_HEADS, hk, 4, &hl);
	memcpy(prev, head + 8, WB_HASH_LEN);
	rocksdb_free(head);
	struct wb_entry e = {.partition = 0, .seq = 2, .version = 3,
			     .recorded_at = 5000, .prev_hash = prev,
			     .event = body, .event_len = len};
	wb_entry_compute_hash(&e, hash);
	wb_buf eb;
	wb_buf_init(&eb);
	wb_avro_put_long(&eb, 0);
	wb_avro_put_long(&eb, 2);
	wb_avro_put_long(&eb, 3);
	wb_avro_put_long(&eb, 5000);
	wb_avro_put_bytes(&eb, prev, WB_HASH_LEN);
	wb_avro_put_bytes(&eb, hash, WB_HASH_LEN);
	wb_buf_append(&eb, body, len);
	uint8_t lk[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
	raw_put(&r, CF_LOG, lk, 12, eb.data, eb.len);
	wb_buf_finish(&eb);
	uint8_t hv[8 + WB_HASH_LEN];
	be64(hv, 2);
	memcpy(hv + 8, hash, WB_HASH_LEN);
	raw_put(&r, CF_HEADS, hk, 4, hv, sizeof(hv));
	uint8_t key[INDEX_KEY_MAX];
	size_t kl = hashed_key(key, "pos:v1", 6);
	key[kl] = 0;
	be64(key + kl + 1, 3);
	raw_put(&r, CF_BY_ORDER, key, kl + 9, lk, 12);
	/* format-2 dedupe values: location only */
	const char *ids[] = {"v-1", "v-2", "v-3"};
	for (int i = 0; i < 3; i++) {
		kl = hashed_key(key, ids[i], 3);
		size_t vl;
		char *dv = raw_get(&r, CF_DEDUPE, key, kl, &vl);
		if (dv)
			raw_put(&r, CF_DEDUPE, key, kl, dv, 12);
		rocksdb_free(dv);
	}
	kl = hashed_key(key, "v-4", 3);
	raw_put(&r, CF_DEDUPE, key, kl, lk, 12);
	raw_close(&r);

	l = open_at(dir, "v1", 0, true);
	ok(l != NULL, "a format-2 store opens read-only");
	if (l) {
		ok(version_of(l, "v1") == 3, "its V1 states read (version 3)");
		char msg[512];
		struct wb_verify_result vr;
		wb_ledger_verify(l, &vr, msg, sizeof(msg));
		ok(vr.ok, "and it verifies (%s)", vr.reason);
		wb_ledger_close(l);
	}
	l = open_at(dir, "v1", 0, false);
	ok(l != NULL, "a writable open migrates it");
	if (!l)
		return;
	wb_ledger_batch_begin(l);
	ok(add(l, 0, "intruder", "v1", "v-5", false, 5) ==
		   WB_APPEND_REFUSED_MERCHANT,
	   "the order is its first entry's merchant's: the intruder is "
	   "refused (%s)", add_msg);
	ok(add(l, 0, "acme", "v1", "v-6", false, 6) == WB_APPEND_ADDED &&
		   version_of(l, "v1") == 4,
	   "acme's next event is version 4");
	ok(add(l, 0, "bolt", "other", "v-7", false, 7) == WB_APPEND_ADDED,
	   "bolt's order stays bolt's");
	ok(add(l, 0, "acme", "v1", "v-1", false, 1) == WB_APPEND_DUPLICATE,
	   "a format-2 dedupe value: the same event is a duplicate");
	ok(add(l, 0, "acme", "v1", "v-2", false, 9) ==
		   WB_APPEND_DUPLICATE_DIFFERS,
	   "a format-2 dedupe value: another payload is told apart");
	ok(add(l, 0, "acme", "elsewhere", "v-3", false, 3) ==
		   WB_APPEND_REFUSED_EVENT_ID,
	   "a format-2 dedupe value: another order is refused (%s)", add_msg);
	commit(l);
	wb_ledger_close(l);
	ok(raw_open(&r, path), "raw open");
	size_t fl;
	char *f = raw_get(&r, CF_DEFAULT, "format", 6, &fl);
	ok(f && fl == 1 && f[0] == '3', "format marker now 3");
	rocksdb_free(f);
	raw_close(&r);
}

/* Read-only opens of what is not a ledger say so. */
static void test_not_a_ledger(const char *dir)
{
	char path[400], msg[512];
	snprintf(path, sizeof(path), "%s/empty", dir);
	mkdir(path, 0755);
	struct wb_ledger_options o = {.dir = path, .read_only = true};
	wb_ledger *l = NULL;
	ok(wb_ledger_open(&o, &l, msg, sizeof(msg)) == WB_ENOTFOUND &&
		   strstr(msg, "is not a Waybill ledger (no RocksDB"),
	   "an empty directory: %s", msg);
	snprintf(path, sizeof(path), "%s/otherdb", dir);
	rocksdb_options_t *opts = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(opts, 1);
	char *err = NULL;
	rocksdb_t *db = rocksdb_open(opts, path, &err);
	rocksdb_free(err);
	if (db)
		rocksdb_close(db);
	rocksdb_options_destroy(opts);
	o.dir = path;
	ok(wb_ledger_open(&o, &l, msg, sizeof(msg)) == WB_ENOTFOUND &&
		   strstr(msg, "is not a Waybill ledger (a RocksDB database "
			       "without the ledger's column family 'log')"),
	   "another RocksDB database: %s", msg);
}

int main(void)
{
	char dir[] = "/tmp/wbledgerXXXXXX";
	if (!mkdtemp(dir))
		return 1;
	char path[300];
	snprintf(path, sizeof(path), "%s/db", dir);
	char msg[512] = "";
	struct wb_ledger_options o = {.dir = path, .sync = true};
	wb_ledger *l = NULL;
	ok(wb_ledger_open(&o, &l, msg, sizeof(msg)) == WB_OK, "open (%s)", msg);

	wb_ledger_batch_begin(l);
	ok(append(l, 0, "a", "e1") == WB_OK, "append e1");
	ok(append(l, 0, "a", "e2") == WB_OK, "append e2");
	ok(append(l, 1, "b", "e3") == WB_OK, "append e3 on partition 1");
	ok(append(l, 0, "a", "e1") == WB_ECONFLICT,
	   "duplicate within the batch refused");
	wb_ledger_batch_offset(l, "orders.events", 0, 10);
	wb_ledger_batch_offset(l, "orders.events", 0, 12);
	wb_ledger_batch_offset(l, "orders.events", 1, 5);
	struct wb_dlq_record d = {.topic = "orders.events", .partition = 0,
				  .offset = 41, .value = (const uint8_t *)"xyz",
				  .value_len = 3, .error = "bad avro"};
	wb_ledger_batch_dlq(l, &d);
	ok(wb_ledger_batch_count(l) == 3, "3 entries staged");
	struct wb_ledger_appended a;
	wb_ledger_batch_entry(l, 1, &a);
	ok(a.partition == 0 && a.seq == 2 && a.version == 2 &&
		   strcmp(a.order_id, "pos:a") == 0,
	   "e2 is partition 0 seq 2 version 2");
	ok(wb_ledger_batch_commit(l, msg, sizeof(msg)) == WB_OK, "commit");
	ok(wb_ledger_offset(l, "orders.events", 0) == 12, "offset p0 = 12");
	ok(wb_ledger_offset(l, "orders.events", 2) == -1, "unknown p2 = -1");

	/* reopen: everything survives, dedupe included */
	wb_ledger_close(l);
	ok(wb_ledger_open(&o, &l, msg, sizeof(msg)) == WB_OK, "reopen");
	int64_t head;
	wb_ledger_head(l, 0, &head, NULL);
	ok(head == 2, "head of p0 is 2");
	ok(wb_ledger_offset(l, "orders.events", 1) == 5, "offset p1 = 5");
	ok(wb_ledger_order_version(l, "pos:a") == 2, "order a at version 2");
	int n = 0;
	wb_ledger_dlq_each(l, dlq_count, &n);
	ok(n == 1, "DLQ record in the outbox after reopen");
	wb_ledger_batch_begin(l);
	ok(append(l, 0, "a", "e2") == WB_ECONFLICT,
	   "duplicate across reopen refused");
	ok(append(l, 1, "a", "e4") == WB_OK, "order a on partition 1");
	wb_ledger_batch_dlq_sent(l, d.id);
	ok(wb_ledger_batch_commit(l, msg, sizeof(msg)) == WB_OK, "commit 2");
	n = 0;
	wb_ledger_dlq_each(l, dlq_count, &n);
	ok(n == 0, "sent DLQ record removed");
	ok(wb_ledger_order_version(l, "pos:a") == 3,
	   "versions are per order across partitions");
	wb_ledger_head(l, 1, &head, NULL);
	ok(head == 2, "partition 1 seq 2");

	/* many entries: gapless */
	for (int b = 0; b < 5; b++) {
		wb_ledger_batch_begin(l);
		for (int i = 0; i < 200; i++) {
			char id[32], ord[16];
			snprintf(id, sizeof(id), "bulk-%d-%d", b, i);
			snprintf(ord, sizeof(ord), "o%d", i % 7);
			append(l, i % 3, ord, id);
		}
		wb_ledger_batch_commit(l, msg, sizeof(msg));
	}
	int64_t last;
	int c0 = replay_count(l, 0, &last);
	int64_t h0;
	wb_ledger_head(l, 0, &h0, NULL);
	ok(c0 > 0 && last == h0 && c0 == h0, "partition 0 gapless (%d)", c0);

	/* order iterator returns versions 1..n */
	wb_ledger_iter *it = wb_ledger_iter_order_create(l, "pos:o3");
	const uint8_t *e;
	size_t len;
	int64_t v = 0;
	bool inorder = true;
	while (wb_ledger_iter_next(it, &e, &len)) {
		struct wb_entry en;
		wb_entry_parse(e, len, &en, msg, sizeof(msg));
		inorder = inorder && en.version == v + 1;
		v = en.version;
	}
	wb_ledger_iter_destroy(it);
	ok(inorder && v == wb_ledger_order_version(l, "pos:o3"),
	   "order iterator yields versions 1..%lld", (long long)v);

	/* an entry decodes as a LedgerEntry with the generic codec */
	it = wb_ledger_iter_create(l, 0, 1);
	ok(wb_ledger_iter_next(it, &e, &len), "first entry");
	json_t *j = NULL;
	ok(wb_avro_decode(WB_SCHEMA_LEDGER_ENTRY, e, len, &j, msg,
			  sizeof(msg)) == WB_OK &&
		   json_integer_value(json_object_get(j, "seq")) == 1,
	   "stored bytes are a LedgerEntry (%s)", msg);
	json_decref(j);
	wb_ledger_iter_destroy(it);

	struct wb_verify_result r;
	wb_ledger_verify(l, &r, msg, sizeof(msg));
	ok(r.ok && r.entries == 1004, "verify passes: %lld entries (%s)",
	   (long long)r.entries, r.reason);
	wb_ledger_close(l);

	/* tamper: rewrite partition 2 seq 5 through RocksDB directly */
	rocksdb_options_t *opts = rocksdb_options_create();
	const char *cfs[] = {"default", "log", "by_order", "dedupe",
			     "orders", "heads", "offsets", "outbox"};
	const rocksdb_options_t *cfo[8];
	for (int i = 0; i < 8; i++)
		cfo[i] = opts;
	rocksdb_column_family_handle_t *h[8];
	char *err = NULL;
	rocksdb_t *db = rocksdb_open_column_families(opts, path, 8, cfs, cfo,
						     h, &err);
	ok(db && !err, "opened RocksDB directly");
	uint8_t key[12] = {0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 5};
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	size_t vl;
	char *val = rocksdb_get_cf(db, ro, h[1], (char *)key, 12, &vl, &err);
	ok(val != NULL, "read p2 seq 5");
	/* flip the last byte of the event: cancelled_at */
	val[vl - 1] ^= 0x02;
	rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
	rocksdb_put_cf(db, wo, h[1], (char *)key, 12, val, vl, &err);
	rocksdb_free(val);
	rocksdb_writeoptions_destroy(wo);
	rocksdb_readoptions_destroy(ro);
	for (int i = 0; i < 8; i++)
		rocksdb_column_family_handle_destroy(h[i]);
	rocksdb_close(db);
	rocksdb_options_destroy(opts);

	o.read_only = true;
	ok(wb_ledger_open(&o, &l, msg, sizeof(msg)) == WB_OK, "open read-only");
	wb_ledger_verify(l, &r, msg, sizeof(msg));
	ok(!r.ok && r.bad_partition == 2 && r.bad_seq == 5,
	   "verify names partition 2 seq 5: %s", r.reason);
	wb_ledger_close(l);
	wb_ledger_close(NULL);

	o.dir = "/nonexistent/ledger";
	ok(wb_ledger_open(&o, &l, msg, sizeof(msg)) == WB_ENOTFOUND,
	   "missing dir: %s", msg);

	test_tenants(dir);
	test_event_ids(dir);
	test_order_cache(dir);
	test_migration(dir);
	test_not_a_ledger(dir);

	for (int i = 0; i < 64; i++)
		wb_buf_finish(&bodies[i]);
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		diag("could not remove %s", dir);
	return tap_done();
}
