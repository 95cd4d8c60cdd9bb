/*
 * test_pos.c — POS exports without a broker: CSV (RFC 4180 quoting, quoted
 * newlines, header rules) and NDJSON rows into receipts and events; sales,
 * till returns and exchanges; every error with its line number and a
 * receipt with a bad row kept out whole. Every event the reader lays out
 * by hand is decoded and re-encoded with the JSON codec: the bytes must be
 * the same, so the fast path writes exactly what the ledger expects.
 */
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "wb_ingest.h"

#define NOW 1767225999123LL

struct run {
	json_t *events;   /* decoded events */
	char rejects[8192];
	int nrejects;
	bool bytes_match;
	struct wb_pos_counts counts;
};

static wb_err on_event(void *ud, const struct wb_ingest_record *rec,
		       long line)
{
	struct run *r = ud;
	(void)line;
	const uint8_t *body;
	size_t n;
	char msg[512];
	json_t *ev = NULL;
	if (wb_avro_unframe(WB_SCHEMA_ORDER_EVENT, rec->value, rec->value_len,
			    &body, &n, msg, sizeof(msg)) ||
	    wb_avro_decode(WB_SCHEMA_ORDER_EVENT, body, n, &ev, msg,
			   sizeof(msg))) {
		diag("undecodable event: %s", msg);
		r->bytes_match = false;
		return WB_OK;
	}
	/* the JSON codec must write the very same bytes */
	wb_buf buf;
	wb_buf_init(&buf);
	struct wb_ingest_record again;
	json_t *copy = json_deep_copy(ev);
	if (wb_ingest_event_json(copy, "x", 0, &buf, &again, msg,
				 sizeof(msg)) != WB_OK ||
	    again.value_len != rec->value_len ||
	    memcmp(again.value, rec->value, rec->value_len) != 0 ||
	    strcmp(again.key, rec->key) != 0 ||
	    strcmp(again.event_id, rec->event_id) != 0) {
		char *s = json_dumps(ev, JSON_COMPACT);
		diag("hand-laid bytes differ from the codec's: %s (%s)", s, msg);
		free(s);
		r->bytes_match = false;
	}
	json_decref(copy);
	wb_buf_finish(&buf);
	json_array_append_new(r->events, ev);
	return WB_OK;
}

static void on_reject(void *ud, long line, const char *why)
{
	struct run *r = ud;
	size_t n = strlen(r->rejects);
	snprintf(r->rejects + n, sizeof(r->rejects) - n, "%ld: %s\n", line,
		 why);
	r->nrejects++;
}

/* Feeds text line by line as the file reader would. */
static void run(struct run *r, enum wb_pos_format fmt, const char *text)
{
	memset(r, 0, sizeof(*r));
	r->events = json_array();
	r->bytes_match = true;
	struct wb_pos_sink sink = {on_event, on_reject, r};
	wb_pos *p = wb_pos_create(fmt, "acme", "pos", 1 << 16, &sink);
	long lineno = 0;
	const char *s = text;
	while (*s) {
		const char *nl = strchr(s, '\n');
		size_t n = nl ? (size_t)(nl - s) : strlen(s);
		size_t m = n && s[n - 1] == '\r' ? n - 1 : n; /* as the reader */
		wb_pos_feed(p, s, m, ++lineno, NOW);
		s += n + (nl ? 1 : 0);
	}
	wb_pos_finish(p, NOW);
	wb_pos_get_counts(p, &r->counts);
	wb_pos_destroy(p);
}

static void done(struct run *r)
{
	json_decref(r->events);
}

/* rejects on one line, for a TAP message */
static const char *flat(const char *s)
{
	static char out[8192];
	size_t i = 0;
	for (; s[i] && i < sizeof(out) - 1; i++)
		out[i] = s[i] == '\n' ? '|' : s[i];
	out[i] = '\0';
	return out;
}

static json_t *ev_at(struct run *r, size_t i)
{
	return json_array_get(r->events, i);
}

static const char *s_of(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

static int64_t i_of(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static int64_t amount(json_t *o, const char *k)
{
	return i_of(json_object_get(o, k), "amount");
}

/* "type@event_id" of every event, comma-separated */
static void ids(struct run *r, char *out, size_t outlen)
{
	out[0] = '\0';
	size_t i;
	json_t *e;
	json_array_foreach(r->events, i, e) {
		size_t n = strlen(out);
		snprintf(out + n, outlen - n, "%s%s", i ? "," : "",
			 s_of(e, "event_id"));
	}
}

#define HEADER                                                             \
	"store_id,receipt_no,line_no,kind,sku,title,qty,unit_price,currency," \
	"tax,total,payment_status,occurred_at,email,return_reason,"           \
	"original_receipt_no,original_line_no,restock\n"

static void test_sales(void)
{
	struct run r;
	char got[4096];
	run(&r, WB_POS_CSV,
	    HEADER
	    "store12,000123,1,sale,MUG-01,Mug,2,4.50,USD,0.72,9.72,paid,"
	    "2026-01-07T10:00:00Z,ann@example.com,,,,\n"
	    "store12,000123,2,sale,TEA-9,\"Tea, green \"\"sencha\"\"\",1,"
	    "12.00,USD,0.96,11.96,,2026-01-07T10:00:00Z,,,,,\n"
	    "\n"
	    "store12,000124,1,sale,BAG,Bag,1,3,USD,,,pending,"
	    "2026-01-07T10:05:00+01:00,,,,,\n");
	ids(&r, got, sizeof(got));
	ok(r.nrejects == 0 && r.bytes_match, "two receipts, no rejects (%s)",
	   flat(r.rejects));
	ok(strcmp(got, "pos:store12-000123:placed:ae7a36818e2bc433,"
		       "pos:store12-000123:payment:paid:ae7a36818e2bc433,"
		       "pos:store12-000124:placed:463e72b6e460b0cc,"
		       "pos:store12-000124:payment:pending:463e72b6e460b0cc") == 0,
	   "events per receipt: %s", got);
	json_t *e = ev_at(&r, 0), *pl = json_object_get(e, "payload");
	json_t *totals = json_object_get(pl, "totals");
	ok(strcmp(s_of(e, "order_id"), "pos:store12-000123") == 0 &&
		   strcmp(s_of(e, "merchant"), "acme") == 0 &&
		   strcmp(s_of(e, "channel"), "pos") == 0 &&
		   strcmp(s_of(e, "source"), "pos") == 0 &&
		   i_of(e, "source_time") == 1767780000000LL &&
		   i_of(e, "ingest_time") == NOW,
	   "envelope: order pos:<store>-<receipt>, times");
	ok(amount(totals, "subtotal") == 2100 && amount(totals, "tax") == 168 &&
		   amount(totals, "total") == 2168 &&
		   amount(totals, "discounts") == 100 &&
		   strcmp(s_of(pl, "email"), "ann@example.com") == 0 &&
		   strcmp(s_of(pl, "name"), "000123") == 0,
	   "totals: subtotal 21.00 tax 1.68 total 21.68 discount 1.00");
	json_t *l1 = json_array_get(json_object_get(pl, "lines"), 1);
	ok(strcmp(s_of(l1, "title"), "Tea, green \"sencha\"") == 0 &&
		   strcmp(s_of(l1, "line_id"), "2") == 0 &&
		   i_of(l1, "quantity") == 1 && amount(l1, "unit_price") == 1200,
	   "quoted title with a comma and doubled quotes: %s",
	   s_of(l1, "title"));
	json_t *pay = json_object_get(ev_at(&r, 1), "payload");
	ok(strcmp(s_of(pay, "status"), "paid") == 0 &&
		   amount(pay, "amount_paid") == 2168,
	   "paid receipt: amount_paid = total");
	json_t *b = json_object_get(ev_at(&r, 2), "payload");
	ok(i_of(ev_at(&r, 2), "source_time") == 1767776700000LL &&
		   json_is_null(json_object_get(json_object_get(b, "totals"),
						"tax")) &&
		   amount(json_object_get(b, "totals"), "total") == 300 &&
		   json_is_null(json_object_get(
			   json_object_get(ev_at(&r, 3), "payload"),
			   "amount_paid")),
	   "offset time, no tax column value, total = qty x price; pending "
	   "has no amount_paid");
	ok(r.counts.rows == 3 && r.counts.receipts == 2 && r.counts.events == 4,
	   "counts: 3 rows, 2 receipts, 4 events");
	done(&r);

	/* a quoted field spanning lines; a trailing comma is an empty last
	 * field (email) */
	run(&r, WB_POS_CSV,
	    "store_id,receipt_no,line_no,kind,title,qty,unit_price,currency,"
	    "occurred_at,email\r\n"
	    "s1,r1,1,sale,\"two\nline\ntitle\",1,1.00,EUR,"
	    "2026-01-07T10:00:00Z,\n"
	    "s1,r1,2,sale,\"\",1,2.00,EUR,2026-01-07T10:00:00Z,\"\"\n"
	    "s1,r2,1,sale,x,1,1.00,EUR,2026-01-07T10:00:00Z,\n");
	json_t *lines = json_object_get(json_object_get(ev_at(&r, 0), "payload"),
					"lines");
	ok(r.nrejects == 0 && json_array_size(r.events) == 4 &&
		   strcmp(s_of(json_array_get(lines, 0), "title"),
			  "two\nline\ntitle") == 0 &&
		   strcmp(s_of(json_array_get(lines, 1), "title"), "") == 0 &&
		   json_is_null(json_object_get(
			   json_object_get(ev_at(&r, 2), "payload"), "email")),
	   "quoted newlines kept; empty quoted and trailing fields empty (%s)",
	   flat(r.rejects));
	ok(strncmp(s_of(ev_at(&r, 2), "event_id"), "pos:s1-r2:placed:", 17) == 0,
	   "the record after a 3-line record is read");
	done(&r);
	run(&r, WB_POS_CSV,
	    "store_id,receipt_no,line_no,kind,title,qty,unit_price,currency,"
	    "occurred_at\n"
	    "s1,r2,1,sale,bad\"quote,1,1.00,EUR,2026-01-07T10:00:00Z\n");
	ok(strstr(r.rejects, "2: bad quoting: '\"' inside unquoted field 5") !=
		   NULL,
	   "quote in an unquoted field, on line 2: %s", flat(r.rejects));
	done(&r);
}

static void test_errors(void)
{
	struct run r;
	char got[4096];
	run(&r, WB_POS_CSV,
	    HEADER
	    /* 2: good receipt A */
	    "s1,A,1,sale,X,x,1,1.00,USD,,,,2026-01-07T10:00:00Z,,,,,\n"
	    /* 3-4: receipt B, line 4 has a bad number */
	    "s1,B,1,sale,X,x,1,1.00,USD,,,,2026-01-07T10:00:00Z,,,,,\n"
	    "s1,B,2,sale,X,x,1.5,1.00,USD,,,,2026-01-07T10:00:00Z,,,,,\n"
	    /* 5: receipt C, bad date */
	    "s1,C,1,sale,X,x,1,1.00,USD,,,,yesterday,,,,,\n"
	    /* 6: D unknown kind */
	    "s1,D,1,swap,X,x,1,1.00,USD,,,,2026-01-07T10:00:00Z,,,,,\n"
	    /* 7: E bad price */
	    "s1,E,1,sale,X,x,1,1.999,USD,,,,2026-01-07T10:00:00Z,,,,,\n"
	    /* 8: F good */
	    "s1,F,1,sale,X,x,1,1.00,USD,,,,2026-01-07T10:00:00Z,,,,,\n"
	    /* 9: wrong column count (receipt unknown: F and G kept out) */
	    "s1,G,1,sale\n"
	    /* 10: G */
	    "s1,G,2,sale,X,x,1,1.00,USD,,,,2026-01-07T10:00:00Z,,,,,\n"
	    /* 11: H good; 12: text after a closing quote */
	    "s1,H,1,sale,X,x,1,1.00,USD,,,,2026-01-07T10:00:00Z,,,,,\n"
	    "s1,H,2,sale,X,\"x\"y,1,1.00,USD,,,,2026-01-07T10:00:00Z,,,,,\n"
	    /* 13: A again, not consecutive */
	    "s1,A,2,sale,X,x,1,1.00,USD,,,,2026-01-07T10:00:00Z,,,,,\n"
	    /* 14-15: I currency mix; 16-17: J duplicate line_no */
	    "s1,I,1,sale,X,x,1,1.00,USD,,,,2026-01-07T10:00:00Z,,,,,\n"
	    "s1,I,2,sale,X,x,1,1.00,EUR,,,,2026-01-07T10:00:00Z,,,,,\n"
	    "s1,J,1,sale,X,x,1,1.00,USD,,,,2026-01-07T10:00:00Z,,,,,\n"
	    "s1,J,1,sale,X,x,1,1.00,USD,,,,2026-01-07T10:00:00Z,,,,,\n"
	    /* 18: K total above qty x price + tax; 19: bad store id */
	    "s1,K,1,sale,X,x,1,1.00,USD,0.10,1.20,,2026-01-07T10:00:00Z,,,,,\n"
	    "s-1,L,1,sale,X,x,1,1.00,USD,,,,2026-01-07T10:00:00Z,,,,,\n"
	    /* 20: M good after an unplaceable row: kept out too */
	    "s1,M,1,sale,X,x,1,1.00,USD,,,,2026-01-07T10:00:00Z,,,,,\n"
	    /* 21: N good but next to 22, an unterminated quote */
	    "s1,N,1,sale,X,x,1,1.00,USD,,,,2026-01-07T10:00:00Z,,,,,\n"
	    "s1,O,1,sale,X,\"never closed,1,1.00,USD,,,,2026-01-07,,,,,\n");
	ids(&r, got, sizeof(got));
	ok(strcmp(got, "pos:s1-A:placed:2e6350fa63027576,"
		       "pos:s1-A:payment:paid:2e6350fa63027576") == 0,
	   "only the clean receipt A: %s", got);
	ok(r.bytes_match, "events identical to the codec's");
	static const char *const want[] = {
		"4: qty: '1.5' is not a whole number",
		"3: receipt s1/B (lines 3-4) not ingested: line 4",
		"5: occurred_at: 'yesterday' is not an RFC 3339 time",
		"6: unknown kind 'swap' (sale or return)",
		"7: unit_price: '1.999' has more decimals than USD's 2",
		"9: wrong column count: 4 fields, the header has 18",
		"8: receipt s1/F (lines 8-8) not ingested: line 9",
		"10: receipt s1/G (lines 10-10) not ingested: line 9",
		"12: bad quoting: text after the closing quote of field 6",
		"13: receipt s1/A appeared earlier in this input",
		"15: currency EUR differs from USD on line 14",
		"17: line_no 1 repeats line 16 of this receipt",
		"18: total is more than qty x unit_price + tax",
		"19: store_id and receipt_no must be",
		"20: receipt s1/M (lines 20-20) not ingested: line 19",
		("22: bad quoting: quoted field not closed before the end of "
		 "input"),
		"21: receipt s1/N (lines 21-21) not ingested: line 22",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		ok(strstr(r.rejects, want[i]) != NULL, "reject \"%s\"", want[i]);
	ok(r.counts.receipts == 1 && r.counts.rows == 21,
	   "1 receipt ingested of 21 rows (%llu, %llu)",
	   (unsigned long long)r.counts.receipts,
	   (unsigned long long)r.counts.rows);
	if (r.counts.receipts != 1 || strstr(r.rejects, "(null)"))
		diag("%s", flat(r.rejects));
	done(&r);

	/* header problems */
	run(&r, WB_POS_CSV, "store_id,receipt_no,kind\ns1,A,sale\n");
	ok(r.counts.header_error && strstr(r.rejects, "1: header: required "
						     "column line_no missing"),
	   "missing required column: %s", flat(r.rejects));
	done(&r);
	run(&r, WB_POS_CSV, "");
	ok(r.counts.header_error && strstr(r.rejects, "empty input"),
	   "empty input: %s", flat(r.rejects));
	done(&r);
	run(&r, WB_POS_CSV,
	    "\xef\xbb\xbfstore_id,receipt_no,line_no,kind,qty,unit_price,"
	    "currency,occurred_at,till_operator\n"
	    "s1,A,1,sale,1,5,JPY,2026-01-07T10:00:00Z,bob\n");
	ok(r.nrejects == 0 && json_array_size(r.events) == 2 &&
		   amount(json_object_get(json_object_get(ev_at(&r, 0),
							  "payload"),
					  "totals"),
			  "total") == 5,
	   "BOM and unknown columns tolerated; 5 JPY is 5 (%s)", flat(r.rejects));
	done(&r);
	run(&r, WB_POS_CSV, "store_id,store_id\n");
	ok(r.counts.header_error && strstr(r.rejects, "appears twice"),
	   "duplicate column");
	done(&r);
}

static void test_returns(void)
{
	struct run r;
	char got[4096];
	run(&r, WB_POS_CSV,
	    HEADER
	    "store12,000200,1,return,MUG-01,Mug,1,4.50,USD,0.36,4.86,,"
	    "2026-01-08T09:00:00Z,,damaged,000123,1,false\n"
	    "store12,000200,2,return,TEA-9,Tea,1,12.00,USD,0.96,12.96,,"
	    "2026-01-08T09:00:00Z,,,000123,2,\n"
	    /* an exchange: a sale and an unlinked return on one receipt */
	    "store12,000201,1,sale,BAG,Bag,1,3.00,USD,,,,"
	    "2026-01-08T09:10:00Z,,,,,\n"
	    "store12,000201,2,return,HAT,Hat,1,3.00,USD,,,,"
	    "2026-01-08T09:10:00Z,,wrong size,,,\n"
	    /* a sale row naming an original receipt is wrong */
	    "store12,000202,1,sale,BAG,Bag,1,3.00,USD,,,,"
	    "2026-01-08T09:10:00Z,,,000001,,\n");
	ids(&r, got, sizeof(got));
	ok(strcmp(got, "pos:store12-000123:return:000200:295492381f3e6837,"
		       "pos:store12-000123:refund:000200:295492381f3e6837,"
		       "pos:store12-000201:placed:463e72b6e460b0cc,"
		       "pos:store12-000201:payment:paid:463e72b6e460b0cc,"
		       "pos:store12-000201:return:000201:a8b6bc2c2729c1fc,"
		       "pos:store12-000201:refund:000201:a8b6bc2c2729c1fc") == 0,
	   "returns on the original receipt's order: %s", got);
	ok(r.bytes_match, "events identical to the codec's");
	json_t *ret = json_object_get(ev_at(&r, 0), "payload");
	json_t *l0 = json_array_get(json_object_get(ret, "lines"), 0);
	ok(strcmp(s_of(ret, "return_id"), "000200") == 0 &&
		   strcmp(s_of(ret, "reason"), "damaged") == 0 &&
		   strcmp(s_of(l0, "line_id"), "1") == 0 &&
		   strcmp(s_of(l0, "sku"), "MUG-01") == 0 &&
		   i_of(l0, "quantity") == 1 &&
		   json_array_size(json_object_get(ret, "lines")) == 2,
	   "ReturnReceived: return id, reason, original line ids");
	json_t *ref = json_object_get(ev_at(&r, 1), "payload");
	ok(amount(ref, "amount") == 1782 &&
		   json_is_false(json_object_get(ref, "restock")) &&
		   strcmp(s_of(ref, "refund_id"), "000200") == 0,
	   "RefundIssued: 17.82 refunded, restock false when a line says so");
	json_t *ex = json_object_get(ev_at(&r, 4), "payload");
	ok(json_is_null(json_object_get(
		   json_array_get(json_object_get(ex, "lines"), 0),
		   "line_id")),
	   "unlinked return: no original line id");
	ok(strstr(r.rejects, "6: original_receipt_no/original_line_no are "
			     "for kind=return rows"),
	   "sale row with an original receipt refused: %s", flat(r.rejects));
	done(&r);

	run(&r, WB_POS_CSV,
	    HEADER
	    "s,R,1,return,A,a,1,1.00,USD,,,,2026-01-08T09:00:00Z,,,O1,,\n"
	    "s,R,2,return,A,a,1,1.00,USD,,,,2026-01-08T09:00:00Z,,,O2,,\n");
	ok(json_array_size(r.events) == 0 &&
		   strstr(r.rejects, "3: original_receipt_no differs from "
				     "line 2"),
	   "one return receipt refunds one original: %s", flat(r.rejects));
	done(&r);
}

static void test_ndjson(void)
{
	struct run r;
	char got[4096];
	run(&r, WB_POS_NDJSON,
	    "{\"store_id\":\"store12\",\"receipt_no\":\"000123\",\"line_no\":1,"
	    "\"kind\":\"sale\",\"sku\":\"MUG-01\",\"title\":\"Mug\",\"qty\":2,"
	    "\"unit_price\":\"4.50\",\"currency\":\"USD\",\"tax\":\"0.72\","
	    "\"total\":\"9.72\",\"occurred_at\":\"2026-01-07T10:00:00Z\","
	    "\"email\":null}\n"
	    "\n"
	    "{\"store_id\":\"store12\",\"receipt_no\":\"000123\",\"line_no\":2,"
	    "\"kind\":\"sale\",\"sku\":\"TEA\",\"title\":\"T\\u00e9\",\"qty\":1,"
	    "\"unit_price\":\"1\",\"currency\":\"USD\","
	    "\"occurred_at\":\"2026-01-07T10:00:00Z\"}\n"
	    /* 4: a JSON number for money; 5, 6: not JSON; 7: missing field */
	    "{\"store_id\":\"s\",\"receipt_no\":\"B\",\"line_no\":1,"
	    "\"kind\":\"sale\",\"qty\":1,\"unit_price\":4.5,\"currency\":"
	    "\"USD\",\"occurred_at\":\"2026-01-07T10:00:00Z\"}\n"
	    "{\"store_id\":\n"
	    "{\"store_id\":\"s\",\"store_id\":\"t\"}\n"
	    "{\"store_id\":\"s\",\"receipt_no\":\"C\",\"line_no\":1,"
	    "\"kind\":\"sale\",\"qty\":1,\"currency\":\"USD\","
	    "\"occurred_at\":\"2026-01-07T10:00:00Z\"}\n"
	    /* 8: good (7 was placed, so 6 does not reach it) */
	    "{\"store_id\":\"s\",\"receipt_no\":\"D\",\"line_no\":1,"
	    "\"kind\":\"return\",\"qty\":1,\"unit_price\":\"2.00\",\"currency\":"
	    "\"USD\",\"occurred_at\":\"2026-01-07T10:00:00Z\","
	    "\"original_receipt_no\":\"000123\",\"restock\":true}\n");
	ids(&r, got, sizeof(got));
	ok(strcmp(got, "pos:store12-000123:placed:ec4d9dd3429d38f6,"
		       "pos:store12-000123:payment:paid:ec4d9dd3429d38f6,"
		       "pos:s-000123:return:D:a188784c56e3f9a5,"
		       "pos:s-000123:refund:D:a188784c56e3f9a5") == 0,
	   "NDJSON: receipt 000123 and return D: %s", got);
	ok(r.bytes_match, "events identical to the codec's");
	json_t *pl = json_object_get(ev_at(&r, 0), "payload");
	ok(amount(json_object_get(pl, "totals"), "total") == 1072 &&
		   strcmp(s_of(json_array_get(json_object_get(pl, "lines"), 1),
			       "title"),
			  "T\xc3\xa9") == 0,
	   "NDJSON totals and UTF-8 titles");
	static const char *const want[] = {
		"4: unit_price: expected a string (amounts as decimal strings",
		"5: invalid JSON at column",
		"4: receipt s/B (lines 4-4) not ingested",
		"6: invalid JSON",
		"7: unit_price: missing",
		"7: receipt s/C (lines 7-7) not ingested",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		ok(strstr(r.rejects, want[i]) != NULL, "reject \"%s\"", want[i]);
	if (!strstr(r.rejects, want[0]))
		diag("%s", flat(r.rejects));
	done(&r);
}

/* The event_id of event i of one run of text, into out. */
static void id_at(const char *text, size_t i, char *out, size_t n,
		  json_t **payload)
{
	struct run r;
	run(&r, WB_POS_CSV, text);
	snprintf(out, n, "%s", r.nrejects ? "(rejected)" :
			       s_of(ev_at(&r, i), "event_id"));
	if (payload)
		*payload = json_incref(json_object_get(ev_at(&r, i),
						       "payload"));
	done(&r);
}

#define SALE1 "s1,R1,1,sale,MUG,Mug,2,4.50,EUR,,,,2026-01-07T10:00:00Z,,,,,\n"
#define SALE2 "s1,R1,2,sale,TEA,Tea,1,3.00,EUR,,,,2026-01-07T10:00:00Z,,,,,\n"
#define RET1 "s1,X9,1,return,MUG,Mug,1,4.50,EUR,,,,2026-01-08T10:00:00Z,,," \
	     "R1,1,\n"
#define RET2 "s1,X9,2,return,TEA,Tea,1,3.00,EUR,,,,2026-01-08T10:00:00Z,,," \
	     "R1,2,\n"

/* A receipt exported again with another line is a new fact (the ledger
 * must not drop it as a repeat); the same export again, or its rows in
 * another order, is the same fact. Till returns alike. */
static void test_reexport(void)
{
	char a[256], a2[256], b[256], b2[256], pa[256], pb[256], t[256];
	json_t *pl = NULL;
	id_at(HEADER SALE1, 0, a, sizeof(a), NULL);
	id_at(HEADER SALE1, 0, a2, sizeof(a2), NULL);
	id_at(HEADER SALE1 SALE2, 0, b, sizeof(b), &pl);
	id_at(HEADER SALE2 SALE1, 0, b2, sizeof(b2), NULL);
	id_at(HEADER SALE1, 1, pa, sizeof(pa), NULL);
	id_at(HEADER SALE1 SALE2, 1, pb, sizeof(pb), NULL);
	ok(strncmp(a, "pos:s1-R1:placed:", 17) == 0 && strcmp(a, a2) == 0,
	   "the same export again: the same OrderPlaced id (%s)", a);
	ok(strncmp(b, "pos:s1-R1:placed:", 17) == 0 && strcmp(a, b) != 0,
	   "re-exported with an extra line: a new OrderPlaced id (%s)", b);
	ok(json_array_size(json_object_get(pl, "lines")) == 2 &&
		   amount(json_object_get(pl, "totals"), "total") == 1200,
	   "the new OrderPlaced has both lines and the new total");
	json_decref(pl);
	ok(strcmp(b, b2) == 0, "the same lines in another order: the same id");
	ok(strncmp(pa, "pos:s1-R1:payment:paid:", 23) == 0 && strcmp(pa, pb),
	   "the payment of the new total is new too (%s, %s)", pa, pb);
	id_at(HEADER "s1,R1,1,sale,MUG,Big mug,2,4.50,EUR,,,,"
		     "2026-01-07T10:00:00Z,,,,,\n",
	      0, t, sizeof(t), NULL);
	ok(strcmp(t, a) == 0, "only a title changed: the same id");
	id_at(HEADER "s1,R1,1,sale,MUG,Mug,2,4.40,EUR,,,,"
		     "2026-01-07T10:00:00Z,,,,,\n",
	      0, t, sizeof(t), NULL);
	ok(strcmp(t, a) != 0, "a line repriced: a new id");

	char r1[256], r1b[256], r2[256], f1[256], f2[256];
	id_at(HEADER RET1, 0, r1, sizeof(r1), NULL);
	id_at(HEADER RET1, 0, r1b, sizeof(r1b), NULL);
	id_at(HEADER RET1 RET2, 0, r2, sizeof(r2), NULL);
	id_at(HEADER RET1, 1, f1, sizeof(f1), NULL);
	id_at(HEADER RET1 RET2, 1, f2, sizeof(f2), &pl);
	ok(strncmp(r1, "pos:s1-R1:return:X9:", 20) == 0 && !strcmp(r1, r1b) &&
		   strncmp(r2, "pos:s1-R1:return:X9:", 20) == 0 &&
		   strcmp(r1, r2),
	   "a till return re-exported with another line: a new "
	   "ReturnReceived id (%s, %s)", r1, r2);
	ok(strncmp(f1, "pos:s1-R1:refund:X9:", 20) == 0 && strcmp(f1, f2) &&
		   amount(pl, "amount") == 750 &&
		   strcmp(s_of(pl, "refund_id"), "X9") == 0,
	   "and a new RefundIssued of the same refund id, for 7.50 (%s)", f2);
	json_decref(pl);
}

/* A line number over the cap is refused for that, not as "not a number". */
static void test_line_no_cap(void)
{
	struct run r;
	run(&r, WB_POS_CSV,
	    HEADER
	    "s1,R1,9007199254740993,sale,MUG,Mug,1,4.50,EUR,,,,"
	    "2026-01-07T10:00:00Z,,,,,\n"
	    "s1,R2,0,sale,MUG,Mug,1,4.50,EUR,,,,2026-01-07T10:00:00Z,,,,,\n"
	    "s1,R3,999999999,sale,MUG,Mug,1,4.50,EUR,,,,"
	    "2026-01-07T10:00:00Z,,,,,\n"
	    "s1,X1,1,return,MUG,Mug,1,4.50,EUR,,,,2026-01-08T10:00:00Z,,,"
	    "R3,1000000000,\n");
	ok(strstr(r.rejects, "2: line_no: '9007199254740993' is over the cap "
			     "of 999,999,999") != NULL,
	   "line_no 9007199254740993: over the cap (%s)", flat(r.rejects));
	ok(strstr(r.rejects, "3: line_no: '0' is not a whole number from 1 to "
			     "999,999,999") != NULL,
	   "line_no 0: not from 1 to 999,999,999");
	ok(strstr(r.rejects, "5: original_line_no: '1000000000' is over the "
			     "cap of 999,999,999") != NULL,
	   "original_line_no 1000000000: over the cap");
	ok(json_array_size(r.events) == 2 && r.counts.receipts == 1,
	   "line_no 999999999 is fine");
	done(&r);
}

int main(void)
{
	json_object_seed(1);
	test_sales();
	test_errors();
	test_returns();
	test_ndjson();
	test_reexport();
	test_line_no_cap();
	return tap_done();
}
