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

/* Whether an encoded event may be produced: WB_ETOOBIG (msg names the
 * event, its size and the limit) when rec->value_len is over record_max,
 * the ledger's ledger.record.max.bytes, which the ledger would answer by
 * sending the record to its DLQ after the input had been acknowledged. */
wb_err wb_ingest_record_check(const struct wb_ingest_record *rec,
			      size_t record_max, char *msg, size_t msglen);

/* The largest event value p produces: ledger.record.max.bytes, or less if
 * kafka.message.max.bytes would not let that much through. */
size_t wb_ingest_producer_record_max(const wb_ingest_producer *p);

/* wb_ingest_record_check against wb_ingest_producer_record_max(p). Every
 * send of an event to the producer's topic checks it; a mode that must
 * decide before sending anything (all of a webhook or its DLQ record)
 * calls it first. */
wb_err wb_ingest_producer_check(const wb_ingest_producer *p,
				const struct wb_ingest_record *rec, char *msg,
				size_t msglen);

/* Queues one record (copied), waiting while librdkafka's queue is full.
 * WB_ETOOBIG: the record can never be recorded (wb_ingest_producer_check,
 * nothing queued); WB_EKAFKA: the client failed (e.g. a fatal idempotence
 * error). */
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


/* ---- shared by the channel modes ------------------------------------------
 * Added for amazon-poll and pos (issue 3); shopify-webhooks/-poll are
 * welcome to use them: the JSON event -> record step, the DLQ, money,
 * and durable cursors. */

/* Like wb_ingest_event_line for an event already parsed (a channel mapper's
 * output). ev is modified (ingest_time/source filled in when absent). */
wb_err wb_ingest_event_json(json_t *ev, const char *default_source,
			    int64_t now_ms, wb_buf *buf,
			    struct wb_ingest_record *rec, char *msg,
			    size_t msglen);

/* Largest value of a DLQ record of raw input. A longer input keeps its
 * first this many bytes and gets a header waybill.truncated=<its length>:
 * well under librdkafka's message.max.bytes (1,000,000) and the broker's
 * max.message.bytes (1,048,588), so raw input up to any mode's cap always
 * leaves a record. Less when kafka.message.max.bytes is set lower. */
#define WB_INGEST_DLQ_MAX_VALUE (768u << 10)

/* Queues raw input that cannot become an event to topic (<prefix>dlq),
 * with headers waybill.error (why) and waybill.source (who and from
 * where), design.md §3, cut to WB_INGEST_DLQ_MAX_VALUE. The topic is
 * checked to exist on first use. Counted and acknowledged like every
 * record (flush waits for it). */
wb_err wb_ingest_producer_send_dlq(wb_ingest_producer *p, const char *topic,
				   const char *key, size_t key_len,
				   const void *value, size_t value_len,
				   const char *error, const char *source,
				   char *msg, size_t msglen);

/* The skeleton of a file-fed mode (`events`, `pos`): open checks FILE|-
 * and the shared limits, opens the input (before connecting, so a typo
 * costs no broker round trip) and creates the producer for
 * <prefix>events. It returns -1 when the mode may go on, else the exit
 * status (message printed). close flushes (logging an interruption and a
 * failed flush), destroys the producer and fills counts and secs. */
struct wb_ingest_file {
	const char *mode, *path, *name; /* name: "<stdin>" for - */
	const char *source;             /* ingest.source, default the mode */
	bool is_stdin, stopped;
	int fd;
	size_t max_line;
	int64_t flush_ms, t0;
	char topic[256];
	wb_ingest_producer *prod;
	wb_err flush_rc;
	struct wb_ingest_counts counts;
	double secs;
};
int wb_ingest_file_open(const wb_config *cfg, const char *mode, int nargs,
			char **args, struct wb_ingest_file *f);
void wb_ingest_file_close(struct wb_ingest_file *f,
			  volatile sig_atomic_t *stop, uint64_t read);

/* Digits after the decimal point of an ISO-4217 currency (JPY 0, USD 2,
 * KWD 3, ...); -1 if code is not three capital letters. */
int wb_currency_exponent(const char *code, size_t n);

/* A decimal string ("25.99", "-3", "10.00") into minor units of currency,
 * digit by digit (never through a double). More decimals than the
 * currency has are accepted only as trailing zeros: "10.00" JPY is 10,
 * "25.99" JPY is an error, not a rounding. */
wb_err wb_money_parse(const char *s, size_t n, const char *currency,
		      size_t currency_len, int64_t *out, char *msg,
		      size_t msglen);

/* Durable cursors: <dir>/<name>, one line, replaced atomically (temporary
 * file, fsync, rename, fsync of dir; dir is created). load sets *found
 * false (and WB_OK) when there is none yet. */
wb_err wb_ingest_state_load(const char *dir, const char *name, char *out,
			    size_t outlen, bool *found, char *msg,
			    size_t msglen);
wb_err wb_ingest_state_save(const char *dir, const char *name,
			    const char *value, char *msg, size_t msglen);

/* ---- Amazon SP-API Orders v0 (amazon_map.c) ----------------------------- */

struct wb_amazon_map_opts {
	const char *merchant; /* tenant of every event */
	const char *source;   /* the events' source, e.g. "amazon-poll" */
	int64_t observed_ms;  /* poll time: ingest_time and observed_at */
};

/* One order of a getOrders page plus its items (the OrderItems of every
 * getOrderItems page, concatenated; NULL if not fetched) -> canonical
 * OrderEvent JSON objects appended to events (an array), in the order they
 * should be recorded. An event that cannot be built from what Amazon sent
 * (e.g. a price with no exact value in its currency) is left out and
 * "<Type>: <reason>" appended to problems (an array); the rest still come.
 * An error (nothing appended) when the order itself is unusable: no valid
 * AmazonOrderId, an OrderStatus Waybill does not know, items not an array.
 * Pure: the same input gives the same events. */
wb_err wb_amazon_map_order(const json_t *order, const json_t *items,
			   const struct wb_amazon_map_opts *opts,
			   json_t *events, json_t *problems, char *msg,
			   size_t msglen);

/* An SP-API time into epoch ms: RFC 3339 ("2017-01-20T19:49:35Z"), or
 * epoch seconds as the sandbox writes them ("1.569521782042E9"). */
wb_err wb_amazon_parse_time(const char *s, int64_t *out);

/* ---- POS exports (pos_map.c) ---------------------------------------------- */

enum wb_pos_format { WB_POS_CSV, WB_POS_NDJSON };

/* Where a POS reader's output goes. event: one encoded event of a complete
 * receipt (valid until the call returns; line = the receipt's first line);
 * a non-WB_OK return stops the reader and is passed back by feed/finish.
 * reject: a line that was not ingested, or a receipt kept out because of
 * one, with the reason. */
struct wb_pos_sink {
	wb_err (*event)(void *ud, const struct wb_ingest_record *rec,
			long line);
	void (*reject)(void *ud, long line, const char *why);
	void *ud;
};

struct wb_pos_counts {
	uint64_t rows, rows_rejected;         /* non-blank records after the header */
	uint64_t receipts, receipts_rejected; /* receipts closed */
	uint64_t events;                      /* handed to sink.event */
	bool header_error;                    /* CSV header unusable: nothing read */
};

typedef struct wb_pos wb_pos;

/* A reader of one export. max_record caps a CSV record that spans lines
 * (quoted newlines). Columns/fields: README "POS exports". */
wb_pos *wb_pos_create(enum wb_pos_format fmt, const char *merchant,
		      const char *source, size_t max_record,
		      const struct wb_pos_sink *sink);
void wb_pos_destroy(wb_pos *p);
/* One input line (without its newline) and its 1-based number; now_ms is
 * the events' ingest_time. */
wb_err wb_pos_feed(wb_pos *p, const char *line, size_t len, long lineno,
		   int64_t now_ms);
/* A line that could not be read (over ingest.max.line.bytes): reported
 * with why; the receipts it may belong to are kept out. */
void wb_pos_skip(wb_pos *p, long lineno, const char *why);
/* End of input: closes the last receipt. */
wb_err wb_pos_finish(wb_pos *p, int64_t now_ms);
void wb_pos_get_counts(const wb_pos *p, struct wb_pos_counts *out);

/* `waybill-ingest pos FILE|-` and `waybill-ingest amazon-poll [--once]`. */
int wb_ingest_pos_main(const wb_config *cfg, int nargs, char **args,
		       volatile sig_atomic_t *stop);
int wb_ingest_amazon_poll_main(const wb_config *cfg, int nargs, char **args,
			       volatile sig_atomic_t *stop);

/* ---- producer for concurrent request/response callers --------------------
 * (added for shopify-webhooks: each webhook is answered only once Kafka
 * acknowledged every record it produced; `events` and the pollers keep
 * using send/flush above). */

/* Like wb_ingest_producer_create; overrides is NULL or a NULL-terminated
 * list of librdkafka key, value pairs applied after the defaults (a
 * kafka.<key> of the configuration still wins), e.g. message.timeout.ms. */
wb_ingest_producer *wb_ingest_producer_create_ex(const wb_config *cfg,
						 const char *topic,
						 const char *const *overrides,
						 wb_err *err, char *msg,
						 size_t msglen);

/* Checks that topic exists, over the producer's own connection (e.g. the
 * DLQ of a mode that must not discover a missing one on its hot path). */
wb_err wb_ingest_producer_check_topic(wb_ingest_producer *p, const char *topic,
				      char *msg, size_t msglen);

/* Called once per record queued with wb_ingest_producer_send_async, with
 * its opaque: WB_OK when Kafka acknowledged it, WB_ETIMEOUT when it was
 * not acknowledged within message.timeout.ms, WB_EKAFKA for any other
 * failure (reason says which). Runs on the producer's delivery thread:
 * keep it short. */
typedef void (*wb_ingest_delivery_fn)(void *opaque, wb_err err,
				      const char *reason);

/* Starts a thread of the producer's own that serves delivery reports and
 * calls on_delivery; from then on sending is thread-safe and nobody else
 * needs to poll. Call once, before the first send_async. The thread stops
 * in wb_ingest_producer_destroy (flush first to hear about every record). */
wb_err wb_ingest_producer_start(wb_ingest_producer *p,
				wb_ingest_delivery_fn on_delivery, char *msg,
				size_t msglen);

/* Queues one record (copied) to topic (NULL: the producer's topic) with
 * optional headers (NULL or NULL-terminated name, value strings) and a
 * non-NULL opaque for on_delivery. Never waits: a full queue is WB_EKAFKA
 * at once, so a caller can answer "try again" instead of blocking. On
 * WB_OK on_delivery is called exactly once for this record; on error
 * never. WB_ETOOBIG: an event over wb_ingest_producer_record_max (to the
 * producer's topic), or a record over message.max.bytes. */
wb_err wb_ingest_producer_send_async(wb_ingest_producer *p, const char *topic,
				     const struct wb_ingest_record *rec,
				     const char *const *headers, void *opaque,
				     char *msg, size_t msglen);

/* The DLQ record of wb_ingest_producer_send_dlq (same headers and cap),
 * queued like send_async: opaque non-NULL, on_delivery called once on
 * WB_OK, never waits. */
wb_err wb_ingest_producer_send_dlq_async(wb_ingest_producer *p,
					 const char *topic, const char *key,
					 size_t key_len, const void *value,
					 size_t value_len, const char *error,
					 const char *source, void *opaque,
					 char *msg, size_t msglen);

/* ---- Shopify (shopify_map.c: pure; ingest_shopify_*.c: the modes) --------- */

/* Caps of the mapper on its own input (the receiver's body cap is lower). */
#define WB_SHOPIFY_MAX_BODY (16u << 20)
#define WB_SHOPIFY_MAX_DEPTH 64

/* Who delivered a payload and when. Only shop is required. */
struct wb_shopify_ctx {
	const char *shop;       /* X-Shopify-Shop-Domain: the merchant */
	const char *topic;      /* X-Shopify-Topic, e.g. "orders/updated" */
	const char *webhook_id; /* X-Shopify-Webhook-Id -> correlation_id */
	const char *event_id;   /* X-Shopify-Event-Id -> causation_id */
	int64_t triggered_at;   /* X-Shopify-Triggered-At (ms), or -1 */
	int64_t now_ms;         /* ingest_time (and a poll's observed_at) */
	const char *source;     /* the events' source, e.g. "shopify-webhooks" */
};

/* The i-th webhook topic Waybill maps (0-based), NULL past the last. */
const char *wb_shopify_topic(size_t i);

/* One webhook body (REST shape) under c->topic -> canonical OrderEvent
 * objects appended to events (a JSON array), ready for
 * wb_ingest_event_json. README "Channels" has the table and the event_id
 * scheme (ids name the channel fact, so redeliveries, other topics with
 * the same fact and shopify-poll agree). Errors, with nothing appended:
 * WB_ENOTFOUND topic not mapped, WB_EPARSE not JSON or nested too deep,
 * WB_ETOOBIG over a cap, WB_ESCHEMA anything else unusable (no order id,
 * money with no exact value, no shop domain, ...). */
wb_err wb_shopify_map_webhook(const struct wb_shopify_ctx *c,
			      const char *body, size_t len, json_t *events,
			      char *msg, size_t msglen);

/* The same without pruning order bodies before they are parsed (see
 * shopify_map.c): for tests, which check both give the same answer. */
wb_err wb_shopify_map_webhook_whole(const struct wb_shopify_ctx *c,
				    const char *body, size_t len,
				    json_t *events, char *msg, size_t msglen);

/* One Order node of a GraphQL Admin API `orders` page -> a
 * ChannelSnapshotObserved plus every event derivable from the order's
 * state, with the same event_ids the webhooks give for the same facts. */
wb_err wb_shopify_map_graphql_order(const struct wb_shopify_ctx *c,
				    const json_t *node, json_t *events,
				    char *msg, size_t msglen);

/* An `orders` page of the GraphQL Admin API. Costs are -1 when absent. */
struct wb_shopify_page {
	json_t *root;  /* the whole response */
	json_t *nodes; /* its Order nodes (an array; edges or nodes form) */
	bool has_next;
	char end_cursor[1024];
	bool throttled; /* a THROTTLED error: back off and ask again */
	double requested_cost, actual_cost;
	double max_available, currently_available, restore_rate;
};

/* Parses a response body: WB_EPARSE (not JSON: truncated, malformed,
 * too deep), WB_EHTTP (GraphQL errors other than throttling, with the
 * first message), WB_ESCHEMA (no data.orders.pageInfo, or hasNextPage
 * without an endCursor). Finish it on WB_OK. */
wb_err wb_shopify_page_parse(const char *body, size_t len,
			     struct wb_shopify_page *page, char *msg,
			     size_t msglen);
void wb_shopify_page_finish(struct wb_shopify_page *page);

/* X-Shopify-Hmac-Sha256 check: header is the base64 of HMAC-SHA256 of the
 * raw body under one of secrets; compared in constant time, every secret
 * tried. False for a missing or malformed header. */
bool wb_shopify_hmac_valid(const char *header, const void *body, size_t len,
			   const char *const *secrets, size_t nsecrets);

/* Whether s has no more than max_depth nested arrays/objects (a cheap
 * scan before jansson's recursive parser sees it). */
bool wb_shopify_depth_ok(const char *s, size_t len, int max_depth);

/* A plausible shop domain (letters, digits, '.', '-'; 1..255). */
bool wb_shopify_shop_ok(const char *shop);

/* `waybill-ingest shopify-webhooks` and `waybill-ingest shopify-poll
 * [--once]`. */
int wb_ingest_shopify_webhooks_main(const wb_config *cfg, int nargs,
				    char **args, volatile sig_atomic_t *stop);
int wb_ingest_shopify_poll_main(const wb_config *cfg, int nargs, char **args,
				volatile sig_atomic_t *stop);

#endif /* WB_INGEST_H */
