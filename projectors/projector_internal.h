/*
 * projector_internal.h — pieces shared by the projector's own files (the
 * fold, the store, the service, `waybill as-of`); not part of the contract
 * in wb_projector.h.
 */
#ifndef WB_PROJECTOR_INTERNAL_H
#define WB_PROJECTOR_INTERNAL_H

#include "wb_projector.h"

/* What folding one entry did, beyond the view itself. */
struct wb_fold_info {
	/* The event is late: its facet had already moved past its
	 * source_time, so only the timeline and the version changed. */
	bool stale;
	/* The entry names another merchant than the view's (a ledger
	 * written before the ledger refused such events may hold them):
	 * the fold left the view as it was, version included, and the
	 * store keeps the entry out of the timeline. */
	bool foreign;
};

/* wb_order_fold, also telling what the entry did. */
wb_err wb_order_fold_ex(json_t **view, json_t *entry,
			struct wb_fold_info *info, char *msg, size_t msglen);

/* The compact timeline record of an entry: ledger fields, envelope, the
 * payload's key facts, and applied=false when stale; as JSON text
 * appended to b, or as a new reference. */
void wb_timeline_write(wb_buf *b, json_t *entry,
		       const struct wb_fold_info *info);
json_t *wb_timeline_entry(json_t *entry, const struct wb_fold_info *info);

/* The OrderStatus record (schemas/OrderStatus.avsc) of a stored view at
 * now_ms. New reference. */
json_t *wb_order_status(json_t *view, int64_t now_ms, int return_window_days);
/* The same record's Avro body, appended to out (no JSON in between). */
void wb_order_status_encode(json_t *view, wb_buf *out);

/* ---- the fold's own representation (projector_fold.c) --------------------
 * The jansson functions above are the reference interface (tests, `waybill
 * as-of`); underneath, and on the projector's hot paths, the fold works on
 * C structs:
 *   - struct wb_event: one ledger entry decoded straight from its Avro
 *     (or from JSON) into a flat tree of nodes, each with the compact JSON
 *     text it renders to, without building jansson values;
 *   - struct wb_order: an order's view, each field holding a string, an
 *     integer or the JSON text of a payload value (copied as is), plus the
 *     few parsed facts the rules need (line keys and quantities, money);
 *   - its stored record: a compact binary form that starts with the
 *     merchant (checked before anything else is decoded) and decodes
 *     without copying; answers are rendered from it as JSON text.
 * Memory of a wb_order lives in arenas: its own (what a load decoded) and
 * the caller's (what a fold added), until the next wb_order_load. */

struct wb_arena_chunk;
struct wb_arena {
	struct wb_arena_chunk *chunks;
	char *p;
	size_t left;
	size_t chunk; /* bytes a chunk holds at least (0: 8 KiB) */
};
void *wb_arena_alloc(struct wb_arena *a, size_t n);
/* Frees every chunk but the first (which is kept for reuse). */
void wb_arena_reset(struct wb_arena *a);
void wb_arena_finish(struct wb_arena *a);

struct wb_event;
struct wb_order;

struct wb_event *wb_event_new(void);
void wb_event_free(struct wb_event *ev);
/* Decodes a ledger entry (its ledger fields and OrderEvent Avro body);
 * strings point into the entry, which must outlive ev's use. */
wb_err wb_event_from_entry(struct wb_event *ev, const struct wb_entry *e,
			   char *msg, size_t msglen);
/* The same from a JSON entry (as wb_entry_to_json gives it). */
void wb_event_from_json(struct wb_event *ev, json_t *entry);
/* A top-level string field of the entry ("order_id", "type"), or NULL. */
const char *wb_event_str(const struct wb_event *ev, const char *key,
			 size_t *n);
int64_t wb_event_int(const struct wb_event *ev, const char *key,
		     int64_t def);
/* The timeline record of ev (what wb_timeline_write writes). */
void wb_event_timeline(wb_buf *b, const struct wb_event *ev,
		       const struct wb_fold_info *info);

struct wb_order *wb_order_new(void);
void wb_order_free(struct wb_order *o);
/* Whether o holds a view (a fold or a load happened). */
bool wb_order_exists(const struct wb_order *o);
/* Folds ev into o (an empty o becomes a new view); what the fold adds is
 * allocated from a, which must live until the next wb_order_load of o. */
wb_err wb_order_apply(struct wb_order *o, const struct wb_event *ev,
		      struct wb_arena *a, struct wb_fold_info *info,
		      char *msg, size_t msglen);
/* The stored record of o, appended to out. */
void wb_order_record(const struct wb_order *o, wb_buf *out);
/* Decodes a stored record into o, replacing what it held. rec must
 * outlive o's use; with own, o takes it over (free()d by o). */
wb_err wb_order_load(struct wb_order *o, uint8_t *rec, size_t len, bool own);
/* The merchant a stored record starts with (without decoding the rest);
 * false if the record is malformed or has no merchant string. */
bool wb_record_merchant(const uint8_t *rec, size_t len, const char **m,
			size_t *n);
/* The ledger partition a stored record names, or -1. */
int32_t wb_record_partition(const uint8_t *rec, size_t len);
/* Renderings, appended to out: the presented view at now_ms (what
 * wb_order_present serialises to), and the stored view (the jansson
 * fold's view: what --dump shows). */
void wb_order_present_write(const struct wb_order *o, int64_t now_ms,
			    int return_window_days, wb_buf *out);
void wb_order_view_write(const struct wb_order *o, wb_buf *out);
/* The OrderStatus Avro body of o, appended to out. */
void wb_order_status_write(const struct wb_order *o, wb_buf *out);
int64_t wb_order_version(const struct wb_order *o);
const char *wb_order_merchant(const struct wb_order *o, size_t *n);
const char *wb_order_id(const struct wb_order *o, size_t *n);
/* Calls fn for every lookup value of o (as wb_view_lookups). */
void wb_order_lookups(const struct wb_order *o,
		      void (*fn)(enum wb_lookup kind, const char *value,
				 void *ud),
		      void *ud);
/* Calls fn for each return of o with a string id: the return object plus
 * "order_id" as JSON text. */
void wb_order_returns(const struct wb_order *o,
		      void (*fn)(const char *return_id, size_t idlen,
				 const char *json, size_t len, void *ud),
		      void *ud);

/* Compact JSON (what json_dumps(JSON_COMPACT) writes, keys in insertion
 * order), appended to b; several times faster than json_dumps. */
void wb_json_write(wb_buf *b, json_t *j);
void wb_json_put_str(wb_buf *b, const char *s, size_t n);
void wb_json_put_int(wb_buf *b, int64_t v);

/* The normalised lookup value of kind into out (NUL-terminated); false if
 * nothing is left after normalising. */
bool wb_lookup_normalise(enum wb_lookup kind, const char *in, wb_buf *out);

/* Calls fn for every lookup value of a stored view (normalised,
 * deduplicated per kind is not guaranteed). */
void wb_view_lookups(json_t *view,
		     void (*fn)(enum wb_lookup kind, const char *value,
				void *ud),
		     void *ud);

/* Parses "merchant=days,merchant=days"; calls fn per pair. false with msg
 * on a malformed list. */
bool wb_return_windows_parse(const char *list,
			     void (*fn)(const char *merchant, size_t n,
					int days, void *ud),
			     void *ud, char *msg, size_t msglen);

#define WB_DEFAULT_RETURN_WINDOW_DAYS 30

/* ---- store extras for the service ---------------------------------------- */

/* Deletes a projector store (for --rebuild). */
wb_err wb_views_destroy(const char *dir, char *msg, size_t msglen);

/* The OrderStatus outbox: when enabled, every commit also records each
 * changed order (with its version) in the store, so that a crash between
 * the commit and Kafka's acknowledgement cannot lose a status. */
void wb_views_set_outbox(wb_views *v, bool on);
/* Calls fn for every order still in the outbox, with its stored view. */
wb_err wb_views_outbox_each(wb_views *v,
			    void (*fn)(const char *order_id, json_t *view,
				       void *ud),
			    void *ud, char *msg, size_t msglen);
/* The same with the views as the fold's structs (the service's path:
 * no JSON in between). */
wb_err wb_views_outbox_each_order(wb_views *v,
				  void (*fn)(const char *order_id,
					     const struct wb_order *o,
					     void *ud),
				  void *ud, char *msg, size_t msglen);
wb_err wb_views_lane_commit_orders(
	wb_views *v, int lane,
	void (*changed)(const char *order_id, const struct wb_order *o,
			void *ud),
	void *ud, char *msg, size_t msglen);
wb_err wb_views_batch_commit_orders(
	wb_views *v,
	void (*changed)(const char *order_id, const struct wb_order *o,
			void *ud),
	void *ud, char *msg, size_t msglen);
/* Kafka acknowledged the status of order_id at version: its outbox record
 * goes with the next commit (unless a newer version is pending). */
void wb_views_outbox_done(wb_views *v, const char *order_id, int64_t version);
/* Outbox records acknowledged but not yet deleted, and commits pending
 * only for them. */
bool wb_views_outbox_dirty(wb_views *v);

#endif
