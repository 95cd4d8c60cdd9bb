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
/* Kafka acknowledged the status of order_id at version: its outbox record
 * goes with the next commit (unless a newer version is pending). */
void wb_views_outbox_done(wb_views *v, const char *order_id, int64_t version);
/* Outbox records acknowledged but not yet deleted, and commits pending
 * only for them. */
bool wb_views_outbox_dirty(wb_views *v);

#endif
