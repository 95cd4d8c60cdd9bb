/*
 * test_projector_fold.c — the projector's fold and presentation, without
 * a store: the effect of every event type, out-of-order and late data per
 * facet, customer_status, eligibility with reasons and the return window,
 * pending actions, refunds in several currencies, timeline records,
 * lookups and OrderStatus records (checked to encode with the Avro codec).
 */
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "projector_internal.h"
#include "wb_schema.h"

#define DAY (24LL * 3600 * 1000)
#define T0 1767225600000LL /* 2026-01-01 */

static int64_t version;

/* A ledger entry of order oid: type at source time t with payload (JSON
 * text). */
static json_t *entry(const char *oid, const char *type, int64_t t,
		     const char *payload)
{
	json_error_t e;
	json_t *p = json_loads(payload, 0, &e);
	if (!p) {
		diag("bad payload %s: %s", payload, e.text);
		abort();
	}
	const char *colon = strchr(oid, ':');
	char channel[32];
	snprintf(channel, sizeof(channel), "%.*s", (int)(colon - oid), oid);
	version++;
	char eid[64];
	snprintf(eid, sizeof(eid), "e-%lld", (long long)version);
	return json_pack("{s:i,s:I,s:I,s:I,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:s,s:o}",
			 "partition", 0, "seq", (json_int_t)version, "version",
			 (json_int_t)version, "recorded_at",
			 (json_int_t)(T0 + 5 * DAY), "event_id", eid,
			 "merchant", "acme", "order_id", oid, "channel",
			 channel, "type", type, "source_time", (json_int_t)t,
			 "ingest_time", (json_int_t)t, "source", "test",
			 "payload", p);
}

/* Folds one event; returns whether it was stale. */
static bool fold(json_t **view, const char *type, int64_t t,
		 const char *payload)
{
	json_t *e = entry(json_string_value(json_object_get(*view, "order_id"))
				  ? json_string_value(
					    json_object_get(*view, "order_id"))
				  : "shopify:1001",
			  type, t, payload);
	struct wb_fold_info info;
	char msg[256];
	wb_err rc = wb_order_fold_ex(view, e, &info, msg, sizeof(msg));
	if (rc)
		diag("fold %s: %s", type, msg);
	json_decref(e);
	return info.stale;
}

static const char *str_at(json_t *j, const char *path)
{
	/* "a.b.0.c" */
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", path);
	json_t *cur = j;
	for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, ".")) {
		if (json_is_array(cur))
			cur = json_array_get(cur, (size_t)atoi(tok));
		else
			cur = json_object_get(cur, tok);
	}
	if (!cur)
		return "(missing)";
	if (json_is_string(cur))
		return json_string_value(cur);
	if (json_is_null(cur))
		return "null";
	if (json_is_true(cur))
		return "true";
	if (json_is_false(cur))
		return "false";
	static char num[8][32];
	static int k;
	char *o = num[k++ % 8];
	snprintf(o, 32, "%lld", (long long)json_integer_value(cur));
	return o;
}

#define is(j, path, want)                                                  \
	ok(strcmp(str_at(j, path), want) == 0, "%s = %s (got %s)", path,   \
	   want, str_at(j, path))

static json_t *present(json_t *view, int64_t now, int days)
{
	return wb_order_present(view, now, days);
}

static const char *PLACED =
	"{\"name\":\"#1001\",\"email\":\" Jon@Example.COM \",\"phone\":null,"
	"\"currency\":\"USD\",\"totals\":{\"subtotal\":null,\"shipping\":null,"
	"\"tax\":null,\"discounts\":null,\"total\":{\"amount\":60800,"
	"\"currency\":\"USD\"}},\"lines\":[{\"line_id\":\"L1\",\"sku\":\"A\","
	"\"title\":\"A\",\"quantity\":1,\"unit_price\":{\"amount\":19900,"
	"\"currency\":\"USD\"}},{\"line_id\":\"L2\",\"sku\":\"B\",\"title\":"
	"\"B\",\"quantity\":2,\"unit_price\":{\"amount\":20450,\"currency\":"
	"\"USD\"}}],\"shipping_address\":{\"name\":\"Steve\",\"company\":null,"
	"\"line1\":\"1 Road\",\"line2\":null,\"city\":\"Shippington\","
	"\"region\":\"KY\",\"postal_code\":\"40003\",\"country_code\":\"US\","
	"\"phone\":null},\"placed_at\":1767225600000}";

static json_t *placed_order(void)
{
	json_t *v = NULL;
	version = 0;
	json_t *e = entry("shopify:1001", "OrderPlaced", T0, PLACED);
	char msg[128];
	wb_order_fold(&v, e, msg, sizeof(msg));
	json_decref(e);
	return v;
}

static void test_placed_and_updates(void)
{
	json_t *v = placed_order();
	json_t *p = present(v, T0 + DAY, 30);
	is(p, "order_id", "shopify:1001");
	is(p, "channel", "shopify");
	is(p, "channel_order_id", "1001");
	is(p, "merchant", "acme");
	is(p, "name", "#1001");
	is(p, "order.status", "open");
	is(p, "lines.1.quantity", "2");
	is(p, "lines.1.fulfilled_quantity", "0");
	is(p, "totals.total.amount", "60800");
	is(p, "shipping_address.city", "Shippington");
	is(p, "customer_status", "processing");
	is(p, "fulfillment.status", "unfulfilled");
	is(p, "eligibility.can_cancel.allowed", "true");
	is(p, "eligibility.can_cancel.reason", "not_yet_shipped");
	is(p, "eligibility.can_change_address.allowed", "true");
	is(p, "eligibility.can_return.allowed", "false");
	is(p, "eligibility.can_return.reason", "not_delivered");
	is(p, "eligibility.can_return.window_ends_at", "null");
	is(p, "version", "1");
	ok(json_object_get(p, "_t") == NULL, "private facet clocks not shown");
	json_decref(p);

	ok(!fold(&v, "OrderUpdated", T0 + 10,
		 "{\"email\":\"new@example.com\",\"phone\":null,\"note\":"
		 "\"back door\",\"lines\":null,\"totals\":null}"),
	   "OrderUpdated applies");
	is(v, "email", "new@example.com");
	is(v, "note", "back door");
	is(v, "name", "#1001");
	/* an older update of the same field does not undo the newer one */
	ok(fold(&v, "OrderUpdated", T0 + 5,
		"{\"email\":\"old@example.com\",\"phone\":null,\"note\":null,"
		"\"lines\":null,\"totals\":null}"),
	   "older OrderUpdated is stale");
	is(v, "email", "new@example.com");

	fold(&v, "ShippingAddressChanged", T0 + 20,
	     "{\"address\":{\"name\":\"Steve\",\"company\":null,\"line1\":"
	     "\"9 New Road\",\"line2\":null,\"city\":\"Louisville\","
	     "\"region\":\"KY\",\"postal_code\":\"40202\",\"country_code\":"
	     "\"US\",\"phone\":null}}");
	is(v, "shipping_address.city", "Louisville");
	fold(&v, "PaymentStatusChanged", T0 + 30,
	     "{\"status\":\"paid\",\"amount_paid\":{\"amount\":60800,"
	     "\"currency\":\"USD\"}}");
	is(v, "payment.status", "paid");
	is(v, "payment.amount_paid.amount", "60800");
	is(v, "payment.updated_at", "1767225600030");
	ok(fold(&v, "PaymentStatusChanged", T0 + 25,
		"{\"status\":\"pending\",\"amount_paid\":null}"),
	   "late pending after paid is stale");
	is(v, "payment.status", "paid");
	is(v, "version", "6");
	json_decref(v);
}

static void test_out_of_order_placed(void)
{
	/* a cancellation recorded before the (late) OrderPlaced */
	json_t *v = NULL;
	json_t *e = entry("shopify:7", "OrderCancelled", T0 + 100,
			  "{\"reason\":\"customer\",\"cancelled_at\":"
			  "1767225600100,\"note\":null}");
	char msg[128];
	wb_order_fold(&v, e, msg, sizeof(msg));
	json_decref(e);
	e = entry("shopify:7", "OrderPlaced", T0, PLACED);
	wb_order_fold(&v, e, msg, sizeof(msg));
	json_decref(e);
	is(v, "order.status", "cancelled");
	is(v, "order.cancel_reason", "customer");
	is(v, "name", "#1001");
	json_t *p = present(v, T0 + DAY, 30);
	is(p, "customer_status", "cancelled");
	is(p, "eligibility.can_cancel.reason", "already_cancelled");
	is(p, "eligibility.can_change_address.reason", "order_cancelled");
	is(p, "eligibility.can_return.reason", "order_cancelled");
	json_decref(p);
	json_decref(v);
	/* a view is only for its own order */
	v = placed_order();
	e = entry("shopify:other", "OrderPlaced", T0, PLACED);
	ok(wb_order_fold(&v, e, msg, sizeof(msg)) == WB_EINVAL,
	   "an entry of another order is refused");
	json_decref(e);
	json_decref(v);
}

static const char *FULFILL =
	"{\"fulfillment_id\":\"F1\",\"lines\":[{\"line_id\":\"L1\",\"sku\":"
	"\"A\",\"quantity\":1},{\"line_id\":\"L2\",\"sku\":\"B\",\"quantity\":"
	"2}],\"carrier\":\"UPS\",\"tracking_numbers\":[\"1Z999\"],"
	"\"tracking_urls\":[\"https://ups.example/1Z999\"]}";

static const char *ship(const char *status, int64_t carrier_time,
			const char *loc)
{
	static char buf[8][512];
	static int k;
	char *b = buf[k++ % 8];
	snprintf(b, 512,
		 "{\"fulfillment_id\":\"F1\",\"tracking_number\":\"1Z999\","
		 "\"carrier\":\"UPS\",\"status\":\"%s\",\"carrier_time\":%lld,"
		 "\"location\":\"%s\",\"estimated_delivery\":%s}",
		 status, (long long)carrier_time, loc,
		 strcmp(status, "delivered") ? "1767484800000" : "null");
	return b;
}

static void test_shipping_and_late_in_transit(void)
{
	json_t *v = placed_order();
	fold(&v, "FulfillmentCreated", T0 + DAY, FULFILL);
	json_t *p = present(v, T0 + DAY, 30);
	is(p, "fulfillment.status", "fulfilled");
	is(p, "fulfillment.fulfillments.0.fulfillment_id", "F1");
	is(p, "lines.1.fulfilled_quantity", "2");
	is(p, "shipments.0.tracking_number", "1Z999");
	is(p, "shipments.0.carrier", "UPS");
	is(p, "shipments.0.tracking_url", "https://ups.example/1Z999");
	is(p, "shipments.0.status", "null");
	is(p, "customer_status", "shipped");
	is(p, "eligibility.can_cancel.allowed", "false");
	is(p, "eligibility.can_cancel.reason", "already_shipped");
	is(p, "eligibility.can_change_address.reason", "already_fulfilled");
	json_decref(p);

	fold(&v, "ShipmentStatusChanged", T0 + 2 * DAY,
	     ship("in_transit", T0 + 2 * DAY - 60000, "Louisville, KY"));
	p = present(v, T0 + 2 * DAY, 30);
	is(p, "customer_status", "in_transit");
	is(p, "shipments.0.estimated_delivery", "1767484800000");
	is(p, "shipments.0.last_event.location", "Louisville, KY");
	json_decref(p);
	fold(&v, "ShipmentStatusChanged", T0 + 3 * DAY,
	     ship("out_for_delivery", T0 + 3 * DAY, "Shippington, KY"));
	p = present(v, T0 + 3 * DAY, 30);
	is(p, "customer_status", "out_for_delivery");
	json_decref(p);
	fold(&v, "ShipmentStatusChanged", T0 + 4 * DAY,
	     ship("delivered", T0 + 4 * DAY - 1000, "Front porch"));
	/* the carrier's late in_transit scan arrives after delivery */
	bool stale = fold(&v, "ShipmentStatusChanged", T0 + 2 * DAY + 5,
			  ship("in_transit", T0 + 2 * DAY, "Hub"));
	ok(stale, "late in_transit is stale");
	is(v, "shipments.0.status", "delivered");
	is(v, "shipments.0.last_event.status", "delivered");
	is(v, "shipments.0.last_event.location", "Front porch");
	is(v, "shipments.0.delivered_at", "1767571199000");
	is(v, "shipments.0.estimated_delivery", "1767484800000");
	is(v, "version", "6");
	p = present(v, T0 + 5 * DAY, 30);
	is(p, "customer_status", "delivered");
	is(p, "delivered_at", "1767571199000");
	is(p, "eligibility.can_return.allowed", "true");
	is(p, "eligibility.can_return.reason", "within_return_window");
	is(p, "eligibility.can_return.window_days", "30");
	is(p, "eligibility.can_return.window_ends_at", "1770163199000");
	json_decref(p);
	/* the window: last millisecond in, first one out */
	p = present(v, 1770163199000LL, 30);
	is(p, "eligibility.can_return.allowed", "true");
	json_decref(p);
	p = present(v, 1770163199001LL, 30);
	is(p, "eligibility.can_return.allowed", "false");
	is(p, "eligibility.can_return.reason", "return_window_expired");
	is(p, "eligibility.can_return.window_ends_at", "1770163199000");
	json_decref(p);
	/* a merchant with a 14-day window, and one taking no returns */
	p = present(v, T0 + 20 * DAY, 14);
	is(p, "eligibility.can_return.reason", "return_window_expired");
	is(p, "eligibility.can_return.window_ends_at", "1768780799000");
	json_decref(p);
	p = present(v, T0 + 5 * DAY, 0);
	is(p, "eligibility.can_return.reason", "returns_not_accepted");
	json_decref(p);

	/* a delivery problem on a second parcel */
	fold(&v, "ShipmentStatusChanged", T0 + 4 * DAY,
	     "{\"fulfillment_id\":null,\"tracking_number\":\"1Z888\","
	     "\"carrier\":null,\"status\":\"attempted_delivery\","
	     "\"carrier_time\":null,\"location\":null,"
	     "\"estimated_delivery\":null}");
	p = present(v, T0 + 5 * DAY, 30);
	is(p, "customer_status", "delivery_problem");
	is(p, "shipments.1.tracking_number", "1Z888");
	is(p, "shipments.1.last_event.carrier_time", "null");
	json_decref(p);
	json_decref(v);
}

static void test_partial_and_snapshot(void)
{
	json_t *v = placed_order();
	fold(&v, "FulfillmentCreated", T0 + DAY,
	     "{\"fulfillment_id\":\"F1\",\"lines\":[{\"line_id\":\"L2\","
	     "\"sku\":\"B\",\"quantity\":1}],\"carrier\":null,"
	     "\"tracking_numbers\":[],\"tracking_urls\":[]}");
	json_t *p = present(v, T0 + DAY, 30);
	is(p, "fulfillment.status", "partially_fulfilled");
	is(p, "customer_status", "partially_shipped");
	is(p, "eligibility.can_cancel.reason", "already_shipped");
	json_decref(p);
	/* a reconciliation poll: fulfilled, partially refunded, a tracking
	 * number we had no webhook for */
	fold(&v, "ChannelSnapshotObserved", T0 + 2 * DAY,
	     "{\"observed_at\":1767398400000,\"channel_updated_at\":"
	     "1767398000000,\"financial_status\":\"PARTIALLY_REFUNDED\","
	     "\"fulfillment_status\":\"fulfilled\",\"cancelled\":false,"
	     "\"total\":{\"amount\":60800,\"currency\":\"USD\"},"
	     "\"tracking_numbers\":[\"TRK-9\"]}");
	is(v, "payment.status", "partially_refunded");
	is(v, "payment.updated_at", "1767398000000");
	is(v, "shipments.0.tracking_number", "TRK-9");
	p = present(v, T0 + 2 * DAY, 30);
	is(p, "fulfillment.status", "fulfilled");
	json_decref(p);
	/* an older snapshot changes nothing */
	ok(fold(&v, "ChannelSnapshotObserved", T0 + 3 * DAY,
		"{\"observed_at\":1767484800000,\"channel_updated_at\":"
		"1767300000000,\"financial_status\":\"paid\","
		"\"fulfillment_status\":null,\"cancelled\":true,\"total\":null,"
		"\"tracking_numbers\":[]}"),
	   "snapshot older than the last one is stale");
	is(v, "order.status", "open");
	is(v, "payment.status", "partially_refunded");
	/* a newer one saying cancelled cancels */
	fold(&v, "ChannelSnapshotObserved", T0 + 4 * DAY,
	     "{\"observed_at\":1767571200000,\"channel_updated_at\":null,"
	     "\"financial_status\":\"voided\",\"fulfillment_status\":null,"
	     "\"cancelled\":true,\"total\":null,\"tracking_numbers\":[]}");
	is(v, "order.status", "cancelled");
	is(v, "payment.status", "voided");
	json_decref(v);

	/* POS: sold over the counter, returnable from the sale */
	json_t *e = entry("pos:store1-9", "OrderPlaced", T0, PLACED);
	json_t *pos = NULL;
	char msg[128];
	wb_order_fold(&pos, e, msg, sizeof(msg));
	json_decref(e);
	p = present(pos, T0 + DAY, 30);
	is(p, "customer_status", "delivered");
	is(p, "eligibility.can_return.reason", "within_return_window");
	is(p, "eligibility.can_cancel.reason", "already_fulfilled");
	json_decref(p);
	json_decref(pos);
}

/* A poll repairs lost tracking with a FulfillmentCreated of the same
 * fulfillment but without lines (its query does not ask for them): the
 * tracking is taken, the lines the webhook recorded are kept. */
static void test_tracking_without_lines(void)
{
	json_t *v = placed_order();
	fold(&v, "FulfillmentCreated", T0 + DAY,
	     "{\"fulfillment_id\":\"F1\",\"lines\":[{\"line_id\":\"L2\","
	     "\"sku\":\"B\",\"quantity\":2}],\"carrier\":null,"
	     "\"tracking_numbers\":[],\"tracking_urls\":[]}");
	fold(&v, "FulfillmentCreated", T0 + 2 * DAY,
	     "{\"fulfillment_id\":\"F1\",\"lines\":[],\"carrier\":\"UPS\","
	     "\"tracking_numbers\":[\"1Z9\"],\"tracking_urls\":[]}");
	json_t *p = present(v, T0 + 2 * DAY, 30);
	is(p, "lines.1.fulfilled_quantity", "2");
	is(p, "shipments.0.tracking_number", "1Z9");
	is(p, "shipments.0.carrier", "UPS");
	json_decref(p);
	json_decref(v);
}

static void test_refunds_and_returns(void)
{
	json_t *v = placed_order();
	fold(&v, "FulfillmentCreated", T0 + DAY, FULFILL);
	fold(&v, "ShipmentStatusChanged", T0 + 2 * DAY,
	     ship("delivered", T0 + 2 * DAY, "Porch"));
	fold(&v, "ReturnRequested", T0 + 3 * DAY,
	     "{\"return_id\":\"R1\",\"lines\":[{\"line_id\":\"L1\",\"sku\":"
	     "\"A\",\"quantity\":1}],\"reason\":\"size_too_small\"}");
	json_t *p = present(v, T0 + 3 * DAY, 30);
	is(p, "returns.0.status", "requested");
	is(p, "returns.0.reason", "size_too_small");
	is(p, "customer_status", "return_in_progress");
	is(p, "eligibility.can_return.reason", "return_in_progress");
	json_decref(p);
	fold(&v, "ReturnApproved", T0 + 3 * DAY + 10,
	     "{\"return_id\":\"R1\",\"lines\":[{\"line_id\":\"L1\",\"sku\":"
	     "\"A\",\"quantity\":1}],\"reason\":null}");
	fold(&v, "ReturnReceived", T0 + 5 * DAY,
	     "{\"return_id\":\"R1\",\"lines\":[],\"reason\":null}");
	/* approval webhook delivered again, late */
	ok(fold(&v, "ReturnApproved", T0 + 4 * DAY,
		"{\"return_id\":\"R1\",\"lines\":[],\"reason\":null}"),
	   "late ReturnApproved after received is stale");
	is(v, "returns.0.status", "received");
	is(v, "returns.0.approved_at", "1767484800010");
	is(v, "returns.0.lines.0.line_id", "L1");
	fold(&v, "ReturnClosed", T0 + 6 * DAY,
	     "{\"return_id\":\"R1\",\"lines\":[],\"reason\":null}");
	fold(&v, "ReturnDeclined", T0 + 6 * DAY,
	     "{\"return_id\":\"R2\",\"lines\":[],\"reason\":\"final_sale\"}");
	is(v, "returns.1.status", "declined");
	is(v, "returns.1.decline_reason", "final_sale");

	/* refunds: one in USD, one in EUR (a marketplace payout): never
	 * summed across currencies */
	fold(&v, "RefundIssued", T0 + 6 * DAY,
	     "{\"refund_id\":\"RF1\",\"amount\":{\"amount\":19900,"
	     "\"currency\":\"USD\"},\"lines\":[{\"line_id\":\"L1\",\"sku\":"
	     "\"A\",\"quantity\":1}],\"restock\":true,\"reason\":\"return\"}");
	fold(&v, "RefundIssued", T0 + 6 * DAY + 1,
	     "{\"refund_id\":\"RF2\",\"amount\":{\"amount\":50000,"
	     "\"currency\":\"EUR\"},\"lines\":[],\"restock\":false,"
	     "\"reason\":null}");
	/* the same refund delivered twice counts once */
	fold(&v, "RefundIssued", T0 + 6 * DAY + 2,
	     "{\"refund_id\":\"RF1\",\"amount\":{\"amount\":19900,"
	     "\"currency\":\"USD\"},\"lines\":[{\"line_id\":\"L1\",\"sku\":"
	     "\"A\",\"quantity\":1}],\"restock\":true,\"reason\":\"return\"}");
	p = present(v, T0 + 7 * DAY, 30);
	is(p, "refunded.0.currency", "EUR");
	is(p, "refunded.0.amount", "50000");
	is(p, "refunded.1.currency", "USD");
	is(p, "refunded.1.amount", "19900");
	ok(json_array_size(json_object_get(p, "refunds")) == 2, "two refunds");
	is(p, "lines.0.refunded_quantity", "1");
	is(p, "customer_status", "delivered");
	is(p, "eligibility.can_return.allowed", "true");
	json_decref(p);
	/* the rest in USD: refunded in full */
	fold(&v, "RefundIssued", T0 + 7 * DAY,
	     "{\"refund_id\":\"RF3\",\"amount\":{\"amount\":40900,"
	     "\"currency\":\"USD\"},\"lines\":[],\"restock\":false,"
	     "\"reason\":null}");
	p = present(v, T0 + 7 * DAY, 30);
	is(p, "refunded.1.amount", "60800");
	is(p, "customer_status", "refunded");
	is(p, "eligibility.can_return.reason", "already_refunded");
	json_decref(p);
	json_decref(v);
}

static const char *action(const char *id, const char *kind,
			  const char *extra)
{
	static char buf[4][512];
	static int k;
	char *b = buf[k++ % 4];
	snprintf(b, 512,
		 "{\"action_id\":\"%s\",\"kind\":\"%s\",\"idempotency_key\":"
		 "\"k-%s\"%s}",
		 id, kind, id, extra);
	return b;
}

#define PARAMS ",\"parameters\":{\"reason\":\"customer\",\"address\":null," \
	       "\"amount\":null,\"lines\":[],\"note\":null},\"requester\":"  \
	       "\"agent:bot\""

static void test_actions(void)
{
	json_t *v = placed_order();
	fold(&v, "ActionRequested", T0 + 10, action("A1", "cancel", PARAMS));
	json_t *p = present(v, T0 + 20, 30);
	ok(json_array_size(json_object_get(p, "pending_actions")) == 1,
	   "one pending action");
	is(p, "pending_actions.0.action_id", "A1");
	is(p, "pending_actions.0.kind", "cancel");
	is(p, "pending_actions.0.requester", "agent:bot");
	is(p, "eligibility.can_cancel.allowed", "false");
	is(p, "eligibility.can_cancel.reason", "cancel_pending");
	is(p, "eligibility.can_change_address.allowed", "true");
	json_decref(p);
	fold(&v, "ActionFailed", T0 + 30,
	     action("A1", "cancel", ",\"reason\":\"channel_error\","
				    "\"attempts\":3"));
	p = present(v, T0 + 40, 30);
	ok(json_array_size(json_object_get(p, "pending_actions")) == 0,
	   "failed action is no longer pending");
	is(p, "actions.0.status", "failed");
	is(p, "actions.0.reason", "channel_error");
	is(p, "actions.0.attempts", "3");
	is(p, "eligibility.can_cancel.allowed", "true");
	json_decref(p);

	/* a rejection the ledger recorded directly */
	fold(&v, "ActionRejected", T0 + 50,
	     action("A2", "change_address", PARAMS ",\"reason\":\"stale\""));
	is(v, "actions.1.status", "rejected");
	/* requested + succeeded arriving out of order: succeeded stands */
	fold(&v, "ActionSucceeded", T0 + 70,
	     action("A3", "change_address", ",\"channel_ref\":\"gid://1\""));
	ok(fold(&v, "ActionRequested", T0 + 60,
		action("A3", "change_address", PARAMS)),
	   "ActionRequested after its outcome is stale");
	is(v, "actions.2.status", "succeeded");
	is(v, "actions.2.channel_ref", "gid://1");
	is(v, "actions.2.requester", "agent:bot");
	fold(&v, "ActionRequested", T0 + 80,
	     action("A4", "change_address", PARAMS));
	p = present(v, T0 + 90, 30);
	is(p, "eligibility.can_change_address.reason", "change_pending");
	is(p, "pending_actions.0.action_id", "A4");
	json_decref(p);
	json_decref(v);
}

static void test_timeline_lookups_status(void)
{
	json_t *v = placed_order();
	fold(&v, "FulfillmentCreated", T0 + DAY, FULFILL);
	json_t *e = entry("shopify:1001", "ShipmentStatusChanged", T0 + DAY,
			  ship("in_transit", T0, "Hub"));
	struct wb_fold_info info;
	char msg[128];
	wb_order_fold_ex(&v, e, &info, msg, sizeof(msg));
	json_t *t = wb_timeline_entry(e, &info);
	is(t, "type", "ShipmentStatusChanged");
	is(t, "facts.status", "in_transit");
	is(t, "facts.tracking_number", "1Z999");
	is(t, "source", "test");
	is(t, "version", "3");
	ok(json_object_get(t, "applied") == NULL, "applied entry not marked");
	ok(json_object_get(t, "payload") == NULL, "no whole payload");
	json_decref(t);
	json_decref(e);
	e = entry("shopify:1001", "ShipmentStatusChanged", T0,
		  ship("label_printed", T0, "Hub"));
	wb_order_fold_ex(&v, e, &info, msg, sizeof(msg));
	t = wb_timeline_entry(e, &info);
	is(t, "applied", "false");
	json_decref(t);
	json_decref(e);

	json_t *seen = json_object();
	struct {
		json_t *o;
	} c = {seen};
	(void)c;
	wb_buf b;
	wb_buf_init(&b);
	ok(wb_lookup_normalise(WB_LOOKUP_EMAIL, "  Jon@Example.COM ", &b) &&
		   strcmp((char *)b.data, "jon@example.com") == 0,
	   "email normalised: %s", (char *)b.data);
	ok(wb_lookup_normalise(WB_LOOKUP_NAME, "#1001", &b) &&
		   strcmp((char *)b.data, "1001") == 0,
	   "name without #");
	ok(wb_lookup_normalise(WB_LOOKUP_TRACKING, "1z 999", &b) &&
		   strcmp((char *)b.data, "1z999") == 0,
	   "tracking without spaces, lower case");
	ok(!wb_lookup_normalise(WB_LOOKUP_EMAIL, "   ", &b), "blank is none");
	wb_buf_finish(&b);
	json_decref(seen);

	json_t *st = wb_order_status(v, T0 + DAY, 30);
	is(st, "customer_status", "in_transit");
	is(st, "order_status", "open");
	is(st, "fulfillment_status", "fulfilled");
	is(st, "tracking_numbers.0", "1Z999");
	is(st, "version", "4");
	wb_buf out;
	wb_buf_init(&out);
	ok(wb_avro_encode(WB_SCHEMA_ORDER_STATUS, st, &out, msg,
			  sizeof(msg)) == WB_OK,
	   "OrderStatus encodes (%s)", msg);
	json_t *back = NULL;
	ok(wb_avro_decode(WB_SCHEMA_ORDER_STATUS, out.data, out.len, &back,
			  msg, sizeof(msg)) == WB_OK &&
		   json_equal(back, st),
	   "and decodes to the same record");
	json_decref(back);
	wb_buf_finish(&out);
	json_decref(st);
	/* a view without OrderPlaced still makes a valid status */
	json_t *bare = NULL;
	e = entry("amazon:1", "PaymentStatusChanged", T0,
		  "{\"status\":\"paid\",\"amount_paid\":null}");
	wb_order_fold(&bare, e, msg, sizeof(msg));
	json_decref(e);
	st = wb_order_status(bare, T0, 30);
	wb_buf_init(&out);
	ok(wb_avro_encode(WB_SCHEMA_ORDER_STATUS, st, &out, msg,
			  sizeof(msg)) == WB_OK,
	   "OrderStatus of a view without OrderPlaced encodes (%s)", msg);
	is(st, "order_status", "unknown");
	json_t *pr = present(bare, T0, 30);
	is(pr, "eligibility.can_cancel.reason", "order_not_placed");
	json_decref(pr);
	wb_buf_finish(&out);
	json_decref(st);
	json_decref(bare);
	json_decref(v);
}

static int windows_seen;
static void count_window(const char *m, size_t n, int days, void *ud)
{
	(void)ud;
	if ((n == 4 && memcmp(m, "acme", 4) == 0 && days == 14) ||
	    (n == 5 && memcmp(m, "other", 5) == 0 && days == -1))
		windows_seen++;
}

static void test_json_writer(void)
{
	json_t *j = json_pack("{s:s,s:I,s:I,s:f,s:[b,b,n],s:{}}", "s",
			      "a\"b\\c\n\t\x01/\xc3\xa9", "min",
			      (json_int_t)INT64_MIN, "max",
			      (json_int_t)INT64_MAX, "r", 1.5, "a", 1, 0,
			      "o");
	char *want = json_dumps(j, JSON_COMPACT);
	wb_buf b;
	wb_buf_init(&b);
	wb_json_write(&b, j);
	ok(strlen(want) == b.len && memcmp(want, b.data, b.len) == 0,
	   "escapes, extreme integers, reals: %.*s", (int)b.len,
	   (char *)b.data);
	free(want);
	wb_buf_finish(&b);
	json_decref(j);
}

static void test_windows(void)
{
	char msg[256];
	ok(wb_return_windows_parse("acme=14, other = -1", count_window, NULL,
				   msg, sizeof(msg)) &&
		   windows_seen == 2,
	   "per-merchant return windows parse");
	ok(!wb_return_windows_parse("acme", NULL, NULL, msg, sizeof(msg)),
	   "missing days: %s", msg);
	ok(!wb_return_windows_parse("acme=x", NULL, NULL, msg, sizeof(msg)),
	   "bad days: %s", msg);
	ok(wb_return_windows_parse("", NULL, NULL, msg, sizeof(msg)),
	   "empty list is fine");
}

/* Every event type of the schema's example file folds, and unknown ones
 * only reach the timeline. */
static void test_every_type(const char *schemas_dir)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/examples/all-types.jsonl",
		 schemas_dir);
	FILE *f = fopen(path, "r");
	ok(f != NULL, "read %s", path);
	if (!f)
		return;
	char line[8192];
	json_t *views = json_object();
	int n = 0, bad = 0, enc_bad = 0, json_bad = 0;
	json_t *types = json_object();
	while (fgets(line, sizeof(line), f)) {
		json_t *e = json_loads(line, 0, NULL);
		if (!e)
			continue;
		json_object_set_new(e, "version", json_integer(++n));
		json_object_set_new(e, "seq", json_integer(n));
		json_object_set_new(e, "partition", json_integer(0));
		json_object_set_new(e, "recorded_at", json_integer(T0));
		const char *oid =
			json_string_value(json_object_get(e, "order_id"));
		json_t *v = json_incref(json_object_get(views, oid));
		struct wb_fold_info info;
		char msg[256];
		if (wb_order_fold_ex(&v, e, &info, msg, sizeof(msg))) {
			bad++;
			diag("%s: %s", line, msg);
		}
		json_object_set(types, json_string_value(json_object_get(e, "type")),
				json_true());
		json_object_set_new(views, oid, v);
		json_t *p = wb_order_present(v, T0, 30);
		json_t *st = wb_order_status(v, T0, 30);
		wb_buf out, direct, js;
		wb_buf_init(&out);
		wb_buf_init(&direct);
		wb_buf_init(&js);
		if (!p || !st ||
		    wb_avro_encode(WB_SCHEMA_ORDER_STATUS, st, &out, msg,
				   sizeof(msg))) {
			bad++;
			diag("present/status after %s: %s", line, msg);
		}
		/* the store's fast paths write what the libraries would */
		wb_order_status_encode(v, &direct);
		if (direct.len != out.len ||
		    memcmp(direct.data, out.data, out.len) != 0) {
			enc_bad++;
			diag("OrderStatus bytes differ after %s", line);
		}
		char *dumped = json_dumps(v, JSON_COMPACT);
		wb_json_write(&js, v);
		if (strlen(dumped) != js.len || memcmp(dumped, js.data, js.len)) {
			json_bad++;
			diag("wb_json_write differs from json_dumps:\n%s\n%.*s",
			     dumped, (int)js.len, (char *)js.data);
		}
		free(dumped);
		wb_buf_finish(&out);
		wb_buf_finish(&direct);
		wb_buf_finish(&js);
		json_decref(p);
		json_decref(st);
		json_decref(e);
	}
	fclose(f);
	const char *const *all = wb_event_types();
	int missing = 0;
	for (; *all; all++)
		if (!json_object_get(types, *all)) {
			missing++;
			diag("no example of %s", *all);
		}
	ok(bad == 0 && n > 0, "%d example events fold and present", n);
	ok(enc_bad == 0, "wb_order_status_encode writes the codec's bytes");
	ok(json_bad == 0, "wb_json_write writes json_dumps' text");
	ok(missing == 0, "the examples cover every event type");
	json_t *v = NULL;
	json_t *e = entry("shopify:9", "SomethingNew", T0, "{}");
	struct wb_fold_info info;
	char msg[128];
	ok(wb_order_fold_ex(&v, e, &info, msg, sizeof(msg)) == WB_OK &&
		   info.stale,
	   "an unknown type is kept in the timeline only");
	json_decref(e);
	json_decref(v);
	json_decref(types);
	json_decref(views);
}

/* An entry of the same order id naming another merchant changes nothing:
 * not the facts, not the version, not the lookups or OrderStatus. */
static void test_foreign_merchant(void)
{
	json_t *v = placed_order();
	char *before = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
	wb_buf st0, st1;
	wb_buf_init(&st0);
	wb_buf_init(&st1);
	wb_order_status_encode(v, &st0);
	const char *bad[][2] = {
		{"OrderCancelled", "{\"reason\":\"fraud\",\"note\":null,"
				   "\"cancelled_at\":1767229200000}"},
		{"ShippingAddressChanged",
		 "{\"address\":{\"name\":\"Eve\",\"company\":null,"
		 "\"line1\":\"9 Elsewhere\",\"line2\":null,\"city\":\"Evil\","
		 "\"region\":null,\"postal_code\":\"666\","
		 "\"country_code\":\"US\",\"phone\":null}}"},
		{"OrderUpdated", "{\"email\":\"eve@example.com\",\"phone\":null,"
				 "\"note\":null,\"lines\":null,\"totals\":null}"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *e = entry("shopify:1001", bad[i][0], T0 + DAY,
				  bad[i][1]);
		json_object_set_new(e, "merchant", json_string("intruder"));
		struct wb_fold_info info;
		char msg[256];
		wb_err rc = wb_order_fold_ex(&v, e, &info, msg, sizeof(msg));
		ok(rc == WB_OK && info.foreign,
		   "%s of another merchant: refused as foreign, no error",
		   bad[i][0]);
		json_decref(e);
	}
	char *after = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
	ok(strcmp(before, after) == 0,
	   "the view (version included) is unchanged");
	wb_order_status_encode(v, &st1);
	ok(st0.len == st1.len && memcmp(st0.data, st1.data, st0.len) == 0,
	   "OrderStatus unchanged");
	json_t *p = present(v, T0 + DAY, 30);
	is(p, "order.status", "open");
	is(p, "email", " Jon@Example.COM ");
	is(p, "version", "1");
	is(p, "merchant", "acme");
	json_decref(p);
	/* the owner's own next entry still applies */
	json_t *e = entry("shopify:1001", "OrderCancelled", T0 + 2 * DAY,
			  "{\"reason\":\"customer\",\"note\":null,"
			  "\"cancelled_at\":1767312000000}");
	struct wb_fold_info info;
	char msg[256];
	ok(wb_order_fold_ex(&v, e, &info, msg, sizeof(msg)) == WB_OK &&
		   !info.foreign,
	   "the owner's entry is not foreign");
	json_decref(e);
	p = present(v, T0 + 2 * DAY, 30);
	is(p, "order.status", "cancelled");
	json_decref(p);
	free(before);
	free(after);
	wb_buf_finish(&st0);
	wb_buf_finish(&st1);
	json_decref(v);
}

/* Channel numbers at the ends of int64 (a delivery time, amounts,
 * quantities): the sums and the window's end saturate instead of
 * overflowing (undefined behaviour, found by UBSan in the fuzz build). */
static void test_int64_edges(void)
{
	json_t *v = placed_order();
	fold(&v, "FulfillmentCreated", T0 + DAY,
	     "{\"fulfillment_id\":\"F1\",\"lines\":[{\"line_id\":\"L1\","
	     "\"sku\":\"A\",\"quantity\":9223372036854775807},{\"line_id\":"
	     "\"L1\",\"sku\":\"A\",\"quantity\":9223372036854775807}],"
	     "\"carrier\":\"UPS\",\"tracking_numbers\":[\"1Z999\"],"
	     "\"tracking_urls\":[]}");
	fold(&v, "ShipmentStatusChanged", T0 + 2 * DAY,
	     ship("delivered", INT64_MAX - 1, "x"));
	for (int i = 0; i < 2; i++)
		fold(&v, "RefundIssued", T0 + 3 * DAY + i,
		     i ? "{\"refund_id\":\"RF2\",\"amount\":{\"amount\":"
			 "9223372036854775807,\"currency\":\"USD\"},\"lines\":"
			 "[],\"restock\":false,\"reason\":null}"
		       : "{\"refund_id\":\"RF1\",\"amount\":{\"amount\":"
			 "9223372036854775807,\"currency\":\"USD\"},\"lines\":"
			 "[],\"restock\":false,\"reason\":null}");
	json_t *p = present(v, T0 + 4 * DAY, 30);
	is(p, "delivered_at", "9223372036854775806");
	is(p, "eligibility.can_return.window_ends_at", "9223372036854775807");
	is(p, "lines.0.fulfilled_quantity", "9223372036854775807");
	is(p, "refunded.0.amount", "9223372036854775807");
	json_decref(p);
	json_decref(v);
}

int main(int argc, char **argv)
{
	test_placed_and_updates();
	test_out_of_order_placed();
	test_shipping_and_late_in_transit();
	test_partial_and_snapshot();
	test_tracking_without_lines();
	test_refunds_and_returns();
	test_actions();
	test_timeline_lookups_status();
	test_windows();
	test_foreign_merchant();
	test_int64_edges();
	test_json_writer();
	test_every_type(argc > 1 ? argv[1] : "schemas");
	return tap_done();
}
