/*
 * ledger_cli.c — the `waybill` audit and operations command: replay,
 * verify, stats, plus config-reference and schema for documentation. It
 * opens the ledger read-only, so it can run beside a live waybill-ledger
 * and sees the ledger as of the moment it opened it.
 */
#include "wb_ledger.h"

#include <stdlib.h>
#include <string.h>

static const struct wb_config_alias aliases[] = {
	{"data-dir", "ledger.data.dir"}, {"order", "replay.order"},
	{"partition", "replay.partition"}, {"from", "replay.from"},
	{"to", "replay.to"}, {"type", "replay.type"},
	{"since", "replay.since"}, {"until", "replay.until"},
	{"canonical", NULL}, {"fingerprint", NULL}, {NULL, NULL}};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: waybill COMMAND [--config FILE] [--KEY=VALUE ...]\n\n"
		"commands:\n"
		"  replay    the ledger's entries as JSON lines; filters: "
		"--order ID,\n"
		"            --partition N, --from SEQ, --to SEQ, --type TYPE,\n"
		"            --since TIME, --until TIME (recorded_at)\n"
		"  verify    recompute the hash chain end to end; exit 0 when "
		"every link\n"
		"            holds, 1 naming the first broken link\n"
		"  stats     per-partition heads, offsets and outbox cursors "
		"(JSON)\n"
		"  config-reference   the Markdown table of every "
		"configuration key\n"
		"  schema NAME [--canonical|--fingerprint]   an Avro schema "
		"(OrderEvent,\n"
		"            OrderCommand, LedgerEntry, OrderStatus)\n");
	wb_config_print_help(out, WB_CMD_CLI);
}

static wb_ledger *open_ro(const wb_config *cfg)
{
	struct wb_ledger_options o = {
		.dir = wb_config_get(cfg, "ledger.data.dir"),
		.read_only = true,
	};
	wb_ledger *l = NULL;
	char msg[512];
	if (wb_ledger_open(&o, &l, msg, sizeof(msg))) {
		fprintf(stderr, "waybill: %s\n", msg);
		return NULL;
	}
	return l;
}

static bool opt_i64(const wb_config *cfg, const char *key, int64_t *out,
		    int64_t def)
{
	const char *v = wb_config_get(cfg, key);
	*out = def;
	if (!v)
		return true;
	bool time = strstr(key, "since") || strstr(key, "until");
	if (time ? wb_parse_time_ms(v, out)
		 : wb_parse_i64(v, 0, INT64_MAX, out))
		return true;
	fprintf(stderr, "waybill: bad value '%s' for %s\n", v, key);
	return false;
}

static int cmd_replay(const wb_config *cfg)
{
	int64_t part, from, to, since, until;
	if (!opt_i64(cfg, "replay.partition", &part, -1) ||
	    !opt_i64(cfg, "replay.from", &from, 1) ||
	    !opt_i64(cfg, "replay.to", &to, INT64_MAX) ||
	    !opt_i64(cfg, "replay.since", &since, INT64_MIN) ||
	    !opt_i64(cfg, "replay.until", &until, INT64_MAX))
		return 2;
	const char *order = wb_config_get(cfg, "replay.order");
	const char *type = wb_config_get(cfg, "replay.type");
	wb_ledger *l = open_ro(cfg);
	if (!l)
		return 1;
	wb_ledger_iter *it = order ? wb_ledger_iter_order_create(l, order)
				   : wb_ledger_iter_create(l, (int32_t)part,
							   part >= 0 ? from : 0);
	const uint8_t *entry;
	size_t len;
	char msg[512];
	int status = 0;
	uint64_t n = 0;
	while (wb_ledger_iter_next(it, &entry, &len)) {
		struct wb_entry e;
		if (wb_entry_parse(entry, len, &e, msg, sizeof(msg))) {
			fprintf(stderr, "waybill: %s\n", msg);
			status = 1;
			break;
		}
		if ((part >= 0 && e.partition != part) || e.seq < from ||
		    e.seq > to || e.recorded_at < since ||
		    e.recorded_at >= until)
			continue;
		json_t *j = NULL;
		if (wb_entry_to_json(&e, &j, msg, sizeof(msg))) {
			fprintf(stderr, "waybill: partition %d seq %lld: %s\n",
				e.partition, (long long)e.seq, msg);
			status = 1;
			break;
		}
		if (type && strcmp(json_string_value(json_object_get(j, "type")),
				   type) != 0) {
			json_decref(j);
			continue;
		}
		json_dumpf(j, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
		json_decref(j);
		n++;
	}
	if (wb_ledger_iter_error(it, msg, sizeof(msg))) {
		fprintf(stderr, "waybill: %s\n", msg);
		status = 1;
	}
	wb_ledger_iter_destroy(it);
	wb_ledger_close(l);
	if (fflush(stdout) != 0)
		status = 1;
	(void)n;
	return status;
}

static int cmd_verify(const wb_config *cfg)
{
	wb_ledger *l = open_ro(cfg);
	if (!l)
		return 2;
	struct wb_verify_result r;
	char msg[512];
	int64_t t0 = wb_mono_us();
	wb_ledger_verify(l, &r, msg, sizeof(msg));
	double secs = (double)(wb_mono_us() - t0) / 1e6;
	wb_ledger_close(l);
	if (r.ok) {
		printf("ok: %lld entries in %d partitions, %lld orders; every "
		       "link holds (%.2f s)\n",
		       (long long)r.entries, r.partitions, (long long)r.orders,
		       secs);
		return 0;
	}
	printf("BROKEN: partition %d seq %lld: %s\n", r.bad_partition,
	       (long long)r.bad_seq, r.reason);
	return 1;
}

struct stats_ctx {
	json_t *offsets;
	int32_t max_partition;
};

static void stats_offset(const char *topic, int32_t partition, int64_t next,
			 void *ud)
{
	struct stats_ctx *c = ud;
	json_t *t = json_object_get(c->offsets, topic);
	if (!t) {
		t = json_object();
		json_object_set_new(c->offsets, topic, t);
	}
	char p[16];
	snprintf(p, sizeof(p), "%d", partition);
	json_object_set_new(t, p, json_integer(next));
	if (partition > c->max_partition)
		c->max_partition = partition;
}

/* Every partition with entries or a stored offset, whatever the topic
 * prefix: the ledger records the topic names it consumed. */
static int cmd_stats(const wb_config *cfg)
{
	wb_ledger *l = open_ro(cfg);
	if (!l)
		return 1;
	struct stats_ctx c = {json_object(), -1};
	wb_ledger_offsets_each(l, stats_offset, &c);
	int32_t np = wb_ledger_partition_count(l);
	if (c.max_partition + 1 > np)
		np = c.max_partition + 1;
	json_t *parts = json_array();
	int64_t total = 0;
	for (int32_t p = 0; p < np; p++) {
		int64_t seq;
		uint8_t hash[WB_HASH_LEN];
		char hex[2 * WB_HASH_LEN + 1];
		wb_ledger_head(l, p, &seq, hash);
		wb_hex(hash, WB_HASH_LEN, hex);
		total += seq;
		json_t *o = json_pack("{s:i,s:I,s:s,s:I}", "partition", p,
				      "head_seq", (json_int_t)seq, "head_hash",
				      hex, "published_seq",
				      (json_int_t)wb_ledger_published(l, p));
		/* next_offset of each consumed topic, for this partition */
		const char *topic;
		json_t *offs;
		json_t *next = json_object();
		json_object_foreach(c.offsets, topic, offs) {
			char ps[16];
			snprintf(ps, sizeof(ps), "%d", p);
			json_t *v = json_object_get(offs, ps);
			if (v)
				json_object_set(next, topic, v);
		}
		json_object_set_new(o, "next_offset", next);
		json_array_append_new(parts, o);
	}
	json_t *topics = json_array();
	const char *topic;
	json_t *offs;
	json_object_foreach(c.offsets, topic, offs)
		json_array_append_new(topics, json_string(topic));
	json_t *o = json_pack("{s:I,s:o,s:o}", "entries", (json_int_t)total,
			      "topics", topics, "partitions", parts);
	json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	json_decref(o);
	json_decref(c.offsets);
	wb_ledger_close(l);
	return 0;
}

static int cmd_schema(const wb_config *cfg, int npos, char **pos)
{
	if (npos < 2) {
		fprintf(stderr, "usage: waybill schema NAME "
				"[--canonical|--fingerprint]\n");
		return 2;
	}
	for (int id = 0; id < WB_SCHEMA_COUNT; id++) {
		if (strcmp(wb_schema_name(id), pos[1]) != 0)
			continue;
		if (wb_config_get_bool(cfg, "flag.fingerprint"))
			printf("%016llx\n",
			       (unsigned long long)wb_schema_fingerprint(id));
		else if (wb_config_get_bool(cfg, "flag.canonical"))
			printf("%s\n", wb_schema_canonical(id));
		else
			fputs(wb_schema_text(id), stdout);
		return 0;
	}
	fprintf(stderr, "waybill: unknown schema '%s'\n", pos[1]);
	return 2;
}

int main(int argc, char **argv)
{
	wb_config *cfg = wb_config_create(WB_CMD_CLI);
	char msg[512];
	char **pos = calloc((size_t)argc + 1, sizeof(char *));
	int npos = 0, status = 2;
	bool help = false;
	if (wb_config_parse_args(cfg, argc, argv, aliases, &npos, pos,
				 &help, msg, sizeof(msg))) {
		fprintf(stderr, "waybill: %s\n", msg);
		goto out;
	}
	wb_log_level lvl = WB_LOG_WARN;
	wb_log_level_parse(wb_config_get(cfg, "log.level"), &lvl);
	wb_log_init("waybill", lvl > WB_LOG_WARN ? lvl : WB_LOG_WARN);
	if (help || npos == 0) {
		usage(help ? stdout : stderr);
		status = help ? 0 : 2;
		goto out;
	}
	const char *cmd = pos[0];
	if (strcmp(cmd, "replay") == 0)
		status = cmd_replay(cfg);
	else if (strcmp(cmd, "verify") == 0)
		status = cmd_verify(cfg);
	else if (strcmp(cmd, "stats") == 0)
		status = cmd_stats(cfg);
	else if (strcmp(cmd, "config-reference") == 0) {
		wb_config_print_reference(stdout);
		status = 0;
	} else if (strcmp(cmd, "schema") == 0)
		status = cmd_schema(cfg, npos, pos);
	else
		fprintf(stderr, "waybill: unknown command '%s' (see --help)\n",
			cmd);
out:
	free(pos);
	wb_config_destroy(cfg);
	return status;
}
