/*
 * test_ledger.c — the ledger store without Kafka: gapless seq per
 * partition and version per order, dedupe by event_id (within a batch and
 * across reopen), the hash chain and its verification, tamper detection,
 * offsets and the DLQ outbox surviving a reopen.
 */
#include <rocksdb/c.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tap.h"
#include "wb_ledger.h"

static wb_buf bodies[64];
static int nbodies;

/* An encoded OrderCancelled event for order/event id. */
static const uint8_t *event(const char *order, const char *event_id,
			    size_t *len, struct wb_event_view *v)
{
	char oid[128];
	snprintf(oid, sizeof(oid), "pos:%s", order);
	json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:s,s:{s:s,s:I}}",
			      "event_id", event_id, "merchant", "m1",
			      "order_id", oid, "channel", "pos", "type",
			      "OrderCancelled", "source_time",
			      (json_int_t)1000, "ingest_time", (json_int_t)2000,
			      "source", "test", "payload", "reason", "customer",
			      "cancelled_at", (json_int_t)1000);
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

	for (int i = 0; i < 64; i++)
		wb_buf_finish(&bodies[i]);
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		diag("could not remove %s", dir);
	return tap_done();
}
