/*
 * wb_projector.h — waybill-projector: folds the ledger's entries
 * (<prefix>ledger, or a ledger data dir / backup for a rebuild) into read
 * models in its own RocksDB, serves them over HTTP to support agents and
 * publishes each order's latest OrderStatus to <prefix>status.
 *
 * Three layers, one header:
 *   - the fold (pure): one ledger entry + the order's view -> the new view.
 *     `waybill as-of` uses the same code, so an audit sees exactly what the
 *     projector computed.
 *   - wb_views: the read-model store. One thread applies batches of entries;
 *     any number of threads query. Each batch commits the models and the
 *     per-partition checkpoint (last applied seq) in one WriteBatch, so an
 *     entry whose seq is at or below the checkpoint is skipped.
 *   - the service (Kafka consumer, orders.status producer, HTTP server).
 *
 * Every query is scoped to a merchant: another merchant's order is
 * WB_ENOTFOUND, exactly like a missing one.
 *
 * CHANGED (all additive; the first draft's declarations are unchanged):
 *   - struct wb_views_options: return_window_days, return_windows
 *     (per-merchant overrides), sync, lanes; wb_views_lane_*: several
 *     apply threads, by partition.
 *   - wb_views_batch_offset()/wb_views_offset(): the next Kafka offset of a
 *     <prefix>ledger partition, stored in the same WriteBatch.
 *   - wb_views_set_lag()/wb_views_lag()/wb_views_stats(): for /readyz and
 *     /metrics (lag in entries per partition, apply counters).
 *   - wb_views_return_window(): a merchant's return window in days.
 *   - wb_views_dump(): every model, deterministically (tests, audits).
 *   - wb_projector_http_start()/_stop(): the HTTP server's entry point,
 *     implemented in projector_http.c (built into waybill-projector only
 *     when that file exists; see projectors/meson.build).
 *   - the shapes of the query results are fixed below and in README
 *     "Read models".
 *   - wb_views_order_json(): the presented view as JSON text (the HTTP
 *     API's hot path).
 */
#ifndef WB_PROJECTOR_H
#define WB_PROJECTOR_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "wb_common.h"
#include "wb_ledger.h"

/* ---- the fold ------------------------------------------------------------ */

/* Folds one ledger entry (as wb_entry_to_json gives it: ledger fields,
 * envelope, payload) into *view (created when NULL; a new reference is
 * stored in *view). Late and out-of-order data never regresses a facet:
 * each facet moves only forward in channel source_time (a late in_transit
 * after delivered is in the timeline but the status stays delivered).
 * An entry whose merchant is not the view's changes nothing (one
 * merchant's event never changes another's order). */
wb_err wb_order_fold(json_t **view, json_t *entry, char *msg, size_t msglen);

/* The view as the API answers it at time now_ms: adds the derived
 * customer_status and the eligibility with reasons (can_cancel,
 * can_change_address, can_return with the window's end), computed with
 * return_window_days (per merchant; default 30, from delivery). New
 * reference. */
json_t *wb_order_present(json_t *view, int64_t now_ms, int return_window_days);

/* ---- the read-model store ------------------------------------------------ */

typedef struct wb_views wb_views;

struct wb_views_options {
	const char *dir;
	bool read_only;
	size_t cache_orders;  /* views kept in memory across batches */
	/* CHANGED: added. Return window in days from delivery (0 = the
	 * default 30; negative = returns not accepted), and per-merchant
	 * overrides "merchant=days,merchant=days" (NULL = none). */
	int return_window_days;
	const char *return_windows;
	bool sync;            /* CHANGED: added. fsync each commit */
	int lanes;            /* CHANGED: added. apply threads (0 = 1) */
	/* CHANGED: added. The time (epoch ms) answers are presented at,
	 * for tests and audits; 0 = the real clock. */
	int64_t clock_ms;
};

/* CHANGED: added. Limits of a store. */
#define WB_VIEWS_MAX_PARTITIONS 4096
#define WB_VIEWS_MAX_LANES 16

wb_err wb_views_open(const struct wb_views_options *o, wb_views **out,
		     char *msg, size_t msglen);
void wb_views_close(wb_views *v);

/* Applying (one thread). Entries whose seq is <= the partition's
 * checkpoint are skipped (counted in *skipped); a seq beyond checkpoint+1
 * is a gap: WB_ECORRUPT, nothing applied (the caller must rebuild).
 * entry is a LedgerEntry Avro body (no single-object header). */
void wb_views_batch_begin(wb_views *v);
wb_err wb_views_batch_apply(wb_views *v, const uint8_t *entry, size_t len,
			    bool *skipped, char *msg, size_t msglen);
/* CHANGED: added. Records that <prefix>ledger records of partition before
 * next_offset are done; stored with the batch. */
void wb_views_batch_offset(wb_views *v, int32_t partition,
			   int64_t next_offset);
/* Commits models + checkpoints (synced). Calls changed(order_id, view)
 * for every order the batch changed, after the commit, so the caller can
 * publish OrderStatus. view is the stored (unpresented) view; borrowed. */
wb_err wb_views_batch_commit(wb_views *v,
			     void (*changed)(const char *order_id,
					     json_t *view, void *ud),
			     void *ud, char *msg, size_t msglen);

/* CHANGED: added. Apply lanes: with o->lanes > 1, partition p's entries
 * are applied by lane p % lanes, and each lane may run on its own thread
 * (one thread per lane at a time); a lane commits its partitions'
 * models and checkpoints in its own synced WriteBatch. The batch_*
 * functions above work on every lane from one thread. */
int wb_views_lanes(wb_views *v);
void wb_views_lane_begin(wb_views *v, int lane);
wb_err wb_views_lane_apply(wb_views *v, int lane, const uint8_t *entry,
			   size_t len, bool *skipped, char *msg,
			   size_t msglen);
void wb_views_lane_offset(wb_views *v, int lane, int32_t partition,
			  int64_t next_offset);
wb_err wb_views_lane_commit(wb_views *v, int lane,
			    void (*changed)(const char *order_id,
					    json_t *view, void *ud),
			    void *ud, char *msg, size_t msglen);

/* Position: the last applied seq of each ledger partition. */
int32_t wb_views_partitions(wb_views *v);
int64_t wb_views_applied(wb_views *v, int32_t partition);
/* Sum of applied seqs over partitions: one number that only grows. */
int64_t wb_views_position(wb_views *v);
/* Waits up to timeout_ms until wb_views_position() >= position. */
bool wb_views_wait(wb_views *v, int64_t position, int timeout_ms);
/* Latest channel source_time applied, and the recorded_at of the last
 * applied entry (for the projection lag). */
void wb_views_freshness(wb_views *v, int64_t *latest_source_time,
			int64_t *last_recorded_at);
/* CHANGED: added. What a query reads before the store, under one lock:
 * the position, freshness, whether every partition's lag is 0 (and
 * there is one), the number of partitions, and the applied seq of the
 * first max of them into applied (may be NULL). */
struct wb_views_pos {
	int64_t position, latest_source_time, last_recorded_at;
	bool caught_up;
	int32_t partitions;
};
void wb_views_read_position(wb_views *v, struct wb_views_pos *out,
			    int64_t *applied, int32_t max);
/* CHANGED: added. Next <prefix>ledger offset stored for partition, or -1
 * if none (e.g. after a rebuild from a ledger data dir). */
int64_t wb_views_offset(wb_views *v, int32_t partition);
/* CHANGED: added. Entries the service knows are in <prefix>ledger but not
 * applied yet (high watermark - next offset), set by the service after
 * each poll; -1 = unknown. Any thread. */
void wb_views_set_lag(wb_views *v, int32_t partition, int64_t lag);
int64_t wb_views_lag(wb_views *v, int32_t partition);
/* CHANGED: added. Counters since open (any thread). */
struct wb_views_stats {
	uint64_t applied;      /* entries folded */
	uint64_t skipped;      /* entries at or below the checkpoint */
	uint64_t foreign;      /* CHANGED: added. entries not applied: they
				* name another merchant than their order */
	uint64_t commits;      /* batches committed */
	uint64_t orders_written;
	int64_t apply_us;      /* time spent applying + committing */
	int64_t last_commit_ms; /* wall clock of the last commit, 0 = none */
};
void wb_views_stats(wb_views *v, struct wb_views_stats *out);

/* Queries (any thread). Results are new references; WB_ENOTFOUND for
 * missing or other merchants'. A result reflects at least the position
 * wb_views_position() returned before the call (read the position first,
 * then query).
 *   wb_views_order          the presented view (wb_order_present at the
 *                           current time with the merchant's window)
 *   wb_views_timeline       array of timeline entries in version order:
 *                           {version, seq, partition, type, event_id,
 *                           source, source_time, ingest_time, recorded_at,
 *                           [correlation_id], [applied: false when late],
 *                           facts: {...}}
 *   wb_views_order_returns  array of return objects (as in the view)
 *   wb_views_return         one return object, plus order_id */
wb_err wb_views_order(wb_views *v, const char *merchant,
		      const char *order_id, json_t **out);
/* CHANGED: added. wb_views_order's answer as compact JSON text appended
 * to out (what wb_json_write writes of it), without building jansson
 * values, and the order's ledger partition (-1 if unknown). */
wb_err wb_views_order_json(wb_views *v, const char *merchant,
			   const char *order_id, wb_buf *out,
			   int32_t *partition);
wb_err wb_views_timeline(wb_views *v, const char *merchant,
			 const char *order_id, json_t **out);
wb_err wb_views_order_returns(wb_views *v, const char *merchant,
			      const char *order_id, json_t **out);
wb_err wb_views_return(wb_views *v, const char *merchant,
		       const char *return_id, json_t **out);

enum wb_lookup {
	WB_LOOKUP_EMAIL,           /* normalised: trimmed, lower case */
	WB_LOOKUP_NAME,            /* order name, e.g. "#1001" */
	WB_LOOKUP_TRACKING,        /* tracking number */
	WB_LOOKUP_CHANNEL_ORDER_ID /* the channel's own id, e.g. 82098... */
};
/* Order ids (JSON array of strings, at most limit) of merchant's orders
 * matching value. */
wb_err wb_views_find(wb_views *v, const char *merchant, enum wb_lookup kind,
		     const char *value, size_t limit, json_t **out);

/* CHANGED: added. The return window (days) of merchant's orders. */
int wb_views_return_window(wb_views *v, const char *merchant);

/* CHANGED: added. Writes every model as JSON lines in key order:
 * checkpoints, views (stored form), timeline, returns, lookups; stable
 * output for identical models. */
wb_err wb_views_dump(wb_views *v, FILE *out, char *msg, size_t msglen);

/* ---- the service --------------------------------------------------------- */

/* Runs waybill-projector until SIGINT/SIGTERM; returns the exit status. */
int wb_projector_service_run(const wb_config *cfg);

/* ---- the HTTP API (projector_http.c) -------------------------------------
 * CHANGED: added. Starts the HTTP server on projector.http.listen serving
 * queries from v (which outlives it). Called by the service after the
 * store is open and before consuming; _stop is called before the store
 * closes and accepts NULL. If projector_http.c is not in the build yet,
 * waybill-projector runs without HTTP and logs http=disabled. */
typedef struct wb_projector_http wb_projector_http;
wb_err wb_projector_http_start(const wb_config *cfg, wb_views *v,
			       wb_projector_http **out, char *msg,
			       size_t msglen);
void wb_projector_http_stop(wb_projector_http *h);

#endif /* WB_PROJECTOR_H */
