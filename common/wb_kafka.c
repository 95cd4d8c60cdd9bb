/*
 * wb_kafka.c — librdkafka set-up shared by producers and consumers: every
 * kafka.* configuration key is passed through, and librdkafka's own log and
 * error callbacks go into the same key=value log as ours.
 */
#include "wb_common.h"

#include <string.h>

wb_err wb_kafka_conf_set(rd_kafka_conf_t *conf, const char *k, const char *v,
			 char *msg, size_t msglen)
{
	char errstr[512];
	if (rd_kafka_conf_set(conf, k, v, errstr, sizeof(errstr)) !=
	    RD_KAFKA_CONF_OK)
		return wb_fail(msg, msglen, WB_ECONFIG, "kafka.%s: %s", k,
			       errstr);
	return WB_OK;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
		   const char *buf)
{
	/* syslog levels: 0-3 error, 4 warning, 5-6 info, 7 debug */
	wb_log_level lvl = level <= 3   ? WB_LOG_ERROR
			   : level == 4 ? WB_LOG_WARN
			   : level <= 6 ? WB_LOG_INFO
					: WB_LOG_DEBUG;
	wb_log(lvl, "rdkafka", "client=%s fac=%s msg=%s", rd_kafka_name(rk),
	       wb_log_q(fac), wb_log_q(buf));
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *ud)
{
	(void)ud;
	/* Transport errors are retried by librdkafka itself; log them as
	 * warnings. Fatal errors are handled by the caller's poll loop via
	 * rd_kafka_fatal_error(). */
	wb_log(err == RD_KAFKA_RESP_ERR__FATAL ? WB_LOG_ERROR : WB_LOG_WARN,
	       "kafka_error", "client=%s code=%s reason=%s", rd_kafka_name(rk),
	       rd_kafka_err2name((rd_kafka_resp_err_t)err), wb_log_q(reason));
}

struct pass {
	rd_kafka_conf_t *conf;
	wb_err rc;
	char *msg;
	size_t msglen;
};

static void pass_one(const char *k, const char *v, void *ud)
{
	struct pass *p = ud;
	if (p->rc == WB_OK)
		p->rc = wb_kafka_conf_set(p->conf, k, v, p->msg, p->msglen);
}

rd_kafka_conf_t *wb_kafka_conf_new(const wb_config *cfg, char *msg,
				   size_t msglen)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set_log_cb(conf, log_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	struct pass p = {conf, WB_OK, msg, msglen};
	wb_config_each_kafka(cfg, pass_one, &p);
	if (p.rc != WB_OK) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	return conf;
}

void wb_kafka_topic(const wb_config *cfg, const char *name, char *out,
		    size_t outlen)
{
	const char *prefix = wb_config_get(cfg, "topic.prefix");
	snprintf(out, outlen, "%s%s", prefix ? prefix : "", name);
}

int wb_kafka_partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms,
			     char *msg, size_t msglen)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t err =
		rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
	int n = -1;
	if (err) {
		wb_fail(msg, msglen, WB_EKAFKA, "metadata for %s: %s", topic,
			rd_kafka_err2str(err));
	} else if (md->topic_cnt != 1 || md->topics[0].err) {
		wb_fail(msg, msglen, WB_EKAFKA,
			"topic %s: %s (create it with ops/kafka topics)", topic,
			md->topic_cnt ? rd_kafka_err2str(md->topics[0].err)
				      : "not found");
	} else {
		n = md->topics[0].partition_cnt;
	}
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	return n;
}
