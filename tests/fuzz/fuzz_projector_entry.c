/*
 * fuzz_projector_entry.c — the projector's own path from ledger bytes to
 * answers: stored LedgerEntry values (wb_entry_parse, then the fold's own
 * Avro decoder wb_event_from_entry) folded one after another into one
 * order's view (wb_order_apply), the view written as its stored record
 * (wb_order_record), loaded back (wb_order_load) and presented as JSON.
 *
 * Input: one or more LedgerEntry bodies separated by SEP ("--entry--"),
 * at most MAX_ENTRIES of them, so that later entries fold into the view
 * the earlier ones built (an entry of another order is refused by the
 * fold and skipped). Invariants, after every entry the fold accepts:
 *  - the presented view, the stored view and the timeline record are
 *    valid JSON, and the OrderStatus record decodes with the generic
 *    Avro codec;
 *  - the view reloaded from its record presents identically (at two
 *    clocks: eligibility depends on the time) and writes the same record;
 *  - folding the same entry through the jansson interface (what tests
 *    and `waybill as-of` call: wb_entry_to_json, wb_order_fold_ex) gives
 *    the same stored view.
 *
 * With WB_FUZZ_RECORD_DIR set, every record written goes to that
 * directory too (tests/fuzz/make_projector_corpus.py makes the seeds of
 * fuzz_projector_record that way).
 */
#include <string.h>

#include "fuzz.h"
#include "projector_internal.h"
#include "wb_schema.h"

#define SEP "--entry--"
#define MAX_ENTRIES 64
#define NOW1 1767225600000LL                     /* 2026-01-01 */
#define NOW2 (NOW1 + 20LL * 24 * 3600 * 1000) /* 20 days later */

static const char *record_dir;
static unsigned records_written;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_init_json();
	record_dir = getenv("WB_FUZZ_RECORD_DIR");
	return 0;
}

static void save_record(const wb_buf *rec)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/record-%03u", record_dir,
		 records_written++);
	FILE *f = fopen(path, "wb");
	if (f) {
		fwrite(rec->data, 1, rec->len, f);
		fclose(f);
	}
}

static bool valid_json(const wb_buf *b)
{
	json_t *j = json_loadb((const char *)b->data, b->len, 0, NULL);
	json_decref(j);
	return j != NULL;
}

static bool same(const wb_buf *a, const wb_buf *b)
{
	return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

static void present(const struct wb_order *o, int64_t now, wb_buf *out)
{
	wb_buf_reset(out);
	wb_order_present_write(o, now, WB_DEFAULT_RETURN_WINDOW_DAYS, out);
}

struct state {
	struct wb_order *o;  /* the struct fold's view */
	json_t *view;        /* the jansson fold's view */
	struct wb_arena a;
	struct wb_event *ev;
	wb_buf rec, rec2, p1, p2, text;
};

/* The checks after o accepted an entry; o then holds its reloaded
 * record, as the store's views do after a commit. */
static void check_view(struct state *s)
{
	wb_buf_reset(&s->rec);
	wb_order_record(s->o, &s->rec);
	if (record_dir)
		save_record(&s->rec);

	wb_buf_reset(&s->text);
	wb_order_view_write(s->o, &s->text);
	FUZZ_CHECK(valid_json(&s->text), "stored view is not JSON: %.*s",
		   (int)s->text.len, (const char *)s->text.data);
	wb_buf_reset(&s->text);
	wb_order_status_write(s->o, &s->text);
	json_t *st = NULL;
	char msg[256];
	FUZZ_CHECK(wb_avro_decode(WB_SCHEMA_ORDER_STATUS, s->text.data,
				  s->text.len, &st, msg, sizeof(msg)) == WB_OK,
		   "OrderStatus does not decode: %s", msg);
	json_decref(st);

	int64_t clocks[2] = {NOW1, NOW2};
	wb_buf before[2];
	for (int i = 0; i < 2; i++) {
		wb_buf_init(&before[i]);
		present(s->o, clocks[i], &before[i]);
		FUZZ_CHECK(valid_json(&before[i]),
			   "presented view is not JSON: %.*s",
			   (int)before[i].len, (const char *)before[i].data);
	}
	uint8_t *copy = wb_xmalloc(s->rec.len ? s->rec.len : 1);
	memcpy(copy, s->rec.data, s->rec.len);
	FUZZ_CHECK(wb_order_load(s->o, copy, s->rec.len, true) == WB_OK,
		   "a view does not load from its own record (%zu bytes)",
		   s->rec.len);
	wb_arena_reset(&s->a); /* nothing of the fold is referenced now */
	for (int i = 0; i < 2; i++) {
		present(s->o, clocks[i], &s->p2);
		FUZZ_CHECK(same(&before[i], &s->p2),
			   "reloaded view presents differently:\n  %.*s\n  "
			   "%.*s",
			   (int)before[i].len, (const char *)before[i].data,
			   (int)s->p2.len, (const char *)s->p2.data);
		wb_buf_finish(&before[i]);
	}
	wb_buf_reset(&s->rec2);
	wb_order_record(s->o, &s->rec2);
	FUZZ_CHECK(same(&s->rec, &s->rec2),
		   "reloaded view writes another record");
}

/* The jansson fold of the same entry must store the same view. */
static void check_jansson(struct state *s, const struct wb_entry *e,
			  wb_err struct_rc)
{
	json_t *j = NULL;
	char msg[256];
	if (wb_entry_to_json(e, &j, msg, sizeof(msg)) != WB_OK)
		return; /* the generic codec is fuzzed on its own */
	struct wb_fold_info info;
	wb_err rc = wb_order_fold_ex(&s->view, j, &info, msg, sizeof(msg));
	json_decref(j);
	FUZZ_CHECK((rc == WB_OK) == (struct_rc == WB_OK),
		   "the jansson fold says %d, the struct fold %d", rc,
		   struct_rc);
	if (rc != WB_OK)
		return;
	wb_buf_reset(&s->text);
	wb_order_view_write(s->o, &s->text);
	json_t *mine = json_loadb((const char *)s->text.data, s->text.len, 0,
				  NULL);
	FUZZ_CHECK(json_equal(mine, s->view),
		   "the jansson fold stores another view");
	json_decref(mine);
}

static void one_entry(struct state *s, const uint8_t *p, size_t n)
{
	struct wb_entry e;
	char msg[256];
	if (wb_entry_parse(p, n, &e, msg, sizeof(msg)) != WB_OK)
		return;
	if (wb_event_from_entry(s->ev, &e, msg, sizeof(msg)) != WB_OK)
		return;
	struct wb_fold_info info;
	wb_err rc = wb_order_apply(s->o, s->ev, &s->a, &info, msg, sizeof(msg));
	if (rc == WB_OK) {
		wb_buf_reset(&s->text);
		wb_event_timeline(&s->text, s->ev, &info);
		FUZZ_CHECK(valid_json(&s->text),
			   "timeline record is not JSON: %.*s",
			   (int)s->text.len, (const char *)s->text.data);
		check_view(s);
	}
	check_jansson(s, &e, rc);
}

static const uint8_t *find_sep(const uint8_t *p, const uint8_t *end)
{
	size_t k = sizeof(SEP) - 1;
	for (; (size_t)(end - p) >= k; p++)
		if (*p == SEP[0] && memcmp(p, SEP, k) == 0)
			return p;
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct state s = {.o = wb_order_new(), .ev = wb_event_new()};
	wb_buf_init(&s.rec);
	wb_buf_init(&s.rec2);
	wb_buf_init(&s.p1);
	wb_buf_init(&s.p2);
	wb_buf_init(&s.text);
	const uint8_t *p = data, *end = data + size;
	for (int i = 0; i < MAX_ENTRIES && p <= end; i++) {
		const uint8_t *q = find_sep(p, end);
		one_entry(&s, p, (size_t)((q ? q : end) - p));
		if (!q)
			break;
		p = q + sizeof(SEP) - 1;
	}
	json_decref(s.view);
	wb_event_free(s.ev);
	wb_order_free(s.o);
	wb_arena_finish(&s.a);
	wb_buf_finish(&s.rec);
	wb_buf_finish(&s.rec2);
	wb_buf_finish(&s.p1);
	wb_buf_finish(&s.p2);
	wb_buf_finish(&s.text);
	return 0;
}
