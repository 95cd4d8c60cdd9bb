/*
 * ledger_entry.c — the byte layout of a LedgerEntry and its hash. The
 * ledger writes entries by hand (no JSON, no generic Avro values) because
 * this runs once per event on the hot path; the layout is the Avro binary
 * encoding of schemas/LedgerEntry.avsc, which the tests check by decoding
 * stored entries with the generic codec.
 */
#include "wb_ledger.h"

#include <assert.h>
#include <openssl/evp.h>

wb_err wb_entry_parse(const uint8_t *p, size_t n, struct wb_entry *e,
		      char *msg, size_t msglen)
{
	struct wb_avro_reader r = {p, p + n, true};
	int64_t part;
	const uint8_t *ph, *h;
	size_t phn, hn;
	if (!wb_avro_get_long(&r, &part) || !wb_avro_get_long(&r, &e->seq) ||
	    !wb_avro_get_long(&r, &e->version) ||
	    !wb_avro_get_long(&r, &e->recorded_at) ||
	    !wb_avro_get_bytes(&r, &ph, &phn) ||
	    !wb_avro_get_bytes(&r, &h, &hn))
		return wb_fail(msg, msglen, WB_ECORRUPT,
			       "entry truncated or malformed");
	if (phn != WB_HASH_LEN || hn != WB_HASH_LEN)
		return wb_fail(msg, msglen, WB_ECORRUPT,
			       "entry hash fields are %zu and %zu bytes, not "
			       "%d",
			       phn, hn, WB_HASH_LEN);
	if (part < 0 || part > INT32_MAX)
		return wb_fail(msg, msglen, WB_ECORRUPT,
			       "entry partition %lld out of range",
			       (long long)part);
	e->partition = (int32_t)part;
	e->prev_hash = ph;
	e->hash = h;
	e->event = r.p;
	e->event_len = (size_t)(r.end - r.p);
	return WB_OK;
}

void wb_entry_compute_hash(const struct wb_entry *e, uint8_t out[WB_HASH_LEN])
{
	uint8_t seq_be[8], varints[30];
	for (int i = 0; i < 8; i++)
		seq_be[i] = (uint8_t)((uint64_t)e->seq >> (56 - 8 * i));
	wb_buf vb = {varints, 0, sizeof(varints)};
	wb_avro_put_long(&vb, e->partition);
	wb_avro_put_long(&vb, e->version);
	wb_avro_put_long(&vb, e->recorded_at);
	assert(vb.data == varints); /* 30 bytes always suffice */

	static __thread EVP_MD_CTX *ctx;
	if (!ctx)
		ctx = EVP_MD_CTX_new();
	unsigned int len = 0;
	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(ctx, e->prev_hash, WB_HASH_LEN) ||
	    !EVP_DigestUpdate(ctx, seq_be, 8) ||
	    !EVP_DigestUpdate(ctx, varints, vb.len) ||
	    !EVP_DigestUpdate(ctx, e->event, e->event_len) ||
	    !EVP_DigestFinal_ex(ctx, out, &len) || len != WB_HASH_LEN) {
		/* libcrypto cannot fail here short of memory exhaustion */
		abort();
	}
}

wb_err wb_entry_to_json(const struct wb_entry *e, json_t **out, char *msg,
			size_t msglen)
{
	json_t *ev = NULL;
	wb_err rc = wb_avro_decode(WB_SCHEMA_ORDER_EVENT, e->event,
				   e->event_len, &ev, msg, msglen);
	if (rc)
		return rc;
	char hash[2 * WB_HASH_LEN + 1], prev[2 * WB_HASH_LEN + 1];
	wb_hex(e->hash, WB_HASH_LEN, hash);
	wb_hex(e->prev_hash, WB_HASH_LEN, prev);
	json_t *o = json_object();
	json_object_set_new(o, "partition", json_integer(e->partition));
	json_object_set_new(o, "seq", json_integer(e->seq));
	json_object_set_new(o, "version", json_integer(e->version));
	json_object_set_new(o, "recorded_at", json_integer(e->recorded_at));
	json_object_set_new(o, "hash", json_string(hash));
	json_object_set_new(o, "prev_hash", json_string(prev));
	json_object_update(o, ev);
	json_decref(ev);
	*out = o;
	return WB_OK;
}
