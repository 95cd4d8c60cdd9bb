/*
 * fuzz_ledger_entry.c — a stored LedgerEntry value (as read back from
 * RocksDB, or from the <prefix>ledger topic) through wb_entry_parse,
 * wb_entry_compute_hash and wb_entry_to_json.
 *
 * The ledger writes these bytes by hand; the generic codec decodes the
 * same layout from LedgerEntry.avsc. Invariants:
 *  - parse's pointers lie inside the input;
 *  - wb_entry_to_json succeeds exactly when the generic LedgerEntry decode
 *    does and the hashes are 32 bytes and the partition is not negative,
 *    and then both give the same fields.
 */
#include <string.h>

#include "fuzz.h"
#include "wb_ledger.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_init_json();
	return 0;
}

static bool inside(const uint8_t *p, size_t n, const uint8_t *data,
		   size_t size)
{
	return p >= data && n <= size && (size_t)(p - data) <= size - n;
}

static bool hex_field_ok(json_t *o, const char *name)
{
	json_t *f = json_object_get(o, name);
	return json_is_string(f) && json_string_length(f) == 2 * WB_HASH_LEN;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char msg[512] = "";
	json_t *generic = NULL;
	wb_err gen_rc = wb_avro_decode(WB_SCHEMA_LEDGER_ENTRY, data, size,
				       &generic, msg, sizeof(msg));
	bool gen_ok = gen_rc == WB_OK && hex_field_ok(generic, "prev_hash") &&
		      hex_field_ok(generic, "hash") &&
		      json_integer_value(json_object_get(generic,
							 "partition")) >= 0;

	struct wb_entry e;
	json_t *j = NULL;
	wb_err rc = wb_entry_parse(data, size, &e, msg, sizeof(msg));
	if (rc == WB_OK) {
		FUZZ_CHECK(inside(e.prev_hash, WB_HASH_LEN, data, size) &&
				   inside(e.hash, WB_HASH_LEN, data, size) &&
				   inside(e.event, e.event_len, data, size),
			   "parse points outside the input");
		FUZZ_CHECK(e.partition >= 0, "negative partition");
		uint8_t h[WB_HASH_LEN];
		wb_entry_compute_hash(&e, h);
		rc = wb_entry_to_json(&e, &j, msg, sizeof(msg));
	}
	FUZZ_CHECK((rc == WB_OK) == gen_ok,
		   "entry parse+to_json says %d, the generic codec %s", rc,
		   gen_ok ? "accepts" : "rejects");
	if (rc == WB_OK) {
		/* to_json is the generic value with the event flattened */
		json_t *ev = json_object_get(generic, "event");
		json_t *flat = json_deep_copy(generic);
		json_object_del(flat, "event");
		json_object_update(flat, ev);
		FUZZ_CHECK(json_equal(flat, j),
			   "wb_entry_to_json differs from the generic decode");
		json_decref(flat);
	}
	json_decref(j);
	json_decref(generic);
	return 0;
}
