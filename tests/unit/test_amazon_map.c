/*
 * test_amazon_map.c — the Amazon mapping without network or broker: money
 * strings into minor units (JPY, KWD, USD, overflow, garbage), SP-API times
 * (RFC 3339, the sandbox's 1970 dates and "1.569521782042E9"), every
 * OrderStatus into its events, prices Amazon wrote with no exact value,
 * mixed currencies, uneven line prices, and bad orders. Every event built
 * must pass the same encoder the ledger's input goes through.
 *
 * Fixtures: tests/fixtures/channels/amazon (Amazon's published
 * examples) and tests/fixtures/amazon (see its SOURCES.md), relative to
 * the source root (meson's workdir); WAYBILL_FIXTURES overrides the first.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tap.h"
#include "wb_ingest.h"

#define NOW 1767225999123LL

static const char *shared_dir(void)
{
	const char *d = getenv("WAYBILL_FIXTURES");
	return d ? d : "tests/fixtures/channels";
}

static json_t *load(const char *dir, const char *name)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	json_error_t e;
	json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
	if (!j)
		diag("cannot load %s: %s", path, e.text);
	return j;
}

/* ---- money ------------------------------------------------------------- */

static void money_ok(const char *s, const char *ccy, int64_t want)
{
	int64_t v = 0;
	char msg[256] = "";
	wb_err rc = wb_money_parse(s, strlen(s), ccy, strlen(ccy), &v, msg,
				   sizeof(msg));
	ok(rc == WB_OK && v == want, "money %s %s = %lld (got %lld %s)", s,
	   ccy, (long long)want, (long long)v, msg);
}

static void money_bad(const char *s, const char *ccy, const char *why)
{
	int64_t v = 0;
	char msg[256] = "";
	wb_err rc = wb_money_parse(s, strlen(s), ccy, strlen(ccy), &v, msg,
				   sizeof(msg));
	ok(rc != WB_OK && strstr(msg, why), "money '%s' %s refused: %s", s,
	   ccy, msg);
}

static void test_money(void)
{
	money_ok("25.99", "USD", 2599);
	money_ok("11.01", "USD", 1101);
	money_ok("0.00", "USD", 0);
	money_ok("7", "USD", 700);
	money_ok("-3.5", "EUR", -350);
	money_ok("10.00", "JPY", 10);
	money_ok("2599", "JPY", 2599);
	money_ok("1.5", "KWD", 1500);
	money_ok("0.1", "USD", 10); /* 0.1 as a double is not 0.1 */
	money_ok("92233720368547758.07", "USD", INT64_MAX);
	money_ok("-92233720368547758.08", "USD", INT64_MIN);
	money_bad("25.99", "JPY", "more decimals than JPY's 0");
	money_bad("1.001", "USD", "more decimals");
	money_bad("92233720368547758.08", "USD", "too large");
	money_bad("99999999999999999999", "USD", "too large");
	money_bad("", "USD", "not a decimal");
	money_bad(".5", "USD", "not a decimal");
	money_bad("5.", "USD", "not a decimal");
	money_bad("1e3", "USD", "not a decimal");
	money_bad(" 1", "USD", "not a decimal");
	money_bad("1,000.00", "USD", "not a decimal");
	money_bad("+1", "USD", "not a decimal");
	money_bad("1.2.3", "USD", "not a decimal");
	money_bad("1", "usd", "ISO-4217");
	money_bad("1", "US", "ISO-4217");
	ok(wb_currency_exponent("JPY", 3) == 0 &&
		   wb_currency_exponent("USD", 3) == 2 &&
		   wb_currency_exponent("BHD", 3) == 3 &&
		   wb_currency_exponent("GBP", 3) == 2,
	   "currency exponents JPY 0, USD 2, BHD 3, GBP 2");
}

/* ---- times ------------------------------------------------------------- */

static void test_times(void)
{
	int64_t t = -1;
	ok(wb_amazon_parse_time("1.569521782042E9", &t) == WB_OK &&
		   t == 1569521782042LL,
	   "sandbox CreatedBefore 1.569521782042E9 = 1569521782042 ms (%lld)",
	   (long long)t);
	ok(wb_amazon_parse_time("1970-01-19T03:58:30Z", &t) == WB_OK &&
		   t == 1569510000LL,
	   "sandbox 1970 PurchaseDate parses (%lld)", (long long)t);
	ok(wb_amazon_parse_time("2017-01-20T19:49:35Z", &t) == WB_OK &&
		   t == 1484941775000LL,
	   "RFC 3339 (%lld)", (long long)t);
	ok(wb_amazon_parse_time("2017-01-20T19:49:35.250+01:00", &t) ==
			   WB_OK &&
		   t == 1484938175250LL,
	   "RFC 3339 with fraction and offset");
	ok(wb_amazon_parse_time("1E3", &t) == WB_OK && t == 1000000,
	   "1E3 s = 1000000 ms");
	ok(wb_amazon_parse_time("12.5", &t) == WB_OK && t == 12500,
	   "12.5 s = 12500 ms");
	ok(wb_amazon_parse_time("1.2.3E9", &t) != WB_OK &&
		   wb_amazon_parse_time("soon", &t) != WB_OK &&
		   wb_amazon_parse_time("", &t) != WB_OK &&
		   wb_amazon_parse_time(NULL, &t) != WB_OK &&
		   wb_amazon_parse_time("1E99", &t) != WB_OK,
	   "garbage times refused");
}

/* ---- mapping ----------------------------------------------------------- */

static const struct wb_amazon_map_opts OPTS = {"ATVPDKIKX0DER", "amazon-poll",
					       NOW};

struct mapped {
	json_t *events, *problems;
	wb_err rc;
	char msg[512];
	char types[1024]; /* "OrderPlaced,PaymentStatusChanged,..." */
};

static json_t *payload(const struct mapped *m, const char *type)
{
	size_t i;
	json_t *e;
	json_array_foreach(m->events, i, e) {
		if (strcmp(json_string_value(json_object_get(e, "type")), type) ==
		    0)
			return json_object_get(e, "payload");
	}
	return NULL;
}

static const char *event_id(const struct mapped *m, const char *type)
{
	size_t i;
	json_t *e;
	json_array_foreach(m->events, i, e) {
		if (strcmp(json_string_value(json_object_get(e, "type")), type) ==
		    0)
			return json_string_value(json_object_get(e, "event_id"));
	}
	return "";
}

/* Maps and checks every event through the ingest encoder. */
static void map(const json_t *order, const json_t *items, struct mapped *m)
{
	m->events = json_array();
	m->problems = json_array();
	m->msg[0] = m->types[0] = '\0';
	m->rc = wb_amazon_map_order(order, items, &OPTS, m->events,
				    m->problems, m->msg, sizeof(m->msg));
	size_t i;
	json_t *e;
	bool all_encode = true;
	wb_buf buf;
	wb_buf_init(&buf);
	json_array_foreach(m->events, i, e) {
		const char *t = json_string_value(json_object_get(e, "type"));
		strcat(m->types, i ? "," : "");
		strcat(m->types, t ? t : "?");
		json_t *copy = json_deep_copy(e);
		struct wb_ingest_record rec;
		char msg[512];
		if (wb_ingest_event_json(copy, "x", NOW, &buf, &rec, msg,
					 sizeof(msg)) != WB_OK) {
			all_encode = false;
			diag("event %zu (%s) does not encode: %s", i, t, msg);
		}
		json_decref(copy);
	}
	wb_buf_finish(&buf);
	if (json_array_size(m->events))
		ok(all_encode, "every event of the order encodes (%s)",
		   m->types);
}

static void unmap(struct mapped *m)
{
	json_decref(m->events);
	json_decref(m->problems);
}

static json_t *with_status(const json_t *order, const char *status)
{
	json_t *o = json_deep_copy(order);
	json_object_set_new(o, "OrderStatus", json_string(status));
	return o;
}

/* payload.Orders[0] of a getOrders answer, payload.OrderItems of a
 * getOrderItems answer */
static json_t *first_order(json_t *orders)
{
	return json_array_get(
		json_object_get(json_object_get(orders, "payload"), "Orders"), 0);
}

static json_t *items_of(json_t *items)
{
	return json_object_get(json_object_get(items, "payload"), "OrderItems");
}

static void test_sandbox(json_t *orders, json_t *items)
{
	json_t *order = first_order(orders);
	json_t *its = items_of(items);
	struct mapped m;
	map(order, its, &m);
	ok(m.rc == WB_OK && json_array_size(m.problems) == 0,
	   "sandbox order maps without problems (%s)", m.msg);
	ok(strcmp(m.types, "OrderPlaced,OrderUpdated,PaymentStatusChanged,"
			   "ShipmentStatusChanged,ChannelSnapshotObserved") ==
		   0,
	   "Unshipped Easy Ship order: %s", m.types);
	json_t *e0 = json_array_get(m.events, 0);
	ok(strcmp(json_string_value(json_object_get(e0, "order_id")),
		  "amazon:902-1845936-5435065") == 0 &&
		   strcmp(json_string_value(json_object_get(e0, "merchant")),
			  "ATVPDKIKX0DER") == 0 &&
		   strcmp(json_string_value(json_object_get(e0, "channel")),
			  "amazon") == 0,
	   "order_id amazon:<AmazonOrderId>, merchant from the options");
	ok(json_integer_value(json_object_get(e0, "source_time")) ==
		   1569510000LL,
	   "1970 PurchaseDate kept as the source time, not refused");
	json_t *op = payload(&m, "OrderPlaced");
	json_t *line = json_array_get(json_object_get(op, "lines"), 0);
	json_t *totals = json_object_get(op, "totals");
	ok(json_integer_value(json_object_get(
		   json_object_get(totals, "total"), "amount")) == 1101 &&
		   json_integer_value(json_object_get(
			   json_object_get(totals, "tax"), "amount")) == 101 &&
		   json_integer_value(json_object_get(
			   json_object_get(totals, "subtotal"), "amount")) ==
			   1000,
	   "totals: OrderTotal 11.01, tax 1.01, subtotal 10.00 in cents");
	ok(line &&
		   strcmp(json_string_value(json_object_get(line, "line_id")),
			  "05015851154158") == 0 &&
		   strcmp(json_string_value(json_object_get(line, "sku")),
			  "NABetaASINB00551Q3CS") == 0 &&
		   json_integer_value(json_object_get(
			   json_object_get(line, "unit_price"), "amount")) ==
			   1000,
	   "line: OrderItemId, SellerSKU, unit price 10.00 USD");
	ok(strcmp(json_string_value(json_object_get(
			  payload(&m, "PaymentStatusChanged"), "status")),
		  "authorized") == 0,
	   "Unshipped: payment authorized");
	ok(strcmp(event_id(&m, "ChannelSnapshotObserved"),
		  "amazon:902-1845936-5435065:snapshot:1569512000") == 0,
	   "snapshot id from LastUpdateDate: %s",
	   event_id(&m, "ChannelSnapshotObserved"));
	json_t *snap = payload(&m, "ChannelSnapshotObserved");
	ok(json_integer_value(json_object_get(snap, "observed_at")) == NOW &&
		   strcmp(json_string_value(json_object_get(
				  snap, "fulfillment_status")),
			  "Unshipped") == 0,
	   "snapshot: observed_at is the poll time, Amazon status kept");

	/* deterministic: the same answer twice, the same events */
	struct mapped again;
	map(order, its, &again);
	ok(json_equal(m.events, again.events),
	   "same input, same events (re-polls dedupe by event_id)");
	unmap(&again);
	unmap(&m);

	/* every OrderStatus */
	static const struct {
		const char *status, *types, *payment;
	} cases[] = {
		{"PendingAvailability",
		 "OrderPlaced,PaymentStatusChanged,ShipmentStatusChanged,"
		 "ChannelSnapshotObserved",
		 "pending"},
		{"Pending",
		 "OrderPlaced,PaymentStatusChanged,ShipmentStatusChanged,"
		 "ChannelSnapshotObserved",
		 "pending"},
		{"Unshipped",
		 "OrderPlaced,OrderUpdated,PaymentStatusChanged,"
		 "ShipmentStatusChanged,ChannelSnapshotObserved",
		 "authorized"},
		{"PartiallyShipped",
		 "OrderPlaced,OrderUpdated,PaymentStatusChanged,"
		 "FulfillmentCreated,ShipmentStatusChanged,"
		 "ChannelSnapshotObserved",
		 "authorized"},
		{"Shipped",
		 "OrderPlaced,OrderUpdated,PaymentStatusChanged,"
		 "FulfillmentCreated,ShipmentStatusChanged,"
		 "ChannelSnapshotObserved",
		 "paid"},
		{"InvoiceUnconfirmed",
		 "OrderPlaced,OrderUpdated,PaymentStatusChanged,"
		 "FulfillmentCreated,ShipmentStatusChanged,"
		 "ChannelSnapshotObserved",
		 "paid"},
		{"Canceled",
		 "OrderPlaced,PaymentStatusChanged,ShipmentStatusChanged,"
		 "OrderCancelled,ChannelSnapshotObserved",
		 "voided"},
		{"Unfulfillable",
		 "OrderPlaced,ShipmentStatusChanged,OrderCancelled,"
		 "ChannelSnapshotObserved",
		 NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *o = with_status(order, cases[i].status);
		map(o, its, &m);
		ok(m.rc == WB_OK && strcmp(m.types, cases[i].types) == 0 &&
			   json_array_size(m.problems) == 0,
		   "%s -> %s", cases[i].status, m.types);
		json_t *pay = payload(&m, "PaymentStatusChanged");
		ok(cases[i].payment
			   ? pay && strcmp(json_string_value(json_object_get(
						   pay, "status")),
					   cases[i].payment) == 0
			   : !pay,
		   "%s: payment %s", cases[i].status,
		   cases[i].payment ? cases[i].payment : "not stated");
		if (strcmp(cases[i].status, "Shipped") == 0) {
			json_t *f = payload(&m, "FulfillmentCreated");
			json_t *l = json_array_get(json_object_get(f, "lines"),
						   0);
			ok(json_integer_value(json_object_get(l, "quantity")) ==
					   1 &&
				   strcmp(event_id(&m, "FulfillmentCreated"),
					  "amazon:902-1845936-5435065:"
					  "fulfillment:1") == 0,
			   "Shipped: everything ordered counts as shipped");
			ok(json_integer_value(json_object_get(
				   json_object_get(pay, "amount_paid"),
				   "amount")) == 1101,
			   "Shipped: paid 11.01");
		}
		if (strcmp(cases[i].status, "Canceled") == 0) {
			json_t *c = payload(&m, "OrderCancelled");
			ok(strcmp(json_string_value(
					  json_object_get(c, "reason")),
				  "customer") == 0 &&
				   strstr(json_string_value(
						  json_object_get(c, "note")),
					  "Found cheaper"),
			   "Canceled with a buyer request: reason customer, "
			   "the buyer's words in the note");
			json_t *noreq = json_deep_copy(its);
			json_object_del(json_array_get(noreq, 0),
					"BuyerRequestedCancel");
			struct mapped m2;
			map(o, noreq, &m2);
			ok(strcmp(json_string_value(json_object_get(
					  payload(&m2, "OrderCancelled"),
					  "reason")),
				  "other") == 0,
			   "Canceled without a buyer request: reason other");
			unmap(&m2);
			json_decref(noreq);
		}
		if (strcmp(cases[i].status, "Unfulfillable") == 0)
			ok(strcmp(json_string_value(json_object_get(
					  payload(&m, "OrderCancelled"),
					  "reason")),
				  "inventory") == 0,
			   "Unfulfillable: cancelled, reason inventory");
		unmap(&m);
		json_decref(o);
	}

	/* PartiallyShipped: what shipped so far, keyed by the count */
	json_t *o = with_status(order, "PartiallyShipped");
	json_t *two = json_deep_copy(its);
	json_t *it = json_array_get(two, 0);
	json_object_set_new(it, "QuantityOrdered", json_integer(3));
	json_object_set_new(it, "QuantityShipped", json_integer(2));
	json_object_set_new(it, "ItemPrice",
			    json_pack("{s:s,s:s}", "CurrencyCode", "USD",
				      "Amount", "17.95"));
	map(o, two, &m);
	json_t *f = payload(&m, "FulfillmentCreated");
	ok(json_integer_value(json_object_get(
		   json_array_get(json_object_get(f, "lines"), 0),
		   "quantity")) == 2 &&
		   strcmp(event_id(&m, "FulfillmentCreated"),
			  "amazon:902-1845936-5435065:fulfillment:2") == 0,
	   "PartiallyShipped: 2 of 3 shipped, id ends :fulfillment:2");
	/* 17.95 for 3 does not divide: 1 unit at 5.99 and 2 at 5.98 */
	json_t *lines = json_object_get(payload(&m, "OrderPlaced"), "lines");
	int64_t sum = 0, n = 0;
	size_t k;
	json_t *l;
	json_array_foreach(lines, k, l) {
		int64_t q = json_integer_value(json_object_get(l, "quantity"));
		n += q;
		sum += q * json_integer_value(json_object_get(
				   json_object_get(l, "unit_price"), "amount"));
	}
	ok(json_array_size(lines) == 2 && n == 3 && sum == 1795,
	   "uneven line price 17.95/3 split into exact lines (%zu lines, "
	   "qty %lld, sum %lld)",
	   json_array_size(lines), (long long)n, (long long)sum);
	unmap(&m);
	json_decref(two);
	json_decref(o);
}

static void test_examples(json_t *orders, json_t *items)
{
	/* getOrders example (Pending) with the getOrderItems example: JPY
	 * amounts with cents and a GBP gift wrap. */
	json_t *order = first_order(orders);
	json_t *its = items_of(items);
	struct mapped m;
	map(order, its, &m);
	ok(m.rc == WB_OK, "example order maps (%s)", m.msg);
	ok(strcmp(m.types, "PaymentStatusChanged,ChannelSnapshotObserved") ==
		   0,
	   "OrderPlaced left out: %s", m.types);
	const char *p0 = json_string_value(json_array_get(m.problems, 0));
	ok(p0 && strstr(p0, "OrderPlaced") && strstr(p0, "25.99") &&
		   strstr(p0, "JPY"),
	   "the reason names the JPY amount with no exact value: %s",
	   p0 ? p0 : "(none)");
	json_t *e = json_array_get(m.events, 0);
	ok(json_integer_value(json_object_get(e, "source_time")) ==
		   1484941775000LL,
	   "LastUpdateDate 2017-01-20T19:49:35Z is the source time");
	unmap(&m);

	/* The same items with yen amounts that exist: line currencies kept
	 * per line, sums in the order currency only where they are one. */
	json_t *jp = json_deep_copy(its);
	json_t *a = json_array_get(jp, 0), *b = json_array_get(jp, 1);
	json_object_set_new(a, "ItemPrice",
			    json_pack("{s:s,s:s}", "CurrencyCode", "JPY",
				      "Amount", "2599.00"));
	json_object_set_new(a, "ShippingPrice",
			    json_pack("{s:s,s:s}", "CurrencyCode", "JPY",
				      "Amount", "126"));
	json_object_del(a, "CODFee");
	json_object_set_new(b, "ItemPrice",
			    json_pack("{s:s,s:s}", "CurrencyCode", "GBP",
				      "Amount", "17.95"));
	json_t *o = with_status(order, "Unshipped");
	map(o, jp, &m);
	json_t *op = payload(&m, "OrderPlaced");
	json_t *l0 = json_array_get(json_object_get(op, "lines"), 0);
	json_t *l1 = json_array_get(json_object_get(op, "lines"), 1);
	ok(op && json_array_size(m.problems) == 0,
	   "yen items map (%zu problems)", json_array_size(m.problems));
	ok(l0 && l1 &&
		   json_integer_value(json_object_get(
			   json_object_get(l0, "unit_price"), "amount")) ==
			   2599 &&
		   strcmp(json_string_value(json_object_get(
				  json_object_get(l0, "unit_price"),
				  "currency")),
			  "JPY") == 0 &&
		   strcmp(json_string_value(json_object_get(
				  json_object_get(l1, "unit_price"),
				  "currency")),
			  "GBP") == 0,
	   "JPY 2599.00 = 2599 yen; the GBP line keeps GBP");
	json_t *totals = json_object_get(op, "totals");
	ok(strcmp(json_string_value(json_object_get(op, "currency")), "JPY") ==
			   0 &&
		   json_is_null(json_object_get(totals, "subtotal")) &&
		   json_integer_value(json_object_get(
			   json_object_get(totals, "shipping"), "amount")) ==
			   126,
	   "order currency JPY; subtotal unknown (mixed), shipping 126 yen");
	unmap(&m);
	json_decref(o);
	json_decref(jp);
}

static void test_bad(json_t *orders)
{
	json_t *order = first_order(orders);
	struct mapped m;
	json_t *s = json_string("x");
	map(s, NULL, &m);
	ok(m.rc != WB_OK && json_array_size(m.events) == 0,
	   "not an object: %s", m.msg);
	unmap(&m);
	json_decref(s);

	json_t *o = with_status(order, "Delivered");
	map(o, NULL, &m);
	ok(m.rc != WB_OK && strstr(m.msg, "Delivered") &&
		   json_array_size(m.events) == 0,
	   "unknown OrderStatus: %s", m.msg);
	unmap(&m);
	json_object_del(o, "OrderStatus");
	map(o, NULL, &m);
	ok(m.rc != WB_OK && strstr(m.msg, "missing"),
	   "no OrderStatus: %s", m.msg);
	unmap(&m);
	json_decref(o);

	static const char *const bad_ids[] = {"", "a b", "x\ny",
		"0123456789012345678901234567890123456789012345678901234567890123456789"};
	for (size_t i = 0; i < 4; i++) {
		o = json_deep_copy(order);
		json_object_set_new(o, "AmazonOrderId", json_string(bad_ids[i]));
		map(o, NULL, &m);
		ok(m.rc != WB_OK && strstr(m.msg, "AmazonOrderId"),
		   "bad AmazonOrderId %zu refused", i);
		unmap(&m);
		json_decref(o);
	}
	o = json_deep_copy(order);
	json_object_set_new(o, "AmazonOrderId", json_integer(5));
	map(o, NULL, &m);
	ok(m.rc != WB_OK, "numeric AmazonOrderId refused");
	unmap(&m);
	json_decref(o);

	o = json_deep_copy(order);
	json_t *obj = json_object();
	map(o, obj, &m);
	ok(m.rc != WB_OK && strstr(m.msg, "array"), "items not an array");
	unmap(&m);
	json_decref(obj);

	/* odd dates never lose the order */
	json_object_set_new(o, "PurchaseDate", json_string("soon"));
	json_object_set_new(o, "LastUpdateDate", json_integer(3));
	map(o, NULL, &m);
	json_t *e0 = json_array_get(m.events, 0);
	ok(m.rc == WB_OK &&
		   json_integer_value(json_object_get(e0, "source_time")) ==
			   NOW,
	   "unreadable dates fall back to the poll time");
	unmap(&m);

	/* items Amazon sent wrong: the OrderPlaced is left out, with why */
	json_t *its = json_pack("[{s:s},i]", "Title", "no id", 7);
	map(o, its, &m);
	ok(m.rc == WB_OK && !payload(&m, "OrderPlaced") &&
		   strstr(json_string_value(json_array_get(m.problems, 0)),
			  "OrderItemId"),
	   "item without OrderItemId: %s",
	   json_string_value(json_array_get(m.problems, 0)));
	unmap(&m);
	json_decref(its);
	its = json_pack("[{s:s,s:s,s:{s:s,s:s}}]", "OrderItemId", "1",
			"QuantityOrdered", "2", "ItemPrice", "CurrencyCode",
			"USD", "Amount", "abc");
	map(o, its, &m);
	ok(m.rc == WB_OK && !payload(&m, "OrderPlaced") &&
		   strstr(json_string_value(json_array_get(m.problems, 0)),
			  "abc"),
	   "bad amount: %s", json_string_value(json_array_get(m.problems, 0)));
	unmap(&m);
	json_decref(its);
	json_object_set_new(o, "OrderTotal",
			    json_pack("{s:s,s:s}", "CurrencyCode", "usd",
				      "Amount", "1"));
	json_t *none = json_array();
	map(o, none, &m);
	ok(m.rc == WB_OK && json_array_size(m.problems) == 1 &&
		   payload(&m, "OrderPlaced"),
	   "bad OrderTotal reported, the rest still mapped");
	unmap(&m);
	json_decref(none);
	map(o, NULL, &m);
	ok(m.rc == WB_OK && !payload(&m, "OrderPlaced") &&
		   payload(&m, "ChannelSnapshotObserved") &&
		   strstr(json_string_value(json_array_get(m.problems, 1)),
			  "could not be fetched"),
	   "items not fetched: no OrderPlaced (it would lack its lines), "
	   "the rest mapped");
	unmap(&m);
	json_decref(o);
}

/* The poller's cursor file: written atomically, read back, refused when
 * it is not one line. */
static void test_state(void)
{
	char dir[] = "/tmp/wb-state-XXXXXX";
	if (!mkdtemp(dir)) {
		ok(0, "mkdtemp");
		return;
	}
	char sub[256], out[128], msg[256] = "";
	snprintf(sub, sizeof(sub), "%s/a/b", dir);
	bool found = true;
	ok(wb_ingest_state_load(sub, "amazon-x", out, sizeof(out), &found,
				msg, sizeof(msg)) == WB_OK &&
		   !found,
	   "no cursor yet: found=false");
	ok(wb_ingest_state_save(sub, "amazon-x", "2026-01-07T10:00:00Z", msg,
				sizeof(msg)) == WB_OK &&
		   wb_ingest_state_save(sub, "amazon-x", "2026-01-08T10:00:00Z",
					msg, sizeof(msg)) == WB_OK,
	   "saved twice, folders created (%s)", msg);
	ok(wb_ingest_state_load(sub, "amazon-x", out, sizeof(out), &found,
				msg, sizeof(msg)) == WB_OK &&
		   found && strcmp(out, "2026-01-08T10:00:00Z") == 0,
	   "the last value is read back: %s", out);
	char tmp[300];
	snprintf(tmp, sizeof(tmp), "%s/.amazon-x.tmp", sub);
	ok(access(tmp, F_OK) != 0, "no temporary file left behind");
	char path[300];
	snprintf(path, sizeof(path), "%s/amazon-x", sub);
	FILE *f = fopen(path, "w");
	fputs("one\ntwo\n", f);
	fclose(f);
	ok(wb_ingest_state_load(sub, "amazon-x", out, sizeof(out), &found,
				msg, sizeof(msg)) == WB_ECORRUPT &&
		   strstr(msg, "not a cursor"),
	   "a file of two lines is refused: %s", msg);
	ok(wb_ingest_state_save(sub, "../x", "v", msg, sizeof(msg)) != WB_OK &&
		   wb_ingest_state_save(sub, "y", "a\nb", msg, sizeof(msg)) !=
			   WB_OK,
	   "names with a slash and values with a newline refused");
	unlink(path);
	rmdir(sub);
	snprintf(sub, sizeof(sub), "%s/a", dir);
	rmdir(sub);
	rmdir(dir);
}

int main(void)
{
	json_object_seed(1);
	test_state();
	test_money();
	test_times();
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s/amazon", shared_dir());
	json_t *sandbox = load(dir, "getOrders.sandbox-TEST_CASE_200.json");
	json_t *orders = load(dir, "getOrders.example.json");
	json_t *items = load(dir, "getOrderItems.example.json");
	json_t *sb_items = load("tests/fixtures/amazon",
				"getOrderItems.sandbox-TEST_CASE_200.json");
	ok(sandbox && orders && items && sb_items, "fixtures loaded");
	if (sandbox && orders && items && sb_items) {
		test_sandbox(sandbox, sb_items);
		test_examples(orders, items);
		test_bad(orders);
	}
	json_decref(sandbox);
	json_decref(orders);
	json_decref(items);
	json_decref(sb_items);
	return tap_done();
}
