/*
 * wb_schema.h — Waybill's Avro schemas (schemas/ *.avsc, compiled in) and
 * their codec: canonical JSON <-> Avro binary, the Avro single-object
 * encoding (C3 01 + CRC-64-AVRO fingerprint of the Parsing Canonical Form),
 * and a zero-copy view of an OrderEvent's envelope for the ledger's hot path.
 *
 * Canonical JSON is plain JSON of the record (not Avro's JSON encoding):
 * unions are the bare value or null, enums their symbol, bytes/fixed lower
 * case hex, long/int JSON integers (so 64-bit ids stay exact). An
 * OrderEvent's payload union is chosen by its envelope field "type".
 *
 * Decoding never trusts a declared length: every string, bytes, array and
 * map size is checked against what is left of the input before anything is
 * allocated, and the whole input must be consumed. Strings must be valid
 * UTF-8 without NUL bytes: canonical JSON cannot carry U+0000 (jansson
 * rejects "\u0000" unless asked not to), so a value holding one could be
 * stored but never replayed as JSON and read back.
 */
#ifndef WB_SCHEMA_H
#define WB_SCHEMA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "wb_common.h"

typedef enum wb_schema_id {
	WB_SCHEMA_ORDER_EVENT = 0,
	WB_SCHEMA_ORDER_COMMAND,
	WB_SCHEMA_LEDGER_ENTRY,
	WB_SCHEMA_ORDER_STATUS,
	WB_SCHEMA_COUNT
} wb_schema_id;

/* Size of the single-object header: C3 01 + 8-byte fingerprint. */
#define WB_AVRO_HEADER_LEN 10
/* Hard cap on any Avro body this codec decodes. */
#define WB_AVRO_MAX_BODY (16u << 20)

/* Record name ("OrderEvent"), or NULL for an unknown id. */
const char *wb_schema_name(wb_schema_id id);
/* The .avsc text as shipped. */
const char *wb_schema_text(wb_schema_id id);
/* Parsing Canonical Form (static storage). */
const char *wb_schema_canonical(wb_schema_id id);
/* CRC-64-AVRO of the Parsing Canonical Form. */
uint64_t wb_schema_fingerprint(wb_schema_id id);
/* CRC-64-AVRO of arbitrary bytes (exposed for tests). */
uint64_t wb_crc64_avro(const void *data, size_t len);
/* PCF of any schema text; caller frees. NULL with msg if invalid. */
char *wb_schema_pcf_of(const char *schema_json, char *msg, size_t msglen);

/* JSON -> Avro binary body (no header), appended to out. Errors name the
 * JSON path, e.g. "$.payload.lines[2].quantity: expected an integer". */
wb_err wb_avro_encode(wb_schema_id id, json_t *value, wb_buf *out,
		      char *msg, size_t msglen);
/* Avro binary body -> JSON (new reference in *out). */
wb_err wb_avro_decode(wb_schema_id id, const uint8_t *body, size_t len,
		      json_t **out, char *msg, size_t msglen);
/* Checks the body decodes completely; *canonical tells whether it is in
 * the one encoding this codec writes (minimal varints, single blocks), so
 * that re-encoding would not change a byte. */
wb_err wb_avro_validate(wb_schema_id id, const uint8_t *body, size_t len,
			bool *canonical, char *msg, size_t msglen);

/* Appends the single-object header of id to out. */
void wb_avro_frame(wb_schema_id id, wb_buf *out);
/* Checks the header of a framed message is id's and returns the body. */
wb_err wb_avro_unframe(wb_schema_id id, const uint8_t *data, size_t len,
		       const uint8_t **body, size_t *bodylen, char *msg,
		       size_t msglen);

/* ---- OrderEvent ----------------------------------------------------- */

struct wb_slice {
	const char *p;
	size_t n;
};

/* Envelope of an OrderEvent, pointing into the body it was read from. */
struct wb_event_view {
	struct wb_slice event_id, merchant, order_id, channel, type, source;
	struct wb_slice correlation_id, causation_id; /* n=0,p=NULL if null */
	int64_t source_time, ingest_time;
	int payload_branch;        /* index into the payload union */
	const char *payload_name;  /* its record name */
	bool canonical;            /* see wb_avro_validate */
};

/* Validates a whole OrderEvent body (Avro decode plus the envelope rules
 * of wb_event_check) and fills *v. */
wb_err wb_event_peek(const uint8_t *body, size_t len, struct wb_event_view *v,
		     char *msg, size_t msglen);

/* Latest envelope time: 9999-12-31T23:59:59.999Z in epoch ms. */
#define WB_TIME_MAX_MS 253402300799999LL

/* Envelope rules: non-empty ids within size caps, order_id is
 * "<channel>:<id>", type names the payload's record, times within
 * 0..WB_TIME_MAX_MS. */
wb_err wb_event_check(const struct wb_event_view *v, char *msg,
		      size_t msglen);

/* Canonical JSON event line -> Avro body; also runs wb_event_check. */
wb_err wb_event_encode_json(json_t *event, wb_buf *out, char *msg,
			    size_t msglen);

/* Names of every OrderEvent payload type, NULL-terminated. */
const char *const *wb_event_types(void);

/* ---- Avro primitives (the ledger lays out LedgerEntry bytes itself) -- */

/* ---- writer ----------------------------------------------------------- */

static inline void wb_avro_put_long(wb_buf *b, int64_t v)
{
	uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
	wb_buf_reserve(b, 10);
	while (z >= 0x80) {
		b->data[b->len++] = (uint8_t)(z | 0x80);
		z >>= 7;
	}
	b->data[b->len++] = (uint8_t)z;
}

static inline void wb_avro_put_bytes(wb_buf *b, const void *p, size_t n)
{
	wb_avro_put_long(b, (int64_t)n);
	wb_buf_append(b, p, n);
}

/* ---- reader ----------------------------------------------------------- */

struct wb_avro_reader {
	const uint8_t *p, *end;
	bool canonical;
};

/* Zig-zag varint; false on truncation or more than 64 bits. Clears
 * canonical on a non-minimal encoding. */
static inline bool wb_avro_get_long(struct wb_avro_reader *r, int64_t *out)
{
	uint64_t v = 0;
	int shift = 0;
	for (;;) {
		if (r->p >= r->end || shift > 63)
			return false;
		uint8_t c = *r->p++;
		if (shift == 63 && (c & 0x7e))
			return false;
		v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			if (c == 0 && shift > 0)
				r->canonical = false;
			break;
		}
		shift += 7;
	}
	*out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
	return true;
}

/* A length-prefixed byte run; false if it does not fit in the input. */
static inline bool wb_avro_get_bytes(struct wb_avro_reader *r,
				     const uint8_t **p, size_t *n)
{
	int64_t len;
	if (!wb_avro_get_long(r, &len) || len < 0 ||
	    (uint64_t)len > (uint64_t)(r->end - r->p))
		return false;
	*p = r->p;
	*n = (size_t)len;
	r->p += len;
	return true;
}

#endif /* WB_SCHEMA_H */
