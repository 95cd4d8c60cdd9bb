/*
 * test_ingest.c — waybill-ingest without a broker: the pure line -> record
 * step (key, single-object framed Avro value, defaults filled in, every kind
 * of rejected line with a useful reason) and the bounded line reader
 * (over-long lines, CRLF, last line without newline), and the size check
 * against ledger.record.max.bytes at its edge. argv[1] is the
 * schemas/ directory, whose examples must all be accepted.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tap.h"
#include "wb_ingest.h"

#define NOW 1767225999123LL

static const char *VALID =
	"{\"event_id\":\"shopify:orders/create:820982911946154508\","
	"\"merchant\":\"acme.myshopify.com\","
	"\"order_id\":\"shopify:820982911946154508\",\"channel\":\"shopify\","
	"\"type\":\"PaymentStatusChanged\",\"source_time\":1767225960000,"
	"\"payload\":{\"status\":\"paid\",\"amount_paid\":{\"amount\":21988,"
	"\"currency\":\"USD\"}}}";

/* Runs one line; on success decodes the value back into *out. */
static wb_err run(const char *line, wb_buf *buf, struct wb_ingest_record *rec,
		  json_t **out, char *msg, size_t msglen)
{
	wb_err rc = wb_ingest_event_line(line, strlen(line), "events", NOW,
					 buf, rec, msg, msglen);
	if (rc || !out)
		return rc;
	const uint8_t *body;
	size_t n;
	char sub[256];
	*out = NULL;
	if (wb_avro_unframe(WB_SCHEMA_ORDER_EVENT, rec->value, rec->value_len,
			    &body, &n, sub, sizeof(sub)) ||
	    wb_avro_decode(WB_SCHEMA_ORDER_EVENT, body, n, out, sub,
			   sizeof(sub)))
		diag("decode: %s", sub);
	return rc;
}

static const char *str(json_t *o, const char *path)
{
	return json_string_value(json_object_get(o, path));
}

static void test_valid(void)
{
	char msg[512] = "";
	wb_buf buf;
	wb_buf_init(&buf);
	struct wb_ingest_record rec;
	json_t *ev = NULL;
	wb_err rc = run(VALID, &buf, &rec, &ev, msg, sizeof(msg));
	ok(rc == WB_OK, "valid line accepted (%s)", msg);
	ok(rec.key_len == strlen("shopify:820982911946154508") &&
		   memcmp(rec.key, "shopify:820982911946154508",
			  rec.key_len) == 0,
	   "key is the order id, digits past 2^53 unchanged");
	ok(strcmp(rec.event_id, "shopify:orders/create:820982911946154508") ==
		   0,
	   "event_id exposed for logs");
	ok(rec.value_len > WB_AVRO_HEADER_LEN && rec.value[0] == 0xC3 &&
		   rec.value[1] == 0x01,
	   "value starts with the single-object marker C3 01");
	ok(ev && json_integer_value(json_object_get(ev, "ingest_time")) == NOW,
	   "absent ingest_time filled with now");
	ok(ev && str(ev, "source") && strcmp(str(ev, "source"), "events") == 0,
	   "absent source filled with the default");
	ok(ev && strcmp(str(ev, "order_id"), "shopify:820982911946154508") ==
			 0,
	   "order id round-trips through Avro unchanged");
	json_decref(ev);

	/* Same input, same bytes: nothing but now_ms varies the output. */
	uint8_t *first = wb_xmalloc(rec.value_len);
	size_t first_len = rec.value_len;
	memcpy(first, rec.value, first_len);
	rc = run(VALID, &buf, &rec, NULL, msg, sizeof(msg));
	ok(rc == WB_OK && rec.value_len == first_len &&
		   memcmp(first, rec.value, first_len) == 0,
	   "deterministic, and the buffer is reused (reset) per line");
	free(first);

	/* Given values are kept. */
	char line[1024];
	snprintf(line, sizeof(line),
		 "{\"ingest_time\":5,\"source\":\"pos\",%s", VALID + 1);
	rc = run(line, &buf, &rec, &ev, msg, sizeof(msg));
	ok(rc == WB_OK && ev &&
		   json_integer_value(json_object_get(ev, "ingest_time")) ==
			   5 &&
		   strcmp(str(ev, "source"), "pos") == 0,
	   "given ingest_time and source kept (%s)", msg);
	json_decref(ev);
	snprintf(line, sizeof(line),
		 "{\"ingest_time\":null,\"source\":null,%s", VALID + 1);
	rc = run(line, &buf, &rec, &ev, msg, sizeof(msg));
	ok(rc == WB_OK && ev &&
		   json_integer_value(json_object_get(ev, "ingest_time")) ==
			   NOW &&
		   strcmp(str(ev, "source"), "events") == 0,
	   "null ingest_time and source treated as absent (%s)", msg);
	json_decref(ev);
	wb_buf_finish(&buf);
}

/* Replaces the first occurrence of from in VALID with to. */
static void edit(char *out, size_t outlen, const char *from, const char *to)
{
	const char *at = strstr(VALID, from);
	if (!at) {
		snprintf(out, outlen, "edit target not found: %s", from);
		return;
	}
	snprintf(out, outlen, "%.*s%s%s", (int)(at - VALID), VALID, to,
		 at + strlen(from));
}

static void test_rejects(void)
{
	char msg[512], line[1024];
	wb_buf buf;
	wb_buf_init(&buf);
	struct wb_ingest_record rec;
	wb_err rc;

	rc = run("{\"event_id\": \"x\", ", &buf, &rec, NULL, msg, sizeof(msg));
	ok(rc == WB_EPARSE && strstr(msg, "invalid JSON at column"),
	   "bad JSON: %s", msg);
	rc = run("{\"a\":1} trailing", &buf, &rec, NULL, msg, sizeof(msg));
	ok(rc == WB_EPARSE, "trailing garbage: %s", msg);
	rc = run("[1,2]", &buf, &rec, NULL, msg, sizeof(msg));
	ok(rc == WB_ESCHEMA && strstr(msg, "object"), "not an object: %s",
	   msg);

	snprintf(line, sizeof(line), "{\"merchant\":\"evil\",%s", VALID + 1);
	rc = run(line, &buf, &rec, NULL, msg, sizeof(msg));
	ok(rc == WB_EPARSE && strstr(msg, "duplicate"),
	   "duplicate key rejected: %s", msg);

	/* Edits of VALID, each of which must be rejected with a reason that
	 * names what is wrong. */
	static const struct {
		const char *from, *to;
		wb_err rc;
		const char *says, *what;
	} bad[] = {
		{"\"merchant\":\"acme.myshopify.com\",", "", WB_ESCHEMA,
		 "merchant", "missing field named"},
		{"PaymentStatusChanged", "OrderTeleported", WB_ESCHEMA,
		 "OrderTeleported", "unknown type"},
		{"\"status\":\"paid\"", "\"status\":\"maybe\"", WB_ESCHEMA,
		 "$.payload", "bad enum symbol, with JSON path"},
		{"\"order_id\":\"shopify:", "\"order_id\":\"amazon:", WB_ESCHEMA,
		 "order_id", "order id of another channel"},
		/* An id given as a JSON number is refused, never rounded. */
		{"\"order_id\":\"shopify:820982911946154508\"",
		 "\"order_id\":820982911946154508", WB_ESCHEMA, "$.order_id",
		 "numeric id refused"},
		{"\"source_time\":1767225960000", "\"source_time\":\"yesterday\"",
		 WB_ESCHEMA, "source_time", "time of the wrong type"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		edit(line, sizeof(line), bad[i].from, bad[i].to);
		rc = run(line, &buf, &rec, NULL, msg, sizeof(msg));
		ok(rc == bad[i].rc && strstr(msg, bad[i].says), "%s: %s",
		   bad[i].what, msg);
	}
	wb_buf_finish(&buf);
}

/* An OrderUpdated whose note is pad bytes long, encoded. */
static wb_err padded(size_t pad, wb_buf *buf, struct wb_ingest_record *rec,
		     char *msg, size_t msglen)
{
	static const char head[] =
		"{\"event_id\":\"shopify:820982911946154508:updated:1\","
		"\"merchant\":\"acme.myshopify.com\","
		"\"order_id\":\"shopify:820982911946154508\","
		"\"channel\":\"shopify\",\"type\":\"OrderUpdated\","
		"\"source_time\":1767225960000,\"payload\":{\"note\":\"";
	size_t n = strlen(head);
	char *line = wb_xmalloc(n + pad + 8);
	memcpy(line, head, n);
	memset(line + n, 'x', pad);
	memcpy(line + n + pad, "\"}}", 4);
	wb_err rc = wb_ingest_event_line(line, strlen(line), "events", NOW,
					 buf, rec, msg, msglen);
	free(line);
	return rc;
}

/* The ledger refuses a value over ledger.record.max.bytes; waybill-ingest
 * sees the same key and the same bytes: exactly at it passes, one byte
 * over is refused with the event named. */
static void test_record_max(void)
{
	char msg[512] = "";
	wb_config *cfg = wb_config_create(WB_CMD_INGEST);
	int64_t max = wb_config_get_int(cfg, "ledger.record.max.bytes");
	ok(max == 262144, "ledger.record.max.bytes is an ingest key (%lld)",
	   (long long)max);
	wb_config_destroy(cfg);
	if (max <= 0)
		max = 262144;
	wb_buf buf;
	wb_buf_init(&buf);
	struct wb_ingest_record rec;
	/* the note's length prefix is 3 bytes from 8 KiB to 1 MiB, so the
	 * value grows byte for byte with the pad */
	wb_err rc = padded(100000, &buf, &rec, msg, sizeof(msg));
	size_t pad = 100000 + (size_t)max - rec.value_len;
	rc = padded(pad, &buf, &rec, msg, sizeof(msg));
	ok(rc == WB_OK && rec.value_len == (size_t)max,
	   "value of exactly %lld bytes encoded (%zu; %s)", (long long)max,
	   rec.value_len, msg);
	rc = wb_ingest_record_check(&rec, (size_t)max, msg, sizeof(msg));
	ok(rc == WB_OK, "at ledger.record.max.bytes: accepted");
	rc = padded(pad + 1, &buf, &rec, msg, sizeof(msg));
	rc = wb_ingest_record_check(&rec, (size_t)max, msg, sizeof(msg));
	ok(rc == WB_ETOOBIG && strstr(msg, "ledger.record.max.bytes") &&
		   strstr(msg, "shopify:820982911946154508:updated:1") &&
		   strstr(msg, "262145 bytes"),
	   "one byte over: refused, named, sized: %s", msg);
	wb_buf_finish(&buf);
}

/* Every example in schemas/examples is accepted; a line id past 2^53
 * survives the trip through JSON and Avro. */
static void test_examples(const char *schemas)
{
	char path[1024], msg[512] = "";
	snprintf(path, sizeof(path), "%s/examples/all-types.jsonl", schemas);
	int fd = open(path, O_RDONLY);
	ok(fd >= 0, "open %s", path);
	if (fd < 0)
		return;
	wb_line_reader *lr = wb_line_reader_create(fd, 1 << 20);
	wb_buf buf;
	wb_buf_init(&buf);
	char *line;
	size_t len;
	long lineno, n = 0, good = 0;
	bool big_id = false;
	while (wb_line_reader_next(lr, &line, &len, &lineno, msg,
				   sizeof(msg)) == WB_OK) {
		struct wb_ingest_record rec;
		json_t *ev = NULL;
		n++;
		if (run(line, &buf, &rec, &ev, msg, sizeof(msg)) == WB_OK)
			good++;
		else
			diag("%s:%ld: %s", path, lineno, msg);
		json_t *lines = ev ? json_object_get(
					     json_object_get(ev, "payload"),
					     "lines")
				   : NULL;
		json_t *l0 = json_array_get(lines, 0);
		const char *lid = str(l0, "line_id");
		if (lid && strcmp(lid, "866550311766439020") == 0)
			big_id = true;
		json_decref(ev);
	}
	ok(n >= 18 && good == n, "all %ld examples accepted", n);
	ok(big_id, "line id 866550311766439020 (> 2^53) unchanged");
	wb_buf_finish(&buf);
	wb_line_reader_destroy(lr);
	close(fd);
}

static int tmp_with(const char *data, size_t n)
{
	char path[] = "/tmp/wbingestXXXXXX";
	int fd = mkstemp(path);
	unlink(path);
	ssize_t w = write(fd, data, n);
	(void)w;
	lseek(fd, 0, SEEK_SET);
	return fd;
}

static void test_reader(void)
{
	char msg[256];
	char *line;
	size_t len;
	long lineno;
	wb_err rc;

	/* max 10: "0123456789" fits, 11 bytes do not; a 3 MB line must be
	 * skipped in bounded memory and the reader must resynchronise. */
	size_t huge = 3u << 20;
	char *data = wb_xmalloc(huge + 100);
	size_t o = 0;
	o += (size_t)sprintf(data + o, "0123456789\n01234567890\n");
	memset(data + o, 'x', huge);
	o += huge;
	o += (size_t)sprintf(data + o, "\nab\r\n\n  \nlast");
	int fd = tmp_with(data, o);
	free(data);
	wb_line_reader *lr = wb_line_reader_create(fd, 10);
	rc = wb_line_reader_next(lr, &line, &len, &lineno, msg, sizeof(msg));
	ok(rc == WB_OK && len == 10 && lineno == 1 &&
		   strcmp(line, "0123456789") == 0,
	   "line of exactly max bytes accepted");
	rc = wb_line_reader_next(lr, &line, &len, &lineno, msg, sizeof(msg));
	ok(rc == WB_ETOOBIG && lineno == 2 && strstr(msg, "10 bytes"),
	   "max+1 rejected at line 2: %s", msg);
	rc = wb_line_reader_next(lr, &line, &len, &lineno, msg, sizeof(msg));
	ok(rc == WB_ETOOBIG && lineno == 3, "3 MB line rejected at line 3");
	rc = wb_line_reader_next(lr, &line, &len, &lineno, msg, sizeof(msg));
	ok(rc == WB_OK && lineno == 4 && len == 2 && strcmp(line, "ab") == 0,
	   "resynchronised after it; CR stripped");
	rc = wb_line_reader_next(lr, &line, &len, &lineno, msg, sizeof(msg));
	ok(rc == WB_OK && lineno == 5 && len == 0, "empty line returned");
	rc = wb_line_reader_next(lr, &line, &len, &lineno, msg, sizeof(msg));
	ok(rc == WB_OK && lineno == 6 && len == 2, "blank line returned");
	rc = wb_line_reader_next(lr, &line, &len, &lineno, msg, sizeof(msg));
	ok(rc == WB_OK && lineno == 7 && strcmp(line, "last") == 0,
	   "last line without newline");
	rc = wb_line_reader_next(lr, &line, &len, &lineno, msg, sizeof(msg));
	ok(rc == WB_ENOTFOUND, "end of input");
	rc = wb_line_reader_next(lr, &line, &len, &lineno, msg, sizeof(msg));
	ok(rc == WB_ENOTFOUND, "end of input is sticky");
	wb_line_reader_destroy(lr);
	close(fd);

	/* An over-long last line without newline; then nothing. */
	fd = tmp_with("abc\n0123456789abcdef", 20);
	lr = wb_line_reader_create(fd, 10);
	rc = wb_line_reader_next(lr, &line, &len, &lineno, msg, sizeof(msg));
	ok(rc == WB_OK && strcmp(line, "abc") == 0, "short line");
	rc = wb_line_reader_next(lr, &line, &len, &lineno, msg, sizeof(msg));
	ok(rc == WB_ETOOBIG && lineno == 2, "over-long unterminated last line");
	rc = wb_line_reader_next(lr, &line, &len, &lineno, msg, sizeof(msg));
	ok(rc == WB_ENOTFOUND, "then end of input");
	wb_line_reader_destroy(lr);
	close(fd);

	/* Many lines across read(2) boundaries (buffer 256 KiB). */
	size_t nlines = 100000;
	data = wb_xmalloc(nlines * 8);
	o = 0;
	for (size_t i = 0; i < nlines; i++)
		o += (size_t)sprintf(data + o, "%06zu\n", i);
	fd = tmp_with(data, o);
	free(data);
	lr = wb_line_reader_create(fd, 1 << 20);
	size_t seen = 0;
	bool in_order = true;
	while (wb_line_reader_next(lr, &line, &len, &lineno, msg,
				   sizeof(msg)) == WB_OK) {
		char want[16];
		snprintf(want, sizeof(want), "%06zu", seen);
		if (strcmp(line, want) != 0 || lineno != (long)seen + 1)
			in_order = false;
		seen++;
	}
	ok(seen == nlines && in_order, "%zu lines across buffer refills",
	   seen);
	wb_line_reader_destroy(lr);
	close(fd);
	wb_line_reader_destroy(NULL);
}

int main(int argc, char **argv)
{
	test_valid();
	test_rejects();
	test_examples(argc > 1 ? argv[1] : "schemas");
	test_reader();
	test_record_max();
	wb_ingest_producer_destroy(NULL);
	return tap_done();
}
