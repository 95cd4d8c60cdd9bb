/*
 * projector_json.c — compact JSON output of jansson values, several times
 * faster than json_dumps (which formats every integer with snprintf and
 * writes through a callback per piece): the store writes each changed view
 * and every timeline record with it, so it is on the apply path.
 *
 * Output is what json_dumps(JSON_COMPACT) writes for the same value, keys
 * in insertion order (jansson keeps it), except that it never escapes '/'
 * and writes non-ASCII UTF-8 as is (as jansson does by default).
 */
#include "projector_internal.h"

#include <stdio.h>
#include <string.h>

void wb_json_put_int(wb_buf *b, int64_t v)
{
	/* two digits at a time: epoch milliseconds have 13 */
	static const char pairs[201] =
		"00010203040506070809101112131415161718192021222324"
		"25262728293031323334353637383940414243444546474849"
		"50515253545556575859606162636465666768697071727374"
		"75767778798081828384858687888990919293949596979899";
	char tmp[24];
	char *end = tmp + sizeof(tmp), *p = end;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	while (u >= 100) {
		unsigned d = (unsigned)(u % 100) * 2;
		u /= 100;
		*--p = pairs[d + 1];
		*--p = pairs[d];
	}
	if (u >= 10) {
		*--p = pairs[u * 2 + 1];
		*--p = pairs[u * 2];
	} else {
		*--p = (char)('0' + u);
	}
	if (v < 0)
		*--p = '-';
	size_t n = (size_t)(end - p);
	if (b->len + n > b->cap)
		wb_buf_reserve(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

/* Bytes a JSON string must escape: controls, '"' and '\\'. */
static const uint8_t needs_escape[256] = {
	[0x00] = 1, [0x01] = 1, [0x02] = 1, [0x03] = 1, [0x04] = 1, [0x05] = 1,
	[0x06] = 1, [0x07] = 1, [0x08] = 1, [0x09] = 1, [0x0a] = 1, [0x0b] = 1,
	[0x0c] = 1, [0x0d] = 1, [0x0e] = 1, [0x0f] = 1, [0x10] = 1, [0x11] = 1,
	[0x12] = 1, [0x13] = 1, [0x14] = 1, [0x15] = 1, [0x16] = 1, [0x17] = 1,
	[0x18] = 1, [0x19] = 1, [0x1a] = 1, [0x1b] = 1, [0x1c] = 1, [0x1d] = 1,
	[0x1e] = 1, [0x1f] = 1, ['"'] = 1, ['\\'] = 1};

void wb_json_put_str(wb_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	/* the common case: nothing to escape, one copy */
	if (b->len + n + 2 > b->cap)
		wb_buf_reserve(b, n + 2);
	uint8_t *d = b->data + b->len;
	const uint8_t *u = (const uint8_t *)s;
	size_t i = 0;
	*d++ = '"';
	for (; i < n && !needs_escape[u[i]]; i++)
		d[i] = u[i];
	if (i == n) {
		d[n] = '"';
		b->len += n + 2;
		return;
	}
	b->len += 1 + i;
	size_t run = i;
	for (; i < n; i++) {
		unsigned char c = u[i];
		if (!needs_escape[c])
			continue;
		wb_buf_append(b, s + run, i - run);
		run = i + 1;
		char esc[6] = {'\\', 0};
		size_t el = 2;
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			el = 6;
		}
		wb_buf_append(b, esc, el);
	}
	wb_buf_append(b, s + run, n - run);
	wb_buf_putc(b, '"');
}

void wb_json_write(wb_buf *b, json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		wb_buf_putc(b, '{');
		const char *k;
		json_t *v;
		bool first = true;
		json_object_foreach(j, k, v) {
			if (!first)
				wb_buf_putc(b, ',');
			first = false;
			wb_json_put_str(b, k, strlen(k));
			wb_buf_putc(b, ':');
			wb_json_write(b, v);
		}
		wb_buf_putc(b, '}');
		break;
	}
	case JSON_ARRAY: {
		wb_buf_putc(b, '[');
		size_t i;
		json_t *v;
		json_array_foreach(j, i, v) {
			if (i)
				wb_buf_putc(b, ',');
			wb_json_write(b, v);
		}
		wb_buf_putc(b, ']');
		break;
	}
	case JSON_STRING:
		wb_json_put_str(b, json_string_value(j), json_string_length(j));
		break;
	case JSON_INTEGER:
		wb_json_put_int(b, json_integer_value(j));
		break;
	case JSON_REAL: {
		char tmp[40];
		int n = snprintf(tmp, sizeof(tmp), "%.17g", json_real_value(j));
		wb_buf_append(b, tmp, (size_t)n);
		if (!strpbrk(tmp, ".eEni"))
			wb_buf_append(b, ".0", 2);
		break;
	}
	case JSON_TRUE:
		wb_buf_append(b, "true", 4);
		break;
	case JSON_FALSE:
		wb_buf_append(b, "false", 5);
		break;
	default:
		wb_buf_append(b, "null", 4);
	}
}
