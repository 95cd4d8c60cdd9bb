/*
 * fuzz_pos.h — the driver both POS targets share (fuzz_pos_csv.c,
 * fuzz_pos_ndjson.c): the input is an export file, read through
 * wb_line_reader (from a memfd, lines capped at MAX_LINE so over-long ones
 * are reached) and fed to a wb_pos reader of the target's format, exactly
 * as `waybill-ingest pos` does.
 *
 * Invariants:
 *  - every event is one the ledger accepts (unframe + peek), canonical,
 *    channel pos, merchant MERCHANT, keyed by "pos:<store>-<receipt>" with
 *    an event_id under that key;
 *  - every reject names a line of the input (1 .. lines read);
 *  - counts add up: rejected rows <= rows; no events without a receipt;
 *  - the same input gives the same events (re-reads dedupe).
 */
#ifndef WB_FUZZ_POS_H
#define WB_FUZZ_POS_H

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "wb_ingest.h"

#define MAX_LINE 2048
#define MERCHANT "fuzz"
#define NOW_MS 1767225600000LL

static int memfd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_init_json();
	memfd = memfd_create("fuzz_pos", MFD_CLOEXEC);
	if (memfd < 0) {
		perror("memfd_create");
		abort();
	}
	return 0;
}

struct seen {
	long lines;      /* lines read so far */
	uint64_t digest; /* of every event, in order */
	uint64_t events;
};

static wb_err on_event(void *ud, const struct wb_ingest_record *rec,
		       long line)
{
	struct seen *s = ud;
	char msg[512] = "";
	const uint8_t *body;
	size_t len;
	struct wb_event_view v;
	FUZZ_CHECK(wb_avro_unframe(WB_SCHEMA_ORDER_EVENT, rec->value,
				   rec->value_len, &body, &len, msg,
				   sizeof(msg)) == WB_OK &&
			   wb_event_peek(body, len, &v, msg, sizeof(msg)) ==
				   WB_OK,
		   "the ledger would reject %s: %s", rec->event_id, msg);
	FUZZ_CHECK(v.canonical, "%s is not canonical Avro", rec->event_id);
	FUZZ_CHECK(v.channel.n == 3 && memcmp(v.channel.p, "pos", 3) == 0 &&
			   v.merchant.n == strlen(MERCHANT) &&
			   memcmp(v.merchant.p, MERCHANT, v.merchant.n) == 0,
		   "%s: wrong channel or merchant", rec->event_id);
	FUZZ_CHECK(rec->key_len == v.order_id.n &&
			   memcmp(rec->key, v.order_id.p, v.order_id.n) == 0 &&
			   strncmp(rec->key, "pos:", 4) == 0 &&
			   strncmp(rec->event_id, rec->key, rec->key_len) == 0 &&
			   rec->event_id[rec->key_len] == ':',
		   "%s keyed %s", rec->event_id, rec->key);
	FUZZ_CHECK(line >= 1 && line <= s->lines, "event of line %ld of %ld",
		   line, s->lines);
	s->events++;
	s->digest = wb_fnv1a(s->digest, rec->value, rec->value_len);
	return WB_OK;
}

static void on_reject(void *ud, long line, const char *why)
{
	struct seen *s = ud;
	FUZZ_CHECK(line >= 1 && line <= s->lines + 1,
		   "reject at line %ld of %ld: %s", line, s->lines, why);
	FUZZ_CHECK(why && *why, "a reject without a reason");
}

static void run_once(enum wb_pos_format fmt, struct seen *s,
		     struct wb_pos_counts *c)
{
	if (lseek(memfd, 0, SEEK_SET) != 0)
		abort();
	memset(s, 0, sizeof(*s));
	s->digest = WB_FNV_OFFSET;
	struct wb_pos_sink sink = {on_event, on_reject, s};
	wb_pos *p = wb_pos_create(fmt, MERCHANT, "pos", MAX_LINE, &sink);
	wb_line_reader *lr = wb_line_reader_create(memfd, MAX_LINE);
	for (;;) {
		char *line, msg[256];
		size_t len;
		long lineno = 0;
		wb_err rc = wb_line_reader_next(lr, &line, &len, &lineno, msg,
						sizeof(msg));
		if (rc == WB_ENOTFOUND)
			break;
		FUZZ_CHECK(rc == WB_OK || rc == WB_ETOOBIG, "reader: %s", msg);
		s->lines = lineno;
		if (rc == WB_ETOOBIG)
			wb_pos_skip(p, lineno, msg);
		else
			FUZZ_CHECK(wb_pos_feed(p, line, len, lineno, NOW_MS) ==
					   WB_OK,
				   "feed failed without a sink error");
	}
	FUZZ_CHECK(wb_pos_finish(p, NOW_MS) == WB_OK, "finish failed");
	wb_pos_get_counts(p, c);
	wb_pos_destroy(p);
	wb_line_reader_destroy(lr);
	FUZZ_CHECK(c->rows_rejected <= c->rows && c->events == s->events &&
			   (c->events == 0 || c->receipts > 0),
		   "counts do not add up: rows %llu rejected %llu receipts "
		   "%llu events %llu/%llu",
		   (unsigned long long)c->rows,
		   (unsigned long long)c->rows_rejected,
		   (unsigned long long)c->receipts,
		   (unsigned long long)c->events,
		   (unsigned long long)s->events);
}

static int fuzz_pos(enum wb_pos_format fmt, const uint8_t *data, size_t size)
{
	if (ftruncate(memfd, 0) != 0 ||
	    (size && pwrite(memfd, data, size, 0) != (ssize_t)size)) {
		perror("memfd");
		abort();
	}
	struct seen a, b;
	struct wb_pos_counts ca, cb;
	run_once(fmt, &a, &ca);
	run_once(fmt, &b, &cb);
	FUZZ_CHECK(a.digest == b.digest && a.events == b.events &&
			   memcmp(&ca, &cb, sizeof(ca)) == 0,
		   "the same export read twice gives different events");
	return 0;
}

#endif
