/*
 * fuzz_projector_record.c — a stored view record (the projector's own
 * binary format, read from its RocksDB on every query and every apply)
 * through wb_record_merchant, wb_record_partition, wb_order_load and
 * everything the store and the HTTP API then do with the view: present
 * it, write its stored JSON, its OrderStatus, its lookups and returns.
 *
 * A record is ours, but the loader must still not trust it: a damaged
 * store must give an error, never a crash. Invariants:
 *  - a record wb_order_load accepts has the merchant wb_record_merchant
 *    finds in its header (or none when that finds none): queries check
 *    the header only;
 *  - an accepted view writes a record that loads again, writes itself
 *    back byte for byte and presents as the first load did (at two
 *    clocks: eligibility depends on the time).
 */
#include <string.h>

#include "fuzz.h"
#include "projector_internal.h"

#define NOW1 1767225600000LL                     /* 2026-01-01 */
#define NOW2 (NOW1 + 20LL * 24 * 3600 * 1000) /* 20 days later */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_init_json();
	return 0;
}

static bool same(const wb_buf *a, const wb_buf *b)
{
	return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

static void count_lookup(enum wb_lookup kind, const char *value, void *ud)
{
	(void)kind;
	*(size_t *)ud += strlen(value);
}

static void count_return(const char *id, size_t idlen, const char *json,
			 size_t len, void *ud)
{
	(void)id;
	(void)json;
	*(size_t *)ud += idlen + len;
}

/* Everything a stored view is used for, appended to out. */
static void render(const struct wb_order *o, wb_buf *out)
{
	wb_order_present_write(o, NOW1, WB_DEFAULT_RETURN_WINDOW_DAYS, out);
	wb_order_present_write(o, NOW2, 3, out);
	wb_order_present_write(o, NOW2, -1, out);
	wb_order_view_write(o, out);
	wb_order_status_write(o, out);
	size_t n = 0;
	wb_order_lookups(o, count_lookup, &n);
	wb_order_returns(o, count_return, &n);
	wb_json_put_int(out, (int64_t)n);
	wb_json_put_int(out, wb_order_version(o));
}

static uint8_t *dup(const void *p, size_t n)
{
	uint8_t *c = wb_xmalloc(n ? n : 1);
	memcpy(c, p, n);
	return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *m;
	size_t mn;
	bool has_merchant = wb_record_merchant(data, size, &m, &mn);
	(void)wb_record_partition(data, size);

	struct wb_order *o = wb_order_new(), *o2 = wb_order_new();
	wb_buf r1, r2, p1, p2;
	wb_buf_init(&r1);
	wb_buf_init(&r2);
	wb_buf_init(&p1);
	wb_buf_init(&p2);
	if (wb_order_load(o, dup(data, size), size, true) == WB_OK) {
		size_t n;
		const char *om = wb_order_merchant(o, &n);
		FUZZ_CHECK(has_merchant ? om && n == mn && !memcmp(om, m, n)
					: !om,
			   "wb_record_merchant and wb_order_load disagree "
			   "on the merchant");
		render(o, &p1);
		wb_order_record(o, &r1);
		FUZZ_CHECK(wb_order_load(o2, dup(r1.data, r1.len), r1.len,
					 true) == WB_OK,
			   "a loaded view's record does not load");
		wb_order_record(o2, &r2);
		FUZZ_CHECK(same(&r1, &r2), "a reloaded record changes");
		render(o2, &p2);
		FUZZ_CHECK(same(&p1, &p2),
			   "a reloaded record renders differently");
	}
	wb_order_free(o);
	wb_order_free(o2);
	wb_buf_finish(&r1);
	wb_buf_finish(&r2);
	wb_buf_finish(&p1);
	wb_buf_finish(&p2);
	return 0;
}
