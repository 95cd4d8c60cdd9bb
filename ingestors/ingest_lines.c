/*
 * ingest_lines.c — a line reader for the file-fed modes (`events`, later
 * `pos`). Input comes from files or pipes we do not control, so memory must
 * stay bounded however long a line is: the reader keeps at most max_line+2
 * bytes of one line, reports a longer line once with its number and then
 * discards the rest of it as it streams past. getline(3) would grow its
 * buffer to the whole line first. Large read(2) calls into one reused
 * buffer keep the per-line cost to a memchr.
 */
#include "wb_ingest.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Big enough that a read(2) moves many lines at a time. */
#define READ_CHUNK (256u << 10)

struct wb_line_reader {
	int fd;
	size_t max_line;
	char *buf;
	size_t cap;     /* allocated; one byte is always kept for a NUL */
	size_t start;   /* first byte of the current line */
	size_t end;     /* end of valid data */
	size_t scanned; /* bytes after start already known to hold no '\n' */
	long lineno;
	bool eof;
	bool skipping;  /* inside an over-long line already reported */
};

wb_line_reader *wb_line_reader_create(int fd, size_t max_line)
{
	wb_line_reader *r = wb_xcalloc(1, sizeof(*r));
	r->fd = fd;
	r->max_line = max_line;
	/* Never more than a line can need: a small cap keeps memory small. */
	r->cap = max_line + 2 < READ_CHUNK ? max_line + 2 : READ_CHUNK;
	r->buf = wb_xmalloc(r->cap);
	return r;
}

void wb_line_reader_destroy(wb_line_reader *r)
{
	if (!r)
		return;
	free(r->buf);
	free(r);
}

/* Reads more bytes after end, first moving the partial line to the front
 * and growing the buffer (up to max_line+2) if it is full. */
static wb_err fill(wb_line_reader *r, char *msg, size_t msglen)
{
	if (r->start > 0) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
	}
	if (r->end + 1 >= r->cap) {
		/* Only reached while the partial line is <= max_line, so the
		 * cap (<= max_line+1 here) still has room to grow. */
		size_t cap = r->cap * 2;
		if (cap > r->max_line + 2)
			cap = r->max_line + 2;
		r->buf = wb_xrealloc(r->buf, cap);
		r->cap = cap;
	}
	ssize_t n = read(r->fd, r->buf + r->end, r->cap - r->end - 1);
	if (n < 0)
		return wb_fail(msg, msglen, WB_EIO, "read: %s", strerror(errno));
	if (n == 0)
		r->eof = true;
	r->end += (size_t)n;
	return WB_OK;
}

/* Drops bytes up to and including the next '\n' (or end of input). */
static wb_err skip_rest(wb_line_reader *r, char *msg, size_t msglen)
{
	for (;;) {
		char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
		if (nl) {
			r->start = (size_t)(nl - r->buf) + 1;
			r->skipping = false;
			return WB_OK;
		}
		r->start = r->end = 0;
		if (r->eof) {
			r->skipping = false;
			return WB_OK;
		}
		wb_err rc = fill(r, msg, msglen);
		if (rc)
			return rc;
	}
}

static void emit(wb_line_reader *r, size_t stop, char **line, size_t *len)
{
	size_t n = stop - r->start;
	char *p = r->buf + r->start;
	if (n > 0 && p[n - 1] == '\r')
		n--;
	p[n] = '\0';
	*line = p;
	*len = n;
}

wb_err wb_line_reader_next(wb_line_reader *r, char **line, size_t *len,
			   long *lineno, char *msg, size_t msglen)
{
	wb_err rc;
	if (r->skipping && (rc = skip_rest(r, msg, msglen)))
		return rc;
	for (;;) {
		char *from = r->buf + r->start + r->scanned;
		char *nl = memchr(from, '\n', r->end - r->start - r->scanned);
		if (nl) {
			size_t stop = (size_t)(nl - r->buf);
			*lineno = ++r->lineno;
			bool too_long = stop - r->start > r->max_line;
			emit(r, stop, line, len);
			r->start = stop + 1;
			r->scanned = 0;
			if (too_long)
				return wb_fail(msg, msglen, WB_ETOOBIG,
					       "line longer than %zu bytes "
					       "(ingest.max.line.bytes)",
					       r->max_line);
			return WB_OK;
		}
		r->scanned = r->end - r->start;
		if (r->scanned > r->max_line) {
			/* Report now; the rest is skipped on the next call so
			 * the caller sees the error at once. */
			*lineno = ++r->lineno;
			r->skipping = true;
			r->start = r->end = r->scanned = 0;
			return wb_fail(msg, msglen, WB_ETOOBIG,
				       "line longer than %zu bytes "
				       "(ingest.max.line.bytes)",
				       r->max_line);
		}
		if (r->eof) {
			if (r->end == r->start)
				return WB_ENOTFOUND;
			/* Last line without a newline: end < cap, so the NUL
			 * fits. */
			*lineno = ++r->lineno;
			emit(r, r->end, line, len);
			r->start = r->end;
			r->scanned = 0;
			return WB_OK;
		}
		if ((rc = fill(r, msg, msglen)))
			return rc;
	}
}
