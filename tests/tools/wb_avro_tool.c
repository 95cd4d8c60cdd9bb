/*
 * wb_avro_tool.c — exposes the schema codec to test scripts, so that an
 * independent Avro implementation (tests/compat/test_fastavro.py) can check
 * our Parsing Canonical Form, fingerprints and bytes.
 *
 *   wb-avro-tool pcf NAME          Parsing Canonical Form of NAME
 *   wb-avro-tool fingerprint NAME  CRC-64-AVRO of it, as the uint64 value in
 *                                  16 lower-case hex digits (most significant
 *                                  first; the single-object header carries
 *                                  the same value little-endian)
 *   wb-avro-tool encode NAME       canonical JSON lines on stdin -> one line of
 *                                  hex per input: the framed message
 *                                  (C3 01 + fingerprint + body)
 *   wb-avro-tool decode NAME       hex lines of framed messages on stdin ->
 *                                  canonical JSON lines
 *
 * NAME is OrderEvent, OrderCommand, LedgerEntry or OrderStatus. Blank input
 * lines are skipped. Any failure is reported on stderr with its input line
 * and exits 1.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wb_schema.h"

static void usage(void)
{
	fprintf(stderr,
		"usage: wb-avro-tool pcf|fingerprint|encode|decode NAME\n"
		"  NAME: OrderEvent, OrderCommand, LedgerEntry, OrderStatus\n");
}

static int schema_by_name(const char *name, wb_schema_id *id)
{
	for (int i = 0; i < WB_SCHEMA_COUNT; i++) {
		if (strcmp(wb_schema_name((wb_schema_id)i), name) == 0) {
			*id = (wb_schema_id)i;
			return 0;
		}
	}
	return -1;
}

/* Strips trailing CR/LF/blanks in place; returns the new length. */
static size_t chomp(char *s, size_t n)
{
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return n;
}

static int encode_line(wb_schema_id id, const char *line, size_t n,
		       long lineno, wb_buf *out)
{
	json_error_t jerr;
	json_t *j = json_loadb(line, n, 0, &jerr);
	if (!j) {
		fprintf(stderr, "wb-avro-tool: line %ld: bad JSON: %s\n",
			lineno, jerr.text);
		return -1;
	}
	char msg[512] = "";
	wb_buf_reset(out);
	wb_avro_frame(id, out);
	wb_err rc = id == WB_SCHEMA_ORDER_EVENT
			    ? wb_event_encode_json(j, out, msg, sizeof(msg))
			    : wb_avro_encode(id, j, out, msg, sizeof(msg));
	json_decref(j);
	if (rc) {
		fprintf(stderr, "wb-avro-tool: line %ld: %s: %s\n", lineno,
			wb_strerror(rc), msg);
		return -1;
	}
	char *hex = wb_xmalloc(2 * out->len + 1);
	wb_hex(out->data, out->len, hex);
	printf("%s\n", hex);
	free(hex);
	return 0;
}

static int decode_line(wb_schema_id id, const char *line, size_t n,
		       long lineno, wb_buf *raw)
{
	if (n % 2) {
		fprintf(stderr, "wb-avro-tool: line %ld: odd number of hex "
				"digits\n", lineno);
		return -1;
	}
	wb_buf_reset(raw);
	wb_buf_reserve(raw, n / 2);
	if (!wb_unhex(line, n, raw->data, n / 2)) {
		fprintf(stderr, "wb-avro-tool: line %ld: not hex\n", lineno);
		return -1;
	}
	raw->len = n / 2;
	char msg[512] = "";
	const uint8_t *body;
	size_t bodylen;
	json_t *j = NULL;
	wb_err rc = wb_avro_unframe(id, raw->data, raw->len, &body, &bodylen,
				    msg, sizeof(msg));
	if (!rc)
		rc = wb_avro_decode(id, body, bodylen, &j, msg, sizeof(msg));
	if (rc) {
		fprintf(stderr, "wb-avro-tool: line %ld: %s: %s\n", lineno,
			wb_strerror(rc), msg);
		return -1;
	}
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!s) {
		fprintf(stderr, "wb-avro-tool: line %ld: cannot print JSON\n",
			lineno);
		return -1;
	}
	printf("%s\n", s);
	free(s);
	return 0;
}

static int filter(wb_schema_id id, bool encode)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t got;
	long lineno = 0;
	int status = 0;
	wb_buf buf;
	wb_buf_init(&buf);
	while ((got = getline(&line, &cap, stdin)) >= 0) {
		lineno++;
		size_t n = chomp(line, (size_t)got);
		if (n == 0)
			continue;
		if (strlen(line) != n) {
			fprintf(stderr, "wb-avro-tool: line %ld: NUL byte\n",
				lineno);
			status = 1;
			break;
		}
		int rc = encode ? encode_line(id, line, n, lineno, &buf)
				: decode_line(id, line, n, lineno, &buf);
		if (rc) {
			status = 1;
			break;
		}
	}
	if (!status && ferror(stdin)) {
		perror("wb-avro-tool: stdin");
		status = 1;
	}
	free(line);
	wb_buf_finish(&buf);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		perror("wb-avro-tool: stdout");
		status = 1;
	}
	return status;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		usage();
		return 1;
	}
	const char *cmd = argv[1];
	wb_schema_id id;
	if (schema_by_name(argv[2], &id) != 0) {
		fprintf(stderr, "wb-avro-tool: unknown schema '%s'\n",
			argv[2]);
		usage();
		return 1;
	}
	if (strcmp(cmd, "pcf") == 0) {
		printf("%s\n", wb_schema_canonical(id));
	} else if (strcmp(cmd, "fingerprint") == 0) {
		printf("%016llx\n",
		       (unsigned long long)wb_schema_fingerprint(id));
	} else if (strcmp(cmd, "encode") == 0) {
		return filter(id, true);
	} else if (strcmp(cmd, "decode") == 0) {
		return filter(id, false);
	} else {
		fprintf(stderr, "wb-avro-tool: unknown command '%s'\n", cmd);
		usage();
		return 1;
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		perror("wb-avro-tool: stdout");
		return 1;
	}
	return 0;
}
