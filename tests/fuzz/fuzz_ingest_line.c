/*
 * fuzz_ingest_line.c — `waybill-ingest events` without the broker: the
 * input is the file, read through wb_line_reader (from a memfd, with a
 * small ingest.max.line.bytes so over-long lines are reached), and every
 * line goes through wb_ingest_event_line, the pure line -> Kafka record
 * step.
 *
 * Invariants:
 *  - the reader returns exactly the '\n'-separated lines of the input
 *    (without a trailing '\r'), NUL-terminated, numbered 1, 2, ...; a line
 *    over the cap is reported as WB_ETOOBIG and skipped, nothing else is;
 *  - an accepted line's record value is a framed OrderEvent that the
 *    ledger accepts (unframe + peek), its key is the event's order_id and
 *    its event_id the event's.
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "wb_ingest.h"

#define MAX_LINE 1024
#define NOW_MS 1767225600000LL

static int memfd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_init_json();
	memfd = memfd_create("fuzz_ingest_line", MFD_CLOEXEC);
	if (memfd < 0) {
		perror("memfd_create");
		abort();
	}
	return 0;
}

static bool slice_is(struct wb_slice s, const char *p, size_t n)
{
	return s.n == n && memcmp(s.p, p, n) == 0;
}

static void check_record(const struct wb_ingest_record *rec)
{
	char msg[512] = "";
	const uint8_t *body;
	size_t len;
	wb_err rc = wb_avro_unframe(WB_SCHEMA_ORDER_EVENT, rec->value,
				    rec->value_len, &body, &len, msg,
				    sizeof(msg));
	FUZZ_CHECK(rc == WB_OK, "record value is not framed: %s", msg);
	struct wb_event_view v;
	rc = wb_event_peek(body, len, &v, msg, sizeof(msg));
	FUZZ_CHECK(rc == WB_OK, "the ledger would reject the record: %s", msg);
	FUZZ_CHECK(v.canonical, "record value is not canonical");
	FUZZ_CHECK(rec->key[rec->key_len] == '\0' &&
			   slice_is(v.order_id, rec->key, rec->key_len),
		   "key is not the order_id");
	FUZZ_CHECK(slice_is(v.event_id, rec->event_id,
			    strlen(rec->event_id)),
		   "event_id is not the event's");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (ftruncate(memfd, 0) != 0 ||
	    (size && pwrite(memfd, data, size, 0) != (ssize_t)size) ||
	    lseek(memfd, 0, SEEK_SET) != 0) {
		perror("memfd");
		abort();
	}
	wb_line_reader *lr = wb_line_reader_create(memfd, MAX_LINE);
	wb_buf buf;
	wb_buf_init(&buf);
	char msg[512] = "";
	size_t pos = 0;
	long want_lineno = 0;
	for (;;) {
		char *line = NULL;
		size_t len = 0;
		long lineno = 0;
		wb_err rc = wb_line_reader_next(lr, &line, &len, &lineno, msg,
						sizeof(msg));
		if (rc == WB_ENOTFOUND) {
			FUZZ_CHECK(pos >= size, "end of input reported at byte "
				   "%zu of %zu", pos, size);
			break;
		}
		FUZZ_CHECK(rc == WB_OK || rc == WB_ETOOBIG,
			   "reader failed: %d %s", rc, msg);
		FUZZ_CHECK(pos < size, "a line after the end of input");
		FUZZ_CHECK(lineno == ++want_lineno, "line %ld numbered %ld",
			   want_lineno, lineno);
		const uint8_t *nl = memchr(data + pos, '\n', size - pos);
		size_t seg = (nl ? (size_t)(nl - data) : size) - pos;
		if (rc == WB_ETOOBIG) {
			FUZZ_CHECK(seg > MAX_LINE, "line %ld of %zu bytes "
				   "called too long", lineno, seg);
		} else {
			size_t want = seg;
			if (want && data[pos + want - 1] == '\r')
				want--;
			FUZZ_CHECK(seg <= MAX_LINE, "line %ld of %zu bytes "
				   "over the cap returned", lineno, seg);
			FUZZ_CHECK(len == want && line[len] == '\0' &&
					   memcmp(line, data + pos, len) == 0,
				   "line %ld is not the input's", lineno);
			struct wb_ingest_record rec;
			if (wb_ingest_event_line(line, len, "fuzz", NOW_MS,
						 &buf, &rec, msg,
						 sizeof(msg)) == WB_OK)
				check_record(&rec);
		}
		pos += seg + 1;
	}
	wb_buf_finish(&buf);
	wb_line_reader_destroy(lr);
	return 0;
}
