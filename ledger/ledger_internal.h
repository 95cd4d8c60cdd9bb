/*
 * ledger_internal.h — the ledger store's private state, shared by
 * ledger_store.c (open, close, reads), ledger_batch.c (building and
 * committing batches) and ledger_verify.c. Not a public API.
 */
#ifndef LEDGER_INTERNAL_H
#define LEDGER_INTERNAL_H

#include <pthread.h>
#include <rocksdb/c.h>
#include <string.h>

#include "ledger_map.h"
#include "wb_ledger.h"

enum {
	CF_DEFAULT, CF_LOG, CF_BY_ORDER, CF_DEDUPE, CF_ORDERS, CF_HEADS,
	CF_OFFSETS, CF_OUTBOX, CF_COUNT
};

/* Per-order state (the orders family's value). V1: the tag, BE64 version.
 * V2: the tag, BE64 version, the 8-byte digest of the order's merchant
 * (merchant_digest in ledger_batch.c), so an event of another merchant is
 * refused instead of becoming the next version of the order. */
#define ORDER_STATE_V1 1
#define ORDER_STATE_V2 2
#define ORDER_STATE_V2_LEN 17
/* dedupe values: BE32 partition | BE64 seq, then (since format 3) the BE64
 * identity hash of the event's merchant, order id and type */
#define DEDUPE_LOC_LEN 12
#define DEDUPE_V2_LEN 20

/* Store format; bumped when a key or value layout changes (kept in the
 * default family under "format"). 2: index keys start with an 8-byte hash.
 * 3: order states are V2 (with the merchant). A writable open of a format-2
 * store rewrites its V1 order states as V2 first (ledger_migrate_v2);
 * read-only opens read both. */
#define LEDGER_FORMAT "3"
#define LEDGER_FORMAT_PREV "2"

/* A few recently seen merchants and their digests: SHA-256 per event would
 * cost more than the lookups it guards, and an order's events come from a
 * handful of merchants. */
#define MERCHANT_MEMO 8
struct merchant_memo {
	uint64_t digest; /* 0 = empty */
	size_t n;
	char name[256];
};

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

/* Everything one batch writes. There are two: one being built by the
 * caller while the other is written by the commit thread. */
struct batch {
	rocksdb_writebatch_t *wb;
	wb_buf arena; /* entry bytes and order ids */
	struct batch_entry *entries;
	size_t nentries, capentries;
	struct ledger_map ids;    /* event id -> entry index, identity hash */
	struct ledger_map orders; /* order id -> version, merchant digest;
				     written once per batch */
	struct staged_offset *offsets;
	size_t noffsets, capoffsets;
	size_t nputs;
};

struct wb_ledger {
	rocksdb_t *db;
	rocksdb_column_family_handle_t *cf[CF_COUNT];
	rocksdb_options_t *db_opts, *point_opts, *log_opts, *index_opts,
		*append_opts;
	rocksdb_block_based_table_options_t *bbto;
	rocksdb_cache_t *cache;
	rocksdb_writeoptions_t *wo;
	rocksdb_readoptions_t *ro;
	bool read_only;

	struct head *heads;
	int32_t nheads;
	struct ledger_map order_cache; /* order id -> version, merchant digest
					  (0: a V1 state, merchant unknown) */
	size_t order_cache_max;
	struct merchant_memo merchants[MERCHANT_MEMO];
	unsigned merchant_next;
	uint64_t next_dlq_id;

	struct batch batches[2];
	struct batch *cur;  /* being built */
	struct batch *done; /* last committed, readable until the next commit */
	/* the commit thread and the batch it writes */
	pthread_t thread;
	bool thread_started, thread_stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct batch *inflight;
	bool inflight_done;
	bool failed; /* a commit failed: in-memory state is ahead of the store */
	char fail_msg[256];
};

/* big-endian helpers for keys */
static inline void be32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static inline void be64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t rd64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* Keys of the index families (dedupe, orders, by_order) start with an
 * 8-byte hash of the id, so a batch can put them in key order by sorting
 * its own hash-map slots (ledger_batch.c: seal), and the hash is the
 * prefix for RocksDB's prefix bloom filters. The id follows in full, so a
 * hash collision costs nothing but a neighbour. (Store formats 2 and 3.) */
#define KEY_HASH_LEN 8
#define INDEX_KEY_MAX (KEY_HASH_LEN + 256 + 1 + 8)

static inline size_t hashed_key(uint8_t *out, const char *id, size_t n)
{
	uint64_t h = wb_hash64(id, n);
	be64(out, h);
	memcpy(out + KEY_HASH_LEN, id, n);
	return KEY_HASH_LEN + n;
}

/* Translates a RocksDB error string (freed here) into WB_ESTORE. */
wb_err ledger_store_err(char *msg, size_t msglen, const char *what,
			char *err);
struct head *ledger_head_get(wb_ledger *l, int32_t partition);
void ledger_load_heads(wb_ledger *l);

/* ledger_batch.c */
void ledger_batches_init(wb_ledger *l);
void ledger_batches_finish(wb_ledger *l);
wb_err ledger_commit_thread_start(wb_ledger *l, char *msg, size_t msglen);
/* Rewrites every V1 order state as V2 with the merchant of the order's
 * first entry (a format-2 store opened for writing), synced. */
wb_err ledger_migrate_v2(wb_ledger *l, char *msg, size_t msglen);

#endif
