/*
 * wb_ledger.h — the ledger: an immutable, hash-chained, per-partition log of
 * order events in RocksDB, plus the Kafka service that fills it and the
 * audit commands that read it. This is the only code that opens the
 * ledger's RocksDB.
 *
 * Store layout (column families):
 *   log       BE32 partition | BE64 seq          -> LedgerEntry Avro body
 *   by_order  order_id | 0x00 | BE64 version      -> BE32 partition | BE64 seq
 *   dedupe    event_id                            -> BE32 partition | BE64 seq
 *                                                    | BE64 identity hash
 *   orders    order_id                            -> per-order state:
 *                                                    version, merchant
 * (index keys start with an 8-byte hash of the id: ledger_internal.h)
 *   heads     BE32 partition                      -> BE64 seq | hash[32]
 *   offsets   topic | 0x00 | BE32 partition       -> BE64 next Kafka offset
 *   outbox    'L' | BE32 partition                -> BE64 last published seq
 *             'D' | BE64 id                       -> DLQ record not yet sent
 * Everything one batch changes goes into one WriteBatch, synced.
 *
 * hash = SHA-256(prev_hash || BE64 seq || zz(partition) zz(version)
 *                zz(recorded_at) || OrderEvent Avro body); prev_hash of
 * seq 1 is 32 zero bytes. The stored value is the LedgerEntry Avro body:
 * zz(partition) zz(seq) zz(version) zz(recorded_at) bytes(prev_hash)
 * bytes(hash) event.
 */
#ifndef WB_LEDGER_H
#define WB_LEDGER_H

#include <stdbool.h>
#include <stdint.h>

#include "wb_common.h"
#include "wb_schema.h"

#define WB_HASH_LEN 32

typedef struct wb_ledger wb_ledger;

struct wb_ledger_options {
	const char *dir;
	bool read_only;     /* audit commands; may run beside the service */
	bool sync;          /* fsync the WAL on every commit */
	size_t order_cache; /* per-order states kept in memory */
};

wb_err wb_ledger_open(const struct wb_ledger_options *o, wb_ledger **out,
		      char *msg, size_t msglen);
void wb_ledger_close(wb_ledger *l);

/* ---- entries ---------------------------------------------------------- */

struct wb_entry {
	int32_t partition;
	int64_t seq, version, recorded_at;
	const uint8_t *prev_hash, *hash; /* WB_HASH_LEN bytes each */
	const uint8_t *event;            /* OrderEvent Avro body */
	size_t event_len;
};

/* Splits a stored LedgerEntry body; checks framing only (not the hash). */
wb_err wb_entry_parse(const uint8_t *p, size_t n, struct wb_entry *e,
		      char *msg, size_t msglen);
/* The hash e should carry, from its fields and e->prev_hash. */
void wb_entry_compute_hash(const struct wb_entry *e, uint8_t out[WB_HASH_LEN]);
/* LedgerEntry as one replay JSON line object: ledger fields, then the
 * event's envelope and payload. New reference. */
wb_err wb_entry_to_json(const struct wb_entry *e, json_t **out, char *msg,
			size_t msglen);

/* ---- appending: one batch is one synced WriteBatch -------------------- */

struct wb_ledger_appended {
	int32_t partition;
	int64_t seq, version;
	const char *order_id;  /* NUL-terminated; valid as long as its batch */
	const uint8_t *entry;  /* LedgerEntry body; valid as long as its batch */
	size_t entry_len;
};

struct wb_dlq_record {
	uint64_t id;           /* assigned when staged */
	const char *topic;
	int32_t partition;
	int64_t offset;
	const uint8_t *key;    /* may be NULL */
	size_t key_len;
	const uint8_t *value;  /* may be NULL */
	size_t value_len;
	const char *error;
};

/* What wb_ledger_batch_add did with an event. An event_id names one fact
 * of one order: its identity is (merchant, order_id, type). */
enum wb_append_outcome {
	WB_APPEND_ADDED,
	/* its event_id is recorded (in the store or in a batch) with the same
	 * identity and payload: a redelivery, skipped */
	WB_APPEND_DUPLICATE,
	/* the same, but its payload bytes differ from the recorded event's
	 * (a webhook and a poll may describe one fact slightly differently):
	 * skipped too, the first description stays; msg says so */
	WB_APPEND_DUPLICATE_DIFFERS,
	/* refused, nothing appended, msg says why: its order belongs to
	 * another merchant, or its event_id is recorded for another order,
	 * merchant or type. The caller sends it to the DLQ. */
	WB_APPEND_REFUSED_MERCHANT,
	WB_APPEND_REFUSED_EVENT_ID,
};

void wb_ledger_batch_begin(wb_ledger *l);
/* Appends one validated (canonical) OrderEvent body to partition's chain
 * as the next version of its order, unless the outcome says otherwise.
 * WB_OK with *out set; WB_ESTORE if the store refuses work. */
wb_err wb_ledger_batch_add(wb_ledger *l, int32_t partition,
			   const uint8_t *body, size_t len,
			   const struct wb_event_view *v, int64_t recorded_at,
			   enum wb_append_outcome *out, char *msg,
			   size_t msglen);
/* wb_ledger_batch_add as a status: WB_OK (added), WB_ECONFLICT (a
 * duplicate, skipped), WB_EINVAL (refused: msg says why), WB_ESTORE. */
wb_err wb_ledger_batch_append(wb_ledger *l, int32_t partition,
			      const uint8_t *body, size_t len,
			      const struct wb_event_view *v,
			      int64_t recorded_at, char *msg, size_t msglen);
/* Records that Kafka records of topic/partition before next_offset are
 * done. */
void wb_ledger_batch_offset(wb_ledger *l, const char *topic,
			    int32_t partition, int64_t next_offset);
/* Stages a DLQ record in the outbox; sets r->id. */
void wb_ledger_batch_dlq(wb_ledger *l, struct wb_dlq_record *r);
/* Outbox bookkeeping, written with the next commit (unsynced data is
 * fine: after a crash entries are simply published again). */
void wb_ledger_batch_published(wb_ledger *l, int32_t partition, int64_t seq);
void wb_ledger_batch_dlq_sent(wb_ledger *l, uint64_t id);
/* Entries appended so far in the batch being built. */
size_t wb_ledger_batch_count(const wb_ledger *l);
void wb_ledger_batch_entry(const wb_ledger *l, size_t i,
			   struct wb_ledger_appended *out);
bool wb_ledger_batch_empty(const wb_ledger *l);

/* Committing. A commit thread writes one batch while the caller builds the
 * next: wb_ledger_batch_submit() seals the current batch and hands it over
 * (the previous commit must have been collected with
 * wb_ledger_commit_wait()); wb_ledger_commit_wait() waits up to timeout_ms
 * (-1: forever) and returns 1 when the commit in flight has finished (*rc
 * its result), 0 if it is still running, -1 if none was in flight. After a
 * successful commit, wb_ledger_committed_*() give its entries until the
 * next submit. A failed commit leaves the store refusing further work
 * (WB_ESTORE): the in-memory heads are ahead of what is stored. */
wb_err wb_ledger_batch_submit(wb_ledger *l, char *msg, size_t msglen);
int wb_ledger_commit_wait(wb_ledger *l, int timeout_ms, char *msg,
			  size_t msglen, wb_err *rc);
bool wb_ledger_commit_inflight(wb_ledger *l);
size_t wb_ledger_committed_count(const wb_ledger *l);
void wb_ledger_committed_entry(const wb_ledger *l, size_t i,
			       struct wb_ledger_appended *out);
/* Submit and wait: the synchronous form. */
wb_err wb_ledger_batch_commit(wb_ledger *l, char *msg, size_t msglen);

/* ---- reading ---------------------------------------------------------- */

/* Next offset to consume, or -1 if the partition was never seen. */
int64_t wb_ledger_offset(wb_ledger *l, const char *topic, int32_t partition);
/* Last seq (0 = empty) and its hash (zeros when empty). */
void wb_ledger_head(wb_ledger *l, int32_t partition, int64_t *seq,
		    uint8_t hash[WB_HASH_LEN]);
/* Last seq published to Kafka (outbox cursor). */
int64_t wb_ledger_published(wb_ledger *l, int32_t partition);
/* Highest partition number with entries, plus one. */
int32_t wb_ledger_partition_count(wb_ledger *l);
/* The version of an order (0 = unknown order), as of the batch being
 * built. */
int64_t wb_ledger_order_version(wb_ledger *l, const char *order_id);

typedef struct wb_ledger_iter wb_ledger_iter;
/* Entries of one partition (or all, partition < 0) from seq from_seq on,
 * in (partition, seq) order. */
wb_ledger_iter *wb_ledger_iter_create(wb_ledger *l, int32_t partition,
				      int64_t from_seq);
/* Entries of one order in version order. */
wb_ledger_iter *wb_ledger_iter_order_create(wb_ledger *l,
					    const char *order_id);
/* Next entry body; false at the end (or on a store error: see msg). */
bool wb_ledger_iter_next(wb_ledger_iter *it, const uint8_t **entry,
			 size_t *len);
/* The error that ended iteration early, or WB_OK. */
wb_err wb_ledger_iter_error(const wb_ledger_iter *it, char *msg,
			    size_t msglen);
void wb_ledger_iter_destroy(wb_ledger_iter *it);

/* Calls fn for every stored Kafka offset (topic, partition, next). */
void wb_ledger_offsets_each(wb_ledger *l,
			    void (*fn)(const char *topic, int32_t partition,
				       int64_t next, void *ud),
			    void *ud);

/* Calls fn for every DLQ record still in the outbox. */
void wb_ledger_dlq_each(wb_ledger *l,
			void (*fn)(const struct wb_dlq_record *r, void *ud),
			void *ud);

/* ---- verification ------------------------------------------------------ */

struct wb_verify_result {
	int64_t entries;
	int32_t partitions;
	int64_t orders;
	bool ok;
	int32_t bad_partition; /* first broken link, when !ok */
	int64_t bad_seq;
	char reason[256];
};

/* Recomputes every link of every partition, checks seqs are gapless and
 * heads match, and that every order's versions are gapless and point at
 * entries of that order. WB_OK when it could read everything (see r->ok
 * for the verdict). */
wb_err wb_ledger_verify(wb_ledger *l, struct wb_verify_result *r, char *msg,
			size_t msglen);

/* ---- backup ------------------------------------------------------------ */

/* A consistent RocksDB checkpoint of the store as this handle sees it
 * (read-only handles too) into dir, which must not exist. */
wb_err wb_ledger_backup(wb_ledger *l, const char *dir, char *msg,
			size_t msglen);

/* ---- the service ------------------------------------------------------- */

/* Runs waybill-ledger until SIGINT/SIGTERM: consumes <prefix>events,
 * appends, publishes to <prefix>ledger, sends rejects to <prefix>dlq.
 * Returns the process exit status. */
int wb_ledger_service_run(const wb_config *cfg);

#endif /* WB_LEDGER_H */
