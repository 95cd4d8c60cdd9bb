/* test_config.c — precedence of defaults, file, environment and flags. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../tap.h"
#include "wb_common.h"

int main(void)
{
	char msg[256] = "";
	char path[] = "/tmp/wbcfgXXXXXX";
	int fd = mkstemp(path);
	const char *text = "# comment\n topic.prefix = t1. \n"
			   "kafka.linger.ms=7\nledger.batch.max=10\n";
	ok(write(fd, text, strlen(text)) == (ssize_t)strlen(text), "wrote");
	close(fd);

	setenv("WAYBILL_LEDGER_BATCH_MAX", "20", 1);
	setenv("WAYBILL_KAFKA_MESSAGE_TIMEOUT_MS", "999", 1);
	setenv("WAYBILL_KAFKA_PORT", "19092", 1);
	char *argv[] = {"prog", "--config", path, "--ledger.data.dir=/x",
			"pos1", "--data-dir", "/y", "--kafka.acks=all", "-",
			NULL};
	struct wb_config_alias aliases[] = {{"data-dir", "ledger.data.dir"},
					    {NULL, NULL}};
	wb_config *cfg = wb_config_create(WB_CMD_LEDGER);
	int npos;
	char *pos[8];
	bool help;
	wb_err rc = wb_config_parse_args(cfg, 9, argv, aliases, &npos, pos,
					 &help, msg, sizeof(msg));
	ok(rc == WB_OK, "parse (%s)", msg);
	ok(strcmp(wb_config_get(cfg, "topic.prefix"), "t1.") == 0,
	   "file value trimmed");
	ok(wb_config_get_int(cfg, "ledger.batch.max") == 20, "env beats file");
	ok(strcmp(wb_config_get(cfg, "ledger.data.dir"), "/y") == 0,
	   "later flag and alias win");
	ok(strcmp(wb_config_get(cfg, "kafka.linger.ms"), "7") == 0,
	   "kafka.* from file");
	const char *mt = wb_config_get(cfg, "kafka.message.timeout.ms");
	ok(mt && strcmp(mt, "999") == 0, "WAYBILL_KAFKA_* maps _ to .");
	ok(wb_config_get(cfg, "kafka.port") == NULL,
	   "WAYBILL_KAFKA_PORT (an ops/kafka setting) is not a client key");
	ok(npos == 2 && strcmp(pos[0], "pos1") == 0 && strcmp(pos[1], "-") == 0,
	   "positional arguments kept in order");
	ok(strcmp(wb_config_get(cfg, "kafka.bootstrap.servers"),
		  "127.0.0.1:9092") == 0,
	   "default");
	ok(wb_config_set(cfg, "no.such.key", "1", msg, sizeof(msg)) ==
		   WB_ECONFIG,
	   "unknown key rejected: %s", msg);
	wb_config_destroy(cfg);
	wb_config_destroy(NULL);

	cfg = wb_config_create(WB_CMD_LEDGER);
	char *bad[] = {"prog", "--bogus=1", NULL};
	ok(wb_config_parse_args(cfg, 2, bad, NULL, &npos, pos, &help, msg,
				sizeof(msg)) == WB_ECONFIG,
	   "unknown flag: %s", msg);
	wb_config_destroy(cfg);
	cfg = wb_config_create(WB_CMD_LEDGER);
	char *bad2[] = {"prog", "--bogus", NULL};
	ok(wb_config_parse_args(cfg, 2, bad2, NULL, &npos, pos, &help, msg,
				sizeof(msg)) == WB_ECONFIG &&
		   strstr(msg, "unknown configuration key 'bogus'"),
	   "unknown flag without a value, last: %s", msg);
	wb_config_destroy(cfg);
	cfg = wb_config_create(WB_CMD_LEDGER);
	char *bad3[] = {"prog", "--bogus", "positional", NULL};
	ok(wb_config_parse_args(cfg, 3, bad3, NULL, &npos, pos, &help, msg,
				sizeof(msg)) == WB_ECONFIG &&
		   strstr(msg, "unknown configuration key 'bogus'"),
	   "unknown flag before an argument: %s", msg);
	wb_config_destroy(cfg);

	/* Errors name the right line, blank lines included, and a NUL byte
	 * is an error rather than the end of the file. */
	static const struct {
		const char *text;
		size_t len;
		const char *where;
	} bad_files[] = {
#define BAD_FILE(text, where) {text, sizeof(text) - 1, where}
		BAD_FILE("topic.prefix=x\n\n\nbogus\n", ":4: expected key=value"),
		BAD_FILE("topic.prefix=x\n\0log.level=nope\n", ":2: NUL byte"),
#undef BAD_FILE
	};
	for (size_t i = 0; i < sizeof(bad_files) / sizeof(bad_files[0]); i++) {
		fd = open(path, O_WRONLY | O_TRUNC);
		ok(write(fd, bad_files[i].text, bad_files[i].len) ==
			   (ssize_t)bad_files[i].len,
		   "wrote bad file %zu", i);
		close(fd);
		cfg = wb_config_create(WB_CMD_LEDGER);
		rc = wb_config_load_file(cfg, path, msg, sizeof(msg));
		ok(rc == WB_ECONFIG && strstr(msg, bad_files[i].where),
		   "bad file %zu rejected: %s", i, msg);
		wb_config_destroy(cfg);
	}

	int64_t t;
	ok(wb_parse_time_ms("2026-01-01T00:00:00Z", &t) && t == 1767225600000,
	   "RFC 3339 UTC");
	ok(wb_parse_time_ms("2026-01-01T01:00:00.5+01:00", &t) &&
		   t == 1767225600500,
	   "offset and fraction");
	ok(wb_parse_time_ms("1970-01-19T03:45:21Z", &t) && t == 1568721000,
	   "1970 dates");
	ok(!wb_parse_time_ms("2026-13-01T00:00:00Z", &t), "bad month");
	ok(!wb_parse_time_ms("2026-02-29T00:00:00Z", &t) &&
		   !wb_parse_time_ms("2026-04-31", &t) &&
		   wb_parse_time_ms("2028-02-29T00:00:00Z", &t) &&
		   !wb_parse_time_ms("2100-02-29", &t) &&
		   wb_parse_time_ms("2000-02-29", &t),
	   "days past the month's end (leap years aside)");
	ok(!wb_parse_time_ms("1.569521782042E9", &t), "exponent not a time");
	char buf[32];
	wb_format_time_ms(1767225600123, buf);
	ok(strcmp(buf, "2026-01-01T00:00:00.123Z") == 0, "format %s", buf);

	/* listen addresses of the HTTP services */
	struct sockaddr_storage ss;
	ok(wb_parse_listen("k", "127.0.0.1:8081", &ss, msg, sizeof(msg)) ==
			   WB_OK &&
		   ss.ss_family == AF_INET &&
		   ntohs(((struct sockaddr_in *)&ss)->sin_port) == 8081 &&
		   ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) ==
			   0x7f000001,
	   "listen 127.0.0.1:8081");
	ok(wb_parse_listen("k", "[::1]:0", &ss, msg, sizeof(msg)) == WB_OK &&
		   ss.ss_family == AF_INET6,
	   "listen [::1]:0 (a free port)");
	ok(wb_parse_listen("k", ":9000", &ss, msg, sizeof(msg)) == WB_OK,
	   "listen :9000 (all interfaces)");
	ok(wb_parse_listen("ingest.http.listen", "localhost", &ss, msg,
			   sizeof(msg)) == WB_ECONFIG &&
		   strstr(msg, "ingest.http.listen"),
	   "no port: %s", msg);
	ok(wb_parse_listen("k", "127.0.0.1:65536", &ss, msg, sizeof(msg)) ==
		   WB_ECONFIG,
	   "port out of range: %s", msg);
	ok(wb_parse_listen("k", NULL, &ss, msg, sizeof(msg)) == WB_ECONFIG,
	   "unset: %s", msg);

	/* --help of one part: only its keys */
	char *htext = NULL;
	size_t helplen = 0;
	FILE *hf = open_memstream(&htext, &helplen);
	const char *prefixes[] = {"ledger.batch.", "topic.", NULL};
	wb_config_print_help_keys(hf, WB_CMD_LEDGER, prefixes);
	fclose(hf);
	ok(strstr(htext, "--ledger.batch.max=20000") &&
		   strstr(htext, "--ledger.batch.wait.ms=5") &&
		   strstr(htext, "--topic.prefix=orders.") &&
		   !strstr(htext, "ledger.sync") && !strstr(htext, "log.level"),
	   "help limited to the given prefixes");
	free(htext);
	unlink(path);
	return tap_done();
}
