/*
 * ingest_pos.c — `waybill-ingest pos FILE|-`: a retail POS export (CSV or
 * NDJSON, README "POS exports") into <prefix>events.
 *
 * The file is read through the bounded line reader and handed line by line
 * to the pure reader in pos_map.c, which groups rows into receipts and
 * lays out their events; this loop only produces them and reports rejects
 * as FILE:LINE: REASON. As in `events` mode a bad line never stops the
 * run, and the exit status says whether everything read was accepted and
 * acknowledged by Kafka.
 */
#include "wb_ingest.h"

#include <inttypes.h>
#include <string.h>

struct run {
	const char *name;
	wb_ingest_producer *prod;
	uint64_t rejects, too_big;
	bool io_error, kafka_error;
};

static wb_err on_event(void *ud, const struct wb_ingest_record *rec,
		       long line)
{
	struct run *run = ud;
	char msg[512];
	wb_err rc = wb_ingest_producer_send(run->prod, rec, msg, sizeof(msg));
	if (rc == WB_ETOOBIG) {
		/* this one receipt can never be sent; the rest can */
		fprintf(stderr, "%s:%ld: event %s: %s\n", run->name, line,
			rec->event_id, msg);
		run->too_big++;
		return WB_OK;
	}
	if (rc) {
		run->kafka_error = true;
		wb_log(WB_LOG_ERROR, "producer_failed",
		       "file=%s line=%ld error=%s", wb_log_q(run->name), line,
		       wb_log_q(msg));
	}
	return rc;
}

static void on_reject(void *ud, long line, const char *why)
{
	struct run *run = ud;
	run->rejects++;
	fprintf(stderr, "%s:%ld: %s\n", run->name, line, why);
}

static int usage_error(const char *why)
{
	fprintf(stderr, "waybill-ingest pos: %s\nusage: waybill-ingest pos "
			"FILE|- [OPTIONS] (see --help)\n", why);
	return WB_INGEST_EXIT_USAGE;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* ingest.pos.format, or for auto: the file's extension, else the first
 * character of the first non-blank line ('{' is NDJSON). */
static bool pick_format(const char *setting, const char *path,
			const char *first, enum wb_pos_format *out)
{
	if (strcmp(setting, "csv") == 0) {
		*out = WB_POS_CSV;
	} else if (strcmp(setting, "ndjson") == 0) {
		*out = WB_POS_NDJSON;
	} else if (strcmp(setting, "auto") != 0) {
		return false;
	} else if (ends_with(path, ".csv")) {
		*out = WB_POS_CSV;
	} else if (ends_with(path, ".ndjson") || ends_with(path, ".jsonl")) {
		*out = WB_POS_NDJSON;
	} else {
		while (first && (*first == ' ' || *first == '\t'))
			first++;
		*out = first && *first == '{' ? WB_POS_NDJSON : WB_POS_CSV;
	}
	return true;
}

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t')
			return false;
	return true;
}

static void ingest(struct run *run, const struct wb_ingest_file *f,
		   const wb_config *cfg, volatile sig_atomic_t *stop,
		   struct wb_pos_counts *counts)
{
	char msg[512];
	size_t max_line = f->max_line;
	const char *path = f->is_stdin ? "" : f->path;
	wb_line_reader *lr = wb_line_reader_create(f->fd, max_line);
	struct wb_pos_sink sink = {on_event, on_reject, run};
	const char *merchant = wb_config_get(cfg, "ingest.pos.merchant");
	const char *source = f->source;
	wb_pos *pos = NULL;
	wb_err rc = WB_OK;
	int64_t now = 0;
	memset(counts, 0, sizeof(*counts));
	while (!(stop && *stop) && rc == WB_OK) {
		char *line;
		size_t len;
		long lineno = 0;
		wb_err lrc = wb_line_reader_next(lr, &line, &len, &lineno, msg,
						 sizeof(msg));
		if (lrc == WB_ENOTFOUND)
			break;
		if (lrc == WB_EIO) {
			if (stop && *stop)
				break;
			wb_log(WB_LOG_ERROR, "read_failed", "file=%s error=%s",
			       wb_log_q(run->name), wb_log_q(msg));
			run->io_error = true;
			break;
		}
		if (!pos) {
			/* the format may depend on the first real line */
			if (lrc == WB_OK && blank(line, len))
				continue;
			enum wb_pos_format fmt = WB_POS_CSV;
			pick_format(wb_config_get(cfg, "ingest.pos.format"),
				    path, lrc == WB_OK ? line : NULL, &fmt);
			pos = wb_pos_create(fmt, merchant, source, max_line,
					    &sink);
			wb_log(WB_LOG_DEBUG, "pos_format", "file=%s format=%s",
			       wb_log_q(run->name),
			       fmt == WB_POS_CSV ? "csv" : "ndjson");
		}
		/* ingest_time: the clock is read every 256 lines, not per
		 * line (a few % of the bulk path) */
		if ((lineno & 255) == 1 || now == 0)
			now = wb_now_ms();
		if (lrc == WB_ETOOBIG)
			wb_pos_skip(pos, lineno, msg);
		else
			rc = wb_pos_feed(pos, line, len, lineno, now);
	}
	if (!pos) /* empty input: the reader says what it expected */
		pos = wb_pos_create(WB_POS_CSV, merchant, source, max_line,
				    &sink);
	if (rc == WB_OK && !(stop && *stop) && !run->io_error)
		wb_pos_finish(pos, wb_now_ms());
	wb_pos_get_counts(pos, counts);
	wb_pos_destroy(pos);
	wb_line_reader_destroy(lr);
}

int wb_ingest_pos_main(const wb_config *cfg, int nargs, char **args,
		       volatile sig_atomic_t *stop)
{
	const char *merchant = wb_config_get(cfg, "ingest.pos.merchant");
	enum wb_pos_format dummy;
	if (!merchant || !*merchant)
		return usage_error("ingest.pos.merchant is required: the "
				   "merchant (tenant) the stores belong to");
	if (!pick_format(wb_config_get(cfg, "ingest.pos.format"), "", "",
			 &dummy))
		return usage_error("ingest.pos.format must be auto, csv or "
				   "ndjson");
	struct wb_ingest_file f;
	int urc = wb_ingest_file_open(cfg, "pos", nargs, args, &f);
	if (urc >= 0)
		return urc;
	struct run run = {.name = f.name, .prod = f.prod};
	struct wb_pos_counts pc;
	ingest(&run, &f, cfg, stop, &pc);
	wb_ingest_file_close(&f, stop, pc.rows);
	const struct wb_ingest_counts *c = &f.counts;
	double secs = f.secs;
	wb_log(WB_LOG_INFO, "ingest_done",
	       "file=%s topic=%s rows=%" PRIu64 " rows_rejected=%" PRIu64
	       " receipts=%" PRIu64 " receipts_rejected=%" PRIu64
	       " events=%" PRIu64 " acked=%" PRIu64 " failed=%" PRIu64
	       " seconds=%.3f rows_per_s=%.0f events_per_s=%.0f",
	       wb_log_q(run.name), wb_log_q(f.topic), pc.rows,
	       pc.rows_rejected, pc.receipts, pc.receipts_rejected, pc.events,
	       c->acked, c->failed, secs,
	       secs > 0 ? (double)pc.rows / secs : 0.0,
	       secs > 0 ? (double)c->acked / secs : 0.0);
	printf("rows=%" PRIu64 " rejected=%" PRIu64 " receipts=%" PRIu64
	       " receipts_rejected=%" PRIu64 " events=%" PRIu64
	       " acked=%" PRIu64 " failed=%" PRIu64 "\n",
	       pc.rows, pc.rows_rejected, pc.receipts, pc.receipts_rejected,
	       pc.events, c->acked, c->failed);
	fflush(stdout);
	bool clean = run.rejects == 0 && run.too_big == 0 && c->failed == 0 &&
		     c->acked == pc.events && !pc.header_error &&
		     !run.io_error && !run.kafka_error && !f.stopped &&
		     f.flush_rc == WB_OK;
	return clean ? WB_INGEST_EXIT_OK : WB_INGEST_EXIT_FAIL;
}
