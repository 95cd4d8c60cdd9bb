/*
 * wb_delete_records.c — test tool: what Kafka's retention does to old
 * segments, on demand (kafka-delete-records): deletes every record of
 * every partition of TOPIC before its current end, so the topic's earliest
 * offset becomes its high watermark.
 *
 *   wb-delete-records BOOTSTRAP TOPIC   prints "<partition> <new earliest>"
 */
#include <stdlib.h>
#include <string.h>

#include "wb_common.h"

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: wb-delete-records BOOTSTRAP TOPIC\n");
		return 2;
	}
	char errstr[512], msg[256];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], NULL, 0);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr,
				      sizeof(errstr));
	if (!rk) {
		fprintf(stderr, "%s\n", errstr);
		return 1;
	}
	int np = wb_kafka_partition_count(rk, argv[2], 10000, msg, sizeof(msg));
	if (np < 0) {
		fprintf(stderr, "%s\n", msg);
		rd_kafka_destroy(rk);
		return 1;
	}
	rd_kafka_topic_partition_list_t *before =
		rd_kafka_topic_partition_list_new(np);
	for (int p = 0; p < np; p++) {
		int64_t lo, hi;
		rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
			rk, argv[2], p, &lo, &hi, 10000);
		if (err) {
			fprintf(stderr, "watermarks of %s [%d]: %s\n", argv[2],
				p, rd_kafka_err2str(err));
			return 1;
		}
		rd_kafka_topic_partition_list_add(before, argv[2], p)->offset = hi;
	}
	rd_kafka_DeleteRecords_t *del = rd_kafka_DeleteRecords_new(before);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_DeleteRecords(rk, &del, 1, NULL, q);
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
	int status = 0;
	if (!ev || rd_kafka_event_error(ev)) {
		fprintf(stderr, "DeleteRecords: %s\n",
			ev ? rd_kafka_event_error_string(ev) : "timed out");
		status = 1;
	} else {
		const rd_kafka_DeleteRecords_result_t *res =
			rd_kafka_event_DeleteRecords_result(ev);
		const rd_kafka_topic_partition_list_t *offs =
			rd_kafka_DeleteRecords_result_offsets(res);
		for (int i = 0; i < offs->cnt; i++) {
			if (offs->elems[i].err) {
				fprintf(stderr, "%s [%d]: %s\n", argv[2],
					offs->elems[i].partition,
					rd_kafka_err2str(offs->elems[i].err));
				status = 1;
			}
			printf("%d %lld\n", offs->elems[i].partition,
			       (long long)offs->elems[i].offset);
		}
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_DeleteRecords_destroy(del);
	rd_kafka_topic_partition_list_destroy(before);
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
	return status;
}
