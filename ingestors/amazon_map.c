/*
 * amazon_map.c — what an Amazon order means in Waybill's event model: one
 * order of an SP-API Orders v0 getOrders page plus its getOrderItems items
 * into canonical OrderEvent JSON objects. Pure: no I/O, no clock (the poll
 * time comes in), so the same answer from Amazon always gives the same
 * events, byte for byte, and the fuzz target and unit tests drive it
 * directly.
 *
 * Amazon gives the order's current state, not its history, so each event
 * is a fact derived from that state with an event_id made of Amazon's own
 * facts (order id, status, shipped count, LastUpdateDate). Polling the same
 * state twice gives the same ids and the ledger drops the repeats; a new
 * state gives the events that are new. The table (README "Channels"):
 *
 *   OrderStatus          events (besides the snapshot)
 *   PendingAvailability  OrderPlaced, PaymentStatusChanged pending
 *   Pending              OrderPlaced, PaymentStatusChanged pending
 *   Unshipped            OrderPlaced, OrderUpdated (prices), Payment authorized
 *   PartiallyShipped     ... Payment authorized, FulfillmentCreated (shipped)
 *   Shipped              ... Payment paid, FulfillmentCreated (all shipped)
 *   InvoiceUnconfirmed   as Shipped
 *   Canceled             OrderPlaced, Payment voided, OrderCancelled
 *   Unfulfillable        OrderPlaced, OrderCancelled (inventory)
 *
 * plus ShipmentStatusChanged for Easy Ship orders and one
 * ChannelSnapshotObserved per order and poll.
 *
 * Money: Amazon writes decimal strings; they become minor units through
 * wb_money_parse (exact or refused). An event that needs a price Amazon
 * wrote with no exact value (e.g. "25.99" JPY) is left out with the reason
 * in `problems`, so the caller can put the order on the DLQ while the
 * other events still flow.
 */
#include "wb_ingest.h"

#include <stdlib.h>
#include <string.h>

#define CHANNEL "amazon"
/* Longest AmazonOrderId accepted (they are 19 characters, 3-7-7). */
#define MAX_ORDER_ID 64
/* ISO 4217's code for "no currency": Amazon withholds prices while an
 * order is Pending, and a total must still name a currency. */
#define NO_CURRENCY "XXX"

struct status_row {
	const char *amazon;
	const char *payment;  /* PaymentStatus symbol, or NULL for none */
	bool priced;          /* getOrderItems returns prices */
	bool shipped;         /* FulfillmentCreated from shipped quantities */
	const char *cancel;   /* CancelReason, or NULL */
};

static const struct status_row statuses[] = {
	{"PendingAvailability", "pending", false, false, NULL},
	{"Pending", "pending", false, false, NULL},
	{"Unshipped", "authorized", true, false, NULL},
	{"PartiallyShipped", "authorized", true, true, NULL},
	{"Shipped", "paid", true, true, NULL},
	{"InvoiceUnconfirmed", "paid", true, true, NULL},
	{"Canceled", "voided", false, false, "other"},
	{"Unfulfillable", NULL, false, false, "inventory"},
};

/* EasyShipShipmentStatus -> ShipmentStatus. */
static const struct {
	const char *amazon, *status;
} easyship[] = {
	{"PendingSchedule", "other"},
	{"PendingPickUp", "label_printed"},
	{"PendingDropOff", "label_printed"},
	{"LabelCanceled", "other"},
	{"PickedUp", "picked_up"},
	{"DroppedOff", "in_transit"},
	{"AtOriginFC", "in_transit"},
	{"AtDestinationFC", "in_transit"},
	{"OutForDelivery", "out_for_delivery"},
	{"Delivered", "delivered"},
	{"RejectedByBuyer", "failure"},
	{"Undeliverable", "failure"},
	{"ReturningToSeller", "returned_to_sender"},
	{"ReturnedToSeller", "returned_to_sender"},
	{"Lost", "failure"},
	{"Damaged", "failure"},
};

static const char *str_of(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* A non-negative integer field, also when Amazon quotes it ("1"). */
static bool int_of(const json_t *o, const char *key, int64_t *out)
{
	json_t *v = json_object_get(o, key);
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return *out >= 0;
	}
	if (json_is_string(v))
		return wb_parse_i64(json_string_value(v), 0, INT64_MAX, out);
	return false;
}

/* "true"/true, as Amazon writes booleans both ways. */
static bool bool_of(const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (json_is_boolean(v))
		return json_is_true(v);
	const char *s = json_string_value(v);
	return s && strcmp(s, "true") == 0;
}

wb_err wb_amazon_parse_time(const char *s, int64_t *out)
{
	if (!s)
		return WB_EPARSE;
	/* Epoch seconds as the sandbox writes them: "1.569521782042E9".
	 * Digits are shifted, never multiplied through a double. */
	size_t n = strlen(s);
	if (n > 0 && n < 40 && s[0] >= '0' && s[0] <= '9' &&
	    strpbrk(s, "eE.") && !strpbrk(s, "-:T ")) {
		char digits[40];
		size_t nd = 0, i = 0;
		long point = -1;
		for (; i < n && ((s[i] >= '0' && s[i] <= '9') || s[i] == '.');
		     i++) {
			if (s[i] == '.') {
				if (point >= 0)
					return WB_EPARSE;
				point = (long)nd;
			} else {
				digits[nd++] = s[i];
			}
		}
		if (point < 0)
			point = (long)nd;
		long e = 0;
		if (i < n && (s[i] == 'e' || s[i] == 'E')) {
			int64_t ev;
			if (!wb_parse_i64(s + i + 1, -30, 30, &ev))
				return WB_EPARSE;
			e = (long)ev;
			i = n;
		}
		if (i != n || nd == 0)
			return WB_EPARSE;
		/* seconds * 1000: the point moves three more places. */
		long int_digits = point + e + 3;
		int64_t ms = 0;
		for (long k = 0; k < int_digits; k++) {
			int d = k < (long)nd ? digits[k] - '0' : 0;
			if (ms > (INT64_MAX / 2 - d) / 10)
				return WB_EPARSE;
			ms = ms * 10 + d;
		}
		*out = ms;
		return WB_OK;
	}
	return wb_parse_time_ms(s, out) ? WB_OK : WB_EPARSE;
}

/* A time of the order, or fallback when Amazon left it out or wrote it in
 * a way no clock reads (negative, garbage): an odd date must not lose the
 * order. */
static int64_t time_of(const json_t *o, const char *key, int64_t fallback)
{
	int64_t t;
	if (wb_amazon_parse_time(str_of(o, key), &t) == WB_OK && t >= 0)
		return t;
	return fallback;
}

static json_t *money_json(int64_t amount, const char *ccy)
{
	return json_pack("{s:I,s:s}", "amount", (json_int_t)amount, "currency",
			 ccy);
}

/* Amazon Money {"CurrencyCode","Amount"} into minor units. Absent is
 * WB_ENOTFOUND; present but unusable is an error with the reason. */
static wb_err money_of(const json_t *o, const char *key, int64_t *amount,
		       const char **ccy, char *msg, size_t msglen)
{
	json_t *m = json_object_get(o, key);
	if (!m || json_is_null(m))
		return WB_ENOTFOUND;
	const char *c = str_of(m, "CurrencyCode");
	const char *a = str_of(m, "Amount");
	if (!json_is_object(m) || !c || !a)
		return wb_fail(msg, msglen, WB_ESCHEMA,
			       "%s: expected {\"CurrencyCode\", \"Amount\"} "
			       "strings",
			       key);
	char sub[256];
	if (wb_money_parse(a, strlen(a), c, strlen(c), amount, sub,
			   sizeof(sub)) != WB_OK)
		return wb_fail(msg, msglen, WB_EPARSE, "%s: %s", key, sub);
	*ccy = c;
	return WB_OK;
}

struct ctx {
	const struct wb_amazon_map_opts *opts;
	const json_t *order;
	const json_t *items; /* array, possibly empty */
	bool have_items;     /* getOrderItems answered */
	const char *id;      /* AmazonOrderId */
	const struct status_row *st;
	const char *status;
	char order_id[MAX_ORDER_ID + 16];
	int64_t purchased, updated;
	const char *currency;
	bool has_total;
	int64_t total;
	json_t *events, *problems;
};

/* a + sep + b as a JSON string, however long (no truncation that could
 * cut a UTF-8 sequence in half). */
static json_t *joined(const char *a, const char *sep, const char *b)
{
	size_t na = strlen(a), ns = strlen(sep), nb = strlen(b);
	char *s = wb_xmalloc(na + ns + nb + 1);
	memcpy(s, a, na);
	memcpy(s + na, sep, ns);
	memcpy(s + na + ns, b, nb + 1);
	json_t *j = json_string(s);
	free(s);
	return j;
}

static json_t *envelope(struct ctx *c, const char *type, const char *suffix,
			int64_t source_time, json_t *payload)
{
	char eid[256];
	snprintf(eid, sizeof(eid), "amazon:%s:%s", c->id, suffix);
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:s,s:o}", "event_id",
			 eid, "merchant", c->opts->merchant, "order_id",
			 c->order_id, "channel", CHANNEL, "type", type,
			 "source_time", (json_int_t)source_time, "ingest_time",
			 (json_int_t)c->opts->observed_ms, "source",
			 c->opts->source, "payload", payload);
}

static void problem(struct ctx *c, const char *type, const char *why)
{
	json_array_append_new(c->problems, joined(type, ": ", why));
}

/* json_pack fails only on what cannot be in JSON (it never should here);
 * the event is then reported, not dropped in silence. */
static void emit(struct ctx *c, json_t *ev)
{
	if (!ev)
		problem(c, "event", "could not be built (internal error)");
	else
		json_array_append_new(c->events, ev);
}

static json_t *opt_str(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

static json_t *address_json(const json_t *a)
{
	if (!json_is_object(a))
		return json_null();
	/* AddressLine3 has no field of its own: it joins line 2. */
	const char *l2 = str_of(a, "AddressLine2"), *l3 = str_of(a, "AddressLine3");
	json_t *line2 = opt_str(l2);
	if (l3 && *l3) {
		json_decref(line2);
		line2 = l2 && *l2 ? joined(l2, ", ", l3) : json_string(l3);
	}
	return json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "name",
			 opt_str(str_of(a, "Name")), "company",
			 opt_str(str_of(a, "CompanyName")), "line1",
			 opt_str(str_of(a, "AddressLine1")), "line2",
			 line2, "city", opt_str(str_of(a, "City")),
			 "region", opt_str(str_of(a, "StateOrRegion")),
			 "postal_code", opt_str(str_of(a, "PostalCode")),
			 "country_code", opt_str(str_of(a, "CountryCode")),
			 "phone", opt_str(str_of(a, "Phone")));
}

/* Sums of one money field over the items, in the order's currency; false
 * (null in the event) when an item has it in another currency, as the
 * getOrderItems example does with a GBP gift wrap on JPY items. */
struct sum {
	int64_t v;
	bool any, mixed;
};

static wb_err sum_add(struct sum *s, const json_t *item, const char *key,
		      const char *ccy, char *msg, size_t msglen)
{
	int64_t a;
	const char *c;
	wb_err rc = money_of(item, key, &a, &c, msg, msglen);
	if (rc == WB_ENOTFOUND)
		return WB_OK;
	if (rc)
		return rc;
	if (strcmp(c, ccy) != 0) {
		s->mixed = true;
		return WB_OK;
	}
	if (__builtin_add_overflow(s->v, a, &s->v))
		return wb_fail(msg, msglen, WB_EPARSE, "%s: sum overflows",
			       key);
	s->any = true;
	return WB_OK;
}

static json_t *sum_json(const struct sum *s, const char *ccy)
{
	return s->any && !s->mixed ? money_json(s->v, ccy) : json_null();
}

/* One LineItem per item, or two when Amazon's line price (ItemPrice is
 * price x quantity) does not divide evenly: q-r units at p and r at p+1
 * keep the sum exact. Prices withheld (Pending) are 0 in the order's
 * currency. */
static wb_err append_lines(struct ctx *c, json_t *lines, const json_t *item,
			   size_t idx, char *msg, size_t msglen)
{
	const char *line_id = str_of(item, "OrderItemId");
	const char *sku = str_of(item, "SellerSKU");
	const char *title = str_of(item, "Title");
	const char *asin = str_of(item, "ASIN");
	if (!line_id || !*line_id)
		return wb_fail(msg, msglen, WB_ESCHEMA,
			       "OrderItems[%zu]: no OrderItemId", idx);
	int64_t qty;
	if (!int_of(item, "QuantityOrdered", &qty) || qty > INT32_MAX)
		return wb_fail(msg, msglen, WB_ESCHEMA,
			       "OrderItems[%zu]: QuantityOrdered missing or "
			       "not a count",
			       idx);
	int64_t price = 0;
	const char *ccy = c->currency;
	char sub[300];
	wb_err rc = money_of(item, "ItemPrice", &price, &ccy, sub, sizeof(sub));
	if (rc && rc != WB_ENOTFOUND)
		return wb_fail(msg, msglen, rc, "OrderItems[%zu].%s", idx,
			       sub);
	if (price < 0)
		return wb_fail(msg, msglen, WB_EPARSE,
			       "OrderItems[%zu].ItemPrice: negative", idx);
	int64_t base = qty > 0 ? price / qty : price;
	int64_t rem = qty > 0 ? price % qty : 0;
	int64_t runs[2][2] = {{qty - rem, base}, {rem, base + 1}};
	for (int k = 0; k < 2; k++) {
		if (runs[k][0] == 0 && !(k == 0 && qty == 0))
			continue;
		json_array_append_new(
			lines,
			json_pack("{s:s,s:o,s:s,s:I,s:o}", "line_id", line_id,
				  "sku", opt_str(sku ? sku : asin), "title",
				  title ? title : asin ? asin : "",
				  "quantity", (json_int_t)runs[k][0],
				  "unit_price", money_json(runs[k][1], ccy)));
	}
	return WB_OK;
}

/* Lines and totals from the items; NULL with the reason when a price has
 * no exact value. */
static wb_err lines_and_totals(struct ctx *c, json_t **lines_out,
			       json_t **totals_out, char *msg, size_t msglen)
{
	json_t *lines = json_array();
	struct sum sub = {0}, ship = {0}, tax = {0}, disc = {0};
	wb_err rc = WB_OK;
	size_t i;
	json_t *item;
	json_array_foreach(c->items, i, item) {
		if (!json_is_object(item)) {
			rc = wb_fail(msg, msglen, WB_ESCHEMA,
				     "OrderItems[%zu]: not an object", i);
			break;
		}
		const char *ccy = c->currency;
		if ((rc = append_lines(c, lines, item, i, msg, msglen)) ||
		    (rc = sum_add(&sub, item, "ItemPrice", ccy, msg, msglen)) ||
		    (rc = sum_add(&ship, item, "ShippingPrice", ccy, msg,
				  msglen)) ||
		    (rc = sum_add(&tax, item, "ItemTax", ccy, msg, msglen)) ||
		    (rc = sum_add(&tax, item, "ShippingTax", ccy, msg,
				  msglen)) ||
		    (rc = sum_add(&disc, item, "PromotionDiscount", ccy, msg,
				  msglen)) ||
		    (rc = sum_add(&disc, item, "ShippingDiscount", ccy, msg,
				  msglen)))
			break;
	}
	if (rc) {
		json_decref(lines);
		return rc;
	}
	int64_t total = c->has_total ? c->total : 0;
	/* Without OrderTotal, the parts make the total when they are all
	 * known and in one currency. */
	if (!c->has_total && sub.any && !sub.mixed && !ship.mixed &&
	    !tax.mixed && !disc.mixed)
		total = sub.v + ship.v + tax.v - disc.v;
	*lines_out = lines;
	*totals_out = json_pack("{s:o,s:o,s:o,s:o,s:o}", "subtotal",
				sum_json(&sub, c->currency), "shipping",
				sum_json(&ship, c->currency), "tax",
				sum_json(&tax, c->currency), "discounts",
				sum_json(&disc, c->currency), "total",
				money_json(total, c->currency));
	return WB_OK;
}

static void order_placed(struct ctx *c)
{
	json_t *lines, *totals;
	char why[400];
	if (!c->have_items)
		snprintf(why, sizeof(why), "the order's items could not be "
			 "fetched (getOrderItems)");
	if (!c->have_items ||
	    lines_and_totals(c, &lines, &totals, why, sizeof(why)) != WB_OK) {
		problem(c, "OrderPlaced", why);
		if (c->st->priced)
			problem(c, "OrderUpdated", why);
		return;
	}
	const json_t *buyer = json_object_get(c->order, "BuyerInfo");
	json_t *payload = json_pack(
		"{s:s,s:o,s:n,s:s,s:o,s:o,s:o,s:I}", "name", c->id, "email",
		opt_str(str_of(buyer, "BuyerEmail")), "phone", "currency",
		c->currency, "totals", json_deep_copy(totals), "lines",
		json_deep_copy(lines), "shipping_address",
		address_json(json_object_get(c->order, "ShippingAddress")),
		"placed_at", (json_int_t)c->purchased);
	emit(c, envelope(c, "OrderPlaced", "placed", c->purchased, payload));
	/* Once Amazon shows prices: the first OrderPlaced may have been
	 * seen while they were withheld, and only the first one counts. */
	if (c->st->priced)
		emit(c, envelope(c, "OrderUpdated", "priced", c->updated,
				 json_pack("{s:n,s:n,s:n,s:O,s:O}", "email",
					   "phone", "note", "lines", lines,
					   "totals", totals)));
	json_decref(lines);
	json_decref(totals);
}

static void payment(struct ctx *c)
{
	if (!c->st->payment)
		return;
	char suffix[64];
	snprintf(suffix, sizeof(suffix), "payment:%s", c->st->payment);
	bool paid = strcmp(c->st->payment, "paid") == 0;
	json_t *amount = paid && c->has_total
				 ? money_json(c->total, c->currency)
				 : json_null();
	emit(c, envelope(c, "PaymentStatusChanged", suffix, c->updated,
			 json_pack("{s:s,s:o}", "status", c->st->payment,
				   "amount_paid", amount)));
}

/* Amazon's Orders API shows no shipments, only shipped quantities: one
 * fulfillment per order (id = AmazonOrderId) whose lines are what has
 * shipped so far. A later, larger count repeats FulfillmentCreated for the
 * same fulfillment_id (consumers keep the latest per id). */
static void fulfillment(struct ctx *c)
{
	if (!c->st->shipped)
		return;
	json_t *lines = json_array();
	int64_t shipped = 0;
	bool all = strcmp(c->status, "PartiallyShipped") != 0;
	size_t i;
	json_t *item;
	json_array_foreach(c->items, i, item) {
		/* Shipped means all of it, whatever QuantityShipped says */
		int64_t q;
		if (!(all && int_of(item, "QuantityOrdered", &q)) &&
		    !int_of(item, "QuantityShipped", &q))
			continue;
		if (q <= 0 || q > INT32_MAX || shipped > INT32_MAX)
			continue;
		shipped += q;
		const char *sku = str_of(item, "SellerSKU");
		json_array_append_new(
			lines, json_pack("{s:o,s:o,s:I}", "line_id",
					 opt_str(str_of(item, "OrderItemId")),
					 "sku", opt_str(sku), "quantity",
					 (json_int_t)q));
	}
	if (shipped == 0 &&
	    !int_of(c->order, "NumberOfItemsShipped", &shipped))
		shipped = 0;
	char suffix[64];
	snprintf(suffix, sizeof(suffix), "fulfillment:%lld",
		 (long long)shipped);
	emit(c, envelope(c, "FulfillmentCreated", suffix, c->updated,
			 json_pack("{s:s,s:o,s:n,s:[],s:[]}",
				   "fulfillment_id", c->id, "lines", lines,
				   "carrier", "tracking_numbers",
				   "tracking_urls")));
}

/* Easy Ship packages are carried by Amazon and have no carrier tracking
 * number in Orders v0: the Amazon order id stands in for it. */
static void easy_ship(struct ctx *c)
{
	const char *es = str_of(c->order, "EasyShipShipmentStatus");
	if (!es || !*es || strlen(es) > 64)
		return;
	const char *status = "other";
	for (size_t i = 0; i < sizeof(easyship) / sizeof(easyship[0]); i++)
		if (strcmp(easyship[i].amazon, es) == 0)
			status = easyship[i].status;
	char suffix[96];
	snprintf(suffix, sizeof(suffix), "easyship:%s", es);
	emit(c, envelope(c, "ShipmentStatusChanged", suffix, c->updated,
			 json_pack("{s:s,s:s,s:s,s:s,s:n,s:n,s:n}",
				   "fulfillment_id", c->id, "tracking_number",
				   c->id, "carrier", "Amazon Easy Ship",
				   "status", status, "carrier_time",
				   "location", "estimated_delivery")));
}

static void cancelled(struct ctx *c)
{
	if (!c->st->cancel)
		return;
	const char *reason = c->st->cancel;
	json_t *note = joined("Amazon OrderStatus", " ", c->status);
	/* A buyer's cancel request on any item makes it the customer's. */
	if (strcmp(c->status, "Canceled") == 0) {
		size_t i;
		json_t *item;
		json_array_foreach(c->items, i, item) {
			const json_t *b =
				json_object_get(item, "BuyerRequestedCancel");
			if (bool_of(b, "IsBuyerRequestedCancel")) {
				reason = "customer";
				const char *why = str_of(b, "BuyerCancelReason");
				json_decref(note);
				note = joined("buyer requested cancel",
					      why && *why ? ": " : "",
					      why ? why : "");
				break;
			}
		}
	}
	emit(c, envelope(c, "OrderCancelled", "cancelled", c->updated,
			 json_pack("{s:s,s:I,s:o}", "reason", reason,
				   "cancelled_at", (json_int_t)c->updated,
				   "note", note)));
}

static void snapshot(struct ctx *c)
{
	char suffix[64];
	snprintf(suffix, sizeof(suffix), "snapshot:%lld",
		 (long long)c->updated);
	json_t *payload = json_pack(
		"{s:I,s:I,s:o,s:s,s:b,s:o,s:[]}", "observed_at",
		(json_int_t)c->opts->observed_ms, "channel_updated_at",
		(json_int_t)c->updated, "financial_status",
		opt_str(c->st->payment), "fulfillment_status", c->status,
		"cancelled", c->st->cancel != NULL, "total",
		c->has_total ? money_json(c->total, c->currency) : json_null(),
		"tracking_numbers");
	emit(c, envelope(c, "ChannelSnapshotObserved", suffix, c->updated,
			 payload));
}

static bool id_ok(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > MAX_ORDER_ID)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)id[i] <= ' ' || (unsigned char)id[i] >= 0x7f)
			return false;
	return true;
}

wb_err wb_amazon_map_order(const json_t *order, const json_t *items,
			   const struct wb_amazon_map_opts *opts,
			   json_t *events, json_t *problems, char *msg,
			   size_t msglen)
{
	if (!json_is_object(order))
		return wb_fail(msg, msglen, WB_ESCHEMA,
			       "order: not a JSON object");
	struct ctx c = {.opts = opts, .order = order, .events = events,
			.problems = problems};
	c.id = str_of(order, "AmazonOrderId");
	if (!c.id || !id_ok(c.id))
		return wb_fail(msg, msglen, WB_ESCHEMA,
			       "AmazonOrderId: missing, empty, over %d "
			       "characters or holding spaces/control "
			       "characters",
			       MAX_ORDER_ID);
	c.status = str_of(order, "OrderStatus");
	for (size_t i = 0; c.status && i < sizeof(statuses) / sizeof(*statuses);
	     i++)
		if (strcmp(statuses[i].amazon, c.status) == 0)
			c.st = &statuses[i];
	if (!c.st)
		return wb_fail(msg, msglen, WB_ESCHEMA,
			       "order %s: OrderStatus %s%.64s%s is not one "
			       "Waybill knows",
			       c.id, c.status ? "'" : "",
			       c.status ? c.status : "missing",
			       c.status ? "'" : "");
	if (items && !json_is_array(items))
		return wb_fail(msg, msglen, WB_ESCHEMA,
			       "order %s: OrderItems is not an array", c.id);
	json_t *no_items = json_array();
	c.items = items ? items : no_items;
	c.have_items = items != NULL;
	snprintf(c.order_id, sizeof(c.order_id), "amazon:%s", c.id);
	/* Times: LastUpdateDate for what changed, PurchaseDate for the
	 * placing; either stands in for the other, the poll time for both. */
	c.updated = time_of(order, "LastUpdateDate",
			    time_of(order, "PurchaseDate", opts->observed_ms));
	c.purchased = time_of(order, "PurchaseDate", c.updated);

	/* Currency: the order total's, else the first priced item's. */
	char why[300];
	const char *ccy = NULL;
	wb_err rc = money_of(order, "OrderTotal", &c.total, &ccy, why,
			     sizeof(why));
	if (rc == WB_OK) {
		c.has_total = true;
	} else if (rc != WB_ENOTFOUND) {
		problem(&c, "OrderTotal", why);
		ccy = NULL;
	}
	for (size_t i = 0; !ccy && i < json_array_size(c.items); i++) {
		const json_t *p =
			json_object_get(json_array_get(c.items, i), "ItemPrice");
		const char *ic = str_of(p, "CurrencyCode");
		if (ic && wb_currency_exponent(ic, strlen(ic)) >= 0)
			ccy = ic;
	}
	c.currency = ccy ? ccy : NO_CURRENCY;

	order_placed(&c);
	payment(&c);
	fulfillment(&c);
	easy_ship(&c);
	cancelled(&c);
	snapshot(&c);
	json_decref(no_items);
	return WB_OK;
}
