/*
 * wb_ingest.h — the pieces of waybill-ingest that its modes share and that
 * tests drive without a broker: a bounded line reader, the pure step from a
 * canonical JSON event line to a Kafka record (key = order id, value = Avro
 * single-object encoding), and a thin idempotent Kafka producer that counts
 * acknowledgements. Each mode (`events`, later `pos`, webhooks, pollers) is
 * one file with one entry point declared here; ingest_main.c dispatches.
 */
#ifndef WB_INGEST_H
#define WB_INGEST_H

#include <signal.h>

#include "wb_schema.h"

/* ---- bounded line reader ------------------------------------------------ */

/* Reads '\n'-terminated lines from a file descriptor. Memory stays bounded
 * by max_line: an over-long line is reported once (WB_ETOOBIG, with its
 * line number) and the rest of it is skipped without being stored. */
typedef struct wb_line_reader wb_line_reader;

wb_line_reader *wb_line_reader_create(int fd, size_t max_line);
void wb_line_reader_destroy(wb_line_reader *r);

/* Next line without its "\n" (and a trailing "\r"), NUL-terminated, valid
 * until the next call. Returns WB_OK, WB_ENOTFOUND at end of input,
 * WB_ETOOBIG for an over-long line, or WB_EIO. *lineno is the line's
 * 1-based number in every case but end of input. */
wb_err wb_line_reader_next(wb_line_reader *r, char **line, size_t *len,
			   long *lineno, char *msg, size_t msglen);

/* ---- line -> record ------------------------------------------------------ */

/* One event ready to produce. Every pointer refers into the wb_buf passed
 * to wb_ingest_event_line and is valid until that buffer is next used. */
struct wb_ingest_record {
	const uint8_t *value; /* single-object header + Avro body */
	size_t value_len;
	const char *key;      /* order_id, NUL-terminated */
	size_t key_len;
	const char *event_id; /* NUL-terminated, for logs */
};

/* Parses one canonical JSON event (duplicate keys rejected), fills in
 * ingest_time (now_ms) and source (default_source) when absent or null,
 * validates and encodes it into buf (reset first). No I/O, no clock: the
 * same input always gives the same bytes. On error msg holds the reason,
 * with a JSON path or column. */
wb_err wb_ingest_event_line(const char *line, size_t len,
			    const char *default_source, int64_t now_ms,
			    wb_buf *buf, struct wb_ingest_record *rec,
			    char *msg, size_t msglen);

/* ---- producer ------------------------------------------------------------ */

/* One idempotent producer (acks=all, murmur2_random partitioner) writing to
 * one topic, which must exist. Delivery reports are counted; a failed one
 * is logged with its event_id. Single-threaded: call from one thread. */
typedef struct wb_ingest_producer wb_ingest_producer;

/* Creates the producer and checks that topic exists, failing fast (a
 * missing topic would otherwise hold every record until it times out).
 * NULL with *err (WB_ECONFIG for a bad kafka.* setting) and msg. */
wb_ingest_producer *wb_ingest_producer_create(const wb_config *cfg,
					      const char *topic, wb_err *err,
					      char *msg, size_t msglen);
void wb_ingest_producer_destroy(wb_ingest_producer *p);

/* Queues one record (copied), waiting while librdkafka's queue is full.
 * WB_ETOOBIG: the record can never be sent (over message.max.bytes);
 * WB_EKAFKA: the client failed (e.g. a fatal idempotence error). */
wb_err wb_ingest_producer_send(wb_ingest_producer *p,
			       const struct wb_ingest_record *rec, char *msg,
			       size_t msglen);

/* Waits up to timeout_ms for every queued record's delivery report; what
 * is still unacknowledged then is purged and counted as failed, so that
 * acked + failed == records sent. WB_ETIMEOUT if anything was purged. */
wb_err wb_ingest_producer_flush(wb_ingest_producer *p, int timeout_ms,
				char *msg, size_t msglen);

struct wb_ingest_counts {
	uint64_t sent, acked, failed;
};
void wb_ingest_producer_counts(const wb_ingest_producer *p,
			       struct wb_ingest_counts *out);

/* ---- modes --------------------------------------------------------------- */

/* Exit statuses of every mode. */
enum { WB_INGEST_EXIT_OK = 0, WB_INGEST_EXIT_FAIL = 1, WB_INGEST_EXIT_USAGE = 2 };

/* `waybill-ingest events FILE|-`; args are the positionals after the mode.
 * stop, if non-NULL, is polled: once non-zero, reading stops and what was
 * queued is flushed (SIGINT/SIGTERM). */
int wb_ingest_events_main(const wb_config *cfg, int nargs, char **args,
			  volatile sig_atomic_t *stop);

#endif /* WB_INGEST_H */
