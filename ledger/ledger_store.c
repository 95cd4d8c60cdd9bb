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
 * This file opens and closes the store and reads it back; building and
 * committing batches is ledger_batch.c, verification ledger_verify.c.
 */
#include "ledger_internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const cf_names[CF_COUNT] = {
	"default", "log", "by_order", "dedupe", "orders", "heads", "offsets",
	"outbox"};

/* ---- helpers ---------------------------------------------------------- */

wb_err ledger_store_err(char *msg, size_t msglen, const char *what,
			char *err)
{
	wb_err rc = wb_fail(msg, msglen, WB_ESTORE, "%s: %s", what,
			    err ? err : "unknown RocksDB error");
	rocksdb_free(err);
	return rc;
}

struct head *ledger_head_get(wb_ledger *l, int32_t partition)
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

void ledger_load_heads(wb_ledger *l)
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
		struct head *h = ledger_head_get(l, (int32_t)rd32(k));
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
			ledger_head_get(l, (int32_t)rd32(k + 1))->published =
				(int64_t)rd64(v);
		else if (kl == 9 && k[0] == 'D')
			l->next_dlq_id = rd64(k + 1) + 1;
	}
	rocksdb_iter_destroy(it);
}

static wb_err put_format(wb_ledger *l, char *msg, size_t msglen)
{
	char *err = NULL;
	rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(wo, 1);
	rocksdb_put_cf(l->db, wo, l->cf[CF_DEFAULT], "format", 6, LEDGER_FORMAT,
		       strlen(LEDGER_FORMAT), &err);
	rocksdb_writeoptions_destroy(wo);
	return err ? ledger_store_err(msg, msglen, "format", err) : WB_OK;
}

/* A new store gets the current format; an existing one must have it, or
 * the one before, which a writable open migrates and read-only opens
 * read as it is. */
static wb_err check_format(wb_ledger *l, char *msg, size_t msglen)
{
	char *err = NULL;
	size_t vl = 0;
	char *v = rocksdb_get_cf(l->db, l->ro, l->cf[CF_DEFAULT], "format", 6,
				 &vl, &err);
	if (err)
		return ledger_store_err(msg, msglen, "format", err);
	wb_err rc = WB_OK;
	bool cur = v && vl == strlen(LEDGER_FORMAT) &&
		   memcmp(v, LEDGER_FORMAT, vl) == 0;
	bool prev = v && vl == strlen(LEDGER_FORMAT_PREV) &&
		    memcmp(v, LEDGER_FORMAT_PREV, vl) == 0;
	if (v && !cur && !prev)
		rc = wb_fail(msg, msglen, WB_ECORRUPT,
			     "ledger store format %.*s, this build reads %s "
			     "and %s",
			     (int)(vl > 16 ? 16 : vl), v, LEDGER_FORMAT_PREV,
			     LEDGER_FORMAT);
	else if (!v && wb_ledger_partition_count(l) > 0)
		rc = wb_fail(msg, msglen, WB_ECORRUPT,
			     "ledger store has no format marker (made by an "
			     "older build); this build reads format %s",
			     LEDGER_FORMAT);
	else if (prev && !l->read_only) {
		rc = ledger_migrate_v2(l, msg, msglen);
		if (!rc)
			rc = put_format(l, msg, msglen);
	} else if (!v && !l->read_only)
		rc = put_format(l, msg, msglen);
	rocksdb_free(v);
	return rc;
}

/* A read-only open of a directory that is not a ledger would print
 * RocksDB's own words ("IO error: ... CURRENT", "Column family not
 * found"): say what it is instead. */
static wb_err check_is_ledger(const char *dir, char *msg, size_t msglen)
{
	char current[4096];
	struct stat st;
	snprintf(current, sizeof(current), "%s/CURRENT", dir);
	if (stat(current, &st) != 0)
		return wb_fail(msg, msglen, WB_ENOTFOUND,
			       "%s is not a Waybill ledger (no RocksDB "
			       "database in it)",
			       dir);
	char *err = NULL;
	size_t n = 0;
	rocksdb_options_t *o = rocksdb_options_create();
	char **names = rocksdb_list_column_families(o, dir, &n, &err);
	rocksdb_options_destroy(o);
	if (err) {
		wb_err rc = wb_fail(msg, msglen, WB_ENOTFOUND,
				    "%s is not a Waybill ledger (not a "
				    "readable RocksDB database: %s)",
				    dir, err);
		rocksdb_free(err);
		return rc;
	}
	const char *missing = NULL;
	for (int i = 0; i < CF_COUNT && !missing; i++) {
		bool found = false;
		for (size_t j = 0; j < n && !found; j++)
			found = strcmp(names[j], cf_names[i]) == 0;
		if (!found)
			missing = cf_names[i];
	}
	wb_err rc = WB_OK;
	if (missing)
		rc = wb_fail(msg, msglen, WB_ENOTFOUND,
			     "%s is not a Waybill ledger (a RocksDB database "
			     "without the ledger's column family '%s')",
			     dir, missing);
	rocksdb_list_column_families_destroy(names, n);
	return rc;
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
	if (o->read_only) {
		wb_err rc = check_is_ledger(o->dir, msg, msglen);
		if (rc)
			return rc;
	}
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
	/* one writer thread: the in-order inserts of each batch (the log's,
	 * and the sorted index keys') reuse the previous insert's position */
	rocksdb_options_set_allow_concurrent_memtable_write(l->db_opts, 0);
	/* kPointInTimeRecovery (the default) stops at the first corrupt WAL
	 * record: every synced batch before it is kept whole. */

	/* Point-lookup families (dedupe, orders, ...): a whole-key bloom
	 * filter in the memtable answers the common "not seen yet" without
	 * walking the skiplist. */
	l->point_opts = rocksdb_options_create_copy(l->db_opts);
	rocksdb_options_set_write_buffer_size(l->point_opts, 16u << 20);
	rocksdb_options_set_memtable_prefix_bloom_size_ratio(l->point_opts, 0.1);
	rocksdb_options_set_memtable_whole_key_filtering(l->point_opts, 1);
	/* Index families: hashed keys (ledger_internal.h), the 8-byte hash
	 * is the prefix. Plain skiplist memtables, filled in key order per
	 * batch: a hash-skiplist memtable made inserts cheap but RocksDB then
	 * rebuilt it as one skiplist, key by key, at every flush (a third of
	 * the ledger's CPU time). */
	l->index_opts = rocksdb_options_create_copy(l->point_opts);
	rocksdb_options_set_prefix_extractor(
		l->index_opts,
		rocksdb_slicetransform_create_fixed_prefix(KEY_HASH_LEN));
	/* The log is written in key order (ledger_batch.c: seal) into a
	 * plain skiplist, which then inserts without searching. */
	l->log_opts = rocksdb_options_create_copy(l->db_opts);
	/* by_order is never read with Get, only iterated (replay --order,
	 * as-of, verify): a vector memtable appends each insert and sorts
	 * once at flush, cheaper than a skiplist built key by key. */
	l->append_opts = rocksdb_options_create_copy(l->db_opts);
	rocksdb_options_set_write_buffer_size(l->append_opts, 16u << 20);
	rocksdb_options_set_memtable_vector_rep(l->append_opts);

	const rocksdb_options_t *cf_opts[CF_COUNT];
	for (int i = 0; i < CF_COUNT; i++)
		cf_opts[i] = i == CF_LOG      ? l->log_opts
			     : i == CF_BY_ORDER ? l->append_opts
			     : i == CF_DEDUPE || i == CF_ORDERS
				     ? l->index_opts
				     : l->point_opts;

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
		wb_err rc = ledger_store_err(msg, msglen, o->dir, err);
		wb_ledger_close(l);
		return rc;
	}
	/* RocksDB's per-thread perf counters cost a TLS lookup per counter
	 * (about 10% of the ledger's instructions); we do not read them. */
	rocksdb_set_perf_level(1 /* kDisable */);
	l->wo = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(l->wo, o->sync);
	l->ro = rocksdb_readoptions_create();
	ledger_batches_init(l);
	ledger_load_heads(l);
	wb_err frc = check_format(l, msg, msglen);
	if (frc) {
		wb_ledger_close(l);
		return frc;
	}
	if (!o->read_only) {
		wb_err rc = ledger_commit_thread_start(l, msg, msglen);
		if (rc) {
			wb_ledger_close(l);
			return rc;
		}
	}
	*out = l;
	return WB_OK;
}

void wb_ledger_close(wb_ledger *l)
{
	if (!l)
		return;
	ledger_batches_finish(l); /* stops the commit thread first */
	for (int i = 0; i < CF_COUNT; i++)
		if (l->cf[i])
			rocksdb_column_family_handle_destroy(l->cf[i]);
	if (l->db)
		rocksdb_close(l->db);
	if (l->wo)
		rocksdb_writeoptions_destroy(l->wo);
	if (l->ro)
		rocksdb_readoptions_destroy(l->ro);
	if (l->point_opts)
		rocksdb_options_destroy(l->point_opts);
	if (l->log_opts)
		rocksdb_options_destroy(l->log_opts);
	if (l->index_opts)
		rocksdb_options_destroy(l->index_opts);
	if (l->append_opts)
		rocksdb_options_destroy(l->append_opts);
	if (l->db_opts)
		rocksdb_options_destroy(l->db_opts);
	if (l->bbto)
		rocksdb_block_based_options_destroy(l->bbto);
	if (l->cache)
		rocksdb_cache_destroy(l->cache);
	free(l->heads);
	free(l);
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
	if (n > 256)
		n = 256; /* longer ids are never stored */
	size_t kl = hashed_key(it->lower, order_id, n);
	memcpy(it->upper, it->lower, kl);
	it->lower[kl] = 0;
	it->upper[kl] = 1;
	rocksdb_readoptions_set_prefix_same_as_start(it->ro, 1);
	rocksdb_readoptions_set_iterate_lower_bound(it->ro, (char *)it->lower,
						    kl + 1);
	rocksdb_readoptions_set_iterate_upper_bound(it->ro, (char *)it->upper,
						    kl + 1);
	it->it = rocksdb_create_iterator_cf(l->db, it->ro, l->cf[CF_BY_ORDER]);
	rocksdb_iter_seek(it->it, (char *)it->lower, kl + 1);
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
			it->err = ledger_store_err(it->errmsg, sizeof(it->errmsg),
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
		it->err = err ? ledger_store_err(it->errmsg, sizeof(it->errmsg),
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

