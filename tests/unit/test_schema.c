/*
 * test_schema.c — the Avro codec: round trip of every event type, agreement
 * with libavro-c on the same bytes, single-object framing, and each kind of
 * bad input (truncated, hostile lengths, wrong shape, unknown type).
 */
#include <avro.h>
#include <string.h>

#include "../tap.h"
#include "wb_schema.h"

static json_t *load_line(const char *path, int want, int *lines)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	int n = 0;
	json_t *found = NULL;
	while (getline(&line, &cap, f) > 0) {
		if (n == want)
			found = json_loads(line, 0, NULL);
		n++;
	}
	free(line);
	fclose(f);
	if (lines)
		*lines = n;
	return found;
}

/* decoded has every field; input may omit optional ones (== null) */
static int same_modulo_absent(json_t *in, json_t *out)
{
	if (json_is_object(out) && json_is_object(in)) {
		const char *k;
		json_t *v;
		json_object_foreach(out, k, v) {
			json_t *iv = json_object_get(in, k);
			if (!iv) {
				if (!json_is_null(v) &&
				    !(json_is_array(v) && !json_array_size(v)))
					return 0;
			} else if (!same_modulo_absent(iv, v)) {
				return 0;
			}
		}
		return json_object_size(in) <= json_object_size(out);
	}
	if (json_is_array(out) && json_is_array(in)) {
		if (json_array_size(in) != json_array_size(out))
			return 0;
		for (size_t i = 0; i < json_array_size(in); i++)
			if (!same_modulo_absent(json_array_get(in, i),
						json_array_get(out, i)))
				return 0;
		return 1;
	}
	return json_equal(in, out);
}

/* libavro-c reads our bytes and writes back the very same bytes. */
static int avro_c_agrees(wb_schema_id id, const uint8_t *body, size_t len)
{
	avro_schema_t schema = NULL;
	if (avro_schema_from_json_length(wb_schema_text(id),
					 strlen(wb_schema_text(id)), &schema))
		return 0;
	avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
	avro_value_t val;
	avro_generic_value_new(iface, &val);
	avro_reader_t rd = avro_reader_memory((const char *)body, (int64_t)len);
	/* avro_reader_is_eof() is only set after a failed read, so "consumed
	 * everything" is shown by writing back exactly len identical bytes. */
	int ok = avro_value_read(rd, &val) == 0;
	char *copy = malloc(len + 16);
	avro_writer_t wr = avro_writer_memory(copy, (int64_t)len + 16);
	if (ok)
		ok = avro_value_write(wr, &val) == 0 &&
		     (size_t)avro_writer_tell(wr) == len &&
		     memcmp(copy, body, len) == 0;
	avro_writer_free(wr);
	free(copy);
	avro_reader_free(rd);
	avro_value_decref(&val);
	avro_value_iface_decref(iface);
	avro_schema_decref(schema);
	return ok;
}

static void test_round_trip(const char *examples)
{
	int lines = 0;
	json_decref(load_line(examples, -1, &lines));
	const char *const *types = wb_event_types();
	int ntypes = 0;
	while (types[ntypes])
		ntypes++;
	ok(lines == ntypes, "examples cover %d lines for %d event types",
	   lines, ntypes);
	int seen[64] = {0};
	for (int i = 0; i < lines; i++) {
		json_t *ev = load_line(examples, i, NULL);
		const char *type = json_string_value(json_object_get(ev, "type"));
		wb_buf b;
		wb_buf_init(&b);
		char msg[512] = "";
		wb_err rc = wb_event_encode_json(ev, &b, msg, sizeof(msg));
		ok(rc == WB_OK, "%s encodes (%s)", type, msg);
		struct wb_event_view v;
		rc = wb_event_peek(b.data, b.len, &v, msg, sizeof(msg));
		ok(rc == WB_OK && v.canonical && strcmp(v.payload_name, type) == 0,
		   "%s peeks canonical (%s)", type, msg);
		for (int t = 0; t < ntypes; t++)
			if (strcmp(types[t], type) == 0)
				seen[t] = 1;
		json_t *back = NULL;
		rc = wb_avro_decode(WB_SCHEMA_ORDER_EVENT, b.data, b.len, &back,
				    msg, sizeof(msg));
		ok(rc == WB_OK && same_modulo_absent(ev, back),
		   "%s decodes to the same JSON", type);
		ok(avro_c_agrees(WB_SCHEMA_ORDER_EVENT, b.data, b.len),
		   "%s: libavro-c reads and rewrites the same bytes", type);
		/* re-encoding the decoded JSON gives the same bytes */
		wb_buf b2;
		wb_buf_init(&b2);
		rc = wb_avro_encode(WB_SCHEMA_ORDER_EVENT, back, &b2, msg,
				    sizeof(msg));
		ok(rc == WB_OK && b2.len == b.len &&
		   memcmp(b2.data, b.data, b.len) == 0,
		   "%s re-encodes byte for byte", type);
		wb_buf_finish(&b2);
		json_decref(back);
		wb_buf_finish(&b);
		json_decref(ev);
	}
	int all = 1;
	for (int t = 0; t < ntypes; t++)
		if (!seen[t]) {
			diag("no example of %s", types[t]);
			all = 0;
		}
	ok(all, "every event type has an example");
}

static json_t *base_event(void)
{
	return json_pack(
		"{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:s,s:{s:s,s:I,s:n}}", "event_id",
		"e1", "merchant", "m1", "order_id", "pos:store1-1", "channel",
		"pos", "type", "OrderCancelled", "source_time",
		(json_int_t)1000, "ingest_time", (json_int_t)2000, "source",
		"test", "payload", "reason", "customer", "cancelled_at",
		(json_int_t)1000, "note");
}

static wb_err encode_err(json_t *ev, char *msg, size_t len)
{
	wb_buf b;
	wb_buf_init(&b);
	wb_err rc = wb_event_encode_json(ev, &b, msg, len);
	wb_buf_finish(&b);
	json_decref(ev);
	return rc;
}

static void test_bad_json(void)
{
	char msg[512];
	json_t *ev;

	ev = base_event();
	ok(encode_err(ev, msg, sizeof(msg)) == WB_OK, "base event is valid");

	ev = base_event();
	json_object_del(ev, "event_id");
	ok(encode_err(ev, msg, sizeof(msg)) == WB_ESCHEMA &&
		   strstr(msg, "missing field 'event_id'"),
	   "missing field named: %s", msg);

	ev = base_event();
	json_object_set_new(ev, "colour", json_string("red"));
	ok(encode_err(ev, msg, sizeof(msg)) == WB_ESCHEMA &&
		   strstr(msg, "unknown field 'colour'"),
	   "unknown field named: %s", msg);

	ev = base_event();
	json_object_set_new(ev, "type", json_string("OrderTeleported"));
	ok(encode_err(ev, msg, sizeof(msg)) == WB_ESCHEMA &&
		   strstr(msg, "unknown type 'OrderTeleported'"),
	   "unknown type: %s", msg);

	ev = base_event();
	json_object_set_new(json_object_get(ev, "payload"), "reason",
			    json_string("bored"));
	ok(encode_err(ev, msg, sizeof(msg)) == WB_ESCHEMA &&
		   strstr(msg, "$.payload.reason"),
	   "bad enum symbol with path: %s", msg);

	ev = base_event();
	json_object_set_new(ev, "source_time", json_real(1.5));
	ok(encode_err(ev, msg, sizeof(msg)) == WB_ESCHEMA &&
		   strstr(msg, "$.source_time: expected an integer"),
	   "double where a long belongs: %s", msg);

	ev = base_event();
	json_object_set_new(ev, "order_id", json_string("amazon:1"));
	ok(encode_err(ev, msg, sizeof(msg)) == WB_ESCHEMA &&
		   strstr(msg, "order_id"),
	   "order_id of another channel: %s", msg);

	ev = base_event();
	json_object_set_new(ev, "event_id", json_string(""));
	ok(encode_err(ev, msg, sizeof(msg)) == WB_ESCHEMA,
	   "empty event_id: %s", msg);

	char big[400];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	ev = base_event();
	json_object_set_new(ev, "event_id", json_string(big));
	ok(encode_err(ev, msg, sizeof(msg)) == WB_ETOOBIG,
	   "oversized event_id: %s", msg);

	/* an envelope time past 9999-12-31 is refused (microseconds?) */
	ev = base_event();
	json_object_set_new(ev, "source_time",
			    json_integer(1767225600000000LL));
	ok(encode_err(ev, msg, sizeof(msg)) == WB_ESCHEMA &&
		   strstr(msg, "after 9999-12-31"),
	   "source_time in microseconds: %s", msg);
	ev = base_event();
	json_object_set_new(ev, "ingest_time", json_integer(WB_TIME_MAX_MS));
	ok(encode_err(ev, msg, sizeof(msg)) == WB_OK, "9999-12-31 is the last");

	/* longs past 2^53 survive exactly */
	ev = base_event();
	json_object_set_new(json_object_get(ev, "payload"), "cancelled_at",
			    json_integer(9007199254740993LL));
	wb_buf b;
	wb_buf_init(&b);
	ok(wb_event_encode_json(ev, &b, msg, sizeof(msg)) == WB_OK, "2^53+1");
	json_t *back = NULL;
	wb_avro_decode(WB_SCHEMA_ORDER_EVENT, b.data, b.len, &back, msg,
		       sizeof(msg));
	ok(json_integer_value(json_object_get(
		   json_object_get(back, "payload"), "cancelled_at")) ==
		   9007199254740993LL,
	   "2^53+1 decodes exactly");
	json_decref(back);
	json_decref(ev);

	/* the payload must match the type */
	ev = base_event();
	json_object_set_new(ev, "type", json_string("PaymentStatusChanged"));
	ok(encode_err(ev, msg, sizeof(msg)) == WB_ESCHEMA,
	   "payload of another type: %s", msg);
	wb_buf_finish(&b);
}

static void test_bad_avro(void)
{
	char msg[512];
	json_t *ev = base_event();
	wb_buf b;
	wb_buf_init(&b);
	ok(wb_event_encode_json(ev, &b, msg, sizeof(msg)) == WB_OK, "encode");
	json_decref(ev);
	struct wb_event_view v;

	/* every truncation fails cleanly */
	int all = 1;
	for (size_t n = 0; n < b.len; n++)
		if (wb_event_peek(b.data, n, &v, msg, sizeof(msg)) == WB_OK)
			all = 0;
	ok(all, "every truncation of %zu bytes is rejected", b.len);

	/* trailing garbage */
	wb_buf t;
	wb_buf_init(&t);
	wb_buf_append(&t, b.data, b.len);
	wb_buf_putc(&t, 0);
	ok(wb_event_peek(t.data, t.len, &v, msg, sizeof(msg)) == WB_EPARSE &&
		   strstr(msg, "trailing"),
	   "trailing byte: %s", msg);

	/* a hostile string length: 2^40 bytes declared in 8 bytes of input */
	wb_buf_reset(&t);
	wb_avro_put_long(&t, (int64_t)1 << 40);
	wb_buf_append(&t, "abc", 3);
	ok(wb_event_peek(t.data, t.len, &v, msg, sizeof(msg)) == WB_EPARSE &&
		   strstr(msg, "$.event_id: truncated, or a bad length"),
	   "hostile length rejected without allocating: %s", msg);
	json_t *out = NULL;
	ok(wb_avro_decode(WB_SCHEMA_ORDER_EVENT, t.data, t.len, &out, msg,
			  sizeof(msg)) == WB_EPARSE && out == NULL,
	   "decode rejects hostile length: %s", msg);

	/* invalid UTF-8 in a string */
	wb_buf_reset(&t);
	wb_avro_put_bytes(&t, "\xff\xfe", 2);
	ok(wb_event_peek(t.data, t.len, &v, msg, sizeof(msg)) == WB_EPARSE &&
		   strstr(msg, "$.event_id: invalid UTF-8"),
	   "invalid UTF-8: %s", msg);

	/* the envelope error names the field: the body cut inside the
	 * merchant string */
	json_t *ev2 = base_event();
	wb_buf_reset(&t);
	ok(wb_avro_encode(WB_SCHEMA_ORDER_EVENT, ev2, &t, msg, sizeof(msg)) ==
		   WB_OK,
	   "encode for the cut tests");
	json_decref(ev2);
	size_t id_len = 1 + (size_t)(t.data[0] >> 1); /* varint + event_id */
	ok(wb_event_peek(t.data, id_len + 2, &v, msg, sizeof(msg)) ==
			   WB_EPARSE &&
		   strstr(msg, "$.merchant: truncated"),
	   "cut in the merchant: %s", msg);

	/* a NUL byte in a string: a JSON line could not carry it back */
	json_t *nul = base_event();
	json_object_set_new(json_object_get(nul, "payload"), "note",
			    json_stringn("a\0b", 3));
	wb_buf_reset(&t);
	ok(wb_avro_encode(WB_SCHEMA_ORDER_EVENT, nul, &t, msg, sizeof(msg)) ==
		   WB_OK,
	   "raw encode of a NUL in a payload string");
	ok(wb_event_peek(t.data, t.len, &v, msg, sizeof(msg)) == WB_EPARSE &&
		   strstr(msg, "$.payload.note: string holds a NUL byte"),
	   "peek rejects a NUL in a payload string: %s", msg);
	out = NULL;
	ok(wb_avro_decode(WB_SCHEMA_ORDER_EVENT, t.data, t.len, &out, msg,
			  sizeof(msg)) == WB_EPARSE &&
		   out == NULL && strstr(msg, "$.payload.note"),
	   "decode rejects it too: %s", msg);
	json_object_set_new(json_object_get(nul, "payload"), "note",
			    json_null());
	json_object_set_new(nul, "correlation_id", json_stringn("c\0", 2));
	wb_buf_reset(&t);
	ok(wb_event_encode_json(nul, &t, msg, sizeof(msg)) == WB_EPARSE &&
		   t.len == 0,
	   "a NUL in correlation_id is rejected: %s", msg);
	json_decref(nul);

	/* non-minimal varint is noticed */
	wb_buf_reset(&t);
	/* event_id length 2 written as 0x84 0x00 (two bytes) */
	wb_buf_putc(&t, 0x84);
	wb_buf_putc(&t, 0x00);
	wb_buf_append(&t, b.data + 1, b.len - 1);
	ok(wb_event_peek(t.data, t.len, &v, msg, sizeof(msg)) == WB_OK &&
		   !v.canonical,
	   "non-minimal varint decodes but is flagged non-canonical");

	/* payload branch out of range: patch the union index */
	wb_buf_reset(&t);
	wb_buf_append(&t, b.data, b.len);
	/* the payload of OrderCancelled is: enum(1) long(n) union-null(1) */
	size_t i = t.len - 1 - 1 - 2 - 1 - 1; /* see below */
	(void)i;
	json_t *bogus = json_pack("{s:s}", "x", "y");
	ok(wb_avro_encode(WB_SCHEMA_ORDER_STATUS, bogus, &t, msg,
			  sizeof(msg)) != WB_OK,
	   "OrderStatus from the wrong JSON: %s", msg);
	json_decref(bogus);

	/* an array count larger than the bytes left */
	wb_buf_reset(&t);
	json_t *st = json_pack("{s:s,s:s,s:s,s:I,s:i,s:I,s:s,s:s,s:s,s:[],s:I}",
			       "order_id", "pos:1", "merchant", "m", "channel",
			       "pos", "version", (json_int_t)1,
			       "ledger_partition", 0, "ledger_seq",
			       (json_int_t)1, "customer_status", "processing",
			       "order_status", "open", "fulfillment_status",
			       "unfulfilled", "tracking_numbers", "updated_at",
			       (json_int_t)5);
	ok(wb_avro_encode(WB_SCHEMA_ORDER_STATUS, st, &t, msg, sizeof(msg)) ==
		   WB_OK,
	   "OrderStatus encodes (%s)", msg);
	json_decref(st);
	/* tracking_numbers is followed by total(union null)=0 and updated_at
	 * (1 byte): replace the array's 0 count with a huge one */
	size_t at = t.len - 3;
	ok(t.data[at] == 0, "found the empty array");
	wb_buf h;
	wb_buf_init(&h);
	wb_buf_append(&h, t.data, at);
	wb_avro_put_long(&h, 1000000000);
	wb_buf_append(&h, t.data + at + 1, t.len - at - 1);
	ok(wb_avro_decode(WB_SCHEMA_ORDER_STATUS, h.data, h.len, &out, msg,
			  sizeof(msg)) == WB_EPARSE &&
		   strstr(msg, "cannot fit"),
	   "array count over the input size: %s", msg);
	wb_buf_finish(&h);
	wb_buf_finish(&t);
	wb_buf_finish(&b);
}

static void test_framing(void)
{
	char msg[256];
	wb_buf b;
	wb_buf_init(&b);
	wb_avro_frame(WB_SCHEMA_ORDER_EVENT, &b);
	ok(b.len == WB_AVRO_HEADER_LEN && b.data[0] == 0xC3 &&
		   b.data[1] == 0x01,
	   "header is C3 01 + 8 bytes");
	uint64_t fp = 0;
	for (int i = 0; i < 8; i++)
		fp |= (uint64_t)b.data[2 + i] << (8 * i);
	ok(fp == wb_schema_fingerprint(WB_SCHEMA_ORDER_EVENT),
	   "fingerprint little-endian");
	wb_buf_append(&b, "x", 1);
	const uint8_t *body;
	size_t len;
	ok(wb_avro_unframe(WB_SCHEMA_ORDER_EVENT, b.data, b.len, &body, &len,
			   msg, sizeof(msg)) == WB_OK &&
		   len == 1,
	   "unframe");
	ok(wb_avro_unframe(WB_SCHEMA_LEDGER_ENTRY, b.data, b.len, &body, &len,
			   msg, sizeof(msg)) == WB_ESCHEMA,
	   "other schema's fingerprint rejected: %s", msg);
	ok(wb_avro_unframe(WB_SCHEMA_ORDER_EVENT, (const uint8_t *)"{\"a\":1}",
			   7, &body, &len, msg, sizeof(msg)) == WB_EPARSE,
	   "JSON instead of Avro rejected: %s", msg);
	wb_buf_finish(&b);

	/* Known CRC-64-AVRO vectors from the Avro spec's test suite
	 * (share/test/data/schema-tests.txt): "null" and "int". */
	ok(wb_crc64_avro("\"null\"", 6) == 0x63dd24e7cc258f8aULL,
	   "CRC-64-AVRO of \"null\" = %016llx",
	   (unsigned long long)wb_crc64_avro("\"null\"", 6));
	ok(wb_crc64_avro("\"int\"", 5) == 0x7275d51a3f395c8fULL,
	   "CRC-64-AVRO of \"int\" = %016llx",
	   (unsigned long long)wb_crc64_avro("\"int\"", 5));
	char *pcf = wb_schema_pcf_of(
		"{\"type\":\"fixed\",\"name\":\"Foo\",\"namespace\":\"x.y\","
		"\"size\":\"16\",\"doc\":\"d\"}",
		msg, sizeof(msg));
	ok(pcf && strcmp(pcf, "{\"name\":\"x.y.Foo\",\"type\":\"fixed\","
			      "\"size\":16}") == 0,
	   "PCF strips doc, orders keys, unquotes size: %s", pcf ? pcf : "-");
	free(pcf);
	pcf = wb_schema_pcf_of("{\"type\":\"int\"}", msg, sizeof(msg));
	ok(pcf && strcmp(pcf, "\"int\"") == 0, "PCF of {type:int} is \"int\"");
	free(pcf);
}

static void test_ledger_entry_schema(const char *dir)
{
	char p1[512], p2[512];
	snprintf(p1, sizeof(p1), "%s/OrderEvent.avsc", dir);
	snprintf(p2, sizeof(p2), "%s/LedgerEntry.avsc", dir);
	json_t *ev = json_load_file(p1, 0, NULL);
	json_t *le = json_load_file(p2, 0, NULL);
	json_t *fields = json_object_get(le, "fields");
	json_t *last = json_array_get(fields, json_array_size(fields) - 1);
	ok(ev && le && json_equal(json_object_get(last, "type"), ev),
	   "LedgerEntry.avsc's event field is OrderEvent.avsc, inlined");
	json_decref(ev);
	json_decref(le);
	ok(strcmp(wb_schema_name(WB_SCHEMA_LEDGER_ENTRY), "LedgerEntry") == 0,
	   "schema names");
}

/* Rules past the schema, on the example OrderPlaced (the first line). */
static void test_payload_rules(const char *examples)
{
	FILE *f = fopen(examples, "r");
	char line[8192];
	ok(f && fgets(line, sizeof(line), f), "read the OrderPlaced example");
	if (f)
		fclose(f);
	char msg[512];
	json_t *ev = json_loads(line, 0, NULL);
	ok(ev && encode_err(json_deep_copy(ev), msg, sizeof(msg)) == WB_OK,
	   "the example passes");
	json_t *bad = json_deep_copy(ev);
	json_t *l0 = json_array_get(
		json_object_get(json_object_get(bad, "payload"), "lines"), 0);
	json_object_set_new(l0, "quantity", json_integer(-3));
	ok(encode_err(bad, msg, sizeof(msg)) == WB_ESCHEMA &&
		   strstr(msg, "$.payload.lines[0].quantity: negative"),
	   "negative quantity: %s", msg);
	bad = json_deep_copy(ev);
	l0 = json_array_get(
		json_object_get(json_object_get(bad, "payload"), "lines"), 0);
	json_object_set_new(json_object_get(l0, "unit_price"), "currency",
			    json_string("usd"));
	ok(encode_err(bad, msg, sizeof(msg)) == WB_ESCHEMA &&
		   strstr(msg, "$.payload.lines[0].unit_price.currency") &&
		   strstr(msg, "ISO-4217"),
	   "lower-case currency: %s", msg);
	json_decref(ev);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "schemas";
	char examples[512];
	snprintf(examples, sizeof(examples), "%s/examples/all-types.jsonl", dir);
	test_round_trip(examples);
	test_bad_json();
	test_payload_rules(examples);
	test_bad_avro();
	test_framing();
	test_ledger_entry_schema(dir);
	return tap_done();
}
