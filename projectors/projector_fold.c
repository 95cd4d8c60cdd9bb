/*
 * projector_fold.c — the fold: one ledger entry + an order's view -> the
 * new view, and the presentation of a view (derived customer_status and
 * eligibility with reasons). Pure functions on jansson values: no I/O, no
 * clock (the caller passes now_ms), so `waybill as-of` and the projector
 * compute exactly the same answers.
 *
 * The stored view keeps facts; everything derived (fulfillment status,
 * refunded totals, customer_status, eligibility, pending actions) is
 * computed by wb_order_present, so a rule change never needs a rebuild.
 *
 * Ordering rule (design §6): every facet remembers the channel source_time
 * that last moved it (the view's private "_t" object, and updated_at of
 * shipments, returns and actions). An event older than its facet changes
 * nothing but the timeline and the version: a late in_transit after
 * delivered stays delivered. Equal times apply in ledger order. Some facts
 * are monotone whatever their time: a cancellation is terminal, refunds
 * and fulfillments accumulate (by id), an action's outcome
 * (succeeded/failed/rejected) is never replaced by "requested".
 */
#include "projector_internal.h"
#include "wb_schema.h"

#include <assert.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* ---- small JSON helpers ------------------------------------------------ */

static int64_t jint(json_t *o, const char *k, int64_t def)
{
	json_t *v = json_object_get(o, k);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : def;
}

static const char *jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static bool jnull(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return !v || json_is_null(v);
}

/* x, or JSON null when absent: for json_pack's "O". */
static json_t *nn(json_t *x)
{
	return x ? x : json_null();
}

static bool streq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

/* Sets o[k] to a new reference of v (json_null() when v is NULL). */
static void jset(json_t *o, const char *k, json_t *v)
{
	json_object_set(o, k, v ? v : json_null());
}

static json_t *jobj(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	if (!json_is_object(v)) {
		v = json_object();
		json_object_set_new(o, k, v);
	}
	return v;
}

static json_t *jarr(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	if (!json_is_array(v)) {
		v = json_array();
		json_object_set_new(o, k, v);
	}
	return v;
}

/* The element of array a whose field k equals id, or NULL. */
static json_t *find_by(json_t *a, const char *k, const char *id)
{
	size_t i;
	json_t *e;
	json_array_foreach(a, i, e) if (streq(jstr(e, k), id)) return e;
	return NULL;
}

/* Sets o[k] to the integer v, in place when o alone holds the value
 * (views are rewritten for every entry: this saves an allocation). */
static void set_int(json_t *o, const char *k, int64_t v)
{
	json_t *x = json_object_get(o, k);
	if (json_is_integer(x) && x->refcount == 1)
		json_integer_set(x, v);
	else
		json_object_set_new(o, k, json_integer(v));
}

/* Facet clock: true (and the facet's time set to t) when an event at
 * source time t may move facet; false when the facet is already newer. */
static bool advance(json_t *view, const char *facet, int64_t t)
{
	json_t *ts = jobj(view, "_t");
	json_t *cur = json_object_get(ts, facet);
	if (cur && json_integer_value(cur) > t)
		return false;
	set_int(ts, facet, t);
	return true;
}

/* ---- the view skeleton ------------------------------------------------- */

static json_t *new_view(json_t *entry)
{
	const char *oid = jstr(entry, "order_id");
	const char *colon = oid ? strchr(oid, ':') : NULL;
	json_t *v = json_object();
	jset(v, "order_id", json_object_get(entry, "order_id"));
	jset(v, "merchant", json_object_get(entry, "merchant"));
	jset(v, "channel", json_object_get(entry, "channel"));
	json_object_set_new(v, "channel_order_id",
			    colon ? json_string(colon + 1) : json_null());
	static const char *const nulls[] = {
		"name", "email", "phone", "note", "currency", "placed_at",
		"totals", "shipping_address", "snapshot", NULL};
	for (const char *const *k = nulls; *k; k++)
		json_object_set_new(v, *k, json_null());
	json_object_set_new(v, "lines", json_array());
	json_object_set_new(v, "order",
			    json_pack("{s:n,s:n,s:n,s:n,s:n}", "status",
				      "cancel_reason", "cancel_note",
				      "cancelled_at", "updated_at"));
	json_object_set_new(v, "payment",
			    json_pack("{s:n,s:n,s:n}", "status", "amount_paid",
				      "updated_at"));
	json_object_set_new(v, "fulfillments", json_array());
	json_object_set_new(v, "shipments", json_array());
	json_object_set_new(v, "refunds", json_array());
	json_object_set_new(v, "returns", json_array());
	json_object_set_new(v, "actions", json_array());
	json_object_set_new(v, "_t", json_object());
	return v;
}

/* ---- per event type ---------------------------------------------------- */

struct fold_ctx {
	json_t *view, *entry, *p; /* p = payload */
	int64_t t;                /* the event's source_time */
	bool applied;             /* some facet moved */
};

/* Copies payload field k into the view (as vk) if it is not null and its
 * facet accepts time t. */
static void field(struct fold_ctx *c, const char *k, const char *vk,
		  const char *facet)
{
	if (jnull(c->p, k))
		return;
	if (advance(c->view, facet, c->t)) {
		jset(c->view, vk, json_object_get(c->p, k));
		c->applied = true;
	}
}

static void order_open(struct fold_ctx *c)
{
	json_t *o = jobj(c->view, "order");
	if (streq(jstr(o, "status"), "cancelled"))
		return; /* terminal */
	if (!advance(c->view, "order", c->t))
		return;
	json_object_set_new(o, "status", json_string("open"));
	set_int(o, "updated_at", c->t);
	c->applied = true;
}

static void order_cancel(struct fold_ctx *c, json_t *reason, json_t *note,
			 int64_t at)
{
	json_t *o = jobj(c->view, "order");
	if (streq(jstr(o, "status"), "cancelled"))
		return; /* the first cancellation stands */
	advance(c->view, "order", c->t);
	json_object_set_new(o, "status", json_string("cancelled"));
	jset(o, "cancel_reason", reason);
	jset(o, "cancel_note", note);
	set_int(o, "cancelled_at", at);
	set_int(o, "updated_at", c->t);
	c->applied = true;
}

static void on_placed(struct fold_ctx *c)
{
	field(c, "name", "name", "name");
	field(c, "email", "email", "email");
	field(c, "phone", "phone", "phone");
	field(c, "lines", "lines", "lines");
	field(c, "totals", "totals", "totals");
	field(c, "shipping_address", "shipping_address", "address");
	if (advance(c->view, "placed", c->t)) {
		jset(c->view, "currency", json_object_get(c->p, "currency"));
		jset(c->view, "placed_at", json_object_get(c->p, "placed_at"));
		c->applied = true;
	}
	order_open(c);
}

static void on_updated(struct fold_ctx *c)
{
	field(c, "email", "email", "email");
	field(c, "phone", "phone", "phone");
	field(c, "note", "note", "note");
	field(c, "lines", "lines", "lines");
	field(c, "totals", "totals", "totals");
}

static void on_payment(struct fold_ctx *c)
{
	if (!advance(c->view, "payment", c->t))
		return;
	json_t *pay = jobj(c->view, "payment");
	jset(pay, "status", json_object_get(c->p, "status"));
	if (!jnull(c->p, "amount_paid"))
		jset(pay, "amount_paid", json_object_get(c->p, "amount_paid"));
	set_int(pay, "updated_at", c->t);
	c->applied = true;
}

static void on_address(struct fold_ctx *c)
{
	field(c, "address", "shipping_address", "address");
}

static void on_cancelled(struct fold_ctx *c)
{
	order_cancel(c, json_object_get(c->p, "reason"),
		     json_object_get(c->p, "note"),
		     jint(c->p, "cancelled_at", c->t));
}

/* The shipment of tracking number tn, created (no status yet) if new. */
static json_t *shipment(struct fold_ctx *c, const char *tn)
{
	json_t *ships = jarr(c->view, "shipments");
	if (!tn)
		tn = "";
	json_t *s = find_by(ships, "tracking_number", tn);
	if (s)
		return s;
	s = json_pack("{s:s,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n}",
		      "tracking_number", tn, "fulfillment_id", "carrier",
		      "tracking_url", "status", "last_event",
		      "estimated_delivery", "delivered_at", "updated_at");
	json_array_append_new(ships, s);
	c->applied = true;
	return s;
}

/* Identity fields of a shipment are filled once, never overwritten by a
 * later event with another opinion. */
static void fill(json_t *o, const char *k, json_t *v)
{
	if (v && !json_is_null(v) && jnull(o, k))
		jset(o, k, v);
}

static void on_fulfillment(struct fold_ctx *c)
{
	const char *fid = jstr(c->p, "fulfillment_id");
	if (!fid)
		fid = "";
	json_t *fs = jarr(c->view, "fulfillments");
	json_t *f = find_by(fs, "fulfillment_id", fid);
	if (!f) {
		f = json_object();
		json_array_append_new(fs, f);
		json_object_set_new(f, "fulfillment_id", json_string(fid));
		set_int(f, "created_at", c->t);
	}
	jset(f, "lines", json_object_get(c->p, "lines"));
	jset(f, "carrier", json_object_get(c->p, "carrier"));
	jset(f, "tracking_numbers", json_object_get(c->p, "tracking_numbers"));
	c->applied = true;
	json_t *tns = json_object_get(c->p, "tracking_numbers");
	json_t *urls = json_object_get(c->p, "tracking_urls");
	size_t i;
	json_t *tn;
	json_array_foreach(tns, i, tn) {
		json_t *s = shipment(c, json_string_value(tn));
		fill(s, "fulfillment_id", json_object_get(c->p, "fulfillment_id"));
		fill(s, "carrier", json_object_get(c->p, "carrier"));
		fill(s, "tracking_url", json_array_get(urls, i));
	}
	advance(c->view, "fulfillment", c->t);
}

static void on_shipment(struct fold_ctx *c)
{
	json_t *s = shipment(c, jstr(c->p, "tracking_number"));
	fill(s, "fulfillment_id", json_object_get(c->p, "fulfillment_id"));
	fill(s, "carrier", json_object_get(c->p, "carrier"));
	if (jint(s, "updated_at", INT64_MIN) > c->t)
		return; /* late carrier news: timeline only */
	json_t *st = json_object_get(c->p, "status");
	jset(s, "status", st);
	json_object_set_new(
		s, "last_event",
		json_pack("{s:O,s:O,s:O,s:I}", "status", nn(st),
			  "carrier_time",
			  nn(json_object_get(c->p, "carrier_time")),
			  "location", nn(json_object_get(c->p, "location")),
			  "source_time", (json_int_t)c->t));
	if (!jnull(c->p, "estimated_delivery"))
		jset(s, "estimated_delivery",
		     json_object_get(c->p, "estimated_delivery"));
	if (streq(json_string_value(st), "delivered"))
		json_object_set_new(s, "delivered_at",
				    json_integer(jint(c->p, "carrier_time",
						      c->t)));
	set_int(s, "updated_at", c->t);
	c->applied = true;
}

static void on_refund(struct fold_ctx *c)
{
	const char *rid = jstr(c->p, "refund_id");
	if (!rid)
		rid = "";
	json_t *rs = jarr(c->view, "refunds");
	json_t *r = find_by(rs, "refund_id", rid);
	if (!r) {
		r = json_object();
		json_array_append_new(rs, r);
	}
	json_object_set_new(r, "refund_id", json_string(rid));
	jset(r, "amount", json_object_get(c->p, "amount"));
	jset(r, "lines", json_object_get(c->p, "lines"));
	jset(r, "restock", json_object_get(c->p, "restock"));
	jset(r, "reason", json_object_get(c->p, "reason"));
	set_int(r, "issued_at", c->t);
	c->applied = true;
}

static void on_return(struct fold_ctx *c, const char *status)
{
	const char *rid = jstr(c->p, "return_id");
	if (!rid)
		rid = "";
	json_t *rs = jarr(c->view, "returns");
	json_t *r = find_by(rs, "return_id", rid);
	if (!r) {
		r = json_pack("{s:s,s:n,s:[],s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n}",
			      "return_id", rid, "status", "lines", "reason",
			      "decline_reason", "requested_at", "approved_at",
			      "declined_at", "received_at", "closed_at",
			      "updated_at");
		json_array_append_new(rs, r);
	}
	/* when each step happened is a fact whatever the order */
	char at[32];
	snprintf(at, sizeof(at), "%s_at", status);
	if (jnull(r, at))
		set_int(r, at, c->t);
	json_t *lines = json_object_get(c->p, "lines");
	bool is_req = streq(status, "requested") || streq(status, "approved");
	if (json_array_size(lines) &&
	    (is_req || json_array_size(json_object_get(r, "lines")) == 0))
		jset(r, "lines", lines);
	if (streq(status, "declined"))
		fill(r, "decline_reason", json_object_get(c->p, "reason"));
	else if (streq(status, "requested"))
		fill(r, "reason", json_object_get(c->p, "reason"));
	c->applied = true;
	if (jint(r, "updated_at", INT64_MIN) > c->t) {
		c->applied = false; /* a step already superseded */
		return;
	}
	json_object_set_new(r, "status", json_string(status));
	set_int(r, "updated_at", c->t);
}

static const char *const payment_statuses[] = {
	"pending", "authorized", "paid", "partially_paid",
	"partially_refunded", "refunded", "voided", NULL};

static void on_snapshot(struct fold_ctx *c)
{
	int64_t t = jint(c->p, "channel_updated_at", c->t);
	if (!advance(c->view, "snapshot", t))
		return;
	jset(c->view, "snapshot", c->p);
	c->applied = true;
	int64_t saved = c->t;
	c->t = t; /* the snapshot shows the channel's state as of t */
	if (json_is_true(json_object_get(c->p, "cancelled")))
		order_cancel(c, NULL, NULL, t);
	const char *fin = jstr(c->p, "financial_status");
	if (fin) {
		char low[32];
		size_t n = 0;
		for (; fin[n] && n < sizeof(low) - 1; n++)
			low[n] = (char)tolower((unsigned char)fin[n]);
		low[n] = 0;
		for (const char *const *s = payment_statuses; *s; s++)
			if (strcmp(*s, low) == 0 &&
			    advance(c->view, "payment", t)) {
				json_t *pay = jobj(c->view, "payment");
				json_object_set_new(pay, "status",
						    json_string(low));
				json_object_set_new(pay, "updated_at",
						    json_integer(t));
			}
	}
	if (jnull(c->view, "totals") && !jnull(c->p, "total"))
		json_object_set_new(c->view, "totals",
				    json_pack("{s:O}", "total",
					      json_object_get(c->p, "total")));
	size_t i;
	json_t *tn;
	json_array_foreach(json_object_get(c->p, "tracking_numbers"), i, tn)
		shipment(c, json_string_value(tn));
	c->t = saved;
}

static bool action_terminal(const char *status)
{
	return streq(status, "succeeded") || streq(status, "failed") ||
	       streq(status, "rejected");
}

static void on_action(struct fold_ctx *c, const char *status)
{
	const char *aid = jstr(c->p, "action_id");
	if (!aid)
		aid = "";
	json_t *as = jarr(c->view, "actions");
	json_t *a = find_by(as, "action_id", aid);
	if (!a) {
		a = json_pack("{s:s,s:O,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n}",
			      "action_id", aid, "kind",
			      nn(json_object_get(c->p, "kind")), "status",
			      "parameters", "requester", "idempotency_key",
			      "reason", "channel_ref", "requested_at",
			      "updated_at");
		json_array_append_new(as, a);
	}
	fill(a, "parameters", json_object_get(c->p, "parameters"));
	fill(a, "requester", json_object_get(c->p, "requester"));
	fill(a, "idempotency_key", json_object_get(c->p, "idempotency_key"));
	if (streq(status, "requested") || streq(status, "rejected"))
		fill(a, "requested_at", json_object_get(c->entry,
							"source_time"));
	c->applied = true;
	const char *cur = jstr(a, "status");
	bool cur_term = action_terminal(cur);
	bool new_term = action_terminal(status);
	if (cur && ((cur_term && !new_term) ||
		    (cur_term == new_term &&
		     jint(a, "updated_at", INT64_MIN) > c->t))) {
		c->applied = false;
		return;
	}
	json_object_set_new(a, "status", json_string(status));
	if (!jnull(c->p, "reason"))
		jset(a, "reason", json_object_get(c->p, "reason"));
	if (!jnull(c->p, "channel_ref"))
		jset(a, "channel_ref", json_object_get(c->p, "channel_ref"));
	if (!jnull(c->p, "attempts"))
		jset(a, "attempts", json_object_get(c->p, "attempts"));
	set_int(a, "updated_at", c->t);
}

/* ---- the fold ------------------------------------------------------------ */

wb_err wb_order_fold_ex(json_t **view, json_t *entry,
			struct wb_fold_info *info, char *msg, size_t msglen)
{
	struct wb_fold_info dummy;
	if (!info)
		info = &dummy;
	info->stale = false;
	const char *type = jstr(entry, "type");
	const char *oid = jstr(entry, "order_id");
	json_t *p = json_object_get(entry, "payload");
	if (!type || !oid || !json_is_object(p) ||
	    !json_is_integer(json_object_get(entry, "source_time")))
		return wb_fail(msg, msglen, WB_ESCHEMA,
			       "entry lacks order_id, type, source_time or "
			       "payload");
	if (*view && !streq(jstr(*view, "order_id"), oid))
		return wb_fail(msg, msglen, WB_EINVAL,
			       "entry of order %s folded into the view of %s",
			       oid, jstr(*view, "order_id"));
	if (!*view)
		*view = new_view(entry);
	struct fold_ctx c = {*view, entry, p, jint(entry, "source_time", 0),
			     false};
	if (strcmp(type, "OrderPlaced") == 0)
		on_placed(&c);
	else if (strcmp(type, "OrderUpdated") == 0)
		on_updated(&c);
	else if (strcmp(type, "PaymentStatusChanged") == 0)
		on_payment(&c);
	else if (strcmp(type, "ShippingAddressChanged") == 0)
		on_address(&c);
	else if (strcmp(type, "OrderCancelled") == 0)
		on_cancelled(&c);
	else if (strcmp(type, "FulfillmentCreated") == 0)
		on_fulfillment(&c);
	else if (strcmp(type, "ShipmentStatusChanged") == 0)
		on_shipment(&c);
	else if (strcmp(type, "RefundIssued") == 0)
		on_refund(&c);
	else if (strcmp(type, "ReturnRequested") == 0)
		on_return(&c, "requested");
	else if (strcmp(type, "ReturnApproved") == 0)
		on_return(&c, "approved");
	else if (strcmp(type, "ReturnDeclined") == 0)
		on_return(&c, "declined");
	else if (strcmp(type, "ReturnReceived") == 0)
		on_return(&c, "received");
	else if (strcmp(type, "ReturnClosed") == 0)
		on_return(&c, "closed");
	else if (strcmp(type, "ChannelSnapshotObserved") == 0)
		on_snapshot(&c);
	else if (strcmp(type, "ActionRequested") == 0)
		on_action(&c, "requested");
	else if (strcmp(type, "ActionRejected") == 0)
		on_action(&c, "rejected");
	else if (strcmp(type, "ActionSucceeded") == 0)
		on_action(&c, "succeeded");
	else if (strcmp(type, "ActionFailed") == 0)
		on_action(&c, "failed");
	else
		c.applied = false; /* a type this projector does not know:
				      timeline only */
	info->stale = !c.applied;

	json_t *v = *view;
	static const char *const ledger_fields[] = {"version", "partition",
						    "seq", "recorded_at", NULL};
	for (const char *const *k = ledger_fields; *k; k++) {
		json_t *x = json_object_get(entry, *k);
		if (json_is_integer(x))
			set_int(v, *k, json_integer_value(x));
	}
	if (c.t > jint(v, "updated_at", INT64_MIN))
		set_int(v, "updated_at", c.t);
	return WB_OK;
}

wb_err wb_order_fold(json_t **view, json_t *entry, char *msg, size_t msglen)
{
	return wb_order_fold_ex(view, entry, NULL, msg, msglen);
}

/* ---- timeline ---------------------------------------------------------- */

/* The payload fields each type's timeline record keeps. */
static const struct {
	const char *type;
	const char *fields[6];
} facts[] = {
	{"OrderPlaced", {"name", "currency", "placed_at"}},
	{"OrderUpdated", {NULL}},
	{"PaymentStatusChanged", {"status", "amount_paid"}},
	{"ShippingAddressChanged", {NULL}},
	{"OrderCancelled", {"reason", "cancelled_at", "note"}},
	{"FulfillmentCreated", {"fulfillment_id", "carrier", "tracking_numbers"}},
	{"ShipmentStatusChanged",
	 {"tracking_number", "status", "carrier", "carrier_time", "location",
	  "estimated_delivery"}},
	{"RefundIssued", {"refund_id", "amount", "restock", "reason"}},
	{"ReturnRequested", {"return_id", "reason"}},
	{"ReturnApproved", {"return_id", "reason"}},
	{"ReturnDeclined", {"return_id", "reason"}},
	{"ReturnReceived", {"return_id", "reason"}},
	{"ReturnClosed", {"return_id", "reason"}},
	{"ChannelSnapshotObserved",
	 {"financial_status", "fulfillment_status", "cancelled",
	  "channel_updated_at"}},
	{"ActionRequested", {"action_id", "kind", "requester"}},
	{"ActionRejected", {"action_id", "kind", "reason"}},
	{"ActionSucceeded", {"action_id", "kind", "channel_ref"}},
	{"ActionFailed", {"action_id", "kind", "reason", "attempts"}},
};

/* Writes "key":value for x (if present), with a comma when needed. */
static void put_kv(wb_buf *b, bool *first, const char *k, json_t *x)
{
	if (!x)
		return;
	if (!*first)
		wb_buf_putc(b, ',');
	*first = false;
	wb_json_put_str(b, k, strlen(k));
	wb_buf_putc(b, ':');
	wb_json_write(b, x);
}

void wb_timeline_write(wb_buf *b, json_t *entry,
		       const struct wb_fold_info *info)
{
	static const char *const keep[] = {
		"version", "seq", "partition", "type", "event_id", "source",
		"source_time", "ingest_time", "recorded_at", NULL};
	bool first = true;
	wb_buf_putc(b, '{');
	for (const char *const *k = keep; *k; k++)
		put_kv(b, &first, *k, json_object_get(entry, *k));
	if (!jnull(entry, "correlation_id"))
		put_kv(b, &first, "correlation_id",
		       json_object_get(entry, "correlation_id"));
	if (info && info->stale)
		put_kv(b, &first, "applied", json_false());
	const char *type = jstr(entry, "type");
	json_t *p = json_object_get(entry, "payload");
	wb_buf_append(b, ",\"facts\":{", 10);
	bool ffirst = true;
	for (size_t i = 0; type && i < sizeof(facts) / sizeof(facts[0]); i++) {
		if (strcmp(facts[i].type, type) != 0)
			continue;
		for (int j = 0; j < 6 && facts[i].fields[j]; j++)
			if (!jnull(p, facts[i].fields[j]))
				put_kv(b, &ffirst, facts[i].fields[j],
				       json_object_get(p, facts[i].fields[j]));
		break;
	}
	if (streq(type, "OrderPlaced")) {
		put_kv(b, &ffirst, "total",
		       json_object_get(json_object_get(p, "totals"), "total"));
		json_t *n = json_integer((json_int_t)json_array_size(
			json_object_get(p, "lines")));
		put_kv(b, &ffirst, "lines", n);
		json_decref(n);
	} else if (streq(type, "OrderUpdated")) {
		json_t *changed = json_array();
		const char *k;
		json_t *x;
		json_object_foreach(p, k, x) if (!json_is_null(x))
			json_array_append_new(changed, json_string(k));
		put_kv(b, &ffirst, "changed", changed);
		json_decref(changed);
	} else if (streq(type, "ShippingAddressChanged")) {
		json_t *a = json_object_get(p, "address");
		static const char *const ak[] = {"city", "postal_code",
						 "country_code", NULL};
		for (const char *const *k = ak; *k; k++)
			if (!jnull(a, *k))
				put_kv(b, &ffirst, *k, json_object_get(a, *k));
	}
	wb_buf_append(b, "}}", 2);
}

json_t *wb_timeline_entry(json_t *entry, const struct wb_fold_info *info)
{
	wb_buf b;
	wb_buf_init(&b);
	wb_timeline_write(&b, entry, info);
	json_t *t = json_loadb((const char *)b.data, b.len, 0, NULL);
	wb_buf_finish(&b);
	return t;
}

/* ---- presentation --------------------------------------------------------- */

#define DAY_MS (24LL * 3600 * 1000)

static const char *line_key(json_t *line)
{
	const char *k = jstr(line, "line_id");
	return k ? k : jstr(line, "sku");
}

/* Quantity of the order's line with key k in a list of ItemQuantity. */
static int64_t qty_of(json_t *items, const char *k)
{
	int64_t n = 0;
	size_t i;
	json_t *it;
	json_array_foreach(items, i, it) {
		const char *ik = line_key(it);
		if (ik && k && strcmp(ik, k) == 0)
			n += jint(it, "quantity", 0);
	}
	return n;
}

static int fulfillment_rank(const char *s)
{
	if (streq(s, "fulfilled"))
		return 2;
	if (streq(s, "partially_fulfilled") || streq(s, "partial"))
		return 1;
	return 0;
}

static const char *const fulfillment_names[] = {
	"unfulfilled", "partially_fulfilled", "fulfilled"};

/* The fulfillment status: the most fulfilled of what the fulfillments
 * cover and what the latest channel snapshot says. */
static int fulfillment_rank_of(json_t *view)
{
	json_t *lines = json_object_get(view, "lines");
	json_t *fs = json_object_get(view, "fulfillments");
	int rank = 0;
	if (json_array_size(fs)) {
		bool all = true;
		size_t i, j;
		json_t *l, *f;
		json_array_foreach(lines, i, l) {
			int64_t done = 0;
			json_array_foreach(fs, j, f)
				done += qty_of(json_object_get(f, "lines"),
					       line_key(l));
			if (done < jint(l, "quantity", 0))
				all = false;
		}
		rank = all ? 2 : 1;
	}
	int snap = fulfillment_rank(
		jstr(json_object_get(view, "snapshot"), "fulfillment_status"));
	return snap > rank ? snap : rank;
}

/* Lines with fulfilled and refunded quantities. */
static json_t *present_lines(json_t *view)
{
	json_t *lines = json_deep_copy(json_object_get(view, "lines"));
	json_t *fs = json_object_get(view, "fulfillments");
	json_t *refunds = json_object_get(view, "refunds");
	size_t i, j;
	json_t *l, *f, *r;
	json_array_foreach(lines, i, l) {
		int64_t done = 0, back = 0;
		json_array_foreach(fs, j, f)
			done += qty_of(json_object_get(f, "lines"),
				       line_key(l));
		json_array_foreach(refunds, j, r)
			back += qty_of(json_object_get(r, "lines"),
				       line_key(l));
		json_object_set_new(l, "fulfilled_quantity",
				    json_integer(done));
		json_object_set_new(l, "refunded_quantity",
				    json_integer(back));
	}
	return lines;
}

/* Refunded amounts, one Money per currency, sorted by currency. */
static json_t *refunded_totals(json_t *view)
{
	json_t *by = json_object();
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(view, "refunds"), i, r) {
		json_t *m = json_object_get(r, "amount");
		const char *cur = jstr(m, "currency");
		if (!cur)
			continue;
		json_int_t prev = json_integer_value(json_object_get(by, cur));
		json_object_set_new(by, cur,
				    json_integer(prev + json_integer_value(
						 json_object_get(m, "amount"))));
	}
	json_t *out = json_array();
	const char **keys = wb_xcalloc(json_object_size(by) + 1, sizeof(char *));
	size_t n = 0;
	const char *k;
	json_t *x;
	json_object_foreach(by, k, x) keys[n++] = k;
	for (size_t a = 1; a < n; a++) /* few currencies: insertion sort */
		for (size_t b = a; b > 0 && strcmp(keys[b - 1], keys[b]) > 0; b--) {
			const char *t = keys[b];
			keys[b] = keys[b - 1];
			keys[b - 1] = t;
		}
	for (size_t a = 0; a < n; a++)
		json_array_append_new(out, json_pack("{s:O,s:s}", "amount",
						     json_object_get(by, keys[a]),
						     "currency", keys[a]));
	free(keys);
	json_decref(by);
	return out;
}

/* Refunded in full: the channel says so, or the refunds in the order's
 * currency reach its total. Amounts in other currencies never add up to
 * a total in this one. */
static bool fully_refunded(json_t *view)
{
	const char *pay = jstr(json_object_get(view, "payment"), "status");
	if (streq(pay, "refunded"))
		return true;
	json_t *total = json_object_get(json_object_get(view, "totals"),
					"total");
	const char *cur = jstr(total, "currency");
	int64_t amount = jint(total, "amount", 0);
	if (!cur || amount <= 0)
		return false;
	int64_t sum = 0;
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(view, "refunds"), i, r) {
		json_t *m = json_object_get(r, "amount");
		if (streq(jstr(m, "currency"), cur))
			sum += jint(m, "amount", 0);
	}
	return sum >= amount;
}

static bool return_open(json_t *r)
{
	const char *s = jstr(r, "status");
	return streq(s, "requested") || streq(s, "approved") ||
	       streq(s, "received");
}

static bool pending(json_t *view, const char *kind)
{
	size_t i;
	json_t *a;
	json_array_foreach(json_object_get(view, "actions"), i, a)
		if (streq(jstr(a, "status"), "requested") &&
		    (!kind || streq(jstr(a, "kind"), kind)))
			return true;
	return false;
}

/* Progress of one shipment for the customer. */
static int ship_rank(const char *s, const char **name)
{
	static const struct {
		const char *status, *customer;
		int rank;
	} map[] = {
		{"label_printed", "shipped", 1},
		{"label_purchased", "shipped", 1},
		{"confirmed", "shipped", 1},
		{"other", "shipped", 1},
		{"ready_for_pickup", "ready_for_pickup", 2},
		{"picked_up", "in_transit", 3},
		{"in_transit", "in_transit", 3},
		{"delayed", "delayed", 3},
		{"out_for_delivery", "out_for_delivery", 4},
		{"delivered", "delivered", 5},
	};
	for (size_t i = 0; s && i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(map[i].status, s) == 0) {
			*name = map[i].customer;
			return map[i].rank;
		}
	*name = "shipped";
	return 1; /* fulfilled, no carrier news yet */
}

static bool ship_problem(const char *s)
{
	return streq(s, "failure") || streq(s, "attempted_delivery") ||
	       streq(s, "returned_to_sender");
}

/* A POS sale with nothing to ship was handed over at the till. */
static bool handed_over(json_t *view)
{
	return streq(jstr(view, "channel"), "pos") &&
	       json_array_size(json_object_get(view, "shipments")) == 0 &&
	       json_array_size(json_object_get(view, "fulfillments")) == 0 &&
	       !jnull(view, "placed_at");
}

/* When the order reached the customer (latest delivered shipment), or -1. */
static int64_t delivered_at(json_t *view)
{
	if (handed_over(view))
		return jint(view, "placed_at", -1);
	int64_t at = -1;
	size_t i;
	json_t *s;
	json_array_foreach(json_object_get(view, "shipments"), i, s)
		if (streq(jstr(s, "status"), "delivered") &&
		    jint(s, "delivered_at", -1) > at)
			at = jint(s, "delivered_at", -1);
	return at;
}

static const char *customer_status(json_t *view, const char *fstatus,
				   bool refunded)
{
	json_t *ships = json_object_get(view, "shipments");
	if (streq(jstr(json_object_get(view, "order"), "status"), "cancelled"))
		return "cancelled";
	if (refunded)
		return "refunded";
	size_t i;
	json_t *x;
	json_array_foreach(json_object_get(view, "returns"), i, x)
		if (return_open(x))
			return "return_in_progress";
	if (handed_over(view))
		return "delivered";
	bool partial = streq(fstatus, "partially_fulfilled");
	if (json_array_size(ships) == 0) {
		if (streq(fstatus, "unfulfilled"))
			return "processing";
		return partial ? "partially_shipped" : "shipped";
	}
	int least = 99;
	const char *least_name = "shipped";
	json_array_foreach(ships, i, x) {
		const char *st = jstr(x, "status");
		if (ship_problem(st))
			return "delivery_problem";
		const char *name;
		int r = ship_rank(st, &name);
		if (r < least) {
			least = r;
			least_name = name;
		}
	}
	if (least == 5)
		return partial ? "partially_delivered" : "delivered";
	if (partial && least == 1)
		return "partially_shipped";
	return least_name;
}

static json_t *verdict(bool allowed, const char *reason)
{
	return json_pack("{s:b,s:s}", "allowed", allowed, "reason", reason);
}

json_t *wb_order_present(json_t *view, int64_t now_ms, int return_window_days)
{
	json_t *out = json_object();
	const char *k;
	json_t *x;
	json_object_foreach(view, k, x) if (k[0] != '_')
		json_object_set(out, k, x);

	const char *fstatus = fulfillment_names[fulfillment_rank_of(view)];
	json_object_set_new(out, "lines", present_lines(view));
	json_t *ful = json_pack(
		"{s:s,s:O,s:O}", "status", fstatus, "fulfillments",
		nn(json_object_get(view, "fulfillments")), "updated_at",
		nn(json_object_get(json_object_get(view, "_t"),
				   "fulfillment")));
	json_object_del(out, "fulfillments");
	json_object_set_new(out, "fulfillment", ful);
	json_object_set_new(out, "refunded", refunded_totals(view));
	bool full_refund = fully_refunded(view);
	const char *cs = customer_status(view, fstatus, full_refund);
	json_object_set_new(out, "customer_status", json_string(cs));

	json_t *pend = json_array();
	size_t i;
	json_t *a;
	json_array_foreach(json_object_get(view, "actions"), i, a)
		if (streq(jstr(a, "status"), "requested"))
			json_array_append(pend, a);
	json_object_set_new(out, "pending_actions", pend);

	/* eligibility */
	const char *ostatus = jstr(json_object_get(view, "order"), "status");
	bool cancelled = streq(ostatus, "cancelled");
	bool placed = ostatus != NULL;
	bool shipped_any = json_array_size(json_object_get(view, "shipments")) ||
			   !streq(fstatus, "unfulfilled") || handed_over(view);
	json_t *el = json_object();
	if (cancelled)
		json_object_set_new(el, "can_cancel",
				    verdict(false, "already_cancelled"));
	else if (shipped_any)
		json_object_set_new(el, "can_cancel",
				    verdict(false, handed_over(view)
							   ? "already_fulfilled"
							   : "already_shipped"));
	else if (!placed)
		json_object_set_new(el, "can_cancel",
				    verdict(false, "order_not_placed"));
	else if (pending(view, "cancel"))
		json_object_set_new(el, "can_cancel",
				    verdict(false, "cancel_pending"));
	else
		json_object_set_new(el, "can_cancel",
				    verdict(true, "not_yet_shipped"));

	if (cancelled)
		json_object_set_new(el, "can_change_address",
				    verdict(false, "order_cancelled"));
	else if (shipped_any)
		json_object_set_new(el, "can_change_address",
				    verdict(false, "already_fulfilled"));
	else if (!placed)
		json_object_set_new(el, "can_change_address",
				    verdict(false, "order_not_placed"));
	else if (pending(view, "change_address"))
		json_object_set_new(el, "can_change_address",
				    verdict(false, "change_pending"));
	else
		json_object_set_new(el, "can_change_address",
				    verdict(true, "not_yet_fulfilled"));

	int64_t deliv = delivered_at(view);
	json_t *ret;
	bool open_return = false;
	json_array_foreach(json_object_get(view, "returns"), i, a)
		if (return_open(a))
			open_return = true;
	if (cancelled)
		ret = verdict(false, "order_cancelled");
	else if (return_window_days <= 0)
		ret = verdict(false, "returns_not_accepted");
	else if (deliv < 0)
		ret = verdict(false, "not_delivered");
	else if (full_refund)
		ret = verdict(false, "already_refunded");
	else if (open_return)
		ret = verdict(false, "return_in_progress");
	else if (pending(view, "request_return"))
		ret = verdict(false, "return_pending");
	else if (now_ms > deliv + (int64_t)return_window_days * DAY_MS)
		ret = verdict(false, "return_window_expired");
	else
		ret = verdict(true, "within_return_window");
	json_object_set_new(ret, "window_days",
			    json_integer(return_window_days > 0
						 ? return_window_days
						 : 0));
	json_object_set_new(ret, "window_ends_at",
			    deliv >= 0 && return_window_days > 0
				    ? json_integer(deliv +
						   (int64_t)return_window_days *
							   DAY_MS)
				    : json_null());
	json_object_set_new(el, "can_return", ret);
	json_object_set_new(out, "eligibility", el);
	json_object_set_new(out, "delivered_at",
			    deliv >= 0 ? json_integer(deliv) : json_null());
	return out;
}

/* ---- OrderStatus ------------------------------------------------------- */

/* What an OrderStatus record says about a stored view. */
struct status_facts {
	json_t *view;
	const char *customer_status, *order_status, *fulfillment_status;
	json_t *name, *payment_status, *total; /* NULL = null */
};

static void status_facts(json_t *view, struct status_facts *f)
{
	f->view = view;
	f->fulfillment_status = fulfillment_names[fulfillment_rank_of(view)];
	f->customer_status = customer_status(view, f->fulfillment_status,
					     fully_refunded(view));
	const char *os = jstr(json_object_get(view, "order"), "status");
	f->order_status = os ? os : "unknown";
	f->name = json_is_string(json_object_get(view, "name"))
			  ? json_object_get(view, "name")
			  : NULL;
	json_t *ps = json_object_get(json_object_get(view, "payment"),
				     "status");
	f->payment_status = json_is_string(ps) ? ps : NULL;
	json_t *t = json_object_get(json_object_get(view, "totals"), "total");
	f->total = json_is_object(t) ? t : NULL;
}

json_t *wb_order_status(json_t *view, int64_t now_ms, int return_window_days)
{
	(void)now_ms; /* nothing in OrderStatus depends on the clock */
	(void)return_window_days;
	struct status_facts f;
	status_facts(view, &f);
	json_t *tns = json_array();
	size_t i;
	json_t *s;
	json_array_foreach(json_object_get(view, "shipments"), i, s)
		json_array_append(tns, json_object_get(s, "tracking_number"));
	return json_pack(
		"{s:O,s:O,s:O,s:O,s:I,s:I,s:I,s:s,s:s,s:O,s:s,s:o,s:O,s:I}",
		"order_id", nn(json_object_get(view, "order_id")), "merchant",
		nn(json_object_get(view, "merchant")), "channel",
		nn(json_object_get(view, "channel")), "name", nn(f.name),
		"version", (json_int_t)jint(view, "version", 0),
		"ledger_partition", (json_int_t)jint(view, "partition", 0),
		"ledger_seq", (json_int_t)jint(view, "seq", 0),
		"customer_status", f.customer_status, "order_status",
		f.order_status, "payment_status", nn(f.payment_status),
		"fulfillment_status", f.fulfillment_status, "tracking_numbers",
		tns, "total", nn(f.total), "updated_at",
		(json_int_t)jint(view, "updated_at", -1));
}

static void avro_str(wb_buf *b, const char *s)
{
	if (!s)
		s = "";
	wb_avro_put_bytes(b, s, strlen(s));
}

/* The Avro body of OrderStatus, written field by field in the schema's
 * order (schemas/OrderStatus.avsc); a unit test checks it against the
 * generic codec. */
void wb_order_status_encode(json_t *view, wb_buf *out)
{
	struct status_facts f;
	status_facts(view, &f);
	avro_str(out, jstr(view, "order_id"));
	avro_str(out, jstr(view, "merchant"));
	avro_str(out, jstr(view, "channel"));
	wb_avro_put_long(out, f.name ? 1 : 0);
	if (f.name)
		avro_str(out, json_string_value(f.name));
	wb_avro_put_long(out, jint(view, "version", 0));
	wb_avro_put_long(out, jint(view, "partition", 0));
	wb_avro_put_long(out, jint(view, "seq", 0));
	avro_str(out, f.customer_status);
	avro_str(out, f.order_status);
	wb_avro_put_long(out, f.payment_status ? 1 : 0);
	if (f.payment_status)
		avro_str(out, json_string_value(f.payment_status));
	avro_str(out, f.fulfillment_status);
	json_t *ships = json_object_get(view, "shipments");
	size_t n = json_array_size(ships);
	if (n) {
		wb_avro_put_long(out, (int64_t)n);
		size_t i;
		json_t *s;
		json_array_foreach(ships, i, s)
			avro_str(out, jstr(s, "tracking_number"));
	}
	wb_avro_put_long(out, 0);
	wb_avro_put_long(out, f.total ? 1 : 0);
	if (f.total) {
		wb_avro_put_long(out, jint(f.total, "amount", 0));
		avro_str(out, jstr(f.total, "currency"));
	}
	wb_avro_put_long(out, jint(view, "updated_at", -1));
}

/* ---- lookups ------------------------------------------------------------- */

bool wb_lookup_normalise(enum wb_lookup kind, const char *in, wb_buf *out)
{
	wb_buf_reset(out);
	if (!in)
		return false;
	while (isspace((unsigned char)*in))
		in++;
	size_t n = strlen(in);
	while (n && isspace((unsigned char)in[n - 1]))
		n--;
	if (kind == WB_LOOKUP_NAME && n && in[0] == '#') {
		in++;
		n--;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)in[i];
		if (ch == 0)
			break;
		if (kind == WB_LOOKUP_TRACKING && isspace(ch))
			continue; /* "1Z 999 AA1" == "1Z999AA1" */
		wb_buf_putc(out, kind == WB_LOOKUP_CHANNEL_ORDER_ID
					 ? ch
					 : (uint8_t)tolower(ch));
	}
	wb_buf_putc(out, 0);
	out->len--;
	return out->len > 0;
}

void wb_view_lookups(json_t *view,
		     void (*fn)(enum wb_lookup kind, const char *value,
				void *ud),
		     void *ud)
{
	wb_buf b;
	wb_buf_init(&b);
	if (wb_lookup_normalise(WB_LOOKUP_EMAIL, jstr(view, "email"), &b))
		fn(WB_LOOKUP_EMAIL, (const char *)b.data, ud);
	if (wb_lookup_normalise(WB_LOOKUP_NAME, jstr(view, "name"), &b))
		fn(WB_LOOKUP_NAME, (const char *)b.data, ud);
	if (wb_lookup_normalise(WB_LOOKUP_CHANNEL_ORDER_ID,
				jstr(view, "channel_order_id"), &b))
		fn(WB_LOOKUP_CHANNEL_ORDER_ID, (const char *)b.data, ud);
	size_t i;
	json_t *s;
	json_array_foreach(json_object_get(view, "shipments"), i, s)
		if (wb_lookup_normalise(WB_LOOKUP_TRACKING,
					jstr(s, "tracking_number"), &b))
			fn(WB_LOOKUP_TRACKING, (const char *)b.data, ud);
	wb_buf_finish(&b);
}

/* ---- return windows -------------------------------------------------------- */

bool wb_return_windows_parse(const char *list,
			     void (*fn)(const char *merchant, size_t n,
					int days, void *ud),
			     void *ud, char *msg, size_t msglen)
{
	const char *p = list;
	while (p && *p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		while (len && isspace((unsigned char)*p)) {
			p++;
			len--;
		}
		if (!eq || eq == p) {
			wb_fail(msg, msglen, WB_ECONFIG,
				"return windows: expected merchant=days in "
				"'%.*s'",
				(int)len, p);
			return false;
		}
		size_t mlen = (size_t)(eq - p);
		while (mlen && isspace((unsigned char)p[mlen - 1]))
			mlen--;
		char num[32];
		size_t nlen = len - (size_t)(eq + 1 - p);
		if (nlen >= sizeof(num)) {
			wb_fail(msg, msglen, WB_ECONFIG,
				"return windows: bad days for '%.*s'",
				(int)mlen, p);
			return false;
		}
		memcpy(num, eq + 1, nlen);
		num[nlen] = 0;
		char *s = num;
		while (isspace((unsigned char)*s))
			s++;
		size_t sl = strlen(s);
		while (sl && isspace((unsigned char)s[sl - 1]))
			s[--sl] = 0;
		int64_t days;
		if (!wb_parse_i64(s, -1, 3650, &days)) {
			wb_fail(msg, msglen, WB_ECONFIG,
				"return windows: days for '%.*s' must be an "
				"integer from -1 to 3650, got '%s'",
				(int)mlen, p, s);
			return false;
		}
		if (fn)
			fn(p, mlen, (int)days, ud);
		p = end ? end + 1 : NULL;
	}
	return true;
}
