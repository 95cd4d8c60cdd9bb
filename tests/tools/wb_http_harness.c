/*
 * wb_http_harness.c — the projector's HTTP API over a real read-model
 * store, without Kafka: for the HTTP tests and ops/bench-http.
 *
 * usage: wb-http-harness --data DIR [--partitions N] [--events FILE]
 *                        [--KEY=VALUE ...]      (any waybill-projector key)
 *
 * Canonical JSON event lines (as `waybill-ingest events` reads them) go
 * through a real ledger (DIR/ledger: seq, version, hash chain) and are
 * applied to a real wb_views store (DIR/views), partitioned by a hash of
 * the order id. FILE (or nothing) is loaded first; then every partition's
 * lag is set to 0, the HTTP server starts and one line
 * "listening port=P position=N" goes to stdout. After that each batch of
 * event lines read from stdin is applied and answered with
 * "applied position=N"; a line "lag P N" sets partition P's lag to N
 * (answered "lag"). Runs until SIGTERM/SIGINT (or stdin's end with
 * --exit-on-eof).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "projector_http.h"
#include "wb_projector.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

struct harness {
	wb_ledger *ledger;
	wb_views *views;
	int32_t partitions;
	wb_buf body;
	uint64_t lines;
};

static int32_t partition_of(const char *order_id, int32_t n)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const char *p = order_id; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	return (int32_t)(h % (uint32_t)n);
}

/* Appends one JSON event line to the ledger batch. */
static bool stage(struct harness *hs, const char *line, size_t len)
{
	char msg[512];
	json_error_t je;
	json_t *j = json_loadb(line, len, 0, &je);
	if (!j) {
		fprintf(stderr, "harness: line %llu: %s\n",
			(unsigned long long)hs->lines, je.text);
		return false;
	}
	if (!json_object_get(j, "ingest_time"))
		json_object_set_new(j, "ingest_time",
				    json_integer(wb_now_ms()));
	if (!json_object_get(j, "source"))
		json_object_set_new(j, "source", json_string("harness"));
	wb_buf_reset(&hs->body);
	struct wb_event_view v;
	if (wb_event_encode_json(j, &hs->body, msg, sizeof(msg)) ||
	    wb_event_peek(hs->body.data, hs->body.len, &v, msg,
			  sizeof(msg))) {
		fprintf(stderr, "harness: line %llu: %s\n",
			(unsigned long long)hs->lines, msg);
		json_decref(j);
		return false;
	}
	const char *oid = json_string_value(json_object_get(j, "order_id"));
	int32_t p = partition_of(oid ? oid : "", hs->partitions);
	json_decref(j);
	wb_err rc = wb_ledger_batch_append(hs->ledger, p, hs->body.data,
					   hs->body.len, &v, wb_now_ms(), msg,
					   sizeof(msg));
	if (rc && rc != WB_ECONFLICT) {
		fprintf(stderr, "harness: append: %s\n", msg);
		return false;
	}
	return true;
}

/* Commits the ledger batch and applies its entries to the views. */
static bool flush_batch(struct harness *hs)
{
	char msg[512];
	if (wb_ledger_batch_empty(hs->ledger))
		return true;
	if (wb_ledger_batch_commit(hs->ledger, msg, sizeof(msg))) {
		fprintf(stderr, "harness: ledger commit: %s\n", msg);
		return false;
	}
	wb_views_batch_begin(hs->views);
	size_t n = wb_ledger_committed_count(hs->ledger);
	for (size_t i = 0; i < n; i++) {
		struct wb_ledger_appended a;
		wb_ledger_committed_entry(hs->ledger, i, &a);
		bool skipped;
		if (wb_views_batch_apply(hs->views, a.entry, a.entry_len,
					 &skipped, msg, sizeof(msg))) {
			fprintf(stderr, "harness: apply: %s\n", msg);
			return false;
		}
	}
	if (wb_views_batch_commit(hs->views, NULL, NULL, msg, sizeof(msg))) {
		fprintf(stderr, "harness: views commit: %s\n", msg);
		return false;
	}
	wb_ledger_batch_begin(hs->ledger);
	return true;
}

static bool load_file(struct harness *hs, const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "harness: %s: %s\n", path, strerror(errno));
		return false;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	bool okay = true;
	size_t inbatch = 0;
	wb_ledger_batch_begin(hs->ledger);
	while (okay && (len = getline(&line, &cap, f)) > 0) {
		hs->lines++;
		if (len <= 1)
			continue;
		okay = stage(hs, line, (size_t)len);
		if (okay && ++inbatch == 5000) {
			okay = flush_batch(hs);
			inbatch = 0;
		}
	}
	if (okay)
		okay = flush_batch(hs);
	free(line);
	fclose(f);
	return okay;
}

int main(int argc, char **argv)
{
	/* The harness's own options are taken out; the rest are
	 * waybill-projector configuration. */
	const char *data = NULL, *events = NULL;
	int32_t partitions = 4;
	bool exit_on_eof = false;
	char **rest = calloc((size_t)argc + 1, sizeof(char *));
	int nrest = 0;
	rest[nrest++] = argv[0];
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--data") == 0 && val) {
			data = val;
			i++;
		} else if (strcmp(a, "--events") == 0 && val) {
			events = val;
			i++;
		} else if (strcmp(a, "--partitions") == 0 && val) {
			partitions = atoi(val);
			i++;
		} else if (strcmp(a, "--exit-on-eof") == 0) {
			exit_on_eof = true;
		} else {
			rest[nrest++] = argv[i];
		}
	}
	if (!data || partitions < 1) {
		fprintf(stderr, "usage: wb-http-harness --data DIR "
				"[--partitions N] [--events FILE] "
				"[--exit-on-eof] [--KEY=VALUE ...]\n");
		return 2;
	}
	wb_config *cfg = wb_config_create(WB_CMD_PROJECTOR);
	char msg[512];
	int npos;
	char *pos[4];
	bool help;
	if (wb_config_parse_args(cfg, nrest, rest, NULL, &npos, pos, &help,
				 msg, sizeof(msg))) {
		fprintf(stderr, "harness: %s\n", msg);
		return 2;
	}
	wb_log_level lvl = WB_LOG_INFO;
	wb_log_level_parse(wb_config_get(cfg, "log.level"), &lvl);
	wb_log_init("wb-http-harness", lvl);

	char ldir[4096], vdir[4096];
	snprintf(ldir, sizeof(ldir), "%s/ledger", data);
	snprintf(vdir, sizeof(vdir), "%s/views", data);
	if (mkdir(data, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "harness: %s: %s\n", data, strerror(errno));
		return 1;
	}
	struct harness hs = {.partitions = partitions};
	wb_buf_init(&hs.body);
	struct wb_ledger_options lo = {.dir = ldir, .sync = false,
				       .order_cache = 1 << 16};
	struct wb_views_options vo = {.dir = vdir, .cache_orders = 1 << 16};
	if (wb_ledger_open(&lo, &hs.ledger, msg, sizeof(msg)) ||
	    wb_views_open(&vo, &hs.views, msg, sizeof(msg))) {
		fprintf(stderr, "harness: %s\n", msg);
		return 1;
	}
	if (events && !load_file(&hs, events))
		return 1;
	for (int32_t p = 0; p < partitions; p++)
		wb_views_set_lag(hs.views, p, 0);

	wb_projector_http *http = NULL;
	if (wb_projector_http_start(cfg, hs.views, &http, msg, sizeof(msg))) {
		fprintf(stderr, "harness: %s\n", msg);
		return 1;
	}
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	printf("listening port=%u position=%lld\n",
	       (unsigned)wb_projector_http_port(http),
	       (long long)wb_views_position(hs.views));
	fflush(stdout);

	/* stdin: event lines, applied a batch (what is there) at a time */
	wb_buf in;
	wb_buf_init(&in);
	bool eof = false;
	int status = 0;
	while (!stop) {
		struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
		int r = eof ? poll(NULL, 0, 200) : poll(&pfd, 1, 200);
		if (r <= 0 || eof) {
			if (eof && exit_on_eof)
				break;
			continue;
		}
		wb_buf_reserve(&in, 65536);
		ssize_t got = read(STDIN_FILENO, in.data + in.len, 65536);
		if (got <= 0) {
			eof = true;
			continue;
		}
		in.len += (size_t)got;
		size_t start = 0;
		bool any = false;
		wb_ledger_batch_begin(hs.ledger);
		for (size_t i = 0; i < in.len; i++) {
			if (in.data[i] != '\n')
				continue;
			const char *line = (const char *)in.data + start;
			size_t len = i - start;
			start = i + 1;
			hs.lines++;
			if (len == 0)
				continue;
			int32_t lp;
			long long lag;
			char tmp[64];
			if (len < sizeof(tmp) && line[0] == 'l') {
				memcpy(tmp, line, len);
				tmp[len] = '\0';
				if (sscanf(tmp, "lag %d %lld", &lp, &lag) ==
				    2) {
					wb_views_set_lag(hs.views, lp, lag);
					printf("lag\n");
					fflush(stdout);
				}
				continue;
			}
			if (!stage(&hs, line, len)) {
				status = 1;
				continue;
			}
			any = true;
		}
		memmove(in.data, in.data + start, in.len - start);
		in.len -= start;
		if (any) {
			if (!flush_batch(&hs)) {
				status = 1;
				break;
			}
			printf("applied position=%lld\n",
			       (long long)wb_views_position(hs.views));
			fflush(stdout);
		}
	}
	wb_projector_http_stop(http);
	wb_views_close(hs.views);
	wb_ledger_close(hs.ledger);
	wb_buf_finish(&in);
	wb_buf_finish(&hs.body);
	wb_config_destroy(cfg);
	free(rest);
	return status;
}
