/*
 * test_shopify_map.c — the Shopify mapping without a broker or a network:
 * every recorded webhook sample under each topic that can carry it gives
 * exactly the expected canonical events (ids, types and key payload
 * fields as exact JSON), one webhook can give several events, 64-bit ids
 * survive unchanged, redeliveries and other topics with the same fact give
 * the same event_ids, a poll of the same order agrees with the webhooks,
 * every event encodes under the schema, bad input is refused with a
 * reason (and nothing emitted), HMAC checks and GraphQL page parsing.
 *
 * argv[1] is the repository root; the samples are read from
 * WAYBILL_FIXTURES or <root>/tests/fixtures/channels.
 */
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "wb_ingest.h"

#define NOW 1767225999123LL
#define SHOP "acme.myshopify.com"
/* 2021-12-31T19:00:00-05:00, the samples' created_at/updated_at */
#define T_SAMPLE 1640995200000LL

static char fixtures[8192], root[4096];

static char *slurp(const char *dir, const char *name, size_t *len)
{
	char path[8192], msg[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	char *data = NULL;
	if (wb_read_file(path, 1 << 24, &data, len, msg, sizeof(msg))) {
		diag("%s", msg);
		return NULL;
	}
	return data;
}

static struct wb_shopify_ctx ctx(const char *topic)
{
	struct wb_shopify_ctx c = {.shop = SHOP, .topic = topic,
				   .webhook_id = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
				   .event_id = "98880550-7158-44d4-b7cd-2c97c8a091b5",
				   .triggered_at = -1, .now_ms = NOW,
				   .source = "shopify-webhooks"};
	return c;
}

/* Maps a sample file under topic; NULL (and a failed check) on error. */
static json_t *map_file(const char *file, const char *topic)
{
	size_t len;
	char *body = slurp(fixtures, file, &len);
	if (!body)
		return NULL;
	struct wb_shopify_ctx c = ctx(topic);
	json_t *ev = json_array();
	char msg[512] = "";
	wb_err rc = wb_shopify_map_webhook(&c, body, len, ev, msg, sizeof(msg));
	free(body);
	ok(rc == WB_OK, "%s as %s maps (%s)", file, topic, msg);
	if (rc) {
		json_decref(ev);
		return NULL;
	}
	return ev;
}

static json_t *map_str(const char *topic, const char *body, wb_err *rc,
		       char *msg, size_t msglen)
{
	struct wb_shopify_ctx c = ctx(topic);
	json_t *ev = json_array();
	*rc = wb_shopify_map_webhook(&c, body, strlen(body), ev, msg, msglen);
	return ev;
}

/* The event of type in evs (the first one), or NULL. */
static json_t *find(json_t *evs, const char *type)
{
	size_t i;
	json_t *e;
	json_array_foreach(evs, i, e)
		if (strcmp(json_string_value(json_object_get(e, "type")),
			   type) == 0)
			return e;
	return NULL;
}

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "(null)";
}

/* Compact, key-sorted JSON of o.path (a dotted path), for exact compares. */
static char *dump_at(json_t *o, const char *path)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", path);
	json_t *v = o;
	for (char *save, *tok = strtok_r(buf, ".", &save); tok && v;
	     tok = strtok_r(NULL, ".", &save)) {
		char *end;
		long idx = strtol(tok, &end, 10);
		v = *end == '\0' && json_is_array(v) ? json_array_get(v, (size_t)idx)
						      : json_object_get(v, tok);
	}
	return v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)
		 : strdup("(absent)");
}

static void is_json(json_t *o, const char *path, const char *want)
{
	char *got = dump_at(o, path);
	ok(strcmp(got, want) == 0, "%s = %s", path, want);
	if (strcmp(got, want) != 0)
		diag("got %s", got);
	free(got);
}

/* The event_ids of evs, space separated (for comparing sets). */
static void ids_of(json_t *evs, char *out, size_t n)
{
	size_t i, off = 0;
	json_t *e;
	out[0] = '\0';
	json_array_foreach(evs, i, e)
		off += (size_t)snprintf(out + off, off < n ? n - off : 0, "%s ",
					str(e, "event_id"));
}

/* Every event must encode under the schema as the receiver encodes it. */
static void all_encode(json_t *evs, const char *what)
{
	wb_buf buf;
	wb_buf_init(&buf);
	size_t i;
	json_t *e;
	bool good = true;
	json_array_foreach(evs, i, e) {
		char msg[512] = "";
		struct wb_ingest_record rec;
		json_t *copy = json_deep_copy(e);
		if (wb_ingest_event_json(copy, "x", NOW, &buf, &rec, msg,
					 sizeof(msg))) {
			diag("%s: %s: %s", what, str(e, "event_id"), msg);
			good = false;
		}
		json_decref(copy);
	}
	ok(good, "%s: all %zu events encode as OrderEvents", what,
	   json_array_size(evs));
	wb_buf_finish(&buf);
}

/* ---- the samples, topic by topic ---------------------------------------- */

static void test_orders_create(void)
{
	json_t *evs = map_file("orders_create.json", "orders/create");
	if (!evs)
		return;
	char ids[2048];
	ids_of(evs, ids, sizeof(ids));
	ok(strcmp(ids, "shopify:820982911946154500:placed "
		       "shopify:820982911946154500:payment:voided "
		       "shopify:820982911946154500:cancelled ") == 0,
	   "orders/create: placed, payment voided, cancelled (the sample is "
	   "a cancelled order)");
	if (strcmp(ids, "shopify:820982911946154500:placed "
			"shopify:820982911946154500:payment:voided "
			"shopify:820982911946154500:cancelled ") != 0)
		diag("got %s", ids);
	json_t *p = find(evs, "OrderPlaced");
	is_json(p, "order_id", "\"shopify:820982911946154500\"");
	is_json(p, "merchant", "\"" SHOP "\"");
	is_json(p, "channel", "\"shopify\"");
	is_json(p, "source_time", "1640995200000");
	is_json(p, "ingest_time", "1767225999123");
	is_json(p, "correlation_id",
		"\"shopify-webhook:b54557e4-bdd9-4b37-8a5f-bf7d70bcd043\"");
	is_json(p, "causation_id",
		"\"shopify-event:98880550-7158-44d4-b7cd-2c97c8a091b5\"");
	is_json(p, "payload.name", "\"#9999\"");
	is_json(p, "payload.email", "\"jon@example.com\"");
	is_json(p, "payload.phone", "null");
	is_json(p, "payload.currency", "\"USD\"");
	is_json(p, "payload.placed_at", "1640995200000");
	is_json(p, "payload.totals",
		"{\"discounts\":{\"amount\":2000,\"currency\":\"USD\"},"
		"\"shipping\":{\"amount\":1000,\"currency\":\"USD\"},"
		"\"subtotal\":{\"amount\":40495,\"currency\":\"USD\"},"
		"\"tax\":{\"amount\":0,\"currency\":\"USD\"},"
		"\"total\":{\"amount\":40495,\"currency\":\"USD\"}}");
	is_json(p, "payload.lines.0",
		"{\"line_id\":\"487817672276298560\",\"quantity\":1,\"sku\":"
		"\"SKU2006-001\",\"title\":\"Aviator sunglasses\",\"unit_price\":"
		"{\"amount\":8999,\"currency\":\"USD\"}}");
	is_json(p, "payload.lines.4.unit_price.amount", "11999");
	ok(json_array_size(json_object_get(json_object_get(p, "payload"),
					   "lines")) == 5,
	   "five lines");
	is_json(p, "payload.shipping_address",
		"{\"city\":\"Shippington\",\"company\":\"Shipping Company\","
		"\"country_code\":\"US\",\"line1\":\"123 Shipping Street\","
		"\"line2\":null,\"name\":\"Steve Shipper\",\"phone\":"
		"\"555-555-SHIP\",\"postal_code\":\"40003\",\"region\":"
		"\"Kentucky\"}");
	json_t *pay = find(evs, "PaymentStatusChanged");
	is_json(pay, "payload", "{\"amount_paid\":null,\"status\":\"voided\"}");
	json_t *can = find(evs, "OrderCancelled");
	is_json(can, "payload",
		"{\"cancelled_at\":1640995200000,\"note\":null,\"reason\":"
		"\"customer\"}");
	is_json(can, "source_time", "1640995200000");
	all_encode(evs, "orders/create");
	json_decref(evs);
}

/* orders/updated and orders/cancelled: the same sample bytes (see the
 * shared SOURCES.md), the topic is what differs; both carry the full
 * order, so both give every fact of it. */
static void test_orders_updated(const char *file, const char *topic)
{
	json_t *evs = map_file(file, topic);
	if (!evs)
		return;
	ok(json_array_size(evs) == 5, "%s: 5 events (got %zu)", topic,
	   json_array_size(evs));
	json_t *u = find(evs, "OrderUpdated");
	ok(u && strncmp(str(u, "event_id"),
			"shopify:820982911946154500:updated:", 35) == 0 &&
		   strlen(str(u, "event_id")) == 35 + 16,
	   "%s: OrderUpdated named by a 64-bit content hash", topic);
	is_json(u, "payload.email", "\"jon@example.com\"");
	is_json(u, "payload.note", "null");
	is_json(u, "payload.totals.total", "{\"amount\":41495,\"currency\":\"USD\"}");
	is_json(u, "payload.totals.shipping", "{\"amount\":0,\"currency\":\"USD\"}");
	is_json(u, "payload.lines.1.line_id", "\"789012345678901200\"");
	json_t *a = find(evs, "ShippingAddressChanged");
	ok(a && strncmp(str(a, "event_id"),
			"shopify:820982911946154500:address:", 35) == 0,
	   "%s: ShippingAddressChanged named by the address's hash", topic);
	is_json(a, "payload.address.line1", "\"123 Shipping Street\"");
	ok(find(evs, "OrderPlaced") && find(evs, "PaymentStatusChanged") &&
		   find(evs, "OrderCancelled"),
	   "%s: placed, payment and cancellation facts too", topic);
	all_encode(evs, topic);
	json_decref(evs);
}

static void test_fulfillment(const char *file, const char *topic)
{
	json_t *evs = map_file(file, topic);
	if (!evs)
		return;
	ok(json_array_size(evs) == 1, "%s: one event (shipment_status is "
	   "null in the sample)", topic);
	json_t *f = find(evs, "FulfillmentCreated");
	is_json(f, "event_id", "\"shopify:820982911946154500:fulfillment:123456:d71e374fd93e8e9a\"");
	is_json(f, "order_id", "\"shopify:820982911946154500\"");
	is_json(f, "source_time", "1640995200000");
	is_json(f, "payload.fulfillment_id", "\"123456\"");
	is_json(f, "payload.carrier", "\"UPS\"");
	is_json(f, "payload.tracking_numbers", "[\"1z827wk74630\"]");
	is_json(f, "payload.tracking_urls",
		"[\"https://www.ups.com/WebTracking?loc=en_US&requester=ST&"
		"trackNums=1z827wk74630\"]");
	is_json(f, "payload.lines.0",
		"{\"line_id\":\"487817672276298560\",\"quantity\":1,\"sku\":"
		"\"SKU2006-001\"}");
	ok(json_array_size(json_object_get(json_object_get(f, "payload"),
					   "lines")) == 5,
	   "%s: five lines", topic);
	all_encode(evs, topic);
	json_decref(evs);
}

static void test_refund(void)
{
	json_t *evs = map_file("refunds_create.json", "refunds/create");
	if (!evs)
		return;
	ok(json_array_size(evs) == 1, "refunds/create: one event");
	json_t *r = find(evs, "RefundIssued");
	is_json(r, "event_id",
		"\"shopify:820982911946154500:refund:890088186047892400\"");
	is_json(r, "payload.refund_id", "\"890088186047892400\"");
	/* 75.00 + 10.00; the transactions name no currency, the lines USD */
	is_json(r, "payload.amount", "{\"amount\":8500,\"currency\":\"USD\"}");
	is_json(r, "payload.restock", "false");
	is_json(r, "payload.reason", "\"Things were damaged\"");
	is_json(r, "payload.lines.3",
		"{\"line_id\":\"976318377106520300\",\"quantity\":1,\"sku\":"
		"\"SKU2006-020\"}");
	is_json(r, "source_time", "1640995200000");
	all_encode(evs, "refunds/create");
	json_decref(evs);
}

static void test_returns(void)
{
	json_t *evs = map_file("returns_request.json", "returns/request");
	if (!evs)
		return;
	json_t *r = find(evs, "ReturnRequested");
	is_json(r, "event_id",
		"\"shopify:4783296544821:return:123134564567890:requested\"");
	is_json(r, "order_id", "\"shopify:4783296544821\"");
	is_json(r, "payload", "{\"lines\":[],\"reason\":null,\"return_id\":"
			      "\"123134564567890\"}");
	is_json(r, "source_time", "1767225999123");
	json_decref(evs);
	/* the same return under every returns topic: one state each */
	static const char *const topics[][2] = {
		{"returns/approve", "ReturnApproved:approved"},
		{"returns/decline", "ReturnDeclined:declined"},
		{"returns/cancel", "ReturnClosed:canceled"},
		{"returns/close", "ReturnClosed:closed"},
		{"returns/reopen", "ReturnApproved:reopened"},
		{"returns/process", "ReturnReceived:received:"},
	};
	for (size_t i = 0; i < sizeof(topics) / sizeof(*topics); i++) {
		evs = map_file("returns_request.json", topics[i][0]);
		if (!evs)
			continue;
		json_t *e = json_array_get(evs, 0);
		char want[256];
		const char *colon = strchr(topics[i][1], ':');
		snprintf(want, sizeof(want),
			 "shopify:4783296544821:return:123134564567890:%s",
			 colon + 1);
		ok(json_array_size(evs) == 1 &&
			   strncmp(str(e, "type"), topics[i][1],
				   (size_t)(colon - topics[i][1])) == 0 &&
			   strncmp(str(e, "event_id"), want, strlen(want)) == 0,
		   "%s: %s %s", topics[i][0], str(e, "type"),
		   str(e, "event_id"));
		all_encode(evs, topics[i][0]);
		json_decref(evs);
	}
	/* a declined return says why; Shopify's enum, lower case */
	wb_err rc;
	char msg[512] = "";
	evs = map_str("returns/decline",
		      "{\"id\":945000955,\"order\":{\"id\":820982911946154508},"
		      "\"status\":\"declined\",\"decline\":{\"reason\":"
		      "\"FINAL_SALE\",\"note\":\"sorry\"},\"return_line_items\":"
		      "[{\"id\":1,\"quantity\":2,\"fulfillment_line_item\":{\"id\":7,"
		      "\"line_item\":{\"id\":866550311766439020,\"sku\":"
		      "\"IPOD-342-N\"}}}]}",
		      &rc, msg, sizeof(msg));
	json_t *d = json_array_get(evs, 0);
	ok(rc == WB_OK, "decline with a reason maps (%s)", msg);
	is_json(d, "payload",
		"{\"lines\":[{\"line_id\":\"866550311766439020\",\"quantity\":2,"
		"\"sku\":\"IPOD-342-N\"}],\"reason\":\"final_sale\","
		"\"return_id\":\"945000955\"}");
	json_decref(evs);
}

/* ---- properties ------------------------------------------------------------- */

/* An orders/updated of our own: paid, and a new address. */
static const char *PAID_MOVED =
	"{\"id\":820982911946154508,\"admin_graphql_api_id\":"
	"\"gid://shopify/Order/820982911946154508\",\"name\":\"#1001\","
	"\"email\":\"jon@example.com\",\"currency\":\"USD\","
	"\"created_at\":\"2026-01-01T00:00:00Z\",\"updated_at\":"
	"\"2026-01-01T00:05:00Z\",\"financial_status\":\"paid\","
	"\"cancelled_at\":null,\"total_price_set\":{\"shop_money\":{\"amount\":"
	"\"219.88\",\"currency_code\":\"USD\"}},\"current_total_price_set\":"
	"{\"shop_money\":{\"amount\":\"219.88\",\"currency_code\":\"USD\"}},"
	"\"line_items\":[{\"id\":866550311766439020,\"sku\":\"IPOD-342-N\","
	"\"title\":\"IPod Nano - 8GB\",\"quantity\":1,\"current_quantity\":1,"
	"\"price\":\"198.00\"}],\"shipping_address\":{\"first_name\":\"Steve\","
	"\"last_name\":\"Shipper\",\"address1\":\"9 New Road\",\"address2\":"
	"\"Apt 4\",\"city\":\"Louisville\",\"province\":\"Kentucky\",\"zip\":"
	"\"40202\",\"country_code\":\"US\"}}";

static void test_multi_event(void)
{
	wb_err rc;
	char msg[512] = "";
	json_t *evs = map_str("orders/updated", PAID_MOVED, &rc, msg,
			      sizeof(msg));
	ok(rc == WB_OK, "our orders/updated maps (%s)", msg);
	json_t *pay = find(evs, "PaymentStatusChanged");
	json_t *addr = find(evs, "ShippingAddressChanged");
	ok(pay && addr, "one webhook gives both PaymentStatusChanged and "
	   "ShippingAddressChanged (%zu events)", json_array_size(evs));
	is_json(pay, "event_id", "\"shopify:820982911946154508:payment:paid\"");
	is_json(pay, "payload",
		"{\"amount_paid\":{\"amount\":21988,\"currency\":\"USD\"},"
		"\"status\":\"paid\"}");
	/* no X-Shopify-Triggered-At: updated_at */
	is_json(pay, "source_time", "1767225900000");
	is_json(addr, "payload.address",
		"{\"city\":\"Louisville\",\"company\":null,\"country_code\":"
		"\"US\",\"line1\":\"9 New Road\",\"line2\":\"Apt 4\",\"name\":"
		"\"Steve Shipper\",\"phone\":null,\"postal_code\":\"40202\","
		"\"region\":\"Kentucky\"}");
	is_json(find(evs, "OrderPlaced"), "payload.lines.0.unit_price",
		"{\"amount\":19800,\"currency\":\"USD\"}");
	all_encode(evs, "our orders/updated");

	/* X-Shopify-Triggered-At wins for facts without a time of their own */
	struct wb_shopify_ctx c = ctx("orders/paid");
	c.triggered_at = 1767226000123LL;
	json_t *evs2 = json_array();
	rc = wb_shopify_map_webhook(&c, PAID_MOVED, strlen(PAID_MOVED), evs2,
				    msg, sizeof(msg));
	is_json(find(evs2, "PaymentStatusChanged"), "source_time",
		"1767226000123");
	is_json(find(evs2, "OrderPlaced"), "source_time", "1767225600000");

	/* the same fact under another topic has the same event_id */
	char a[4096], b[4096];
	ids_of(evs, a, sizeof(a));
	ids_of(evs2, b, sizeof(b));
	ok(strcmp(a, b) == 0, "orders/paid and orders/updated with the same "
	   "order give the same event_ids");
	json_decref(evs2);

	/* a redelivery (same body, new delivery ids) gives the same ids; the
	 * delivery ids only move correlation/causation */
	c = ctx("orders/updated");
	c.webhook_id = "another-delivery";
	c.event_id = NULL;
	evs2 = json_array();
	wb_shopify_map_webhook(&c, PAID_MOVED, strlen(PAID_MOVED), evs2, msg,
			       sizeof(msg));
	ids_of(evs2, b, sizeof(b));
	ok(strcmp(a, b) == 0, "a redelivery gives the same event_ids");
	is_json(json_array_get(evs2, 0), "correlation_id",
		"\"shopify-webhook:another-delivery\"");
	is_json(json_array_get(evs2, 0), "causation_id", "null");
	json_decref(evs2);

	/* and orders/create of the same order omits the updates */
	evs2 = map_str("orders/create", PAID_MOVED, &rc, msg, sizeof(msg));
	ok(rc == WB_OK && !find(evs2, "OrderUpdated") &&
		   !find(evs2, "ShippingAddressChanged") &&
		   find(evs2, "OrderPlaced") && find(evs2, "PaymentStatusChanged"),
	   "orders/create: placement and state, no update events");
	json_decref(evs2);
	json_decref(evs);
}

static void test_exact_ids(void)
{
	wb_err rc;
	char msg[512] = "";
	/* written by us: the unrounded id (the samples' was rounded by JS) */
	json_t *evs = map_str("orders/paid", PAID_MOVED, &rc, msg, sizeof(msg));
	is_json(json_array_get(evs, 0), "order_id",
		"\"shopify:820982911946154508\"");
	is_json(find(evs, "OrderPlaced"), "payload.lines.0.line_id",
		"\"866550311766439020\"");
	json_decref(evs);
	/* the largest 64-bit id; and a GID alone */
	evs = map_str("refunds/create",
		      "{\"id\":9223372036854775807,\"order_id\":"
		      "9223372036854775806,\"created_at\":\"2026-01-02T00:00:00Z\","
		      "\"transactions\":[{\"kind\":\"refund\",\"status\":\"success\","
		      "\"amount\":\"1.50\",\"currency\":\"EUR\"}]}",
		      &rc, msg, sizeof(msg));
	ok(rc == WB_OK, "refund with INT64_MAX ids maps (%s)", msg);
	is_json(json_array_get(evs, 0), "event_id",
		"\"shopify:9223372036854775806:refund:9223372036854775807\"");
	is_json(json_array_get(evs, 0), "payload.amount",
		"{\"amount\":150,\"currency\":\"EUR\"}");
	json_decref(evs);
	evs = map_str("fulfillments/update",
		      "{\"admin_graphql_api_id\":\"gid://shopify/Fulfillment/"
		      "18446744073709551615\",\"admin_graphql_api_order_id\":"
		      "\"gid://shopify/Order/820982911946154508\",\"status\":"
		      "\"success\",\"shipment_status\":\"in_transit\","
		      "\"tracking_number\":\"1Z999\",\"tracking_company\":\"UPS\","
		      "\"updated_at\":\"2026-01-03T10:00:00Z\",\"line_items\":[]}",
		      &rc, msg, sizeof(msg));
	ok(rc == WB_OK, "fulfillment named by GIDs only maps (%s)", msg);
	is_json(json_array_get(evs, 0), "event_id",
		"\"shopify:820982911946154508:fulfillment:18446744073709551615:2dd71f98eb54c2e3\"");
	json_t *s = find(evs, "ShipmentStatusChanged");
	is_json(s, "event_id",
		"\"shopify:820982911946154508:fulfillment:18446744073709551615"
		":shipment:in_transit\"");
	is_json(s, "payload",
		"{\"carrier\":\"UPS\",\"carrier_time\":null,"
		"\"estimated_delivery\":null,\"fulfillment_id\":"
		"\"18446744073709551615\",\"location\":null,\"status\":"
		"\"in_transit\",\"tracking_number\":\"1Z999\"}");
	is_json(s, "source_time", "1767434400000");
	all_encode(evs, "fulfillment by GID");
	json_decref(evs);
}

static void expect_error(const char *topic, const char *body, wb_err want,
			 const char *what, const char *needle)
{
	wb_err rc;
	char msg[512] = "";
	json_t *evs = map_str(topic, body, &rc, msg, sizeof(msg));
	ok(rc == want && json_array_size(evs) == 0 && strstr(msg, needle),
	   "%s: %s (%s)", what, wb_strerror(rc), msg);
	json_decref(evs);
}

static void test_bad_inputs(void)
{
	expect_error("orders/create", "{\"id\": 1,", WB_EPARSE,
		     "truncated JSON", "invalid JSON");
	expect_error("orders/create", "[1,2]", WB_ESCHEMA, "not an object",
		     "not a JSON object");
	expect_error("products/update", "{\"id\":1}", WB_ENOTFOUND,
		     "unknown topic", "products/update");
	expect_error("orders/create", "{\"name\":\"#1\"}", WB_ESCHEMA,
		     "order without id", "no usable id");
	expect_error("orders/create", "{\"id\":-5}", WB_ESCHEMA,
		     "negative id", "no usable id");
	expect_error("orders/create", "{\"id\":1.5e3}", WB_ESCHEMA,
		     "id as a double", "no usable id");
	expect_error("orders/create", "{\"id\":\"12a\"}", WB_ESCHEMA,
		     "id with letters", "no usable id");
	expect_error("orders/create",
		     "{\"id\":123456789012345678901}", WB_EPARSE,
		     "id over 64 bits", "invalid JSON");
	expect_error("orders/create",
		     "{\"id\":1,\"currency\":\"USD\",\"total_price\":\"1.234\","
		     "\"line_items\":[]}",
		     WB_ESCHEMA, "three decimals in USD", "refusing to round");
	expect_error("orders/create",
		     "{\"id\":1,\"currency\":\"USD\",\"line_items\":[]}",
		     WB_ESCHEMA, "order without a total", "no total_price_set");
	expect_error("fulfillments/create", "{\"id\":5,\"status\":\"success\"}",
		     WB_ESCHEMA, "fulfillment without an order", "no order id");
	expect_error("refunds/create",
		     "{\"id\":5,\"order_id\":6,\"transactions\":[]}", WB_ESCHEMA,
		     "refund with no currency anywhere", "no currency");
	expect_error("orders/create",
		     "{\"id\":1,\"currency\":\"USD\",\"total_price\":\"1.00\","
		     "\"line_items\":[{\"id\":2,\"quantity\":99999999999,"
		     "\"price\":\"1.00\"}]}",
		     WB_ESCHEMA, "quantity over 32 bits", "not a count");
	expect_error("orders/edited", "{\"order_edit\":{\"id\":3}}", WB_ESCHEMA,
		     "order edit without an order", "no order id");
	/* nesting: 65 levels is refused before jansson recurses */
	char deep[300] = "{\"id\":1,\"x\":";
	size_t n = strlen(deep);
	for (int i = 0; i < 64; i++)
		deep[n++] = '[';
	for (int i = 0; i < 64; i++)
		deep[n++] = ']';
	deep[n++] = '}';
	deep[n] = '\0';
	expect_error("orders/create", deep, WB_EPARSE, "65 levels deep",
		     "nested deeper");
	/* the shop domain is the tenant: required and plain */
	struct wb_shopify_ctx c = ctx("orders/create");
	char msg[512] = "";
	json_t *evs = json_array();
	c.shop = "evil shop/..";
	ok(wb_shopify_map_webhook(&c, PAID_MOVED, strlen(PAID_MOVED), evs, msg,
				  sizeof(msg)) == WB_ESCHEMA &&
		   json_array_size(evs) == 0,
	   "a shop domain with spaces and slashes is refused (%s)", msg);
	c.shop = NULL;
	ok(wb_shopify_map_webhook(&c, PAID_MOVED, strlen(PAID_MOVED), evs, msg,
				  sizeof(msg)) == WB_ESCHEMA,
	   "no shop domain is refused (%s)", msg);
	/* delivery ids that are not plain are dropped, not trusted */
	c = ctx("orders/paid");
	c.webhook_id = "bad id\twith tabs";
	ok(wb_shopify_map_webhook(&c, PAID_MOVED, strlen(PAID_MOVED), evs, msg,
				  sizeof(msg)) == WB_OK,
	   "odd webhook id: still maps");
	is_json(json_array_get(evs, 0), "correlation_id", "null");
	json_decref(evs);
	/* a cancelled fulfillment we never saw has nothing to record */
	expect_error("fulfillments/update",
		     "{\"id\":5,\"order_id\":6,\"status\":\"cancelled\"}",
		     WB_ESCHEMA, "cancelled fulfillment", "no fact");
}

/* The FulfillmentCreated event_id that body (a JSON value) gives under
 * topic, into out ("" when it gives none). */
static void fulfillment_id_of(const char *topic, json_t *body, char *out,
			      size_t n)
{
	char *text = json_dumps(body, JSON_COMPACT);
	char msg[512] = "";
	wb_err rc;
	json_t *evs = map_str(topic, text, &rc, msg, sizeof(msg));
	free(text);
	json_t *f = rc ? NULL : find(evs, "FulfillmentCreated");
	snprintf(out, n, "%s", f ? str(f, "event_id") : "");
	if (rc)
		diag("%s: %s", topic, msg);
	json_decref(evs);
}

/* A fulfillment created without tracking and updated with it is two
 * facts: the update must not be dropped as a repeat of the create. The
 * same tracking again (a redelivery, the other topic) is the same fact. */
static void test_fulfillment_tracking(void)
{
	size_t len;
	char *text = slurp(fixtures, "fulfillments_create.json", &len);
	json_t *with = text ? json_loadb(text, len, 0, NULL) : NULL;
	free(text);
	ok(with != NULL, "fulfillment sample loads");
	if (!with)
		return;
	json_t *bare = json_deep_copy(with);
	json_object_set_new(bare, "tracking_company", json_null());
	json_object_set_new(bare, "tracking_number", json_null());
	json_object_set_new(bare, "tracking_numbers", json_array());
	json_object_set_new(bare, "tracking_url", json_null());
	json_object_set_new(bare, "tracking_urls", json_array());
	json_t *other = json_deep_copy(with);
	json_object_set_new(other, "tracking_numbers",
			    json_pack("[s]", "1z827wk74631"));
	char a[256], b[256], b2[256], b3[256], c3[256];
	fulfillment_id_of("fulfillments/create", bare, a, sizeof(a));
	fulfillment_id_of("fulfillments/update", with, b, sizeof(b));
	fulfillment_id_of("fulfillments/update", with, b2, sizeof(b2));
	fulfillment_id_of("fulfillments/create", with, b3, sizeof(b3));
	fulfillment_id_of("fulfillments/update", other, c3, sizeof(c3));
	const char *pre = "shopify:820982911946154500:fulfillment:123456:";
	ok(strncmp(a, pre, strlen(pre)) == 0 && strncmp(b, pre, strlen(pre)) == 0,
	   "both ids name the fulfillment (%s, %s)", a, b);
	ok(*a && strcmp(a, b) != 0,
	   "tracking added by fulfillments/update: a new event_id");
	ok(strcmp(b, b2) == 0 && strcmp(b, b3) == 0,
	   "the same tracking again (redelivery, other topic): the same id");
	ok(*c3 && strcmp(c3, b) != 0, "another tracking number: a new id");
	json_decref(bare);
	json_decref(other);
	json_decref(with);
}

/* ---- poll -------------------------------------------------------------------- */

static json_t *map_node(json_t *node, wb_err *rc, char *msg, size_t msglen)
{
	struct wb_shopify_ctx c = {.shop = SHOP, .triggered_at = -1,
				   .now_ms = NOW, .source = "shopify-poll"};
	json_t *evs = json_array();
	*rc = wb_shopify_map_graphql_order(&c, node, evs, msg, msglen);
	return evs;
}

static bool has_id(json_t *evs, const char *id)
{
	size_t i;
	json_t *e;
	json_array_foreach(evs, i, e)
		if (strcmp(str(e, "event_id"), id) == 0)
			return true;
	return false;
}

static void test_poll_agrees(void)
{
	char dir[8192], msg[512] = "";
	snprintf(dir, sizeof(dir), "%s/tests/fixtures/shopify-graphql", root);
	size_t len;
	char *text = slurp(dir, "orders.json", &len);
	json_t *nodes = text ? json_loadb(text, len, 0, NULL) : NULL;
	free(text);
	ok(json_array_size(nodes) == 7, "GraphQL fixture: 7 order nodes");
	if (!nodes)
		return;
	wb_err rc;
	json_t *poll = map_node(json_array_get(nodes, 0), &rc, msg, sizeof(msg));
	ok(rc == WB_OK, "poll node 1 maps (%s)", msg);
	all_encode(poll, "poll node 1");
	json_t *snap = find(poll, "ChannelSnapshotObserved");
	is_json(snap, "event_id",
		"\"shopify:820982911946154500:snapshot:1640995200000\"");
	is_json(snap, "payload",
		"{\"cancelled\":true,\"channel_updated_at\":1640995200000,"
		"\"financial_status\":\"voided\",\"fulfillment_status\":"
		"\"unfulfilled\",\"observed_at\":1767225999123,\"total\":"
		"{\"amount\":41495,\"currency\":\"USD\"},\"tracking_numbers\":"
		"[\"1z827wk74630\"]}");
	is_json(snap, "source", "\"shopify-poll\"");
	is_json(snap, "correlation_id", "null");
	/* every fact the webhooks give for this order, the poll gives with the
	 * same event_id: a dropped webhook is repaired, nothing doubled */
	static const char *const files[][2] = {
		{"orders_updated.json", "orders/updated"},
		{"fulfillments_create.json", "fulfillments/create"},
		{"refunds_create.json", "refunds/create"}};
	for (size_t f = 0; f < 3; f++) {
		json_t *wh = map_file(files[f][0], files[f][1]);
		size_t i;
		json_t *e;
		bool all = wh != NULL;
		json_array_foreach(wh, i, e) {
			if (!has_id(poll, str(e, "event_id"))) {
				diag("poll lacks %s", str(e, "event_id"));
				all = false;
			}
		}
		ok(all, "poll gives every event_id of %s", files[f][1]);
		json_decref(wh);
	}
	is_json(find(poll, "RefundIssued"), "payload.amount",
		"{\"amount\":8500,\"currency\":\"USD\"}");
	json_decref(poll);
	/* the same fulfillment before it had tracking: the poll's id is the
	 * webhook's for that state too */
	json_t *node = json_deep_copy(json_array_get(nodes, 0));
	json_object_set_new(json_array_get(json_object_get(node, "fulfillments"),
					   0),
			    "trackingInfo", json_array());
	poll = map_node(node, &rc, msg, sizeof(msg));
	json_decref(node);
	size_t flen;
	char *ftext = slurp(fixtures, "fulfillments_create.json", &flen);
	json_t *bare = ftext ? json_loadb(ftext, flen, 0, NULL) : NULL;
	free(ftext);
	json_object_set_new(bare, "tracking_company", json_null());
	json_object_set_new(bare, "tracking_number", json_null());
	json_object_set_new(bare, "tracking_numbers", json_array());
	json_object_set_new(bare, "tracking_url", json_null());
	json_object_set_new(bare, "tracking_urls", json_array());
	char want[256];
	fulfillment_id_of("fulfillments/create", bare, want, sizeof(want));
	json_decref(bare);
	json_t *pf = find(poll, "FulfillmentCreated");
	ok(rc == WB_OK && pf && *want && strcmp(str(pf, "event_id"), want) == 0,
	   "poll of the fulfillment without tracking: the webhook's id (%s)",
	   pf ? str(pf, "event_id") : "none");
	json_decref(poll);
	/* node 2 carries the return of returns_request.json, still requested */
	poll = map_node(json_array_get(nodes, 1), &rc, msg, sizeof(msg));
	ok(rc == WB_OK &&
		   has_id(poll, "shopify:4783296544821:return:"
				"123134564567890:requested"),
	   "poll of the returns sample's order gives the return request");
	json_decref(poll);
	json_decref(nodes);
}

static void test_pages(void)
{
	char msg[512] = "";
	struct wb_shopify_page pg;
	const char *page =
		"{\"data\":{\"orders\":{\"edges\":[{\"cursor\":\"c1\",\"node\":"
		"{\"id\":\"gid://shopify/Order/1\"}},{\"cursor\":\"c2\",\"node\":"
		"{\"id\":\"gid://shopify/Order/2\"}}],\"pageInfo\":{\"hasNextPage\":"
		"true,\"endCursor\":\"c2\"}}},\"extensions\":{\"cost\":"
		"{\"requestedQueryCost\":502,\"actualQueryCost\":40,"
		"\"throttleStatus\":{\"maximumAvailable\":2000.0,"
		"\"currentlyAvailable\":1960,\"restoreRate\":100.0}}}}";
	wb_err rc = wb_shopify_page_parse(page, strlen(page), &pg, msg,
					  sizeof(msg));
	ok(rc == WB_OK && json_array_size(pg.nodes) == 2 && pg.has_next &&
		   strcmp(pg.end_cursor, "c2") == 0 && !pg.throttled,
	   "page with edges: 2 nodes, next page after c2 (%s)", msg);
	ok(pg.requested_cost == 502 && pg.actual_cost == 40 &&
		   pg.max_available == 2000 && pg.currently_available == 1960 &&
		   pg.restore_rate == 100,
	   "cost and throttle status read");
	wb_shopify_page_finish(&pg);
	const char *nodes = "{\"data\":{\"orders\":{\"nodes\":[{\"id\":1}],"
			    "\"pageInfo\":{\"hasNextPage\":false,\"endCursor\":"
			    "null}}}}";
	rc = wb_shopify_page_parse(nodes, strlen(nodes), &pg, msg, sizeof(msg));
	ok(rc == WB_OK && json_array_size(pg.nodes) == 1 && !pg.has_next &&
		   pg.requested_cost == -1,
	   "last page in nodes form, no cost extension");
	wb_shopify_page_finish(&pg);
	const char *thr = "{\"errors\":[{\"message\":\"Throttled\",\"extensions\":"
			  "{\"code\":\"THROTTLED\"}}],\"extensions\":{\"cost\":"
			  "{\"requestedQueryCost\":502,\"actualQueryCost\":null,"
			  "\"throttleStatus\":{\"maximumAvailable\":1000.0,"
			  "\"currentlyAvailable\":12,\"restoreRate\":50.0}}}}";
	rc = wb_shopify_page_parse(thr, strlen(thr), &pg, msg, sizeof(msg));
	ok(rc == WB_OK && pg.throttled && pg.currently_available == 12 &&
		   pg.actual_cost == -1,
	   "THROTTLED error: throttled, with the bucket's state");
	wb_shopify_page_finish(&pg);
	const char *err = "{\"errors\":[{\"message\":\"Access denied for orders "
			  "field.\",\"extensions\":{\"code\":\"ACCESS_DENIED\"}}]}";
	rc = wb_shopify_page_parse(err, strlen(err), &pg, msg, sizeof(msg));
	ok(rc == WB_EHTTP && strstr(msg, "ACCESS_DENIED") &&
		   strstr(msg, "Access denied"),
	   "other GraphQL errors are errors with the message (%s)", msg);
	rc = wb_shopify_page_parse(page, strlen(page) / 2, &pg, msg,
				   sizeof(msg));
	ok(rc == WB_EPARSE && strstr(msg, "truncated"),
	   "truncated page: a parse error (%s)", msg);
	const char *nopi = "{\"data\":{\"orders\":{\"nodes\":[]}}}";
	rc = wb_shopify_page_parse(nopi, strlen(nopi), &pg, msg, sizeof(msg));
	ok(rc == WB_ESCHEMA, "no pageInfo: refused (%s)", msg);
	const char *nocur = "{\"data\":{\"orders\":{\"nodes\":[],\"pageInfo\":"
			    "{\"hasNextPage\":true}}}}";
	rc = wb_shopify_page_parse(nocur, strlen(nocur), &pg, msg, sizeof(msg));
	ok(rc == WB_ESCHEMA, "next page without a cursor: refused (%s)", msg);
}

/* ---- HMAC ------------------------------------------------------------------- */

static void b64(const unsigned char *in, size_t n, char *out)
{
	static const char tbl[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = tbl[(v >> 18) & 63];
		out[o++] = tbl[(v >> 12) & 63];
		out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? tbl[v & 63] : '=';
	}
	out[o] = '\0';
}

static void test_hmac(void)
{
	const char *body = PAID_MOVED;
	const char *secrets[] = {"new-secret", "old-secret"};
	unsigned char mac[32];
	unsigned int n;
	char hdr[64], hex[65];
	HMAC(EVP_sha256(), "old-secret", 10, (const unsigned char *)body,
	     strlen(body), mac, &n);
	b64(mac, 32, hdr);
	ok(wb_shopify_hmac_valid(hdr, body, strlen(body), secrets, 2),
	   "signed with the old secret: valid during rotation");
	ok(!wb_shopify_hmac_valid(hdr, body, strlen(body), secrets, 1),
	   "old secret alone no longer configured: invalid");
	HMAC(EVP_sha256(), "new-secret", 10, (const unsigned char *)body,
	     strlen(body), mac, &n);
	b64(mac, 32, hdr);
	ok(wb_shopify_hmac_valid(hdr, body, strlen(body), secrets, 2),
	   "signed with the new secret: valid");
	wb_hex(mac, 32, hex);
	ok(!wb_shopify_hmac_valid(hex, body, strlen(body), secrets, 2),
	   "hex digest instead of base64: invalid");
	ok(!wb_shopify_hmac_valid(NULL, body, strlen(body), secrets, 2),
	   "missing header: invalid");
	ok(!wb_shopify_hmac_valid("", body, strlen(body), secrets, 2),
	   "empty header: invalid");
	int flips_caught = 0;
	for (int bit = 0; bit < 256; bit++) {
		unsigned char m2[32];
		memcpy(m2, mac, 32);
		m2[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		char h2[64];
		b64(m2, 32, h2);
		flips_caught += !wb_shopify_hmac_valid(h2, body, strlen(body),
						       secrets, 2);
	}
	ok(flips_caught == 256, "every 1-bit flip of the MAC is invalid");
	char *body2 = strdup(body);
	body2[10] ^= 1;
	ok(!wb_shopify_hmac_valid(hdr, body2, strlen(body2), secrets, 2),
	   "1-bit flip in the body: invalid");
	free(body2);
	const char *wrong[] = {"wrong"};
	ok(!wb_shopify_hmac_valid(hdr, body, strlen(body), wrong, 1),
	   "wrong secret: invalid");
	char padded[80];
	snprintf(padded, sizeof(padded), " %s", hdr);
	ok(!wb_shopify_hmac_valid(padded, body, strlen(body), secrets, 2),
	   "leading space: invalid (no lenient decoding)");
}

static void test_topics(void)
{
	static const char *const want[] = {
		"orders/create", "orders/updated", "orders/paid",
		"orders/cancelled", "orders/edited", "fulfillments/create",
		"fulfillments/update", "refunds/create", "returns/request",
		"returns/approve", "returns/decline", "returns/close",
		"returns/reopen", "returns/cancel", "returns/process"};
	size_t found = 0;
	for (size_t w = 0; w < sizeof(want) / sizeof(*want); w++)
		for (size_t i = 0; wb_shopify_topic(i); i++)
			found += strcmp(wb_shopify_topic(i), want[w]) == 0;
	ok(found == sizeof(want) / sizeof(*want), "every required topic is mapped");
	/* orders/edited: the edit is recorded */
	wb_err rc;
	char msg[512] = "";
	json_t *evs = map_str("orders/edited",
			      "{\"order_edit\":{\"id\":78912328793123780,"
			      "\"created_at\":\"2021-12-31T19:00:00-05:00\","
			      "\"committed_at\":\"2021-12-31T19:00:00-05:00\","
			      "\"order_id\":820982911946154500,\"line_items\":"
			      "{\"additions\":[{\"id\":78643924236718240,"
			      "\"delta\":1}],\"removals\":[]}}}",
			      &rc, msg, sizeof(msg));
	ok(rc == WB_OK, "orders/edited maps (%s)", msg);
	is_json(json_array_get(evs, 0), "event_id",
		"\"shopify:820982911946154500:edit:78912328793123780\"");
	is_json(json_array_get(evs, 0), "type", "\"OrderUpdated\"");
	all_encode(evs, "orders/edited");
	json_decref(evs);
}

/* Order bodies are pruned before they are parsed; the answer must be the
 * same as parsing them whole, for the samples (as published and compact)
 * and for bodies that make the pruning give up or that are invalid in a
 * part it skips. */
static void same_answer(const char *what, const char *topic,
			const char *body, size_t len)
{
	struct wb_shopify_ctx c = ctx(topic);
	json_t *a = json_array(), *b = json_array();
	char m1[512] = "", m2[512] = "";
	wb_err r1 = wb_shopify_map_webhook(&c, body, len, a, m1, sizeof(m1));
	wb_err r2 = wb_shopify_map_webhook_whole(&c, body, len, b, m2,
						 sizeof(m2));
	char *da = json_dumps(a, JSON_COMPACT | JSON_SORT_KEYS);
	char *db = json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS);
	ok(r1 == r2 && strcmp(da, db) == 0,
	   "pruned = whole: %s (%s, %zu events)", what, wb_strerror(r1),
	   json_array_size(a));
	free(da);
	free(db);
	json_decref(a);
	json_decref(b);
}

static void test_pruning(void)
{
	static const char *const files[] = {"orders_create.json",
					    "orders_updated.json",
					    "orders_cancelled.json"};
	for (size_t i = 0; i < 3; i++) {
		size_t len;
		char *body = slurp(fixtures, files[i], &len);
		if (!body)
			continue;
		same_answer(files[i], "orders/updated", body, len);
		json_t *j = json_loadb(body, len, 0, NULL);
		char *compact = json_dumps(j, JSON_COMPACT);
		same_answer("compact", "orders/paid", compact, strlen(compact));
		json_decref(j);
		free(compact);
		free(body);
	}
	same_answer("ours", "orders/updated", PAID_MOVED, strlen(PAID_MOVED));
	static const char *const odd[][2] = {
		{"\\u escape in a skipped string",
		 "{\"id\":5,\"customer\":{\"n\":\"\\u00e9\"},\"total_price\":"
		 "\"1.00\",\"currency\":\"EUR\",\"line_items\":[]}"},
		{"escaped key",
		 "{\"\\u0069d\":5,\"total_price\":\"1.00\",\"currency\":"
		 "\"EUR\",\"line_items\":[]}"},
		{"bad UTF-8 in a skipped string",
		 "{\"id\":5,\"customer\":\"\xc3\x28\",\"total_price\":\"1.00\","
		 "\"currency\":\"EUR\",\"line_items\":[]}"},
		{"integer over 64 bits in a skipped field",
		 "{\"id\":5,\"x\":123456789012345678901234,\"total_price\":"
		 "\"1.00\",\"currency\":\"EUR\",\"line_items\":[]}"},
		{"real overflow in a skipped field",
		 "{\"id\":5,\"x\":1e400,\"total_price\":\"1.00\","
		 "\"currency\":\"EUR\",\"line_items\":[]}"},
		{"control character in a skipped string",
		 "{\"id\":5,\"x\":\"a\tb\",\"total_price\":\"1.00\","
		 "\"currency\":\"EUR\",\"line_items\":[]}"},
		{"trailing garbage", "{\"id\":5,\"total_price\":\"1.00\","
				     "\"currency\":\"EUR\"} x"},
		{"line_items twice",
		 "{\"id\":5,\"total_price\":\"1.00\",\"currency\":\"EUR\","
		 "\"line_items\":[{\"id\":1,\"quantity\":1,\"price\":\"1.00\","
		 "\"tax_lines\":[{\"x\":1}]}],\"line_items\":[{\"id\":2,"
		 "\"quantity\":3,\"price\":\"2.00\",\"title\":\"T\"}]}"},
		{"line_items not objects",
		 "{\"id\":5,\"total_price\":\"1.00\",\"currency\":\"EUR\","
		 "\"line_items\":[1,2]}"},
		{"leading zero", "{\"id\":5,\"x\":012,\"total_price\":\"1.00\"}"},
	};
	for (size_t i = 0; i < sizeof(odd) / sizeof(*odd); i++)
		same_answer(odd[i][0], "orders/create", odd[i][1],
			    strlen(odd[i][1]));
}

int main(int argc, char **argv)
{
	json_object_seed(1);
	snprintf(root, sizeof(root), "%s", argc > 1 ? argv[1] : ".");
	const char *env = getenv("WAYBILL_FIXTURES");
	if (env)
		snprintf(fixtures, sizeof(fixtures), "%s/shopify", env);
	else
		snprintf(fixtures, sizeof(fixtures),
			 "%s/tests/fixtures/channels/shopify", root);
	test_orders_create();
	test_orders_updated("orders_updated.json", "orders/updated");
	test_orders_updated("orders_cancelled.json", "orders/cancelled");
	test_fulfillment("fulfillments_create.json", "fulfillments/create");
	test_fulfillment("fulfillments_update.json", "fulfillments/update");
	test_fulfillment_tracking();
	test_refund();
	test_returns();
	test_multi_event();
	test_exact_ids();
	test_bad_inputs();
	test_poll_agrees();
	test_pages();
	test_hmac();
	test_topics();
	test_pruning();
	return tap_done();
}
