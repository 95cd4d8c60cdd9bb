/*
 * ledger_cli.c — the `waybill` audit and operations command: replay,
 * verify, stats, plus config-reference and schema for documentation. It
 * opens the ledger read-only, so it can run beside a live waybill-ledger
 * and sees the ledger as of the moment it opened it.
 */
#include "wb_ledger.h"
#include "projector_internal.h" /* the fold, for as-of */

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct wb_config_alias aliases[] = {
	{"data-dir", "ledger.data.dir"}, {"order", "replay.order"},
	{"partition", "replay.partition"}, {"from", "replay.from"},
	{"to", "replay.to"}, {"type", "replay.type"},
	{"since", "replay.since"}, {"until", "replay.until"},
	{"publish", "replay.publish.topic"},
	{"at", "asof.at"}, {"version", "asof.version"},
	{"canonical", NULL}, {"fingerprint", NULL},
	{"merchant", "token.merchant"}, {"scopes", "token.scopes"},
	{NULL, NULL}};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: waybill COMMAND [--config FILE] [--KEY=VALUE ...]\n\n"
		"commands:\n"
		"  replay    the ledger's entries as JSON lines; filters: "
		"--order ID,\n"
		"            --partition N, --from SEQ, --to SEQ, --type TYPE,\n"
		"            --since TIME, --until TIME (recorded_at);\n"
		"            --publish TOPIC produces them to TOPIC as "
		"waybill-ledger does\n"
		"            to <prefix>ledger (LedgerEntry, key = order id, "
		"same partition)\n"
		"            and prints how many were delivered\n"
		"  verify    recompute the hash chain end to end; exit 0 when "
		"every link\n"
		"            holds, 1 naming the first broken link\n"
		"  stats     per-partition heads, offsets and outbox cursors "
		"(JSON)\n"
		"  as-of ORDER --at TIME | --version N\n"
		"            the order view as it stood then (entries recorded "
		"at or before\n"
		"            TIME, or up to version N), computed by the "
		"projector's fold\n"
		"  backup DIR  a RocksDB checkpoint of the ledger into DIR "
		"(must not exist),\n"
		"            beside a running waybill-ledger; checked before "
		"it says ok\n"
		"  config-reference   the Markdown table of every "
		"configuration key\n"
		"  schema NAME [--canonical|--fingerprint]   an Avro schema "
		"(OrderEvent,\n"
		"            OrderCommand, LedgerEntry, OrderStatus)\n"
		"  token new --merchant M [--scopes read,act]   a fresh "
		"bearer token for\n"
		"            waybill-projector's HTTP API: prints the token, "
		"then its line\n"
		"            for projector.tokens.file (which holds only the "
		"hash)\n");
	wb_config_print_help(out, WB_CMD_CLI);
}

/* The ledger, read-only; NULL (with the message printed and *status set:
 * 2 when the directory is missing or not a ledger, else 1) if it cannot be
 * opened. */
static wb_ledger *open_ro(const wb_config *cfg, int *status)
{
	struct wb_ledger_options o = {
		.dir = wb_config_get(cfg, "ledger.data.dir"),
		.read_only = true,
	};
	wb_ledger *l = NULL;
	char msg[512];
	wb_err rc = wb_ledger_open(&o, &l, msg, sizeof(msg));
	if (rc) {
		fprintf(stderr, "waybill: %s\n", msg);
		*status = rc == WB_ENOTFOUND ? 2 : 1;
		return NULL;
	}
	return l;
}

/* replay, verify and stats take options only: a stray word (an order id
 * without --order=) must not silently mean "everything". */
static bool no_operands(int npos, char **pos, const char *hint)
{
	if (npos <= 1)
		return true;
	fprintf(stderr, "waybill: %s takes no arguments, got '%s'%s (see "
			"--help)\n",
		pos[0], pos[1], hint);
	return false;
}

/* --type names one of the OrderEvent payload types. */
static bool known_type(const char *type)
{
	const char *const *t = wb_event_types();
	for (const char *const *p = t; *p; p++)
		if (strcmp(*p, type) == 0)
			return true;
	fprintf(stderr, "waybill: unknown event type '%s'; the types are:",
		type);
	for (const char *const *p = t; *p; p++)
		fprintf(stderr, "%s %s", p == t ? "" : ",", *p);
	fputc('\n', stderr);
	return false;
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

/* ---- replay --publish -------------------------------------------------- */

/* Republishing: the selected entries go to a topic exactly as
 * waybill-ledger publishes them to <prefix>ledger (Avro LedgerEntry in the
 * single-object encoding, key = order id, the entry's own partition), with
 * an idempotent producer. */
struct pub {
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	const char *topic;
	uint64_t sent, acked, failed;
	char first_err[256];
};

static void pub_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *ud)
{
	(void)rk;
	struct pub *p = ud;
	if (!m->err) {
		p->acked++;
		return;
	}
	if (p->failed++ == 0)
		snprintf(p->first_err, sizeof(p->first_err),
			 "partition %d: %s", m->partition,
			 rd_kafka_err2str(m->err));
}

/* The producer, and a check that topic has every partition the selection
 * may use (need). */
static bool pub_open(const wb_config *cfg, struct pub *p, const char *topic,
		     int32_t need)
{
	char msg[512];
	p->topic = topic;
	rd_kafka_conf_t *conf = wb_kafka_conf_new(cfg, msg, sizeof(msg));
	if (!conf) {
		fprintf(stderr, "waybill: %s\n", msg);
		return false;
	}
	/* as waybill-ledger's producer; kafka.* keys may change all but
	 * idempotence */
	static const char *const kv[] = {
		"acks", "all", "linger.ms", "5", "compression.type", "lz4",
		"queue.buffering.max.messages", "1000000", NULL};
	for (const char *const *k = kv; *k; k += 2) {
		char key[128];
		snprintf(key, sizeof(key), "kafka.%s", k[0]);
		if (!wb_config_is_set(cfg, key) &&
		    wb_kafka_conf_set(conf, k[0], k[1], msg, sizeof(msg))) {
			fprintf(stderr, "waybill: %s\n", msg);
			rd_kafka_conf_destroy(conf);
			return false;
		}
	}
	if (wb_kafka_conf_set(conf, "enable.idempotence", "true", msg,
			      sizeof(msg))) {
		fprintf(stderr, "waybill: %s\n", msg);
		rd_kafka_conf_destroy(conf);
		return false;
	}
	rd_kafka_conf_set_opaque(conf, p);
	rd_kafka_conf_set_dr_msg_cb(conf, pub_dr);
	char errstr[512];
	p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!p->rk) {
		fprintf(stderr, "waybill: %s\n", errstr);
		return false;
	}
	int n = wb_kafka_partition_count(p->rk, topic, 10000, msg, sizeof(msg));
	if (n < 0) {
		fprintf(stderr, "waybill: %s\n", msg);
		return false;
	}
	if (n < need) {
		fprintf(stderr,
			"waybill: %s has %d partitions, the entries selected "
			"may be in partitions up to %d: each entry keeps its "
			"ledger partition\n",
			topic, n, need - 1);
		return false;
	}
	p->rkt = rd_kafka_topic_new(p->rk, topic, NULL);
	return true;
}

static bool pub_entry(struct pub *p, const struct wb_entry *e,
		      const struct wb_event_view *v, const uint8_t *entry,
		      size_t len, wb_buf *frame)
{
	wb_buf_reset(frame);
	wb_avro_frame(WB_SCHEMA_LEDGER_ENTRY, frame);
	wb_buf_append(frame, entry, len);
	for (;;) {
		if (rd_kafka_produce(p->rkt, e->partition, RD_KAFKA_MSG_F_COPY,
				     frame->data, frame->len, v->order_id.p,
				     v->order_id.n, NULL) == 0) {
			p->sent++;
			rd_kafka_poll(p->rk, 0);
			return true;
		}
		rd_kafka_resp_err_t err = rd_kafka_last_error();
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			fprintf(stderr, "waybill: produce partition %d seq "
					"%lld to %s: %s\n",
				e->partition, (long long)e->seq, p->topic,
				rd_kafka_err2str(err));
			return false;
		}
		rd_kafka_poll(p->rk, 100);
	}
}

/* Waits for every delivery report (librdkafka gives each message one
 * within message.timeout.ms); 0 when all were delivered. */
static int pub_close(struct pub *p, bool ok)
{
	int status = ok ? 0 : 1;
	if (p->rk) {
		while (rd_kafka_outq_len(p->rk) > 0)
			rd_kafka_flush(p->rk, 1000);
		char ferr[256];
		if (rd_kafka_fatal_error(p->rk, ferr, sizeof(ferr))) {
			fprintf(stderr, "waybill: producer failed: %s\n", ferr);
			status = 1;
		}
	}
	if (p->failed || p->acked != p->sent) {
		fprintf(stderr,
			"waybill: %llu of %llu entries not delivered to %s "
			"(first: %s)\n",
			(unsigned long long)(p->sent - p->acked),
			(unsigned long long)p->sent, p->topic,
			p->failed ? p->first_err : "no delivery report");
		status = 1;
	}
	if (p->rk)
		printf("published %llu entries to %s\n",
		       (unsigned long long)p->acked, p->topic);
	if (p->rkt)
		rd_kafka_topic_destroy(p->rkt);
	if (p->rk)
		rd_kafka_destroy(p->rk);
	return status;
}

/* ---- replay ------------------------------------------------------------ */

static int cmd_replay(const wb_config *cfg, int npos, char **pos)
{
	if (!no_operands(npos, pos, "; one order is --order=ID"))
		return 2;
	int64_t part, from, to, since, until;
	if (!opt_i64(cfg, "replay.partition", &part, -1) ||
	    !opt_i64(cfg, "replay.from", &from, 1) ||
	    !opt_i64(cfg, "replay.to", &to, INT64_MAX) ||
	    !opt_i64(cfg, "replay.since", &since, INT64_MIN) ||
	    !opt_i64(cfg, "replay.until", &until, INT64_MAX))
		return 2;
	if (part > INT32_MAX) {
		fprintf(stderr, "waybill: bad value '%lld' for "
				"replay.partition\n", (long long)part);
		return 2;
	}
	const char *order = wb_config_get(cfg, "replay.order");
	const char *type = wb_config_get(cfg, "replay.type");
	const char *topic = wb_config_get(cfg, "replay.publish.topic");
	if (type && !known_type(type))
		return 2;
	if (topic && !*topic) {
		fprintf(stderr, "waybill: --publish needs a topic name\n");
		return 2;
	}
	int status = 0;
	wb_ledger *l = open_ro(cfg, &status);
	if (!l)
		return status;
	struct pub pub = {0};
	if (topic &&
	    !pub_open(cfg, &pub, topic,
		      part >= 0 ? (int32_t)part + 1
				: wb_ledger_partition_count(l))) {
		if (pub.rk)
			rd_kafka_destroy(pub.rk);
		wb_ledger_close(l);
		return 1;
	}
	wb_ledger_iter *it = order ? wb_ledger_iter_order_create(l, order)
				   : wb_ledger_iter_create(l, (int32_t)part,
							   part >= 0 ? from : 0);
	const uint8_t *entry;
	size_t len;
	char msg[512];
	wb_buf frame;
	wb_buf_init(&frame);
	while (wb_ledger_iter_next(it, &entry, &len)) {
		struct wb_entry e;
		struct wb_event_view v;
		if (wb_entry_parse(entry, len, &e, msg, sizeof(msg)) ||
		    wb_event_peek(e.event, e.event_len, &v, msg,
				  sizeof(msg))) {
			fprintf(stderr, "waybill: %s\n", msg);
			status = 1;
			break;
		}
		if ((part >= 0 && e.partition != part) || e.seq < from ||
		    e.seq > to || e.recorded_at < since ||
		    e.recorded_at >= until ||
		    (type && (v.type.n != strlen(type) ||
			      memcmp(v.type.p, type, v.type.n) != 0)))
			continue;
		if (topic) {
			if (!pub_entry(&pub, &e, &v, entry, len, &frame)) {
				status = 1;
				break;
			}
			continue;
		}
		json_t *j = NULL;
		if (wb_entry_to_json(&e, &j, msg, sizeof(msg))) {
			fprintf(stderr, "waybill: partition %d seq %lld: %s\n",
				e.partition, (long long)e.seq, msg);
			status = 1;
			break;
		}
		json_dumpf(j, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
		json_decref(j);
	}
	wb_buf_finish(&frame);
	if (wb_ledger_iter_error(it, msg, sizeof(msg))) {
		fprintf(stderr, "waybill: %s\n", msg);
		status = 1;
	}
	wb_ledger_iter_destroy(it);
	wb_ledger_close(l);
	if (topic && pub_close(&pub, status == 0))
		status = 1;
	if (fflush(stdout) != 0)
		status = 1;
	return status;
}

static int cmd_verify(const wb_config *cfg, int npos, char **pos)
{
	if (!no_operands(npos, pos, ""))
		return 2;
	int status = 0;
	wb_ledger *l = open_ro(cfg, &status);
	if (!l)
		return 2; /* 1 means a broken link */
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
static int cmd_stats(const wb_config *cfg, int npos, char **pos)
{
	if (!no_operands(npos, pos, ""))
		return 2;
	int status = 0;
	wb_ledger *l = open_ro(cfg, &status);
	if (!l)
		return status;
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

/* `waybill token new`: 32 random bytes as "wbt_" + base64url, and the
 * tokens-file line "<sha256 hex of the token> <merchant> <scopes>". The
 * token goes to stdout only, never to a log. */
static int cmd_token(const wb_config *cfg, int npos, char **pos)
{
	if (npos != 2 || strcmp(pos[1], "new") != 0) {
		fprintf(stderr, "usage: waybill token new --merchant M "
				"[--scopes read,act]\n");
		return 2;
	}
	const char *merchant = wb_config_get(cfg, "token.merchant");
	const char *scopes = wb_config_get(cfg, "token.scopes");
	size_t mlen = merchant ? strlen(merchant) : 0;
	bool mok = mlen > 0 && mlen <= 256;
	for (size_t i = 0; mok && i < mlen; i++)
		mok = merchant[i] > 0x20 && merchant[i] < 0x7f;
	if (!mok) {
		fprintf(stderr, "waybill: --merchant must be 1 to 256 "
				"printable characters without spaces\n");
		return 2;
	}
	bool read = false, act = false, sok = scopes && *scopes;
	for (const char *s = scopes; sok && s;) {
		const char *e = strchr(s, ',');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		if (n == 4 && strncmp(s, "read", 4) == 0)
			read = true;
		else if (n == 3 && strncmp(s, "act", 3) == 0)
			act = true;
		else
			sok = false;
		s = e ? e + 1 : NULL;
	}
	if (!sok) {
		fprintf(stderr, "waybill: --scopes must be read and/or act, "
				"comma-separated\n");
		return 2;
	}
	uint8_t raw[32];
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		fprintf(stderr, "waybill: no randomness available\n");
		return 1;
	}
	static const char b64u[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
				   "qrstuvwxyz0123456789-_";
	char token[4 + 44] = "wbt_";
	size_t n = 4;
	for (size_t i = 0; i < sizeof(raw); i += 3) {
		uint32_t v = (uint32_t)raw[i] << 16;
		if (i + 1 < sizeof(raw))
			v |= (uint32_t)raw[i + 1] << 8;
		if (i + 2 < sizeof(raw))
			v |= raw[i + 2];
		size_t chars = i + 2 < sizeof(raw) ? 4 : i + 1 < sizeof(raw) ? 3 : 2;
		for (size_t k = 0; k < chars; k++)
			token[n++] = b64u[(v >> (18 - 6 * k)) & 63];
	}
	token[n] = '\0';
	uint8_t digest[SHA256_DIGEST_LENGTH];
	char hex[2 * SHA256_DIGEST_LENGTH + 1];
	SHA256((const unsigned char *)token, n, digest);
	wb_hex(digest, sizeof(digest), hex);
	printf("%s\n%s %s %s%s%s\n", token, hex, merchant, read ? "read" : "",
	       read && act ? "," : "", act ? "act" : "");
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(token, sizeof(token));
	if (isatty(STDOUT_FILENO))
		fprintf(stderr, "# first line: the token, for the client (it "
				"is not stored anywhere);\n# second line: "
				"append it to projector.tokens.file\n");
	return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- as-of ------------------------------------------------------------ */

struct window_ctx {
	const char *merchant;
	int days;
};

static void window_match(const char *m, size_t n, int days, void *ud)
{
	struct window_ctx *c = ud;
	if (c->merchant && strlen(c->merchant) == n &&
	    memcmp(c->merchant, m, n) == 0)
		c->days = days > 0 ? days : 0;
}

/* The merchant's return window, as waybill-projector computes it. */
static int return_window(const wb_config *cfg, const char *merchant)
{
	int64_t d = wb_config_get_int(cfg, "projector.return.window.days");
	struct window_ctx c = {merchant, d > 0 ? (int)d : 0};
	const char *list =
		wb_config_get(cfg, "projector.return.window.merchants");
	char msg[256];
	if (list && !wb_return_windows_parse(list, window_match, &c, msg,
					     sizeof(msg)))
		fprintf(stderr, "waybill: %s\n", msg);
	return c.days;
}

static int cmd_asof(const wb_config *cfg, int npos, char **pos)
{
	const char *at_s = wb_config_get(cfg, "asof.at");
	const char *ver_s = wb_config_get(cfg, "asof.version");
	if (npos != 2 || !at_s == !ver_s) {
		fprintf(stderr, "usage: waybill as-of ORDER --at TIME | "
				"--version N\n");
		return 2;
	}
	int64_t at = INT64_MAX, ver = INT64_MAX;
	if (at_s && !wb_parse_time_ms(at_s, &at)) {
		fprintf(stderr, "waybill: bad time '%s' (epoch ms or RFC "
				"3339)\n", at_s);
		return 2;
	}
	if (ver_s && !wb_parse_i64(ver_s, 1, INT64_MAX, &ver)) {
		fprintf(stderr, "waybill: bad version '%s'\n", ver_s);
		return 2;
	}
	int status = 0;
	wb_ledger *l = open_ro(cfg, &status);
	if (!l)
		return status;
	wb_ledger_iter *it = wb_ledger_iter_order_create(l, pos[1]);
	const uint8_t *entry;
	size_t len;
	char msg[512];
	json_t *view = NULL;
	int64_t n = 0, total = 0, last_recorded = 0;
	while (wb_ledger_iter_next(it, &entry, &len)) {
		struct wb_entry e;
		json_t *j = NULL;
		if (wb_entry_parse(entry, len, &e, msg, sizeof(msg)) ||
		    wb_entry_to_json(&e, &j, msg, sizeof(msg))) {
			fprintf(stderr, "waybill: %s\n", msg);
			status = 1;
			break;
		}
		total++;
		/* the order's entries in version order: what was known at
		 * TIME is the prefix recorded by then */
		if (e.version > ver || e.recorded_at > at) {
			json_decref(j);
			continue;
		}
		if (wb_order_fold(&view, j, msg, sizeof(msg))) {
			fprintf(stderr, "waybill: version %lld: %s\n",
				(long long)e.version, msg);
			status = 1;
			json_decref(j);
			break;
		}
		json_decref(j);
		n++;
		last_recorded = e.recorded_at;
	}
	if (!status && wb_ledger_iter_error(it, msg, sizeof(msg))) {
		fprintf(stderr, "waybill: %s\n", msg);
		status = 1;
	}
	wb_ledger_iter_destroy(it);
	wb_ledger_close(l);
	if (!status && total == 0) {
		fprintf(stderr, "waybill: no order %s in the ledger\n", pos[1]);
		status = 1;
	} else if (!status && n == 0) {
		fprintf(stderr, "waybill: order %s had no entries yet at %s\n",
			pos[1], at_s);
		status = 1;
	} else if (!status && ver_s && n < ver) {
		fprintf(stderr, "waybill: order %s has only %lld versions\n",
			pos[1], (long long)n);
		status = 1;
	}
	if (status) {
		json_decref(view);
		return status;
	}
	int64_t now = at_s ? at : last_recorded;
	const char *merchant =
		json_string_value(json_object_get(view, "merchant"));
	json_t *p = wb_order_present(view, now, return_window(cfg, merchant));
	json_object_set_new(p, "as_of",
			    json_pack("{s:I,s:I,s:I}", "at", (json_int_t)now,
				      "version", (json_int_t)n, "of_versions",
				      (json_int_t)total));
	json_dumpf(p, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	json_decref(p);
	json_decref(view);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- backup ----------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* A copy holds whole batches: every partition's stored chain head is its
 * last entry, with that entry's hash. (`waybill verify --data-dir=DIR`
 * checks every link.) */
static wb_err backup_check(const char *dir, char *msg, size_t msglen)
{
	struct wb_ledger_options o = {.dir = dir, .read_only = true};
	wb_ledger *b = NULL;
	wb_err rc = wb_ledger_open(&o, &b, msg, msglen);
	if (rc)
		return rc;
	int32_t np = wb_ledger_partition_count(b);
	int64_t total = 0;
	for (int32_t p = 0; p < np && !rc; p++) {
		int64_t seq;
		uint8_t hash[WB_HASH_LEN];
		wb_ledger_head(b, p, &seq, hash);
		total += seq;
		if (seq == 0)
			continue;
		wb_ledger_iter *it = wb_ledger_iter_create(b, p, seq);
		const uint8_t *entry;
		size_t len;
		struct wb_entry e;
		if (!wb_ledger_iter_next(it, &entry, &len) ||
		    wb_entry_parse(entry, len, &e, msg, msglen) ||
		    e.seq != seq || memcmp(e.hash, hash, WB_HASH_LEN) != 0 ||
		    wb_ledger_iter_next(it, &entry, &len))
			rc = wb_fail(msg, msglen, WB_ECORRUPT,
				     "the copy's partition %d does not end at "
				     "its chain head (seq %lld)",
				     p, (long long)seq);
		wb_ledger_iter_destroy(it);
	}
	wb_ledger_close(b);
	if (!rc)
		printf("ok: backup of %lld entries in %d partitions in %s; "
		       "every chain head is its last entry\n",
		       (long long)total, np, dir);
	return rc;
}

static int cmd_backup(const wb_config *cfg, int npos, char **pos)
{
	if (npos != 2) {
		fprintf(stderr, "usage: waybill backup DIR\n");
		return 2;
	}
	const char *dir = pos[1];
	struct stat st;
	if (stat(dir, &st) == 0) {
		fprintf(stderr, "waybill: %s exists; a backup goes into a new "
				"directory\n", dir);
		return 2;
	}
	char msg[512];
	/* a live ledger may compact away a file between our open and the
	 * checkpoint: the copy is checked, and taken again if it does not
	 * hold */
	for (int attempt = 1; attempt <= 3; attempt++) {
		int status = 0;
		wb_ledger *l = open_ro(cfg, &status);
		if (!l)
			return status;
		wb_err rc = wb_ledger_backup(l, dir, msg, sizeof(msg));
		wb_ledger_close(l);
		if (!rc)
			rc = backup_check(dir, msg, sizeof(msg));
		if (!rc)
			return 0;
		fprintf(stderr, "waybill: backup attempt %d: %s\n", attempt,
			msg);
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	}
	return 1;
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
		status = cmd_replay(cfg, npos, pos);
	else if (strcmp(cmd, "verify") == 0)
		status = cmd_verify(cfg, npos, pos);
	else if (strcmp(cmd, "stats") == 0)
		status = cmd_stats(cfg, npos, pos);
	else if (strcmp(cmd, "as-of") == 0)
		status = cmd_asof(cfg, npos, pos);
	else if (strcmp(cmd, "backup") == 0)
		status = cmd_backup(cfg, npos, pos);
	else if (strcmp(cmd, "config-reference") == 0) {
		wb_config_print_reference(stdout);
		status = 0;
	} else if (strcmp(cmd, "schema") == 0)
		status = cmd_schema(cfg, npos, pos);
	else if (strcmp(cmd, "token") == 0)
		status = cmd_token(cfg, npos, pos);
	else
		fprintf(stderr, "waybill: unknown command '%s' (see --help)\n",
			cmd);
out:
	free(pos);
	wb_config_destroy(cfg);
	return status;
}
