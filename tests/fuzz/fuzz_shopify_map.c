/*
 * fuzz_shopify_map.c — the Shopify mapping (ingestors/shopify_map.c) on
 * arbitrary bytes. The first byte picks what the rest is:
 *
 *   0 .. T-1  a webhook body under the T-th mapped topic (wb_shopify_topic)
 *   T         a webhook body under a topic Waybill does not map
 *   T+1       one GraphQL Order node (shopify-poll)
 *   T+2       a GraphQL `orders` page; every node of it is mapped
 *
 * and the whole input is also tried as an X-Shopify-Hmac-Sha256 header.
 *
 * Invariants:
 *  - an error appends nothing; an unmapped topic is WB_ENOTFOUND;
 *  - success gives at least one event, and every event is one the ledger
 *    accepts (encoded as the receiver encodes it, then unframed and
 *    peeked), of merchant SHOP, keyed by "shopify:<digits>", its event_id
 *    starting with that order id;
 *  - the same input maps to byte-identical events (ids are deterministic,
 *    so redeliveries dedupe), and a webhook body gives the same answer
 *    when its order is pruned before parsing as when it is parsed whole;
 *  - a body signed with the secret verifies, a flipped MAC bit does not.
 */
#include <openssl/hmac.h>
#include <string.h>

#include "fuzz.h"
#include "wb_ingest.h"

#define SHOP "fuzz.myshopify.com"
#define NOW_MS 1767225600000LL

static size_t ntopics;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_init_json();
	while (wb_shopify_topic(ntopics))
		ntopics++;
	return 0;
}

static void check_events(json_t *evs, wb_buf *buf)
{
	size_t i;
	json_t *e;
	json_array_foreach(evs, i, e) {
		char msg[512] = "";
		struct wb_ingest_record rec;
		json_t *copy = json_deep_copy(e);
		wb_err rc = wb_ingest_event_json(copy, "fuzz", NOW_MS, buf, &rec,
						 msg, sizeof(msg));
		json_decref(copy);
		FUZZ_CHECK(rc == WB_OK, "event %zu does not encode: %s", i, msg);
		const uint8_t *body;
		size_t len;
		struct wb_event_view v;
		FUZZ_CHECK(wb_avro_unframe(WB_SCHEMA_ORDER_EVENT, rec.value,
					   rec.value_len, &body, &len, msg,
					   sizeof(msg)) == WB_OK &&
				   wb_event_peek(body, len, &v, msg,
						 sizeof(msg)) == WB_OK,
			   "the ledger would refuse event %zu: %s", i, msg);
		FUZZ_CHECK(v.merchant.n == strlen(SHOP) &&
				   memcmp(v.merchant.p, SHOP, v.merchant.n) == 0,
			   "merchant is not the shop");
		FUZZ_CHECK(v.order_id.n > 8 &&
				   memcmp(v.order_id.p, "shopify:", 8) == 0,
			   "order_id %.*s", (int)v.order_id.n, v.order_id.p);
		for (size_t k = 8; k < v.order_id.n; k++)
			FUZZ_CHECK(v.order_id.p[k] >= '0' && v.order_id.p[k] <= '9',
				   "order id not digits: %.*s",
				   (int)v.order_id.n, v.order_id.p);
		FUZZ_CHECK(v.event_id.n > v.order_id.n &&
				   memcmp(v.event_id.p, v.order_id.p,
					  v.order_id.n) == 0 &&
				   v.event_id.p[v.order_id.n] == ':',
			   "event_id %.*s not under its order",
			   (int)v.event_id.n, v.event_id.p);
	}
}

static char *dump(json_t *evs)
{
	return json_dumps(evs, JSON_COMPACT | JSON_SORT_KEYS);
}

/* Maps twice; checks the invariants; returns the error of the first. */
static wb_err map_checked(const char *topic, bool graphql, const json_t *node,
			  const char *body, size_t len, wb_buf *buf)
{
	struct wb_shopify_ctx c = {.shop = SHOP, .topic = topic,
				   .webhook_id = "fuzz-webhook",
				   .event_id = "fuzz-event",
				   .triggered_at = -1, .now_ms = NOW_MS,
				   .source = "shopify-webhooks"};
	json_t *a = json_array(), *b = json_array();
	char msg[512] = "", msg2[512] = "";
	wb_err rc, rc2;
	if (graphql) {
		rc = wb_shopify_map_graphql_order(&c, node, a, msg, sizeof(msg));
		rc2 = wb_shopify_map_graphql_order(&c, node, b, msg2,
						   sizeof(msg2));
	} else {
		/* the second run parses the body whole: pruning must change
		 * nothing, neither what is accepted nor the events */
		rc = wb_shopify_map_webhook(&c, body, len, a, msg, sizeof(msg));
		rc2 = wb_shopify_map_webhook_whole(&c, body, len, b, msg2,
						   sizeof(msg2));
	}
	FUZZ_CHECK(rc == rc2, "two runs disagree: %d vs %d", rc, rc2);
	if (rc) {
		FUZZ_CHECK(json_array_size(a) == 0,
			   "error %d but %zu events appended (%s)", rc,
			   json_array_size(a), msg);
		FUZZ_CHECK(msg[0], "error %d without a message", rc);
	} else {
		FUZZ_CHECK(json_array_size(a) > 0, "success with no event");
		check_events(a, buf);
		char *da = dump(a), *db = dump(b);
		FUZZ_CHECK(da && db && strcmp(da, db) == 0,
			   "the same input mapped to different events");
		free(da);
		free(db);
	}
	json_decref(a);
	json_decref(b);
	return rc;
}

static void check_hmac(const uint8_t *data, size_t size)
{
	static const char *const secrets[] = {"fuzz-secret"};
	unsigned char mac[32];
	unsigned int n = 0;
	HMAC(EVP_sha256(), "fuzz-secret", 11, data, size, mac, &n);
	static const char tbl[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char hdr[45];
	for (int flip = 0; flip < 2; flip++) {
		if (flip)
			mac[size % 32] ^= (unsigned char)(1u << (size % 8));
		size_t o = 0;
		for (size_t i = 0; i < 32; i += 3) {
			uint32_t v = (uint32_t)mac[i] << 16;
			if (i + 1 < 32)
				v |= (uint32_t)mac[i + 1] << 8;
			if (i + 2 < 32)
				v |= mac[i + 2];
			hdr[o++] = tbl[(v >> 18) & 63];
			hdr[o++] = tbl[(v >> 12) & 63];
			hdr[o++] = i + 1 < 32 ? tbl[(v >> 6) & 63] : '=';
			hdr[o++] = i + 2 < 32 ? tbl[v & 63] : '=';
		}
		hdr[o] = '\0';
		bool valid = wb_shopify_hmac_valid(hdr, data, size, secrets, 1);
		FUZZ_CHECK(valid == !flip, "HMAC %s", flip ? "flip accepted"
							   : "rejected");
	}
	/* the input itself as a header: must not crash, almost never valid */
	char *as_header = wb_xstrndup((const char *)data, size);
	(void)wb_shopify_hmac_valid(as_header, data, size, secrets, 1);
	free(as_header);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned pick = data[0] % (unsigned)(ntopics + 3);
	const char *body = (const char *)data + 1;
	size_t len = size - 1;
	wb_buf buf;
	wb_buf_init(&buf);
	check_hmac(data, size);
	if (pick < ntopics) {
		map_checked(wb_shopify_topic(pick), false, NULL, body, len, &buf);
	} else if (pick == ntopics) {
		wb_err rc = map_checked("orders/delete", false, NULL, body, len,
					&buf);
		FUZZ_CHECK(rc == WB_ENOTFOUND, "unmapped topic gave %d", rc);
	} else if (pick == ntopics + 1) {
		json_t *node = wb_shopify_depth_ok(body, len, WB_SHOPIFY_MAX_DEPTH)
				       ? json_loadb(body, len, 0, NULL)
				       : NULL;
		if (node)
			map_checked(NULL, true, node, NULL, 0, &buf);
		json_decref(node);
	} else {
		struct wb_shopify_page pg;
		char msg[512] = "";
		if (wb_shopify_page_parse(body, len, &pg, msg, sizeof(msg)) ==
		    WB_OK) {
			FUZZ_CHECK(pg.throttled || json_is_array(pg.nodes),
				   "page without a node array");
			FUZZ_CHECK(!pg.has_next || pg.end_cursor[0],
				   "next page without a cursor");
			size_t i;
			json_t *node;
			json_array_foreach(pg.nodes, i, node)
				map_checked(NULL, true, node, NULL, 0, &buf);
			wb_shopify_page_finish(&pg);
		}
	}
	wb_buf_finish(&buf);
	return 0;
}
