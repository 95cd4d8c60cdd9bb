/*
 * wb_config_table.c — the one table of configuration properties. Every
 * command's --help and the README's configuration reference
 * (`waybill config-reference`) are generated from it, so a key documented
 * anywhere is a key that works. Keys under "kafka." that are not listed here
 * pass straight to librdkafka.
 */
#include "wb_common.h"

#define ING WB_CMD_INGEST
#define LED WB_CMD_LEDGER
#define PRJ WB_CMD_PROJECTOR
#define CLI WB_CMD_CLI
#define ALL WB_CMD_ALL

const struct wb_config_prop wb_config_props[] = {
	/* shared */
	{"kafka.bootstrap.servers", "127.0.0.1:9092", ING | LED | PRJ | CLI, 0,
	 NULL, "Kafka brokers (host:port, comma-separated). Any other kafka.* "
	       "key is passed to librdkafka as is."},
	{"topic.prefix", "orders.", ALL, 0, NULL,
	 "Prefix of every topic: <prefix>events, commands, ledger, status, "
	 "dlq."},
	{"log.level", "info", ALL, 0, NULL, "debug, info, warn or error."},

	/* ledger */
	{"ledger.data.dir", "data/ledger", LED | CLI, 0, NULL,
	 "RocksDB directory of the ledger (also --data-dir)."},
	{"ledger.group.id", NULL, LED, 0, NULL,
	 "Kafka consumer group of the ledger (default: waybill-ledger.<topic "
	 "prefix>, so ledgers of different prefixes never share a group)."},
	{"ledger.instance.id", NULL, LED, 0, NULL,
	 "Static group membership id, so a restarted ledger gets its "
	 "partitions back at once (default: derived from the group and the "
	 "absolute data dir; one ledger per data dir)."},
	{"ledger.batch.max", "20000", LED, 0, NULL,
	 "Most records committed in one synced WriteBatch."},
	{"ledger.batch.wait.ms", "5", LED, 0, NULL,
	 "Longest wait to fill a batch once it holds a record."},
	{"ledger.record.max.bytes", "262144", ING | LED, 0, NULL,
	 "Records larger than this go to the DLQ undecoded. waybill-ingest "
	 "checks each encoded event against it before producing (a bigger "
	 "one is reported as that mode's bad input): set both alike."},
	{"ledger.sync", "true", LED, 0, NULL,
	 "fsync the WAL on every batch. false loses durability on power "
	 "loss; for experiments only."},
	{"ledger.order.cache", "262144", LED, 0, NULL,
	 "Per-order states kept in memory."},
	{"ledger.publish", "true", LED, 0, NULL,
	 "Publish committed entries to <prefix>ledger."},
	{"ledger.stats.interval.ms", "10000", LED, 0, NULL,
	 "How often the ledger logs its counters."},

	/* ingest */
	{"ingest.max.line.bytes", "1048576", ING, 0, NULL,
	 "Longest accepted input line."},
	{"ingest.flush.timeout.ms", "60000", ING, 0, NULL,
	 "How long to wait for Kafka to acknowledge every event before "
	 "giving up."},
	{"ingest.source", NULL, ING, 0, NULL,
	 "Value of the events' source field when the input has none "
	 "(default: the mode, e.g. events)."},
	{"ingest.state.dir", "data/ingest", ING, 0, NULL,
	 "Durable cursors of the polling modes (amazon-poll, shopify-poll), "
	 "one small file each, written atomically."},

	/* amazon-poll (ingestors/ingest_amazon_poll.c) */
	{"ingest.amazon.api.url", "https://sellingpartnerapi-na.amazon.com",
	 ING, 0, NULL,
	 "SP-API endpoint of the seller's region (-na, -eu, -fe)."},
	{"ingest.amazon.lwa.url", "https://api.amazon.com/auth/o2/token", ING,
	 0, NULL, "Login with Amazon token endpoint."},
	{"ingest.amazon.client.id", NULL, ING, 0, "WAYBILL_AMAZON_CLIENT_ID",
	 "LWA client id of the SP-API application."},
	{"ingest.amazon.client.secret", NULL, ING, WB_PROP_SECRET,
	 "WAYBILL_AMAZON_CLIENT_SECRET",
	 "LWA client secret (environment or config file; never a flag)."},
	{"ingest.amazon.refresh.token", NULL, ING, WB_PROP_SECRET,
	 "WAYBILL_AMAZON_REFRESH_TOKEN",
	 "The seller's LWA refresh token (environment or config file)."},
	{"ingest.amazon.marketplace.ids", "ATVPDKIKX0DER", ING, 0, NULL,
	 "MarketplaceIds polled, comma-separated (at most 50)."},
	{"ingest.amazon.merchant", NULL, ING, 0, NULL,
	 "merchant (tenant) of the events (default: the first marketplace "
	 "id)."},
	{"ingest.amazon.start", NULL, ING, 0, NULL,
	 "LastUpdatedAfter of the first poll when there is no cursor yet "
	 "(RFC 3339 or epoch ms; default: 24 hours ago)."},
	{"ingest.amazon.poll.interval.ms", "120000", ING, 0, NULL,
	 "Pause between the starts of two polls (getOrders allows one "
	 "request a minute on average)."},
	{"ingest.amazon.http.timeout.ms", "30000", ING, 0, NULL,
	 "Longest one HTTP request may take; a slower one is retried."},
	{"ingest.amazon.max.attempts", "8", ING, 0, NULL,
	 "Tries per request on 429, 5xx, timeouts and broken answers "
	 "before the poll gives up (the cursor stays)."},
	{"ingest.amazon.backoff.max.ms", "120000", ING, 0, NULL,
	 "Cap of the exponential backoff and of any wait a 429 asks for."},

	/* pos (ingestors/ingest_pos.c) */
	{"ingest.pos.merchant", NULL, ING, 0, NULL,
	 "pos: merchant (tenant) of the stores in the export (required)."},
	{"ingest.pos.format", "auto", ING, 0, NULL,
	 "pos: csv, ndjson, or auto (by .csv/.ndjson/.jsonl, else '{' "
	 "starts NDJSON)."},

	/* projector HTTP API (projectors/projector_http.c) */
	{"projector.http.listen", "127.0.0.1:8080", PRJ, 0, NULL,
	 "Address of the HTTP API: host:port, [ipv6]:port or :port (all "
	 "interfaces); port 0 picks a free one (logged as http_listening); "
	 "off: no HTTP server."},
	{"projector.http.threads", "2", PRJ, 0, NULL,
	 "HTTP worker threads (libmicrohttpd's epoll thread pool)."},
	{"projector.http.connection.limit", "1024", PRJ, 0, NULL,
	 "Most concurrent HTTP connections."},
	{"projector.http.connection.timeout.s", "30", PRJ, 0, NULL,
	 "Seconds an idle HTTP connection is kept open (0 = forever)."},
	{"projector.tokens.file", NULL, PRJ, 0, NULL,
	 "Bearer tokens: one '<sha256 hex of the token> <merchant> "
	 "<scopes>' a line (scopes read,act); '#' comments. Re-read when it "
	 "changes. Unset: every /v1 data request gets 401."},
	{"projector.http.rate.limit", "50", PRJ, 0, NULL,
	 "Requests per second per token (token bucket); 0 = unlimited. Over "
	 "it: 429 with Retry-After."},
	{"projector.http.rate.burst", "100", PRJ, 0, NULL,
	 "Token bucket size: requests a token may make at once."},
	{"projector.http.cache.entries", "65536", PRJ, 0, NULL,
	 "Rendered GET /v1/orders/{id} answers kept; one is served only "
	 "while its order's ledger partition has applied nothing new. 0 = "
	 "no cache."},
	{"projector.http.cache.ttl.ms", "1000", PRJ, 0, NULL,
	 "Longest a cached answer is served (eligibility depends on the "
	 "clock); 0 = no cache."},
	{"projector.http.wait.max.ms", "10000", PRJ, 0, NULL,
	 "Longest a request may wait for ?min_position (wait_ms is capped "
	 "at this)."},
	{"projector.ready.max.lag", "1000", PRJ, 0, NULL,
	 "GET /readyz is 200 once every ledger partition lags by at most "
	 "this many entries."},

	/* waybill token new */
	{"token.merchant", NULL, CLI, 0, NULL,
	 "token new: the merchant the token is bound to (also --merchant)."},
	{"token.scopes", "read", CLI, 0, NULL,
	 "token new: its scopes, comma-separated: read, act (also "
	 "--scopes)."},

	/* shopify-webhooks (ingestors/ingest_shopify_webhooks.c) */
	{"ingest.http.listen", "127.0.0.1:8081", ING, 0, NULL,
	 "shopify-webhooks: host:port, [ipv6]:port or :port (all interfaces) "
	 "of POST /webhooks/shopify, GET /metrics and GET /healthz; port 0 "
	 "picks a free one (logged as http_listening)."},
	{"ingest.http.threads", "2", ING, 0, NULL,
	 "shopify-webhooks: HTTP worker threads (libmicrohttpd's epoll "
	 "thread pool)."},
	{"ingest.http.connection.limit", "1024", ING, 0, NULL,
	 "shopify-webhooks: most concurrent connections."},
	{"ingest.http.connection.timeout.s", "30", ING, 0, NULL,
	 "shopify-webhooks: seconds an idle connection is kept open."},
	{"ingest.http.max.body.bytes", "1048576", ING, 0, NULL,
	 "shopify-webhooks: largest accepted body; larger ones get 413 (by "
	 "Content-Length before reading, else while streaming)."},
	{"ingest.http.ack.timeout.ms", "4000", ING, 0, NULL,
	 "shopify-webhooks: a webhook is answered 200 only once Kafka "
	 "acknowledged all its events; 503 (Shopify retries) if that takes "
	 "longer. Keep it under Shopify's 5 s delivery timeout."},
	{"ingest.shopify.webhook.secrets", NULL, ING, WB_PROP_SECRET,
	 "WAYBILL_SHOPIFY_WEBHOOK_SECRETS",
	 "shopify-webhooks: the app's client secret(s) the HMAC is checked "
	 "against, comma-separated, at most two (rotation)."},

	/* shopify-poll (ingestors/ingest_shopify_poll.c) */
	{"ingest.shopify.api.url", NULL, ING, 0, NULL,
	 "shopify-poll: base URL of the shop's Admin API, e.g. "
	 "https://acme.myshopify.com (required); GraphQL is POSTed to "
	 "<url>/admin/api/<version>/graphql.json."},
	{"ingest.shopify.api.version", "2026-01", ING, 0, NULL,
	 "shopify-poll: Admin API version."},
	{"ingest.shopify.access.token", NULL, ING, WB_PROP_SECRET,
	 "WAYBILL_SHOPIFY_ACCESS_TOKEN",
	 "shopify-poll: Admin API access token (X-Shopify-Access-Token; "
	 "scopes read_orders, read_returns)."},
	{"ingest.shopify.shop", NULL, ING, 0, NULL,
	 "shopify-poll: merchant (tenant) of the events, the shop domain "
	 "(default: the host of ingest.shopify.api.url)."},
	{"ingest.shopify.start", NULL, ING, 0, NULL,
	 "shopify-poll: updated_at to start from when there is no cursor yet "
	 "(RFC 3339 or epoch ms; default: every order)."},
	{"ingest.shopify.page.size", "5", ING, 0, NULL,
	 "shopify-poll: orders per GraphQL page (1..250). A page asks for "
	 "about 160 cost points per order; Shopify refuses one query over "
	 "1000."},
	{"ingest.shopify.poll.interval.ms", "60000", ING, 0, NULL,
	 "shopify-poll: pause between two passes (without --once)."},
	{"ingest.shopify.http.timeout.ms", "30000", ING, 0, NULL,
	 "shopify-poll: longest one HTTP request may take; a slower one is "
	 "retried."},
	{"ingest.shopify.max.attempts", "8", ING, 0, NULL,
	 "shopify-poll: tries per page on 429, 5xx, timeouts and throttling "
	 "before the pass gives up (the cursor stays)."},
	{"ingest.shopify.backoff.max.ms", "60000", ING, 0, NULL,
	 "shopify-poll: cap of the exponential backoff and of any wait a 429 "
	 "or the cost bucket asks for."},
	{"ingest.shopify.max.response.bytes", "16777216", ING, 0, NULL,
	 "shopify-poll: largest response body accepted."},

	/* audit CLI */
	{"replay.order", NULL, CLI, 0, NULL,
	 "replay: only this order id (also --order)."},
	{"replay.partition", NULL, CLI, 0, NULL,
	 "replay: only this partition (also --partition)."},
	{"replay.from", NULL, CLI, 0, NULL,
	 "replay: first seq (also --from)."},
	{"replay.to", NULL, CLI, 0, NULL, "replay: last seq (also --to)."},
	{"replay.type", NULL, CLI, 0, NULL,
	 "replay: only this event type (also --type)."},
	{"replay.since", NULL, CLI, 0, NULL,
	 "replay: recorded_at at or after (epoch ms or RFC 3339; also "
	 "--since)."},
	{"replay.until", NULL, CLI, 0, NULL,
	 "replay: recorded_at before (also --until)."},
	{"replay.publish.topic", NULL, CLI, 0, NULL,
	 "replay: produce the selected entries to this topic instead of "
	 "printing them, as waybill-ledger publishes to <prefix>ledger "
	 "(Avro LedgerEntry keyed by order id, each in its ledger partition; "
	 "idempotent producer); exit 1 if any is not delivered (also "
	 "--publish)."},
	{"asof.at", NULL, CLI, 0, NULL,
	 "as-of: the order view as the ledger knew it at this time (epoch ms "
	 "or RFC 3339; entries recorded at or before it; also --at)."},
	{"asof.version", NULL, CLI, 0, NULL,
	 "as-of: the order view after this order version (also --version)."},

	/* projector (projectors/): read models, checkpoints, orders.status */
	{"projector.data.dir", "data/projector", PRJ, 0, NULL,
	 "RocksDB directory of the projector's read models (also "
	 "--data-dir)."},
	{"projector.group.id", NULL, PRJ, 0, NULL,
	 "Kafka consumer group (default: waybill-projector.<topic prefix>."
	 "<hash of the absolute data dir>: every projector reads every "
	 "partition, so two stores never share a group)."},
	{"projector.instance.id", NULL, PRJ, 0, NULL,
	 "Static group membership id (default: derived from the group and "
	 "the data dir)."},
	{"projector.batch.max", "20000", PRJ, 0, NULL,
	 "Most ledger entries applied in one synced WriteBatch."},
	{"projector.batch.wait.ms", "200", PRJ, 0, NULL,
	 "Longest a batch stays open while entries keep streaming in (a "
	 "batch is committed as soon as no entry is queued locally)."},
	{"projector.apply.threads", "2", PRJ, 0, NULL,
	 "Apply threads: partition p is applied by thread p % N, each with "
	 "its own synced batches (orders never span partitions)."},
	{"projector.sync", "true", PRJ, 0, NULL,
	 "fsync the WAL on every batch (models and checkpoints together)."},
	{"projector.cache.orders", "200000", PRJ, 0, NULL,
	 "Order views kept in memory between batches."},
	{"projector.publish", "true", PRJ, 0, NULL,
	 "Publish each changed order's OrderStatus to <prefix>status "
	 "(compacted), through an outbox in the store."},
	{"projector.stats.interval.ms", "10000", PRJ, 0, NULL,
	 "How often the projector logs its counters."},
	{"projector.return.window.days", "30", PRJ | CLI, 0, NULL,
	 "Return window in days from delivery (0: no returns). can_return "
	 "says window_ends_at."},
	{"projector.return.window.merchants", NULL, PRJ | CLI, 0, NULL,
	 "Per-merchant return windows overriding the default: "
	 "'merchant=days,merchant=days' (days 0 or -1: no returns)."},
	{"projector.clock.ms", "0", PRJ, 0, NULL,
	 "For tests and audits: the time (epoch ms) every answer's "
	 "eligibility is computed at, instead of the real clock (0)."},
	{"projector.rebuild.ledger.dir", NULL, PRJ, 0, NULL,
	 "--rebuild: read entries from this ledger data dir or backup "
	 "(read-only) before Kafka (also --ledger-dir)."},
	{NULL, NULL, 0, 0, NULL, NULL},
};
