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
	char tmp[24];
	int n = 0;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	wb_buf_reserve(b, (size_t)n + 1);
	if (v < 0)
		b->data[b->len++] = '-';
	while (n)
		b->data[b->len++] = (uint8_t)tmp[--n];
}

void wb_json_put_str(wb_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	wb_buf_reserve(b, n + 2);
	b->data[b->len++] = '"';
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
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
