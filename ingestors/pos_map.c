/*
 * pos_map.c — retail POS exports into canonical events. Pure: lines in,
 * encoded Kafka records and FILE:LINE rejects out through a sink; reading
 * files and producing is ingest_pos.c's.
 *
 * Input: CSV (RFC 4180: header row, ',' separated, '"' quoting with ""
 * for a quote, a quoted field may span lines) or NDJSON (one object per
 * line with the same field names). Each row is one receipt line; the rows
 * of one receipt (same store_id and receipt_no) are consecutive. A receipt
 * becomes:
 *   sale rows   -> OrderPlaced + PaymentStatusChanged on pos:<store>-<receipt>
 *   return rows -> ReturnReceived + RefundIssued on the original receipt's
 *                  order (original_receipt_no), else on the return's own
 * with event ids from store, receipt, kind and a hash of the receipt's
 * rows, so re-reading an export never records anything twice while a
 * receipt exported again with other lines is recorded again.
 *
 * A receipt is all or nothing: one bad row (or an unreadable row next to
 * it) keeps the whole receipt out, so a fixed file re-run later records the
 * complete receipt instead of colliding with a partial one.
 *
 * Speed: this is the bulk path (ops/bench-pos). CSV rows are split in
 * place, numbers parsed by hand, and events are laid out as Avro directly
 * (no JSON in between); every event is then checked by wb_event_peek, the
 * ledger's own validator, before it leaves. tests/unit/test_pos.c checks
 * the bytes equal what the JSON codec writes for the same event.
 */
#include "wb_avro_internal.h" /* wb_utf8_valid */
#include "wb_ingest.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

/* Largest ids: the order id and event ids must stay under the ledger's
 * 256-byte cap. */
#define MAX_KEY 64
#define MAX_LINES 10000
#define MAX_TEXT 1024
/* Line numbers: far beyond any till, and short in ids and messages. */
#define MAX_LINE_NO 999999999

enum col {
	C_STORE, C_RECEIPT, C_LINE, C_KIND, C_SKU, C_TITLE, C_QTY, C_UNIT,
	C_CCY, C_TAX, C_TOTAL, C_PAYMENT, C_OCCURRED, C_EMAIL, C_REASON,
	C_ORIG_RECEIPT, C_ORIG_LINE, C_RESTOCK, C_COUNT
};

static const char *const col_names[C_COUNT] = {
	"store_id", "receipt_no", "line_no", "kind", "sku", "title", "qty",
	"unit_price", "currency", "tax", "total", "payment_status",
	"occurred_at", "email", "return_reason", "original_receipt_no",
	"original_line_no", "restock"};

static const bool col_required[C_COUNT] = {
	[C_STORE] = true, [C_RECEIPT] = true, [C_LINE] = true,
	[C_KIND] = true, [C_QTY] = true, [C_UNIT] = true, [C_CCY] = true,
	[C_OCCURRED] = true};

/* PaymentStatus symbols, in the schema's order. */
static const char *const pay_names[] = {
	"pending", "authorized", "paid", "partially_paid",
	"partially_refunded", "refunded", "voided"};
enum { PAY_PAID = 2, PAY_COUNT = 7 };

struct span {
	uint32_t off, len;
};

/* One validated row, its text in the receipt's arena. */
struct prow {
	long lineno;
	bool is_return, has_tax, has_total, restock;
	int payment; /* -1: not given */
	int64_t line_no, orig_line_no; /* orig 0: not given */
	int64_t qty, unit, tax, total, occurred;
	char ccy[4];
	struct span sku, title, email, reason, orig_receipt, occurred_text;
};

struct receipt {
	char store[MAX_KEY + 1], no[MAX_KEY + 1];
	size_t nrows, cap;
	struct prow *rows;
	wb_buf arena;
	long first_line, last_line, bad_line;
	bool open, bad;
};

/* A row of the open receipt, for visiting them by line_no. */
struct lref {
	int64_t line_no;
	size_t row;
};

struct wb_pos {
	enum wb_pos_format fmt;
	char *merchant, *source;
	size_t max_record;
	struct wb_pos_sink sink;
	struct wb_pos_counts counts;
	int branch_placed, branch_payment, branch_return, branch_refund;
	/* CSV */
	bool have_header;
	int col_of[C_COUNT]; /* column index, or -1 */
	size_t ncols;
	wb_buf pending;      /* a record whose quoted field goes on */
	long pending_line;
	wb_buf scratch;      /* unescaped quoted fields */
	struct span *fields;
	size_t fields_cap;
	/* receipts */
	struct receipt cur;
	bool poison_next;    /* an unreadable row may belong to the next */
	long poison_line;
	uint64_t *seen;      /* hashes of closed receipts, open addressing */
	size_t seen_cap, seen_n;
	wb_buf out;          /* one event at a time */
	wb_buf facts;        /* a receipt's rows as hashed for its ids */
	struct lref *order;  /* its rows by line_no */
	size_t order_cap;
	int64_t last_time;   /* occurred_at cache: same text, same time */
	char last_time_text[64];
};

static void reject(wb_pos *p, long line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void reject(wb_pos *p, long line, const char *fmt, ...)
{
	char why[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	p->sink.reject(p->sink.ud, line, why);
}

static int branch_of(const char *name)
{
	const char *const *t = wb_event_types();
	for (int i = 0; t[i]; i++)
		if (strcmp(t[i], name) == 0)
			return i;
	abort(); /* the schema lost a type this file writes */
}

wb_pos *wb_pos_create(enum wb_pos_format fmt, const char *merchant,
		      const char *source, size_t max_record,
		      const struct wb_pos_sink *sink)
{
	wb_pos *p = wb_xcalloc(1, sizeof(*p));
	p->fmt = fmt;
	p->merchant = wb_xstrdup(merchant);
	p->source = wb_xstrdup(source);
	p->max_record = max_record;
	p->sink = *sink;
	p->branch_placed = branch_of("OrderPlaced");
	p->branch_payment = branch_of("PaymentStatusChanged");
	p->branch_return = branch_of("ReturnReceived");
	p->branch_refund = branch_of("RefundIssued");
	wb_buf_init(&p->pending);
	wb_buf_init(&p->scratch);
	wb_buf_init(&p->cur.arena);
	wb_buf_init(&p->out);
	wb_buf_init(&p->facts);
	for (int i = 0; i < C_COUNT; i++)
		p->col_of[i] = -1;
	if (fmt == WB_POS_NDJSON) {
		/* NDJSON has no header: every field is where the row says. */
		p->have_header = true;
		for (int i = 0; i < C_COUNT; i++)
			p->col_of[i] = i;
		p->ncols = C_COUNT;
	}
	return p;
}

void wb_pos_destroy(wb_pos *p)
{
	if (!p)
		return;
	free(p->merchant);
	free(p->source);
	wb_buf_finish(&p->pending);
	wb_buf_finish(&p->scratch);
	wb_buf_finish(&p->cur.arena);
	wb_buf_finish(&p->out);
	wb_buf_finish(&p->facts);
	free(p->order);
	free(p->cur.rows);
	free(p->fields);
	free(p->seen);
	free(p);
}

void wb_pos_get_counts(const wb_pos *p, struct wb_pos_counts *out)
{
	*out = p->counts;
}

/* ---- closed-receipt set ------------------------------------------------ */

static uint64_t key_hash(const char *store, const char *no)
{
	uint64_t h = wb_fnv1a(WB_FNV_OFFSET, store, strlen(store));
	h = wb_fnv1a(h, "\xff", 1);
	h = wb_fnv1a(h, no, strlen(no));
	return h | 1; /* 0 marks an empty slot */
}

static bool seen_has(const wb_pos *p, uint64_t h)
{
	if (!p->seen)
		return false;
	for (size_t i = h & (p->seen_cap - 1);; i = (i + 1) & (p->seen_cap - 1)) {
		if (p->seen[i] == h)
			return true;
		if (p->seen[i] == 0)
			return false;
	}
}

static void seen_put(wb_pos *p, uint64_t h)
{
	if ((p->seen_n + 1) * 2 > p->seen_cap) {
		size_t cap = p->seen_cap ? p->seen_cap * 2 : 1024;
		uint64_t *t = wb_xcalloc(cap, sizeof(*t));
		for (size_t i = 0; i < p->seen_cap; i++) {
			uint64_t v = p->seen[i];
			if (!v)
				continue;
			size_t j = v & (cap - 1);
			while (t[j])
				j = (j + 1) & (cap - 1);
			t[j] = v;
		}
		free(p->seen);
		p->seen = t;
		p->seen_cap = cap;
	}
	size_t i = h & (p->seen_cap - 1);
	while (p->seen[i] && p->seen[i] != h)
		i = (i + 1) & (p->seen_cap - 1);
	if (!p->seen[i]) {
		p->seen[i] = h;
		p->seen_n++;
	}
}

/* ---- Avro, laid out by hand (field order of OrderEvent.avsc) ---------- */

static void put_str(wb_buf *b, const char *s, size_t n)
{
	wb_avro_put_bytes(b, s, n);
}

static void put_opt(wb_buf *b, const char *s, size_t n)
{
	if (n == 0) {
		wb_avro_put_long(b, 0);
		return;
	}
	wb_avro_put_long(b, 1);
	put_str(b, s, n);
}

static void put_money(wb_buf *b, int64_t amount, const char *ccy)
{
	wb_avro_put_long(b, amount);
	put_str(b, ccy, 3);
}

static void put_opt_money(wb_buf *b, bool has, int64_t amount,
			  const char *ccy)
{
	wb_avro_put_long(b, has ? 1 : 0);
	if (has)
		put_money(b, amount, ccy);
}

static const char *arena_str(const struct receipt *r, struct span s)
{
	/* rows with only empty texts never allocate the arena */
	return r->arena.data ? (const char *)r->arena.data + s.off : "";
}

/* Frame + envelope; returns the offset of the body. */
static size_t begin_event(wb_pos *p, const char *eid, size_t eid_len,
			  const char *oid, size_t oid_len, const char *type,
			  int branch, int64_t source_time, int64_t now_ms)
{
	wb_buf *b = &p->out;
	wb_buf_reset(b);
	wb_avro_frame(WB_SCHEMA_ORDER_EVENT, b);
	size_t body = b->len;
	put_str(b, eid, eid_len);
	put_str(b, p->merchant, strlen(p->merchant));
	put_str(b, oid, oid_len);
	put_str(b, "pos", 3);
	put_str(b, type, strlen(type));
	wb_avro_put_long(b, source_time);
	wb_avro_put_long(b, now_ms);
	put_str(b, p->source, strlen(p->source));
	wb_avro_put_long(b, 0); /* correlation_id: null */
	wb_avro_put_long(b, 0); /* causation_id: null */
	wb_avro_put_long(b, branch);
	return body;
}

/* Validates the event as the ledger will, then hands it to the sink. */
static wb_err finish_event(wb_pos *p, size_t body, const char *oid,
			   size_t oid_len, const char *eid, size_t eid_len,
			   long line, bool *ok)
{
	wb_buf *b = &p->out;
	char msg[512];
	struct wb_event_view v;
	*ok = false;
	if (wb_event_peek(b->data + body, b->len - body, &v, msg,
			  sizeof(msg)) != WB_OK) {
		reject(p, line, "event %.*s not valid: %s", (int)eid_len, eid,
		       msg);
		return WB_OK;
	}
	size_t value_len = b->len;
	wb_buf_append(b, oid, oid_len);
	wb_buf_putc(b, '\0');
	size_t eid_off = b->len;
	wb_buf_append(b, eid, eid_len);
	wb_buf_putc(b, '\0');
	struct wb_ingest_record rec = {
		.value = b->data,
		.value_len = value_len,
		.key = (const char *)b->data + value_len,
		.key_len = oid_len,
		.event_id = (const char *)b->data + eid_off,
	};
	wb_err rc = p->sink.event(p->sink.ud, &rec, line);
	if (rc == WB_OK) {
		p->counts.events++;
		*ok = true;
	}
	return rc;
}

/* A non-negative number in decimal (line ids, per row: no printf). */
static size_t decimal(int64_t v, char out[24])
{
	char tmp[24];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

static void put_item_quantities(wb_buf *b, const struct receipt *r,
				bool returns, bool orig)
{
	size_t n = 0;
	for (size_t i = 0; i < r->nrows; i++)
		n += r->rows[i].is_return == returns;
	if (n) {
		wb_avro_put_long(b, (int64_t)n);
		for (size_t i = 0; i < r->nrows; i++) {
			const struct prow *w = &r->rows[i];
			if (w->is_return != returns)
				continue;
			char id[24];
			int64_t lid = orig ? w->orig_line_no : w->line_no;
			put_opt(b, id, lid > 0 ? decimal(lid, id) : 0);
			put_opt(b, arena_str(r, w->sku), w->sku.len);
			wb_avro_put_long(b, w->qty);
		}
	}
	wb_avro_put_long(b, 0);
}

/* Sums of the sale (or return) rows; false on overflow. */
struct sums {
	int64_t sub, tax, disc, total;
	bool has_tax, has_disc;
};

static bool line_sums(const struct receipt *r, bool returns, struct sums *s)
{
	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i < r->nrows; i++) {
		const struct prow *w = &r->rows[i];
		if (w->is_return != returns)
			continue;
		int64_t gross, with_tax, total, disc;
		if (__builtin_mul_overflow(w->qty, w->unit, &gross) ||
		    __builtin_add_overflow(gross, w->tax, &with_tax))
			return false;
		total = w->has_total ? w->total : with_tax;
		disc = with_tax - total;
		if (__builtin_add_overflow(s->sub, gross, &s->sub) ||
		    __builtin_add_overflow(s->tax, w->tax, &s->tax) ||
		    __builtin_add_overflow(s->disc, disc, &s->disc) ||
		    __builtin_add_overflow(s->total, total, &s->total))
			return false;
		s->has_tax |= w->has_tax;
		s->has_disc |= w->has_total;
	}
	return true;
}

static const struct prow *first_of(const struct receipt *r, bool returns)
{
	for (size_t i = 0; i < r->nrows; i++)
		if (r->rows[i].is_return == returns)
			return &r->rows[i];
	return NULL;
}

/* The first non-empty text of a column among the rows of one kind. */
static struct span first_text(const struct receipt *r, bool returns,
			      size_t field_off)
{
	for (size_t i = 0; i < r->nrows; i++) {
		const struct prow *w = &r->rows[i];
		const struct span *s =
			(const struct span *)((const char *)w + field_off);
		if (w->is_return == returns && s->len)
			return *s;
	}
	return (struct span){0, 0};
}

/* ---- what a receipt says ------------------------------------------------ */

/*
 * A till may export a receipt again after a change (a line added, voided
 * or repriced). With ids of store and receipt alone the ledger would drop
 * the new version as a repeat, so the placed, payment, return and refund
 * ids end with a hash of the rows of their kind: the same export read
 * again gives the same ids, a changed one new events that replace the old
 * lines and totals in the read model. Hashed per row, in line_no order
 * (the rows are a set: reordering them is no change): line_no, sku, qty,
 * unit_price, currency, tax and total, and for returns original_line_no
 * and restock. Not titles, email or reason: a re-export that only
 * renames a product records nothing new.
 */
static void fact_long(wb_buf *b, int64_t v)
{
	uint8_t le[8];
	for (int i = 0; i < 8; i++)
		le[i] = (uint8_t)((uint64_t)v >> (8 * i));
	wb_buf_append(b, le, 8);
}

static int lref_cmp(const void *a, const void *b)
{
	const struct lref *x = a, *y = b;
	return (x->line_no > y->line_no) - (x->line_no < y->line_no);
}

/* First 64 bits of SHA-256 of the rows of one kind, as 16 hex digits. */
static bool rows_hash(wb_pos *p, const struct receipt *r, bool returns,
		      char out[17])
{
	if (r->nrows > p->order_cap) {
		free(p->order);
		p->order_cap = r->nrows;
		p->order = wb_xcalloc(p->order_cap, sizeof(*p->order));
	}
	size_t n = 0;
	for (size_t i = 0; i < r->nrows; i++)
		if (r->rows[i].is_return == returns)
			p->order[n++] = (struct lref){r->rows[i].line_no, i};
	qsort(p->order, n, sizeof(*p->order), lref_cmp);
	wb_buf *b = &p->facts;
	wb_buf_reset(b);
	for (size_t k = 0; k < n; k++) {
		const struct prow *w = &r->rows[p->order[k].row];
		fact_long(b, w->line_no);
		fact_long(b, (int64_t)w->sku.len);
		wb_buf_append(b, arena_str(r, w->sku), w->sku.len);
		fact_long(b, w->qty);
		fact_long(b, w->unit);
		wb_buf_append(b, w->ccy, 3);
		fact_long(b, w->has_tax);
		fact_long(b, w->tax);
		fact_long(b, w->has_total);
		fact_long(b, w->total);
		if (returns) {
			fact_long(b, w->orig_line_no);
			fact_long(b, w->restock);
		}
	}
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (!EVP_Digest(b->data, b->len, md, &mdlen, EVP_sha256(), NULL) ||
	    mdlen < 8)
		return false;
	wb_hex(md, 8, out);
	return true;
}

static wb_err emit_sale(wb_pos *p, const struct receipt *r, int64_t now_ms)
{
	const struct prow *f = first_of(r, false);
	if (!f)
		return WB_OK;
	struct sums s;
	if (!line_sums(r, false, &s)) {
		reject(p, r->first_line,
		       "receipt %s/%s: amounts overflow a 64-bit sum", r->store,
		       r->no);
		return WB_OK;
	}
	char h[17];
	if (!rows_hash(p, r, false, h)) {
		reject(p, r->first_line, "receipt %s/%s: no hash of its rows",
		       r->store, r->no);
		return WB_OK;
	}
	char oid[2 * MAX_KEY + 8], eid[2 * MAX_KEY + 64];
	int oid_len = snprintf(oid, sizeof(oid), "pos:%s-%s", r->store, r->no);
	int eid_len = snprintf(eid, sizeof(eid), "%s:placed:%s", oid, h);
	wb_buf *b = &p->out;
	size_t body = begin_event(p, eid, (size_t)eid_len, oid, (size_t)oid_len,
				  "OrderPlaced", p->branch_placed, f->occurred,
				  now_ms);
	struct span email = first_text(r, false, offsetof(struct prow, email));
	put_opt(b, r->no, strlen(r->no));                    /* name */
	put_opt(b, arena_str(r, email), email.len);          /* email */
	wb_avro_put_long(b, 0);                              /* phone */
	put_str(b, f->ccy, 3);                               /* currency */
	put_opt_money(b, true, s.sub, f->ccy);               /* subtotal */
	put_opt_money(b, false, 0, NULL);                    /* shipping */
	put_opt_money(b, s.has_tax, s.tax, f->ccy);          /* tax */
	put_opt_money(b, s.has_disc, s.disc, f->ccy);        /* discounts */
	put_money(b, s.total, f->ccy);                       /* total */
	size_t n = 0;
	for (size_t i = 0; i < r->nrows; i++)
		n += !r->rows[i].is_return;
	wb_avro_put_long(b, (int64_t)n);
	for (size_t i = 0; i < r->nrows; i++) {
		const struct prow *w = &r->rows[i];
		if (w->is_return)
			continue;
		char id[24];
		put_opt(b, id, decimal(w->line_no, id));
		put_opt(b, arena_str(r, w->sku), w->sku.len);
		/* title: the sku when the export has none */
		struct span t = w->title.len ? w->title : w->sku;
		put_str(b, arena_str(r, t), t.len);
		wb_avro_put_long(b, w->qty);
		put_money(b, w->unit, w->ccy);
	}
	wb_avro_put_long(b, 0);
	wb_avro_put_long(b, 0);           /* shipping_address: null */
	wb_avro_put_long(b, f->occurred); /* placed_at */
	bool ok;
	wb_err rc = finish_event(p, body, oid, (size_t)oid_len, eid,
				 (size_t)eid_len, r->first_line, &ok);
	if (rc || !ok)
		return rc;

	int pay = PAY_PAID;
	for (size_t i = 0; i < r->nrows; i++)
		if (!r->rows[i].is_return && r->rows[i].payment >= 0) {
			pay = r->rows[i].payment;
			break;
		}
	eid_len = snprintf(eid, sizeof(eid), "%s:payment:%s:%s", oid,
			   pay_names[pay], h);
	body = begin_event(p, eid, (size_t)eid_len, oid, (size_t)oid_len,
			   "PaymentStatusChanged", p->branch_payment,
			   f->occurred, now_ms);
	wb_avro_put_long(b, pay);
	put_opt_money(b, pay == PAY_PAID, s.total, f->ccy);
	return finish_event(p, body, oid, (size_t)oid_len, eid,
			    (size_t)eid_len, r->first_line, &ok);
}

static wb_err emit_return(wb_pos *p, const struct receipt *r, int64_t now_ms)
{
	const struct prow *f = first_of(r, true);
	if (!f)
		return WB_OK;
	struct sums s;
	if (!line_sums(r, true, &s)) {
		reject(p, f->lineno,
		       "receipt %s/%s: amounts overflow a 64-bit sum", r->store,
		       r->no);
		return WB_OK;
	}
	char h[17];
	if (!rows_hash(p, r, true, h)) {
		reject(p, f->lineno, "receipt %s/%s: no hash of its rows",
		       r->store, r->no);
		return WB_OK;
	}
	struct span orig = first_text(r, true,
				      offsetof(struct prow, orig_receipt));
	char oid[2 * MAX_KEY + 8], eid[3 * MAX_KEY + 64];
	int oid_len = snprintf(oid, sizeof(oid), "pos:%s-%.*s", r->store,
			       (int)(orig.len ? orig.len : strlen(r->no)),
			       orig.len ? arena_str(r, orig) : r->no);
	struct span reason = first_text(r, true, offsetof(struct prow, reason));
	bool restock = true;
	for (size_t i = 0; i < r->nrows; i++)
		if (r->rows[i].is_return)
			restock &= r->rows[i].restock;
	wb_buf *b = &p->out;
	bool ok;

	int eid_len = snprintf(eid, sizeof(eid), "%s:return:%s:%s", oid, r->no,
			       h);
	size_t body = begin_event(p, eid, (size_t)eid_len, oid,
				  (size_t)oid_len, "ReturnReceived",
				  p->branch_return, f->occurred, now_ms);
	put_str(b, r->no, strlen(r->no));
	put_item_quantities(b, r, true, true);
	put_opt(b, arena_str(r, reason), reason.len);
	wb_err rc = finish_event(p, body, oid, (size_t)oid_len, eid,
				 (size_t)eid_len, f->lineno, &ok);
	if (rc || !ok)
		return rc;

	eid_len = snprintf(eid, sizeof(eid), "%s:refund:%s:%s", oid, r->no,
			   h);
	body = begin_event(p, eid, (size_t)eid_len, oid, (size_t)oid_len,
			   "RefundIssued", p->branch_refund, f->occurred,
			   now_ms);
	put_str(b, r->no, strlen(r->no));
	put_money(b, s.total, f->ccy);
	put_item_quantities(b, r, true, true);
	wb_buf_putc(b, restock ? 1 : 0);
	put_opt(b, arena_str(r, reason), reason.len);
	return finish_event(p, body, oid, (size_t)oid_len, eid,
			    (size_t)eid_len, f->lineno, &ok);
}

/* Ends the open receipt: its events, or why it is kept out. */
static wb_err close_receipt(wb_pos *p, int64_t now_ms)
{
	struct receipt *r = &p->cur;
	if (!r->open)
		return WB_OK;
	r->open = false;
	seen_put(p, key_hash(r->store, r->no));
	wb_err rc = WB_OK;
	if (r->bad) {
		p->counts.receipts_rejected++;
		reject(p, r->first_line,
		       "receipt %s/%s (lines %ld-%ld) not ingested: line %ld "
		       "is invalid or unreadable; fix it and re-run (ingested "
		       "receipts are deduplicated)",
		       r->store, r->no, r->first_line, r->last_line,
		       r->bad_line);
	} else {
		p->counts.receipts++;
		if (!(rc = emit_sale(p, r, now_ms)))
			rc = emit_return(p, r, now_ms);
	}
	r->nrows = 0;
	wb_buf_reset(&r->arena);
	return rc;
}

static void poison(struct receipt *r, long line)
{
	if (!r->bad) {
		r->bad = true;
		r->bad_line = line;
	}
}

/* ---- fields ------------------------------------------------------------ */

struct field {
	const char *p;
	size_t n;
};

static bool key_ok(const char *s, size_t n, bool dash)
{
	if (n == 0 || n > MAX_KEY)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
		      (c >= 'A' && c <= 'Z') || c == '_' || c == '.' ||
		      (dash && (c == '-' || c == '/'))))
			return false;
	}
	return true;
}

static bool parse_count(const char *s, size_t n, int64_t max, int64_t *out)
{
	if (n == 0 || n > 18)
		return false;
	int64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

static void add_text(struct receipt *r, struct span *dst, struct field f)
{
	dst->off = (uint32_t)r->arena.len;
	dst->len = (uint32_t)f.n;
	wb_buf_append(&r->arena, f.p, f.n);
}

/* Makes (store, no) the open receipt, closing the previous one when it
 * is another. *repeat: the receipt was already closed earlier (reported,
 * and the new group is kept out). */
static wb_err place_row(wb_pos *p, struct field store, struct field no,
			long line, int64_t now_ms, bool *repeat)
{
	struct receipt *r = &p->cur;
	*repeat = false;
	bool same = r->open && strlen(r->store) == store.n &&
		    memcmp(r->store, store.p, store.n) == 0 &&
		    strlen(r->no) == no.n && memcmp(r->no, no.p, no.n) == 0;
	if (same) {
		/* an unreadable row before this one was not the next
		 * receipt's */
		p->poison_next = false;
		r->last_line = line;
		return WB_OK;
	}
	wb_err rc = close_receipt(p, now_ms);
	if (rc)
		return rc;
	memcpy(r->store, store.p, store.n);
	r->store[store.n] = '\0';
	memcpy(r->no, no.p, no.n);
	r->no[no.n] = '\0';
	r->open = true;
	r->bad = false;
	r->first_line = r->last_line = line;
	if (p->poison_next) {
		poison(r, p->poison_line);
		p->poison_next = false;
	}
	if (seen_has(p, key_hash(r->store, r->no))) {
		reject(p, line,
		       "receipt %s/%s appeared earlier in this input: the rows "
		       "of one receipt must be consecutive",
		       r->store, r->no);
		poison(r, line);
		*repeat = true;
	}
	return WB_OK;
}

/* Why a line number was refused: a whole number over the cap is a
 * number all the same, and the message says what the limit is. */
static void line_no_why(struct field f, char *why, size_t n)
{
	bool digits = f.n > 0;
	for (size_t i = 0; i < f.n; i++)
		digits &= f.p[i] >= '0' && f.p[i] <= '9';
	size_t lead = 0;
	while (lead < f.n && f.p[lead] == '0')
		lead++;
	if (digits && lead < f.n)
		snprintf(why, n, "'%.*s' is over the cap of 999,999,999",
			 (int)(f.n > 40 ? 40 : f.n), f.p);
	else
		snprintf(why, n, "'%.*s' is not a whole number from 1 to "
			 "999,999,999", (int)(f.n > 40 ? 40 : f.n), f.p);
}

/* Checks one row's fields (f indexed by enum col; n=0 when absent) and
 * adds it to its receipt. */
static wb_err add_row(wb_pos *p, const struct field *f, long line,
		      int64_t now_ms)
{
	struct receipt *r = &p->cur;
	const struct field store = f[C_STORE], no = f[C_RECEIPT];
	p->counts.rows++;
	if (!key_ok(store.p, store.n, false) || !key_ok(no.p, no.n, true)) {
		reject(p, line,
		       "store_id and receipt_no must be 1-%d characters of "
		       "A-Z a-z 0-9 _ . (receipt_no also - /), got "
		       "store_id '%.*s' receipt_no '%.*s'",
		       MAX_KEY, (int)(store.n > 40 ? 40 : store.n), store.p,
		       (int)(no.n > 40 ? 40 : no.n), no.p);
		p->counts.rows_rejected++;
		/* which receipt this row belongs to is unknown */
		poison(r, line);
		p->poison_next = true;
		p->poison_line = line;
		return WB_OK;
	}
	bool repeat = false;
	wb_err rc = place_row(p, store, no, line, now_ms, &repeat);
	if (repeat)
		p->counts.rows_rejected++;
	if (rc || repeat)
		return rc;

	struct prow w = {.lineno = line, .payment = -1, .restock = true};
	char why[400];
	const char *col = NULL;
	const struct field *k = &f[C_KIND];
	if (k->n == 4 && memcmp(k->p, "sale", 4) == 0) {
		w.is_return = false;
	} else if (k->n == 6 && memcmp(k->p, "return", 6) == 0) {
		w.is_return = true;
	} else {
		snprintf(why, sizeof(why), "unknown kind '%.*s' (sale or "
			 "return)", (int)(k->n > 40 ? 40 : k->n), k->p);
		goto bad;
	}
	if (!parse_count(f[C_LINE].p, f[C_LINE].n, MAX_LINE_NO, &w.line_no) ||
	    w.line_no == 0) {
		col = "line_no";
		line_no_why(f[C_LINE], why, sizeof(why));
		goto bad_col;
	}
	if (!parse_count(f[C_QTY].p, f[C_QTY].n, 1000000, &w.qty) ||
	    w.qty == 0) {
		col = "qty";
		snprintf(why, sizeof(why),
			 "'%.*s' is not a whole number from 1 to 1000000 "
			 "(returns are kind=return with a positive qty)",
			 (int)(f[C_QTY].n > 40 ? 40 : f[C_QTY].n), f[C_QTY].p);
		goto bad_col;
	}
	const struct field *ccy = &f[C_CCY];
	if (wb_currency_exponent(ccy->p, ccy->n) < 0) {
		col = "currency";
		snprintf(why, sizeof(why), "'%.*s' is not an ISO-4217 code",
			 (int)(ccy->n > 16 ? 16 : ccy->n), ccy->p);
		goto bad_col;
	}
	memcpy(w.ccy, ccy->p, 3);
	w.ccy[3] = '\0';
	char sub[300];
	static const struct {
		enum col c;
		size_t off;
		size_t has;
	} amounts[] = {
		{C_UNIT, offsetof(struct prow, unit), 0},
		{C_TAX, offsetof(struct prow, tax), offsetof(struct prow, has_tax)},
		{C_TOTAL, offsetof(struct prow, total),
		 offsetof(struct prow, has_total)},
	};
	for (size_t i = 0; i < 3; i++) {
		const struct field *a = &f[amounts[i].c];
		if (a->n == 0 && amounts[i].has)
			continue;
		int64_t *dst = (int64_t *)((char *)&w + amounts[i].off);
		if (wb_money_parse(a->p, a->n, w.ccy, 3, dst, sub,
				   sizeof(sub)) != WB_OK ||
		    *dst < 0) {
			col = col_names[amounts[i].c];
			snprintf(why, sizeof(why), "%s",
				 *dst < 0 ? "negative (use kind=return)" : sub);
			goto bad_col;
		}
		if (amounts[i].has)
			*((bool *)&w + amounts[i].has) = true;
	}
	const struct field *t = &f[C_OCCURRED];
	if (t->n == 0 || t->n >= sizeof(p->last_time_text)) {
		col = "occurred_at";
		snprintf(why, sizeof(why), "missing or too long");
		goto bad_col;
	}
	if (!(strlen(p->last_time_text) == t->n &&
	      memcmp(p->last_time_text, t->p, t->n) == 0)) {
		char ts[64];
		memcpy(ts, t->p, t->n);
		ts[t->n] = '\0';
		int64_t ms;
		/* RFC 3339 with a date and a time; a bare epoch number is
		 * too easy to confuse (seconds or ms?) in an export */
		if (t->n < 16 || !wb_parse_time_ms(ts, &ms) || ms < 0) {
			col = "occurred_at";
			snprintf(why, sizeof(why),
				 "'%s' is not an RFC 3339 time such as "
				 "2026-11-27T13:09:28Z",
				 ts);
			goto bad_col;
		}
		memcpy(p->last_time_text, ts, t->n + 1);
		p->last_time = ms;
	}
	w.occurred = p->last_time;
	const struct field *ps = &f[C_PAYMENT];
	if (ps->n) {
		for (int i = 0; i < PAY_COUNT; i++)
			if (strlen(pay_names[i]) == ps->n &&
			    memcmp(pay_names[i], ps->p, ps->n) == 0)
				w.payment = i;
		if (w.payment < 0) {
			col = "payment_status";
			snprintf(why, sizeof(why),
				 "'%.*s' is not one of pending, authorized, "
				 "paid, partially_paid, partially_refunded, "
				 "refunded, voided",
				 (int)(ps->n > 40 ? 40 : ps->n), ps->p);
			goto bad_col;
		}
	}
	const struct field *rs = &f[C_RESTOCK];
	if (rs->n) {
		if (rs->n == 4 && memcmp(rs->p, "true", 4) == 0) {
			w.restock = true;
		} else if (rs->n == 5 && memcmp(rs->p, "false", 5) == 0) {
			w.restock = false;
		} else {
			col = "restock";
			snprintf(why, sizeof(why), "true or false");
			goto bad_col;
		}
	}
	const struct field *ol = &f[C_ORIG_LINE];
	if (ol->n && (!parse_count(ol->p, ol->n, MAX_LINE_NO,
				   &w.orig_line_no) ||
		      w.orig_line_no == 0)) {
		col = "original_line_no";
		line_no_why(*ol, why, sizeof(why));
		goto bad_col;
	}
	const struct field *orr = &f[C_ORIG_RECEIPT];
	if (orr->n && !key_ok(orr->p, orr->n, true)) {
		col = "original_receipt_no";
		snprintf(why, sizeof(why), "1-%d characters of A-Z a-z 0-9 _ "
			 ". - /", MAX_KEY);
		goto bad_col;
	}
	if (!w.is_return && (orr->n || ol->n)) {
		snprintf(why, sizeof(why), "original_receipt_no/"
			 "original_line_no are for kind=return rows");
		goto bad;
	}
	static const enum col texts[] = {C_SKU, C_TITLE, C_EMAIL, C_REASON};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		const struct field *x = &f[texts[i]];
		if (x->n > MAX_TEXT || memchr(x->p, '\0', x->n) ||
		    !wb_utf8_valid((const uint8_t *)x->p, x->n)) {
			col = col_names[texts[i]];
			snprintf(why, sizeof(why), "over %d bytes, invalid "
				 "UTF-8 or a NUL byte", MAX_TEXT);
			goto bad_col;
		}
	}
	/* receipt-wide rules against the rows so far */
	if (r->nrows >= MAX_LINES) {
		snprintf(why, sizeof(why), "receipt has more than %d lines",
			 MAX_LINES);
		goto bad;
	}
	for (size_t i = 0; i < r->nrows; i++) {
		const struct prow *o = &r->rows[i];
		if (o->line_no == w.line_no) {
			snprintf(why, sizeof(why), "line_no %lld repeats line "
				 "%ld of this receipt",
				 (long long)w.line_no, o->lineno);
			goto bad;
		}
		if (o->is_return != w.is_return)
			continue;
		if (memcmp(o->ccy, w.ccy, 3) != 0) {
			snprintf(why, sizeof(why),
				 "currency %s differs from %s on line %ld: one "
				 "receipt's %s rows are in one currency",
				 w.ccy, o->ccy, o->lineno,
				 w.is_return ? "return" : "sale");
			goto bad;
		}
		if (w.payment >= 0 && o->payment >= 0 &&
		    o->payment != w.payment) {
			snprintf(why, sizeof(why), "payment_status %s differs "
				 "from %s on line %ld",
				 pay_names[w.payment], pay_names[o->payment],
				 o->lineno);
			goto bad;
		}
		if (w.is_return &&
		    (o->orig_receipt.len != orr->n ||
		     memcmp(arena_str(r, o->orig_receipt), orr->p,
			    orr->n) != 0)) {
			snprintf(why, sizeof(why), "original_receipt_no differs "
				 "from line %ld: one return receipt refunds "
				 "one original receipt",
				 o->lineno);
			goto bad;
		}
	}
	if (w.has_total) {
		int64_t gross, with_tax;
		if (__builtin_mul_overflow(w.qty, w.unit, &gross) ||
		    __builtin_add_overflow(gross, w.tax, &with_tax) ||
		    w.total > with_tax) {
			snprintf(why, sizeof(why), "total is more than qty x "
				 "unit_price + tax");
			goto bad;
		}
	}
	add_text(r, &w.sku, f[C_SKU]);
	add_text(r, &w.title, f[C_TITLE]);
	add_text(r, &w.email, f[C_EMAIL]);
	add_text(r, &w.reason, f[C_REASON]);
	add_text(r, &w.orig_receipt, *orr);
	if (r->nrows == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 16;
		r->rows = wb_xrealloc(r->rows, r->cap * sizeof(*r->rows));
	}
	r->rows[r->nrows++] = w;
	return WB_OK;
bad_col:
	reject(p, line, "%s: %s", col, why);
	p->counts.rows_rejected++;
	poison(r, line);
	return WB_OK;
bad:
	reject(p, line, "%s", why);
	p->counts.rows_rejected++;
	poison(r, line);
	return WB_OK;
}

/* A row that is bad but whose receipt is known: that receipt (and only
 * it) is kept out. */
static wb_err reject_placed(wb_pos *p, struct field store, struct field no,
			    long line, const char *why, int64_t now_ms)
{
	p->counts.rows++;
	p->counts.rows_rejected++;
	reject(p, line, "%s", why);
	bool repeat;
	wb_err rc = place_row(p, store, no, line, now_ms, &repeat);
	if (rc == WB_OK)
		poison(&p->cur, line);
	return rc;
}

/* An unreadable row: the open receipt and the next one may be its. */
static void unreadable(wb_pos *p, long line, const char *why)
{
	p->counts.rows++;
	p->counts.rows_rejected++;
	reject(p, line, "%s", why);
	if (p->cur.open)
		poison(&p->cur, line);
	p->poison_next = true;
	p->poison_line = line;
}

/* ---- CSV --------------------------------------------------------------- */

enum split_rc { SPLIT_OK, SPLIT_OPEN_QUOTE, SPLIT_BAD };

/* Splits one record in place into p->fields (unescaped text of quoted
 * fields goes to p->scratch, which must not move while they are in use:
 * it is reserved up front). On SPLIT_BAD, *nf fields before the broken one
 * are valid. */
static enum split_rc csv_split(wb_pos *p, const char *s, size_t n,
			       size_t *nf, char *why, size_t whylen)
{
	wb_buf_reset(&p->scratch);
	wb_buf_reserve(&p->scratch, n + 1);
	size_t i = 0, k = 0;
	for (;;) {
		if (k == p->fields_cap) {
			p->fields_cap = p->fields_cap ? p->fields_cap * 2 : 32;
			p->fields = wb_xrealloc(p->fields,
						p->fields_cap *
							sizeof(*p->fields));
		}
		struct span *fs = &p->fields[k];
		if (i < n && s[i] == '"') {
			size_t start = i++;
			fs->off = (uint32_t)(p->scratch.len | 0x80000000u);
			for (;;) {
				const char *q = memchr(s + i, '"', n - i);
				if (!q)
					return SPLIT_OPEN_QUOTE;
				size_t run = (size_t)(q - (s + i));
				wb_buf_append(&p->scratch, s + i, run);
				i += run + 1;
				if (i < n && s[i] == '"') {
					wb_buf_putc(&p->scratch, '"');
					i++;
					continue;
				}
				break;
			}
			fs->len = (uint32_t)((p->scratch.len |
					      0x80000000u) - fs->off);
			if (i < n && s[i] != ',') {
				snprintf(why, whylen,
					 "bad quoting: text after the closing "
					 "quote of field %zu (column %zu)",
					 k + 1, start + 1);
				*nf = k;
				return SPLIT_BAD;
			}
		} else {
			const char *c = memchr(s + i, ',', n - i);
			size_t end = c ? (size_t)(c - s) : n;
			const char *q = memchr(s + i, '"', end - i);
			if (q) {
				snprintf(why, whylen,
					 "bad quoting: '\"' inside unquoted "
					 "field %zu (column %zu); quote the "
					 "field and double the quote",
					 k + 1, (size_t)(q - s) + 1);
				*nf = k;
				return SPLIT_BAD;
			}
			fs->off = (uint32_t)i;
			fs->len = (uint32_t)(end - i);
			i = end;
		}
		k++;
		if (i >= n)
			break;
		i++; /* the comma */
		if (i == n) {
			/* trailing comma: one more empty field */
			if (k == p->fields_cap) {
				p->fields_cap *= 2;
				p->fields = wb_xrealloc(
					p->fields,
					p->fields_cap * sizeof(*p->fields));
			}
			p->fields[k].off = (uint32_t)i;
			p->fields[k].len = 0;
			k++;
			break;
		}
	}
	*nf = k;
	return SPLIT_OK;
}

static struct field field_at(const wb_pos *p, const char *s, size_t idx)
{
	const struct span *fs = &p->fields[idx];
	if (fs->off & 0x80000000u)
		return (struct field){
			(const char *)p->scratch.data +
				(fs->off & 0x7fffffffu),
			fs->len};
	return (struct field){s + fs->off, fs->len};
}

static void csv_header(wb_pos *p, const char *s, size_t nf, long line)
{
	int unknown = 0;
	char first_unknown[64] = "";
	for (size_t i = 0; i < nf; i++) {
		struct field f = field_at(p, s, i);
		/* a UTF-8 byte order mark before the first name */
		if (i == 0 && f.n >= 3 && memcmp(f.p, "\xef\xbb\xbf", 3) == 0) {
			f.p += 3;
			f.n -= 3;
		}
		int c = -1;
		for (int j = 0; j < C_COUNT; j++)
			if (strlen(col_names[j]) == f.n &&
			    memcmp(col_names[j], f.p, f.n) == 0)
				c = j;
		if (c < 0) {
			if (!unknown++)
				snprintf(first_unknown, sizeof(first_unknown),
					 "%.*s", (int)(f.n > 40 ? 40 : f.n),
					 f.p);
			continue;
		}
		if (p->col_of[c] >= 0) {
			p->counts.header_error = true;
			reject(p, line, "header: column %s appears twice",
			       col_names[c]);
			return;
		}
		p->col_of[c] = (int)i;
	}
	for (int j = 0; j < C_COUNT; j++)
		if (col_required[j] && p->col_of[j] < 0) {
			p->counts.header_error = true;
			reject(p, line,
			       "header: required column %s missing (the first "
			       "line must name the columns; see README "
			       "\"POS exports\")",
			       col_names[j]);
			return;
		}
	if (unknown)
		wb_log(WB_LOG_WARN, "pos_unknown_columns",
		       "line=%ld count=%d first=%s hint=\"ignored\"", line,
		       unknown, wb_log_q(first_unknown));
	p->ncols = nf;
	p->have_header = true;
}

static wb_err csv_record(wb_pos *p, const char *s, size_t n, long line,
			 int64_t now_ms)
{
	char why[300];
	size_t nf = 0;
	enum split_rc sr = csv_split(p, s, n, &nf, why, sizeof(why));
	if (sr == SPLIT_BAD) {
		if (!p->have_header) {
			p->counts.header_error = true;
			reject(p, line, "header: %s", why);
			return WB_OK;
		}
		/* the fields before the broken one are sound: when they hold
		 * the receipt's key, only that receipt is affected */
		int cs = p->col_of[C_STORE], cr = p->col_of[C_RECEIPT];
		if ((size_t)cs < nf && (size_t)cr < nf) {
			struct field st = field_at(p, s, (size_t)cs);
			struct field no = field_at(p, s, (size_t)cr);
			if (key_ok(st.p, st.n, false) && key_ok(no.p, no.n, true))
				return reject_placed(p, st, no, line, why,
						     now_ms);
		}
		unreadable(p, line, why);
		return WB_OK;
	}
	if (!p->have_header) {
		csv_header(p, s, nf, line);
		return WB_OK;
	}
	if (nf != p->ncols) {
		snprintf(why, sizeof(why),
			 "wrong column count: %zu fields, the header has %zu",
			 nf, p->ncols);
		unreadable(p, line, why);
		return WB_OK;
	}
	struct field f[C_COUNT];
	for (int j = 0; j < C_COUNT; j++)
		f[j] = p->col_of[j] >= 0 ? field_at(p, s, (size_t)p->col_of[j])
					 : (struct field){"", 0};
	return add_row(p, f, line, now_ms);
}

/* ---- NDJSON ------------------------------------------------------------ */

static wb_err ndjson_record(wb_pos *p, const char *s, size_t n, long line,
			    int64_t now_ms)
{
	json_error_t jerr;
	json_t *o = json_loadb(s, n, JSON_REJECT_DUPLICATES, &jerr);
	char why[300];
	if (!o || !json_is_object(o)) {
		if (o)
			snprintf(why, sizeof(why), "not a JSON object");
		else
			snprintf(why, sizeof(why),
				 "invalid JSON at column %d: %s", jerr.column,
				 jerr.text);
		json_decref(o);
		unreadable(p, line, why);
		return WB_OK;
	}
	struct field f[C_COUNT];
	char nums[C_COUNT][24];
	bool bad = false;
	for (int j = 0; j < C_COUNT; j++) {
		json_t *v = json_object_get(o, col_names[j]);
		f[j] = (struct field){"", 0};
		if (!v || json_is_null(v))
			continue;
		if (json_is_string(v)) {
			f[j].p = json_string_value(v);
			f[j].n = json_string_length(v);
		} else if (json_is_integer(v)) {
			int len = snprintf(nums[j], sizeof(nums[j]), "%lld",
					   (long long)json_integer_value(v));
			f[j] = (struct field){nums[j], (size_t)len};
		} else if (json_is_boolean(v) && j == C_RESTOCK) {
			f[j] = json_is_true(v) ? (struct field){"true", 4}
					       : (struct field){"false", 5};
		} else if (!bad) {
			bad = true;
			snprintf(why, sizeof(why), "%s: expected a string%s",
				 col_names[j],
				 json_is_real(v)
					 ? " (amounts as decimal strings such "
					   "as \"12.50\": JSON numbers lose "
					   "precision)"
					 : " or an integer");
		}
	}
	wb_err rc = WB_OK;
	if (!bad) {
		for (int j = 0; j < C_COUNT; j++)
			if (col_required[j] && f[j].n == 0) {
				bad = true;
				snprintf(why, sizeof(why), "%s: missing",
					 col_names[j]);
				break;
			}
	}
	if (bad) {
		/* the receipt is known when its key fields are */
		if (key_ok(f[C_STORE].p, f[C_STORE].n, false) &&
		    key_ok(f[C_RECEIPT].p, f[C_RECEIPT].n, true)) {
			rc = reject_placed(p, f[C_STORE], f[C_RECEIPT], line,
					   why, now_ms);
		} else {
			unreadable(p, line, why);
		}
		goto out;
	}
	rc = add_row(p, f, line, now_ms);
out:
	json_decref(o);
	return rc;
}

/* ---- feeding ----------------------------------------------------------- */

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

wb_err wb_pos_feed(wb_pos *p, const char *line, size_t len, long lineno,
		   int64_t now_ms)
{
	if (p->counts.header_error)
		return WB_OK;
	if (p->fmt == WB_POS_NDJSON) {
		if (blank(line, len))
			return WB_OK;
		return ndjson_record(p, line, len, lineno, now_ms);
	}
	const char *s = line;
	size_t n = len;
	long first = lineno;
	if (p->pending.len) {
		/* a quoted field goes on: the newline is part of it */
		if (p->pending.len + 1 + len > p->max_record) {
			wb_buf_reset(&p->pending);
			unreadable(p, p->pending_line,
				   "record longer than ingest.max.line.bytes "
				   "(an unterminated quoted field?)");
			return WB_OK;
		}
		wb_buf_putc(&p->pending, '\n');
		wb_buf_append(&p->pending, line, len);
		s = (const char *)p->pending.data;
		n = p->pending.len;
		first = p->pending_line;
	} else if (blank(line, len)) {
		return WB_OK;
	}
	char why[64];
	size_t nf;
	/* Cheap test first: an even number of quotes cannot leave one open
	 * (csv_split checks the rest). */
	size_t quotes = 0;
	for (const char *q = s; (q = memchr(q, '"', n - (size_t)(q - s)));
	     q++)
		quotes++;
	if ((quotes & 1) &&
	    csv_split(p, s, n, &nf, why, sizeof(why)) == SPLIT_OPEN_QUOTE) {
		if (!p->pending.len) {
			wb_buf_append(&p->pending, line, len);
			p->pending_line = lineno;
		}
		return WB_OK;
	}
	wb_err rc = csv_record(p, s, n, first, now_ms);
	wb_buf_reset(&p->pending);
	return rc;
}

void wb_pos_skip(wb_pos *p, long lineno, const char *why)
{
	if (p->pending.len) {
		/* the line was part of a quoted field going on */
		wb_buf_reset(&p->pending);
		lineno = p->pending_line;
	}
	unreadable(p, lineno, why);
}

wb_err wb_pos_finish(wb_pos *p, int64_t now_ms)
{
	if (p->pending.len) {
		wb_buf_reset(&p->pending);
		unreadable(p, p->pending_line,
			   "bad quoting: quoted field not closed before the "
			   "end of input");
	}
	if (!p->have_header && !p->counts.header_error &&
	    p->fmt == WB_POS_CSV) {
		p->counts.header_error = true;
		reject(p, 1, "header: empty input (the first line must name "
			     "the columns)");
	}
	return close_receipt(p, now_ms);
}
