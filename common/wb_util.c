/*
 * wb_util.c — errors, allocation, byte buffers, clocks, hex and number/time
 * parsing. Small, dependency-free helpers every module uses; kept here so
 * that none of them is written twice.
 */
#include "wb_common.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

static const char *const err_names[] = {
	[WB_OK] = "ok",
	[WB_EINVAL] = "invalid argument",
	[WB_EPARSE] = "malformed input",
	[WB_ESCHEMA] = "input does not match the schema",
	[WB_ETOOBIG] = "input too large",
	[WB_EIO] = "I/O error",
	[WB_ENOMEM] = "out of memory",
	[WB_EKAFKA] = "Kafka error",
	[WB_ESTORE] = "storage error",
	[WB_ENOTFOUND] = "not found",
	[WB_ECORRUPT] = "stored data is corrupt",
	[WB_ECONFIG] = "configuration error",
	[WB_ETIMEOUT] = "timed out",
	[WB_EHTTP] = "HTTP error",
	[WB_ECONFLICT] = "conflict",
};

const char *wb_strerror(wb_err code)
{
	if ((size_t)code < sizeof(err_names) / sizeof(err_names[0]) &&
	    err_names[code])
		return err_names[code];
	return "unknown error";
}

wb_err wb_fail(char *msg, size_t msglen, wb_err code, const char *fmt, ...)
{
	if (msg && msglen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, msglen, fmt, ap);
		va_end(ap);
	}
	return code;
}

static void oom(size_t n)
{
	fprintf(stderr, "level=error event=out_of_memory bytes=%zu\n", n);
	abort();
}

void *wb_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

void *wb_xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz ? sz : 1);
	if (!p)
		oom(n * sz);
	return p;
}

void *wb_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom(n);
	return q;
}

char *wb_xstrdup(const char *s)
{
	return wb_xstrndup(s, strlen(s));
}

char *wb_xstrndup(const char *s, size_t n)
{
	char *p = wb_xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void wb_buf_init(wb_buf *b)
{
	b->data = NULL;
	b->len = b->cap = 0;
}

void wb_buf_finish(wb_buf *b)
{
	free(b->data);
	wb_buf_init(b);
}

void wb_buf_reserve(wb_buf *b, size_t extra)
{
	if (b->len + extra <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + extra)
		cap *= 2;
	b->data = wb_xrealloc(b->data, cap);
	b->cap = cap;
}

void wb_buf_append(wb_buf *b, const void *p, size_t n)
{
	if (!n)
		return;
	wb_buf_reserve(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

void wb_buf_putc(wb_buf *b, uint8_t c)
{
	wb_buf_reserve(b, 1);
	b->data[b->len++] = c;
}

int64_t wb_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t wb_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void wb_hex(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool wb_unhex(const char *in, size_t inlen, uint8_t *out, size_t n)
{
	if (inlen != 2 * n)
		return false;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(in[2 * i]), lo = hexval(in[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

wb_err wb_read_file(const char *path, size_t max, char **out, size_t *outlen,
		    char *msg, size_t msglen)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	if (!f)
		return wb_fail(msg, msglen, WB_EIO, "%s: %s", path,
			       strerror(errno));
	wb_buf b;
	wb_buf_init(&b);
	wb_err rc = WB_OK;
	for (;;) {
		wb_buf_reserve(&b, 65536);
		size_t n = fread(b.data + b.len, 1, b.cap - b.len, f);
		b.len += n;
		if (b.len > max) {
			rc = wb_fail(msg, msglen, WB_ETOOBIG,
				     "%s: larger than %zu bytes", path, max);
			break;
		}
		if (n == 0) {
			if (ferror(f))
				rc = wb_fail(msg, msglen, WB_EIO, "%s: %s",
					     path, strerror(errno));
			break;
		}
	}
	if (f != stdin)
		fclose(f);
	if (rc != WB_OK) {
		wb_buf_finish(&b);
		return rc;
	}
	wb_buf_putc(&b, '\0');
	*out = (char *)b.data;
	if (outlen)
		*outlen = b.len - 1;
	return WB_OK;
}

bool wb_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	if (!s || !*s || isspace((unsigned char)*s))
		return false;
	errno = 0;
	char *end;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/* 2026-02-31 is not a date: it would silently become March 3rd. */
static int days_in_month(int y, int mo)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30,
				     31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return mo == 2 && leap ? 29 : days[mo - 1];
}

bool wb_parse_time_ms(const char *s, int64_t *out)
{
	if (!s)
		return false;
	if (wb_parse_i64(s, INT64_MIN / 2, INT64_MAX / 2, out))
		return true;
	int y, mo, d, h = 0, mi = 0, se = 0;
	if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
	    s[7] != '-' || !digits(s + 8, 2, &d))
		return false;
	const char *p = s + 10;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		if (!digits(p + 1, 2, &h) || p[3] != ':' ||
		    !digits(p + 4, 2, &mi))
			return false;
		p += 6;
		if (*p == ':') {
			if (!digits(p + 1, 2, &se))
				return false;
			p += 3;
		}
	}
	if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) ||
	    h > 23 || mi > 59 || se > 60)
		return false;
	int64_t ms = 0;
	if (*p == '.') {
		int scale = 100;
		p++;
		if (!isdigit((unsigned char)*p))
			return false;
		while (isdigit((unsigned char)*p)) {
			ms += (*p - '0') * scale;
			scale /= 10;
			p++;
		}
	}
	int64_t off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh, om;
		int sign = *p == '-' ? -1 : 1;
		if (!digits(p + 1, 2, &oh))
			return false;
		p += 3;
		if (*p == ':')
			p++;
		if (!digits(p, 2, &om))
			return false;
		p += 2;
		off = sign * (oh * 3600 + om * 60);
	}
	if (*p)
		return false;
	int64_t secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 +
		       h * 3600 + mi * 60 + se - off;
	*out = secs * 1000 + ms;
	return true;
}

void wb_format_time_ms(int64_t ms, char out[32])
{
	time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
	int rem = (int)(ms - (int64_t)secs * 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	/* the year is clamped so the output always fits in 32 bytes */
	int year = tm.tm_year + 1900;
	year = year < 0 ? 0 : year > 9999 ? 9999 : year;
	snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", year,
		 (tm.tm_mon + 1) % 100, tm.tm_mday % 100, tm.tm_hour % 100,
		 tm.tm_min % 100, tm.tm_sec % 100, (rem % 1000 + 1000) % 1000);
}

wb_err wb_parse_listen(const char *key, const char *s,
		       struct sockaddr_storage *out, char *msg, size_t msglen)
{
	char host[256];
	const char *colon = s ? strrchr(s, ':') : NULL;
	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return wb_fail(msg, msglen, WB_ECONFIG,
			       "%s: expected host:port, [ipv6]:port or :port, "
			       "got '%s'",
			       key, s ? s : "");
	const char *hs = s, *he = colon;
	if (*hs == '[' && he > hs && he[-1] == ']') {
		hs++;
		he--;
	}
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = '\0';
	int64_t port;
	if (!wb_parse_i64(colon + 1, 0, 65535, &port))
		return wb_fail(msg, msglen, WB_ECONFIG,
			       "%s: bad port in '%s' (0..65535)", key, s);
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	int rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai);
	if (rc != 0 || !ai)
		return wb_fail(msg, msglen, WB_ECONFIG, "%s: '%s': %s", key, s,
			       rc ? gai_strerror(rc) : "no address");
	memset(out, 0, sizeof(*out));
	memcpy(out, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	return WB_OK;
}
