/*
 * shopify_map.c — what a Shopify payload means in Waybill's event model.
 * Pure: no I/O and no clock (times come in through wb_shopify_ctx), so the
 * same bytes always give the same events, and the unit tests and the fuzz
 * target drive it directly. Three inputs:
 *
 *   - a webhook body (REST shape, snake_case) under its X-Shopify-Topic;
 *   - one Order node of a GraphQL Admin API `orders` page (shopify-poll);
 *   - the page itself (pagination, cost and throttle status).
 *
 * Event ids name the channel FACT, not the delivery that carried it:
 *
 *   shopify:<order>:placed                         OrderPlaced
 *   shopify:<order>:payment:<status>               PaymentStatusChanged
 *   shopify:<order>:cancelled                      OrderCancelled
 *   shopify:<order>:updated:<content hash>         OrderUpdated
 *   shopify:<order>:address:<content hash>         ShippingAddressChanged
 *   shopify:<order>:edit:<order edit id>           OrderUpdated (orders/edited)
 *   shopify:<order>:fulfillment:<id>:<hash>        FulfillmentCreated
 *   shopify:<order>:fulfillment:<id>:shipment:<s>  ShipmentStatusChanged
 *   shopify:<order>:refund:<id>                    RefundIssued
 *   shopify:<order>:return:<id>:<state>            Return* (state machine)
 *   shopify:<order>:snapshot:<updated_at ms>       ChannelSnapshotObserved
 *
 * so a redelivery, another topic carrying the same fact (orders/updated
 * repeats what orders/paid said) and shopify-poll's repair all give the
 * same event_id, and the ledger (which dedupes by event_id only) keeps the
 * fact once. The delivery's own ids go into correlation_id (webhook id)
 * and causation_id (Shopify event id). Content hashes (first 64 bits of
 * SHA-256 over the canonical payload JSON) are computed from fields both
 * the REST and the GraphQL shape carry, so a webhook and a poll of the same
 * state agree. README "Channels" has the table per topic and the reasons.
 *
 * Ids are exact: integers go through jansson's 64-bit json_int_t (never a
 * double), strings and GIDs ("gid://shopify/Order/820982911946154508")
 * give their digits. Money is a decimal string into minor units through
 * wb_money_parse. Untrusted input is capped: nesting depth, number of
 * lines and children, id lengths.
 */
#include "wb_ingest.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#define CHANNEL "shopify"
/* Shopify ids are 64-bit; a digit string longer than this is not one. */
#define MAX_ID_DIGITS 20
/* Per order: line items; per object: fulfillments, refunds, returns,
 * tracking numbers. Far above what Shopify allows, far below what would
 * make an event too large for Kafka. */
#define MAX_LINES 1000
#define MAX_CHILDREN 250
/* Delivery ids (webhook id, event id) kept for correlation. */
#define MAX_DELIVERY_ID 128

/* ---- small readers ------------------------------------------------------ */

static const char *str_of(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* A string field as an optional canonical string: absent, null or ""
 * become null. The string itself is shared, not copied. */
static json_t *opt_str(const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (json_is_string(v) && json_string_length(v) > 0)
		return json_incref(v);
	return json_null();
}

/* Digits of a Shopify id: a positive integer (exact, 64-bit), a digit
 * string, or the last segment of a GID. */
static bool id_of_value(const json_t *v, char out[MAX_ID_DIGITS + 1])
{
	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);
		if (i <= 0)
			return false;
		snprintf(out, MAX_ID_DIGITS + 1, "%" JSON_INTEGER_FORMAT, i);
		return true;
	}
	const char *s = json_string_value(v);
	if (!s)
		return false;
	if (strncmp(s, "gid://shopify/", 14) == 0) {
		const char *slash = strrchr(s, '/');
		/* "gid://shopify/Order/123": a type segment, then the id */
		if (slash == s + 13)
			return false;
		s = slash + 1;
	}
	size_t n = strlen(s);
	if (n == 0 || n > MAX_ID_DIGITS || s[0] == '0')
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	memcpy(out, s, n + 1);
	return true;
}

static bool id_of(const json_t *o, const char *key, const char *alt,
		  char out[MAX_ID_DIGITS + 1])
{
	return id_of_value(json_object_get(o, key), out) ||
	       (alt && id_of_value(json_object_get(o, alt), out));
}

/* An RFC 3339 field as epoch ms, or -1 (absent, null, unreadable or
 * before 1970). */
static int64_t time_of(const json_t *o, const char *key)
{
	int64_t t;
	const char *s = str_of(o, key);
	return s && wb_parse_time_ms(s, &t) && t >= 0 ? t : -1;
}

/* Lower-case copy of a short enum value ("PARTIALLY_PAID" or
 * "partially_paid"), or "" when absent or too long. */
static void enum_of(const json_t *o, const char *key, char out[32])
{
	const char *s = str_of(o, key);
	size_t n = s ? strlen(s) : 0;
	out[0] = '\0';
	if (n == 0 || n >= 32)
		return;
	for (size_t i = 0; i <= n; i++)
		out[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
}

/* A JSON array under key (REST lists, GraphQL lists) or a GraphQL
 * connection ({"nodes": [...]} or {"edges": [{"node": ...}]}) as a new
 * array of its items; an empty one when absent. */
static json_t *items_of(const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (json_is_array(v))
		return json_incref(v);
	json_t *nodes = json_object_get(v, "nodes");
	if (json_is_array(nodes))
		return json_incref(nodes);
	json_t *edges = json_object_get(v, "edges"), *out = json_array();
	size_t i;
	json_t *e;
	json_array_foreach(edges, i, e) {
		json_t *n = json_object_get(e, "node");
		if (n)
			json_array_append(out, n);
	}
	return out;
}

/* ---- hashing and HMAC ---------------------------------------------------- */

/* First 64 bits of SHA-256 over the canonical (sorted, compact) JSON of
 * v, as 16 hex digits. */
static bool content_hash(const json_t *v, char out[17])
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS |
					JSON_ENCODE_ANY);
	if (!s)
		return false;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int ok = EVP_Digest(s, strlen(s), md, &mdlen, EVP_sha256(), NULL);
	free(s);
	if (!ok || mdlen < 8)
		return false;
	wb_hex(md, 8, out);
	return true;
}

static int b64_value(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

/* Strict standard base64 of exactly 32 bytes: 43 characters and one
 * '=' (a hex digest, URL-safe base64 or anything else does not decode). */
static bool b64_decode32(const char *s, uint8_t out[32])
{
	if (strlen(s) != 44 || s[43] != '=')
		return false;
	uint32_t acc = 0;
	int bits = 0;
	size_t n = 0;
	for (size_t i = 0; i < 43; i++) {
		int v = b64_value(s[i]);
		if (v < 0)
			return false;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n < 32)
				out[n++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* the 2 bits left over must be zero in canonical base64 */
	return n == 32 && acc == 0;
}

bool wb_shopify_hmac_valid(const char *header, const void *body, size_t len,
			   const char *const *secrets, size_t nsecrets)
{
	uint8_t want[32];
	if (!header || !b64_decode32(header, want))
		return false;
	bool valid = false;
	/* Every secret is tried, so the time taken does not say which one
	 * (if any) matched. */
	for (size_t i = 0; i < nsecrets; i++) {
		unsigned char mac[EVP_MAX_MD_SIZE];
		unsigned int maclen = 0;
		if (!secrets[i] || !*secrets[i] ||
		    !HMAC(EVP_sha256(), secrets[i], (int)strlen(secrets[i]),
			  body, len, mac, &maclen) ||
		    maclen != 32)
			continue;
		valid |= CRYPTO_memcmp(mac, want, 32) == 0;
	}
	return valid;
}

/* ---- the mapping context -------------------------------------------------- */

struct ctx {
	const struct wb_shopify_ctx *in;
	bool gql;                    /* GraphQL field names (camelCase) */
	char oid[MAX_ID_DIGITS + 1]; /* the order's Shopify id */
	char order_id[MAX_ID_DIGITS + 16];
	const char *currency;        /* the order's, for amounts naming none */
	int64_t fallback_time;       /* source time of facts without their own */
	json_t *correlation, *causation;
	json_t *events;              /* what this call emits */
	char *msg;
	size_t msglen;
};

/* Field name by shape: K(c, "total_price_set", "totalPriceSet"). */
#define K(c, rest_name, gql_name) ((c)->gql ? (gql_name) : (rest_name))

/* Emits one event; fact is the part of the event_id after the order. A
 * payload of NULL means json_pack failed, which only happens on input it
 * cannot represent; that is an error, never a silent drop. */
static wb_err emit(struct ctx *c, const char *type, const char *fact,
		   int64_t source_time, json_t *payload)
{
	if (!payload)
		return wb_fail(c->msg, c->msglen, WB_ESCHEMA,
			       "order %s: %s could not be built", c->oid,
			       type);
	char eid[256];
	snprintf(eid, sizeof(eid), CHANNEL ":%s:%s", c->oid, fact);
	json_t *ev = json_pack(
		"{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:s,s:O,s:O,s:o}", "event_id",
		eid, "merchant", c->in->shop, "order_id", c->order_id,
		"channel", CHANNEL, "type", type, "source_time",
		(json_int_t)(source_time >= 0 ? source_time
					      : c->fallback_time),
		"ingest_time", (json_int_t)c->in->now_ms, "source",
		c->in->source, "correlation_id", c->correlation,
		"causation_id", c->causation, "payload", payload);
	if (!ev)
		return wb_fail(c->msg, c->msglen, WB_ESCHEMA,
			       "order %s: %s envelope could not be built",
			       c->oid, type);
	json_array_append_new(c->events, ev);
	return WB_OK;
}

static wb_err set_order(struct ctx *c, const char *oid)
{
	memcpy(c->oid, oid, strlen(oid) + 1);
	snprintf(c->order_id, sizeof(c->order_id), CHANNEL ":%s", oid);
	return WB_OK;
}

static wb_err no_id(struct ctx *c, const char *what)
{
	return wb_fail(c->msg, c->msglen, WB_ESCHEMA,
		       "%s: no usable id (a positive integer, a digit string "
		       "or a gid://shopify/... of at most %d digits)",
		       what, MAX_ID_DIGITS);
}

/* ---- money ---------------------------------------------------------------- */

static json_t *money_json(int64_t amount, const char *ccy)
{
	return json_pack("{s:I,s:s}", "amount", (json_int_t)amount, "currency",
			 ccy);
}

/* Money from a MoneyBag (REST "x_set": {"shop_money": {"amount",
 * "currency_code"}}, GraphQL "xSet": {"shopMoney": {"amount",
 * "currencyCode"}}) or, REST only, the plain decimal string `plain` in
 * the order's currency. *out is NULL when absent; an amount present but
 * unusable is an error. */
static wb_err money_of(struct ctx *c, const json_t *o, const char *key,
		       const char *plain, json_t **out)
{
	*out = NULL;
	json_t *bag = json_object_get(o, key);
	const char *amount = NULL, *ccy = NULL;
	if (json_is_object(bag)) {
		json_t *m = json_object_get(bag, K(c, "shop_money", "shopMoney"));
		amount = str_of(m, "amount");
		ccy = str_of(m, K(c, "currency_code", "currencyCode"));
		if (!amount || !ccy)
			return wb_fail(c->msg, c->msglen, WB_ESCHEMA,
				       "order %s: %s: no shop money amount "
				       "and currency",
				       c->oid, key);
	} else if (plain && json_is_string(json_object_get(o, plain))) {
		amount = str_of(o, plain);
		ccy = c->currency;
		key = plain;
		if (!ccy)
			return wb_fail(c->msg, c->msglen, WB_ESCHEMA,
				       "order %s: %s without a currency", c->oid,
				       key);
	} else {
		return WB_OK;
	}
	int64_t v;
	char sub[256];
	if (wb_money_parse(amount, strlen(amount), ccy, strlen(ccy), &v, sub,
			   sizeof(sub)) != WB_OK)
		return wb_fail(c->msg, c->msglen, WB_ESCHEMA, "order %s: %s: %s",
			       c->oid, key, sub);
	*out = money_json(v, ccy);
	return *out ? WB_OK
		    : wb_fail(c->msg, c->msglen, WB_ESCHEMA,
			      "order %s: %s: bad currency", c->oid, key);
}

/* ---- order parts ---------------------------------------------------------- */

static json_t *address_of(struct ctx *c, const json_t *a)
{
	if (!json_is_object(a))
		return json_null();
	json_t *name = opt_str(a, "name");
	if (json_is_null(name)) {
		/* REST may give only first and last names */
		const char *f = str_of(a, K(c, "first_name", "firstName"));
		const char *l = str_of(a, K(c, "last_name", "lastName"));
		if (f && *f && l && *l) {
			size_t nf = strlen(f), nl = strlen(l);
			char *s = wb_xmalloc(nf + nl + 2);
			memcpy(s, f, nf);
			s[nf] = ' ';
			memcpy(s + nf + 1, l, nl + 1);
			name = json_string(s);
			free(s);
		} else if ((f && *f) || (l && *l)) {
			name = json_string(f && *f ? f : l);
		}
	}
	return json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "name", name,
			 "company", opt_str(a, "company"), "line1",
			 opt_str(a, "address1"), "line2", opt_str(a, "address2"),
			 "city", opt_str(a, "city"), "region",
			 opt_str(a, "province"), "postal_code", opt_str(a, "zip"),
			 "country_code",
			 opt_str(a, K(c, "country_code", "countryCodeV2")),
			 "phone", opt_str(a, "phone"));
}

static wb_err count_of(struct ctx *c, const json_t *o, const char *key,
		       const char *what, size_t idx, int64_t *out)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > INT32_MAX)
		return wb_fail(c->msg, c->msglen, WB_ESCHEMA,
			       "order %s: %s[%zu].%s: not a count", c->oid, what,
			       idx, key);
	*out = json_integer_value(v);
	return WB_OK;
}

/* Line items as canonical LineItems. current: the quantities after edits
 * and removals (current_quantity), leaving out lines at zero; otherwise
 * as ordered. */
static wb_err lines_of(struct ctx *c, const json_t *order, bool current,
		       json_t **out)
{
	const char *what = K(c, "line_items", "lineItems");
	json_t *items = items_of(order, what), *lines = json_array();
	wb_err rc = WB_OK;
	if (json_array_size(items) > MAX_LINES) {
		rc = wb_fail(c->msg, c->msglen, WB_ETOOBIG,
			     "order %s: %zu line items, over the cap of %d",
			     c->oid, json_array_size(items), MAX_LINES);
		goto out;
	}
	size_t i;
	json_t *li;
	json_array_foreach(items, i, li) {
		char lid[MAX_ID_DIGITS + 1];
		int64_t qty;
		if (!json_is_object(li)) {
			rc = wb_fail(c->msg, c->msglen, WB_ESCHEMA,
				     "order %s: %s[%zu]: not an object", c->oid,
				     what, i);
			goto out;
		}
		if (!id_of(li, "id", c->gql ? NULL : "admin_graphql_api_id",
			   lid)) {
			char w[64];
			snprintf(w, sizeof(w), "order %s: %s[%zu]", c->oid,
				 what, i);
			rc = no_id(c, w);
			goto out;
		}
		const char *qkey = current ? K(c, "current_quantity",
					       "currentQuantity")
					   : "quantity";
		/* current_quantity is recent in REST; quantity stands in */
		if (!json_object_get(li, qkey))
			qkey = "quantity";
		if ((rc = count_of(c, li, qkey, what, i, &qty)))
			goto out;
		if (current && qty == 0)
			continue;
		json_t *price;
		if ((rc = money_of(c, li, K(c, "price_set", "originalUnitPriceSet"),
				   c->gql ? NULL : "price", &price)))
			goto out;
		if (!price) {
			rc = wb_fail(c->msg, c->msglen, WB_ESCHEMA,
				     "order %s: %s[%zu]: no unit price", c->oid,
				     what, i);
			goto out;
		}
		const char *title = str_of(li, "title");
		if (!title)
			title = str_of(li, "name");
		json_t *line = json_pack("{s:s,s:o,s:s,s:I,s:o}", "line_id", lid,
					 "sku", opt_str(li, "sku"), "title",
					 title ? title : "", "quantity",
					 (json_int_t)qty, "unit_price", price);
		if (!line) {
			rc = wb_fail(c->msg, c->msglen, WB_ESCHEMA,
				     "order %s: %s[%zu]: unusable", c->oid, what,
				     i);
			goto out;
		}
		json_array_append_new(lines, line);
	}
out:
	json_decref(items);
	if (rc)
		json_decref(lines);
	else
		*out = lines;
	return rc;
}

/* Totals as placed (current=false) or as they stand now. The total is
 * required; the parts are optional. */
static wb_err totals_of(struct ctx *c, const json_t *o, bool current,
			json_t **out)
{
	/* {REST set, REST plain, GraphQL set} for placed, then current */
	static const char *const keys[2][5][3] = {
		{{"subtotal_price_set", "subtotal_price", "subtotalPriceSet"},
		 {"total_shipping_price_set", NULL, "totalShippingPriceSet"},
		 {"total_tax_set", "total_tax", "totalTaxSet"},
		 {"total_discounts_set", "total_discounts", "totalDiscountsSet"},
		 {"total_price_set", "total_price", "totalPriceSet"}},
		{{"current_subtotal_price_set", "current_subtotal_price",
		  "currentSubtotalPriceSet"},
		 {"current_shipping_price_set", NULL,
		  "currentShippingPriceSet"},
		 {"current_total_tax_set", "current_total_tax",
		  "currentTotalTaxSet"},
		 {"current_total_discounts_set", "current_total_discounts",
		  "currentTotalDiscountsSet"},
		 {"current_total_price_set", "current_total_price",
		  "currentTotalPriceSet"}},
	};
	json_t *m[5] = {NULL};
	wb_err rc = WB_OK;
	for (int i = 0; i < 5 && !rc; i++) {
		const char *const *k = keys[current][i];
		rc = money_of(c, o, c->gql ? k[2] : k[0], c->gql ? NULL : k[1],
			      &m[i]);
		/* payloads without the current_* fields: nothing was
		 * removed, so they are the placed ones */
		if (!rc && !m[i] && current) {
			k = keys[0][i];
			rc = money_of(c, o, c->gql ? k[2] : k[0],
				      c->gql ? NULL : k[1], &m[i]);
		}
	}
	if (!rc && !m[4])
		rc = wb_fail(c->msg, c->msglen, WB_ESCHEMA,
			     "order %s: no %s", c->oid,
			     c->gql ? keys[0][4][2] : keys[0][4][0]);
	if (rc) {
		for (int i = 0; i < 5; i++)
			json_decref(m[i]);
		return rc;
	}
	for (int i = 0; i < 4; i++)
		if (!m[i])
			m[i] = json_null();
	*out = json_pack("{s:o,s:o,s:o,s:o,s:o}", "subtotal", m[0], "shipping",
			 m[1], "tax", m[2], "discounts", m[3], "total", m[4]);
	return WB_OK;
}

/* ItemQuantity lines ({line_id, sku, quantity}) of fulfillments, refunds
 * and returns. The line item is nested (lineKey) or named by idKey. */
static wb_err item_quantities(struct ctx *c, const json_t *o, const char *key,
			      const char *const *line_path, const char *id_key,
			      json_t **out)
{
	json_t *items = items_of(o, key), *lines = json_array();
	wb_err rc = WB_OK;
	if (json_array_size(items) > MAX_LINES) {
		rc = wb_fail(c->msg, c->msglen, WB_ETOOBIG,
			     "order %s: %s: %zu lines, over the cap of %d",
			     c->oid, key, json_array_size(items), MAX_LINES);
		goto out;
	}
	size_t i;
	json_t *it;
	json_array_foreach(items, i, it) {
		/* the line item: the item itself, or at line_path in it */
		const json_t *li = it;
		for (const char *const *p = line_path; p && *p && li; p++)
			li = json_object_get(li, *p);
		char lid[MAX_ID_DIGITS + 1];
		bool has_id = (li && line_path && id_of(li, "id", NULL, lid)) ||
			      (id_key && id_of(it, id_key, NULL, lid));
		int64_t qty;
		if ((rc = count_of(c, it, "quantity", key, i, &qty)))
			goto out;
		json_t *line = json_pack(
			"{s:o,s:o,s:I}", "line_id",
			has_id ? json_string(lid) : json_null(), "sku", li ? opt_str(li, "sku") : json_null(),
			"quantity", (json_int_t)qty);
		if (!line) {
			rc = wb_fail(c->msg, c->msglen, WB_ESCHEMA,
				     "order %s: %s[%zu]: unusable", c->oid, key,
				     i);
			goto out;
		}
		json_array_append_new(lines, line);
	}
out:
	json_decref(items);
	if (rc)
		json_decref(lines);
	else
		*out = lines;
	return rc;
}

/* ---- fulfillments ---------------------------------------------------------- */

/* Shopify's shipment statuses (REST shipment_status, GraphQL
 * Fulfillment.displayStatus) -> ShipmentStatus; NULL: no shipment event
 * (a plain "fulfilled"). Unknown values become "other". */
static const struct {
	const char *shopify, *status;
} shipment_statuses[] = {
	{"label_printed", "label_printed"},
	{"label_purchased", "label_purchased"},
	{"label_voided", "other"},
	{"confirmed", "confirmed"},
	{"ready_for_pickup", "ready_for_pickup"},
	{"picked_up", "picked_up"},
	{"carrier_picked_up", "picked_up"},
	{"in_transit", "in_transit"},
	{"out_for_delivery", "out_for_delivery"},
	{"attempted_delivery", "attempted_delivery"},
	{"delayed", "delayed"},
	{"delivered", "delivered"},
	{"failure", "failure"},
	{"not_delivered", "failure"},
	{"returned_to_sender", "returned_to_sender"},
	{"fulfilled", NULL},
	{"marked_as_fulfilled", NULL},
	{"submitted", NULL},
	{"canceled", NULL},
	{"cancelled", NULL},
};

static const char *shipment_status(const char *s)
{
	if (!*s)
		return NULL;
	for (size_t i = 0;
	     i < sizeof(shipment_statuses) / sizeof(*shipment_statuses); i++)
		if (strcmp(shipment_statuses[i].shopify, s) == 0)
			return shipment_statuses[i].status;
	return "other";
}

/* Tracking numbers, urls and the carrier of a fulfillment. */
static wb_err tracking_of(struct ctx *c, const json_t *f, json_t *numbers,
			  json_t *urls, json_t **carrier)
{
	*carrier = json_null();
	if (c->gql) {
		json_t *ti = items_of(f, "trackingInfo");
		size_t i;
		json_t *t;
		json_array_foreach(ti, i, t) {
			if (i >= MAX_CHILDREN)
				break;
			if (json_is_string(json_object_get(t, "number")))
				json_array_append(numbers,
						  json_object_get(t, "number"));
			if (json_is_string(json_object_get(t, "url")))
				json_array_append(urls, json_object_get(t, "url"));
			if (json_is_null(*carrier))
				*carrier = opt_str(t, "company");
		}
		json_decref(ti);
		return WB_OK;
	}
	*carrier = opt_str(f, "tracking_company");
	static const char *const lists[2][2] = {
		{"tracking_numbers", "tracking_number"},
		{"tracking_urls", "tracking_url"}};
	for (int k = 0; k < 2; k++) {
		json_t *into = k ? urls : numbers;
		json_t *arr = json_object_get(f, lists[k][0]);
		size_t i;
		json_t *v;
		json_array_foreach(arr, i, v) {
			if (i >= MAX_CHILDREN)
				break;
			if (json_is_string(v))
				json_array_append(into, v);
		}
		if (json_array_size(into) == 0 &&
		    json_is_string(json_object_get(f, lists[k][1])) &&
		    json_string_length(json_object_get(f, lists[k][1])))
			json_array_append(into, json_object_get(f, lists[k][1]));
	}
	return WB_OK;
}

/* The fact of a FulfillmentCreated: the fulfillment with its tracking.
 * Shopify adds or corrects tracking by updating the fulfillment, so an id
 * of the fulfillment alone would make the ledger drop every update as a
 * repeat of the first state. The hash covers what can change and what the
 * webhook and the poll's GraphQL both carry: carrier, numbers and urls.
 * Not the lines: a fulfillment's lines are fixed once it exists, and the
 * poll does not fetch them (a poll of the same state must give this id). */
static wb_err tracking_fact(struct ctx *c, const char *fid, json_t *carrier,
			    json_t *numbers, json_t *urls, char *fact,
			    size_t len)
{
	json_t *t = json_pack("{s:O,s:O,s:O}", "carrier", carrier,
			      "tracking_numbers", numbers, "tracking_urls",
			      urls);
	char h[17];
	bool ok = t && content_hash(t, h);
	json_decref(t);
	if (!ok)
		return wb_fail(c->msg, c->msglen, WB_ESCHEMA,
			       "order %s: fulfillment %s: unusable tracking",
			       c->oid, fid);
	snprintf(fact, len, "fulfillment:%s:%s", fid, h);
	return WB_OK;
}

static wb_err fulfillment(struct ctx *c, const json_t *f, size_t idx)
{
	char fid[MAX_ID_DIGITS + 1], what[64];
	snprintf(what, sizeof(what), "fulfillments[%zu]", idx);
	if (!json_is_object(f))
		return wb_fail(c->msg, c->msglen, WB_ESCHEMA,
			       "order %s: %s: not an object", c->oid, what);
	if (!id_of(f, "id", K(c, "admin_graphql_api_id", "legacyResourceId"),
		   fid))
		return no_id(c, what);
	char status[32], ship[32];
	enum_of(f, "status", status);
	enum_of(f, K(c, "shipment_status", "displayStatus"), ship);
	json_t *numbers = json_array(), *urls = json_array(), *carrier;
	tracking_of(c, f, numbers, urls, &carrier);
	json_t *lines = NULL;
	wb_err rc;
	if (c->gql) {
		static const char *const path[] = {"lineItem", NULL};
		rc = item_quantities(c, f, "fulfillmentLineItems", path, NULL,
				     &lines);
	} else {
		rc = item_quantities(c, f, "line_items", NULL, "id", &lines);
	}
	if (rc)
		goto out;
	char fact[96];
	/* A fulfillment cancelled or failed before we saw it was never
	 * shipped: no FulfillmentCreated for it. */
	if (strcmp(status, "cancelled") && strcmp(status, "canceled") &&
	    strcmp(status, "error") && strcmp(status, "failure")) {
		if ((rc = tracking_fact(c, fid, carrier, numbers, urls, fact,
					sizeof(fact))))
			goto out;
		rc = emit(c, "FulfillmentCreated", fact,
			  time_of(f, K(c, "created_at", "createdAt")),
			  json_pack("{s:s,s:O,s:O,s:O,s:O}", "fulfillment_id",
				    fid, "lines", lines, "carrier", carrier,
				    "tracking_numbers", numbers,
				    "tracking_urls", urls));
		if (rc)
			goto out;
	}
	const char *st = shipment_status(ship);
	if (st) {
		snprintf(fact, sizeof(fact), "fulfillment:%s:shipment:%s", fid,
			 st);
		int64_t eta = time_of(f, K(c, "estimated_delivery_at",
					   "estimatedDeliveryAt"));
		json_t *first = json_array_get(numbers, 0);
		rc = emit(c, "ShipmentStatusChanged", fact,
			  time_of(f, K(c, "updated_at", "updatedAt")),
			  json_pack("{s:s,s:s,s:O,s:s,s:n,s:n,s:o}",
				    "fulfillment_id", fid, "tracking_number",
				    first ? json_string_value(first) : "",
				    "carrier", carrier, "status", st,
				    "carrier_time", "location",
				    "estimated_delivery",
				    eta >= 0 ? json_integer(eta) : json_null()));
	}
out:
	json_decref(lines);
	json_decref(numbers);
	json_decref(urls);
	json_decref(carrier);
	return rc;
}

/* ---- refunds ---------------------------------------------------------------- */

/* The refunded amount of a REST refund: its successful refund
 * transactions, in the currency they (or else the refund's lines, or the
 * order) name. */
static wb_err refund_amount_rest(struct ctx *c, const json_t *r,
				 const char *rid, json_t **out)
{
	const char *ccy = NULL;
	json_t *tx = json_object_get(r, "transactions"), *t;
	size_t i;
	json_array_foreach(tx, i, t) {
		const char *tc = str_of(t, "currency");
		if (tc && wb_currency_exponent(tc, strlen(tc)) >= 0) {
			ccy = tc;
			break;
		}
	}
	json_t *rli = json_object_get(r, "refund_line_items"), *l;
	json_array_foreach(rli, i, l) {
		if (ccy)
			break;
		ccy = str_of(json_object_get(json_object_get(l, "subtotal_set"),
					     "shop_money"),
			     "currency_code");
	}
	if (!ccy)
		ccy = str_of(json_object_get(json_object_get(r,
							     "total_duties_set"),
					     "shop_money"),
			     "currency_code");
	if (!ccy)
		ccy = c->currency;
	if (!ccy || wb_currency_exponent(ccy, strlen(ccy)) < 0)
		return wb_fail(c->msg, c->msglen, WB_ESCHEMA,
			       "order %s: refund %s: no currency in its "
			       "transactions, lines or order",
			       c->oid, rid);
	int64_t sum = 0;
	json_array_foreach(tx, i, t) {
		const char *kind = str_of(t, "kind"), *st = str_of(t, "status");
		const char *amount = str_of(t, "amount");
		if (!kind || strcmp(kind, "refund") || !st ||
		    strcmp(st, "success"))
			continue;
		int64_t v;
		char sub[256];
		if (!amount || wb_money_parse(amount, strlen(amount), ccy,
					      strlen(ccy), &v, sub,
					      sizeof(sub)) != WB_OK)
			return wb_fail(c->msg, c->msglen, WB_ESCHEMA,
				       "order %s: refund %s: transactions[%zu]"
				       ".amount: %s",
				       c->oid, rid, i,
				       amount ? sub : "missing");
		if ((v > 0 && sum > INT64_MAX - v) ||
		    (v < 0 && sum < INT64_MIN - v))
			return wb_fail(c->msg, c->msglen, WB_ESCHEMA,
				       "order %s: refund %s: amounts overflow",
				       c->oid, rid);
		sum += v;
	}
	*out = money_json(sum, ccy);
	return WB_OK;
}

static wb_err refund(struct ctx *c, const json_t *r, size_t idx)
{
	char rid[MAX_ID_DIGITS + 1], what[64];
	snprintf(what, sizeof(what), "refunds[%zu]", idx);
	if (!json_is_object(r))
		return wb_fail(c->msg, c->msglen, WB_ESCHEMA,
			       "order %s: %s: not an object", c->oid, what);
	if (!id_of(r, "id", K(c, "admin_graphql_api_id", "legacyResourceId"),
		   rid))
		return no_id(c, what);
	json_t *amount = NULL, *lines = NULL;
	wb_err rc;
	bool restock = json_is_true(json_object_get(r, "restock"));
	const char *items_key = K(c, "refund_line_items", "refundLineItems");
	if (c->gql) {
		static const char *const path[] = {"lineItem", NULL};
		rc = money_of(c, r, "totalRefundedSet", NULL, &amount);
		if (!rc && !amount)
			rc = wb_fail(c->msg, c->msglen, WB_ESCHEMA,
				     "order %s: refund %s: no totalRefundedSet",
				     c->oid, rid);
		if (!rc)
			rc = item_quantities(c, r, items_key, path, NULL, &lines);
	} else {
		static const char *const path[] = {"line_item", NULL};
		rc = refund_amount_rest(c, r, rid, &amount);
		if (!rc)
			rc = item_quantities(c, r, items_key, path,
					     "line_item_id", &lines);
	}
	if (rc)
		goto out;
	json_t *items = items_of(r, items_key), *it;
	size_t i;
	json_array_foreach(items, i, it) {
		char rt[32];
		enum_of(it, K(c, "restock_type", "restockType"), rt);
		restock |= !strcmp(rt, "return") || !strcmp(rt, "cancel") ||
			   !strcmp(rt, "legacy_restock");
	}
	json_decref(items);
	int64_t t = time_of(r, K(c, "processed_at", "processedAt"));
	if (t < 0)
		t = time_of(r, K(c, "created_at", "createdAt"));
	char fact[64];
	snprintf(fact, sizeof(fact), "refund:%s", rid);
	rc = emit(c, "RefundIssued", fact, t,
		  json_pack("{s:s,s:O,s:O,s:b,s:o}", "refund_id", rid, "amount",
			    amount, "lines", lines, "restock", restock, "reason",
			    opt_str(r, "note")));
out:
	json_decref(amount);
	json_decref(lines);
	return rc;
}

/* ---- returns ------------------------------------------------------------------ */

/* A return's state: the event type, the event_id suffix and, for states
 * without a type of their own, the reason given. */
static const struct return_state {
	const char *state, *type, *reason;
} return_states[] = {
	{"requested", "ReturnRequested", NULL},
	{"approved", "ReturnApproved", NULL},
	{"declined", "ReturnDeclined", NULL},
	{"canceled", "ReturnClosed", "canceled"},
	{"closed", "ReturnClosed", NULL},
	{"reopened", "ReturnApproved", "reopened"},
	{"received", "ReturnReceived", NULL},
};

static const struct return_state *return_state(const char *state)
{
	for (size_t i = 0; i < sizeof(return_states) / sizeof(*return_states);
	     i++)
		if (strcmp(return_states[i].state, state) == 0)
			return &return_states[i];
	return NULL;
}

static wb_err return_event(struct ctx *c, const json_t *r, const char *state,
			   const char *what)
{
	const struct return_state *rs = return_state(state);
	char rid[MAX_ID_DIGITS + 1];
	if (!rs || !json_is_object(r))
		return wb_fail(c->msg, c->msglen, WB_ESCHEMA,
			       "order %s: %s: not a return", c->oid, what);
	if (!id_of(r, "id", c->gql ? NULL : "admin_graphql_api_id", rid))
		return no_id(c, what);
	static const char *const rest_path[] = {"fulfillment_line_item",
						"line_item", NULL};
	static const char *const gql_path[] = {"fulfillmentLineItem",
					       "lineItem", NULL};
	json_t *lines = NULL;
	const char *items_key = K(c, "return_line_items", "returnLineItems");
	wb_err rc = item_quantities(c, r, items_key,
				    c->gql ? gql_path : rest_path,
				    c->gql ? NULL : "line_item_id", &lines);
	if (rc)
		return rc;
	json_t *reason;
	char rsn[32];
	if (rs->reason) {
		reason = json_string(rs->reason);
	} else if (strcmp(state, "declined") == 0) {
		enum_of(json_object_get(r, "decline"), "reason", rsn);
		reason = *rsn ? json_string(rsn) : json_null();
	} else {
		json_t *items = items_of(r, items_key);
		enum_of(json_array_get(items, 0),
			K(c, "return_reason", "returnReason"), rsn);
		json_decref(items);
		reason = *rsn ? json_string(rsn) : json_null();
	}
	char fact[96];
	if (strcmp(state, "received") == 0) {
		/* processed in parts: each distinct set of lines is a fact */
		char h[17];
		if (!content_hash(lines, h)) {
			json_decref(lines);
			json_decref(reason);
			return wb_fail(c->msg, c->msglen, WB_ESCHEMA,
				       "order %s: %s: unusable lines", c->oid,
				       what);
		}
		snprintf(fact, sizeof(fact), "return:%s:received:%s", rid, h);
	} else {
		snprintf(fact, sizeof(fact), "return:%s:%s", rid, state);
	}
	return emit(c, rs->type, fact, -1,
		    json_pack("{s:s,s:o,s:o}", "return_id", rid, "lines", lines,
			      "reason", reason));
}

/* ---- orders ------------------------------------------------------------------- */

enum {
	O_PLACED = 1u << 0,   /* OrderPlaced */
	O_STATE = 1u << 1,    /* payment status, cancellation */
	O_UPDATES = 1u << 2,  /* OrderUpdated, ShippingAddressChanged */
	O_CHILDREN = 1u << 3, /* fulfillments, refunds, returns */
	O_SNAPSHOT = 1u << 4, /* ChannelSnapshotObserved (poll) */
	O_ALL = O_PLACED | O_STATE | O_UPDATES | O_CHILDREN
};

/* financial_status / displayFinancialStatus -> PaymentStatus */
static const char *payment_status(const char *s)
{
	static const char *const same[] = {
		"pending", "authorized", "partially_paid", "paid",
		"partially_refunded", "refunded", "voided"};
	for (size_t i = 0; i < sizeof(same) / sizeof(*same); i++)
		if (strcmp(same[i], s) == 0)
			return same[i];
	/* an authorization that lapsed can no longer be captured */
	if (strcmp(s, "expired") == 0)
		return "voided";
	return NULL;
}

static const char *cancel_reason(const char *s)
{
	static const char *const known[] = {"customer", "declined", "fraud",
					    "inventory", "staff"};
	for (size_t i = 0; i < sizeof(known) / sizeof(*known); i++)
		if (strcmp(known[i], s) == 0)
			return known[i];
	return "other";
}

static wb_err order_placed(struct ctx *c, const json_t *o, int64_t created)
{
	json_t *lines = NULL, *totals = NULL;
	wb_err rc = lines_of(c, o, false, &lines);
	if (!rc)
		rc = totals_of(c, o, false, &totals);
	if (rc) {
		json_decref(lines);
		return rc;
	}
	int64_t placed = time_of(o, K(c, "processed_at", "processedAt"));
	if (placed < 0)
		placed = created >= 0 ? created : c->fallback_time;
	const char *ccy = c->currency
				  ? c->currency
				  : str_of(json_object_get(totals, "total"),
					   "currency");
	return emit(c, "OrderPlaced", "placed", created,
		    json_pack("{s:o,s:o,s:o,s:s,s:o,s:o,s:o,s:I}", "name",
			      opt_str(o, "name"), "email", opt_str(o, "email"),
			      "phone", opt_str(o, "phone"), "currency", ccy,
			      "totals", totals, "lines", lines,
			      "shipping_address",
			      address_of(c, json_object_get(
						    o, K(c, "shipping_address",
							 "shippingAddress"))),
			      "placed_at", (json_int_t)placed));
}

static wb_err order_state(struct ctx *c, const json_t *o)
{
	char fs[32], fact[64];
	enum_of(o, K(c, "financial_status", "displayFinancialStatus"), fs);
	const char *ps = payment_status(fs);
	wb_err rc = WB_OK;
	if (ps) {
		json_t *paid = NULL;
		if (strcmp(ps, "paid") == 0 &&
		    ((rc = money_of(c, o, K(c, "current_total_price_set",
					    "currentTotalPriceSet"),
				    c->gql ? NULL : "current_total_price",
				    &paid)) ||
		     (!paid && (rc = money_of(c, o,
					      K(c, "total_price_set",
						"totalPriceSet"),
					      c->gql ? NULL : "total_price",
					      &paid)))))
			return rc;
		snprintf(fact, sizeof(fact), "payment:%s", ps);
		rc = emit(c, "PaymentStatusChanged", fact, -1,
			  json_pack("{s:s,s:o}", "status", ps, "amount_paid",
				    paid ? paid : json_null()));
		if (rc)
			return rc;
	}
	int64_t cancelled = time_of(o, K(c, "cancelled_at", "cancelledAt"));
	if (cancelled >= 0) {
		char why[32];
		enum_of(o, K(c, "cancel_reason", "cancelReason"), why);
		rc = emit(c, "OrderCancelled", "cancelled", cancelled,
			  json_pack("{s:s,s:I,s:n}", "reason",
				    cancel_reason(why), "cancelled_at",
				    (json_int_t)cancelled, "note"));
	}
	return rc;
}

static wb_err order_updates(struct ctx *c, const json_t *o)
{
	json_t *lines = NULL, *totals = NULL;
	wb_err rc = lines_of(c, o, true, &lines);
	if (!rc)
		rc = totals_of(c, o, true, &totals);
	if (rc) {
		json_decref(lines);
		return rc;
	}
	json_t *upd = json_pack("{s:o,s:o,s:o,s:o,s:o}", "email",
				opt_str(o, "email"), "phone", opt_str(o, "phone"),
				"note", opt_str(o, "note"), "lines", lines,
				"totals", totals);
	char h[17], fact[64];
	if (!upd || !content_hash(upd, h)) {
		json_decref(upd);
		return wb_fail(c->msg, c->msglen, WB_ESCHEMA,
			       "order %s: OrderUpdated could not be built",
			       c->oid);
	}
	snprintf(fact, sizeof(fact), "updated:%s", h);
	if ((rc = emit(c, "OrderUpdated", fact, -1, upd)))
		return rc;
	json_t *a = json_object_get(o, K(c, "shipping_address",
					 "shippingAddress"));
	if (!json_is_object(a))
		return WB_OK;
	json_t *addr = address_of(c, a);
	if (!addr || !content_hash(addr, h)) {
		json_decref(addr);
		return wb_fail(c->msg, c->msglen, WB_ESCHEMA,
			       "order %s: shipping address unusable", c->oid);
	}
	snprintf(fact, sizeof(fact), "address:%s", h);
	return emit(c, "ShippingAddressChanged", fact, -1,
		    json_pack("{s:o}", "address", addr));
}

static wb_err order_children(struct ctx *c, const json_t *o)
{
	static const char *const keys[] = {"fulfillments", "refunds",
					   "returns"};
	wb_err rc = WB_OK;
	/* REST order payloads carry returns with no state we can map. */
	for (int k = 0; k < (c->gql ? 3 : 2) && !rc; k++) {
		json_t *items = items_of(o, keys[k]), *it;
		size_t i;
		if (json_array_size(items) > MAX_CHILDREN)
			rc = wb_fail(c->msg, c->msglen, WB_ETOOBIG,
				     "order %s: %zu %s, over the cap of %d",
				     c->oid, json_array_size(items), keys[k],
				     MAX_CHILDREN);
		json_array_foreach(items, i, it) {
			if (rc)
				break;
			if (k == 0) {
				rc = fulfillment(c, it, i);
			} else if (k == 1) {
				rc = refund(c, it, i);
			} else {
				static const char *const gql_states[][2] = {
					{"requested", "requested"},
					{"open", "approved"},
					{"declined", "declined"},
					{"canceled", "canceled"},
					{"closed", "closed"}};
				char st[32], what[64];
				enum_of(it, "status", st);
				snprintf(what, sizeof(what), "returns[%zu]", i);
				for (size_t s = 0; s < 5 && !rc; s++)
					if (strcmp(st, gql_states[s][0]) == 0)
						rc = return_event(
							c, it, gql_states[s][1],
							what);
			}
		}
		json_decref(items);
	}
	return rc;
}

static wb_err order_snapshot(struct ctx *c, const json_t *o, int64_t updated)
{
	json_t *total = NULL;
	wb_err rc = money_of(c, o, K(c, "current_total_price_set",
				     "currentTotalPriceSet"),
			     NULL, &total);
	if (!rc && !total)
		rc = money_of(c, o, K(c, "total_price_set", "totalPriceSet"),
			      NULL, &total);
	if (rc)
		return rc;
	json_t *numbers = json_array();
	json_t *fs = items_of(o, "fulfillments"), *f;
	size_t i;
	json_array_foreach(fs, i, f) {
		json_t *urls = json_array(), *carrier;
		if (i < MAX_CHILDREN)
			tracking_of(c, f, numbers, urls, &carrier);
		else
			carrier = NULL;
		json_decref(urls);
		json_decref(carrier);
	}
	json_decref(fs);
	char fin[32], ful[32], fact[64];
	enum_of(o, K(c, "financial_status", "displayFinancialStatus"), fin);
	enum_of(o, K(c, "fulfillment_status", "displayFulfillmentStatus"), ful);
	int64_t at = updated >= 0 ? updated : c->in->now_ms;
	snprintf(fact, sizeof(fact), "snapshot:%lld", (long long)at);
	return emit(c, "ChannelSnapshotObserved", fact, at,
		    json_pack("{s:I,s:o,s:o,s:o,s:b,s:o,s:o}", "observed_at",
			      (json_int_t)c->in->now_ms, "channel_updated_at",
			      updated >= 0 ? json_integer(updated) : json_null(),
			      "financial_status",
			      *fin ? json_string(fin) : json_null(),
			      "fulfillment_status",
			      *ful ? json_string(ful) : json_null(), "cancelled",
			      time_of(o, K(c, "cancelled_at", "cancelledAt")) >= 0,
			      "total", total ? total : json_null(),
			      "tracking_numbers", numbers));
}

static wb_err map_order(struct ctx *c, const json_t *o, unsigned what)
{
	char oid[MAX_ID_DIGITS + 1];
	if (!id_of(o, "id", K(c, "admin_graphql_api_id", "legacyResourceId"),
		   oid))
		return no_id(c, "order");
	set_order(c, oid);
	const char *ccy = str_of(o, K(c, "currency", "currencyCode"));
	c->currency = ccy && wb_currency_exponent(ccy, strlen(ccy)) >= 0 ? ccy
									 : NULL;
	int64_t created = time_of(o, K(c, "created_at", "createdAt"));
	int64_t updated = time_of(o, K(c, "updated_at", "updatedAt"));
	if (c->in->triggered_at >= 0)
		c->fallback_time = c->in->triggered_at;
	else if (updated >= 0)
		c->fallback_time = updated;
	else if (created >= 0)
		c->fallback_time = created;
	wb_err rc = WB_OK;
	if (!rc && (what & O_SNAPSHOT))
		rc = order_snapshot(c, o, updated);
	if (!rc && (what & O_PLACED))
		rc = order_placed(c, o, created);
	if (!rc && (what & O_STATE))
		rc = order_state(c, o);
	if (!rc && (what & O_UPDATES))
		rc = order_updates(c, o);
	if (!rc && (what & O_CHILDREN))
		rc = order_children(c, o);
	return rc;
}

/* ---- webhook topics --------------------------------------------------------------- */

/* The order a fulfillment, refund, return or order edit belongs to. */
static wb_err owner_of(struct ctx *c, const json_t *o, const char *what)
{
	char oid[MAX_ID_DIGITS + 1];
	const json_t *order = json_object_get(o, "order");
	if (!id_of(o, "order_id", "admin_graphql_api_order_id", oid) &&
	    !id_of(order, "id", "admin_graphql_api_id", oid))
		return wb_fail(c->msg, c->msglen, WB_ESCHEMA,
			       "%s: no order id (order_id, "
			       "admin_graphql_api_order_id or order.id)",
			       what);
	set_order(c, oid);
	int64_t t = time_of(o, "updated_at");
	if (c->in->triggered_at >= 0)
		c->fallback_time = c->in->triggered_at;
	else if (t >= 0)
		c->fallback_time = t;
	else if ((t = time_of(o, "created_at")) >= 0)
		c->fallback_time = t;
	return WB_OK;
}

struct topic;
typedef wb_err (*topic_fn)(struct ctx *c, const json_t *body,
			   const struct topic *t);
struct topic {
	const char *name;
	topic_fn map;
	unsigned what;     /* orders: which facts */
	const char *state; /* returns: the state it reports */
};

static wb_err topic_order(struct ctx *c, const json_t *b, const struct topic *t)
{
	return map_order(c, b, t->what);
}

/* orders/edited carries only ids and deltas of the lines it changed; the
 * new lines come with the orders/updated Shopify sends for the same edit.
 * The edit itself is recorded (an OrderUpdated with no field set) so the
 * timeline says when it happened. */
static wb_err topic_order_edit(struct ctx *c, const json_t *b,
			       const struct topic *t)
{
	(void)t;
	const json_t *e = json_object_get(b, "order_edit");
	char eid[MAX_ID_DIGITS + 1], fact[64];
	if (!json_is_object(e))
		return wb_fail(c->msg, c->msglen, WB_ESCHEMA,
			       "orders/edited: no order_edit object");
	wb_err rc = owner_of(c, e, "order_edit");
	if (rc)
		return rc;
	if (!id_of(e, "id", NULL, eid))
		return no_id(c, "order_edit");
	int64_t at = time_of(e, "committed_at");
	if (at < 0)
		at = time_of(e, "created_at");
	snprintf(fact, sizeof(fact), "edit:%s", eid);
	return emit(c, "OrderUpdated", fact, at,
		    json_pack("{s:n,s:n,s:n,s:n,s:n}", "email", "phone", "note",
			      "lines", "totals"));
}

static wb_err topic_fulfillment(struct ctx *c, const json_t *b,
				const struct topic *t)
{
	(void)t;
	wb_err rc = owner_of(c, b, "fulfillment");
	return rc ? rc : fulfillment(c, b, 0);
}

static wb_err topic_refund(struct ctx *c, const json_t *b,
			   const struct topic *t)
{
	(void)t;
	wb_err rc = owner_of(c, b, "refund");
	return rc ? rc : refund(c, b, 0);
}

static wb_err topic_return(struct ctx *c, const json_t *b,
			   const struct topic *t)
{
	wb_err rc = owner_of(c, b, "return");
	return rc ? rc : return_event(c, b, t->state, "return");
}

static const struct topic topics[] = {
	{"orders/create", topic_order, O_PLACED | O_STATE | O_CHILDREN, NULL},
	{"orders/updated", topic_order, O_ALL, NULL},
	{"orders/paid", topic_order, O_ALL, NULL},
	{"orders/cancelled", topic_order, O_ALL, NULL},
	{"orders/fulfilled", topic_order, O_ALL, NULL},
	{"orders/partially_fulfilled", topic_order, O_ALL, NULL},
	{"orders/edited", topic_order_edit, 0, NULL},
	{"fulfillments/create", topic_fulfillment, 0, NULL},
	{"fulfillments/update", topic_fulfillment, 0, NULL},
	{"refunds/create", topic_refund, 0, NULL},
	{"returns/request", topic_return, 0, "requested"},
	{"returns/approve", topic_return, 0, "approved"},
	{"returns/decline", topic_return, 0, "declined"},
	{"returns/cancel", topic_return, 0, "canceled"},
	{"returns/close", topic_return, 0, "closed"},
	{"returns/reopen", topic_return, 0, "reopened"},
	{"returns/process", topic_return, 0, "received"},
};
#define NTOPICS (sizeof(topics) / sizeof(*topics))

const char *wb_shopify_topic(size_t i)
{
	return i < NTOPICS ? topics[i].name : NULL;
}

/* ---- pruning order bodies ------------------------------------------------------ */

/*
 * An order webhook is mostly what the mapping never reads (the customer,
 * addresses other than shipping, tax and discount details, shipping
 * lines, and per line item another dozen fields), and jansson builds a
 * hash table, strings and numbers for all of it: about half of the
 * receiver's CPU. So order bodies are first copied keeping only the
 * members the mapping reads (ORDER_KEYS, and LINE_KEYS inside each
 * line_items element), and jansson parses that.
 *
 * The scan that skips the rest is stricter than jansson: it accepts only
 * strings of valid UTF-8 by jansson's rules without control characters,
 * with the simple escapes and \u escapes other than U+0000 and surrogates
 * (none at all in the member names it compares), numbers that cannot
 * overflow (at most
 * 18 integer digits, 17 decimals, a 2-digit exponent) and the three
 * literals. Anything else, including any structure it does not expect,
 * makes it give up and the whole body is parsed as before: so a body is
 * accepted exactly when jansson accepts it, and gives the same events
 * (the fuzz target checks both against a full parse).
 */
static const char *const ORDER_KEYS[] = {
	"id", "admin_graphql_api_id", "name", "email", "phone", "note",
	"currency", "created_at", "updated_at", "processed_at", "cancelled_at",
	"cancel_reason", "financial_status", "fulfillment_status",
	"subtotal_price_set", "subtotal_price", "total_shipping_price_set",
	"total_tax_set", "total_tax", "total_discounts_set", "total_discounts",
	"total_price_set", "total_price", "current_subtotal_price_set",
	"current_subtotal_price", "current_shipping_price_set",
	"current_total_tax_set", "current_total_tax",
	"current_total_discounts_set", "current_total_discounts",
	"current_total_price_set", "current_total_price", "shipping_address",
	"line_items", "fulfillments", "refunds", NULL};
static const char *const LINE_KEYS[] = {
	"id", "admin_graphql_api_id", "sku", "title", "name", "quantity",
	"current_quantity", "price_set", "price", NULL};

struct scan {
	const unsigned char *p, *end;
	int depth;      /* open objects and arrays */
	bool too_deep;  /* gave up because of WB_SHOPIFY_MAX_DEPTH */
};

static bool scan_enter(struct scan *z)
{
	if (++z->depth <= WB_SHOPIFY_MAX_DEPTH)
		return true;
	z->too_deep = true;
	return false;
}

static void scan_ws(struct scan *z)
{
	while (z->p < z->end && (*z->p == ' ' || *z->p == '\n' ||
				 *z->p == '\r' || *z->p == '\t'))
		z->p++;
}

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A string at z->p ('"'). allow_u: also \u escapes (four hex digits),
 * except U+0000 and surrogates, which make the scan hand the body to
 * jansson (valid in pairs, and jansson decodes them). Keys compared by
 * their bytes are scanned without them, so "\u0069d" is never taken for
 * anything but what jansson makes of it. */
static bool scan_string(struct scan *z, bool allow_u)
{
	const unsigned char *p = z->p + 1, *e = z->end;
	while (p < e) {
		unsigned c = *p;
		if (c == '"') {
			z->p = p + 1;
			return true;
		}
		if (c < 0x20)
			return false;
		if (c == '\\') {
			if (p + 1 >= e)
				return false;
			if (allow_u && p[1] == 'u') {
				if (e - p < 6)
					return false;
				int v = 0;
				for (int i = 2; i < 6; i++) {
					int h = hex_value(p[i]);
					if (h < 0)
						return false;
					v = v * 16 + h;
				}
				if (v == 0 || (v >= 0xD800 && v <= 0xDFFF))
					return false;
				p += 6;
				continue;
			}
			if (!p[1] || !strchr("\"\\/bfnrt", p[1]))
				return false;
			p += 2;
			continue;
		}
		if (c < 0x80) {
			p++;
			continue;
		}
		/* UTF-8 as jansson's utf8_check_first/_full accept it */
		size_t n;
		uint32_t v;
		if (c >= 0xC2 && c <= 0xDF) {
			n = 2;
			v = c & 0x1F;
		} else if (c >= 0xE0 && c <= 0xEF) {
			n = 3;
			v = c & 0x0F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			n = 4;
			v = c & 0x07;
		} else {
			return false;
		}
		if ((size_t)(e - p) < n)
			return false;
		for (size_t i = 1; i < n; i++) {
			if ((p[i] & 0xC0) != 0x80)
				return false;
			v = (v << 6) | (p[i] & 0x3F);
		}
		if ((n == 3 && v < 0x800) || (n == 4 && v < 0x10000) ||
		    v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
			return false;
		p += n;
	}
	return false;
}

static size_t scan_digits(struct scan *z)
{
	const unsigned char *s = z->p;
	while (z->p < z->end && *z->p >= '0' && *z->p <= '9')
		z->p++;
	return (size_t)(z->p - s);
}

static bool scan_number(struct scan *z)
{
	if (*z->p == '-')
		z->p++;
	if (z->p < z->end && *z->p == '0') {
		z->p++;
	} else {
		size_t n = scan_digits(z);
		if (n == 0 || n > 18)
			return false;
	}
	if (z->p < z->end && *z->p == '.') {
		z->p++;
		size_t n = scan_digits(z);
		if (n == 0 || n > 17)
			return false;
	}
	if (z->p < z->end && (*z->p == 'e' || *z->p == 'E')) {
		z->p++;
		if (z->p < z->end && (*z->p == '+' || *z->p == '-'))
			z->p++;
		size_t n = scan_digits(z);
		if (n == 0 || n > 2)
			return false;
	}
	return true;
}

static bool scan_value(struct scan *z);

/* The members of an object or the elements of an array, after its
 * opening bracket. */
static bool scan_container(struct scan *z, unsigned char close)
{
	scan_ws(z);
	if (z->p < z->end && *z->p == close) {
		z->p++;
		return true;
	}
	for (;;) {
		if (close == '}') {
			if (z->p >= z->end || *z->p != '"' ||
			    !scan_string(z, true))
				return false;
			scan_ws(z);
			if (z->p >= z->end || *z->p != ':')
				return false;
			z->p++;
		}
		if (!scan_value(z))
			return false;
		scan_ws(z);
		if (z->p >= z->end)
			return false;
		if (*z->p == close) {
			z->p++;
			return true;
		}
		if (*z->p != ',')
			return false;
		z->p++;
		scan_ws(z);
	}
}

static bool scan_literal(struct scan *z, const char *lit)
{
	size_t n = strlen(lit);
	if ((size_t)(z->end - z->p) < n || memcmp(z->p, lit, n) != 0)
		return false;
	z->p += n;
	return true;
}

static bool scan_value(struct scan *z)
{
	scan_ws(z);
	if (z->p >= z->end)
		return false;
	switch (*z->p) {
	case '"':
		return scan_string(z, true);
	case '{':
	case '[': {
		z->p++;
		if (!scan_enter(z) ||
		    !scan_container(z, z->p[-1] == '{' ? '}' : ']'))
			return false;
		z->depth--;
		return true;
	}
	case 't':
		return scan_literal(z, "true");
	case 'f':
		return scan_literal(z, "false");
	case 'n':
		return scan_literal(z, "null");
	default:
		return (*z->p == '-' || (*z->p >= '0' && *z->p <= '9')) &&
		       scan_number(z);
	}
}

static bool key_in(const unsigned char *k, size_t n, const char *const *keys)
{
	for (; *keys; keys++)
		if ((*keys)[0] == (char)k[0] && strncmp(*keys, (const char *)k, n) == 0 &&
		    (*keys)[n] == '\0')
			return true;
	return false;
}

static bool prune_object(struct scan *z, const char *const *keys, bool top,
			 wb_buf *out);

/* line_items: each element an object, pruned to LINE_KEYS. */
static bool prune_lines(struct scan *z, wb_buf *out)
{
	scan_ws(z);
	if (z->p >= z->end || *z->p != '[' || !scan_enter(z))
		return false;
	z->p++;
	wb_buf_putc(out, '[');
	scan_ws(z);
	if (z->p < z->end && *z->p == ']') {
		z->p++;
		z->depth--;
		wb_buf_putc(out, ']');
		return true;
	}
	for (;;) {
		scan_ws(z);
		if (z->p >= z->end || *z->p != '{' || !scan_enter(z))
			return false;
		z->p++;
		if (!prune_object(z, LINE_KEYS, false, out))
			return false;
		z->depth--;
		scan_ws(z);
		if (z->p >= z->end)
			return false;
		if (*z->p == ']') {
			z->p++;
			z->depth--;
			wb_buf_putc(out, ']');
			return true;
		}
		if (*z->p != ',')
			return false;
		z->p++;
		wb_buf_putc(out, ',');
	}
}

/* An object after its '{': the members named in keys are copied. */
static bool prune_object(struct scan *z, const char *const *keys, bool top,
			 wb_buf *out)
{
	wb_buf_putc(out, '{');
	bool first = true;
	scan_ws(z);
	if (z->p < z->end && *z->p == '}') {
		z->p++;
		wb_buf_putc(out, '}');
		return true;
	}
	for (;;) {
		if (z->p >= z->end || *z->p != '"')
			return false;
		const unsigned char *k = z->p;
		if (!scan_string(z, false))
			return false;
		const unsigned char *kend = z->p;
		scan_ws(z);
		if (z->p >= z->end || *z->p != ':')
			return false;
		z->p++;
		scan_ws(z);
		bool keep = key_in(k + 1, (size_t)(kend - k - 2), keys);
		if (keep) {
			if (!first)
				wb_buf_putc(out, ',');
			first = false;
			wb_buf_append(out, k, (size_t)(kend - k));
			wb_buf_putc(out, ':');
		}
		const unsigned char *v = z->p;
		if (keep && top && kend - k == 12 &&
		    memcmp(k, "\"line_items\"", 12) == 0 && z->p < z->end &&
		    *z->p == '[') {
			if (!prune_lines(z, out))
				return false;
		} else {
			if (!scan_value(z))
				return false;
			if (keep)
				wb_buf_append(out, v, (size_t)(z->p - v));
		}
		scan_ws(z);
		if (z->p >= z->end)
			return false;
		if (*z->p == '}') {
			z->p++;
			wb_buf_putc(out, '}');
			return true;
		}
		if (*z->p != ',')
			return false;
		z->p++;
		scan_ws(z);
	}
}

/* The pruned copy of an order body in out; false: parse it whole
 * (*too_deep: it is nested deeper than WB_SHOPIFY_MAX_DEPTH). The scan
 * counts the depth itself, so a pruned body needs no separate check. */
static bool prune_order(const char *body, size_t len, wb_buf *out,
			bool *too_deep)
{
	struct scan z = {(const unsigned char *)body,
			 (const unsigned char *)body + len, 0, false};
	scan_ws(&z);
	bool ok = z.p < z.end && *z.p == '{' && scan_enter(&z);
	if (ok) {
		z.p++;
		ok = prune_object(&z, ORDER_KEYS, true, out);
		scan_ws(&z);
		ok = ok && z.p == z.end;
	}
	*too_deep = z.too_deep;
	return ok;
}

/* ---- entry points ------------------------------------------------------------------ */

bool wb_shopify_depth_ok(const char *s, size_t len, int max_depth)
{
	int depth = 0;
	bool in_str = false, esc = false;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		if (in_str) {
			if (esc)
				esc = false;
			else if (ch == '\\')
				esc = true;
			else if (ch == '"')
				in_str = false;
		} else if (ch == '"') {
			in_str = true;
		} else if (ch == '{' || ch == '[') {
			if (++depth > max_depth)
				return false;
		} else if (ch == '}' || ch == ']') {
			depth--;
		}
	}
	return true;
}

/* A delivery id fit for correlation_id: short printable ASCII. */
static json_t *delivery_id(const char *prefix, const char *id)
{
	size_t n = id ? strlen(id) : 0;
	if (n == 0 || n > MAX_DELIVERY_ID)
		return json_null();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)id[i] <= ' ' || (unsigned char)id[i] >= 0x7f)
			return json_null();
	char buf[MAX_DELIVERY_ID + 32];
	snprintf(buf, sizeof(buf), "%s%s", prefix, id);
	return json_string(buf);
}

bool wb_shopify_shop_ok(const char *shop)
{
	size_t n = shop ? strlen(shop) : 0;
	if (n == 0 || n > 255)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = shop[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '-'))
			return false;
	}
	return true;
}

static void ctx_init(struct ctx *c, const struct wb_shopify_ctx *in, bool gql,
		     char *msg, size_t msglen)
{
	memset(c, 0, sizeof(*c));
	c->in = in;
	c->gql = gql;
	c->fallback_time = in->now_ms;
	c->correlation = delivery_id("shopify-webhook:", in->webhook_id);
	c->causation = delivery_id("shopify-event:", in->event_id);
	c->events = json_array();
	c->msg = msg;
	c->msglen = msglen;
}

/* Hands the events over on success; on error nothing is appended. */
static wb_err ctx_finish(struct ctx *c, wb_err rc, json_t *events)
{
	if (rc == WB_OK && json_array_size(c->events) == 0)
		rc = wb_fail(c->msg, c->msglen, WB_ESCHEMA,
			     "order %s: no fact Waybill records", c->oid);
	if (rc == WB_OK)
		json_array_extend(events, c->events);
	json_decref(c->events);
	json_decref(c->correlation);
	json_decref(c->causation);
	return rc;
}

static wb_err map_webhook(const struct wb_shopify_ctx *in, const char *body,
			  size_t len, bool prune, json_t *events, char *msg,
			  size_t msglen)
{
	const struct topic *t = NULL;
	for (size_t i = 0; in->topic && i < NTOPICS; i++)
		if (strcmp(topics[i].name, in->topic) == 0)
			t = &topics[i];
	if (!t)
		return wb_fail(msg, msglen, WB_ENOTFOUND,
			       "topic '%.64s' is not one Waybill maps",
			       in->topic ? in->topic : "(none)");
	if (!wb_shopify_shop_ok(in->shop))
		return wb_fail(msg, msglen, WB_ESCHEMA,
			       "X-Shopify-Shop-Domain missing or not a domain");
	if (len > WB_SHOPIFY_MAX_BODY)
		return wb_fail(msg, msglen, WB_ETOOBIG,
			       "body of %zu bytes over the %u-byte cap", len,
			       WB_SHOPIFY_MAX_BODY);
	/* jansson's own words for it would be "wrong arguments" */
	if (len == 0)
		return wb_fail(msg, msglen, WB_EPARSE, "empty body");
	/* Duplicate keys are not looked for (it costs a quarter of the
	 * parse): the body is authenticated Shopify output, which names each
	 * key once, nothing else parses these bytes (only the events go on),
	 * and jansson's rule for a repeat (the last wins) is deterministic. */
	json_error_t jerr;
	json_t *root = NULL;
	bool too_deep = false;
	if (prune && t->map == topic_order) {
		wb_buf pruned;
		wb_buf_init(&pruned);
		if (prune_order(body, len, &pruned, &too_deep))
			root = json_loadb((const char *)pruned.data, pruned.len,
					  0, &jerr);
		wb_buf_finish(&pruned);
	}
	if (!root && (too_deep ||
		      !wb_shopify_depth_ok(body, len, WB_SHOPIFY_MAX_DEPTH)))
		return wb_fail(msg, msglen, WB_EPARSE,
			       "JSON nested deeper than %d levels",
			       WB_SHOPIFY_MAX_DEPTH);
	if (!root)
		root = json_loadb(body, len, 0, &jerr);
	if (!root)
		return wb_fail(msg, msglen, WB_EPARSE,
			       "invalid JSON at line %d column %d: %s",
			       jerr.line, jerr.column, jerr.text);
	wb_err rc;
	struct ctx c;
	ctx_init(&c, in, false, msg, msglen);
	if (!json_is_object(root))
		rc = wb_fail(msg, msglen, WB_ESCHEMA,
			     "%s body is not a JSON object", t->name);
	else
		rc = t->map(&c, root, t);
	rc = ctx_finish(&c, rc, events);
	json_decref(root);
	return rc;
}

wb_err wb_shopify_map_webhook(const struct wb_shopify_ctx *in,
			      const char *body, size_t len, json_t *events,
			      char *msg, size_t msglen)
{
	return map_webhook(in, body, len, true, events, msg, msglen);
}

wb_err wb_shopify_map_webhook_whole(const struct wb_shopify_ctx *in,
				    const char *body, size_t len,
				    json_t *events, char *msg, size_t msglen)
{
	return map_webhook(in, body, len, false, events, msg, msglen);
}

wb_err wb_shopify_map_graphql_order(const struct wb_shopify_ctx *in,
				    const json_t *node, json_t *events,
				    char *msg, size_t msglen)
{
	if (!wb_shopify_shop_ok(in->shop))
		return wb_fail(msg, msglen, WB_ECONFIG,
			       "shop '%.64s' is not a domain",
			       in->shop ? in->shop : "");
	if (!json_is_object(node))
		return wb_fail(msg, msglen, WB_ESCHEMA,
			       "order node is not a JSON object");
	struct ctx c;
	ctx_init(&c, in, true, msg, msglen);
	wb_err rc = map_order(&c, node, O_ALL | O_SNAPSHOT);
	return ctx_finish(&c, rc, events);
}

/* ---- GraphQL pages ------------------------------------------------------------------ */

static double num_of(const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_number(v) ? json_number_value(v) : -1;
}

void wb_shopify_page_finish(struct wb_shopify_page *pg)
{
	json_decref(pg->root);
	json_decref(pg->nodes);
	memset(pg, 0, sizeof(*pg));
}

wb_err wb_shopify_page_parse(const char *body, size_t len,
			     struct wb_shopify_page *pg, char *msg,
			     size_t msglen)
{
	memset(pg, 0, sizeof(*pg));
	pg->requested_cost = pg->actual_cost = pg->max_available =
		pg->currently_available = pg->restore_rate = -1;
	if (!wb_shopify_depth_ok(body, len, WB_SHOPIFY_MAX_DEPTH))
		return wb_fail(msg, msglen, WB_EPARSE,
			       "response JSON nested deeper than %d levels",
			       WB_SHOPIFY_MAX_DEPTH);
	json_error_t jerr;
	pg->root = json_loadb(body, len, 0, &jerr);
	if (!pg->root)
		return wb_fail(msg, msglen, WB_EPARSE,
			       "response is not JSON (truncated or malformed) "
			       "at line %d column %d: %s",
			       jerr.line, jerr.column, jerr.text);
	if (!json_is_object(pg->root)) {
		wb_shopify_page_finish(pg);
		return wb_fail(msg, msglen, WB_ESCHEMA,
			       "response is not a JSON object");
	}
	json_t *cost = json_object_get(json_object_get(pg->root, "extensions"),
				       "cost");
	json_t *ts = json_object_get(cost, "throttleStatus");
	pg->requested_cost = num_of(cost, "requestedQueryCost");
	pg->actual_cost = num_of(cost, "actualQueryCost");
	pg->max_available = num_of(ts, "maximumAvailable");
	pg->currently_available = num_of(ts, "currentlyAvailable");
	pg->restore_rate = num_of(ts, "restoreRate");
	json_t *errors = json_object_get(pg->root, "errors");
	if (json_array_size(errors) > 0) {
		json_t *e;
		size_t i;
		json_array_foreach(errors, i, e) {
			const char *code = str_of(json_object_get(e, "extensions"),
						  "code");
			const char *m = str_of(e, "message");
			if ((code && strcmp(code, "THROTTLED") == 0) ||
			    (m && strcmp(m, "Throttled") == 0)) {
				pg->throttled = true;
				return WB_OK;
			}
		}
		const char *m = str_of(json_array_get(errors, 0), "message");
		const char *code = str_of(
			json_object_get(json_array_get(errors, 0), "extensions"),
			"code");
		wb_err rc = wb_fail(msg, msglen, WB_EHTTP,
				    "GraphQL error%s%.40s: %.200s",
				    code ? " " : "", code ? code : "",
				    m ? m : "(no message)");
		wb_shopify_page_finish(pg);
		return rc;
	}
	/* errors as a string (401/403 bodies look like this) */
	if (json_is_string(errors)) {
		wb_err rc = wb_fail(msg, msglen, WB_EHTTP, "error: %.200s",
				    json_string_value(errors));
		wb_shopify_page_finish(pg);
		return rc;
	}
	json_t *orders = json_object_get(json_object_get(pg->root, "data"),
					 "orders");
	json_t *info = json_object_get(orders, "pageInfo");
	if (!json_is_object(orders) || !json_is_object(info)) {
		wb_shopify_page_finish(pg);
		return wb_fail(msg, msglen, WB_ESCHEMA,
			       "response has no data.orders with pageInfo");
	}
	pg->nodes = items_of(json_object_get(pg->root, "data"), "orders");
	pg->has_next = json_is_true(json_object_get(info, "hasNextPage"));
	const char *end = str_of(info, "endCursor");
	if (end && strlen(end) < sizeof(pg->end_cursor))
		memcpy(pg->end_cursor, end, strlen(end) + 1);
	if (pg->has_next && !pg->end_cursor[0]) {
		wb_shopify_page_finish(pg);
		return wb_fail(msg, msglen, WB_ESCHEMA,
			       "pageInfo.hasNextPage without a usable "
			       "endCursor");
	}
	return WB_OK;
}
