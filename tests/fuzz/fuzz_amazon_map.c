/*
 * fuzz_amazon_map.c — the Amazon mapping (ingestors/amazon_map.c) on
 * arbitrary bytes. The input is JSON: {"order": <getOrders order>,
 * "items": <OrderItems array or null>} maps that pair; any other JSON
 * value is mapped as an order without items. The input, NUL-terminated, is
 * also read as an SP-API time and as a money amount in USD and JPY.
 *
 * Invariants:
 *  - an error appends no event and no problem;
 *  - every event is one the ledger accepts (encoded as amazon-poll encodes
 *    it, then unframed and peeked), of merchant MERCHANT and channel
 *    amazon, keyed by "amazon:<AmazonOrderId>", its event_id starting with
 *    that order id;
 *  - the same input maps to identical events (re-polls dedupe);
 *  - a money amount that parses has the same value in JPY and, times 100,
 *    in USD (one digit path for both exponents).
 */
#include <string.h>

#include "fuzz.h"
#include "wb_ingest.h"

#define MERCHANT "ATVPDKIKX0DER"
#define NOW_MS 1767225600000LL

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_init_json();
	return 0;
}

static void check_events(json_t *order, json_t *evs)
{
	const char *id = json_string_value(json_object_get(order,
							   "AmazonOrderId"));
	FUZZ_CHECK(id != NULL, "events for an order without an id");
	char oid[128];
	snprintf(oid, sizeof(oid), "amazon:%s", id);
	wb_buf buf;
	wb_buf_init(&buf);
	size_t i;
	json_t *e;
	json_array_foreach(evs, i, e) {
		char msg[512] = "";
		struct wb_ingest_record rec;
		json_t *copy = json_deep_copy(e);
		wb_err rc = wb_ingest_event_json(copy, "amazon-poll", NOW_MS,
						 &buf, &rec, msg, sizeof(msg));
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
			   "event %zu: the ledger would reject it: %s", i, msg);
		FUZZ_CHECK(strcmp(rec.key, oid) == 0,
			   "event %zu keyed %s, not %s", i, rec.key, oid);
		FUZZ_CHECK(strncmp(rec.event_id, oid, strlen(oid)) == 0 &&
				   rec.event_id[strlen(oid)] == ':',
			   "event id %s not under %s", rec.event_id, oid);
		FUZZ_CHECK(v.merchant.n == strlen(MERCHANT) &&
				   memcmp(v.merchant.p, MERCHANT, v.merchant.n) ==
					   0 &&
				   v.channel.n == 6 &&
				   memcmp(v.channel.p, "amazon", 6) == 0,
			   "event %zu: wrong merchant or channel", i);
	}
	wb_buf_finish(&buf);
}

static void map_twice(json_t *order, json_t *items)
{
	static const struct wb_amazon_map_opts opts = {MERCHANT, "amazon-poll",
						       NOW_MS};
	json_t *ev[2], *pr[2];
	wb_err rc[2];
	for (int k = 0; k < 2; k++) {
		char msg[512];
		ev[k] = json_array();
		pr[k] = json_array();
		rc[k] = wb_amazon_map_order(order, items, &opts, ev[k], pr[k],
					    msg, sizeof(msg));
	}
	FUZZ_CHECK(rc[0] == rc[1] && json_equal(ev[0], ev[1]) &&
			   json_equal(pr[0], pr[1]),
		   "the same order mapped twice gives different answers");
	if (rc[0] != WB_OK)
		FUZZ_CHECK(json_array_size(ev[0]) == 0 &&
				   json_array_size(pr[0]) == 0,
			   "an error appended events or problems");
	else
		check_events(order, ev[0]);
	for (int k = 0; k < 2; k++) {
		json_decref(ev[k]);
		json_decref(pr[k]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	int64_t t, usd, jpy;
	(void)wb_amazon_parse_time(s, &t);
	char msg[256];
	if (wb_money_parse(s, size, "JPY", 3, &jpy, msg, sizeof(msg)) ==
	    WB_OK) {
		FUZZ_CHECK(wb_money_parse(s, size, "USD", 3, &usd, msg,
					  sizeof(msg)) != WB_OK ||
				   usd / 100 == jpy,
			   "'%s': %lld yen but %lld cents", s, (long long)jpy,
			   (long long)usd);
	}
	free(s);

	json_t *doc = json_loadb((const char *)data, size,
				 JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
	if (!doc)
		return 0;
	json_t *order = json_object_get(doc, "order");
	json_t *items = json_object_get(doc, "items");
	if (order)
		map_twice(order, json_is_null(items) ? NULL : items);
	else
		map_twice(doc, NULL);
	json_decref(doc);
	return 0;
}
