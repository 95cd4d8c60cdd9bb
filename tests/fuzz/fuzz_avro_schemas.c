/*
 * fuzz_avro_schemas.c — the generic codec on every schema: the first byte
 * picks the schema id (modulo WB_SCHEMA_COUNT), the rest is an Avro body
 * for wb_avro_decode and wb_avro_validate.
 *
 * Invariants:
 *  - validate and decode accept exactly the same bodies;
 *  - a decoded value re-encodes with wb_avro_encode, to the same bytes
 *    when validate called the body canonical, and the new bytes decode to
 *    the same JSON. OrderEvent (and the event inside a LedgerEntry) picks
 *    its payload branch by "type", so for those this is only checked when
 *    wb_event_peek accepts the event (type names the payload).
 */
#include <string.h>

#include "fuzz.h"
#include "wb_ledger.h"
#include "wb_schema.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_init_json();
	return 0;
}

/* Whether the value's payload branch is the one its "type" names. */
static bool type_matches_payload(wb_schema_id id, const uint8_t *body,
				 size_t len)
{
	char msg[256];
	struct wb_event_view v;
	struct wb_entry e;
	if (id == WB_SCHEMA_ORDER_EVENT)
		return wb_event_peek(body, len, &v, msg, sizeof(msg)) == WB_OK;
	if (id == WB_SCHEMA_LEDGER_ENTRY)
		return wb_entry_parse(body, len, &e, msg, sizeof(msg)) ==
			       WB_OK &&
		       wb_event_peek(e.event, e.event_len, &v, msg,
				     sizeof(msg)) == WB_OK;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	wb_schema_id id = (wb_schema_id)(data[0] % WB_SCHEMA_COUNT);
	const uint8_t *body = data + 1;
	size_t len = size - 1;
	char msg[512] = "";

	bool canonical = false;
	wb_err val_rc = wb_avro_validate(id, body, len, &canonical, msg,
					 sizeof(msg));
	json_t *j = NULL;
	wb_err dec_rc = wb_avro_decode(id, body, len, &j, msg, sizeof(msg));
	FUZZ_CHECK((val_rc == WB_OK) == (dec_rc == WB_OK),
		   "%s: validate says %d, decode says %d (%s)",
		   wb_schema_name(id), val_rc, dec_rc, msg);
	if (dec_rc != WB_OK)
		return 0;
	FUZZ_CHECK(j, "decode succeeded without a value");
	if (!type_matches_payload(id, body, len)) {
		json_decref(j);
		return 0;
	}

	wb_buf out;
	wb_buf_init(&out);
	wb_err rc = wb_avro_encode(id, j, &out, msg, sizeof(msg));
	FUZZ_CHECK(rc == WB_OK, "%s: decoded value does not re-encode: %s",
		   wb_schema_name(id), msg);
	if (canonical)
		FUZZ_CHECK(out.len == len && memcmp(out.data, body, len) == 0,
			   "%s: canonical body re-encodes to other bytes",
			   wb_schema_name(id));
	json_t *again = NULL;
	rc = wb_avro_decode(id, out.data, out.len, &again, msg, sizeof(msg));
	FUZZ_CHECK(rc == WB_OK, "%s: re-encoded body does not decode: %s",
		   wb_schema_name(id), msg);
	FUZZ_CHECK(json_equal(j, again),
		   "%s: re-encoded body decodes to other JSON",
		   wb_schema_name(id));
	json_decref(again);
	json_decref(j);
	wb_buf_finish(&out);
	return 0;
}
