/*
 * ledger_store.c — the ledger's RocksDB: opening it, building and
 * committing batches, and reading entries back (layout in wb_ledger.h).
 *
 * Exactly-once from Kafka rests on one rule: every effect of a batch of
 * Kafka records — entries, dedupe keys, per-order versions, chain heads,
 * the next Kafka offset of each partition and the DLQ outbox — goes into a
 * single WriteBatch, written with sync. After a crash the store is either
 * before or after the whole batch, and the consumer resumes from the
 * offsets stored with it.
 *
 * Chain heads live in memory (loaded at open) and per-order versions in a
 * bounded cache, both changed as entries are appended; a failed commit
 * reloads them from the store.
 */
#include "wb_ledger.h"
#include "ledger_map.h"

#include <assert.h>
#include <rocksdb/c.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum {
	CF_DEFAULT, CF_LOG, CF_BY_ORDER, CF_DEDUPE, CF_ORDERS, CF_HEADS,
	CF_OFFSETS, CF_OUTBOX, CF_COUNT
};
static const char *const cf_names[CF_COUNT] = {
	"default", "log", "by_order", "dedupe", "orders", "heads", "offsets",
	"outbox"};

#define ORDER_STATE_V1 1

struct head {
	int64_t seq;
	uint8_t hash[WB_HASH_LEN];
	int64_t published;
	bool dirty, pub_dirty;
};

struct staged_offset {
	char topic[192];
	int32_t partition;
	int64_t next;
};

struct batch_entry {
	int32_t partition;
	int64_t seq, version;
	size_t entry_off, entry_len, order_off;
};

struct wb_ledger {
	rocksdb_t *db;
	rocksdb_column_family_handle_t *cf[CF_COUNT];
	rocksdb_options_t *db_opts, *point_opts, *log_opts;
	rocksdb_block_based_table_options_t *bbto;
	rocksdb_cache_t *cache;
	rocksdb_writeoptions_t *wo;
	rocksdb_readoptions_t *ro;
	bool read_only;

	struct head *heads;
	int32_t nheads;
	struct ledger_map orders; /* order id -> version */
	size_t order_cache_max;
	uint64_t next_dlq_id;

	/* the batch being built */
	rocksdb_writebatch_t *wb;
	wb_buf arena;
	struct batch_entry *entries;
	size_t nentries, capentries;
	struct ledger_map batch_ids;
	struct ledger_map batch_orders; /* order id -> version, written once */
	struct staged_offset *offsets;
	size_t noffsets, capoffsets;
	size_t nputs;
};

/* ---- helpers ---------------------------------------------------------- */

static void be32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void be64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static wb_err store_err(char *msg, size_t msglen, const char *what,
			char *err)
{
	wb_err rc = wb_fail(msg, msglen, WB_ESTORE, "%s: %s", what,
			    err ? err : "unknown RocksDB error");
	rocksdb_free(err);
	return rc;
}

static struct head *head_get(wb_ledger *l, int32_t partition)
{
	assert(partition >= 0);
	if (partition >= l->nheads) {
		int32_t n = partition + 1;
		l->heads = wb_xrealloc(l->heads, (size_t)n * sizeof(*l->heads));
		memset(l->heads + l->nheads, 0,
		       (size_t)(n - l->nheads) * sizeof(*l->heads));
		l->nheads = n;
	}
	return &l->heads[partition];
}

/* ---- open / close ----------------------------------------------------- */

static void load_heads(wb_ledger *l)
{
	free(l->heads);
	l->heads = NULL;
	l->nheads = 0;
	rocksdb_iterator_t *it =
		rocksdb_create_iterator_cf(l->db, l->ro, l->cf[CF_HEADS]);
	for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t kl, vl;
		const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
		const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
		if (kl != 4 || vl != 8 + WB_HASH_LEN)
			continue;
		struct head *h = head_get(l, (int32_t)rd32(k));
		h->seq = (int64_t)rd64(v);
		memcpy(h->hash, v + 8, WB_HASH_LEN);
	}
	rocksdb_iter_destroy(it);
	it = rocksdb_create_iterator_cf(l->db, l->ro, l->cf[CF_OUTBOX]);
	l->next_dlq_id = 1;
	for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t kl, vl;
		const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
		const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
		if (kl == 5 && k[0] == 'L' && vl == 8)
			head_get(l, (int32_t)rd32(k + 1))->published =
				(int64_t)rd64(v);
		else if (kl == 9 && k[0] == 'D')
			l->next_dlq_id = rd64(k + 1) + 1;
	}
	rocksdb_iter_destroy(it);
}

wb_err wb_ledger_open(const struct wb_ledger_options *o, wb_ledger **out,
		      char *msg, size_t msglen)
{
	assert(o && o->dir && out);
	*out = NULL;
	struct stat st;
	if (o->read_only && stat(o->dir, &st) != 0)
		return wb_fail(msg, msglen, WB_ENOTFOUND,
			       "no ledger at %s (set ledger.data.dir or "
			       "--data-dir)",
			       o->dir);
	if (!o->read_only)
		mkdir(o->dir, 0755); /* the parent must exist */

	wb_ledger *l = wb_xcalloc(1, sizeof(*l));
	l->read_only = o->read_only;
	l->order_cache_max = o->order_cache ? o->order_cache : 262144;

	l->cache = rocksdb_cache_create_lru(64u << 20);
	l->bbto = rocksdb_block_based_options_create();
	rocksdb_block_based_options_set_block_cache(l->bbto, l->cache);
	rocksdb_block_based_options_set_filter_policy(
		l->bbto, rocksdb_filterpolicy_create_bloom_full(10));

	l->db_opts = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(l->db_opts, 1);
	rocksdb_options_set_create_missing_column_families(l->db_opts, 1);
	rocksdb_options_set_max_background_jobs(l->db_opts, 2);
	rocksdb_options_set_write_buffer_size(l->db_opts, 64u << 20);
	rocksdb_options_set_max_total_wal_size(l->db_opts, 256u << 20);
	rocksdb_options_set_keep_log_file_num(l->db_opts, 3);
	rocksdb_options_set_paranoid_checks(l->db_opts, 1);
	rocksdb_options_set_block_based_table_factory(l->db_opts, l->bbto);
	rocksdb_options_set_compression(l->db_opts, rocksdb_lz4_compression);
	/* one writer thread; the vector memtable below needs this off */
	rocksdb_options_set_allow_concurrent_memtable_write(l->db_opts, 0);
	/* kPointInTimeRecovery (the default) stops at the first corrupt WAL
	 * record: every synced batch before it is kept whole. */

	/* Point-lookup families (dedupe, orders, ...): a whole-key bloom
	 * filter in the memtable answers the common "not seen yet" without
	 * walking the skiplist. */
	l->point_opts = rocksdb_options_create_copy(l->db_opts);
	rocksdb_options_set_write_buffer_size(l->point_opts, 32u << 20);
	rocksdb_options_set_memtable_prefix_bloom_size_ratio(l->point_opts, 0.1);
	rocksdb_options_set_memtable_whole_key_filtering(l->point_opts, 1);
	/* The log only ever appends in key order and is read back in bulk:
	 * a vector memtable inserts in O(1) where a skiplist compares keys
	 * log(n) times (the largest cost in a profile of the ledger). */
	l->log_opts = rocksdb_options_create_copy(l->db_opts);
	rocksdb_options_set_memtable_vector_rep(l->log_opts);

	const rocksdb_options_t *cf_opts[CF_COUNT];
	for (int i = 0; i < CF_COUNT; i++)
		cf_opts[i] = i == CF_LOG ? l->log_opts : l->point_opts;

	char *err = NULL;
	if (o->read_only)
		l->db = rocksdb_open_for_read_only_column_families(
			l->db_opts, o->dir, CF_COUNT, cf_names, cf_opts, l->cf,
			0, &err);
	else
		l->db = rocksdb_open_column_families(l->db_opts, o->dir,
						     CF_COUNT, cf_names,
						     cf_opts, l->cf, &err);
	if (!l->db) {
		wb_err rc = store_err(msg, msglen, o->dir, err);
		wb_ledger_close(l);
		return rc;
	}
	/* RocksDB's per-thread perf counters cost a TLS lookup per counter
	 * (about 10% of the ledger's instructions); we do not read them. */
	rocksdb_set_perf_level(1 /* kDisable */);
	l->wo = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(l->wo, o->sync);
	l->ro = rocksdb_readoptions_create();
	l->wb = rocksdb_writebatch_create();
	wb_buf_init(&l->arena);
	ledger_map_init(&l->orders);
	ledger_map_init(&l->batch_ids);
	ledger_map_init(&l->batch_orders);
	load_heads(l);
	*out = l;
	return WB_OK;
}

void wb_ledger_close(wb_ledger *l)
{
	if (!l)
		return;
	for (int i = 0; i < CF_COUNT; i++)
		if (l->cf[i])
			rocksdb_column_family_handle_destroy(l->cf[i]);
	if (l->db)
		rocksdb_close(l->db);
	if (l->wb)
		rocksdb_writebatch_destroy(l->wb);
	if (l->wo)
		rocksdb_writeoptions_destroy(l->wo);
	if (l->ro)
		rocksdb_readoptions_destroy(l->ro);
	if (l->point_opts)
		rocksdb_options_destroy(l->point_opts);
	if (l->log_opts)
		rocksdb_options_destroy(l->log_opts);
	if (l->db_opts)
		rocksdb_options_destroy(l->db_opts);
	if (l->bbto)
		rocksdb_block_based_options_destroy(l->bbto);
	if (l->cache)
		rocksdb_cache_destroy(l->cache);
	ledger_map_finish(&l->orders);
	ledger_map_finish(&l->batch_ids);
	ledger_map_finish(&l->batch_orders);
	wb_buf_finish(&l->arena);

	free(l->entries);
	free(l->offsets);
	free(l->heads);
	free(l);
}

/* ---- per-order state -------------------------------------------------- */

static int64_t order_version_load(wb_ledger *l, const char *id, size_t n)
{
	int64_t *cached = ledger_map_get(&l->orders, id, n);
	if (cached)
		return *cached;
	char *err = NULL;
	size_t vl = 0;
	char *v = rocksdb_get_cf(l->db, l->ro, l->cf[CF_ORDERS], id, n, &vl,
				 &err);
	int64_t version = 0;
	if (err) {
		/* a read error here would let a version repeat: fail hard */
		wb_log(WB_LOG_ERROR, "store_read_failed", "cf=orders err=%s",
		       wb_log_q(err));
		abort();
	}
	if (v && vl >= 9 && (uint8_t)v[0] == ORDER_STATE_V1)
		version = (int64_t)rd64((const uint8_t *)v + 1);
	rocksdb_free(v);
	if (l->orders.n >= l->order_cache_max)
		ledger_map_clear(&l->orders);
	ledger_map_put(&l->orders, id, n, version);
	return version;
}

int64_t wb_ledger_order_version(wb_ledger *l, const char *order_id)
{
	return order_version_load(l, order_id, strlen(order_id));
}

/* ---- batches ---------------------------------------------------------- */

void wb_ledger_batch_begin(wb_ledger *l)
{
	assert(!l->read_only);
	rocksdb_writebatch_clear(l->wb);
	wb_buf_reset(&l->arena);
	l->nentries = 0;
	l->noffsets = 0;
	l->nputs = 0;
	ledger_map_clear(&l->batch_ids);
	ledger_map_clear(&l->batch_orders);
}

bool wb_ledger_batch_empty(const wb_ledger *l)
{
	return l->nputs == 0 && l->noffsets == 0;
}

static bool is_duplicate(wb_ledger *l, const struct wb_slice *id)
{
	if (ledger_map_get(&l->batch_ids, id->p, id->n))
		return true;
	char *err = NULL;
	size_t vl = 0;
	char *v = rocksdb_get_cf(l->db, l->ro, l->cf[CF_DEDUPE], id->p, id->n,
				 &vl, &err);
	if (err) {
		wb_log(WB_LOG_ERROR, "store_read_failed", "cf=dedupe err=%s",
		       wb_log_q(err));
		abort();
	}
	rocksdb_free(v);
	return v != NULL;
}

wb_err wb_ledger_batch_append(wb_ledger *l, int32_t partition,
			      const uint8_t *body, size_t len,
			      const struct wb_event_view *v,
			      int64_t recorded_at, char *msg, size_t msglen)
{
	assert(!l->read_only && partition >= 0 && v);
	if (is_duplicate(l, &v->event_id))
		return wb_fail(msg, msglen, WB_ECONFLICT,
			       "event_id already recorded");
	struct head *h = head_get(l, partition);
	int64_t version =
		order_version_load(l, v->order_id.p, v->order_id.n) + 1;

	struct wb_entry e = {
		.partition = partition,
		.seq = h->seq + 1,
		.version = version,
		.recorded_at = recorded_at,
		.prev_hash = h->hash,
		.event = body,
		.event_len = len,
	};
	uint8_t hash[WB_HASH_LEN];
	wb_entry_compute_hash(&e, hash);

	/* entry bytes: LedgerEntry Avro body */
	size_t off = l->arena.len;
	wb_avro_put_long(&l->arena, partition);
	wb_avro_put_long(&l->arena, e.seq);
	wb_avro_put_long(&l->arena, version);
	wb_avro_put_long(&l->arena, recorded_at);
	wb_avro_put_bytes(&l->arena, h->hash, WB_HASH_LEN);
	wb_avro_put_bytes(&l->arena, hash, WB_HASH_LEN);
	wb_buf_append(&l->arena, body, len);
	size_t entry_len = l->arena.len - off;
	size_t order_off = l->arena.len;
	wb_buf_append(&l->arena, v->order_id.p, v->order_id.n);
	wb_buf_putc(&l->arena, 0);

	uint8_t logkey[12], loc[12], okey[300];
	be32(logkey, (uint32_t)partition);
	be64(logkey + 4, (uint64_t)e.seq);
	memcpy(loc, logkey, 12);
	rocksdb_writebatch_put_cf(l->wb, l->cf[CF_LOG], (char *)logkey, 12,
				  (char *)l->arena.data + off, entry_len);
	/* order ids are capped at 256 bytes by wb_event_check */
	assert(v->order_id.n <= 256);
	memcpy(okey, v->order_id.p, v->order_id.n);
	okey[v->order_id.n] = 0;
	be64(okey + v->order_id.n + 1, (uint64_t)version);
	rocksdb_writebatch_put_cf(l->wb, l->cf[CF_BY_ORDER], (char *)okey,
				  v->order_id.n + 9, (char *)loc, 12);
	rocksdb_writebatch_put_cf(l->wb, l->cf[CF_DEDUPE], v->event_id.p,
				  v->event_id.n, (char *)loc, 12);
	l->nputs += 3;
	/* the order's state is written once per batch, at commit */
	ledger_map_put(&l->batch_orders, v->order_id.p, v->order_id.n, version);

	ledger_map_put(&l->batch_ids, v->event_id.p, v->event_id.n, 1);
	if (l->orders.n >= l->order_cache_max)
		ledger_map_clear(&l->orders);
	ledger_map_put(&l->orders, v->order_id.p, v->order_id.n, version);
	h->seq = e.seq;
	memcpy(h->hash, hash, WB_HASH_LEN);
	h->dirty = true;

	if (l->nentries == l->capentries) {
		l->capentries = l->capentries ? 2 * l->capentries : 1024;
		l->entries = wb_xrealloc(l->entries,
					 l->capentries * sizeof(*l->entries));
	}
	l->entries[l->nentries++] = (struct batch_entry){
		partition, e.seq, version, off, entry_len, order_off};
	return WB_OK;
}

void wb_ledger_batch_offset(wb_ledger *l, const char *topic,
			    int32_t partition, int64_t next_offset)
{
	for (size_t i = 0; i < l->noffsets; i++) {
		struct staged_offset *s = &l->offsets[i];
		if (s->partition == partition && strcmp(s->topic, topic) == 0) {
			if (next_offset > s->next)
				s->next = next_offset;
			return;
		}
	}
	if (l->noffsets == l->capoffsets) {
		l->capoffsets = l->capoffsets ? 2 * l->capoffsets : 16;
		l->offsets = wb_xrealloc(l->offsets,
					 l->capoffsets * sizeof(*l->offsets));
	}
	struct staged_offset *s = &l->offsets[l->noffsets++];
	snprintf(s->topic, sizeof(s->topic), "%s", topic);
	s->partition = partition;
	s->next = next_offset;
}

void wb_ledger_batch_dlq(wb_ledger *l, struct wb_dlq_record *r)
{
	r->id = l->next_dlq_id++;
	uint8_t key[9] = {'D'};
	be64(key + 1, r->id);
	wb_buf b;
	wb_buf_init(&b);
	wb_avro_put_bytes(&b, r->topic, strlen(r->topic));
	wb_avro_put_long(&b, r->partition);
	wb_avro_put_long(&b, r->offset);
	wb_avro_put_long(&b, r->key ? (int64_t)r->key_len : -1);
	wb_buf_append(&b, r->key, r->key ? r->key_len : 0);
	wb_avro_put_long(&b, r->value ? (int64_t)r->value_len : -1);
	wb_buf_append(&b, r->value, r->value ? r->value_len : 0);
	wb_avro_put_bytes(&b, r->error, strlen(r->error));
	rocksdb_writebatch_put_cf(l->wb, l->cf[CF_OUTBOX], (char *)key, 9,
				  (char *)b.data, b.len);
	wb_buf_finish(&b);
	l->nputs++;
}

void wb_ledger_batch_published(wb_ledger *l, int32_t partition, int64_t seq)
{
	struct head *h = head_get(l, partition);
	if (seq > h->published) {
		h->published = seq;
		h->pub_dirty = true;
	}
}

void wb_ledger_batch_dlq_sent(wb_ledger *l, uint64_t id)
{
	uint8_t key[9] = {'D'};
	be64(key + 1, id);
	rocksdb_writebatch_delete_cf(l->wb, l->cf[CF_OUTBOX], (char *)key, 9);
	l->nputs++;
}

size_t wb_ledger_batch_count(const wb_ledger *l)
{
	return l->nentries;
}

void wb_ledger_batch_entry(const wb_ledger *l, size_t i,
			   struct wb_ledger_appended *out)
{
	assert(i < l->nentries);
	const struct batch_entry *b = &l->entries[i];
	out->partition = b->partition;
	out->seq = b->seq;
	out->version = b->version;
	out->entry = l->arena.data + b->entry_off;
	out->entry_len = b->entry_len;
	out->order_id = (const char *)l->arena.data + b->order_off;
}

wb_err wb_ledger_batch_commit(wb_ledger *l, char *msg, size_t msglen)
{
	for (size_t i = 0; i < l->batch_orders.cap; i++) {
		const struct ledger_map_slot *o = &l->batch_orders.slots[i];
		if (!ledger_map_used(&l->batch_orders, o))
			continue;
		uint8_t state[9] = {ORDER_STATE_V1};
		be64(state + 1, (uint64_t)o->val);
		rocksdb_writebatch_put_cf(
			l->wb, l->cf[CF_ORDERS],
			(const char *)l->batch_orders.keys.data + o->off,
			o->len, (char *)state, sizeof(state));
	}
	for (size_t i = 0; i < l->noffsets; i++) {
		struct staged_offset *s = &l->offsets[i];
		uint8_t key[200], val[8];
		size_t tl = strlen(s->topic);
		memcpy(key, s->topic, tl);
		key[tl] = 0;
		be32(key + tl + 1, (uint32_t)s->partition);
		be64(val, (uint64_t)s->next);
		rocksdb_writebatch_put_cf(l->wb, l->cf[CF_OFFSETS], (char *)key,
					  tl + 5, (char *)val, 8);
	}
	for (int32_t p = 0; p < l->nheads; p++) {
		struct head *h = &l->heads[p];
		uint8_t key[5], val[8 + WB_HASH_LEN];
		if (h->dirty) {
			be32(key, (uint32_t)p);
			be64(val, (uint64_t)h->seq);
			memcpy(val + 8, h->hash, WB_HASH_LEN);
			rocksdb_writebatch_put_cf(l->wb, l->cf[CF_HEADS],
						  (char *)key, 4, (char *)val,
						  sizeof(val));
		}
		if (h->pub_dirty) {
			key[0] = 'L';
			be32(key + 1, (uint32_t)p);
			be64(val, (uint64_t)h->published);
			rocksdb_writebatch_put_cf(l->wb, l->cf[CF_OUTBOX],
						  (char *)key, 5, (char *)val,
						  8);
		}
	}
	char *err = NULL;
	rocksdb_write(l->db, l->wo, l->wb, &err);
	if (err) {
		wb_err rc = store_err(msg, msglen, "commit", err);
		/* what we changed in memory is not in the store */
		ledger_map_clear(&l->orders);
		load_heads(l);
		wb_ledger_batch_begin(l);
		return rc;
	}
	for (int32_t p = 0; p < l->nheads; p++)
		l->heads[p].dirty = l->heads[p].pub_dirty = false;
	return WB_OK;
}

/* ---- reading ---------------------------------------------------------- */

int64_t wb_ledger_offset(wb_ledger *l, const char *topic, int32_t partition)
{
	uint8_t key[200];
	size_t tl = strlen(topic);
	if (tl > 190)
		return -1;
	memcpy(key, topic, tl);
	key[tl] = 0;
	be32(key + tl + 1, (uint32_t)partition);
	char *err = NULL;
	size_t vl = 0;
	char *v = rocksdb_get_cf(l->db, l->ro, l->cf[CF_OFFSETS], (char *)key,
				 tl + 5, &vl, &err);
	int64_t off = -1;
	if (err) {
		wb_log(WB_LOG_ERROR, "store_read_failed", "cf=offsets err=%s",
		       wb_log_q(err));
		rocksdb_free(err);
		abort();
	}
	if (v && vl == 8)
		off = (int64_t)rd64((const uint8_t *)v);
	rocksdb_free(v);
	return off;
}

void wb_ledger_head(wb_ledger *l, int32_t partition, int64_t *seq,
		    uint8_t hash[WB_HASH_LEN])
{
	if (partition < 0 || partition >= l->nheads) {
		*seq = 0;
		if (hash)
			memset(hash, 0, WB_HASH_LEN);
		return;
	}
	*seq = l->heads[partition].seq;
	if (hash)
		memcpy(hash, l->heads[partition].hash, WB_HASH_LEN);
}

int64_t wb_ledger_published(wb_ledger *l, int32_t partition)
{
	return partition >= 0 && partition < l->nheads
		       ? l->heads[partition].published
		       : 0;
}

int32_t wb_ledger_partition_count(wb_ledger *l)
{
	int32_t n = l->nheads;
	while (n > 0 && l->heads[n - 1].seq == 0)
		n--;
	return n;
}

struct wb_ledger_iter {
	wb_ledger *l;
	rocksdb_readoptions_t *ro;
	rocksdb_iterator_t *it;
	uint8_t lower[320], upper[320];
	bool by_order, started;
	wb_err err;
	char errmsg[256];
	char *val; /* by_order: the entry fetched last */
};

wb_ledger_iter *wb_ledger_iter_create(wb_ledger *l, int32_t partition,
				      int64_t from_seq)
{
	wb_ledger_iter *it = wb_xcalloc(1, sizeof(*it));
	it->l = l;
	it->ro = rocksdb_readoptions_create();
	be32(it->lower, (uint32_t)(partition < 0 ? 0 : partition));
	be64(it->lower + 4, (uint64_t)(from_seq < 0 ? 0 : from_seq));
	rocksdb_readoptions_set_iterate_lower_bound(it->ro, (char *)it->lower,
						    12);
	if (partition >= 0) {
		be32(it->upper, (uint32_t)partition + 1);
		be64(it->upper + 4, 0);
		rocksdb_readoptions_set_iterate_upper_bound(
			it->ro, (char *)it->upper, 12);
	}
	it->it = rocksdb_create_iterator_cf(l->db, it->ro, l->cf[CF_LOG]);
	rocksdb_iter_seek(it->it, (char *)it->lower, 12);
	return it;
}

wb_ledger_iter *wb_ledger_iter_order_create(wb_ledger *l, const char *order_id)
{
	wb_ledger_iter *it = wb_xcalloc(1, sizeof(*it));
	it->l = l;
	it->by_order = true;
	it->ro = rocksdb_readoptions_create();
	size_t n = strlen(order_id);
	if (n > 300)
		n = 300;
	memcpy(it->lower, order_id, n);
	it->lower[n] = 0;
	memcpy(it->upper, order_id, n);
	it->upper[n] = 1;
	rocksdb_readoptions_set_iterate_lower_bound(it->ro, (char *)it->lower,
						    n + 1);
	rocksdb_readoptions_set_iterate_upper_bound(it->ro, (char *)it->upper,
						    n + 1);
	it->it = rocksdb_create_iterator_cf(l->db, it->ro, l->cf[CF_BY_ORDER]);
	rocksdb_iter_seek(it->it, (char *)it->lower, n + 1);
	return it;
}

bool wb_ledger_iter_next(wb_ledger_iter *it, const uint8_t **entry,
			 size_t *len)
{
	if (it->started)
		rocksdb_iter_next(it->it);
	it->started = true;
	if (!rocksdb_iter_valid(it->it)) {
		char *err = NULL;
		rocksdb_iter_get_error(it->it, &err);
		if (err)
			it->err = store_err(it->errmsg, sizeof(it->errmsg),
					    "iterate", err);
		return false;
	}
	size_t vl;
	const char *v = rocksdb_iter_value(it->it, &vl);
	if (!it->by_order) {
		*entry = (const uint8_t *)v;
		*len = vl;
		return true;
	}
	if (vl != 12) {
		it->err = wb_fail(it->errmsg, sizeof(it->errmsg), WB_ECORRUPT,
				  "by_order value of %zu bytes", vl);
		return false;
	}
	rocksdb_free(it->val);
	char *err = NULL;
	it->val = rocksdb_get_cf(it->l->db, it->l->ro, it->l->cf[CF_LOG], v,
				 12, len, &err);
	if (err || !it->val) {
		it->err = err ? store_err(it->errmsg, sizeof(it->errmsg),
					  "read", err)
			      : wb_fail(it->errmsg, sizeof(it->errmsg),
					WB_ECORRUPT,
					"by_order points at a missing entry");
		return false;
	}
	*entry = (const uint8_t *)it->val;
	return true;
}

wb_err wb_ledger_iter_error(const wb_ledger_iter *it, char *msg,
			    size_t msglen)
{
	if (it->err)
		wb_fail(msg, msglen, it->err, "%s", it->errmsg);
	return it->err;
}

void wb_ledger_iter_destroy(wb_ledger_iter *it)
{
	if (!it)
		return;
	rocksdb_iter_destroy(it->it);
	rocksdb_readoptions_destroy(it->ro);
	rocksdb_free(it->val);
	free(it);
}

void wb_ledger_offsets_each(wb_ledger *l,
			    void (*fn)(const char *topic, int32_t partition,
				       int64_t next, void *ud),
			    void *ud)
{
	rocksdb_iterator_t *it =
		rocksdb_create_iterator_cf(l->db, l->ro, l->cf[CF_OFFSETS]);
	for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t kl, vl;
		const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
		const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
		if (kl < 6 || k[kl - 5] != 0 || vl != 8)
			continue;
		char topic[200];
		snprintf(topic, sizeof(topic), "%.*s", (int)(kl - 5),
			 (const char *)k);
		fn(topic, (int32_t)rd32(k + kl - 4), (int64_t)rd64(v), ud);
	}
	rocksdb_iter_destroy(it);
}

void wb_ledger_dlq_each(wb_ledger *l,
			void (*fn)(const struct wb_dlq_record *r, void *ud),
			void *ud)
{
	rocksdb_iterator_t *it =
		rocksdb_create_iterator_cf(l->db, l->ro, l->cf[CF_OUTBOX]);
	uint8_t first[1] = {'D'};
	for (rocksdb_iter_seek(it, (char *)first, 1); rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t kl, vl;
		const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
		const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
		if (kl != 9 || k[0] != 'D')
			break;
		struct wb_avro_reader r = {v, v + vl, true};
		struct wb_dlq_record rec = {.id = rd64(k + 1)};
		const uint8_t *topic, *err;
		size_t topic_len, err_len;
		int64_t part, klen, vlen;
		if (!wb_avro_get_bytes(&r, &topic, &topic_len) ||
		    !wb_avro_get_long(&r, &part) ||
		    !wb_avro_get_long(&r, &rec.offset) ||
		    !wb_avro_get_long(&r, &klen) ||
		    (klen > 0 && (uint64_t)klen > (uint64_t)(r.end - r.p)))
			continue;
		rec.key = klen >= 0 ? r.p : NULL;
		rec.key_len = klen > 0 ? (size_t)klen : 0;
		r.p += rec.key_len;
		if (!wb_avro_get_long(&r, &vlen) ||
		    (vlen > 0 && (uint64_t)vlen > (uint64_t)(r.end - r.p)))
			continue;
		rec.value = vlen >= 0 ? r.p : NULL;
		rec.value_len = vlen > 0 ? (size_t)vlen : 0;
		r.p += rec.value_len;
		if (!wb_avro_get_bytes(&r, &err, &err_len))
			continue;
		char *t = wb_xstrndup((const char *)topic, topic_len);
		char *e = wb_xstrndup((const char *)err, err_len);
		rec.topic = t;
		rec.error = e;
		rec.partition = (int32_t)part;
		fn(&rec, ud);
		free(t);
		free(e);
	}
	rocksdb_iter_destroy(it);
}

/* ---- verification ------------------------------------------------------ */

static void verify_fail(struct wb_verify_result *r, int32_t p, int64_t seq,
			const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void verify_fail(struct wb_verify_result *r, int32_t p, int64_t seq,
			const char *fmt, ...)
{
	if (!r->ok)
		return;
	r->ok = false;
	r->bad_partition = p;
	r->bad_seq = seq;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	va_end(ap);
}

/* The stored chain head must be the last entry: same seq, same hash. */
static void head_mismatch(struct wb_verify_result *r, int32_t p,
			  int64_t last_seq, const uint8_t *last_hash,
			  int64_t head_seq, const uint8_t *head_hash)
{
	if (head_seq != last_seq)
		verify_fail(r, p, last_seq,
			    "the stored chain head says seq %lld, the log ends "
			    "at %lld",
			    (long long)head_seq, (long long)last_seq);
	else if (memcmp(head_hash, last_hash, WB_HASH_LEN))
		verify_fail(r, p, last_seq,
			    "the stored chain head's hash differs from this "
			    "entry's");
}

static void verify_chain(wb_ledger *l, struct wb_verify_result *r)
{
	rocksdb_iterator_t *it =
		rocksdb_create_iterator_cf(l->db, l->ro, l->cf[CF_LOG]);
	int32_t cur = -1;
	int64_t last_seq = 0;
	uint8_t last_hash[WB_HASH_LEN] = {0};
	char msg[256];
	for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it) && r->ok;
	     rocksdb_iter_next(it)) {
		size_t kl, vl;
		const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
		const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
		if (kl != 12) {
			verify_fail(r, -1, -1, "log key of %zu bytes", kl);
			break;
		}
		int32_t p = (int32_t)rd32(k);
		int64_t seq = (int64_t)rd64(k + 4);
		if (p != cur) {
			if (cur >= 0) {
				int64_t hs;
				uint8_t hh[WB_HASH_LEN];
				wb_ledger_head(l, cur, &hs, hh);
				head_mismatch(r, cur, last_seq, last_hash, hs,
					      hh);
			}
			cur = p;
			last_seq = 0;
			memset(last_hash, 0, WB_HASH_LEN);
			r->partitions++;
		}
		struct wb_entry e;
		if (wb_entry_parse(v, vl, &e, msg, sizeof(msg))) {
			verify_fail(r, p, seq, "%s", msg);
			break;
		}
		if (seq != last_seq + 1)
			verify_fail(r, p, last_seq + 1, "seq %lld missing",
				    (long long)(last_seq + 1));
		else if (e.partition != p || e.seq != seq)
			verify_fail(r, p, seq,
				    "entry says partition %d seq %lld",
				    e.partition, (long long)e.seq);
		else if (memcmp(e.prev_hash, last_hash, WB_HASH_LEN))
			verify_fail(r, p, seq,
				    "prev_hash does not match the hash of seq "
				    "%lld",
				    (long long)last_seq);
		uint8_t h[WB_HASH_LEN];
		wb_entry_compute_hash(&e, h);
		if (r->ok && memcmp(h, e.hash, WB_HASH_LEN)) {
			char want[65], got[65];
			wb_hex(e.hash, WB_HASH_LEN, want);
			wb_hex(h, WB_HASH_LEN, got);
			verify_fail(r, p, seq,
				    "hash mismatch: stored %.16s..., "
				    "recomputed %.16s...",
				    want, got);
		}
		struct wb_event_view ev;
		if (r->ok &&
		    wb_event_peek(e.event, e.event_len, &ev, msg, sizeof(msg)))
			verify_fail(r, p, seq, "event: %s", msg);
		last_seq = seq;
		memcpy(last_hash, e.hash, WB_HASH_LEN);
		r->entries++;
	}
	char *err = NULL;
	rocksdb_iter_get_error(it, &err);
	if (err) {
		verify_fail(r, cur, last_seq, "read error: %s", err);
		rocksdb_free(err);
	}
	rocksdb_iter_destroy(it);
	if (r->ok && cur >= 0) {
		int64_t hs;
		uint8_t hh[WB_HASH_LEN];
		wb_ledger_head(l, cur, &hs, hh);
		head_mismatch(r, cur, last_seq, last_hash, hs, hh);
	}
	for (int32_t p = cur + 1; r->ok && p < l->nheads; p++)
		if (l->heads[p].seq)
			verify_fail(r, p, 1, "head at seq %lld but no entries",
				    (long long)l->heads[p].seq);
}

/* Every order's versions are 1..n and point at entries of that order. */
static void verify_orders(wb_ledger *l, struct wb_verify_result *r)
{
	rocksdb_iterator_t *it =
		rocksdb_create_iterator_cf(l->db, l->ro, l->cf[CF_BY_ORDER]);
	wb_buf cur;
	wb_buf_init(&cur);
	int64_t last = 0;
	char msg[256];
	for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it) && r->ok;
	     rocksdb_iter_next(it)) {
		size_t kl, vl;
		const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
		const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
		if (kl < 10 || k[kl - 9] != 0 || vl != 12) {
			verify_fail(r, -1, -1, "malformed by_order record");
			break;
		}
		size_t idlen = kl - 9;
		int64_t version = (int64_t)rd64(k + idlen + 1);
		if (cur.len != idlen || memcmp(cur.data, k, idlen)) {
			wb_buf_reset(&cur);
			wb_buf_append(&cur, k, idlen);
			last = 0;
			r->orders++;
		}
		int32_t p = (int32_t)rd32(v);
		int64_t seq = (int64_t)rd64(v + 4);
		if (version != last + 1) {
			verify_fail(r, p, seq, "order %.*s: version %lld "
				    "follows %lld", (int)idlen, (const char *)k,
				    (long long)version, (long long)last);
			break;
		}
		last = version;
		char *err = NULL;
		size_t el = 0;
		char *ent = rocksdb_get_cf(l->db, l->ro, l->cf[CF_LOG],
					   (const char *)v, 12, &el, &err);
		struct wb_entry e;
		struct wb_event_view ev;
		if (err || !ent ||
		    wb_entry_parse((uint8_t *)ent, el, &e, msg, sizeof(msg)) ||
		    e.version != version ||
		    wb_event_peek(e.event, e.event_len, &ev, msg, sizeof(msg)) ||
		    ev.order_id.n != idlen ||
		    memcmp(ev.order_id.p, k, idlen))
			verify_fail(r, p, seq,
				    "order %.*s version %lld: index points at "
				    "the wrong entry",
				    (int)idlen, (const char *)k,
				    (long long)version);
		rocksdb_free(err);
		rocksdb_free(ent);
	}
	wb_buf_finish(&cur);
	rocksdb_iter_destroy(it);
}

wb_err wb_ledger_verify(wb_ledger *l, struct wb_verify_result *r, char *msg,
			size_t msglen)
{
	memset(r, 0, sizeof(*r));
	r->ok = true;
	verify_chain(l, r);
	if (r->ok)
		verify_orders(l, r);
	(void)msg;
	(void)msglen;
	return WB_OK;
}
