/*
 * ingest_main.c — `waybill-ingest MODE ...`: loads the configuration
 * (defaults < --config FILE < WAYBILL_* < --KEY=VALUE), sets up logging and
 * signals, and hands over to the mode. Each mode lives in its own file and
 * is one row of the table below, so adding one touches nothing else here.
 */
#include "wb_ingest.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

struct mode {
	const char *name;
	const char *args;
	const char *what;
	int (*run)(const wb_config *cfg, int nargs, char **args,
		   volatile sig_atomic_t *stop);
};

/* Key prefixes of the options a mode reads, for its --help; a mode not
 * listed shows every ingest option. */
static const char *const shopify_webhooks_options[] = {
	"kafka.", "topic.", "log.", "ingest.http.", "ingest.shopify.webhook.",
	"ingest.source", "ledger.record.", NULL};
static const char *const shopify_poll_options[] = {
	"kafka.", "topic.", "log.", "ingest.shopify.api.",
	"ingest.shopify.access.", "ingest.shopify.shop", "ingest.shopify.start",
	"ingest.shopify.page.", "ingest.shopify.poll.", "ingest.shopify.http.",
	"ingest.shopify.max.", "ingest.shopify.backoff.", "ingest.state.",
	"ingest.flush.", "ingest.source", "ledger.record.", NULL};
static const struct {
	const char *mode;
	const char *const *prefixes;
} mode_options[] = {
	{"shopify-webhooks", shopify_webhooks_options},
	{"shopify-poll", shopify_poll_options},
};

static const char *const *options_of(const struct mode *m)
{
	for (size_t i = 0; m && i < sizeof(mode_options) / sizeof(*mode_options);
	     i++)
		if (strcmp(mode_options[i].mode, m->name) == 0)
			return mode_options[i].prefixes;
	return NULL;
}

static const struct mode modes[] = {
	{"events", "FILE|-",
	 "canonical JSON-lines events (one OrderEvent per line) -> "
	 "<topic.prefix>events",
	 wb_ingest_events_main},
	{"pos", "FILE|-",
	 "retail POS export, CSV with a header row or NDJSON (README \"POS "
	 "exports\"): sales and till returns -> <topic.prefix>events",
	 wb_ingest_pos_main},
	{"amazon-poll", "[--once]",
	 "Amazon SP-API Orders v0 poller (LWA token, NextToken, rate limits, "
	 "durable cursor in ingest.state.dir) -> <topic.prefix>events; "
	 "--once: one pass, then exit",
	 wb_ingest_amazon_poll_main},
	{"shopify-webhooks", "",
	 "HTTP receiver of Shopify webhooks: POST /webhooks/shopify on "
	 "ingest.http.listen, HMAC-checked, answered 200 only once Kafka "
	 "acknowledged every event -> <topic.prefix>events (unmappable ones "
	 "-> <topic.prefix>dlq); GET /metrics, GET /healthz",
	 wb_ingest_shopify_webhooks_main},
	{"shopify-poll", "[--once]",
	 "reconciliation/backfill from the Shopify GraphQL Admin API: orders "
	 "updated since a durable cursor (ingest.state.dir) -> "
	 "ChannelSnapshotObserved + the events of their state -> "
	 "<topic.prefix>events; --once: one pass, then exit",
	 wb_ingest_shopify_poll_main},
	{NULL, NULL, NULL, NULL},
};

/* Flags that are not configuration keys; a mode reads them as
 * wb_config_get_bool(cfg, "flag.<name>"). */
static const struct wb_config_alias aliases[] = {
	{"once", NULL}, /* pollers: one pass, then exit */
	{NULL, NULL},
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* First SIGINT/SIGTERM: stop reading and flush what is queued, so the
 * summary is exact. No SA_RESTART, so a blocked read(2) returns at once;
 * SA_RESETHAND, so a second signal kills the process as usual. */
static void install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static void usage(FILE *out, const struct mode *only)
{
	fprintf(out, "usage: waybill-ingest MODE [ARGS] [OPTIONS]\n\n");
	fprintf(out, "Reads orders from a sales channel or a file, validates "
		     "and normalises them\nto Avro OrderEvents, and produces "
		     "them to Kafka keyed by order id.\n\nModes:\n");
	for (const struct mode *m = modes; m->name; m++)
		if (!only || only == m)
			fprintf(out, "  %s %s\n      %s\n", m->name, m->args,
				m->what);
	if (only && strcmp(only->name, "pos") == 0)
		fprintf(out,
			"\npos prints FILE:LINE: REASON on stderr for each "
			"rejected line (and for each\nreceipt kept out because "
			"of one) and a summary\n"
			"  rows=N rejected=N receipts=N receipts_rejected=N "
			"events=N acked=N failed=N\n"
			"on stdout. Exit status: 0 if every row was accepted "
			"and every event acknowledged\nby Kafka, 1 otherwise, "
			"2 for usage or configuration errors.\n");
	if (only && strcmp(only->name, "amazon-poll") == 0)
		fprintf(out,
			"\namazon-poll --once prints a summary\n"
			"  orders=N events=N dlq=N acked=N failed=N\n"
			"on stdout. Exit status: 0 if the pass completed and "
			"Kafka acknowledged\neverything (the cursor then "
			"moved), 1 otherwise, 2 for configuration errors.\n"
			"Credentials come from the environment or the config "
			"file only.\n");
	if (only && strcmp(only->name, "shopify-webhooks") == 0)
		fprintf(out,
			"\nshopify-webhooks answers POST /webhooks/shopify with "
			"401 (bad or missing\nX-Shopify-Hmac-Sha256; checked "
			"before the body is parsed), 413 (body over\n"
			"ingest.http.max.body.bytes), 200 once Kafka "
			"acknowledged every event (or,\nfor an authentic "
			"body it cannot map, the DLQ record), 503 when Kafka "
			"does\nnot within ingest.http.ack.timeout.ms (Shopify "
			"retries). Topics: README\n\"Channels\". Runs until "
			"SIGINT/SIGTERM, then answers what is waiting. Exit\n"
			"status 0, 1 if Kafka or the listen address fail, 2 "
			"for configuration errors.\nSecrets come from the "
			"environment or the config file only.\n");
	if (only && strcmp(only->name, "shopify-poll") == 0)
		fprintf(out,
			"\nshopify-poll --once prints a summary\n"
			"  pages=N orders=N skipped=N events=N dlq=N acked=N "
			"failed=N cursor=TIME\non stdout. Exit status: 0 if "
			"the pass completed and Kafka acknowledged\n"
			"everything (the cursor then moved), 1 otherwise "
			"(401/403, retries used up,\nmalformed answers), 2 "
			"for configuration errors. Without --once it polls\n"
			"every ingest.shopify.poll.interval.ms until "
			"SIGINT/SIGTERM. The access token\ncomes from the "
			"environment or the config file only.\n");
	if (!only || strcmp(only->name, "events") == 0)
		fprintf(out,
			"\nevents prints FILE:LINE: REASON on stderr for each "
			"rejected line and a summary\n"
			"  read=N accepted=N rejected=N acked=N failed=N\n"
			"on stdout. Exit status: 0 if every line was accepted "
			"and acknowledged by\nKafka, 1 otherwise, 2 for usage "
			"or configuration errors.\n");
	wb_config_print_help_keys(out, WB_CMD_INGEST, options_of(only));
}

static const struct mode *mode_find(const char *name)
{
	for (const struct mode *m = modes; m->name; m++)
		if (strcmp(m->name, name) == 0)
			return m;
	return NULL;
}

int main(int argc, char **argv)
{
	char msg[512];
	int rc = WB_INGEST_EXIT_USAGE;
	wb_log_init("waybill-ingest", WB_LOG_INFO);
	wb_config *cfg = wb_config_create(WB_CMD_INGEST);
	char **pos = wb_xcalloc((size_t)argc + 1, sizeof(*pos));
	int npos = 0;
	bool help = false;
	if (wb_config_parse_args(cfg, argc, argv, aliases, &npos, pos, &help,
				 msg, sizeof(msg)) != WB_OK) {
		fprintf(stderr, "waybill-ingest: %s\n", msg);
		goto out;
	}
	const struct mode *m = npos > 0 ? mode_find(pos[0]) : NULL;
	if (help) {
		usage(stdout, m);
		rc = WB_INGEST_EXIT_OK;
		goto out;
	}
	if (!m) {
		if (npos > 0)
			fprintf(stderr, "waybill-ingest: unknown mode '%s'\n",
				pos[0]);
		usage(stderr, NULL);
		goto out;
	}
	wb_log_level lvl;
	const char *lv = wb_config_get(cfg, "log.level");
	if (!lv || !wb_log_level_parse(lv, &lvl)) {
		fprintf(stderr, "waybill-ingest: log.level must be debug, "
				"info, warn or error\n");
		goto out;
	}
	wb_log_init("waybill-ingest", lvl);
	install_signals();
	rc = m->run(cfg, npos - 1, pos + 1, &stop_requested);
out:
	free(pos);
	wb_config_destroy(cfg);
	return rc;
}
