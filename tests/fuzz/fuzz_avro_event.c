/*
 * fuzz_avro_event.c — an untrusted Kafka record as the ledger reads it:
 * wb_avro_unframe, then wb_event_peek on the body (input without a valid
 * single-object header is also tried as a bare body, so mutations reach the
 * decoder either way), next to wb_avro_validate and wb_avro_decode.
 *
 * Invariants:
 *  - validate and decode accept exactly the same bodies;
 *  - peek accepts only bodies decode accepts, agrees on canonical, and its
 *    slices lie inside the body;
 *  - an accepted event's JSON re-encodes (wb_event_encode_json), to the
 *    very same bytes when the body was canonical, and the new bytes decode
 *    to the same JSON;
 *  - the same holds after a trip through JSON text (json_dumps, then
 *    json_loadb as waybill-ingest reads a line), as `waybill replay`
 *    output fed back to `waybill-ingest events` would take.
 */
#include <string.h>

#include "fuzz.h"
#include "wb_schema.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_init_json();
	return 0;
}

static void check_slice(struct wb_slice s, const uint8_t *body, size_t len,
			const char *name)
{
	if (!s.p) {
		FUZZ_CHECK(s.n == 0, "%s: NULL slice of %zu bytes", name, s.n);
		return;
	}
	const uint8_t *p = (const uint8_t *)s.p;
	FUZZ_CHECK(p >= body && s.n <= len && p - body <= (ptrdiff_t)(len - s.n),
		   "%s: slice outside the body", name);
}

/* Encodes event JSON j and checks it against the original body. */
static void reencode(json_t *j, const uint8_t *body, size_t len,
		     bool canonical, json_t *decoded, const char *how)
{
	char msg[512] = "";
	wb_buf out;
	wb_buf_init(&out);
	wb_err rc = wb_event_encode_json(j, &out, msg, sizeof(msg));
	FUZZ_CHECK(rc == WB_OK, "%s: accepted event does not re-encode: %s",
		   how, msg);
	if (canonical)
		FUZZ_CHECK(out.len == len && memcmp(out.data, body, len) == 0,
			   "%s: canonical body re-encodes to other bytes "
			   "(%zu vs %zu)", how, out.len, len);
	json_t *again = NULL;
	rc = wb_avro_decode(WB_SCHEMA_ORDER_EVENT, out.data, out.len, &again,
			    msg, sizeof(msg));
	FUZZ_CHECK(rc == WB_OK, "%s: re-encoded body does not decode: %s",
		   how, msg);
	FUZZ_CHECK(json_equal(again, decoded),
		   "%s: re-encoded body decodes to other JSON", how);
	bool canon = false;
	rc = wb_avro_validate(WB_SCHEMA_ORDER_EVENT, out.data, out.len,
			      &canon, msg, sizeof(msg));
	FUZZ_CHECK(rc == WB_OK && canon,
		   "%s: encoder output is not canonical: %s", how, msg);
	json_decref(again);
	wb_buf_finish(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char msg[512] = "";
	const uint8_t *body;
	size_t len;
	if (wb_avro_unframe(WB_SCHEMA_ORDER_EVENT, data, size, &body, &len,
			    msg, sizeof(msg)) != WB_OK) {
		body = data;
		len = size;
	}

	struct wb_event_view v;
	wb_err peek_rc = wb_event_peek(body, len, &v, msg, sizeof(msg));
	bool canonical = false;
	wb_err val_rc = wb_avro_validate(WB_SCHEMA_ORDER_EVENT, body, len,
					 &canonical, msg, sizeof(msg));
	json_t *j = NULL;
	wb_err dec_rc = wb_avro_decode(WB_SCHEMA_ORDER_EVENT, body, len, &j,
				       msg, sizeof(msg));
	FUZZ_CHECK((val_rc == WB_OK) == (dec_rc == WB_OK),
		   "validate says %d, decode says %d", val_rc, dec_rc);
	FUZZ_CHECK((dec_rc == WB_OK) == (j != NULL), "decode result");
	if (peek_rc != WB_OK) {
		json_decref(j);
		return 0;
	}
	FUZZ_CHECK(dec_rc == WB_OK, "peek accepts what decode rejects: %s",
		   msg);
	FUZZ_CHECK(v.canonical == canonical, "peek and validate disagree on "
		   "canonical");
	check_slice(v.event_id, body, len, "event_id");
	check_slice(v.merchant, body, len, "merchant");
	check_slice(v.order_id, body, len, "order_id");
	check_slice(v.channel, body, len, "channel");
	check_slice(v.type, body, len, "type");
	check_slice(v.source, body, len, "source");
	check_slice(v.correlation_id, body, len, "correlation_id");
	check_slice(v.causation_id, body, len, "causation_id");
	FUZZ_CHECK(v.payload_name &&
			   strcmp(v.payload_name,
				  wb_event_types()[v.payload_branch]) == 0,
		   "payload name");

	reencode(j, body, len, canonical, j, "json_t");

	char *text = json_dumps(j, JSON_COMPACT);
	FUZZ_CHECK(text, "json_dumps failed");
	json_error_t jerr;
	json_t *back = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	FUZZ_CHECK(back, "the event's JSON line does not load back: %s: %s",
		   jerr.text, text);
	reencode(back, body, len, canonical, j, "JSON text");
	json_decref(back);
	free(text);
	json_decref(j);
	return 0;
}
