/*
 * projector_prom.c — the Prometheus text exposition format, version 0.0.4:
 * one HELP and one TYPE line per family, its samples right after, label
 * values escaped, histograms as cumulative buckets ending in +Inf plus
 * _sum and _count. Every line ends in '\n'.
 */
#include "projector_http.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const int64_t wb_histo_bounds_us[WB_HISTO_BUCKETS] = {
	100,    250,    500,     1000,    2500,    5000,    10000,   25000,
	50000,  100000, 250000,  500000,  1000000, 2500000, 5000000, 10000000,
};

static void puts_b(wb_buf *b, const char *s)
{
	wb_buf_append(b, s, strlen(s));
}

/* HELP text escapes only backslash and newline; label values also '"'. */
static void escape(wb_buf *b, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			puts_b(b, "\\\\");
		else if (*s == '\n')
			puts_b(b, "\\n");
		else if (quote && *s == '"')
			puts_b(b, "\\\"");
		else
			wb_buf_putc(b, (uint8_t)*s);
	}
}

void wb_prom_family(wb_buf *b, const char *name, const char *type,
		    const char *help)
{
	puts_b(b, "# HELP ");
	puts_b(b, name);
	wb_buf_putc(b, ' ');
	escape(b, help, false);
	puts_b(b, "\n# TYPE ");
	puts_b(b, name);
	wb_buf_putc(b, ' ');
	puts_b(b, type);
	wb_buf_putc(b, '\n');
}

static void labels_out(wb_buf *b, const char *const *labels, const char *le)
{
	bool any = (labels && labels[0]) || le;
	if (!any)
		return;
	wb_buf_putc(b, '{');
	bool first = true;
	for (size_t i = 0; labels && labels[i]; i += 2) {
		if (!first)
			wb_buf_putc(b, ',');
		first = false;
		puts_b(b, labels[i]);
		puts_b(b, "=\"");
		escape(b, labels[i + 1], true);
		wb_buf_putc(b, '"');
	}
	if (le) {
		if (!first)
			wb_buf_putc(b, ',');
		puts_b(b, "le=\"");
		puts_b(b, le);
		wb_buf_putc(b, '"');
	}
	wb_buf_putc(b, '}');
}

static void value_out(wb_buf *b, double v)
{
	char num[64];
	if (isnan(v))
		snprintf(num, sizeof(num), "NaN");
	else if (isinf(v))
		snprintf(num, sizeof(num), v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 9e15)
		snprintf(num, sizeof(num), "%.0f", v);
	else
		snprintf(num, sizeof(num), "%.9g", v);
	wb_buf_putc(b, ' ');
	puts_b(b, num);
	wb_buf_putc(b, '\n');
}

void wb_prom_sample(wb_buf *b, const char *name, const char *const *labels,
		    double value)
{
	puts_b(b, name);
	labels_out(b, labels, NULL);
	value_out(b, value);
}

void wb_histo_observe_us(struct wb_histo *h, int64_t us)
{
	if (us < 0)
		us = 0;
	size_t i = 0;
	while (i < WB_HISTO_BUCKETS && us > wb_histo_bounds_us[i])
		i++;
	__atomic_fetch_add(&h->buckets[i], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&h->sum_us, (uint64_t)us, __ATOMIC_RELAXED);
}

bool wb_histo_any(const struct wb_histo *h)
{
	for (size_t i = 0; i <= WB_HISTO_BUCKETS; i++)
		if (__atomic_load_n(&h->buckets[i], __ATOMIC_RELAXED))
			return true;
	return false;
}

void wb_prom_histogram(wb_buf *b, const char *name, const char *const *labels,
		       const struct wb_histo *h)
{
	size_t nl = strlen(name);
	char series[256];
	if (nl + 8 > sizeof(series))
		return;
	uint64_t cum = 0;
	for (size_t i = 0; i <= WB_HISTO_BUCKETS; i++) {
		cum += __atomic_load_n(&h->buckets[i], __ATOMIC_RELAXED);
		char le[32];
		if (i < WB_HISTO_BUCKETS)
			snprintf(le, sizeof(le), "%g",
				 (double)wb_histo_bounds_us[i] / 1e6);
		else
			snprintf(le, sizeof(le), "+Inf");
		snprintf(series, sizeof(series), "%s_bucket", name);
		puts_b(b, series);
		labels_out(b, labels, le);
		value_out(b, (double)cum);
	}
	snprintf(series, sizeof(series), "%s_sum", name);
	wb_prom_sample(b, series, labels,
		       (double)__atomic_load_n(&h->sum_us, __ATOMIC_RELAXED) /
			       1e6);
	snprintf(series, sizeof(series), "%s_count", name);
	wb_prom_sample(b, series, labels, (double)cum);
}
