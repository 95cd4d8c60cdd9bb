/*
 * ledger_batch.c — building a batch and committing it.
 *
 * A batch is everything the ledger writes for a run of Kafka records:
 * entries, dedupe keys, per-order versions, chain heads, the next offset of
 * each partition read, DLQ records and outbox cursors, in one synced
 * RocksDB WriteBatch.
 *
 * Writing a batch (memtable inserts for the index families, then the WAL
 * fsync) takes most of the ledger's time, so it runs on a commit thread
 * while the caller builds the next batch: two batches alternate. The one
 * being built already sees the one in flight — chain heads and order
 * versions advance in memory as entries are appended, and the dedupe check
 * looks at both batches' event ids before asking RocksDB. If a commit
 * fails, the in-memory state is ahead of the store: the store refuses any
 * further work (the service exits and restarts from what is stored).
 */
#include "ledger_internal.h"

#include <assert.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

static void batch_init(struct batch *b)
{
	memset(b, 0, sizeof(*b));
	b->wb = rocksdb_writebatch_create();
	wb_buf_init(&b->arena);
	ledger_map_init(&b->ids);
	ledger_map_init(&b->orders);
}

static void batch_finish(struct batch *b)
{
	if (b->wb)
		rocksdb_writebatch_destroy(b->wb);
	wb_buf_finish(&b->arena);
	ledger_map_finish(&b->ids);
	ledger_map_finish(&b->orders);
	free(b->entries);
	free(b->offsets);
	memset(b, 0, sizeof(*b));
}

static void batch_clear(struct batch *b)
{
	rocksdb_writebatch_clear(b->wb);
	wb_buf_reset(&b->arena);
	b->nentries = b->noffsets = b->nputs = 0;
	ledger_map_clear(&b->ids);
	ledger_map_clear(&b->orders);
}

/* ---- the commit thread ------------------------------------------------ */

static void *commit_main(void *arg)
{
	wb_ledger *l = arg;
	rocksdb_set_perf_level(1 /* kDisable: per thread, see ledger_store.c */);
	pthread_mutex_lock(&l->mu);
	for (;;) {
		while (!l->thread_stop && (!l->inflight || l->inflight_done))
			pthread_cond_wait(&l->cv, &l->mu);
		if (l->thread_stop)
			break;
		struct batch *b = l->inflight;
		pthread_mutex_unlock(&l->mu);
		char *err = NULL;
		rocksdb_write(l->db, l->wo, b->wb, &err);
		pthread_mutex_lock(&l->mu);
		if (err) {
			ledger_store_err(l->fail_msg, sizeof(l->fail_msg),
					 "commit", err);
			l->failed = true;
		}
		l->inflight_done = true;
		pthread_cond_broadcast(&l->cv);
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

void ledger_batches_init(wb_ledger *l)
{
	batch_init(&l->batches[0]);
	batch_init(&l->batches[1]);
	l->cur = &l->batches[0];
	l->done = NULL;
	ledger_map_init(&l->order_cache);
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
}

wb_err ledger_commit_thread_start(wb_ledger *l, char *msg, size_t msglen)
{
	if (pthread_create(&l->thread, NULL, commit_main, l) != 0)
		return wb_fail(msg, msglen, WB_ENOMEM,
			       "cannot start the commit thread");
	pthread_setname_np(l->thread, "wb-commit");
	l->thread_started = true;
	return WB_OK;
}

void ledger_batches_finish(wb_ledger *l)
{
	if (!l->cur)
		return; /* never initialised */
	if (l->thread_started) {
		pthread_mutex_lock(&l->mu);
		while (l->inflight && !l->inflight_done)
			pthread_cond_wait(&l->cv, &l->mu);
		l->thread_stop = true;
		pthread_cond_broadcast(&l->cv);
		pthread_mutex_unlock(&l->mu);
		pthread_join(l->thread, NULL);
	}
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cv);
	batch_finish(&l->batches[0]);
	batch_finish(&l->batches[1]);
	ledger_map_finish(&l->order_cache);
	l->cur = NULL;
}

/* ---- per-order state --------------------------------------------------- */

static struct batch *other(wb_ledger *l)
{
	return l->cur == &l->batches[0] ? &l->batches[1] : &l->batches[0];
}

/* The first 8 bytes of SHA-256(merchant), never 0 (0 marks "unknown" in
 * the order cache). A cryptographic digest, so no merchant name can be
 * made to pass for another's; memoized, as there are few merchants. */
static uint64_t merchant_digest(wb_ledger *l, const char *m, size_t n)
{
	assert(n <= sizeof(l->merchants[0].name));
	for (int i = 0; i < MERCHANT_MEMO; i++) {
		struct merchant_memo *c = &l->merchants[i];
		if (c->digest && c->n == n && memcmp(c->name, m, n) == 0)
			return c->digest;
	}
	uint8_t d[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)m, n, d);
	uint64_t h = rd64(d);
	if (!h)
		h = 1;
	struct merchant_memo *c = &l->merchants[l->merchant_next++ % MERCHANT_MEMO];
	c->digest = h;
	c->n = n;
	memcpy(c->name, m, n);
	return h;
}

struct order_state {
	int64_t version;   /* 0: a new order */
	uint64_t merchant; /* 0: unknown (a V1 state, or a new order) */
};

static struct order_state parse_state(const uint8_t *v, size_t vl)
{
	struct order_state st = {0, 0};
	if (vl >= 9 && (v[0] == ORDER_STATE_V1 || v[0] == ORDER_STATE_V2))
		st.version = (int64_t)rd64(v + 1);
	if (vl >= ORDER_STATE_V2_LEN && v[0] == ORDER_STATE_V2)
		st.merchant = rd64(v + 9);
	return st;
}

static void cache_put(wb_ledger *l, const char *id, size_t n,
		      struct order_state st)
{
	if (l->order_cache.n >= l->order_cache_max)
		ledger_map_clear(&l->order_cache);
	ledger_map_put(&l->order_cache, id, n, st.version, st.merchant);
}

/* The order's state as of the batch being built: the cache, the batch,
 * the one in flight, the store. Every append writes its order's state
 * through to the cache, so a cached state is the newest; the cache may be
 * cleared at any time, though, and the two batches hold states that are
 * not stored yet. */
static struct order_state order_state_load(wb_ledger *l, const char *id,
					   size_t n)
{
	const struct ledger_map_slot *s = ledger_map_get(&l->order_cache, id, n);
	if (!s)
		s = ledger_map_get(&l->cur->orders, id, n);
	if (!s)
		s = ledger_map_get(&other(l)->orders, id, n);
	if (s)
		return (struct order_state){s->val, s->aux};
	uint8_t key[INDEX_KEY_MAX];
	size_t kl = hashed_key(key, id, n);
	char *err = NULL;
	size_t vl = 0;
	char *v = rocksdb_get_cf(l->db, l->ro, l->cf[CF_ORDERS], (char *)key,
				 kl, &vl, &err);
	if (err) {
		/* a read error here would let a version repeat: fail hard */
		wb_log(WB_LOG_ERROR, "store_read_failed", "cf=orders err=%s",
		       wb_log_q(err));
		abort();
	}
	struct order_state st = parse_state((const uint8_t *)v, v ? vl : 0);
	rocksdb_free(v);
	cache_put(l, id, n, st);
	return st;
}

int64_t wb_ledger_order_version(wb_ledger *l, const char *order_id)
{
	return order_state_load(l, order_id, strlen(order_id)).version;
}

/* ---- building --------------------------------------------------------- */

void wb_ledger_batch_begin(wb_ledger *l)
{
	assert(!l->read_only);
	/* the current batch is always ready; this only checks it is empty */
	assert(l->cur->nputs == 0 && l->cur->noffsets == 0);
}

bool wb_ledger_batch_empty(const wb_ledger *l)
{
	return l->cur->nputs == 0 && l->cur->noffsets == 0;
}

/* What an event_id stands for: a hash of (merchant, order_id, type). */
static uint64_t identity_hash(uint64_t merchant, const struct wb_event_view *v)
{
	uint8_t m[8];
	be64(m, merchant);
	uint64_t h = wb_fnv1a(WB_FNV_OFFSET, m, 8);
	h = wb_fnv1a(h, v->order_id.p, v->order_id.n);
	h = wb_fnv1a(h, "", 1);
	return wb_fmix64(wb_fnv1a(h, v->type.p, v->type.n));
}

/* The payload of an OrderEvent body: its union branch and record, the
 * last field. */
static bool payload_of(const uint8_t *body, size_t len, const uint8_t **p,
		       size_t *n)
{
	struct wb_avro_reader r = {body, body + len, true};
	const uint8_t *s;
	size_t sn;
	int64_t x;
	for (int i = 0; i < 5; i++) /* event_id .. type */
		if (!wb_avro_get_bytes(&r, &s, &sn))
			return false;
	if (!wb_avro_get_long(&r, &x) || !wb_avro_get_long(&r, &x) ||
	    !wb_avro_get_bytes(&r, &s, &sn)) /* times, source */
		return false;
	for (int i = 0; i < 2; i++) { /* correlation_id, causation_id */
		if (!wb_avro_get_long(&r, &x) || (x != 0 && x != 1) ||
		    (x == 1 && !wb_avro_get_bytes(&r, &s, &sn)))
			return false;
	}
	*p = r.p;
	*n = (size_t)(r.end - r.p);
	return true;
}

static bool slice_eq(struct wb_slice a, struct wb_slice b)
{
	return a.n == b.n && memcmp(a.p, b.p, a.n) == 0;
}

/* An id for a message or a log line: at most 120 bytes of it. */
static void order_label(char *out, size_t outlen, struct wb_slice s)
{
	snprintf(out, outlen, "%.*s%s", (int)(s.n > 120 ? 120 : s.n), s.p,
		 s.n > 120 ? "..." : "");
}

/* An event whose event_id is recorded, against the recorded entry. */
static enum wb_append_outcome
compare_recorded(const uint8_t *entry, size_t entry_len,
		 const struct wb_event_view *v, const uint8_t *body,
		 size_t len)
{
	struct wb_entry e;
	struct wb_event_view rv;
	const uint8_t *p1, *p2;
	size_t n1, n2;
	char msg[256];
	if (wb_entry_parse(entry, entry_len, &e, msg, sizeof(msg)) ||
	    wb_event_peek(e.event, e.event_len, &rv, msg, sizeof(msg))) {
		char eid[160];
		order_label(eid, sizeof(eid), v->event_id);
		wb_log(WB_LOG_ERROR, "dedupe_entry_unreadable",
		       "event_id=%s err=%s", wb_log_q(eid), wb_log_q(msg));
		return WB_APPEND_DUPLICATE; /* as before: skip it */
	}
	if (!slice_eq(rv.merchant, v->merchant) ||
	    !slice_eq(rv.order_id, v->order_id) || !slice_eq(rv.type, v->type))
		return WB_APPEND_REFUSED_EVENT_ID;
	if (!payload_of(e.event, e.event_len, &p1, &n1) ||
	    !payload_of(body, len, &p2, &n2))
		return WB_APPEND_DUPLICATE;
	return n1 == n2 && memcmp(p1, p2, n1) == 0
		       ? WB_APPEND_DUPLICATE
		       : WB_APPEND_DUPLICATE_DIFFERS;
}

/* WB_APPEND_ADDED if the event's id is not recorded yet, else what the
 * recorded one makes of it. */
static enum wb_append_outcome check_event_id(wb_ledger *l,
					     const struct wb_event_view *v,
					     uint64_t identity,
					     const uint8_t *body, size_t len)
{
	struct batch *bs[2] = {l->cur, other(l)};
	for (int i = 0; i < 2; i++) {
		const struct ledger_map_slot *s =
			ledger_map_get(&bs[i]->ids, v->event_id.p, v->event_id.n);
		if (!s)
			continue;
		if (s->aux != identity)
			return WB_APPEND_REFUSED_EVENT_ID;
		const struct batch_entry *e = &bs[i]->entries[s->val];
		return compare_recorded(bs[i]->arena.data + e->entry_off,
					e->entry_len, v, body, len);
	}
	uint8_t key[INDEX_KEY_MAX];
	size_t kl = hashed_key(key, v->event_id.p, v->event_id.n);
	char *err = NULL;
	size_t vl = 0;
	char *val = rocksdb_get_cf(l->db, l->ro, l->cf[CF_DEDUPE], (char *)key,
				   kl, &vl, &err);
	if (err) {
		wb_log(WB_LOG_ERROR, "store_read_failed", "cf=dedupe err=%s",
		       wb_log_q(err));
		abort();
	}
	if (!val)
		return WB_APPEND_ADDED;
	enum wb_append_outcome out = WB_APPEND_DUPLICATE;
	if (vl >= DEDUPE_V2_LEN && rd64((uint8_t *)val + DEDUPE_LOC_LEN) != identity) {
		out = WB_APPEND_REFUSED_EVENT_ID;
	} else if (vl >= DEDUPE_LOC_LEN) {
		/* the same identity (or a value of format 2, which has no
		 * hash): the recorded entry says whether it is the same event */
		size_t el = 0;
		char *entry = rocksdb_get_cf(l->db, l->ro, l->cf[CF_LOG], val,
					     DEDUPE_LOC_LEN, &el, &err);
		if (err) {
			wb_log(WB_LOG_ERROR, "store_read_failed",
			       "cf=log err=%s", wb_log_q(err));
			abort();
		}
		if (entry)
			out = compare_recorded((uint8_t *)entry, el, v, body,
					       len);
		else {
			char eid[160];
			order_label(eid, sizeof(eid), v->event_id);
			wb_log(WB_LOG_ERROR, "dedupe_entry_missing",
			       "event_id=%s", wb_log_q(eid));
		}
		rocksdb_free(entry);
	}
	rocksdb_free(val);
	return out;
}

wb_err wb_ledger_batch_add(wb_ledger *l, int32_t partition,
			   const uint8_t *body, size_t len,
			   const struct wb_event_view *v, int64_t recorded_at,
			   enum wb_append_outcome *out, char *msg,
			   size_t msglen)
{
	assert(!l->read_only && partition >= 0 && v && out);
	if (l->failed)
		return wb_fail(msg, msglen, WB_ESTORE, "%s", l->fail_msg);
	char oid[160], eid[160];
	uint64_t merchant = merchant_digest(l, v->merchant.p, v->merchant.n);
	uint64_t identity = identity_hash(merchant, v);
	*out = check_event_id(l, v, identity, body, len);
	if (*out != WB_APPEND_ADDED) {
		order_label(eid, sizeof(eid), v->event_id);
		order_label(oid, sizeof(oid), v->order_id);
		if (*out == WB_APPEND_REFUSED_EVENT_ID)
			wb_fail(msg, msglen, WB_ECONFLICT,
				"event_id %s already recorded for another "
				"order/merchant/type (this one: order %s, "
				"type %.*s)",
				eid, oid, (int)(v->type.n > 64 ? 64 : v->type.n),
				v->type.p);
		else if (*out == WB_APPEND_DUPLICATE_DIFFERS)
			wb_fail(msg, msglen, WB_ECONFLICT,
				"event_id %s already recorded with another "
				"payload (order %s)",
				eid, oid);
		else
			wb_fail(msg, msglen, WB_ECONFLICT,
				"event_id %s already recorded", eid);
		return WB_OK;
	}
	struct order_state st =
		order_state_load(l, v->order_id.p, v->order_id.n);
	if (st.version > 0 && st.merchant != merchant) {
		/* (a V1 state has merchant 0: a store of format 3 has none, a
		 * format-2 store is migrated when opened for writing) */
		order_label(oid, sizeof(oid), v->order_id);
		*out = WB_APPEND_REFUSED_MERCHANT;
		wb_fail(msg, msglen, WB_ECONFLICT,
			"order %s belongs to another merchant (this event's "
			"merchant: %.*s)", oid,
			(int)(v->merchant.n > 120 ? 120 : v->merchant.n),
			v->merchant.p);
		return WB_OK;
	}
	struct batch *b = l->cur;
	struct head *h = ledger_head_get(l, partition);
	int64_t version = st.version + 1;

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
	size_t off = b->arena.len;
	wb_avro_put_long(&b->arena, partition);
	wb_avro_put_long(&b->arena, e.seq);
	wb_avro_put_long(&b->arena, version);
	wb_avro_put_long(&b->arena, recorded_at);
	wb_avro_put_bytes(&b->arena, h->hash, WB_HASH_LEN);
	wb_avro_put_bytes(&b->arena, hash, WB_HASH_LEN);
	wb_buf_append(&b->arena, body, len);
	size_t entry_len = b->arena.len - off;
	size_t order_off = b->arena.len;
	wb_buf_append(&b->arena, v->order_id.p, v->order_id.n);
	wb_buf_putc(&b->arena, 0);

	uint8_t loc[DEDUPE_LOC_LEN], okey[INDEX_KEY_MAX];
	be32(loc, (uint32_t)partition);
	be64(loc + 4, (uint64_t)e.seq);
	/* the log record itself is put when the batch is sealed, in key
	 * order (see seal) */
	/* order ids are capped at 256 bytes by wb_event_check */
	assert(v->order_id.n <= 256);
	size_t ol = hashed_key(okey, v->order_id.p, v->order_id.n);
	okey[ol] = 0;
	be64(okey + ol + 1, (uint64_t)version);
	rocksdb_writebatch_put_cf(b->wb, l->cf[CF_BY_ORDER], (char *)okey,
				  ol + 9, (char *)loc, DEDUPE_LOC_LEN);
	b->nputs += 3;
	/* the dedupe key and the order's state (once per batch) are written
	 * when the batch is sealed, in key order */
	ledger_map_put(&b->orders, v->order_id.p, v->order_id.n, version,
		       merchant);
	ledger_map_put(&b->ids, v->event_id.p, v->event_id.n,
		       (int64_t)b->nentries, identity);
	cache_put(l, v->order_id.p, v->order_id.n,
		  (struct order_state){version, merchant});
	h->seq = e.seq;
	memcpy(h->hash, hash, WB_HASH_LEN);
	h->dirty = true;

	if (b->nentries == b->capentries) {
		b->capentries = b->capentries ? 2 * b->capentries : 1024;
		b->entries = wb_xrealloc(b->entries,
					 b->capentries * sizeof(*b->entries));
	}
	b->entries[b->nentries++] = (struct batch_entry){
		partition, e.seq, version, off, entry_len, order_off};
	*out = WB_APPEND_ADDED;
	return WB_OK;
}

wb_err wb_ledger_batch_append(wb_ledger *l, int32_t partition,
			      const uint8_t *body, size_t len,
			      const struct wb_event_view *v,
			      int64_t recorded_at, char *msg, size_t msglen)
{
	enum wb_append_outcome out;
	wb_err rc = wb_ledger_batch_add(l, partition, body, len, v,
					recorded_at, &out, msg, msglen);
	if (rc)
		return rc;
	switch (out) {
	case WB_APPEND_ADDED:
		return WB_OK;
	case WB_APPEND_DUPLICATE:
	case WB_APPEND_DUPLICATE_DIFFERS:
		return WB_ECONFLICT;
	default:
		return WB_EINVAL;
	}
}

void wb_ledger_batch_offset(wb_ledger *l, const char *topic,
			    int32_t partition, int64_t next_offset)
{
	struct batch *b = l->cur;
	for (size_t i = 0; i < b->noffsets; i++) {
		struct staged_offset *s = &b->offsets[i];
		if (s->partition == partition && strcmp(s->topic, topic) == 0) {
			if (next_offset > s->next)
				s->next = next_offset;
			return;
		}
	}
	if (b->noffsets == b->capoffsets) {
		b->capoffsets = b->capoffsets ? 2 * b->capoffsets : 16;
		b->offsets = wb_xrealloc(b->offsets,
					 b->capoffsets * sizeof(*b->offsets));
	}
	struct staged_offset *s = &b->offsets[b->noffsets++];
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
	rocksdb_writebatch_put_cf(l->cur->wb, l->cf[CF_OUTBOX], (char *)key, 9,
				  (char *)b.data, b.len);
	wb_buf_finish(&b);
	l->cur->nputs++;
}

void wb_ledger_batch_published(wb_ledger *l, int32_t partition, int64_t seq)
{
	struct head *h = ledger_head_get(l, partition);
	if (seq > h->published) {
		h->published = seq;
		h->pub_dirty = true;
	}
}

void wb_ledger_batch_dlq_sent(wb_ledger *l, uint64_t id)
{
	uint8_t key[9] = {'D'};
	be64(key + 1, id);
	rocksdb_writebatch_delete_cf(l->cur->wb, l->cf[CF_OUTBOX], (char *)key,
				     9);
	l->cur->nputs++;
}

size_t wb_ledger_batch_count(const wb_ledger *l)
{
	return l->cur->nentries;
}

static void entry_of(const struct batch *b, size_t i,
		     struct wb_ledger_appended *out)
{
	assert(i < b->nentries);
	const struct batch_entry *e = &b->entries[i];
	out->partition = e->partition;
	out->seq = e->seq;
	out->version = e->version;
	out->entry = b->arena.data + e->entry_off;
	out->entry_len = e->entry_len;
	out->order_id = (const char *)b->arena.data + e->order_off;
}

void wb_ledger_batch_entry(const wb_ledger *l, size_t i,
			   struct wb_ledger_appended *out)
{
	entry_of(l->cur, i, out);
}

size_t wb_ledger_committed_count(const wb_ledger *l)
{
	return l->done ? l->done->nentries : 0;
}

void wb_ledger_committed_entry(const wb_ledger *l, size_t i,
			       struct wb_ledger_appended *out)
{
	assert(l->done);
	entry_of(l->done, i, out);
}

/* ---- committing ------------------------------------------------------- */

static int slot_cmp(const void *a, const void *b, void *map)
{
	const struct ledger_map *m = map;
	const struct ledger_map_slot *x = *(const struct ledger_map_slot *const *)a;
	const struct ledger_map_slot *y = *(const struct ledger_map_slot *const *)b;
	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(m->keys.data + x->off, m->keys.data + y->off, n);
	return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* The used slots of m in the order of their hashed keys (hash, then id):
 * inserted in that order, each lands near the previous one in the
 * family's skiplist, which RocksDB finds from there instead of searching
 * from the top. (A slot stores hash 0 as 1, so that one key may sit out
 * of place: it costs a longer search, nothing else.) Malloc'ed; the
 * caller frees it. */
static const struct ledger_map_slot **sorted_slots(const struct ledger_map *m)
{
	const struct ledger_map_slot **v = wb_xmalloc((m->n ? m->n : 1) * sizeof(*v));
	size_t n = 0;
	for (size_t i = 0; i < m->cap; i++)
		if (ledger_map_used(m, &m->slots[i]))
			v[n++] = &m->slots[i];
	assert(n == m->n);
	qsort_r(v, n, sizeof(*v), slot_cmp, (void *)m);
	return v;
}

/* Adds the once-per-batch records: order states, offsets, chain heads and
 * outbox cursors. */
static void seal(wb_ledger *l, struct batch *b)
{
	/* Log records go in (partition, seq) order. Each then lands right
	 * after the previous insert in the log family's skiplist, the case
	 * RocksDB inserts without searching; interleaved partitions would
	 * make every insert a full search. Entries are in seq order within a
	 * partition already, so this is a stable pass per partition. */
	for (int32_t p = 0; p < l->nheads; p++) {
		for (size_t i = 0; i < b->nentries; i++) {
			const struct batch_entry *e = &b->entries[i];
			if (e->partition != p)
				continue;
			uint8_t key[12];
			be32(key, (uint32_t)p);
			be64(key + 4, (uint64_t)e->seq);
			rocksdb_writebatch_put_cf(
				b->wb, l->cf[CF_LOG], (char *)key, 12,
				(char *)b->arena.data + e->entry_off,
				e->entry_len);
		}
	}
	const struct ledger_map_slot **sorted = sorted_slots(&b->orders);
	for (size_t i = 0; i < b->orders.n; i++) {
		const struct ledger_map_slot *o = sorted[i];
		uint8_t state[ORDER_STATE_V2_LEN] = {ORDER_STATE_V2};
		uint8_t key[INDEX_KEY_MAX];
		be64(state + 1, (uint64_t)o->val);
		be64(state + 9, o->aux);
		size_t kl = hashed_key(
			key, (const char *)b->orders.keys.data + o->off, o->len);
		rocksdb_writebatch_put_cf(b->wb, l->cf[CF_ORDERS], (char *)key,
					  kl, (char *)state, sizeof(state));
	}
	free(sorted);
	sorted = sorted_slots(&b->ids);
	for (size_t i = 0; i < b->ids.n; i++) {
		const struct ledger_map_slot *d = sorted[i];
		const struct batch_entry *e = &b->entries[d->val];
		uint8_t loc[DEDUPE_V2_LEN], key[INDEX_KEY_MAX];
		be32(loc, (uint32_t)e->partition);
		be64(loc + 4, (uint64_t)e->seq);
		be64(loc + DEDUPE_LOC_LEN, d->aux);
		size_t kl = hashed_key(
			key, (const char *)b->ids.keys.data + d->off, d->len);
		rocksdb_writebatch_put_cf(b->wb, l->cf[CF_DEDUPE], (char *)key,
					  kl, (char *)loc, sizeof(loc));
	}
	free(sorted);
	for (size_t i = 0; i < b->noffsets; i++) {
		struct staged_offset *s = &b->offsets[i];
		uint8_t key[200], val[8];
		size_t tl = strlen(s->topic);
		memcpy(key, s->topic, tl);
		key[tl] = 0;
		be32(key + tl + 1, (uint32_t)s->partition);
		be64(val, (uint64_t)s->next);
		rocksdb_writebatch_put_cf(b->wb, l->cf[CF_OFFSETS], (char *)key,
					  tl + 5, (char *)val, 8);
	}
	for (int32_t p = 0; p < l->nheads; p++) {
		struct head *h = &l->heads[p];
		uint8_t key[5], val[8 + WB_HASH_LEN];
		if (h->dirty) {
			be32(key, (uint32_t)p);
			be64(val, (uint64_t)h->seq);
			memcpy(val + 8, h->hash, WB_HASH_LEN);
			rocksdb_writebatch_put_cf(b->wb, l->cf[CF_HEADS],
						  (char *)key, 4, (char *)val,
						  sizeof(val));
		}
		if (h->pub_dirty) {
			key[0] = 'L';
			be32(key + 1, (uint32_t)p);
			be64(val, (uint64_t)h->published);
			rocksdb_writebatch_put_cf(b->wb, l->cf[CF_OUTBOX],
						  (char *)key, 5, (char *)val,
						  8);
		}
		h->dirty = h->pub_dirty = false;
	}
}

bool wb_ledger_commit_inflight(wb_ledger *l)
{
	pthread_mutex_lock(&l->mu);
	bool busy = l->inflight && !l->inflight_done;
	pthread_mutex_unlock(&l->mu);
	return busy;
}

wb_err wb_ledger_batch_submit(wb_ledger *l, char *msg, size_t msglen)
{
	assert(!l->read_only);
	pthread_mutex_lock(&l->mu);
	/* the previous commit must have finished and been collected */
	assert(!l->inflight || l->inflight_done);
	bool failed = l->failed;
	pthread_mutex_unlock(&l->mu);
	if (failed)
		return wb_fail(msg, msglen, WB_ESTORE, "%s", l->fail_msg);
	struct batch *b = l->cur;
	seal(l, b);
	struct batch *next = other(l);
	if (l->done == next)
		l->done = NULL;
	batch_clear(next);
	pthread_mutex_lock(&l->mu);
	l->inflight = b;
	l->inflight_done = false;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
	l->cur = next;
	return WB_OK;
}

int wb_ledger_commit_wait(wb_ledger *l, int timeout_ms, char *msg,
			  size_t msglen, wb_err *rc)
{
	*rc = WB_OK;
	pthread_mutex_lock(&l->mu);
	if (timeout_ms < 0) {
		while (l->inflight && !l->inflight_done)
			pthread_cond_wait(&l->cv, &l->mu);
	} else if (l->inflight && !l->inflight_done && timeout_ms > 0) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += timeout_ms / 1000;
		until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		while (l->inflight && !l->inflight_done)
			if (pthread_cond_timedwait(&l->cv, &l->mu, &until))
				break;
	}
	int finished = 0;
	if (!l->inflight) {
		finished = -1; /* nothing was in flight */
	} else if (l->inflight_done) {
		finished = 1;
		if (l->failed)
			*rc = wb_fail(msg, msglen, WB_ESTORE, "%s",
				      l->fail_msg);
		else
			l->done = l->inflight;
		l->inflight = NULL;
	}
	pthread_mutex_unlock(&l->mu);
	return finished;
}

wb_err wb_ledger_batch_commit(wb_ledger *l, char *msg, size_t msglen)
{
	wb_err rc;
	if (wb_ledger_commit_wait(l, -1, msg, msglen, &rc) >= 0 && rc)
		return rc;
	if ((rc = wb_ledger_batch_submit(l, msg, msglen)))
		return rc;
	wb_ledger_commit_wait(l, -1, msg, msglen, &rc);
	return rc;
}

/* ---- format 2 -> 3 ----------------------------------------------------- */

/* One pass over the log: the entry of version 1 of each order names the
 * merchant that order belongs to (the one that created it; any later
 * entry might be another merchant's, appended before this check
 * existed). Its V1 state is rewritten as V2 with that merchant. A crash
 * midway leaves the format marker at 2 and the pass runs again; states
 * already V2 are left alone. */
wb_err ledger_migrate_v2(wb_ledger *l, char *msg, size_t msglen)
{
	rocksdb_iterator_t *it =
		rocksdb_create_iterator_cf(l->db, l->ro, l->cf[CF_LOG]);
	rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
	rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(wo, 1);
	wb_err rc = WB_OK;
	int64_t migrated = 0;
	char *err = NULL;
	for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it) && !rc;
	     rocksdb_iter_next(it)) {
		size_t kl0, vl;
		const uint8_t *k0 = (const uint8_t *)rocksdb_iter_key(it, &kl0);
		const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
		struct wb_entry e;
		struct wb_event_view ev;
		char why[256];
		if (kl0 != 12 ||
		    wb_entry_parse(v, vl, &e, why, sizeof(why)) ||
		    wb_event_peek(e.event, e.event_len, &ev, why, sizeof(why))) {
			rc = wb_fail(msg, msglen, WB_ECORRUPT,
				     "migrating order states: entry %u/%llu: %s",
				     kl0 == 12 ? rd32(k0) : 0,
				     kl0 == 12 ? (unsigned long long)rd64(k0 + 4) : 0,
				     kl0 == 12 ? why : "malformed log key");
			break;
		}
		if (e.version != 1)
			continue;
		uint8_t key[INDEX_KEY_MAX];
		size_t kl = hashed_key(key, ev.order_id.p, ev.order_id.n);
		size_t sl = 0;
		char *sv = rocksdb_get_cf(l->db, l->ro, l->cf[CF_ORDERS],
					  (char *)key, kl, &sl, &err);
		if (err) {
			rc = ledger_store_err(msg, msglen, "migrate", err);
			err = NULL;
			break;
		}
		if (sv && sl >= 9 && (uint8_t)sv[0] == ORDER_STATE_V1) {
			uint8_t state[ORDER_STATE_V2_LEN] = {ORDER_STATE_V2};
			memcpy(state + 1, sv + 1, 8);
			be64(state + 9, merchant_digest(l, ev.merchant.p,
							ev.merchant.n));
			rocksdb_writebatch_put_cf(wb, l->cf[CF_ORDERS],
						  (char *)key, kl,
						  (char *)state, sizeof(state));
			migrated++;
		}
		rocksdb_free(sv);
		if (rocksdb_writebatch_count(wb) >= 10000) {
			rocksdb_write(l->db, wo, wb, &err);
			rocksdb_writebatch_clear(wb);
			if (err) {
				rc = ledger_store_err(msg, msglen, "migrate",
						      err);
				err = NULL;
			}
		}
	}
	if (!rc) {
		rocksdb_iter_get_error(it, &err);
		if (!err)
			rocksdb_write(l->db, wo, wb, &err);
		if (err)
			rc = ledger_store_err(msg, msglen, "migrate", err);
	}
	rocksdb_writeoptions_destroy(wo);
	rocksdb_writebatch_destroy(wb);
	rocksdb_iter_destroy(it);
	if (!rc)
		wb_log(WB_LOG_INFO, "store_migrated",
		       "from_format=%s to_format=%s orders=%lld",
		       LEDGER_FORMAT_PREV, LEDGER_FORMAT, (long long)migrated);
	return rc;
}
