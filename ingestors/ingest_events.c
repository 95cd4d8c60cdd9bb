/*
 * ingest_events.c — `waybill-ingest events FILE|-`: canonical JSON-lines
 * events (design.md §4, one OrderEvent per line) into <prefix>events.
 *
 * The work is split so that the part that decides what goes to Kafka is a
 * pure function (wb_ingest_event_line: line -> key + framed Avro value),
 * testable without a broker; the loop around it only reads lines, reports
 * rejects as FILE:LINE and hands records to the shared producer. A bad line
 * never stops the run: it is reported and counted, and the exit status says
 * whether everything read was accepted and acknowledged.
 */
#include "wb_ingest.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

/* Largest accepted ingest.max.line.bytes: far above any real event, and
 * small enough that the line buffer can never be a memory problem. */
#define MAX_LINE_CAP (64u << 20)

wb_err wb_ingest_event_json(json_t *ev, const char *default_source,
			    int64_t now_ms, wb_buf *buf,
			    struct wb_ingest_record *rec, char *msg,
			    size_t msglen)
{
	if (!json_is_object(ev))
		return wb_fail(msg, msglen, WB_ESCHEMA,
			       "$: an event must be a JSON object");
	/* Canonical files may leave out what only the ingestor knows: when it
	 * saw the event and which ingestor it was. */
	json_t *it = json_object_get(ev, "ingest_time");
	if (!it || json_is_null(it))
		json_object_set_new(ev, "ingest_time", json_integer(now_ms));
	json_t *src = json_object_get(ev, "source");
	if (!src || json_is_null(src)) {
		json_t *s = json_string(default_source);
		if (!s)
			return wb_fail(msg, msglen, WB_ECONFIG,
				       "ingest.source is not valid UTF-8");
		json_object_set_new(ev, "source", s);
	}
	wb_buf_reset(buf);
	wb_avro_frame(WB_SCHEMA_ORDER_EVENT, buf);
	wb_err rc = wb_event_encode_json(ev, buf, msg, msglen);
	if (rc)
		return rc;
	/* Encoding checked both are non-empty strings without NULs. Copying
	 * them behind the value lets the JSON go now and keeps the record in
	 * the one reused buffer. */
	json_t *oid = json_object_get(ev, "order_id");
	json_t *eid = json_object_get(ev, "event_id");
	size_t value_len = buf->len;
	size_t key_off = buf->len;
	size_t key_len = json_string_length(oid);
	wb_buf_append(buf, json_string_value(oid), key_len);
	wb_buf_putc(buf, '\0');
	size_t eid_off = buf->len;
	wb_buf_append(buf, json_string_value(eid), json_string_length(eid));
	wb_buf_putc(buf, '\0');
	/* Pointers only now: the appends may have moved the buffer. */
	rec->value = buf->data;
	rec->value_len = value_len;
	rec->key = (const char *)buf->data + key_off;
	rec->key_len = key_len;
	rec->event_id = (const char *)buf->data + eid_off;
	return WB_OK;
}

wb_err wb_ingest_event_line(const char *line, size_t len,
			    const char *default_source, int64_t now_ms,
			    wb_buf *buf, struct wb_ingest_record *rec,
			    char *msg, size_t msglen)
{
	json_error_t jerr;
	/* Duplicate keys are rejected: which of two "order_id"s a reader
	 * would pick is undefined, and the log must be unambiguous. */
	json_t *ev = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!ev)
		return wb_fail(msg, msglen, WB_EPARSE,
			       "invalid JSON at column %d: %s", jerr.column,
			       jerr.text);
	wb_err rc = wb_ingest_event_json(ev, default_source, now_ms, buf, rec,
					 msg, msglen);
	json_decref(ev);
	return rc;
}

static bool is_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

struct run {
	const char *name; /* file name in messages */
	uint64_t read, accepted, rejected;
	bool io_error, kafka_error;
};

static void reject(struct run *run, long lineno, const char *why)
{
	run->rejected++;
	fprintf(stderr, "%s:%ld: %s\n", run->name, lineno, why);
}

/* Reads every line of fd and produces the valid ones. */
static void ingest(struct run *run, int fd, size_t max_line,
		   const char *source, wb_ingest_producer *prod,
		   volatile sig_atomic_t *stop)
{
	char msg[512];
	wb_line_reader *lr = wb_line_reader_create(fd, max_line);
	wb_buf buf;
	wb_buf_init(&buf);
	while (!(stop && *stop)) {
		char *line;
		size_t len;
		long lineno = 0;
		wb_err rc = wb_line_reader_next(lr, &line, &len, &lineno, msg,
						sizeof(msg));
		if (rc == WB_ENOTFOUND)
			break;
		if (rc == WB_EIO) {
			/* A signal interrupts read(2) on purpose (no
			 * SA_RESTART): that is a stop, not an I/O error. */
			if (stop && *stop)
				break;
			wb_log(WB_LOG_ERROR, "read_failed", "file=%s error=%s",
			       wb_log_q(run->name), wb_log_q(msg));
			run->io_error = true;
			break;
		}
		if (rc == WB_ETOOBIG) {
			run->read++;
			reject(run, lineno, msg);
			continue;
		}
		if (is_blank(line, len))
			continue;
		run->read++;
		struct wb_ingest_record rec;
		rc = wb_ingest_event_line(line, len, source, wb_now_ms(), &buf,
					  &rec, msg, sizeof(msg));
		if (rc == WB_OK)
			rc = wb_ingest_producer_send(prod, &rec, msg,
						     sizeof(msg));
		if (rc == WB_OK) {
			run->accepted++;
		} else if (rc == WB_EKAFKA) {
			/* The client is unusable (fatal error): counted as
			 * accepted-and-failed by the producer; stop reading. */
			run->accepted++;
			run->kafka_error = true;
			wb_log(WB_LOG_ERROR, "producer_failed",
			       "file=%s line=%ld error=%s",
			       wb_log_q(run->name), lineno, wb_log_q(msg));
			break;
		} else {
			reject(run, lineno, msg);
		}
	}
	wb_buf_finish(&buf);
	wb_line_reader_destroy(lr);
}

/* ---- the skeleton every file-fed mode shares (events, pos) ---------- */

static int file_usage(const char *mode, const char *why)
{
	fprintf(stderr, "waybill-ingest %s: %s\nusage: waybill-ingest %s "
			"FILE|- [OPTIONS] (see --help)\n", mode, why, mode);
	return WB_INGEST_EXIT_USAGE;
}

int wb_ingest_file_open(const wb_config *cfg, const char *mode, int nargs,
			char **args, struct wb_ingest_file *f)
{
	memset(f, 0, sizeof(*f));
	f->mode = mode;
	f->fd = -1;
	if (nargs != 1)
		return file_usage(mode, nargs ? "exactly one FILE (or - for "
						"stdin) expected"
					      : "missing FILE (or - for stdin)");
	int64_t max_line = wb_config_get_int(cfg, "ingest.max.line.bytes");
	if (max_line < 1 || max_line > (int64_t)MAX_LINE_CAP)
		return file_usage(mode, "ingest.max.line.bytes must be between "
					"1 and 67108864");
	f->flush_ms = wb_config_get_int(cfg, "ingest.flush.timeout.ms");
	if (f->flush_ms < 0 || f->flush_ms > INT32_MAX)
		return file_usage(mode, "ingest.flush.timeout.ms must be a "
					"non-negative number of ms");
	f->max_line = (size_t)max_line;
	f->source = wb_config_get(cfg, "ingest.source");
	if (!f->source || !*f->source)
		f->source = mode;

	/* Open the input before connecting, so a typo costs no broker
	 * round trip. */
	f->path = args[0];
	f->is_stdin = strcmp(f->path, "-") == 0;
	f->name = f->is_stdin ? "<stdin>" : f->path;
	f->fd = f->is_stdin ? STDIN_FILENO
			    : open(f->path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0) {
		fprintf(stderr, "waybill-ingest %s: %s: %s\n", mode, f->path,
			strerror(errno));
		return WB_INGEST_EXIT_USAGE;
	}
	char msg[512];
	wb_kafka_topic(cfg, "events", f->topic, sizeof(f->topic));
	wb_err err;
	f->prod = wb_ingest_producer_create(cfg, f->topic, &err, msg,
					    sizeof(msg));
	if (!f->prod) {
		fprintf(stderr, "waybill-ingest %s: %s\n", mode, msg);
		if (!f->is_stdin)
			close(f->fd);
		return err == WB_ECONFIG ? WB_INGEST_EXIT_USAGE
					 : WB_INGEST_EXIT_FAIL;
	}
	f->t0 = wb_mono_us();
	return -1;
}

void wb_ingest_file_close(struct wb_ingest_file *f,
			  volatile sig_atomic_t *stop, uint64_t read)
{
	if (!f->is_stdin)
		close(f->fd);
	f->stopped = stop && *stop;
	if (f->stopped)
		wb_log(WB_LOG_WARN, "interrupted",
		       "file=%s read=%" PRIu64 " hint=\"flushing what was "
		       "queued; rerun to ingest the rest (the ledger drops "
		       "duplicate event_ids)\"",
		       wb_log_q(f->name), read);
	char msg[512];
	f->flush_rc = wb_ingest_producer_flush(f->prod, (int)f->flush_ms, msg,
					       sizeof(msg));
	if (f->flush_rc)
		wb_log(WB_LOG_ERROR, "flush_failed", "topic=%s error=%s",
		       wb_log_q(f->topic), wb_log_q(msg));
	wb_ingest_producer_counts(f->prod, &f->counts);
	wb_ingest_producer_destroy(f->prod);
	f->prod = NULL;
	f->secs = (double)(wb_mono_us() - f->t0) / 1e6;
}

int wb_ingest_events_main(const wb_config *cfg, int nargs, char **args,
			  volatile sig_atomic_t *stop)
{
	struct wb_ingest_file f;
	int urc = wb_ingest_file_open(cfg, "events", nargs, args, &f);
	if (urc >= 0)
		return urc;
	struct run run = {.name = f.name};
	ingest(&run, f.fd, f.max_line, f.source, f.prod, stop);
	wb_ingest_file_close(&f, stop, run.read);
	struct wb_ingest_counts c = f.counts;
	double secs = f.secs;
	wb_log(WB_LOG_INFO, "ingest_done",
	       "file=%s topic=%s read=%" PRIu64 " accepted=%" PRIu64
	       " rejected=%" PRIu64 " acked=%" PRIu64 " failed=%" PRIu64
	       " seconds=%.3f events_per_s=%.0f",
	       wb_log_q(run.name), wb_log_q(f.topic), run.read, run.accepted,
	       run.rejected, c.acked, c.failed, secs,
	       secs > 0 ? (double)c.acked / secs : 0.0);
	printf("read=%" PRIu64 " accepted=%" PRIu64 " rejected=%" PRIu64
	       " acked=%" PRIu64 " failed=%" PRIu64 "\n",
	       run.read, run.accepted, run.rejected, c.acked, c.failed);
	fflush(stdout);
	bool clean = run.rejected == 0 && c.failed == 0 &&
		     c.acked == run.accepted && !run.io_error &&
		     !run.kafka_error && !f.stopped && f.flush_rc == WB_OK;
	return clean ? WB_INGEST_EXIT_OK : WB_INGEST_EXIT_FAIL;
}
