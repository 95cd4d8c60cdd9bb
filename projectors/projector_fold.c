/*
 * projector_fold.c — the fold: one ledger entry + an order's view -> the
 * new view, and the presentation of a view (derived customer_status and
 * eligibility with reasons). Pure functions: no I/O, no clock (the caller
 * passes now_ms), so `waybill as-of` and the projector compute exactly the
 * same answers.
 *
 * The stored view keeps facts; everything derived (fulfillment status,
 * refunded totals, customer_status, eligibility, pending actions) is
 * computed at presentation, so a rule change never needs a rebuild.
 *
 * Ordering rule (design §6): every facet remembers the channel source_time
 * that last moved it (the view's private "_t" object, and updated_at of
 * shipments, returns and actions). An event older than its facet changes
 * nothing but the timeline and the version: a late in_transit after
 * delivered stays delivered. Equal times apply in ledger order. Some facts
 * are monotone whatever their time: a cancellation is terminal, refunds
 * and fulfillments accumulate (by id), an action's outcome
 * (succeeded/failed/rejected) is never replaced by "requested".
 *
 * Merchant rule: a view belongs to the merchant of its first entry. A
 * later entry of the same order id naming another merchant (ledgers
 * written before the ledger refused them may hold such entries) changes
 * nothing, not even the version; wb_fold_info.foreign says so, and the
 * store logs it, counts it and keeps it out of the timeline.
 *
 * Representation (projector_internal.h): an entry is decoded from its Avro
 * (or JSON) into a flat node tree where every node knows the compact JSON
 * text it renders to; a view is a struct whose fields are strings,
 * integers or the JSON text of payload values copied as they came, plus
 * the parsed facts the rules read (line keys and quantities, money). The
 * view's JSON (stored form and presentation) is written from the struct,
 * key for key as the jansson implementation this replaced wrote it; its
 * stored record is binary, merchant first. The jansson functions of
 * wb_projector.h convert at their edges, so tests and `waybill as-of` run
 * exactly this code.
 */
#include "projector_internal.h"
#include "wb_avro_internal.h"
#include "wb_schema.h"

#include <assert.h>
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- output ------------------------------------------------------------ */

static inline void out_c(wb_buf *b, char c)
{
	if (b->len == b->cap)
		wb_buf_reserve(b, 1);
	b->data[b->len++] = (uint8_t)c;
}

static inline void out_n(wb_buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap)
		wb_buf_reserve(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

#define OUT(b, lit) out_n((b), lit, sizeof(lit) - 1)

/* ---- arenas -------------------------------------------------------------- */

struct wb_arena_chunk {
	struct wb_arena_chunk *next;
	size_t cap;
	max_align_t data[];
};

#define ARENA_CHUNK 8192

void *wb_arena_alloc(struct wb_arena *a, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	if (n > a->left) {
		size_t min = a->chunk ? a->chunk : ARENA_CHUNK;
		size_t cap = n > min ? n : min;
		struct wb_arena_chunk *c = wb_xmalloc(sizeof(*c) + cap);
		c->cap = cap;
		/* the first chunk stays last in the list: reset keeps it */
		if (a->chunks) {
			c->next = a->chunks->next;
			a->chunks->next = c;
		} else {
			c->next = NULL;
			a->chunks = c;
		}
		a->p = (char *)c->data;
		a->left = cap;
	}
	void *r = a->p;
	a->p += n;
	a->left -= n;
	return r;
}

void wb_arena_reset(struct wb_arena *a)
{
	if (!a->chunks)
		return;
	struct wb_arena_chunk *c = a->chunks->next;
	while (c) {
		struct wb_arena_chunk *n = c->next;
		free(c);
		c = n;
	}
	a->chunks->next = NULL;
	a->p = (char *)a->chunks->data;
	a->left = a->chunks->cap;
}

void wb_arena_finish(struct wb_arena *a)
{
	wb_arena_reset(a);
	free(a->chunks);
	*a = (struct wb_arena){.chunk = a->chunk};
}

static char *arena_dup(struct wb_arena *a, const char *p, size_t n)
{
	char *d = wb_arena_alloc(a, n + 1);
	memcpy(d, p, n);
	d[n] = 0;
	return d;
}

/* ---- values -------------------------------------------------------------- */

/* A JSON value of a view: raw bytes of a string, JSON text of anything
 * else that is not a scalar. ABSENT = the key is not there at all. */
enum { V_ABSENT = 0, V_NULL, V_FALSE, V_TRUE, V_INT, V_STR, V_JSON };

struct val {
	const char *p;
	uint32_t n;
	uint8_t t;
	int64_t i;
};

static const struct val VNULL = {NULL, 0, V_NULL, 0};

static struct val vint(int64_t i)
{
	return (struct val){NULL, 0, V_INT, i};
}

/* A string with static storage (or storage that outlives the view). */
static struct val vlit(const char *s)
{
	return (struct val){s, (uint32_t)strlen(s), V_STR, 0};
}

static bool v_null(const struct val *v)
{
	return v->t == V_NULL || v->t == V_ABSENT;
}

static bool v_is(const struct val *v, const char *s)
{
	size_t n = strlen(s);
	return v->t == V_STR && v->n == n && memcmp(v->p, s, n) == 0;
}

static bool v_eq(const struct val *v, const char *s, size_t n)
{
	return v->t == V_STR && v->n == n && memcmp(v->p, s, n) == 0;
}

/* jint(): the integer, or def */
static int64_t v_int(const struct val *v, int64_t def)
{
	return v->t == V_INT ? v->i : def;
}

static void put_val(wb_buf *b, const struct val *v)
{
	switch (v->t) {
	case V_FALSE:
		OUT(b, "false");
		break;
	case V_TRUE:
		OUT(b, "true");
		break;
	case V_INT:
		wb_json_put_int(b, v->i);
		break;
	case V_STR:
		wb_json_put_str(b, v->p, v->n);
		break;
	case V_JSON:
		out_n(b, v->p, v->n);
		break;
	default:
		OUT(b, "null");
	}
}

/* ---- entries as node trees ----------------------------------------------- */

enum { J_NULL = V_NULL, J_FALSE = V_FALSE, J_TRUE = V_TRUE, J_INT = V_INT,
       J_STR = V_STR, J_OBJ = 10, J_ARR, J_REAL };

struct jn {
	const char *key; /* in its object; NUL-terminated */
	const char *s;   /* J_STR: raw bytes (not NUL-terminated) */
	int64_t i;
	uint32_t sn;
	uint32_t off, len; /* compact JSON text in ev->text */
	int32_t first, last, next;
	uint32_t n; /* children */
	uint8_t t;
};

struct wb_event {
	struct jn *nodes;
	size_t nn, cap;
	wb_buf text;
	int32_t root;
};

struct wb_event *wb_event_new(void)
{
	struct wb_event *ev = wb_xcalloc(1, sizeof(*ev));
	wb_buf_init(&ev->text);
	return ev;
}

void wb_event_free(struct wb_event *ev)
{
	if (!ev)
		return;
	free(ev->nodes);
	wb_buf_finish(&ev->text);
	free(ev);
}

static void ev_reset(struct wb_event *ev)
{
	ev->nn = 0;
	wb_buf_reset(&ev->text);
	ev->root = -1;
}

static int32_t node_new(struct wb_event *ev, uint8_t t, const char *key)
{
	if (ev->nn == ev->cap) {
		ev->cap = ev->cap ? 2 * ev->cap : 64;
		ev->nodes = wb_xrealloc(ev->nodes, ev->cap * sizeof(*ev->nodes));
	}
	int32_t i = (int32_t)ev->nn++;
	ev->nodes[i] = (struct jn){.key = key, .t = t, .first = -1,
				   .last = -1, .next = -1,
				   .off = (uint32_t)ev->text.len};
	return i;
}

static void node_link(struct wb_event *ev, int32_t parent, int32_t child)
{
	struct jn *p = &ev->nodes[parent];
	if (p->last >= 0)
		ev->nodes[p->last].next = child;
	else
		p->first = child;
	p->last = child;
	p->n++;
}

static void node_end(struct wb_event *ev, int32_t i)
{
	ev->nodes[i].len = (uint32_t)ev->text.len - ev->nodes[i].off;
}

static const struct jn *N(const struct wb_event *ev, int32_t i)
{
	return i >= 0 ? &ev->nodes[i] : NULL;
}

/* The member k of object node o, or NULL (json_object_get). */
static const struct jn *child(const struct wb_event *ev, const struct jn *o,
			      const char *k)
{
	if (!o || o->t != J_OBJ)
		return NULL;
	for (int32_t c = o->first; c >= 0; c = ev->nodes[c].next) {
		const char *ck = ev->nodes[c].key;
		if (ck[0] == k[0] && strcmp(ck, k) == 0)
			return &ev->nodes[c];
	}
	return NULL;
}

/* The i-th element of array node a, or NULL (json_array_get). */
static const struct jn *elem(const struct wb_event *ev, const struct jn *a,
			     size_t i)
{
	if (!a || a->t != J_ARR)
		return NULL;
	int32_t c = a->first;
	for (; c >= 0 && i; i--)
		c = ev->nodes[c].next;
	return N(ev, c);
}

static size_t arr_size(const struct jn *a)
{
	return a && a->t == J_ARR ? a->n : 0;
}

static bool n_null(const struct jn *n)
{
	return !n || n->t == J_NULL;
}

static bool n_is(const struct jn *n, const char *s)
{
	size_t l = strlen(s);
	return n && n->t == J_STR && n->sn == l && memcmp(n->s, s, l) == 0;
}

static int64_t n_int(const struct jn *n, int64_t def)
{
	return n && n->t == J_INT ? n->i : def;
}

static const char *ev_text(const struct wb_event *ev, const struct jn *n)
{
	return (const char *)ev->text.data + n->off;
}

/* -- from Avro -- */

struct avdec {
	struct wb_event *ev;
	struct wb_avro_reader r;
	char *msg;
	size_t msglen;
};

static wb_err av_fail(struct avdec *d, const char *what)
{
	return wb_fail(d->msg, d->msglen, WB_EPARSE, "OrderEvent: %s", what);
}

static wb_err av_value(struct avdec *d, const struct wb_avro_node *n,
		       const char *key, int32_t parent);

static wb_err av_fields(struct avdec *d, const struct wb_avro_node *n,
			int32_t obj, bool comma)
{
	for (size_t i = 0; i < n->n; i++) {
		/* Avro names are [A-Za-z_][A-Za-z0-9_]*: nothing to escape */
		size_t kl = strlen(n->names[i]);
		wb_buf *t = &d->ev->text;
		if (t->len + kl + 4 > t->cap)
			wb_buf_reserve(t, kl + 4);
		if (comma || i)
			t->data[t->len++] = ',';
		t->data[t->len++] = '"';
		memcpy(t->data + t->len, n->names[i], kl);
		t->len += kl;
		t->data[t->len++] = '"';
		t->data[t->len++] = ':';
		wb_err rc = av_value(d, n->sub[i], n->names[i], obj);
		if (rc)
			return rc;
	}
	return WB_OK;
}

static wb_err av_value(struct avdec *d, const struct wb_avro_node *n,
		       const char *key, int32_t parent)
{
	struct wb_event *ev = d->ev;
	struct wb_avro_reader *r = &d->r;
	int64_t v;
	int32_t me;
	switch (n->kind) {
	case WB_K_UNION:
		if (!wb_avro_get_long(r, &v) || v < 0 || (uint64_t)v >= n->n)
			return av_fail(d, "bad union branch");
		return av_value(d, n->sub[v], key, parent);
	case WB_K_NULL:
		me = node_new(ev, J_NULL, key);
		OUT(&ev->text, "null");
		break;
	case WB_K_BOOLEAN:
		if (r->p >= r->end || *r->p > 1)
			return av_fail(d, "bad boolean");
		me = node_new(ev, *r->p ? J_TRUE : J_FALSE, key);
		if (*r->p++)
			OUT(&ev->text, "true");
		else
			OUT(&ev->text, "false");
		break;
	case WB_K_INT:
	case WB_K_LONG:
		if (!wb_avro_get_long(r, &v) ||
		    (n->kind == WB_K_INT && (v < INT32_MIN || v > INT32_MAX)))
			return av_fail(d, "bad integer");
		me = node_new(ev, J_INT, key);
		ev->nodes[me].i = v;
		wb_json_put_int(&ev->text, v);
		break;
	case WB_K_FLOAT:
	case WB_K_DOUBLE: {
		size_t w = n->kind == WB_K_FLOAT ? 4 : 8;
		if ((size_t)(r->end - r->p) < w)
			return av_fail(d, "truncated");
		double x;
		if (w == 4) {
			float f;
			memcpy(&f, r->p, 4);
			x = f;
		} else {
			memcpy(&x, r->p, 8);
		}
		r->p += w;
		if (!isfinite(x))
			return av_fail(d, "non-finite number");
		me = node_new(ev, J_REAL, key);
		char tmp[40];
		int k = snprintf(tmp, sizeof(tmp), "%.17g", x);
		out_n(&ev->text, tmp, (size_t)k);
		if (!strpbrk(tmp, ".eEni"))
			OUT(&ev->text, ".0");
		break;
	}
	case WB_K_STRING: {
		const uint8_t *p;
		size_t len;
		if (!wb_avro_get_bytes(r, &p, &len) || len > UINT32_MAX)
			return av_fail(d, "truncated string");
		if (!wb_utf8_valid(p, len) || memchr(p, 0, len))
			return av_fail(d, "string is not valid UTF-8 "
					  "without NUL");
		me = node_new(ev, J_STR, key);
		ev->nodes[me].s = (const char *)p;
		ev->nodes[me].sn = (uint32_t)len;
		wb_json_put_str(&ev->text, (const char *)p, len);
		break;
	}
	case WB_K_ENUM:
		if (!wb_avro_get_long(r, &v) || v < 0 || (uint64_t)v >= n->n)
			return av_fail(d, "bad enum index");
		me = node_new(ev, J_STR, key);
		ev->nodes[me].s = n->names[v];
		ev->nodes[me].sn = (uint32_t)strlen(n->names[v]);
		wb_json_put_str(&ev->text, n->names[v], ev->nodes[me].sn);
		break;
	case WB_K_RECORD: {
		me = node_new(ev, J_OBJ, key);
		out_c(&ev->text, '{');
		wb_err rc = av_fields(d, n, me, false);
		if (rc)
			return rc;
		out_c(&ev->text, '}');
		break;
	}
	case WB_K_ARRAY: {
		me = node_new(ev, J_ARR, key);
		out_c(&ev->text, '[');
		size_t idx = 0;
		for (;;) {
			int64_t cnt;
			if (!wb_avro_get_long(r, &cnt))
				return av_fail(d, "truncated array");
			if (cnt == 0)
				break;
			if (cnt < 0) {
				int64_t bytes;
				if (cnt == INT64_MIN ||
				    !wb_avro_get_long(r, &bytes) || bytes < 0)
					return av_fail(d, "bad array block");
				cnt = -cnt;
			}
			size_t left = (size_t)(r->end - r->p);
			size_t cap = n->items->min_size
					     ? left / n->items->min_size
					     : (1u << 20);
			if ((uint64_t)cnt > cap)
				return av_fail(d, "array block too long");
			for (int64_t k = 0; k < cnt; k++, idx++) {
				if (idx)
					out_c(&ev->text, ',');
				wb_err rc = av_value(d, n->items, NULL, me);
				if (rc)
					return rc;
			}
		}
		out_c(&ev->text, ']');
		break;
	}
	default:
		/* bytes, fixed and maps are not in OrderEvent */
		return av_fail(d, "a type the projector does not read");
	}
	node_end(ev, me);
	if (parent >= 0)
		node_link(ev, parent, me);
	return WB_OK;
}

static void ev_int_member(struct wb_event *ev, int32_t obj, const char *k,
			  int64_t v)
{
	int32_t me = node_new(ev, J_INT, k);
	ev->nodes[me].i = v;
	wb_json_put_int(&ev->text, v);
	node_end(ev, me);
	node_link(ev, obj, me);
}

wb_err wb_event_from_entry(struct wb_event *ev, const struct wb_entry *e,
			   char *msg, size_t msglen)
{
	ev_reset(ev);
	ev->root = node_new(ev, J_OBJ, NULL);
	ev_int_member(ev, ev->root, "partition", e->partition);
	ev_int_member(ev, ev->root, "seq", e->seq);
	ev_int_member(ev, ev->root, "version", e->version);
	ev_int_member(ev, ev->root, "recorded_at", e->recorded_at);
	struct avdec d = {ev, {e->event, e->event + e->event_len, true}, msg,
			  msglen};
	const struct wb_avro_node *root = wb_avro_root(WB_SCHEMA_ORDER_EVENT);
	wb_err rc = av_fields(&d, root, ev->root, true);
	if (!rc && d.r.p != d.r.end)
		rc = av_fail(&d, "trailing bytes");
	if (rc)
		ev_reset(ev);
	return rc;
}

/* -- from jansson (what wb_json_write writes, with spans) -- */

static void js_value(struct wb_event *ev, json_t *j, const char *key,
		     int32_t parent)
{
	int32_t me;
	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		me = node_new(ev, J_OBJ, key);
		out_c(&ev->text, '{');
		const char *k;
		json_t *x;
		bool first = true;
		json_object_foreach(j, k, x) {
			if (!first)
				out_c(&ev->text, ',');
			first = false;
			wb_json_put_str(&ev->text, k, strlen(k));
			out_c(&ev->text, ':');
			js_value(ev, x, k, me);
		}
		out_c(&ev->text, '}');
		break;
	}
	case JSON_ARRAY: {
		me = node_new(ev, J_ARR, key);
		out_c(&ev->text, '[');
		size_t i;
		json_t *x;
		json_array_foreach(j, i, x) {
			if (i)
				out_c(&ev->text, ',');
			js_value(ev, x, NULL, me);
		}
		out_c(&ev->text, ']');
		break;
	}
	case JSON_STRING:
		me = node_new(ev, J_STR, key);
		ev->nodes[me].s = json_string_value(j);
		ev->nodes[me].sn = (uint32_t)json_string_length(j);
		wb_json_put_str(&ev->text, json_string_value(j),
				json_string_length(j));
		break;
	case JSON_INTEGER:
		me = node_new(ev, J_INT, key);
		ev->nodes[me].i = json_integer_value(j);
		wb_json_put_int(&ev->text, json_integer_value(j));
		break;
	case JSON_REAL:
		me = node_new(ev, J_REAL, key);
		wb_json_write(&ev->text, j);
		break;
	case JSON_TRUE:
		me = node_new(ev, J_TRUE, key);
		OUT(&ev->text, "true");
		break;
	case JSON_FALSE:
		me = node_new(ev, J_FALSE, key);
		OUT(&ev->text, "false");
		break;
	default:
		me = node_new(ev, J_NULL, key);
		OUT(&ev->text, "null");
	}
	node_end(ev, me);
	if (parent >= 0)
		node_link(ev, parent, me);
}

void wb_event_from_json(struct wb_event *ev, json_t *entry)
{
	ev_reset(ev);
	js_value(ev, entry, NULL, -1);
	ev->root = 0;
}

const char *wb_event_str(const struct wb_event *ev, const char *key,
			 size_t *n)
{
	const struct jn *x = child(ev, N(ev, ev->root), key);
	if (!x || x->t != J_STR)
		return NULL;
	if (n)
		*n = x->sn;
	return x->s;
}

int64_t wb_event_int(const struct wb_event *ev, const char *key, int64_t def)
{
	return n_int(child(ev, N(ev, ev->root), key), def);
}

/* ---- the view ------------------------------------------------------------ */

/* An element of a list of line items (LineItem or ItemQuantity): its key
 * (line_id, else sku), quantity and, for the view's own lines, where its
 * text sits inside the list's text. */
struct item {
	const char *key;
	uint32_t kn;
	bool has_key, obj;
	int64_t qty;
	uint32_t off, len;
};

struct items {
	bool arr; /* the value is an array */
	uint32_t n;
	struct item *v;
};

/* What the rules read of a Money value. */
struct money {
	bool obj, has_cur;
	int64_t amount; /* 0 unless an integer */
	const char *cur;
	uint32_t curn;
};

struct ful {
	struct val id, created_at, lines, carrier, tracking_numbers;
	struct items items;
};

struct ship {
	struct val tracking_number, fulfillment_id, carrier, tracking_url,
		status, last_event, estimated_delivery, delivered_at,
		updated_at;
};

struct refund {
	struct val id, amount, lines, restock, reason, issued_at;
	struct money money;
	struct items items;
};

enum { AT_REQUESTED, AT_APPROVED, AT_DECLINED, AT_RECEIVED, AT_CLOSED, AT_N };
static const char *const return_steps[AT_N] = {
	"requested", "approved", "declined", "received", "closed"};

struct ret {
	struct val id, status, lines, reason, decline_reason, at[AT_N],
		updated_at;
	uint32_t nlines;
};

struct action {
	struct val id, kind, status, parameters, requester, idempotency_key,
		reason, channel_ref, requested_at, updated_at, attempts;
};

enum facet {
	F_NAME, F_EMAIL, F_PHONE, F_NOTE, F_LINES, F_TOTALS, F_ADDRESS,
	F_PLACED, F_ORDER, F_PAYMENT, F_FULFILLMENT, F_SNAPSHOT, F_COUNT
};
static const char *const facet_names[F_COUNT] = {
	"name", "email", "phone", "note", "lines", "totals", "address",
	"placed", "order", "payment", "fulfillment", "snapshot"};

#define ARRAY(T, name) \
	struct T *name;  \
	uint32_t n_##name, cap_##name

struct wb_order {
	bool exists;
	struct val order_id, merchant, channel, channel_order_id, name, email,
		phone, note, currency, placed_at, totals, shipping_address,
		snapshot, lines;
	struct items line_items;
	struct money total;  /* totals.total */
	struct val snap_fstatus; /* snapshot.fulfillment_status */
	struct val o_status, cancel_reason, cancel_note, cancelled_at,
		o_updated_at;
	struct val p_status, amount_paid, p_updated_at;
	ARRAY(ful, fuls);
	ARRAY(ship, ships);
	ARRAY(refund, refunds);
	ARRAY(ret, rets);
	ARRAY(action, actions);
	uint8_t nt, tord[F_COUNT];
	bool tset[F_COUNT];
	int64_t tv[F_COUNT];
	struct val version, partition, seq, recorded_at, updated_at;
	/* memory */
	struct wb_arena mem; /* what a load decoded */
	uint8_t *rec;        /* owned record, or NULL */
};

struct wb_order *wb_order_new(void)
{
	struct wb_order *o = wb_xcalloc(1, sizeof(struct wb_order));
	o->mem.chunk = 1024; /* what a load decodes of a typical view */
	return o;
}

static void order_clear(struct wb_order *o)
{
	struct wb_arena mem = o->mem;
	free(o->rec);
	memset(o, 0, sizeof(*o));
	wb_arena_reset(&mem);
	o->mem = mem;
}

void wb_order_free(struct wb_order *o)
{
	if (!o)
		return;
	free(o->rec);
	wb_arena_finish(&o->mem);
	free(o);
}

bool wb_order_exists(const struct wb_order *o)
{
	return o->exists;
}

int64_t wb_order_version(const struct wb_order *o)
{
	return v_int(&o->version, 0);
}

const char *wb_order_merchant(const struct wb_order *o, size_t *n)
{
	*n = o->merchant.n;
	return o->merchant.t == V_STR ? o->merchant.p : NULL;
}

const char *wb_order_id(const struct wb_order *o, size_t *n)
{
	*n = o->order_id.n;
	return o->order_id.t == V_STR ? o->order_id.p : NULL;
}

/* ---- the fields of each object, in the order its JSON lists them ----
 * One table per object drives its JSON, its stored record and its
 * conversion from a jansson view. */

struct fdesc {
	const char *key;
	uint8_t klen;
	bool optional; /* ABSENT: the key is left out */
	uint16_t off;
};

#define FD(T, k, m) {k, sizeof(k) - 1, false, (uint16_t)offsetof(struct T, m)}
#define FDO(T, k, m) {k, sizeof(k) - 1, true, (uint16_t)offsetof(struct T, m)}
#define NF(t) (sizeof(t) / sizeof((t)[0]))

static const struct fdesc head_fd[] = {
	FD(wb_order, "order_id", order_id),
	FD(wb_order, "merchant", merchant),
	FD(wb_order, "channel", channel),
	FD(wb_order, "channel_order_id", channel_order_id),
	FD(wb_order, "name", name),
	FD(wb_order, "email", email),
	FD(wb_order, "phone", phone),
	FD(wb_order, "note", note),
	FD(wb_order, "currency", currency),
	FD(wb_order, "placed_at", placed_at),
	FD(wb_order, "totals", totals),
	FD(wb_order, "shipping_address", shipping_address),
	FD(wb_order, "snapshot", snapshot),
};
static const struct fdesc order_fd[] = {
	FD(wb_order, "status", o_status),
	FD(wb_order, "cancel_reason", cancel_reason),
	FD(wb_order, "cancel_note", cancel_note),
	FD(wb_order, "cancelled_at", cancelled_at),
	FD(wb_order, "updated_at", o_updated_at),
};
static const struct fdesc payment_fd[] = {
	FD(wb_order, "status", p_status),
	FD(wb_order, "amount_paid", amount_paid),
	FD(wb_order, "updated_at", p_updated_at),
};
static const struct fdesc tail_fd[] = {
	FDO(wb_order, "version", version),
	FDO(wb_order, "partition", partition),
	FDO(wb_order, "seq", seq),
	FDO(wb_order, "recorded_at", recorded_at),
	FDO(wb_order, "updated_at", updated_at),
};
static const struct fdesc ful_fd[] = {
	FD(ful, "fulfillment_id", id),
	FD(ful, "created_at", created_at),
	FD(ful, "lines", lines),
	FD(ful, "carrier", carrier),
	FD(ful, "tracking_numbers", tracking_numbers),
};
static const struct fdesc ship_fd[] = {
	FD(ship, "tracking_number", tracking_number),
	FD(ship, "fulfillment_id", fulfillment_id),
	FD(ship, "carrier", carrier),
	FD(ship, "tracking_url", tracking_url),
	FD(ship, "status", status),
	FD(ship, "last_event", last_event),
	FD(ship, "estimated_delivery", estimated_delivery),
	FD(ship, "delivered_at", delivered_at),
	FD(ship, "updated_at", updated_at),
};
static const struct fdesc refund_fd[] = {
	FD(refund, "refund_id", id),
	FD(refund, "amount", amount),
	FD(refund, "lines", lines),
	FD(refund, "restock", restock),
	FD(refund, "reason", reason),
	FD(refund, "issued_at", issued_at),
};
static const struct fdesc ret_fd[] = {
	FD(ret, "return_id", id),
	FD(ret, "status", status),
	FD(ret, "lines", lines),
	FD(ret, "reason", reason),
	FD(ret, "decline_reason", decline_reason),
	FD(ret, "requested_at", at[AT_REQUESTED]),
	FD(ret, "approved_at", at[AT_APPROVED]),
	FD(ret, "declined_at", at[AT_DECLINED]),
	FD(ret, "received_at", at[AT_RECEIVED]),
	FD(ret, "closed_at", at[AT_CLOSED]),
	FD(ret, "updated_at", updated_at),
};
static const struct fdesc action_fd[] = {
	FD(action, "action_id", id),
	FD(action, "kind", kind),
	FD(action, "status", status),
	FD(action, "parameters", parameters),
	FD(action, "requester", requester),
	FD(action, "idempotency_key", idempotency_key),
	FD(action, "reason", reason),
	FD(action, "channel_ref", channel_ref),
	FD(action, "requested_at", requested_at),
	FD(action, "updated_at", updated_at),
	FDO(action, "attempts", attempts),
};

static struct val *fval(void *base, const struct fdesc *f)
{
	return (struct val *)((char *)base + f->off);
}

static const struct val *fcval(const void *base, const struct fdesc *f)
{
	return (const struct val *)((const char *)base + f->off);
}

/* Appends an element to one of the view's arrays (growing it in a). */
#define PUSH(o, name, a)                                                     \
	(((o)->n_##name == (o)->cap_##name                                   \
		  ? (void)((o)->name = grow((a), (o)->name, (o)->n_##name,    \
					    &(o)->cap_##name,               \
					    sizeof(*(o)->name)))             \
		  : (void)0),                                                \
	 &(o)->name[(o)->n_##name++])

static void *grow(struct wb_arena *a, void *old, uint32_t n, uint32_t *cap,
		  size_t size)
{
	*cap = *cap ? 2 * *cap : 4;
	void *p = wb_arena_alloc(a, *cap * size);
	if (n)
		memcpy(p, old, n * size);
	return p;
}

/* ---- folding ------------------------------------------------------------- */

struct fold {
	struct wb_order *o;
	const struct wb_event *ev;
	const struct jn *root, *p; /* entry, payload */
	struct wb_arena *a;
	int64_t t;    /* the event's source_time */
	bool applied; /* some facet moved */
};

static const struct jn *P(const struct fold *c, const char *k)
{
	return child(c->ev, c->p, k);
}

/* The value of node x (NULL: JSON null), copied into the arena. */
static struct val vnode(const struct fold *c, const struct jn *x)
{
	if (!x)
		return VNULL;
	switch (x->t) {
	case J_NULL:
	case J_FALSE:
	case J_TRUE:
		return (struct val){NULL, 0, x->t, 0};
	case J_INT:
		return vint(x->i);
	case J_STR:
		return (struct val){arena_dup(c->a, x->s, x->sn), x->sn, V_STR,
				    0};
	default:
		return (struct val){arena_dup(c->a, ev_text(c->ev, x), x->len),
				    x->len, V_JSON, 0};
	}
}

static struct val vstrn(struct wb_arena *a, const char *s, size_t n)
{
	return (struct val){arena_dup(a, s, n), (uint32_t)n, V_STR, 0};
}

static void items_of(const struct fold *c, const struct jn *x,
		     struct items *it)
{
	*it = (struct items){0};
	if (!x || x->t != J_ARR)
		return;
	it->arr = true;
	it->n = x->n;
	it->v = it->n ? wb_arena_alloc(c->a, it->n * sizeof(*it->v)) : NULL;
	uint32_t i = 0;
	for (int32_t k = x->first; k >= 0; k = c->ev->nodes[k].next, i++) {
		const struct jn *e = &c->ev->nodes[k];
		struct item *m = &it->v[i];
		*m = (struct item){.obj = e->t == J_OBJ,
				   .off = e->off - x->off, .len = e->len};
		const struct jn *key = child(c->ev, e, "line_id");
		if (!key || key->t != J_STR)
			key = child(c->ev, e, "sku");
		if (key && key->t == J_STR) {
			m->has_key = true;
			m->key = arena_dup(c->a, key->s, key->sn);
			m->kn = key->sn;
		}
		m->qty = n_int(child(c->ev, e, "quantity"), 0);
	}
}

static struct money money_of(const struct fold *c, const struct jn *x)
{
	struct money m = {0};
	if (!x || x->t != J_OBJ)
		return m;
	m.obj = true;
	m.amount = n_int(child(c->ev, x, "amount"), 0);
	const struct jn *cur = child(c->ev, x, "currency");
	if (cur && cur->t == J_STR) {
		m.has_cur = true;
		m.cur = arena_dup(c->a, cur->s, cur->sn);
		m.curn = cur->sn;
	}
	return m;
}

static void set_totals(struct fold *c, const struct jn *x)
{
	c->o->totals = vnode(c, x);
	c->o->total = money_of(c, child(c->ev, x, "total"));
}

static void set_snapshot(struct fold *c, const struct jn *x)
{
	c->o->snapshot = vnode(c, x);
	const struct jn *fs = child(c->ev, x, "fulfillment_status");
	c->o->snap_fstatus = fs && fs->t == J_STR ? vnode(c, fs) : VNULL;
}

static void set_lines(struct fold *c, const struct jn *x)
{
	c->o->lines = vnode(c, x);
	items_of(c, x, &c->o->line_items);
}

/* Facet clock: true (and the facet's time set to t) when an event at
 * source time t may move facet; false when the facet is already newer. */
static bool advance(struct wb_order *o, enum facet f, int64_t t)
{
	if (o->tset[f] && o->tv[f] > t)
		return false;
	if (!o->tset[f]) {
		o->tset[f] = true;
		o->tord[o->nt++] = (uint8_t)f;
	}
	o->tv[f] = t;
	return true;
}

/* Copies payload field k into *dst if it is not null and its facet
 * accepts time t. */
static bool field(struct fold *c, const char *k, struct val *dst,
		  enum facet f)
{
	const struct jn *x = P(c, k);
	if (n_null(x) || !advance(c->o, f, c->t))
		return false;
	if (dst)
		*dst = vnode(c, x);
	c->applied = true;
	return true;
}

static void field_lines(struct fold *c)
{
	if (field(c, "lines", NULL, F_LINES))
		set_lines(c, P(c, "lines"));
}

static void field_totals(struct fold *c)
{
	if (field(c, "totals", NULL, F_TOTALS))
		set_totals(c, P(c, "totals"));
}

static void new_view(struct fold *c)
{
	struct wb_order *o = c->o;
	const struct jn *oid = child(c->ev, c->root, "order_id");
	o->exists = true;
	o->order_id = vnode(c, oid);
	o->merchant = vnode(c, child(c->ev, c->root, "merchant"));
	o->channel = vnode(c, child(c->ev, c->root, "channel"));
	const char *colon = memchr(oid->s, ':', oid->sn);
	o->channel_order_id =
		colon ? vstrn(c->a, colon + 1,
			      oid->sn - (size_t)(colon + 1 - oid->s))
		      : VNULL;
	o->name = o->email = o->phone = o->note = o->currency = VNULL;
	o->placed_at = o->totals = o->shipping_address = o->snapshot = VNULL;
	o->snap_fstatus = VNULL;
	o->lines = (struct val){"[]", 2, V_JSON, 0};
	o->line_items = (struct items){.arr = true};
	o->o_status = o->cancel_reason = o->cancel_note = VNULL;
	o->cancelled_at = o->o_updated_at = VNULL;
	o->p_status = o->amount_paid = o->p_updated_at = VNULL;
}

static void order_open(struct fold *c)
{
	struct wb_order *o = c->o;
	if (v_is(&o->o_status, "cancelled"))
		return; /* terminal */
	if (!advance(o, F_ORDER, c->t))
		return;
	o->o_status = vlit("open");
	o->o_updated_at = vint(c->t);
	c->applied = true;
}

static void order_cancel(struct fold *c, const struct jn *reason,
			 const struct jn *note, int64_t at)
{
	struct wb_order *o = c->o;
	if (v_is(&o->o_status, "cancelled"))
		return; /* the first cancellation stands */
	advance(o, F_ORDER, c->t);
	o->o_status = vlit("cancelled");
	o->cancel_reason = vnode(c, reason);
	o->cancel_note = vnode(c, note);
	o->cancelled_at = vint(at);
	o->o_updated_at = vint(c->t);
	c->applied = true;
}

static void on_placed(struct fold *c)
{
	struct wb_order *o = c->o;
	field(c, "name", &o->name, F_NAME);
	field(c, "email", &o->email, F_EMAIL);
	field(c, "phone", &o->phone, F_PHONE);
	field_lines(c);
	field_totals(c);
	field(c, "shipping_address", &o->shipping_address, F_ADDRESS);
	if (advance(o, F_PLACED, c->t)) {
		o->currency = vnode(c, P(c, "currency"));
		o->placed_at = vnode(c, P(c, "placed_at"));
		c->applied = true;
	}
	order_open(c);
}

static void on_updated(struct fold *c)
{
	struct wb_order *o = c->o;
	field(c, "email", &o->email, F_EMAIL);
	field(c, "phone", &o->phone, F_PHONE);
	field(c, "note", &o->note, F_NOTE);
	field_lines(c);
	field_totals(c);
}

static void on_payment(struct fold *c)
{
	struct wb_order *o = c->o;
	if (!advance(o, F_PAYMENT, c->t))
		return;
	o->p_status = vnode(c, P(c, "status"));
	if (!n_null(P(c, "amount_paid")))
		o->amount_paid = vnode(c, P(c, "amount_paid"));
	o->p_updated_at = vint(c->t);
	c->applied = true;
}

static void on_address(struct fold *c)
{
	field(c, "address", &c->o->shipping_address, F_ADDRESS);
}

static void on_cancelled(struct fold *c)
{
	order_cancel(c, P(c, "reason"), P(c, "note"),
		     n_int(P(c, "cancelled_at"), c->t));
}

/* The shipment of tracking number tn (a string node, else ""), created
 * (no status yet) if new. */
static struct ship *shipment(struct fold *c, const struct jn *tn)
{
	struct wb_order *o = c->o;
	const char *s = tn && tn->t == J_STR ? tn->s : "";
	size_t n = tn && tn->t == J_STR ? tn->sn : 0;
	for (uint32_t i = 0; i < o->n_ships; i++)
		if (v_eq(&o->ships[i].tracking_number, s, n))
			return &o->ships[i];
	struct ship *sh = PUSH(o, ships, c->a);
	*sh = (struct ship){.tracking_number = vstrn(c->a, s, n)};
	sh->fulfillment_id = sh->carrier = sh->tracking_url = sh->status =
		sh->last_event = sh->estimated_delivery = sh->delivered_at =
			sh->updated_at = VNULL;
	c->applied = true;
	return sh;
}

/* Identity fields are filled once, never overwritten by a later event with
 * another opinion. */
static void fill(const struct fold *c, struct val *dst, const struct jn *x)
{
	if (!n_null(x) && v_null(dst))
		*dst = vnode(c, x);
}

static const char *id_of(const struct jn *x, size_t *n)
{
	if (x && x->t == J_STR) {
		*n = x->sn;
		return x->s;
	}
	*n = 0;
	return "";
}

static void on_fulfillment(struct fold *c)
{
	struct wb_order *o = c->o;
	size_t fn;
	const char *fid = id_of(P(c, "fulfillment_id"), &fn);
	struct ful *f = NULL;
	for (uint32_t i = 0; i < o->n_fuls && !f; i++)
		if (v_eq(&o->fuls[i].id, fid, fn))
			f = &o->fuls[i];
	if (!f) {
		f = PUSH(o, fuls, c->a);
		*f = (struct ful){.id = vstrn(c->a, fid, fn),
				  .created_at = vint(c->t)};
	}
	/* A repeated FulfillmentCreated carries new tracking; one that a
	 * reconciliation poll built has no lines (its query does not ask for
	 * them), which must not empty the lines the webhook recorded. */
	const struct jn *lines = P(c, "lines");
	if ((lines && lines->t == J_ARR && lines->n > 0) || f->items.n == 0) {
		f->lines = vnode(c, lines);
		items_of(c, lines, &f->items);
	}
	f->carrier = vnode(c, P(c, "carrier"));
	f->tracking_numbers = vnode(c, P(c, "tracking_numbers"));
	c->applied = true;
	const struct jn *tns = P(c, "tracking_numbers");
	const struct jn *urls = P(c, "tracking_urls");
	if (tns && tns->t == J_ARR) {
		size_t i = 0;
		for (int32_t k = tns->first; k >= 0;
		     k = c->ev->nodes[k].next, i++) {
			struct ship *s = shipment(c, &c->ev->nodes[k]);
			fill(c, &s->fulfillment_id, P(c, "fulfillment_id"));
			fill(c, &s->carrier, P(c, "carrier"));
			fill(c, &s->tracking_url, elem(c->ev, urls, i));
		}
	}
	advance(o, F_FULFILLMENT, c->t);
}

static void on_shipment(struct fold *c)
{
	struct ship *s = shipment(c, P(c, "tracking_number"));
	fill(c, &s->fulfillment_id, P(c, "fulfillment_id"));
	fill(c, &s->carrier, P(c, "carrier"));
	if (v_int(&s->updated_at, INT64_MIN) > c->t)
		return; /* late carrier news: timeline only */
	const struct jn *st = P(c, "status");
	s->status = vnode(c, st);
	wb_buf le;
	wb_buf_init(&le);
	struct val v;
	OUT(&le, "{\"status\":");
	v = vnode(c, st);
	put_val(&le, &v);
	OUT(&le, ",\"carrier_time\":");
	v = vnode(c, P(c, "carrier_time"));
	put_val(&le, &v);
	OUT(&le, ",\"location\":");
	v = vnode(c, P(c, "location"));
	put_val(&le, &v);
	OUT(&le, ",\"source_time\":");
	wb_json_put_int(&le, c->t);
	out_c(&le, '}');
	s->last_event = (struct val){arena_dup(c->a, (char *)le.data, le.len),
				     (uint32_t)le.len, V_JSON, 0};
	wb_buf_finish(&le);
	if (!n_null(P(c, "estimated_delivery")))
		s->estimated_delivery = vnode(c, P(c, "estimated_delivery"));
	if (n_is(st, "delivered"))
		s->delivered_at = vint(n_int(P(c, "carrier_time"), c->t));
	s->updated_at = vint(c->t);
	c->applied = true;
}

static void on_refund(struct fold *c)
{
	struct wb_order *o = c->o;
	size_t rn;
	const char *rid = id_of(P(c, "refund_id"), &rn);
	struct refund *r = NULL;
	for (uint32_t i = 0; i < o->n_refunds && !r; i++)
		if (v_eq(&o->refunds[i].id, rid, rn))
			r = &o->refunds[i];
	if (!r)
		r = PUSH(o, refunds, c->a);
	r->id = vstrn(c->a, rid, rn);
	r->amount = vnode(c, P(c, "amount"));
	r->money = money_of(c, P(c, "amount"));
	r->lines = vnode(c, P(c, "lines"));
	items_of(c, P(c, "lines"), &r->items);
	r->restock = vnode(c, P(c, "restock"));
	r->reason = vnode(c, P(c, "reason"));
	r->issued_at = vint(c->t);
	c->applied = true;
}

static void on_return(struct fold *c, int step)
{
	struct wb_order *o = c->o;
	size_t rn;
	const char *rid = id_of(P(c, "return_id"), &rn);
	struct ret *r = NULL;
	for (uint32_t i = 0; i < o->n_rets && !r; i++)
		if (v_eq(&o->rets[i].id, rid, rn))
			r = &o->rets[i];
	if (!r) {
		r = PUSH(o, rets, c->a);
		*r = (struct ret){.id = vstrn(c->a, rid, rn)};
		r->status = r->reason = r->decline_reason = r->updated_at =
			VNULL;
		for (int k = 0; k < AT_N; k++)
			r->at[k] = VNULL;
		r->lines = (struct val){"[]", 2, V_JSON, 0};
	}
	/* when each step happened is a fact whatever the order */
	if (v_null(&r->at[step]))
		r->at[step] = vint(c->t);
	const struct jn *lines = P(c, "lines");
	bool is_req = step == AT_REQUESTED || step == AT_APPROVED;
	if (arr_size(lines) && (is_req || r->nlines == 0)) {
		r->lines = vnode(c, lines);
		r->nlines = (uint32_t)arr_size(lines);
	}
	if (step == AT_DECLINED)
		fill(c, &r->decline_reason, P(c, "reason"));
	else if (step == AT_REQUESTED)
		fill(c, &r->reason, P(c, "reason"));
	c->applied = true;
	if (v_int(&r->updated_at, INT64_MIN) > c->t) {
		c->applied = false; /* a step already superseded */
		return;
	}
	r->status = vlit(return_steps[step]);
	r->updated_at = vint(c->t);
}

static const char *const payment_statuses[] = {
	"pending", "authorized", "paid", "partially_paid",
	"partially_refunded", "refunded", "voided", NULL};

static void on_snapshot(struct fold *c)
{
	struct wb_order *o = c->o;
	int64_t t = n_int(P(c, "channel_updated_at"), c->t);
	if (!advance(o, F_SNAPSHOT, t))
		return;
	set_snapshot(c, c->p);
	c->applied = true;
	int64_t saved = c->t;
	c->t = t; /* the snapshot shows the channel's state as of t */
	const struct jn *canc = P(c, "cancelled");
	if (canc && canc->t == J_TRUE)
		order_cancel(c, NULL, NULL, t);
	const struct jn *fin = P(c, "financial_status");
	if (fin && fin->t == J_STR) {
		char low[32];
		size_t n = 0;
		for (; n < fin->sn && fin->s[n] && n < sizeof(low) - 1; n++)
			low[n] = (char)tolower((unsigned char)fin->s[n]);
		low[n] = 0;
		for (const char *const *s = payment_statuses; *s; s++)
			if (strcmp(*s, low) == 0 &&
			    advance(o, F_PAYMENT, t)) {
				o->p_status = vlit(*s);
				o->p_updated_at = vint(t);
			}
	}
	if (v_null(&o->totals) && !n_null(P(c, "total"))) {
		const struct jn *tot = P(c, "total");
		size_t n = 9 + tot->len + 1;
		char *s = wb_arena_alloc(c->a, n);
		memcpy(s, "{\"total\":", 9);
		memcpy(s + 9, ev_text(c->ev, tot), tot->len);
		s[n - 1] = '}';
		o->totals = (struct val){s, (uint32_t)n, V_JSON, 0};
		o->total = money_of(c, tot);
	}
	const struct jn *tns = P(c, "tracking_numbers");
	if (tns && tns->t == J_ARR)
		for (int32_t k = tns->first; k >= 0; k = c->ev->nodes[k].next)
			shipment(c, &c->ev->nodes[k]);
	c->t = saved;
}

static bool action_terminal(const struct val *s)
{
	return v_is(s, "succeeded") || v_is(s, "failed") ||
	       v_is(s, "rejected");
}

static void on_action(struct fold *c, const char *status)
{
	struct wb_order *o = c->o;
	size_t an;
	const char *aid = id_of(P(c, "action_id"), &an);
	struct action *a = NULL;
	for (uint32_t i = 0; i < o->n_actions && !a; i++)
		if (v_eq(&o->actions[i].id, aid, an))
			a = &o->actions[i];
	if (!a) {
		a = PUSH(o, actions, c->a);
		*a = (struct action){.id = vstrn(c->a, aid, an)};
		a->kind = vnode(c, P(c, "kind"));
		a->status = a->parameters = a->requester = a->idempotency_key =
			a->reason = a->channel_ref = a->requested_at =
				a->updated_at = VNULL;
	}
	fill(c, &a->parameters, P(c, "parameters"));
	fill(c, &a->requester, P(c, "requester"));
	fill(c, &a->idempotency_key, P(c, "idempotency_key"));
	struct val st = vlit(status);
	bool is_req = strcmp(status, "requested") == 0;
	if (is_req || strcmp(status, "rejected") == 0)
		fill(c, &a->requested_at,
		     child(c->ev, c->root, "source_time"));
	c->applied = true;
	bool has_cur = a->status.t == V_STR;
	bool cur_term = action_terminal(&a->status);
	bool new_term = action_terminal(&st);
	if (has_cur && ((cur_term && !new_term) ||
			(cur_term == new_term &&
			 v_int(&a->updated_at, INT64_MIN) > c->t))) {
		c->applied = false;
		return;
	}
	a->status = st;
	if (!n_null(P(c, "reason")))
		a->reason = vnode(c, P(c, "reason"));
	if (!n_null(P(c, "channel_ref")))
		a->channel_ref = vnode(c, P(c, "channel_ref"));
	if (!n_null(P(c, "attempts")))
		a->attempts = vnode(c, P(c, "attempts"));
	a->updated_at = vint(c->t);
}

/* Whether the entry's merchant m is the view's: the same string, or
 * neither a string. */
static bool same_merchant(const struct wb_order *o, const struct jn *m)
{
	if (!m || m->t != J_STR)
		return o->merchant.t != V_STR;
	return v_eq(&o->merchant, m->s, m->sn);
}

static bool type_is(const struct jn *t, const char *s)
{
	return n_is(t, s);
}

wb_err wb_order_apply(struct wb_order *o, const struct wb_event *ev,
		      struct wb_arena *a, struct wb_fold_info *info,
		      char *msg, size_t msglen)
{
	struct wb_fold_info dummy;
	if (!info)
		info = &dummy;
	info->stale = info->foreign = false;
	const struct jn *root = N(ev, ev->root);
	const struct jn *type = child(ev, root, "type");
	const struct jn *oid = child(ev, root, "order_id");
	const struct jn *p = child(ev, root, "payload");
	const struct jn *st = child(ev, root, "source_time");
	if (!type || type->t != J_STR || !oid || oid->t != J_STR || !p ||
	    p->t != J_OBJ || !st || st->t != J_INT)
		return wb_fail(msg, msglen, WB_ESCHEMA,
			       "entry lacks order_id, type, source_time or "
			       "payload");
	if (o->exists && !v_eq(&o->order_id, oid->s, oid->sn))
		return wb_fail(msg, msglen, WB_EINVAL,
			       "entry of order %.*s folded into the view of "
			       "%.*s",
			       (int)oid->sn, oid->s,
			       o->order_id.t == V_STR ? (int)o->order_id.n : 6,
			       o->order_id.t == V_STR ? o->order_id.p
						      : "(null)");
	if (o->exists && !same_merchant(o, child(ev, root, "merchant"))) {
		/* one merchant's event never changes another's order */
		info->foreign = true;
		return WB_OK;
	}
	struct fold c = {o, ev, root, p, a, st->i, false};
	if (!o->exists)
		new_view(&c);
	if (type_is(type, "OrderPlaced"))
		on_placed(&c);
	else if (type_is(type, "OrderUpdated"))
		on_updated(&c);
	else if (type_is(type, "PaymentStatusChanged"))
		on_payment(&c);
	else if (type_is(type, "ShippingAddressChanged"))
		on_address(&c);
	else if (type_is(type, "OrderCancelled"))
		on_cancelled(&c);
	else if (type_is(type, "FulfillmentCreated"))
		on_fulfillment(&c);
	else if (type_is(type, "ShipmentStatusChanged"))
		on_shipment(&c);
	else if (type_is(type, "RefundIssued"))
		on_refund(&c);
	else if (type_is(type, "ReturnRequested"))
		on_return(&c, AT_REQUESTED);
	else if (type_is(type, "ReturnApproved"))
		on_return(&c, AT_APPROVED);
	else if (type_is(type, "ReturnDeclined"))
		on_return(&c, AT_DECLINED);
	else if (type_is(type, "ReturnReceived"))
		on_return(&c, AT_RECEIVED);
	else if (type_is(type, "ReturnClosed"))
		on_return(&c, AT_CLOSED);
	else if (type_is(type, "ChannelSnapshotObserved"))
		on_snapshot(&c);
	else if (type_is(type, "ActionRequested"))
		on_action(&c, "requested");
	else if (type_is(type, "ActionRejected"))
		on_action(&c, "rejected");
	else if (type_is(type, "ActionSucceeded"))
		on_action(&c, "succeeded");
	else if (type_is(type, "ActionFailed"))
		on_action(&c, "failed");
	else
		c.applied = false; /* a type this projector does not know:
				      timeline only */
	info->stale = !c.applied;

	const struct jn *x;
	if ((x = child(ev, root, "version")) && x->t == J_INT)
		o->version = vint(x->i);
	if ((x = child(ev, root, "partition")) && x->t == J_INT)
		o->partition = vint(x->i);
	if ((x = child(ev, root, "seq")) && x->t == J_INT)
		o->seq = vint(x->i);
	if ((x = child(ev, root, "recorded_at")) && x->t == J_INT)
		o->recorded_at = vint(x->i);
	if (c.t > v_int(&o->updated_at, INT64_MIN))
		o->updated_at = vint(c.t);
	return WB_OK;
}

/* ---- the stored view as JSON (jansson's view, key for key) --------------- */

/* "key":value for each field of base (optional ones only when present),
 * after a comma unless first. */
static void write_members(wb_buf *b, const void *base, const struct fdesc *fd,
			  size_t n, bool first)
{
	for (size_t i = 0; i < n; i++) {
		const struct val *v = fcval(base, &fd[i]);
		if (fd[i].optional && v->t == V_ABSENT)
			continue;
		if (b->len + fd[i].klen + 4 > b->cap)
			wb_buf_reserve(b, fd[i].klen + 4);
		if (!first)
			b->data[b->len++] = ',';
		first = false;
		b->data[b->len++] = '"';
		memcpy(b->data + b->len, fd[i].key, fd[i].klen);
		b->len += fd[i].klen;
		b->data[b->len++] = '"';
		b->data[b->len++] = ':';
		put_val(b, v);
	}
}

static void write_obj(wb_buf *b, const void *base, const struct fdesc *fd,
		      size_t n)
{
	out_c(b, '{');
	write_members(b, base, fd, n, true);
	out_c(b, '}');
}

/* [obj,obj...] of an array of cnt structs of size bytes. */
static void write_list(wb_buf *b, const void *arr, size_t size, uint32_t cnt,
		       const struct fdesc *fd, size_t n)
{
	out_c(b, '[');
	for (uint32_t i = 0; i < cnt; i++) {
		if (i)
			out_c(b, ',');
		write_obj(b, (const char *)arr + i * size, fd, n);
	}
	out_c(b, ']');
}

#define WRITE_LIST(b, o, name, fd)                                           \
	write_list((b), (o)->name, sizeof(*(o)->name), (o)->n_##name, (fd),  \
		   NF(fd))

/* "order":{...},"payment":{...} */
static void write_order_obj(wb_buf *b, const struct wb_order *o)
{
	OUT(b, ",\"order\":");
	write_obj(b, o, order_fd, NF(order_fd));
	OUT(b, ",\"payment\":");
	write_obj(b, o, payment_fd, NF(payment_fd));
}

/* shipments, refunds, returns, actions */
static void write_lists(wb_buf *b, const struct wb_order *o)
{
	OUT(b, ",\"shipments\":");
	WRITE_LIST(b, o, ships, ship_fd);
	OUT(b, ",\"refunds\":");
	WRITE_LIST(b, o, refunds, refund_fd);
	OUT(b, ",\"returns\":");
	WRITE_LIST(b, o, rets, ret_fd);
	OUT(b, ",\"actions\":");
	WRITE_LIST(b, o, actions, action_fd);
}

void wb_order_view_write(const struct wb_order *o, wb_buf *b)
{
	out_c(b, '{');
	write_members(b, o, head_fd, NF(head_fd), true);
	OUT(b, ",\"lines\":");
	put_val(b, &o->lines);
	write_order_obj(b, o);
	OUT(b, ",\"fulfillments\":");
	WRITE_LIST(b, o, fuls, ful_fd);
	write_lists(b, o);
	OUT(b, ",\"_t\":{");
	for (int i = 0; i < o->nt; i++) {
		if (i)
			out_c(b, ',');
		out_c(b, '"');
		out_n(b, facet_names[o->tord[i]], strlen(facet_names[o->tord[i]]));
		OUT(b, "\":");
		wb_json_put_int(b, o->tv[o->tord[i]]);
	}
	out_c(b, '}');
	write_members(b, o, tail_fd, NF(tail_fd), false);
	out_c(b, '}');
}

/* ---- presentation --------------------------------------------------------- */

#define DAY_MS (24LL * 3600 * 1000)

/* a + b, held at the int64 range: channel numbers (amounts, quantities,
 * times) are any long, and their sums must not overflow */
static int64_t sat_add(int64_t a, int64_t b)
{
	int64_t r;
	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

static bool key_eq(const struct item *a, const struct item *b)
{
	return a->has_key && b->has_key && a->kn == b->kn &&
	       memcmp(a->key, b->key, a->kn) == 0;
}

/* Quantity of the order's line l in a list of ItemQuantity. */
static int64_t qty_of(const struct items *its, const struct item *l)
{
	int64_t n = 0;
	for (uint32_t i = 0; i < its->n; i++)
		if (key_eq(&its->v[i], l))
			n = sat_add(n, its->v[i].qty);
	return n;
}

static int fulfillment_rank(const struct val *s)
{
	if (v_is(s, "fulfilled"))
		return 2;
	if (v_is(s, "partially_fulfilled") || v_is(s, "partial"))
		return 1;
	return 0;
}

static const char *const fulfillment_names[] = {
	"unfulfilled", "partially_fulfilled", "fulfilled"};

/* The fulfillment status: the most fulfilled of what the fulfillments
 * cover and what the latest channel snapshot says. */
static int fulfillment_rank_of(const struct wb_order *o)
{
	int rank = 0;
	if (o->n_fuls) {
		bool all = true;
		for (uint32_t i = 0; i < o->line_items.n; i++) {
			const struct item *l = &o->line_items.v[i];
			int64_t done = 0;
			for (uint32_t j = 0; j < o->n_fuls; j++)
				done = sat_add(done,
					       qty_of(&o->fuls[j].items, l));
			if (done < l->qty)
				all = false;
		}
		rank = all ? 2 : 1;
	}
	int snap = fulfillment_rank(&o->snap_fstatus);
	return snap > rank ? snap : rank;
}

/* Refunded in full: the channel says so, or the refunds in the order's
 * currency reach its total. Amounts in other currencies never add up to
 * a total in this one. */
static bool fully_refunded(const struct wb_order *o)
{
	if (v_is(&o->p_status, "refunded"))
		return true;
	const struct money *t = &o->total;
	if (!t->has_cur || t->amount <= 0)
		return false;
	int64_t sum = 0;
	for (uint32_t i = 0; i < o->n_refunds; i++) {
		const struct money *m = &o->refunds[i].money;
		if (m->has_cur && m->curn == t->curn &&
		    memcmp(m->cur, t->cur, t->curn) == 0)
			sum = sat_add(sum, m->amount);
	}
	return sum >= t->amount;
}

static bool return_open(const struct ret *r)
{
	return v_is(&r->status, "requested") || v_is(&r->status, "approved") ||
	       v_is(&r->status, "received");
}

static bool pending(const struct wb_order *o, const char *kind)
{
	for (uint32_t i = 0; i < o->n_actions; i++)
		if (v_is(&o->actions[i].status, "requested") &&
		    (!kind || v_is(&o->actions[i].kind, kind)))
			return true;
	return false;
}

/* Progress of one shipment for the customer. */
static int ship_rank(const struct val *s, const char **name)
{
	static const struct {
		const char *status, *customer;
		int rank;
	} map[] = {
		{"label_printed", "shipped", 1},
		{"label_purchased", "shipped", 1},
		{"confirmed", "shipped", 1},
		{"other", "shipped", 1},
		{"ready_for_pickup", "ready_for_pickup", 2},
		{"picked_up", "in_transit", 3},
		{"in_transit", "in_transit", 3},
		{"delayed", "delayed", 3},
		{"out_for_delivery", "out_for_delivery", 4},
		{"delivered", "delivered", 5},
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (v_is(s, map[i].status)) {
			*name = map[i].customer;
			return map[i].rank;
		}
	*name = "shipped";
	return 1; /* fulfilled, no carrier news yet */
}

static bool ship_problem(const struct val *s)
{
	return v_is(s, "failure") || v_is(s, "attempted_delivery") ||
	       v_is(s, "returned_to_sender");
}

/* A POS sale with nothing to ship was handed over at the till. */
static bool handed_over(const struct wb_order *o)
{
	return v_is(&o->channel, "pos") && o->n_ships == 0 &&
	       o->n_fuls == 0 && !v_null(&o->placed_at);
}

/* When the order reached the customer (latest delivered shipment), or -1. */
static int64_t delivered_at(const struct wb_order *o)
{
	if (handed_over(o))
		return v_int(&o->placed_at, -1);
	int64_t at = -1;
	for (uint32_t i = 0; i < o->n_ships; i++) {
		const struct ship *s = &o->ships[i];
		if (v_is(&s->status, "delivered") &&
		    v_int(&s->delivered_at, -1) > at)
			at = v_int(&s->delivered_at, -1);
	}
	return at;
}

static const char *customer_status(const struct wb_order *o, int frank,
				   bool refunded)
{
	if (v_is(&o->o_status, "cancelled"))
		return "cancelled";
	if (refunded)
		return "refunded";
	for (uint32_t i = 0; i < o->n_rets; i++)
		if (return_open(&o->rets[i]))
			return "return_in_progress";
	if (handed_over(o))
		return "delivered";
	bool partial = frank == 1;
	if (o->n_ships == 0) {
		if (frank == 0)
			return "processing";
		return partial ? "partially_shipped" : "shipped";
	}
	int least = 99;
	const char *least_name = "shipped";
	for (uint32_t i = 0; i < o->n_ships; i++) {
		const struct val *st = &o->ships[i].status;
		if (ship_problem(st))
			return "delivery_problem";
		const char *name;
		int r = ship_rank(st, &name);
		if (r < least) {
			least = r;
			least_name = name;
		}
	}
	if (least == 5)
		return partial ? "partially_delivered" : "delivered";
	if (partial && least == 1)
		return "partially_shipped";
	return least_name;
}

static void put_lit_str(wb_buf *b, const char *s)
{
	wb_json_put_str(b, s, strlen(s));
}

static void verdict(wb_buf *b, const char *name, bool allowed,
		    const char *reason, bool more)
{
	out_c(b, '"');
	out_n(b, name, strlen(name));
	if (allowed)
		OUT(b, "\":{\"allowed\":true,\"reason\":");
	else
		OUT(b, "\":{\"allowed\":false,\"reason\":");
	put_lit_str(b, reason);
	if (!more)
		out_c(b, '}');
}

/* Lines with fulfilled and refunded quantities. */
static void present_lines(wb_buf *b, const struct wb_order *o)
{
	const struct items *its = &o->line_items;
	if (!its->arr) {
		put_val(b, &o->lines);
		return;
	}
	out_c(b, '[');
	for (uint32_t i = 0; i < its->n; i++) {
		const struct item *l = &its->v[i];
		if (i)
			out_c(b, ',');
		const char *txt = o->lines.p + l->off;
		if (!l->obj) {
			out_n(b, txt, l->len);
			continue;
		}
		int64_t done = 0, back = 0;
		for (uint32_t j = 0; j < o->n_fuls; j++)
			done = sat_add(done, qty_of(&o->fuls[j].items, l));
		for (uint32_t j = 0; j < o->n_refunds; j++)
			back = sat_add(back, qty_of(&o->refunds[j].items, l));
		out_n(b, txt, l->len - 1); /* without its '}' */
		if (l->len > 2)
			out_c(b, ',');
		OUT(b, "\"fulfilled_quantity\":");
		wb_json_put_int(b, done);
		OUT(b, ",\"refunded_quantity\":");
		wb_json_put_int(b, back);
		out_c(b, '}');
	}
	out_c(b, ']');
}

/* Refunded amounts, one Money per currency, sorted by currency. */
static void present_refunded(wb_buf *b, const struct wb_order *o)
{
	uint32_t n = 0;
	const struct money *by[64];
	int64_t sum[64];
	for (uint32_t i = 0; i < o->n_refunds; i++) {
		const struct money *m = &o->refunds[i].money;
		if (!m->has_cur)
			continue;
		uint32_t k = 0;
		while (k < n && !(by[k]->curn == m->curn &&
				  memcmp(by[k]->cur, m->cur, m->curn) == 0))
			k++;
		if (k == n) {
			if (n == 64)
				continue; /* more currencies than exist */
			by[n] = m;
			sum[n++] = 0;
		}
		sum[k] = sat_add(sum[k], m->amount);
	}
	for (uint32_t a = 1; a < n; a++) /* few currencies: insertion sort */
		for (uint32_t c = a; c > 0; c--) {
			const struct money *x = by[c - 1], *y = by[c];
			size_t l = x->curn < y->curn ? x->curn : y->curn;
			int d = memcmp(x->cur, y->cur, l);
			if (d < 0 || (d == 0 && x->curn <= y->curn))
				break;
			by[c - 1] = y;
			by[c] = x;
			int64_t s = sum[c - 1];
			sum[c - 1] = sum[c];
			sum[c] = s;
		}
	out_c(b, '[');
	for (uint32_t a = 0; a < n; a++) {
		if (a)
			out_c(b, ',');
		OUT(b, "{\"amount\":");
		wb_json_put_int(b, sum[a]);
		OUT(b, ",\"currency\":");
		wb_json_put_str(b, by[a]->cur, by[a]->curn);
		out_c(b, '}');
	}
	out_c(b, ']');
}

void wb_order_present_write(const struct wb_order *o, int64_t now_ms,
			    int return_window_days, wb_buf *b)
{
	wb_buf_reserve(b, 4096);
	out_c(b, '{');
	write_members(b, o, head_fd, NF(head_fd), true);
	OUT(b, ",\"lines\":");
	present_lines(b, o);
	write_order_obj(b, o);
	write_lists(b, o);
	write_members(b, o, tail_fd, NF(tail_fd), false);

	int frank = fulfillment_rank_of(o);
	const char *fstatus = fulfillment_names[frank];
	OUT(b, ",\"fulfillment\":{\"status\":");
	put_lit_str(b, fstatus);
	OUT(b, ",\"fulfillments\":");
	WRITE_LIST(b, o, fuls, ful_fd);
	OUT(b, ",\"updated_at\":");
	if (o->tset[F_FULFILLMENT])
		wb_json_put_int(b, o->tv[F_FULFILLMENT]);
	else
		OUT(b, "null");
	OUT(b, "},\"refunded\":");
	present_refunded(b, o);
	bool full_refund = fully_refunded(o);
	OUT(b, ",\"customer_status\":");
	put_lit_str(b, customer_status(o, frank, full_refund));
	OUT(b, ",\"pending_actions\":[");
	bool first = true;
	for (uint32_t i = 0; i < o->n_actions; i++)
		if (v_is(&o->actions[i].status, "requested")) {
			if (!first)
				out_c(b, ',');
			first = false;
			write_obj(b, &o->actions[i], action_fd,
				  NF(action_fd));
		}
	OUT(b, "],\"eligibility\":{");

	bool cancelled = v_is(&o->o_status, "cancelled");
	bool placed = o->o_status.t == V_STR;
	bool handed = handed_over(o);
	bool shipped_any = o->n_ships || frank != 0 || handed;
	if (cancelled)
		verdict(b, "can_cancel", false, "already_cancelled", false);
	else if (shipped_any)
		verdict(b, "can_cancel", false,
			handed ? "already_fulfilled" : "already_shipped",
			false);
	else if (!placed)
		verdict(b, "can_cancel", false, "order_not_placed", false);
	else if (pending(o, "cancel"))
		verdict(b, "can_cancel", false, "cancel_pending", false);
	else
		verdict(b, "can_cancel", true, "not_yet_shipped", false);
	out_c(b, ',');
	if (cancelled)
		verdict(b, "can_change_address", false, "order_cancelled",
			false);
	else if (shipped_any)
		verdict(b, "can_change_address", false, "already_fulfilled",
			false);
	else if (!placed)
		verdict(b, "can_change_address", false, "order_not_placed",
			false);
	else if (pending(o, "change_address"))
		verdict(b, "can_change_address", false, "change_pending",
			false);
	else
		verdict(b, "can_change_address", true, "not_yet_fulfilled",
			false);
	out_c(b, ',');

	int64_t deliv = delivered_at(o);
	bool open_return = false;
	for (uint32_t i = 0; i < o->n_rets; i++)
		if (return_open(&o->rets[i]))
			open_return = true;
	int days = return_window_days;
	int64_t window_end = sat_add(deliv, (int64_t)days * DAY_MS);
	if (cancelled)
		verdict(b, "can_return", false, "order_cancelled", true);
	else if (days <= 0)
		verdict(b, "can_return", false, "returns_not_accepted", true);
	else if (deliv < 0)
		verdict(b, "can_return", false, "not_delivered", true);
	else if (full_refund)
		verdict(b, "can_return", false, "already_refunded", true);
	else if (open_return)
		verdict(b, "can_return", false, "return_in_progress", true);
	else if (pending(o, "request_return"))
		verdict(b, "can_return", false, "return_pending", true);
	else if (now_ms > window_end)
		verdict(b, "can_return", false, "return_window_expired", true);
	else
		verdict(b, "can_return", true, "within_return_window", true);
	OUT(b, ",\"window_days\":");
	wb_json_put_int(b, days > 0 ? days : 0);
	OUT(b, ",\"window_ends_at\":");
	if (deliv >= 0 && days > 0)
		wb_json_put_int(b, window_end);
	else
		OUT(b, "null");
	OUT(b, "}},\"delivered_at\":");
	if (deliv >= 0)
		wb_json_put_int(b, deliv);
	else
		OUT(b, "null");
	out_c(b, '}');
}

/* ---- OrderStatus ------------------------------------------------------- */

static void avro_val_str(wb_buf *out, const struct val *v)
{
	if (v->t == V_STR)
		wb_avro_put_bytes(out, v->p, v->n);
	else
		wb_avro_put_long(out, 0);
}

static void avro_cstr(wb_buf *out, const char *s)
{
	wb_avro_put_bytes(out, s, strlen(s));
}

/* The Avro body of OrderStatus, written field by field in the schema's
 * order (schemas/OrderStatus.avsc); a unit test checks it against the
 * generic codec. */
void wb_order_status_write(const struct wb_order *o, wb_buf *out)
{
	int frank = fulfillment_rank_of(o);
	avro_val_str(out, &o->order_id);
	avro_val_str(out, &o->merchant);
	avro_val_str(out, &o->channel);
	wb_avro_put_long(out, o->name.t == V_STR ? 1 : 0);
	if (o->name.t == V_STR)
		avro_val_str(out, &o->name);
	wb_avro_put_long(out, v_int(&o->version, 0));
	wb_avro_put_long(out, v_int(&o->partition, 0));
	wb_avro_put_long(out, v_int(&o->seq, 0));
	avro_cstr(out, customer_status(o, frank, fully_refunded(o)));
	if (o->o_status.t == V_STR)
		avro_val_str(out, &o->o_status);
	else
		avro_cstr(out, "unknown");
	wb_avro_put_long(out, o->p_status.t == V_STR ? 1 : 0);
	if (o->p_status.t == V_STR)
		avro_val_str(out, &o->p_status);
	avro_cstr(out, fulfillment_names[frank]);
	if (o->n_ships) {
		wb_avro_put_long(out, o->n_ships);
		for (uint32_t i = 0; i < o->n_ships; i++)
			avro_val_str(out, &o->ships[i].tracking_number);
	}
	wb_avro_put_long(out, 0);
	wb_avro_put_long(out, o->total.obj ? 1 : 0);
	if (o->total.obj) {
		wb_avro_put_long(out, o->total.amount);
		if (o->total.has_cur)
			wb_avro_put_bytes(out, o->total.cur, o->total.curn);
		else
			wb_avro_put_long(out, 0);
	}
	wb_avro_put_long(out, v_int(&o->updated_at, -1));
}

/* ---- lookups and returns ------------------------------------------------- */

static void lookup_val(enum wb_lookup kind, const struct val *v, wb_buf *b,
		       void (*fn)(enum wb_lookup, const char *, void *),
		       void *ud)
{
	if (v->t != V_STR)
		return;
	char tmp[256];
	char *s = v->n < sizeof(tmp) ? tmp : wb_xmalloc(v->n + 1);
	memcpy(s, v->p, v->n);
	s[v->n] = 0;
	if (wb_lookup_normalise(kind, s, b))
		fn(kind, (const char *)b->data, ud);
	if (s != tmp)
		free(s);
}

void wb_order_lookups(const struct wb_order *o,
		      void (*fn)(enum wb_lookup kind, const char *value,
				 void *ud),
		      void *ud)
{
	wb_buf b;
	wb_buf_init(&b);
	lookup_val(WB_LOOKUP_EMAIL, &o->email, &b, fn, ud);
	lookup_val(WB_LOOKUP_NAME, &o->name, &b, fn, ud);
	lookup_val(WB_LOOKUP_CHANNEL_ORDER_ID, &o->channel_order_id, &b, fn,
		   ud);
	for (uint32_t i = 0; i < o->n_ships; i++)
		lookup_val(WB_LOOKUP_TRACKING, &o->ships[i].tracking_number,
			   &b, fn, ud);
	wb_buf_finish(&b);
}

void wb_order_returns(const struct wb_order *o,
		      void (*fn)(const char *return_id, size_t idlen,
				 const char *json, size_t len, void *ud),
		      void *ud)
{
	wb_buf b;
	wb_buf_init(&b);
	for (uint32_t i = 0; i < o->n_rets; i++) {
		const struct ret *r = &o->rets[i];
		if (r->id.t != V_STR)
			continue;
		wb_buf_reset(&b);
		out_c(&b, '{');
		write_members(&b, r, ret_fd, NF(ret_fd), true);
		OUT(&b, ",\"order_id\":");
		put_val(&b, &o->order_id);
		out_c(&b, '}');
		fn(r->id.p, r->id.n, (const char *)b.data, b.len, ud);
	}
	wb_buf_finish(&b);
}

/* ---- timeline ---------------------------------------------------------- */

/* The payload fields each type's timeline record keeps. */
static const struct {
	const char *type;
	const char *fields[6];
} facts[] = {
	{"OrderPlaced", {"name", "currency", "placed_at"}},
	{"OrderUpdated", {NULL}},
	{"PaymentStatusChanged", {"status", "amount_paid"}},
	{"ShippingAddressChanged", {NULL}},
	{"OrderCancelled", {"reason", "cancelled_at", "note"}},
	{"FulfillmentCreated", {"fulfillment_id", "carrier", "tracking_numbers"}},
	{"ShipmentStatusChanged",
	 {"tracking_number", "status", "carrier", "carrier_time", "location",
	  "estimated_delivery"}},
	{"RefundIssued", {"refund_id", "amount", "restock", "reason"}},
	{"ReturnRequested", {"return_id", "reason"}},
	{"ReturnApproved", {"return_id", "reason"}},
	{"ReturnDeclined", {"return_id", "reason"}},
	{"ReturnReceived", {"return_id", "reason"}},
	{"ReturnClosed", {"return_id", "reason"}},
	{"ChannelSnapshotObserved",
	 {"financial_status", "fulfillment_status", "cancelled",
	  "channel_updated_at"}},
	{"ActionRequested", {"action_id", "kind", "requester"}},
	{"ActionRejected", {"action_id", "kind", "reason"}},
	{"ActionSucceeded", {"action_id", "kind", "channel_ref"}},
	{"ActionFailed", {"action_id", "kind", "reason", "attempts"}},
};

/* Writes "key":value for x (if present), with a comma when needed. */
static void put_kv(wb_buf *b, bool *first, const char *k,
		   const struct wb_event *ev, const struct jn *x)
{
	if (!x)
		return;
	if (!*first)
		out_c(b, ',');
	*first = false;
	wb_json_put_str(b, k, strlen(k));
	out_c(b, ':');
	out_n(b, ev_text(ev, x), x->len);
}

void wb_event_timeline(wb_buf *b, const struct wb_event *ev,
		       const struct wb_fold_info *info)
{
	static const char *const keep[] = {
		"version", "seq", "partition", "type", "event_id", "source",
		"source_time", "ingest_time", "recorded_at", NULL};
	const struct jn *root = N(ev, ev->root);
	bool first = true;
	out_c(b, '{');
	for (const char *const *k = keep; *k; k++)
		put_kv(b, &first, *k, ev, child(ev, root, *k));
	const struct jn *corr = child(ev, root, "correlation_id");
	if (!n_null(corr))
		put_kv(b, &first, "correlation_id", ev, corr);
	if (info && info->stale) {
		if (!first)
			out_c(b, ',');
		first = false;
		OUT(b, "\"applied\":false");
	}
	const struct jn *type = child(ev, root, "type");
	const struct jn *p = child(ev, root, "payload");
	OUT(b, ",\"facts\":{");
	bool ffirst = true;
	for (size_t i = 0; type && type->t == J_STR &&
			   i < sizeof(facts) / sizeof(facts[0]);
	     i++) {
		if (!n_is(type, facts[i].type))
			continue;
		for (int j = 0; j < 6 && facts[i].fields[j]; j++) {
			const struct jn *x = child(ev, p, facts[i].fields[j]);
			if (!n_null(x))
				put_kv(b, &ffirst, facts[i].fields[j], ev, x);
		}
		break;
	}
	if (n_is(type, "OrderPlaced")) {
		put_kv(b, &ffirst, "total", ev,
		       child(ev, child(ev, p, "totals"), "total"));
		if (!ffirst)
			out_c(b, ',');
		ffirst = false;
		OUT(b, "\"lines\":");
		wb_json_put_int(b, (int64_t)arr_size(child(ev, p, "lines")));
	} else if (n_is(type, "OrderUpdated")) {
		if (!ffirst)
			out_c(b, ',');
		ffirst = false;
		OUT(b, "\"changed\":[");
		bool cf = true;
		for (int32_t k = p && p->t == J_OBJ ? p->first : -1; k >= 0;
		     k = ev->nodes[k].next)
			if (ev->nodes[k].t != J_NULL) {
				if (!cf)
					out_c(b, ',');
				cf = false;
				put_lit_str(b, ev->nodes[k].key);
			}
		out_c(b, ']');
	} else if (n_is(type, "ShippingAddressChanged")) {
		const struct jn *a = child(ev, p, "address");
		static const char *const ak[] = {"city", "postal_code",
						 "country_code", NULL};
		for (const char *const *k = ak; *k; k++)
			if (!n_null(child(ev, a, *k)))
				put_kv(b, &ffirst, *k, ev, child(ev, a, *k));
	}
	OUT(b, "}}");
}

/* ---- the stored record ----------------------------------------------------
 * "W1", the merchant (1 + bytes when a string, else 0), the ledger
 * partition (for the answer cache, without decoding the rest), then every
 * field in struct order: a value is a type byte plus a zig-zag varint
 * (integers) or length-prefixed bytes (raw string bytes, JSON text). */

#define REC_MAGIC0 'W'
#define REC_MAGIC1 '1'

static void r_val(wb_buf *b, const struct val *v)
{
	out_c(b, (char)v->t);
	if (v->t == V_INT)
		wb_avro_put_long(b, v->i);
	else if (v->t == V_STR || v->t == V_JSON)
		wb_avro_put_bytes(b, v->p, v->n);
}

static void r_fields(wb_buf *b, const void *base, const struct fdesc *fd,
		     size_t n)
{
	for (size_t i = 0; i < n; i++)
		r_val(b, fcval(base, &fd[i]));
}

static void r_items(wb_buf *b, const struct items *it)
{
	out_c(b, (char)it->arr);
	wb_avro_put_long(b, it->n);
	for (uint32_t i = 0; i < it->n; i++) {
		const struct item *m = &it->v[i];
		out_c(b, (char)(m->obj | m->has_key << 1));
		if (m->has_key)
			wb_avro_put_bytes(b, m->key, m->kn);
		wb_avro_put_long(b, m->qty);
		wb_avro_put_long(b, m->off);
		wb_avro_put_long(b, m->len);
	}
}

static void r_money(wb_buf *b, const struct money *m)
{
	out_c(b, (char)(m->obj | m->has_cur << 1));
	wb_avro_put_long(b, m->amount);
	if (m->has_cur)
		wb_avro_put_bytes(b, m->cur, m->curn);
}

void wb_order_record(const struct wb_order *o, wb_buf *b)
{
	out_c(b, REC_MAGIC0);
	out_c(b, REC_MAGIC1);
	if (o->merchant.t == V_STR) {
		out_c(b, 1);
		wb_avro_put_bytes(b, o->merchant.p, o->merchant.n);
	} else {
		out_c(b, 0);
	}
	wb_avro_put_long(b, v_int(&o->partition, -1));
	r_fields(b, o, head_fd, NF(head_fd));
	r_val(b, &o->lines);
	r_val(b, &o->snap_fstatus);
	r_fields(b, o, order_fd, NF(order_fd));
	r_fields(b, o, payment_fd, NF(payment_fd));
	r_fields(b, o, tail_fd, NF(tail_fd));
	r_items(b, &o->line_items);
	r_money(b, &o->total);
	wb_avro_put_long(b, o->n_fuls);
	for (uint32_t i = 0; i < o->n_fuls; i++) {
		r_fields(b, &o->fuls[i], ful_fd, NF(ful_fd));
		r_items(b, &o->fuls[i].items);
	}
	wb_avro_put_long(b, o->n_ships);
	for (uint32_t i = 0; i < o->n_ships; i++)
		r_fields(b, &o->ships[i], ship_fd, NF(ship_fd));
	wb_avro_put_long(b, o->n_refunds);
	for (uint32_t i = 0; i < o->n_refunds; i++) {
		r_fields(b, &o->refunds[i], refund_fd, NF(refund_fd));
		r_money(b, &o->refunds[i].money);
		r_items(b, &o->refunds[i].items);
	}
	wb_avro_put_long(b, o->n_rets);
	for (uint32_t i = 0; i < o->n_rets; i++) {
		r_fields(b, &o->rets[i], ret_fd, NF(ret_fd));
		wb_avro_put_long(b, o->rets[i].nlines);
	}
	wb_avro_put_long(b, o->n_actions);
	for (uint32_t i = 0; i < o->n_actions; i++)
		r_fields(b, &o->actions[i], action_fd, NF(action_fd));
	out_c(b, (char)o->nt);
	for (int i = 0; i < o->nt; i++) {
		out_c(b, (char)o->tord[i]);
		wb_avro_put_long(b, o->tv[o->tord[i]]);
	}
}

struct rd {
	struct wb_avro_reader r;
	bool bad;
};

static uint8_t rd_u8(struct rd *d)
{
	if (d->r.p >= d->r.end) {
		d->bad = true;
		return 0;
	}
	return *d->r.p++;
}

static int64_t rd_long(struct rd *d)
{
	int64_t v = 0;
	if (!wb_avro_get_long(&d->r, &v))
		d->bad = true;
	return v;
}

static uint32_t rd_count(struct rd *d, size_t min_size)
{
	int64_t n = rd_long(d);
	if (n < 0 || (uint64_t)n * min_size > (uint64_t)(d->r.end - d->r.p)) {
		d->bad = true;
		return 0;
	}
	return (uint32_t)n;
}

static const char *rd_bytes(struct rd *d, uint32_t *n)
{
	const uint8_t *p = NULL;
	size_t len = 0;
	if (!wb_avro_get_bytes(&d->r, &p, &len) || len > UINT32_MAX) {
		d->bad = true;
		*n = 0;
		return "";
	}
	*n = (uint32_t)len;
	return (const char *)p;
}

static struct val rd_val(struct rd *d)
{
	struct val v = {NULL, 0, rd_u8(d), 0};
	if (v.t == V_INT)
		v.i = rd_long(d);
	else if (v.t == V_STR || v.t == V_JSON)
		v.p = rd_bytes(d, &v.n);
	else if (v.t > V_JSON)
		d->bad = true;
	return v;
}

static void rd_fields(struct rd *d, void *base, const struct fdesc *fd,
		      size_t n)
{
	for (size_t i = 0; i < n; i++)
		*fval(base, &fd[i]) = rd_val(d);
}

static void rd_items(struct rd *d, struct wb_arena *a, struct items *it)
{
	it->arr = rd_u8(d) != 0;
	it->n = rd_count(d, 4);
	it->v = it->n ? wb_arena_alloc(a, it->n * sizeof(*it->v)) : NULL;
	for (uint32_t i = 0; i < it->n && !d->bad; i++) {
		struct item *m = &it->v[i];
		uint8_t f = rd_u8(d);
		*m = (struct item){.obj = f & 1, .has_key = (f >> 1) & 1};
		if (m->has_key)
			m->key = rd_bytes(d, &m->kn);
		m->qty = rd_long(d);
		m->off = (uint32_t)rd_long(d);
		m->len = (uint32_t)rd_long(d);
	}
}

static void rd_money(struct rd *d, struct money *m)
{
	uint8_t f = rd_u8(d);
	*m = (struct money){.obj = f & 1, .has_cur = (f >> 1) & 1};
	m->amount = rd_long(d);
	if (m->has_cur)
		m->cur = rd_bytes(d, &m->curn);
}

static bool rd_header(struct rd *d, const char **m, uint32_t *mn)
{
	if (rd_u8(d) != REC_MAGIC0 || rd_u8(d) != REC_MAGIC1)
		return false;
	uint8_t has = rd_u8(d);
	*m = NULL;
	*mn = 0;
	if (has == 1)
		*m = rd_bytes(d, mn);
	return !d->bad && has <= 1;
}

bool wb_record_merchant(const uint8_t *rec, size_t len, const char **m,
			size_t *n)
{
	struct rd d = {{rec, rec + len, true}, false};
	uint32_t mn;
	if (!rd_header(&d, m, &mn) || !*m)
		return false;
	*n = mn;
	return true;
}

int32_t wb_record_partition(const uint8_t *rec, size_t len)
{
	struct rd d = {{rec, rec + len, true}, false};
	const char *m;
	uint32_t mn;
	if (!rd_header(&d, &m, &mn))
		return -1;
	int64_t p = rd_long(&d);
	return !d.bad && p >= 0 && p <= INT32_MAX ? (int32_t)p : -1;
}

#define RD_ARRAY(d, o, name)                                                 \
	do {                                                                 \
		(o)->n_##name = (o)->cap_##name = rd_count((d), 2);          \
		(o)->name = (o)->n_##name                                    \
				    ? wb_arena_alloc(&(o)->mem,              \
						     (o)->n_##name *          \
							     sizeof(*(o)->name)) \
				    : NULL;                                  \
	} while (0)

wb_err wb_order_load(struct wb_order *o, uint8_t *rec, size_t len, bool own)
{
	order_clear(o);
	if (own)
		o->rec = rec;
	struct rd d = {{rec, rec + len, true}, false};
	const char *m;
	uint32_t mn;
	if (!rd_header(&d, &m, &mn))
		goto bad;
	int64_t part = rd_long(&d);
	rd_fields(&d, o, head_fd, NF(head_fd));
	/* queries trust the header's merchant (and the answer cache its
	 * partition) without decoding the rest: both must be the view's */
	if (m ? !v_eq(&o->merchant, m, mn) : o->merchant.t == V_STR)
		goto bad;
	o->lines = rd_val(&d);
	o->snap_fstatus = rd_val(&d);
	rd_fields(&d, o, order_fd, NF(order_fd));
	rd_fields(&d, o, payment_fd, NF(payment_fd));
	rd_fields(&d, o, tail_fd, NF(tail_fd));
	rd_items(&d, &o->mem, &o->line_items);
	rd_money(&d, &o->total);
	RD_ARRAY(&d, o, fuls);
	for (uint32_t i = 0; i < o->n_fuls && !d.bad; i++) {
		rd_fields(&d, &o->fuls[i], ful_fd, NF(ful_fd));
		rd_items(&d, &o->mem, &o->fuls[i].items);
	}
	RD_ARRAY(&d, o, ships);
	for (uint32_t i = 0; i < o->n_ships && !d.bad; i++)
		rd_fields(&d, &o->ships[i], ship_fd, NF(ship_fd));
	RD_ARRAY(&d, o, refunds);
	for (uint32_t i = 0; i < o->n_refunds && !d.bad; i++) {
		rd_fields(&d, &o->refunds[i], refund_fd, NF(refund_fd));
		rd_money(&d, &o->refunds[i].money);
		rd_items(&d, &o->mem, &o->refunds[i].items);
	}
	RD_ARRAY(&d, o, rets);
	for (uint32_t i = 0; i < o->n_rets && !d.bad; i++) {
		rd_fields(&d, &o->rets[i], ret_fd, NF(ret_fd));
		o->rets[i].nlines = (uint32_t)rd_long(&d);
	}
	RD_ARRAY(&d, o, actions);
	for (uint32_t i = 0; i < o->n_actions && !d.bad; i++)
		rd_fields(&d, &o->actions[i], action_fd, NF(action_fd));
	uint8_t nt = rd_u8(&d);
	if (nt > F_COUNT)
		goto bad;
	for (int i = 0; i < nt && !d.bad; i++) {
		uint8_t f = rd_u8(&d);
		if (f >= F_COUNT || o->tset[f])
			goto bad;
		o->tord[o->nt++] = f;
		o->tset[f] = true;
		o->tv[f] = rd_long(&d);
	}
	if (d.bad || d.r.p != d.r.end || part != v_int(&o->partition, -1))
		goto bad;
	/* the lines' item spans must lie inside the lines' text */
	for (uint32_t i = 0; i < o->line_items.n; i++) {
		const struct item *it = &o->line_items.v[i];
		if (o->lines.t != V_JSON || it->len < 1 ||
		    (uint64_t)it->off + it->len > o->lines.n)
			goto bad;
	}
	o->exists = true;
	return WB_OK;
bad:
	order_clear(o);
	return WB_ECORRUPT;
}

/* ---- a jansson view as a struct -------------------------------------------- */

/* The fields of base from object node e: JSON null for a missing key,
 * ABSENT for a missing optional one. */
static void dom_fields(const struct fold *c, const struct jn *e, void *base,
		       const struct fdesc *fd, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct jn *x = child(c->ev, e, fd[i].key);
		*fval(base, &fd[i]) =
			x || !fd[i].optional ? vnode(c, x) : (struct val){0};
	}
}

static void order_from_dom(struct wb_order *o, const struct wb_event *ev,
			   struct wb_arena *a)
{
	struct fold c = {.o = o, .ev = ev, .root = N(ev, ev->root), .a = a};
	const struct jn *v = c.root;
	if (!v || v->t != J_OBJ)
		return;
	o->exists = true;
	dom_fields(&c, v, o, head_fd, NF(head_fd));
	set_totals(&c, child(ev, v, "totals"));
	set_snapshot(&c, child(ev, v, "snapshot"));
	set_lines(&c, child(ev, v, "lines"));
	dom_fields(&c, child(ev, v, "order"), o, order_fd, NF(order_fd));
	dom_fields(&c, child(ev, v, "payment"), o, payment_fd, NF(payment_fd));
	dom_fields(&c, v, o, tail_fd, NF(tail_fd));
	const struct jn *x = child(ev, v, "fulfillments");
	for (int32_t k = x && x->t == J_ARR ? x->first : -1; k >= 0;
	     k = ev->nodes[k].next) {
		struct ful *f = PUSH(o, fuls, a);
		dom_fields(&c, &ev->nodes[k], f, ful_fd, NF(ful_fd));
		items_of(&c, child(ev, &ev->nodes[k], "lines"), &f->items);
	}
	x = child(ev, v, "shipments");
	for (int32_t k = x && x->t == J_ARR ? x->first : -1; k >= 0;
	     k = ev->nodes[k].next)
		dom_fields(&c, &ev->nodes[k], PUSH(o, ships, a), ship_fd,
			   NF(ship_fd));
	x = child(ev, v, "refunds");
	for (int32_t k = x && x->t == J_ARR ? x->first : -1; k >= 0;
	     k = ev->nodes[k].next) {
		struct refund *r = PUSH(o, refunds, a);
		dom_fields(&c, &ev->nodes[k], r, refund_fd, NF(refund_fd));
		r->money = money_of(&c, child(ev, &ev->nodes[k], "amount"));
		items_of(&c, child(ev, &ev->nodes[k], "lines"), &r->items);
	}
	x = child(ev, v, "returns");
	for (int32_t k = x && x->t == J_ARR ? x->first : -1; k >= 0;
	     k = ev->nodes[k].next) {
		struct ret *r = PUSH(o, rets, a);
		dom_fields(&c, &ev->nodes[k], r, ret_fd, NF(ret_fd));
		r->nlines = (uint32_t)arr_size(child(ev, &ev->nodes[k], "lines"));
	}
	x = child(ev, v, "actions");
	for (int32_t k = x && x->t == J_ARR ? x->first : -1; k >= 0;
	     k = ev->nodes[k].next)
		dom_fields(&c, &ev->nodes[k], PUSH(o, actions, a), action_fd,
			   NF(action_fd));
	x = child(ev, v, "_t");
	for (int32_t k = x && x->t == J_OBJ ? x->first : -1; k >= 0;
	     k = ev->nodes[k].next) {
		const struct jn *e = &ev->nodes[k];
		for (int f = 0; f < F_COUNT; f++)
			if (strcmp(e->key, facet_names[f]) == 0 &&
			    !o->tset[f]) {
				o->tset[f] = true;
				o->tord[o->nt++] = (uint8_t)f;
				o->tv[f] = n_int(e, 0);
			}
	}
}

/* ---- the jansson interface ------------------------------------------------ */

struct conv {
	struct wb_arena a;
	struct wb_event *ev;
	struct wb_order *o;
	wb_buf b;
};

static void conv_open(struct conv *cv, json_t *view)
{
	memset(cv, 0, sizeof(*cv));
	cv->ev = wb_event_new();
	cv->o = wb_order_new();
	wb_buf_init(&cv->b);
	if (view) {
		wb_event_from_json(cv->ev, view);
		order_from_dom(cv->o, cv->ev, &cv->a);
	}
}

static void conv_close(struct conv *cv)
{
	wb_event_free(cv->ev);
	wb_order_free(cv->o);
	wb_arena_finish(&cv->a);
	wb_buf_finish(&cv->b);
}

static json_t *load_text(const wb_buf *b)
{
	json_error_t je;
	json_t *j = json_loadb((const char *)b->data, b->len, 0, &je);
	assert(j && "the fold writes valid JSON");
	return j;
}

wb_err wb_order_fold_ex(json_t **view, json_t *entry,
			struct wb_fold_info *info, char *msg, size_t msglen)
{
	struct conv cv;
	conv_open(&cv, *view);
	wb_event_from_json(cv.ev, entry);
	wb_err rc = wb_order_apply(cv.o, cv.ev, &cv.a, info, msg, msglen);
	if (!rc) {
		wb_order_view_write(cv.o, &cv.b);
		json_t *nv = load_text(&cv.b);
		json_decref(*view);
		*view = nv;
	}
	conv_close(&cv);
	return rc;
}

wb_err wb_order_fold(json_t **view, json_t *entry, char *msg, size_t msglen)
{
	return wb_order_fold_ex(view, entry, NULL, msg, msglen);
}

json_t *wb_order_present(json_t *view, int64_t now_ms, int return_window_days)
{
	struct conv cv;
	conv_open(&cv, view);
	wb_order_present_write(cv.o, now_ms, return_window_days, &cv.b);
	json_t *p = load_text(&cv.b);
	conv_close(&cv);
	return p;
}

void wb_order_status_encode(json_t *view, wb_buf *out)
{
	struct conv cv;
	conv_open(&cv, view);
	wb_order_status_write(cv.o, out);
	conv_close(&cv);
}

json_t *wb_order_status(json_t *view, int64_t now_ms, int return_window_days)
{
	(void)now_ms; /* nothing in OrderStatus depends on the clock */
	(void)return_window_days;
	wb_buf b;
	wb_buf_init(&b);
	wb_order_status_encode(view, &b);
	json_t *st = NULL;
	char msg[128];
	wb_err rc = wb_avro_decode(WB_SCHEMA_ORDER_STATUS, b.data, b.len, &st,
				   msg, sizeof(msg));
	assert(rc == WB_OK && "the fold writes valid OrderStatus");
	(void)rc;
	wb_buf_finish(&b);
	return st;
}

void wb_timeline_write(wb_buf *b, json_t *entry,
		       const struct wb_fold_info *info)
{
	struct wb_event *ev = wb_event_new();
	wb_event_from_json(ev, entry);
	wb_event_timeline(b, ev, info);
	wb_event_free(ev);
}

json_t *wb_timeline_entry(json_t *entry, const struct wb_fold_info *info)
{
	wb_buf b;
	wb_buf_init(&b);
	wb_timeline_write(&b, entry, info);
	json_t *t = json_loadb((const char *)b.data, b.len, 0, NULL);
	wb_buf_finish(&b);
	return t;
}

void wb_view_lookups(json_t *view,
		     void (*fn)(enum wb_lookup kind, const char *value,
				void *ud),
		     void *ud)
{
	struct conv cv;
	conv_open(&cv, view);
	wb_order_lookups(cv.o, fn, ud);
	conv_close(&cv);
}

/* ---- lookups ------------------------------------------------------------- */

bool wb_lookup_normalise(enum wb_lookup kind, const char *in, wb_buf *out)
{
	wb_buf_reset(out);
	if (!in)
		return false;
	while (isspace((unsigned char)*in))
		in++;
	size_t n = strlen(in);
	while (n && isspace((unsigned char)in[n - 1]))
		n--;
	if (kind == WB_LOOKUP_NAME && n && in[0] == '#') {
		in++;
		n--;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)in[i];
		if (ch == 0)
			break;
		if (kind == WB_LOOKUP_TRACKING && isspace(ch))
			continue; /* "1Z 999 AA1" == "1Z999AA1" */
		wb_buf_putc(out, kind == WB_LOOKUP_CHANNEL_ORDER_ID
					 ? ch
					 : (uint8_t)tolower(ch));
	}
	wb_buf_putc(out, 0);
	out->len--;
	return out->len > 0;
}

/* ---- return windows -------------------------------------------------------- */

bool wb_return_windows_parse(const char *list,
			     void (*fn)(const char *merchant, size_t n,
					int days, void *ud),
			     void *ud, char *msg, size_t msglen)
{
	const char *p = list;
	while (p && *p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		while (len && isspace((unsigned char)*p)) {
			p++;
			len--;
		}
		if (!eq || eq == p) {
			wb_fail(msg, msglen, WB_ECONFIG,
				"return windows: expected merchant=days in "
				"'%.*s'",
				(int)len, p);
			return false;
		}
		size_t mlen = (size_t)(eq - p);
		while (mlen && isspace((unsigned char)p[mlen - 1]))
			mlen--;
		char num[32];
		size_t nlen = len - (size_t)(eq + 1 - p);
		if (nlen >= sizeof(num)) {
			wb_fail(msg, msglen, WB_ECONFIG,
				"return windows: bad days for '%.*s'",
				(int)mlen, p);
			return false;
		}
		memcpy(num, eq + 1, nlen);
		num[nlen] = 0;
		char *s = num;
		while (isspace((unsigned char)*s))
			s++;
		size_t sl = strlen(s);
		while (sl && isspace((unsigned char)s[sl - 1]))
			s[--sl] = 0;
		int64_t days;
		if (!wb_parse_i64(s, -1, 3650, &days)) {
			wb_fail(msg, msglen, WB_ECONFIG,
				"return windows: days for '%.*s' must be an "
				"integer from -1 to 3650, got '%s'",
				(int)mlen, p, s);
			return false;
		}
		if (fn)
			fn(p, mlen, (int)days, ud);
		p = end ? end + 1 : NULL;
	}
	return true;
}
