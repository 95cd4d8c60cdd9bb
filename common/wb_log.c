/*
 * wb_log.c — one line per event, key=value, on stderr. A line is formatted
 * into a stack buffer and written with a single write(2), so lines from
 * several threads (librdkafka's callbacks among them) never interleave.
 */
#include "wb_common.h"

#include <string.h>
#include <unistd.h>

static const char *log_prog = "waybill";
static wb_log_level log_min = WB_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void wb_log_init(const char *prog, wb_log_level min)
{
	log_prog = prog;
	log_min = min;
}

bool wb_log_level_parse(const char *s, wb_log_level *out)
{
	for (int i = 0; i < 4; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (wb_log_level)i;
			return true;
		}
	}
	return false;
}

void wb_log(wb_log_level lvl, const char *event, const char *fmt, ...)
{
	if (lvl < log_min)
		return;
	char line[2048], ts[32];
	wb_format_time_ms(wb_now_ms(), ts);
	int n = snprintf(line, sizeof(line), "ts=%s level=%s prog=%s event=%s",
			 ts, level_names[lvl], log_prog, event);
	if (fmt && *fmt && n < (int)sizeof(line) - 2) {
		line[n++] = ' ';
		va_list ap;
		va_start(ap, fmt);
		int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
		va_end(ap);
		n = m < 0 ? n : n + m;
	}
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}

const char *wb_log_q(const char *s)
{
	static __thread char bufs[4][224];
	static __thread unsigned next;
	char *out = bufs[next++ & 3];
	if (!s)
		return "\"\"";
	bool plain = *s != '\0';
	for (const char *p = s; *p && plain; p++)
		if (*p == ' ' || *p == '"' || *p == '=' || *p == '\\' ||
		    (unsigned char)*p < 0x20)
			plain = false;
	size_t o = 0;
	if (plain && strlen(s) < 200)
		return s;
	out[o++] = '"';
	for (const char *p = s; *p && o < 200; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20) {
			out[o++] = '?';
		} else {
			out[o++] = (char)c;
		}
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}
