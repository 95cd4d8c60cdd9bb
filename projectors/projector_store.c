/*
 * projector_store.c — the projector's read models in its own RocksDB.
 *
 * Column families (H(x) = 8-byte hash of x, see hkey(): the families read
 * by point lookup or by one order's prefix keep their keys in hashed
 * memtables, where an insert touches one small bucket instead of walking a
 * skiplist of the whole memtable, as the ledger does):
 *   views        H(order_id) | order_id        -> stored record of the
 *                view (projector_fold.c: merchant first, then the facts;
 *                binary, decoded without copying or parsing)
 *   timeline     H(order_id) | order_id | 0x00 | BE64 version
 *                                               -> timeline record (JSON)
 *   returns      H(merchant | 0 | return_id | 0) | merchant | 0 | return_id
 *                | 0 | order_id -> return (JSON)
 *   lookups      H(kind | merchant | 0 | value | 0) | kind | merchant | 0 |
 *                value | 0 | order_id -> ""
 *                (kind: 'e' email, 'n' name, 't' tracking, 'c' channel id)
 *   checkpoints  BE32 partition -> BE64 last applied seq | BE64 next Kafka
 *                offset (all ones = none) | BE64 recorded_at of that entry |
 *                BE64 latest source_time
 *   outbox       H(order_id) | order_id -> BE64 version whose OrderStatus
 *                Kafka has not acknowledged yet
 *   meta         "format" -> STORE_FORMAT
 * Returns by order are read from the view, which holds them.
 *
 * One thread per lane applies. A batch decodes each entry's Avro once
 * into the fold's node tree (no jansson), folds it into the order's view
 * (kept as a struct, projector_internal.h) and writes its timeline record;
 * at the commit each changed view is written once, with its lookup
 * changes, returns, outbox record and the checkpoints of every partition
 * the lane read, in one WriteBatch. Views stay in memory across batches in
 * a bounded LRU of committed views; a batch that is not committed drops
 * the views it touched.
 *
 * Queries run on any thread: they read RocksDB (thread-safe) and never the
 * apply threads' caches; positions and freshness are guarded by a mutex,
 * and a condition variable wakes wb_views_wait after each commit. A view
 * query reads the record's merchant before anything else: another
 * merchant's order costs what a missing one costs, and neither is decoded.
 */
#include "projector_internal.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Bumped whenever a key or value layout changes; a store of another
 * format is refused (rebuild it with --rebuild). 2: binary view records,
 * hashed view/timeline/outbox keys; 3: hashed lookup and return keys. */
#define STORE_FORMAT "3"

enum {
	CF_DEFAULT, CF_VIEWS, CF_TIMELINE, CF_RETURNS, CF_LOOKUPS,
	CF_CHECKPOINTS, CF_OUTBOX, CF_META, CF_COUNT
};
static const char *const cf_names[CF_COUNT] = {
	"default", "views", "timeline", "returns", "lookups", "checkpoints",
	"outbox", "meta"};

static const char lookup_kinds[] = {'e', 'n', 't', 'c'}; /* enum wb_lookup */
static const char *const lookup_names[] = {"email", "name", "tracking",
					   "channel_order_id"};

struct part {
	int64_t applied;    /* committed */
	int64_t staged;     /* including this batch */
	int64_t offset;     /* committed next Kafka offset, -1 = none */
	int64_t staged_offset;
	int64_t recorded_at, staged_recorded_at;
	int64_t source_time, staged_source_time;
	int64_t lag;
	bool dirty;
};

/* An order a lane holds: committed (in the LRU) or touched by the batch
 * being built (touched >= 0). */
struct oent {
	struct oent *chain, *prev, *next; /* hash chain, LRU list */
	uint64_t h;
	struct wb_order *o;
	int32_t touched;
	size_t klen;
	char key[]; /* order_id, NUL-terminated */
};

struct omap {
	struct oent **b;
	size_t nb, n;
	/* LRU sentinel: next = most recent. On the heap, since an oent ends
	 * in a flexible array (ISO C allows it only at a struct's end). */
	struct oent *lru;
};

/* An order the current batch touched. */
struct touched {
	struct oent *e;
	wb_buf orig_lookups;  /* "<kind char><value>\0"..., before */
	bool returns_dirty;
};

/* One apply thread's batch: partition p is applied by lane p % nlanes,
 * so the orders (keyed to partitions) of two lanes never meet. */
struct lane {
	rocksdb_writebatch_t *wb;
	struct touched *touched;
	size_t ntouched, captouched;
	uint64_t batch_applied, batch_skipped, batch_foreign;
	int64_t batch_us;
	struct omap orders;       /* order_id -> view */
	struct wb_event *ev;      /* the entry being applied */
	struct wb_arena arena;    /* what this batch's folds added */
	wb_buf key, scratch, lookups;
};

struct wb_views {
	rocksdb_t *db;
	rocksdb_column_family_handle_t *cf[CF_COUNT];
	rocksdb_options_t *db_opts, *cf_opts, *hash_opts;
	rocksdb_block_based_table_options_t *bbto;
	rocksdb_cache_t *cache;
	rocksdb_writeoptions_t *wo;
	rocksdb_readoptions_t *ro;
	bool read_only;

	int default_window;
	json_t *windows; /* merchant -> days */
	int64_t clock_ms; /* answers' time; 0 = the real clock */

	/* guarded by mu: what queries and other threads see (the array has
	 * room for WB_VIEWS_MAX_PARTITIONS and never moves; each partition's
	 * staged fields belong to its lane) */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct part *parts;
	int32_t nparts;
	int64_t position;
	int64_t latest_source_time, last_recorded_at;
	struct wb_views_stats stats;

	struct lane lanes[WB_VIEWS_MAX_LANES];
	int nlanes;
	size_t cache_max; /* per lane */
	bool outbox;
	pthread_mutex_t outbox_mu; /* guards the two below */
	json_t *outbox_pending; /* order_id -> version staged, not acked */
	json_t *outbox_acked;   /* order_id -> true: delete with next commit */
};

/* ---- helpers ------------------------------------------------------------- */

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

static uint64_t id_hash(const char *id, size_t n)
{
	return wb_hash64(id, n); /* the ledger's key hash too */
}

#define KEY_HASH_LEN 8

/* A key whose first 8 bytes hash what key_seal() finds after them:
 * key_begin(), the hashed part, key_seal(), then the rest (if any). */
static void key_begin(wb_buf *k)
{
	wb_buf_reset(k);
	wb_buf_reserve(k, KEY_HASH_LEN);
	k->len = KEY_HASH_LEN;
}

static void key_seal(wb_buf *k)
{
	be64(k->data, id_hash((const char *)k->data + KEY_HASH_LEN,
			      k->len - KEY_HASH_LEN));
}

/* H(order_id) | order_id into k. */
static void hkey(wb_buf *k, const char *id, size_t n)
{
	wb_buf_reset(k);
	wb_buf_reserve(k, KEY_HASH_LEN + n + 9);
	be64(k->data, id_hash(id, n));
	memcpy(k->data + KEY_HASH_LEN, id, n);
	k->len = KEY_HASH_LEN + n;
}

/* RocksDB's per-thread perf counters cost a TLS lookup per counter; we
 * never read them. The level is per thread: every thread that reads or
 * writes the store turns them off once. */
static void perf_off(void)
{
	static _Thread_local bool off;
	if (!off) {
		rocksdb_set_perf_level(1 /* kDisable */);
		off = true;
	}
}

static wb_err store_err(char *msg, size_t msglen, const char *what, char *err)
{
	wb_err rc = wb_fail(msg, msglen, WB_ESTORE, "%s: %s", what,
			    err ? err : "unknown RocksDB error");
	rocksdb_free(err);
	return rc;
}

/* ---- a lane's orders: hash map + LRU ---------------------------------- */

static void omap_init(struct omap *m)
{
	m->nb = 1024;
	m->b = wb_xcalloc(m->nb, sizeof(*m->b));
	m->lru = wb_xcalloc(1, sizeof(*m->lru));
	m->lru->next = m->lru->prev = m->lru;
}

static void lru_unlink(struct oent *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
}

static void lru_front(struct omap *m, struct oent *e)
{
	e->next = m->lru->next;
	e->prev = m->lru;
	m->lru->next->prev = e;
	m->lru->next = e;
}

static struct oent *omap_find(struct omap *m, const char *k, size_t n,
			      uint64_t h)
{
	for (struct oent *e = m->b[h & (m->nb - 1)]; e; e = e->chain)
		if (e->h == h && e->klen == n && memcmp(e->key, k, n) == 0)
			return e;
	return NULL;
}

static struct oent *omap_add(struct omap *m, const char *k, size_t n,
			     uint64_t h)
{
	if (m->n >= m->nb) { /* grow: load factor 1 */
		size_t nb = 2 * m->nb;
		struct oent **b = wb_xcalloc(nb, sizeof(*b));
		for (size_t i = 0; i < m->nb; i++)
			for (struct oent *e = m->b[i], *nx; e; e = nx) {
				nx = e->chain;
				e->chain = b[e->h & (nb - 1)];
				b[e->h & (nb - 1)] = e;
			}
		free(m->b);
		m->b = b;
		m->nb = nb;
	}
	struct oent *e = wb_xmalloc(sizeof(*e) + n + 1);
	e->h = h;
	e->klen = n;
	memcpy(e->key, k, n);
	e->key[n] = 0;
	e->o = NULL;
	e->touched = -1;
	e->chain = m->b[h & (m->nb - 1)];
	m->b[h & (m->nb - 1)] = e;
	lru_front(m, e);
	m->n++;
	return e;
}

static void omap_del(struct omap *m, struct oent *e)
{
	struct oent **pp = &m->b[e->h & (m->nb - 1)];
	while (*pp != e)
		pp = &(*pp)->chain;
	*pp = e->chain;
	lru_unlink(e);
	m->n--;
	wb_order_free(e->o);
	free(e);
}

static void omap_clear(struct omap *m)
{
	while (m->lru->next != m->lru)
		omap_del(m, m->lru->next);
}

static void omap_finish(struct omap *m)
{
	if (!m->b)
		return;
	omap_clear(m);
	free(m->b);
	m->b = NULL;
	free(m->lru);
	m->lru = NULL;
}

/* Evicts the least recently used committed views beyond max. */
static void omap_trim(struct omap *m, size_t max)
{
	while (m->n > max && m->lru->prev != m->lru &&
	       m->lru->prev->touched < 0)
		omap_del(m, m->lru->prev);
}
/* Partition p's record; grows nparts (callers hold mu, or are the only
 * thread, as at open). */
static struct part *part_get(wb_views *v, int32_t p)
{
	assert(p >= 0 && p < WB_VIEWS_MAX_PARTITIONS);
	if (p >= v->nparts)
		v->nparts = p + 1;
	return &v->parts[p];
}

/* The same for an apply thread (takes mu to grow nparts). */
static struct part *part_of(wb_views *v, int32_t p)
{
	pthread_mutex_lock(&v->mu);
	struct part *pt = part_get(v, p);
	pthread_mutex_unlock(&v->mu);
	return pt;
}

/* ---- open / close -------------------------------------------------------- */

static void window_add(const char *merchant, size_t n, int days, void *ud)
{
	wb_views *v = ud;
	char *m = wb_xstrndup(merchant, n);
	json_object_set_new(v->windows, m, json_integer(days));
	free(m);
}

static wb_err load_checkpoints(wb_views *v, char *msg, size_t msglen)
{
	rocksdb_iterator_t *it =
		rocksdb_create_iterator_cf(v->db, v->ro, v->cf[CF_CHECKPOINTS]);
	for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t kl, vl;
		const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
		const uint8_t *val = (const uint8_t *)rocksdb_iter_value(it, &vl);
		if (kl != 4 || vl != 32 || rd32(k) >= WB_VIEWS_MAX_PARTITIONS) {
			rocksdb_iter_destroy(it);
			return wb_fail(msg, msglen, WB_ECORRUPT,
				       "malformed checkpoint record");
		}
		struct part *p = part_get(v, (int32_t)rd32(k));
		p->applied = p->staged = (int64_t)rd64(val);
		p->offset = p->staged_offset = (int64_t)rd64(val + 8);
		p->recorded_at = p->staged_recorded_at = (int64_t)rd64(val + 16);
		p->source_time = p->staged_source_time = (int64_t)rd64(val + 24);
		v->position += p->applied;
		if (p->source_time > v->latest_source_time)
			v->latest_source_time = p->source_time;
		if (p->recorded_at > v->last_recorded_at)
			v->last_recorded_at = p->recorded_at;
	}
	char *err = NULL;
	rocksdb_iter_get_error(it, &err);
	rocksdb_iter_destroy(it);
	if (err)
		return store_err(msg, msglen, "read checkpoints", err);
	return WB_OK;
}

/* A new store gets the current format; an existing one must have it. */
static wb_err check_format(wb_views *v, char *msg, size_t msglen)
{
	char *err = NULL;
	size_t vl = 0;
	char *f = rocksdb_get_cf(v->db, v->ro, v->cf[CF_META], "format", 6,
				 &vl, &err);
	if (err)
		return store_err(msg, msglen, "read format", err);
	wb_err rc = WB_OK;
	if (f && (vl != strlen(STORE_FORMAT) ||
		  memcmp(f, STORE_FORMAT, vl) != 0))
		rc = wb_fail(msg, msglen, WB_ECORRUPT,
			     "projector store format %.*s, this build reads "
			     "%s: rebuild the read models "
			     "(waybill-projector --rebuild)",
			     (int)(vl > 16 ? 16 : vl), f, STORE_FORMAT);
	else if (!f && v->nparts > 0)
		rc = wb_fail(msg, msglen, WB_ECORRUPT,
			     "projector store has no format marker (made by "
			     "an older build); this build reads format %s: "
			     "rebuild the read models "
			     "(waybill-projector --rebuild)",
			     STORE_FORMAT);
	else if (!f && !v->read_only) {
		rocksdb_put_cf(v->db, v->wo, v->cf[CF_META], "format", 6,
			       STORE_FORMAT, strlen(STORE_FORMAT), &err);
		if (err)
			rc = store_err(msg, msglen, "write format", err);
	}
	rocksdb_free(f);
	return rc;
}

wb_err wb_views_open(const struct wb_views_options *o, wb_views **out,
		     char *msg, size_t msglen)
{
	assert(o && o->dir && out);
	*out = NULL;
	struct stat st;
	if (o->read_only && stat(o->dir, &st) != 0)
		return wb_fail(msg, msglen, WB_ENOTFOUND,
			       "no projector store at %s (set "
			       "projector.data.dir)",
			       o->dir);
	if (!o->read_only && mkdir(o->dir, 0755) != 0 && errno != EEXIST)
		return wb_fail(msg, msglen, WB_EIO, "mkdir %s: %s", o->dir,
			       strerror(errno));

	if (o->lanes < 0 || o->lanes > WB_VIEWS_MAX_LANES)
		return wb_fail(msg, msglen, WB_EINVAL,
			       "lanes must be 1 to %d", WB_VIEWS_MAX_LANES);
	perf_off();
	wb_views *v = wb_xcalloc(1, sizeof(*v));
	v->read_only = o->read_only;
	v->nlanes = o->lanes ? o->lanes : 1;
	v->cache_max = (o->cache_orders ? o->cache_orders : 100000) /
		       (size_t)v->nlanes;
	v->parts = wb_xcalloc(WB_VIEWS_MAX_PARTITIONS, sizeof(*v->parts));
	for (int32_t i = 0; i < WB_VIEWS_MAX_PARTITIONS; i++)
		v->parts[i] = (struct part){.offset = -1, .staged_offset = -1,
					    .lag = -1};
	v->clock_ms = o->clock_ms;
	v->default_window = o->return_window_days == 0
				    ? WB_DEFAULT_RETURN_WINDOW_DAYS
				    : o->return_window_days;
	v->windows = json_object();
	pthread_mutex_init(&v->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&v->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&v->outbox_mu, NULL);
	for (int i = 0; i < v->nlanes; i++) {
		struct lane *l = &v->lanes[i];
		omap_init(&l->orders);
		l->ev = wb_event_new();
		l->arena.chunk = 256u << 10;
		wb_buf_init(&l->key);
		wb_buf_init(&l->scratch);
		wb_buf_init(&l->lookups);
	}
	v->outbox_pending = json_object();
	v->outbox_acked = json_object();
	if (o->return_windows &&
	    !wb_return_windows_parse(o->return_windows, window_add, v, msg,
				     msglen)) {
		wb_views_close(v);
		return WB_ECONFIG;
	}

	v->cache = rocksdb_cache_create_lru(64u << 20);
	v->bbto = rocksdb_block_based_options_create();
	rocksdb_block_based_options_set_block_cache(v->bbto, v->cache);
	rocksdb_block_based_options_set_filter_policy(
		v->bbto, rocksdb_filterpolicy_create_bloom_full(10));
	v->db_opts = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(v->db_opts, 1);
	rocksdb_options_set_create_missing_column_families(v->db_opts, 1);
	rocksdb_options_set_max_background_jobs(v->db_opts, 2);
	rocksdb_options_set_write_buffer_size(v->db_opts, 32u << 20);
	rocksdb_options_set_max_total_wal_size(v->db_opts, 512u << 20);
	rocksdb_options_set_keep_log_file_num(v->db_opts, 3);
	rocksdb_options_set_paranoid_checks(v->db_opts, 1);
	rocksdb_options_set_block_based_table_factory(v->db_opts, v->bbto);
	rocksdb_options_set_compression(v->db_opts, rocksdb_lz4_compression);
	/* the hash-skiplist memtables below need this off (lanes commit
	 * through RocksDB's write queue one after the other) */
	rocksdb_options_set_allow_concurrent_memtable_write(v->db_opts, 0);
	v->cf_opts = rocksdb_options_create_copy(v->db_opts);
	rocksdb_options_set_memtable_prefix_bloom_size_ratio(v->cf_opts, 0.1);
	rocksdb_options_set_memtable_whole_key_filtering(v->cf_opts, 1);
	/* every family but the small ones: keys start with an 8-byte hash
	 * (of the order id, or of a lookup's or return's prefix), which is
	 * the prefix, and the memtable a hash of skiplists by prefix */
	v->hash_opts = rocksdb_options_create_copy(v->cf_opts);
	rocksdb_options_set_prefix_extractor(
		v->hash_opts,
		rocksdb_slicetransform_create_fixed_prefix(KEY_HASH_LEN));
	rocksdb_options_set_hash_skip_list_rep(v->hash_opts, 1u << 18, 4, 4);
	/* Every changed view is rewritten whole: a larger memtable keeps
	 * more of an order's versions together, so a flush writes the last
	 * one only, and flushes come less often. What L0 and L1 hold is
	 * rewritten soon: not compressed (lz4 from L2 on). Measured on
	 * ops/bench-projector's workload: projector CPU -20 to -30%. */
	rocksdb_options_set_write_buffer_size(v->hash_opts, 128u << 20);
	int levels[7] = {rocksdb_no_compression, rocksdb_no_compression,
			 rocksdb_lz4_compression, rocksdb_lz4_compression,
			 rocksdb_lz4_compression, rocksdb_lz4_compression,
			 rocksdb_lz4_compression};
	rocksdb_options_set_compression_per_level(v->hash_opts, levels, 7);
	/* the buckets already answer "not there": no memtable bloom */
	rocksdb_options_set_memtable_prefix_bloom_size_ratio(v->hash_opts, 0);
	const rocksdb_options_t *cf_opts[CF_COUNT];
	for (int i = 0; i < CF_COUNT; i++)
		cf_opts[i] = i == CF_CHECKPOINTS || i == CF_META ||
					     i == CF_DEFAULT
				     ? v->cf_opts
				     : v->hash_opts;

	char *err = NULL;
	if (o->read_only)
		v->db = rocksdb_open_for_read_only_column_families(
			v->db_opts, o->dir, CF_COUNT, cf_names, cf_opts, v->cf,
			0, &err);
	else
		v->db = rocksdb_open_column_families(v->db_opts, o->dir,
						     CF_COUNT, cf_names,
						     cf_opts, v->cf, &err);
	if (!v->db) {
		wb_err rc = store_err(msg, msglen, o->dir, err);
		wb_views_close(v);
		return rc;
	}
	v->wo = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(v->wo, o->sync);
	v->ro = rocksdb_readoptions_create();
	for (int i = 0; i < v->nlanes; i++)
		v->lanes[i].wb = rocksdb_writebatch_create();
	wb_err rc = load_checkpoints(v, msg, msglen);
	if (!rc)
		rc = check_format(v, msg, msglen);
	if (rc) {
		wb_views_close(v);
		return rc;
	}
	*out = v;
	return WB_OK;
}

static void touched_clear(struct lane *l)
{
	for (size_t i = 0; i < l->ntouched; i++) {
		l->touched[i].e->touched = -1;
		wb_buf_finish(&l->touched[i].orig_lookups);
	}
	l->ntouched = 0;
}

void wb_views_close(wb_views *v)
{
	if (!v)
		return;
	for (int i = 0; i < WB_VIEWS_MAX_LANES; i++) {
		struct lane *l = &v->lanes[i];
		touched_clear(l);
		free(l->touched);
		if (l->wb)
			rocksdb_writebatch_destroy(l->wb);
		omap_finish(&l->orders);
		wb_event_free(l->ev);
		wb_arena_finish(&l->arena);
		wb_buf_finish(&l->key);
		wb_buf_finish(&l->scratch);
		wb_buf_finish(&l->lookups);
	}
	for (int i = 0; i < CF_COUNT; i++)
		if (v->cf[i])
			rocksdb_column_family_handle_destroy(v->cf[i]);
	if (v->db)
		rocksdb_close(v->db);
	if (v->wo)
		rocksdb_writeoptions_destroy(v->wo);
	if (v->ro)
		rocksdb_readoptions_destroy(v->ro);
	if (v->hash_opts)
		rocksdb_options_destroy(v->hash_opts);
	if (v->cf_opts)
		rocksdb_options_destroy(v->cf_opts);
	if (v->db_opts)
		rocksdb_options_destroy(v->db_opts);
	if (v->bbto)
		rocksdb_block_based_options_destroy(v->bbto);
	if (v->cache)
		rocksdb_cache_destroy(v->cache);
	json_decref(v->windows);
	json_decref(v->outbox_pending);
	json_decref(v->outbox_acked);
	pthread_mutex_destroy(&v->mu);
	pthread_mutex_destroy(&v->outbox_mu);
	pthread_cond_destroy(&v->cv);
	free(v->parts);
	free(v);
}

wb_err wb_views_destroy(const char *dir, char *msg, size_t msglen)
{
	rocksdb_options_t *o = rocksdb_options_create();
	char *err = NULL;
	rocksdb_destroy_db(o, dir, &err);
	rocksdb_options_destroy(o);
	if (err)
		return store_err(msg, msglen, dir, err);
	rmdir(dir); /* what RocksDB leaves: an empty directory */
	return WB_OK;
}

/* ---- reading one view ------------------------------------------------------ */

/* The stored record of order_id (pinned: valid until destroyed), or NULL
 * (WB_ENOTFOUND). */
static wb_err get_record(wb_views *v, wb_buf *key, const char *order_id,
			 rocksdb_pinnableslice_t **out, char *msg,
			 size_t msglen)
{
	char *err = NULL;
	hkey(key, order_id, strlen(order_id));
	*out = rocksdb_get_pinned_cf(v->db, v->ro, v->cf[CF_VIEWS],
				     (const char *)key->data, key->len, &err);
	if (err)
		return store_err(msg, msglen, "read view", err);
	return *out ? WB_OK : WB_ENOTFOUND;
}

static const uint8_t *slice_data(rocksdb_pinnableslice_t *s, size_t *n)
{
	return (const uint8_t *)rocksdb_pinnableslice_value(s, n);
}

/* ---- lookups ------------------------------------------------------------- */

/* kind | merchant | 0 | value | 0 | order_id (order_id may be NULL: the
 * prefix) into v->key. */
static void lookup_key(wb_buf *k, char kind, const char *merchant,
		       size_t mlen, const char *value, const char *order_id)
{
	key_begin(k);
	wb_buf_putc(k, (uint8_t)kind);
	wb_buf_append(k, merchant, mlen);
	wb_buf_putc(k, 0);
	wb_buf_append(k, value, strlen(value));
	wb_buf_putc(k, 0);
	key_seal(k);
	if (order_id)
		wb_buf_append(k, order_id, strlen(order_id));
}

/* A view's lookups as "<kind char><value>\0" items: two views with the
 * same lookups (by far the common case) compare equal byte for byte. */
static void collect_lookup(enum wb_lookup kind, const char *value, void *ud)
{
	wb_buf *b = ud;
	wb_buf_putc(b, (uint8_t)lookup_kinds[kind]);
	wb_buf_append(b, value, strlen(value) + 1);
}

static void lookups_of(const struct wb_order *o, wb_buf *out)
{
	wb_buf_reset(out);
	if (wb_order_exists(o))
		wb_order_lookups(o, collect_lookup, out);
}

static bool lookup_in(const wb_buf *set, const char *item)
{
	for (size_t i = 0; i < set->len;) {
		const char *it = (const char *)set->data + i;
		if (strcmp(it, item) == 0)
			return true;
		i += strlen(it) + 1;
	}
	return false;
}

/* ---- applying ---------------------------------------------------------- */

static bool lane_owns(const wb_views *v, int lane, int32_t p)
{
	return p % v->nlanes == lane;
}

/* Forgets the batch being built. The views it touched were changed in
 * place: drop them (the next batch reads them from the store again). */
static void batch_reset(wb_views *v, int lane, bool committed)
{
	struct lane *l = &v->lanes[lane];
	rocksdb_writebatch_clear(l->wb);
	for (size_t i = 0; !committed && i < l->ntouched; i++) {
		struct oent *e = l->touched[i].e;
		wb_buf_finish(&l->touched[i].orig_lookups);
		omap_del(&l->orders, e);
	}
	if (!committed)
		l->ntouched = 0;
	touched_clear(l);
	wb_arena_reset(&l->arena);
	l->batch_applied = l->batch_skipped = l->batch_foreign = 0;
	l->batch_us = 0;
	pthread_mutex_lock(&v->mu);
	int32_t np = v->nparts;
	pthread_mutex_unlock(&v->mu);
	for (int32_t p = lane; p < np; p += v->nlanes) {
		struct part *pt = &v->parts[p];
		pt->staged = pt->applied;
		pt->staged_offset = pt->offset;
		pt->staged_recorded_at = pt->recorded_at;
		pt->staged_source_time = pt->source_time;
		pt->dirty = false;
	}
}

int wb_views_lanes(wb_views *v)
{
	return v->nlanes;
}

void wb_views_lane_begin(wb_views *v, int lane)
{
	assert(!v->read_only && lane >= 0 && lane < v->nlanes);
	perf_off();
	batch_reset(v, lane, false);
}

void wb_views_batch_begin(wb_views *v)
{
	for (int i = 0; i < v->nlanes; i++)
		wb_views_lane_begin(v, i);
}

void wb_views_lane_offset(wb_views *v, int lane, int32_t partition,
			  int64_t next)
{
	if (partition < 0 || partition >= WB_VIEWS_MAX_PARTITIONS ||
	    !lane_owns(v, lane, partition))
		return;
	struct part *pt = part_of(v, partition);
	if (next > pt->staged_offset) {
		pt->staged_offset = next;
		pt->dirty = true;
	}
}

void wb_views_batch_offset(wb_views *v, int32_t partition, int64_t next)
{
	if (partition >= 0)
		wb_views_lane_offset(v, partition % v->nlanes, partition, next);
}

/* The batch's record of order_id, loading its view (cache, then store). */
static struct touched *touch(wb_views *v, struct lane *l, const char *oid,
			     size_t n, char *msg, size_t msglen, wb_err *rc)
{
	*rc = WB_OK;
	uint64_t h = id_hash(oid, n);
	struct oent *e = omap_find(&l->orders, oid, n, h);
	if (e && e->touched >= 0)
		return &l->touched[e->touched];
	if (e) {
		lru_unlink(e);
		lru_front(&l->orders, e);
	} else {
		struct wb_order *o = wb_order_new();
		wb_buf_reset(&l->key);
		wb_buf_reserve(&l->key, KEY_HASH_LEN + n);
		be64(l->key.data, h);
		memcpy(l->key.data + KEY_HASH_LEN, oid, n);
		l->key.len = KEY_HASH_LEN + n;
		char *err = NULL;
		size_t vl = 0;
		char *val = rocksdb_get_cf(v->db, v->ro, v->cf[CF_VIEWS],
					   (const char *)l->key.data,
					   l->key.len, &vl, &err);
		if (err) {
			wb_order_free(o);
			*rc = store_err(msg, msglen, "read view", err);
			return NULL;
		}
		if (val) {
			uint8_t *rec = wb_xmalloc(vl ? vl : 1);
			memcpy(rec, val, vl);
			rocksdb_free(val);
			if (wb_order_load(o, rec, vl, true)) {
				wb_order_free(o);
				*rc = wb_fail(msg, msglen, WB_ECORRUPT,
					      "stored view of %.*s is "
					      "malformed",
					      (int)n, oid);
				return NULL;
			}
		}
		e = omap_add(&l->orders, oid, n, h);
		e->o = o;
	}
	if (l->ntouched == l->captouched) {
		l->captouched = l->captouched ? 2 * l->captouched : 1024;
		l->touched = wb_xrealloc(l->touched,
					 l->captouched * sizeof(*l->touched));
	}
	struct touched *t = &l->touched[l->ntouched];
	*t = (struct touched){.e = e};
	wb_buf_init(&t->orig_lookups);
	lookups_of(e->o, &t->orig_lookups);
	e->touched = (int32_t)l->ntouched++;
	return t;
}

/* An entry of another merchant than its order's (the fold left the view
 * alone): logged and counted, kept out of the timeline (which the
 * order's merchant reads), and the order is not rewritten or published
 * again unless another entry of the batch changed it. */
static void foreign_entry(struct lane *l, const struct wb_entry *e,
			  struct touched *t, bool touched_now)
{
	size_t mn = 0, en = 0;
	const char *m = wb_order_merchant(t->e->o, &mn);
	const char *em = wb_event_str(l->ev, "merchant", &en);
	char mine[256], theirs[256]; /* NUL-terminated, for wb_log_q */
	snprintf(mine, sizeof(mine), "%.*s", m ? (int)mn : 0, m ? m : "");
	snprintf(theirs, sizeof(theirs), "%.*s", em ? (int)en : 0,
		 em ? em : "");
	wb_log(WB_LOG_WARN, "foreign_entry",
	       "partition=%d seq=%lld order_id=%s merchant=%s "
	       "entry_merchant=%s reason=\"the entry names another "
	       "merchant than its order; not applied\"",
	       e->partition, (long long)e->seq, wb_log_q(t->e->key),
	       wb_log_q(mine), wb_log_q(theirs));
	l->batch_foreign++;
	if (touched_now) {
		wb_buf_finish(&t->orig_lookups);
		t->e->touched = -1;
		l->ntouched--;
	}
}

/* The timeline record of the entry just folded into t's order. */
static void put_timeline(wb_views *v, struct lane *l, const char *oid,
			 size_t on, const struct wb_entry *e,
			 const struct wb_fold_info *info, struct touched *t)
{
	size_t tn;
	const char *type = wb_event_str(l->ev, "type", &tn);
	if (type && tn >= 6 && memcmp(type, "Return", 6) == 0)
		t->returns_dirty = true;
	wb_buf_reset(&l->scratch);
	wb_event_timeline(&l->scratch, l->ev, info);
	hkey(&l->key, oid, on);
	wb_buf_putc(&l->key, 0);
	wb_buf_reserve(&l->key, 8);
	be64(l->key.data + l->key.len, (uint64_t)e->version);
	l->key.len += 8;
	rocksdb_writebatch_put_cf(l->wb, v->cf[CF_TIMELINE],
				  (const char *)l->key.data, l->key.len,
				  (const char *)l->scratch.data, l->scratch.len);
}

/* The partition's checkpoint and freshness move past the entry. */
static void advance_part(struct lane *l, struct part *pt,
			 const struct wb_entry *e)
{
	int64_t st = wb_event_int(l->ev, "source_time", 0);
	pt->staged = e->seq;
	pt->dirty = true;
	if (e->recorded_at > pt->staged_recorded_at)
		pt->staged_recorded_at = e->recorded_at;
	if (st > pt->staged_source_time)
		pt->staged_source_time = st;
}

wb_err wb_views_lane_apply(wb_views *v, int lane, const uint8_t *entry,
			   size_t len, bool *skipped, char *msg, size_t msglen)
{
	int64_t t0 = wb_mono_us();
	struct lane *l = &v->lanes[lane];
	struct wb_entry e;
	*skipped = false;
	wb_err rc = wb_entry_parse(entry, len, &e, msg, msglen);
	if (rc)
		return rc;
	if (e.partition >= WB_VIEWS_MAX_PARTITIONS)
		return wb_fail(msg, msglen, WB_ECORRUPT,
			       "ledger partition %d: the projector holds at "
			       "most %d partitions",
			       e.partition, WB_VIEWS_MAX_PARTITIONS);
	if (!lane_owns(v, lane, e.partition))
		return wb_fail(msg, msglen, WB_EINVAL,
			       "partition %d belongs to lane %d, not %d",
			       e.partition, e.partition % v->nlanes, lane);
	struct part *pt = part_of(v, e.partition);
	if (e.seq <= pt->staged) {
		*skipped = true;
		l->batch_skipped++;
		return WB_OK;
	}
	if (e.seq != pt->staged + 1)
		return wb_fail(msg, msglen, WB_ECORRUPT,
			       "partition %d: entry seq %lld follows applied "
			       "seq %lld, so seqs %lld..%lld are missing; the "
			       "read models need a rebuild "
			       "(waybill-projector --rebuild "
			       "--ledger-dir=LEDGER_DATA_DIR)",
			       e.partition, (long long)e.seq,
			       (long long)pt->staged,
			       (long long)pt->staged + 1,
			       (long long)e.seq - 1);
	char dmsg[256];
	if (wb_event_from_entry(l->ev, &e, dmsg, sizeof(dmsg)))
		return wb_fail(msg, msglen, WB_ECORRUPT,
			       "partition %d seq %lld: undecodable event (%s)",
			       e.partition, (long long)e.seq, dmsg);
	size_t on;
	const char *oid = wb_event_str(l->ev, "order_id", &on);
	size_t was_touched = l->ntouched;
	struct touched *t =
		oid ? touch(v, l, oid, on, msg, msglen, &rc) : NULL;
	if (!t)
		return rc ? rc
			  : wb_fail(msg, msglen, WB_ECORRUPT,
				    "entry without order_id");
	struct wb_fold_info info;
	rc = wb_order_apply(t->e->o, l->ev, &l->arena, &info, msg, msglen);
	if (rc)
		return rc;
	if (info.foreign)
		foreign_entry(l, &e, t, was_touched < l->ntouched);
	else {
		put_timeline(v, l, oid, on, &e, &info, t);
		l->batch_applied++;
	}
	advance_part(l, pt, &e);
	l->batch_us += wb_mono_us() - t0;
	return WB_OK;
}

wb_err wb_views_batch_apply(wb_views *v, const uint8_t *entry, size_t len,
			    bool *skipped, char *msg, size_t msglen)
{
	struct wb_entry e;
	*skipped = false;
	wb_err rc = wb_entry_parse(entry, len, &e, msg, msglen);
	if (rc)
		return rc;
	return wb_views_lane_apply(v, e.partition % v->nlanes, entry, len,
				   skipped, msg, msglen);
}

static void put_lookups(wb_views *v, struct lane *l, struct touched *t)
{
	size_t mlen;
	const char *merchant = wb_order_merchant(t->e->o, &mlen);
	if (!merchant)
		return;
	wb_buf *now = &l->lookups;
	lookups_of(t->e->o, now);
	wb_buf *was = &t->orig_lookups;
	if (now->len == was->len && memcmp(now->data, was->data, now->len) == 0)
		return; /* nothing moved */
	for (size_t i = 0; i < was->len;) {
		const char *k = (const char *)was->data + i;
		i += strlen(k) + 1;
		if (lookup_in(now, k))
			continue;
		lookup_key(&l->key, k[0], merchant, mlen, k + 1, t->e->key);
		rocksdb_writebatch_delete_cf(l->wb, v->cf[CF_LOOKUPS],
					     (const char *)l->key.data,
					     l->key.len);
	}
	for (size_t i = 0; i < now->len;) {
		const char *k = (const char *)now->data + i;
		i += strlen(k) + 1;
		if (lookup_in(was, k))
			continue;
		lookup_key(&l->key, k[0], merchant, mlen, k + 1, t->e->key);
		rocksdb_writebatch_put_cf(l->wb, v->cf[CF_LOOKUPS],
					  (const char *)l->key.data,
					  l->key.len, "", 0);
	}
}

struct put_ret_ctx {
	wb_views *v;
	struct lane *l;
	struct touched *t;
	const char *merchant;
	size_t mlen;
};

static void put_return(const char *rid, size_t rn, const char *json,
		       size_t len, void *ud)
{
	struct put_ret_ctx *c = ud;
	wb_buf *k = &c->l->key;
	key_begin(k);
	wb_buf_append(k, c->merchant, c->mlen);
	wb_buf_putc(k, 0);
	wb_buf_append(k, rid, rn);
	wb_buf_putc(k, 0);
	key_seal(k);
	wb_buf_append(k, c->t->e->key, c->t->e->klen);
	rocksdb_writebatch_put_cf(c->l->wb, c->v->cf[CF_RETURNS],
				  (const char *)k->data, k->len, json, len);
}

static void put_returns(wb_views *v, struct lane *l, struct touched *t)
{
	struct put_ret_ctx c = {v, l, t, NULL, 0};
	c.merchant = wb_order_merchant(t->e->o, &c.mlen);
	if (c.merchant)
		wb_order_returns(t->e->o, put_return, &c);
}

/* The jansson form of a view, for the callbacks of the jansson
 * interface (tests, tools; the service uses the struct callbacks). */
static json_t *view_json(const struct wb_order *o)
{
	wb_buf b;
	wb_buf_init(&b);
	wb_order_view_write(o, &b);
	json_t *j = json_loadb((const char *)b.data, b.len, 0, NULL);
	wb_buf_finish(&b);
	return j;
}

static wb_err lane_commit(wb_views *v, int lane,
			  void (*changed)(const char *order_id,
					  const struct wb_order *o, void *ud),
			  void (*changed_json)(const char *order_id,
					       json_t *view, void *ud),
			  void *ud, char *msg, size_t msglen)
{
	int64_t t0 = wb_mono_us();
	perf_off();
	struct lane *l = &v->lanes[lane];
	pthread_mutex_lock(&v->mu);
	int32_t np = v->nparts;
	pthread_mutex_unlock(&v->mu);
	bool any_part = false;
	for (int32_t p = lane; p < np; p += v->nlanes)
		any_part |= v->parts[p].dirty;
	/* acknowledged statuses leave the outbox with whichever lane commits
	 * next; a newer version put below wins over the delete */
	json_t *acked = NULL;
	pthread_mutex_lock(&v->outbox_mu);
	if (json_object_size(v->outbox_acked)) {
		acked = v->outbox_acked;
		v->outbox_acked = json_object();
	}
	pthread_mutex_unlock(&v->outbox_mu);
	if (!l->ntouched && !any_part && !acked) {
		pthread_mutex_lock(&v->mu);
		v->stats.skipped += l->batch_skipped;
		pthread_mutex_unlock(&v->mu);
		batch_reset(v, lane, true);
		return WB_OK;
	}
	const char *k;
	json_t *x;
	json_object_foreach(acked, k, x) {
		hkey(&l->key, k, strlen(k));
		rocksdb_writebatch_delete_cf(l->wb, v->cf[CF_OUTBOX],
					     (const char *)l->key.data,
					     l->key.len);
	}
	json_decref(acked);
	for (size_t i = 0; i < l->ntouched; i++) {
		struct touched *t = &l->touched[i];
		struct oent *e = t->e;
		/* the new record, which the view then decodes from: nothing
		 * of it is left in the batch's arena */
		wb_buf_reset(&l->scratch);
		wb_order_record(e->o, &l->scratch);
		hkey(&l->key, e->key, e->klen);
		rocksdb_writebatch_put_cf(l->wb, v->cf[CF_VIEWS],
					  (const char *)l->key.data,
					  l->key.len,
					  (const char *)l->scratch.data,
					  l->scratch.len);
		if (v->outbox) {
			uint8_t ver[8];
			be64(ver, (uint64_t)wb_order_version(e->o));
			rocksdb_writebatch_put_cf(l->wb, v->cf[CF_OUTBOX],
						  (const char *)l->key.data,
						  l->key.len, (char *)ver, 8);
		}
		put_lookups(v, l, t);
		if (t->returns_dirty)
			put_returns(v, l, t);
		uint8_t *rec = wb_xmalloc(l->scratch.len);
		memcpy(rec, l->scratch.data, l->scratch.len);
		if (wb_order_load(e->o, rec, l->scratch.len, true))
			assert(!"a view decodes from its own record");
	}
	for (int32_t p = lane; p < np; p += v->nlanes) {
		struct part *pt = &v->parts[p];
		if (!pt->dirty)
			continue;
		uint8_t key[4], val[32];
		be32(key, (uint32_t)p);
		be64(val, (uint64_t)pt->staged);
		be64(val + 8, (uint64_t)pt->staged_offset);
		be64(val + 16, (uint64_t)pt->staged_recorded_at);
		be64(val + 24, (uint64_t)pt->staged_source_time);
		rocksdb_writebatch_put_cf(l->wb, v->cf[CF_CHECKPOINTS],
					  (char *)key, 4, (char *)val, 32);
	}
	char *err = NULL;
	rocksdb_write(v->db, v->wo, l->wb, &err);
	if (err) {
		wb_err rc = store_err(msg, msglen, "commit", err);
		wb_views_lane_begin(v, lane);
		return rc;
	}

	/* publish the new position */
	pthread_mutex_lock(&v->mu);
	for (int32_t p = lane; p < np; p += v->nlanes) {
		struct part *pt = &v->parts[p];
		if (!pt->dirty)
			continue;
		v->position += pt->staged - pt->applied;
		pt->applied = pt->staged;
		pt->offset = pt->staged_offset;
		pt->recorded_at = pt->staged_recorded_at;
		pt->source_time = pt->staged_source_time;
		if (pt->source_time > v->latest_source_time)
			v->latest_source_time = pt->source_time;
		if (pt->recorded_at > v->last_recorded_at)
			v->last_recorded_at = pt->recorded_at;
		pt->dirty = false;
	}
	v->stats.applied += l->batch_applied;
	v->stats.skipped += l->batch_skipped;
	v->stats.foreign += l->batch_foreign;
	v->stats.commits++;
	v->stats.orders_written += l->ntouched;
	v->stats.apply_us += l->batch_us + (wb_mono_us() - t0);
	v->stats.last_commit_ms = wb_now_ms();
	pthread_cond_broadcast(&v->cv);
	pthread_mutex_unlock(&v->mu);

	if (v->outbox) {
		pthread_mutex_lock(&v->outbox_mu);
		for (size_t i = 0; i < l->ntouched; i++) {
			struct oent *e = l->touched[i].e;
			json_object_set_new(
				v->outbox_pending, e->key,
				json_integer(wb_order_version(e->o)));
		}
		pthread_mutex_unlock(&v->outbox_mu);
	}
	for (size_t i = 0; i < l->ntouched; i++) {
		struct oent *e = l->touched[i].e;
		if (changed)
			changed(e->key, e->o, ud);
		if (changed_json) {
			json_t *j = view_json(e->o);
			changed_json(e->key, j, ud);
			json_decref(j);
		}
	}
	batch_reset(v, lane, true);
	omap_trim(&l->orders, v->cache_max);
	return WB_OK;
}

wb_err wb_views_lane_commit(wb_views *v, int lane,
			    void (*changed)(const char *order_id,
					    json_t *view, void *ud),
			    void *ud, char *msg, size_t msglen)
{
	return lane_commit(v, lane, NULL, changed, ud, msg, msglen);
}

wb_err wb_views_lane_commit_orders(
	wb_views *v, int lane,
	void (*changed)(const char *order_id, const struct wb_order *o,
			void *ud),
	void *ud, char *msg, size_t msglen)
{
	return lane_commit(v, lane, changed, NULL, ud, msg, msglen);
}

static wb_err batch_commit(wb_views *v,
			   void (*changed)(const char *order_id,
					   const struct wb_order *o, void *ud),
			   void (*changed_json)(const char *order_id,
						json_t *view, void *ud),
			   void *ud, char *msg, size_t msglen)
{
	for (int i = 0; i < v->nlanes; i++) {
		wb_err rc = lane_commit(v, i, changed, changed_json, ud, msg,
					msglen);
		if (rc)
			return rc;
	}
	return WB_OK;
}

wb_err wb_views_batch_commit(wb_views *v,
			     void (*changed)(const char *order_id,
					     json_t *view, void *ud),
			     void *ud, char *msg, size_t msglen)
{
	return batch_commit(v, NULL, changed, ud, msg, msglen);
}

wb_err wb_views_batch_commit_orders(
	wb_views *v,
	void (*changed)(const char *order_id, const struct wb_order *o,
			void *ud),
	void *ud, char *msg, size_t msglen)
{
	return batch_commit(v, changed, NULL, ud, msg, msglen);
}

/* ---- position ------------------------------------------------------------ */

int32_t wb_views_partitions(wb_views *v)
{
	pthread_mutex_lock(&v->mu);
	int32_t n = v->nparts;
	pthread_mutex_unlock(&v->mu);
	return n;
}

int64_t wb_views_applied(wb_views *v, int32_t partition)
{
	pthread_mutex_lock(&v->mu);
	int64_t a = partition >= 0 && partition < v->nparts
			    ? v->parts[partition].applied
			    : 0;
	pthread_mutex_unlock(&v->mu);
	return a;
}

int64_t wb_views_offset(wb_views *v, int32_t partition)
{
	pthread_mutex_lock(&v->mu);
	int64_t a = partition >= 0 && partition < v->nparts
			    ? v->parts[partition].offset
			    : -1;
	pthread_mutex_unlock(&v->mu);
	return a;
}

int64_t wb_views_position(wb_views *v)
{
	pthread_mutex_lock(&v->mu);
	int64_t p = v->position;
	pthread_mutex_unlock(&v->mu);
	return p;
}

bool wb_views_wait(wb_views *v, int64_t position, int timeout_ms)
{
	struct timespec dl;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	if (timeout_ms < 0)
		timeout_ms = 0;
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&v->mu);
	while (v->position < position) {
		if (pthread_cond_timedwait(&v->cv, &v->mu, &dl) == ETIMEDOUT)
			break;
	}
	bool ok = v->position >= position;
	pthread_mutex_unlock(&v->mu);
	return ok;
}

void wb_views_freshness(wb_views *v, int64_t *latest_source_time,
			int64_t *last_recorded_at)
{
	pthread_mutex_lock(&v->mu);
	if (latest_source_time)
		*latest_source_time = v->latest_source_time;
	if (last_recorded_at)
		*last_recorded_at = v->last_recorded_at;
	pthread_mutex_unlock(&v->mu);
}

void wb_views_read_position(wb_views *v, struct wb_views_pos *out,
			    int64_t *applied, int32_t max)
{
	pthread_mutex_lock(&v->mu);
	out->position = v->position;
	out->latest_source_time = v->latest_source_time;
	out->last_recorded_at = v->last_recorded_at;
	out->partitions = v->nparts;
	out->caught_up = v->nparts > 0;
	for (int32_t i = 0; i < v->nparts; i++) {
		if (v->parts[i].lag != 0)
			out->caught_up = false;
		if (applied && i < max)
			applied[i] = v->parts[i].applied;
	}
	pthread_mutex_unlock(&v->mu);
}

void wb_views_set_lag(wb_views *v, int32_t partition, int64_t lag)
{
	if (partition < 0)
		return;
	pthread_mutex_lock(&v->mu);
	part_get(v, partition)->lag = lag;
	pthread_mutex_unlock(&v->mu);
}

int64_t wb_views_lag(wb_views *v, int32_t partition)
{
	pthread_mutex_lock(&v->mu);
	int64_t l = partition >= 0 && partition < v->nparts
			    ? v->parts[partition].lag
			    : -1;
	pthread_mutex_unlock(&v->mu);
	return l;
}

void wb_views_stats(wb_views *v, struct wb_views_stats *out)
{
	pthread_mutex_lock(&v->mu);
	*out = v->stats;
	pthread_mutex_unlock(&v->mu);
}


int wb_views_return_window(wb_views *v, const char *merchant)
{
	json_t *d = merchant ? json_object_get(v->windows, merchant) : NULL;
	int days = d ? (int)json_integer_value(d) : v->default_window;
	return days > 0 ? days : 0;
}

/* The stored record of order_id if it belongs to merchant: the merchant
 * at the record's head is compared before anything else is read, so
 * another merchant's order costs what a missing one costs. */
static wb_err load_record(wb_views *v, const char *merchant,
			  const char *order_id, rocksdb_pinnableslice_t **out)
{
	char msg[256];
	*out = NULL;
	if (!merchant || !order_id)
		return WB_EINVAL;
	perf_off();
	wb_buf key;
	wb_buf_init(&key);
	rocksdb_pinnableslice_t *s = NULL;
	wb_err rc = get_record(v, &key, order_id, &s, msg, sizeof(msg));
	wb_buf_finish(&key);
	if (rc) {
		if (rc != WB_ENOTFOUND)
			wb_log(WB_LOG_ERROR, "store_read_failed",
			       "cf=views msg=%s", wb_log_q(msg));
		return rc;
	}
	size_t len, mn;
	const uint8_t *rec = slice_data(s, &len);
	const char *m;
	if (!wb_record_merchant(rec, len, &m, &mn) || mn != strlen(merchant) ||
	    memcmp(m, merchant, mn) != 0) {
		rocksdb_pinnableslice_destroy(s);
		return WB_ENOTFOUND; /* another merchant's: as if missing */
	}
	*out = s;
	return WB_OK;
}

/* The view of order_id if it belongs to merchant, decoded into o (which
 * borrows the slice: destroy it after o's use). */
static wb_err load_view(wb_views *v, const char *merchant,
			const char *order_id, struct wb_order *o,
			rocksdb_pinnableslice_t **s)
{
	wb_err rc = load_record(v, merchant, order_id, s);
	if (rc)
		return rc;
	size_t len;
	const uint8_t *rec = slice_data(*s, &len);
	if (wb_order_load(o, (uint8_t *)rec, len, false)) {
		wb_log(WB_LOG_ERROR, "store_read_failed",
		       "cf=views order_id=%s msg=malformed", wb_log_q(order_id));
		rocksdb_pinnableslice_destroy(*s);
		*s = NULL;
		return WB_ECORRUPT;
	}
	return WB_OK;
}

wb_err wb_views_order_json(wb_views *v, const char *merchant,
			   const char *order_id, wb_buf *out,
			   int32_t *partition)
{
	struct wb_order *o = wb_order_new();
	rocksdb_pinnableslice_t *s = NULL;
	wb_err rc = load_view(v, merchant, order_id, o, &s);
	if (!rc) {
		size_t len;
		const uint8_t *rec = slice_data(s, &len);
		if (partition)
			*partition = wb_record_partition(rec, len);
		wb_order_present_write(o, v->clock_ms ? v->clock_ms
						       : wb_now_ms(),
				       wb_views_return_window(v, merchant),
				       out);
	}
	wb_order_free(o);
	rocksdb_pinnableslice_destroy(s);
	return rc;
}

wb_err wb_views_order(wb_views *v, const char *merchant,
		      const char *order_id, json_t **out)
{
	*out = NULL;
	wb_buf b;
	wb_buf_init(&b);
	wb_err rc = wb_views_order_json(v, merchant, order_id, &b, NULL);
	if (!rc) {
		*out = json_loadb((const char *)b.data, b.len, 0, NULL);
		if (!*out)
			rc = WB_ECORRUPT;
	}
	wb_buf_finish(&b);
	return rc;
}

/* Calls fn(key, value) for every record of cf whose key starts with
 * prefix; stops when fn returns false. */
static wb_err scan(wb_views *v, int cf, const void *prefix, size_t plen,
		   bool (*fn)(const char *k, size_t kl, const char *val,
			      size_t vl, void *ud),
		   void *ud)
{
	perf_off();
	uint8_t *upper = wb_xmalloc(plen + 1);
	memcpy(upper, prefix, plen);
	/* the smallest key after every key with this prefix */
	size_t ul = plen;
	while (ul > 0 && upper[ul - 1] == 0xff)
		ul--;
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	if (ul > 0) {
		upper[ul - 1]++;
		rocksdb_readoptions_set_iterate_upper_bound(ro, (char *)upper,
							    ul);
	}
	/* a scan shorter than the hashed families' prefix crosses buckets */
	if (plen < KEY_HASH_LEN)
		rocksdb_readoptions_set_total_order_seek(ro, 1);
	rocksdb_iterator_t *it = rocksdb_create_iterator_cf(v->db, ro,
							    v->cf[cf]);
	for (rocksdb_iter_seek(it, prefix, plen); rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t kl, vl;
		const char *k = rocksdb_iter_key(it, &kl);
		const char *val = rocksdb_iter_value(it, &vl);
		if (kl < plen || memcmp(k, prefix, plen) != 0)
			break;
		if (!fn(k, kl, val, vl, ud))
			break;
	}
	char *err = NULL;
	rocksdb_iter_get_error(it, &err);
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
	free(upper);
	if (err) {
		wb_log(WB_LOG_ERROR, "store_read_failed", "cf=%s err=%s",
		       cf_names[cf], wb_log_q(err));
		rocksdb_free(err);
		return WB_ESTORE;
	}
	return WB_OK;
}

static bool append_json(const char *k, size_t kl, const char *val, size_t vl,
			void *ud)
{
	(void)k;
	(void)kl;
	json_t *j = json_loadb(val, vl, 0, NULL);
	if (j)
		json_array_append_new(ud, j);
	return true;
}

wb_err wb_views_timeline(wb_views *v, const char *merchant,
			 const char *order_id, json_t **out)
{
	rocksdb_pinnableslice_t *s;
	*out = NULL;
	wb_err rc = load_record(v, merchant, order_id, &s);
	if (rc)
		return rc;
	rocksdb_pinnableslice_destroy(s);
	wb_buf prefix;
	wb_buf_init(&prefix);
	hkey(&prefix, order_id, strlen(order_id));
	wb_buf_putc(&prefix, 0); /* the separator */
	json_t *arr = json_array();
	rc = scan(v, CF_TIMELINE, prefix.data, prefix.len, append_json, arr);
	wb_buf_finish(&prefix);
	if (rc) {
		json_decref(arr);
		return rc;
	}
	*out = arr;
	return WB_OK;
}

static void collect_return(const char *rid, size_t rn, const char *json,
			   size_t len, void *ud)
{
	(void)rid;
	(void)rn;
	json_t *j = json_loadb(json, len, 0, NULL);
	if (j)
		json_array_append_new(ud, j);
}

wb_err wb_views_order_returns(wb_views *v, const char *merchant,
			      const char *order_id, json_t **out)
{
	*out = NULL;
	struct wb_order *o = wb_order_new();
	rocksdb_pinnableslice_t *s = NULL;
	wb_err rc = load_view(v, merchant, order_id, o, &s);
	if (!rc) {
		*out = json_array();
		wb_order_returns(o, collect_return, *out);
	}
	wb_order_free(o);
	rocksdb_pinnableslice_destroy(s);
	return rc;
}

static bool first_json(const char *k, size_t kl, const char *val, size_t vl,
		       void *ud)
{
	(void)k;
	(void)kl;
	json_t **out = ud;
	*out = json_loadb(val, vl, 0, NULL);
	return false;
}

wb_err wb_views_return(wb_views *v, const char *merchant,
		       const char *return_id, json_t **out)
{
	*out = NULL;
	if (!merchant || !return_id)
		return WB_EINVAL;
	wb_buf k;
	wb_buf_init(&k);
	key_begin(&k);
	wb_buf_append(&k, merchant, strlen(merchant));
	wb_buf_putc(&k, 0);
	wb_buf_append(&k, return_id, strlen(return_id));
	wb_buf_putc(&k, 0);
	key_seal(&k);
	wb_err rc = scan(v, CF_RETURNS, k.data, k.len, first_json, out);
	wb_buf_finish(&k);
	if (rc)
		return rc;
	return *out ? WB_OK : WB_ENOTFOUND;
}

struct find_ctx {
	json_t *arr;
	size_t limit, plen;
};

static bool find_one(const char *k, size_t kl, const char *val, size_t vl,
		     void *ud)
{
	(void)val;
	(void)vl;
	struct find_ctx *c = ud;
	if (json_array_size(c->arr) >= c->limit)
		return false;
	json_array_append_new(c->arr,
			      json_stringn(k + c->plen, kl - c->plen));
	return true;
}

wb_err wb_views_find(wb_views *v, const char *merchant, enum wb_lookup kind,
		     const char *value, size_t limit, json_t **out)
{
	*out = NULL;
	if (!merchant || !value || (unsigned)kind > WB_LOOKUP_CHANNEL_ORDER_ID)
		return WB_EINVAL;
	wb_buf norm, k;
	wb_buf_init(&norm);
	wb_buf_init(&k);
	json_t *arr = json_array();
	wb_err rc = WB_OK;
	if (wb_lookup_normalise(kind, value, &norm) && limit > 0) {
		lookup_key(&k, lookup_kinds[kind], merchant, strlen(merchant),
			   (const char *)norm.data, NULL);
		struct find_ctx c = {arr, limit, k.len};
		rc = scan(v, CF_LOOKUPS, k.data, k.len, find_one, &c);
	}
	wb_buf_finish(&norm);
	wb_buf_finish(&k);
	if (rc) {
		json_decref(arr);
		return rc;
	}
	*out = arr;
	return WB_OK;
}


/* ---- outbox -------------------------------------------------------------- */

void wb_views_set_outbox(wb_views *v, bool on)
{
	v->outbox = on;
}

static wb_err outbox_each(wb_views *v,
			  void (*fn)(const char *order_id,
				     const struct wb_order *o, void *ud),
			  void (*fn_json)(const char *order_id, json_t *view,
					  void *ud),
			  void *ud, char *msg, size_t msglen)
{
	perf_off();
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	rocksdb_readoptions_set_total_order_seek(ro, 1);
	rocksdb_iterator_t *it =
		rocksdb_create_iterator_cf(v->db, ro, v->cf[CF_OUTBOX]);
	struct wb_order *o = wb_order_new();
	wb_err rc = WB_OK;
	for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t kl, vl;
		const char *k = rocksdb_iter_key(it, &kl);
		const uint8_t *val = (const uint8_t *)rocksdb_iter_value(it, &vl);
		if (kl <= KEY_HASH_LEN)
			continue;
		char *err = NULL;
		size_t rl = 0;
		char *rec = rocksdb_get_cf(v->db, v->ro, v->cf[CF_VIEWS], k, kl,
					   &rl, &err);
		if (err) {
			rc = store_err(msg, msglen, "read view", err);
			break;
		}
		if (!rec)
			continue;
		char *oid = wb_xstrndup(k + KEY_HASH_LEN, kl - KEY_HASH_LEN);
		if (wb_order_load(o, (uint8_t *)rec, rl, false)) {
			rc = wb_fail(msg, msglen, WB_ECORRUPT,
				     "stored view of %s is malformed", oid);
			rocksdb_free(rec);
			free(oid);
			break;
		}
		if (vl == 8) {
			pthread_mutex_lock(&v->outbox_mu);
			json_object_set_new(v->outbox_pending, oid,
					    json_integer((json_int_t)rd64(val)));
			pthread_mutex_unlock(&v->outbox_mu);
		}
		if (fn)
			fn(oid, o, ud);
		if (fn_json) {
			json_t *j = view_json(o);
			fn_json(oid, j, ud);
			json_decref(j);
		}
		rocksdb_free(rec);
		free(oid);
	}
	wb_order_free(o);
	char *err = NULL;
	rocksdb_iter_get_error(it, &err);
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
	if (err && !rc)
		rc = store_err(msg, msglen, "read outbox", err);
	else
		rocksdb_free(err);
	return rc;
}

wb_err wb_views_outbox_each(wb_views *v,
			    void (*fn)(const char *order_id, json_t *view,
				       void *ud),
			    void *ud, char *msg, size_t msglen)
{
	return outbox_each(v, NULL, fn, ud, msg, msglen);
}

wb_err wb_views_outbox_each_order(wb_views *v,
				  void (*fn)(const char *order_id,
					     const struct wb_order *o,
					     void *ud),
				  void *ud, char *msg, size_t msglen)
{
	return outbox_each(v, fn, NULL, ud, msg, msglen);
}

void wb_views_outbox_done(wb_views *v, const char *order_id, int64_t version)
{
	pthread_mutex_lock(&v->outbox_mu);
	json_t *p = json_object_get(v->outbox_pending, order_id);
	if (p && json_integer_value(p) == version) {
		json_object_del(v->outbox_pending, order_id);
		json_object_set_new(v->outbox_acked, order_id, json_true());
	} /* else a newer status is still on its way */
	pthread_mutex_unlock(&v->outbox_mu);
}

bool wb_views_outbox_dirty(wb_views *v)
{
	pthread_mutex_lock(&v->outbox_mu);
	bool d = json_object_size(v->outbox_acked) > 0;
	pthread_mutex_unlock(&v->outbox_mu);
	return d;
}

/* ---- dump ---------------------------------------------------------------- */
struct dump_ctx {
	FILE *out;
	const char *model;
	bool hashed;
	struct wb_order *o;
};

static void dump_line(FILE *out, json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	fputs(s, out);
	fputc('\n', out);
	free(s);
	json_decref(o);
}

static bool dump_kv(const char *k, size_t kl, const char *val, size_t vl,
		    void *ud)
{
	struct dump_ctx *c = ud;
	json_t *value = NULL;
	if (strcmp(c->model, "view") == 0) {
		/* the stored form, as the jansson fold's view */
		if (!wb_order_load(c->o, (uint8_t *)val, vl, false))
			value = view_json(c->o);
	} else {
		value = json_loadb(val, vl, 0, NULL);
	}
	json_t *o = json_pack("{s:s,s:o}", "model", c->model, "value",
			      value ? value : json_null());
	if (c->hashed) { /* keys of hashed families: without the hash */
		if (kl < KEY_HASH_LEN)
			kl = KEY_HASH_LEN;
		k += KEY_HASH_LEN;
		kl -= KEY_HASH_LEN;
	}
	if (strcmp(c->model, "timeline") == 0 && kl > 9) {
		json_object_set_new(o, "key", json_stringn(k, kl - 9));
		json_object_set_new(o, "version",
				    json_integer((json_int_t)rd64(
					    (const uint8_t *)k + kl - 8)));
	} else if (strcmp(c->model, "lookup") == 0 && kl > 1) {
		/* kind | merchant 0 value 0 order_id */
		const char *m = k + 1;
		const char *z1 = memchr(m, 0, kl - 1);
		const char *val2 = z1 ? z1 + 1 : NULL;
		const char *z2 = val2 ? memchr(val2, 0, (size_t)(k + kl - val2))
				      : NULL;
		const char *kind = "?";
		for (int i = 0; i < 4; i++)
			if (k[0] == lookup_kinds[i])
				kind = lookup_names[i];
		json_object_del(o, "value");
		json_object_set_new(o, "kind", json_string(kind));
		if (z1 && z2) {
			json_object_set_new(o, "merchant",
					    json_stringn(m, (size_t)(z1 - m)));
			json_object_set_new(o, "value",
					    json_stringn(val2,
							 (size_t)(z2 - val2)));
			json_object_set_new(o, "order_id",
					    json_stringn(z2 + 1,
							 (size_t)(k + kl - z2 - 1)));
		}
	} else {
		/* keys hold 0 separators: show them as '/' */
		char *ks = wb_xstrndup(k, kl);
		for (size_t i = 0; i < kl; i++)
			if (ks[i] == 0)
				ks[i] = '/';
		json_object_set_new(o, "key", json_stringn(ks, kl));
		free(ks);
	}
	dump_line(c->out, o);
	return true;
}

wb_err wb_views_dump(wb_views *v, FILE *out, char *msg, size_t msglen)
{
	pthread_mutex_lock(&v->mu);
	int32_t np = v->nparts;
	struct part *parts = wb_xmalloc((size_t)(np ? np : 1) * sizeof(*parts));
	memcpy(parts, v->parts, (size_t)np * sizeof(*parts));
	pthread_mutex_unlock(&v->mu);
	for (int32_t p = 0; p < np; p++) {
		if (parts[p].applied > 0)
			dump_line(out, json_pack("{s:s,s:i,s:I}", "model",
						 "checkpoint", "partition", p,
						 "seq",
						 (json_int_t)parts[p].applied));
		if (parts[p].offset >= 0)
			dump_line(out, json_pack("{s:s,s:i,s:I}", "model",
						 "offset", "partition", p,
						 "next_offset",
						 (json_int_t)parts[p].offset));
	}
	free(parts);
	static const struct {
		int cf;
		const char *model;
	} order[] = {{CF_VIEWS, "view"},
		     {CF_TIMELINE, "timeline"},
		     {CF_RETURNS, "return"},
		     {CF_LOOKUPS, "lookup"}};
	struct wb_order *vo = wb_order_new();
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		int cf = order[i].cf;
		struct dump_ctx c = {out, order[i].model, true, vo};
		if (scan(v, cf, "", 0, dump_kv, &c)) {
			wb_order_free(vo);
			return wb_fail(msg, msglen, WB_ESTORE,
				       "reading %s failed", cf_names[cf]);
		}
	}
	wb_order_free(vo);
	if (fflush(out) != 0)
		return wb_fail(msg, msglen, WB_EIO, "write: %s",
			       strerror(errno));
	return WB_OK;
}
