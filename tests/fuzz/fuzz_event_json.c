/*
 * fuzz_event_json.c — a canonical JSON event line, as `waybill-ingest
 * events` reads it (json_loadb with duplicate keys rejected), into
 * wb_event_encode_json.
 *
 * Invariants, whenever the encoder accepts the event:
 *  - wb_event_peek accepts what it produced, in canonical form, and the
 *    envelope it sees is the JSON's;
 *  - decoding the bytes and encoding that JSON again gives the same bytes.
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

static void check_field(json_t *ev, const char *name, struct wb_slice s)
{
	json_t *f = json_object_get(ev, name);
	FUZZ_CHECK(json_is_string(f) && json_string_length(f) == s.n &&
			   memcmp(json_string_value(f), s.p, s.n) == 0,
		   "peek's %s is not the JSON's", name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t jerr;
	json_t *ev = json_loadb((const char *)data, size,
				JSON_REJECT_DUPLICATES, &jerr);
	if (!ev)
		return 0;
	char msg[512] = "";
	wb_buf out;
	wb_buf_init(&out);
	if (wb_event_encode_json(ev, &out, msg, sizeof(msg)) != WB_OK) {
		FUZZ_CHECK(out.len == 0, "a rejected event left %zu bytes",
			   out.len);
		goto done;
	}

	struct wb_event_view v;
	wb_err rc = wb_event_peek(out.data, out.len, &v, msg, sizeof(msg));
	FUZZ_CHECK(rc == WB_OK, "peek rejects what encode produced: %s", msg);
	FUZZ_CHECK(v.canonical, "encoder output is not canonical");
	check_field(ev, "event_id", v.event_id);
	check_field(ev, "order_id", v.order_id);
	check_field(ev, "type", v.type);

	json_t *dec = NULL;
	rc = wb_avro_decode(WB_SCHEMA_ORDER_EVENT, out.data, out.len, &dec,
			    msg, sizeof(msg));
	FUZZ_CHECK(rc == WB_OK, "encoder output does not decode: %s", msg);
	wb_buf again;
	wb_buf_init(&again);
	rc = wb_event_encode_json(dec, &again, msg, sizeof(msg));
	FUZZ_CHECK(rc == WB_OK, "decoded event does not encode: %s", msg);
	FUZZ_CHECK(again.len == out.len &&
			   memcmp(again.data, out.data, out.len) == 0,
		   "encode(decode(bytes)) is not bytes");
	wb_buf_finish(&again);
	json_decref(dec);
done:
	wb_buf_finish(&out);
	json_decref(ev);
	return 0;
}
