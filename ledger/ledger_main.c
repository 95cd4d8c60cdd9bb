/*
 * ledger_main.c — the waybill-ledger executable: configuration, logging,
 * then wb_ledger_service_run().
 */
#include "wb_ledger.h"

#include <stdlib.h>

static const struct wb_config_alias aliases[] = {
	{"data-dir", "ledger.data.dir"},
	{NULL, NULL},
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: waybill-ledger [--config FILE] [--KEY=VALUE ...]\n\n"
		"Consumes <topic.prefix>events, appends every new event to the "
		"hash-chained\nledger in ledger.data.dir (one synced RocksDB "
		"batch per Kafka batch, with\nthe consumer offsets), publishes "
		"each committed entry to <topic.prefix>ledger\nand rejected "
		"records to <topic.prefix>dlq. Stops on SIGINT/SIGTERM.\n");
	wb_config_print_help(out, WB_CMD_LEDGER);
}

int main(int argc, char **argv)
{
	wb_config *cfg = wb_config_create(WB_CMD_LEDGER);
	char msg[512];
	char **pos = calloc((size_t)argc + 1, sizeof(char *));
	int npos = 0;
	bool help = false;
	int status = 2;
	if (wb_config_parse_args(cfg, argc, argv, aliases, &npos, pos, &help,
				 msg, sizeof(msg))) {
		fprintf(stderr, "waybill-ledger: %s\n", msg);
		goto out;
	}
	if (help) {
		usage(stdout);
		status = 0;
		goto out;
	}
	if (npos) {
		fprintf(stderr, "waybill-ledger: unexpected argument '%s' "
				"(see --help)\n", pos[0]);
		goto out;
	}
	wb_log_level lvl;
	if (!wb_log_level_parse(wb_config_get(cfg, "log.level"), &lvl)) {
		fprintf(stderr, "waybill-ledger: log.level must be debug, "
				"info, warn or error\n");
		goto out;
	}
	wb_log_init("waybill-ledger", lvl);
	status = wb_ledger_service_run(cfg);
out:
	free(pos);
	wb_config_destroy(cfg);
	return status;
}
