/*
 * wb_topic_dump.c — test tool: reads a topic from the beginning to its
 * current end (every partition) and prints one line per record, so
 * scripts can assert on what reached Kafka.
 *
 *   wb-topic-dump BOOTSTRAP TOPIC ledger   "<partition> <seq> <version> <order_id> <event_id>"
 *   wb-topic-dump BOOTSTRAP TOPIC events   "<partition> <key> <event_id> <type>"
 *   wb-topic-dump BOOTSTRAP TOPIC dlq      "<partition> <offset> <len> <waybill.source>\t<waybill.error>"
 *   wb-topic-dump BOOTSTRAP TOPIC count    total number of records
 *   wb-topic-dump BOOTSTRAP TOPIC status   "<partition> <offset> <key> <OrderStatus as JSON>"
 */
#include <stdlib.h>
#include <string.h>

#include "wb_ledger.h"

static void print_record(const char *mode, const rd_kafka_message_t *m)
{
	char msg[256];
	const uint8_t *body;
	size_t len;
	if (strcmp(mode, "ledger") == 0) {
		struct wb_entry e;
		struct wb_event_view v;
		if (wb_avro_unframe(WB_SCHEMA_LEDGER_ENTRY, m->payload, m->len,
				    &body, &len, msg, sizeof(msg)) ||
		    wb_entry_parse(body, len, &e, msg, sizeof(msg)) ||
		    wb_event_peek(e.event, e.event_len, &v, msg, sizeof(msg))) {
			printf("%d BAD %s\n", m->partition, msg);
			return;
		}
		printf("%d %lld %lld %.*s %.*s\n", m->partition,
		       (long long)e.seq, (long long)e.version,
		       (int)v.order_id.n, v.order_id.p, (int)v.event_id.n,
		       v.event_id.p);
	} else if (strcmp(mode, "events") == 0) {
		struct wb_event_view v;
		if (wb_avro_unframe(WB_SCHEMA_ORDER_EVENT, m->payload, m->len,
				    &body, &len, msg, sizeof(msg)) ||
		    wb_event_peek(body, len, &v, msg, sizeof(msg))) {
			printf("%d BAD %s\n", m->partition, msg);
			return;
		}
		printf("%d %.*s %.*s %.*s\n", m->partition, (int)m->key_len,
		       (const char *)m->key, (int)v.event_id.n, v.event_id.p,
		       (int)v.type.n, v.type.p);
	} else if (strcmp(mode, "status") == 0) {
		json_t *j = NULL;
		if (wb_avro_unframe(WB_SCHEMA_ORDER_STATUS, m->payload, m->len,
				    &body, &len, msg, sizeof(msg)) ||
		    wb_avro_decode(WB_SCHEMA_ORDER_STATUS, body, len, &j, msg,
				   sizeof(msg))) {
			printf("%d BAD %s\n", m->partition, msg);
			return;
		}
		char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
		printf("%d %lld %.*s %s\n", m->partition, (long long)m->offset,
		       (int)m->key_len, (const char *)m->key, s);
		free(s);
		json_decref(j);
	} else if (strcmp(mode, "dlq") == 0) {
		rd_kafka_headers_t *h = NULL;
		const void *src = "", *err = "";
		size_t srcn = 0, errn = 0;
		if (rd_kafka_message_headers(m, &h) == 0) {
			rd_kafka_header_get_last(h, "waybill.source", &src, &srcn);
			rd_kafka_header_get_last(h, "waybill.error", &err, &errn);
		}
		printf("%d %lld %zu %.*s\t%.*s\n", m->partition,
		       (long long)m->offset, m->len, (int)srcn,
		       (const char *)src, (int)errn, (const char *)err);
	}
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: wb-topic-dump BOOTSTRAP TOPIC "
				"ledger|events|dlq|count|status\n");
		return 2;
	}
	const char *mode = argv[3];
	char errstr[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], NULL, 0);
	rd_kafka_conf_set(conf, "enable.partition.eof", "true", NULL, 0);
	rd_kafka_conf_set(conf, "group.id", "wb-topic-dump", NULL, 0);
	rd_kafka_conf_set(conf, "enable.auto.commit", "false", NULL, 0);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr,
				      sizeof(errstr));
	if (!rk) {
		fprintf(stderr, "%s\n", errstr);
		return 1;
	}
	char msg[256];
	int np = wb_kafka_partition_count(rk, argv[2], 10000, msg, sizeof(msg));
	if (np < 0) {
		fprintf(stderr, "%s\n", msg);
		rd_kafka_destroy(rk);
		return 1;
	}
	rd_kafka_topic_partition_list_t *l =
		rd_kafka_topic_partition_list_new(np);
	for (int p = 0; p < np; p++)
		rd_kafka_topic_partition_list_add(l, argv[2], p)->offset =
			RD_KAFKA_OFFSET_BEGINNING;
	rd_kafka_assign(rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	int eof = 0, idle = 0;
	long long count = 0;
	while (eof < np && idle < 300) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
		if (!m) {
			idle++;
			continue;
		}
		idle = 0;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
			eof++;
		else if (m->err)
			fprintf(stderr, "consume: %s\n",
				rd_kafka_message_errstr(m));
		else {
			count++;
			print_record(mode, m);
		}
		rd_kafka_message_destroy(m);
	}
	if (strcmp(mode, "count") == 0)
		printf("%lld\n", count);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	return eof < np ? 1 : 0;
}
