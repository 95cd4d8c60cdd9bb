/*
 * fuzz_pos_ndjson.c — `waybill-ingest pos` on arbitrary NDJSON exports:
 * see fuzz_pos.h for the driver and the invariants.
 */
#include "fuzz_pos.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_pos(WB_POS_NDJSON, data, size);
}
