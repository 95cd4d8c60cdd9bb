/*
 * ledger_verify.c — `waybill verify`: recomputes every link of every
 * partition's hash chain, checks seqs are gapless and the stored chain
 * heads match the log, then that every order's versions are gapless and
 * point at entries of that order. It reports the first broken link.
 */
#include "ledger_internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>


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
/* The order's stored version must be the last one indexed. */
static bool verify_order_head(wb_ledger *l, struct wb_verify_result *r,
			      const uint8_t *id, size_t n, int64_t last)
{
	char tmp[300];
	snprintf(tmp, sizeof(tmp), "%.*s", (int)n, (const char *)id);
	int64_t v = wb_ledger_order_version(l, tmp);
	if (v != last)
		verify_fail(r, -1, -1, "order %s: stored version %lld, index "
			    "ends at %lld", tmp, (long long)v, (long long)last);
	return r->ok;
}

static void verify_orders(wb_ledger *l, struct wb_verify_result *r)
{
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	rocksdb_readoptions_set_total_order_seek(ro, 1); /* every prefix */
	rocksdb_iterator_t *it =
		rocksdb_create_iterator_cf(l->db, ro, l->cf[CF_BY_ORDER]);
	wb_buf cur;
	wb_buf_init(&cur);
	int64_t last = 0;
	char msg[256];
	for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it) && r->ok;
	     rocksdb_iter_next(it)) {
		size_t kl, vl;
		const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
		const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
		if (kl < KEY_HASH_LEN + 10 || k[kl - 9] != 0 || vl != 12) {
			verify_fail(r, -1, -1, "malformed by_order record");
			break;
		}
		/* key: hash(8) | order id | 0 | BE64 version */
		size_t idlen = kl - 9 - KEY_HASH_LEN;
		int64_t version = (int64_t)rd64(k + kl - 8);
		k += KEY_HASH_LEN;
		if (cur.len != idlen || memcmp(cur.data, k, idlen)) {
			if (last > 0 && !verify_order_head(l, r, cur.data,
							   cur.len, last))
				break;
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
	if (r->ok && last > 0)
		verify_order_head(l, r, cur.data, cur.len, last);
	wb_buf_finish(&cur);
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
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
