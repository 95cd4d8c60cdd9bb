/*
 * fuzz_config.c — the text parsers of common/: the input is written to a
 * memfd and loaded as a --config file (wb_config_load_file), and, up to
 * its first NUL, parsed as a time (wb_parse_time_ms, which `waybill as-of
 * --at` and config values use).
 *
 * Invariants:
 *  - a config file that loads had every line applied: each line that is
 *    not blank or a comment is key=value and its key is now set;
 *  - a parsed time in years 0000..9999 survives wb_format_time_ms and
 *    parsing that again.
 */
#include <ctype.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "wb_common.h"

static int memfd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	memfd = memfd_create("fuzz_config", MFD_CLOEXEC);
	if (memfd < 0) {
		perror("memfd_create");
		abort();
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	return 0;
}

static void fuzz_time(const uint8_t *data, size_t size)
{
	char *s = wb_xmalloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	int64_t t;
	if (wb_parse_time_ms(s, &t) && t >= -62167219200000LL &&
	    t <= 253402300799999LL) {
		char out[32];
		int64_t back = 0;
		wb_format_time_ms(t, out);
		FUZZ_CHECK(wb_parse_time_ms(out, &back) && back == t,
			   "'%s' -> %lld -> '%s' -> %lld", s, (long long)t,
			   out, (long long)back);
	}
	free(s);
}

/* [p, e) without the blanks wb_config.c trims. */
static void trim(const char **p, const char **e)
{
	while (*p < *e && isspace((unsigned char)**p))
		(*p)++;
	while (*e > *p && isspace((unsigned char)(*e)[-1]))
		(*e)--;
}

static void check_applied(const wb_config *cfg, const uint8_t *data,
			  size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl : end;
		const char *s = p;
		p = e + 1;
		trim(&s, &e);
		if (s == e || *s == '#')
			continue;
		const char *eq = memchr(s, '=', (size_t)(e - s));
		FUZZ_CHECK(eq, "loaded, but a line has no '=': '%.*s'",
			   (int)(e - s), s);
		const char *ke = eq;
		trim(&s, &ke);
		char *key = wb_xstrndup(s, (size_t)(ke - s));
		FUZZ_CHECK(wb_config_is_set(cfg, key),
			   "loaded, but key '%s' was not set", key);
		free(key);
	}
}

static void fuzz_config_file(const uint8_t *data, size_t size)
{
	if (ftruncate(memfd, 0) != 0 ||
	    (size && pwrite(memfd, data, size, 0) != (ssize_t)size)) {
		perror("memfd");
		abort();
	}
	wb_config *cfg = wb_config_create(WB_CMD_ALL);
	char msg[512] = "";
	if (wb_config_load_file(cfg, path, msg, sizeof(msg)) == WB_OK) {
		check_applied(cfg, data, size);
		for (const struct wb_config_prop *p = wb_config_props; p->key;
		     p++) {
			(void)wb_config_get_int(cfg, p->key);
			(void)wb_config_get_bool(cfg, p->key);
		}
	} else {
		FUZZ_CHECK(msg[0], "failed without a message");
	}
	wb_config_destroy(cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_time(data, size);
	fuzz_config_file(data, size);
	return 0;
}
