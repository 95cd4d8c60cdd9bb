/*
 * projector_main.c — the waybill-projector executable: configuration,
 * logging, then the service (wb_projector_service_run), or --dump.
 */
#include "projector_internal.h"

#include <stdlib.h>
#include <string.h>

static const struct wb_config_alias aliases[] = {
	{"data-dir", "projector.data.dir"},
	{"ledger-dir", "projector.rebuild.ledger.dir"},
	{"rebuild", NULL},
	{"dump", NULL},
	{NULL, NULL},
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: waybill-projector [--config FILE] [--KEY=VALUE ...]\n"
		"       waybill-projector --rebuild [--ledger-dir=DIR] [...]\n"
		"       waybill-projector --dump [--data-dir=DIR]\n\n"
		"Consumes <topic.prefix>ledger and folds every entry into the "
		"read models in\nprojector.data.dir (order views, timelines, "
		"returns, lookups; one synced\nRocksDB batch per Kafka batch, "
		"with a per-partition checkpoint), publishes\neach changed "
		"order's OrderStatus to <topic.prefix>status and serves the "
		"HTTP\nAPI on projector.http.listen ('off' = no HTTP). Stops "
		"on SIGINT/SIGTERM.\n\n"
		"  --rebuild         wipe the read models and rebuild them "
		"from ledger seq 1:\n"
		"                    from --ledger-dir (a ledger data dir, "
		"live or stopped, or a\n"
		"                    `waybill backup`), then from Kafka; "
		"without --ledger-dir\n"
		"                    from Kafka's beginning (only while Kafka "
		"still holds seq 1)\n"
		"  --dump            print every read model as JSON lines "
		"(sorted keys) and exit;\n"
		"                    works beside a running projector\n\n"
		"Exit status: 0 stopped cleanly, 1 start-up failed, 2 bad "
		"configuration,\n3 stopped on an error (e.g. missing ledger "
		"entries: rebuild).\n");
	wb_config_print_help(out, WB_CMD_PROJECTOR);
}

static int dump(const wb_config *cfg)
{
	struct wb_views_options o = {
		.dir = wb_config_get(cfg, "projector.data.dir"),
		.read_only = true,
	};
	wb_views *v = NULL;
	char msg[512];
	if (wb_views_open(&o, &v, msg, sizeof(msg))) {
		fprintf(stderr, "waybill-projector: %s\n", msg);
		return 1;
	}
	int status = 0;
	if (wb_views_dump(v, stdout, msg, sizeof(msg))) {
		fprintf(stderr, "waybill-projector: %s\n", msg);
		status = 1;
	}
	wb_views_close(v);
	return status;
}

int main(int argc, char **argv)
{
	wb_config *cfg = wb_config_create(WB_CMD_PROJECTOR);
	char msg[512];
	char **pos = calloc((size_t)argc + 1, sizeof(char *));
	int npos = 0;
	bool help = false;
	int status = 2;
	if (wb_config_parse_args(cfg, argc, argv, aliases, &npos, pos, &help,
				 msg, sizeof(msg))) {
		fprintf(stderr, "waybill-projector: %s\n", msg);
		goto out;
	}
	if (help) {
		usage(stdout);
		status = 0;
		goto out;
	}
	if (npos) {
		fprintf(stderr, "waybill-projector: unexpected argument '%s' "
				"(see --help)\n", pos[0]);
		goto out;
	}
	wb_log_level lvl;
	if (!wb_log_level_parse(wb_config_get(cfg, "log.level"), &lvl)) {
		fprintf(stderr, "waybill-projector: log.level must be debug, "
				"info, warn or error\n");
		goto out;
	}
	const char *windows =
		wb_config_get(cfg, "projector.return.window.merchants");
	if (windows &&
	    !wb_return_windows_parse(windows, NULL, NULL, msg, sizeof(msg))) {
		fprintf(stderr, "waybill-projector: %s\n", msg);
		goto out;
	}
	int64_t clock;
	if (wb_config_get_int_range(cfg, "projector.clock.ms", 0, INT64_MAX,
				    &clock, msg, sizeof(msg))) {
		fprintf(stderr, "waybill-projector: %s\n", msg);
		goto out;
	}
	if (wb_config_get(cfg, "projector.rebuild.ledger.dir") &&
	    !wb_config_get_bool(cfg, "flag.rebuild")) {
		fprintf(stderr, "waybill-projector: --ledger-dir is only "
				"read with --rebuild\n");
		goto out;
	}
	wb_log_init("waybill-projector", lvl);
	if (wb_config_get_bool(cfg, "flag.dump"))
		status = dump(cfg);
	else
		status = wb_projector_service_run(cfg);
out:
	free(pos);
	wb_config_destroy(cfg);
	return status;
}
