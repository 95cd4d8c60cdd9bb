/*
 * projector_auth.c — bearer tokens for the HTTP API: the tokens file
 * (SHA-256 hashes only, each bound to one merchant and its scopes), the
 * lookup of a presented token and the per-token rate limiter.
 *
 * A presented token is hashed and looked up by its hash: timing can only
 * tell an attacker about the hash of what they sent, never about a stored
 * token, and the final comparison is constant-time anyway.
 */
#include "projector_http.h"

#include <math.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

/* A tokens file larger than this is a mistake, not a tokens file. */
#define TOKENS_FILE_MAX (16u << 20)

bool wb_bucket_take(struct wb_bucket *b, double rate, double burst,
		    int64_t now_us, int64_t *retry_ms)
{
	if (rate <= 0)
		return true;
	if (burst < 1)
		burst = 1;
	if (b->last_us == 0) {
		b->level = burst;
	} else if (now_us > b->last_us) {
		b->level += (double)(now_us - b->last_us) * rate / 1e6;
		if (b->level > burst)
			b->level = burst;
	}
	if (now_us > b->last_us || b->last_us == 0)
		b->last_us = now_us;
	if (b->level >= 1) {
		b->level -= 1;
		return true;
	}
	if (retry_ms)
		*retry_ms = (int64_t)ceil((1 - b->level) * 1000.0 / rate);
	return false;
}

void wb_token_digest(const char *token, size_t len, uint8_t out[32])
{
	SHA256((const unsigned char *)token, len, out);
}

static int digest_cmp(const void *a, const void *b)
{
	return memcmp(((const struct wb_token *)a)->digest,
		      ((const struct wb_token *)b)->digest, 32);
}

static bool merchant_ok(const char *s, size_t n)
{
	if (n == 0 || n > WB_HTTP_VALUE_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c >= 0x7f)
			return false;
	}
	return true;
}

static bool parse_scopes(const char *s, size_t n, unsigned *out)
{
	*out = 0;
	size_t i = 0;
	while (i <= n) {
		size_t j = i;
		while (j < n && s[j] != ',')
			j++;
		size_t w = j - i;
		if (w == 4 && memcmp(s + i, "read", 4) == 0)
			*out |= WB_SCOPE_READ;
		else if (w == 3 && memcmp(s + i, "act", 3) == 0)
			*out |= WB_SCOPE_ACT;
		else
			return false;
		i = j + 1;
	}
	return *out != 0;
}

/* Splits the next whitespace-separated field off [*p, end). */
static bool next_field(const char **p, const char *end, const char **f,
		       size_t *n)
{
	const char *s = *p;
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	const char *e = s;
	while (e < end && *e != ' ' && *e != '\t')
		e++;
	*p = e;
	*f = s;
	*n = (size_t)(e - s);
	return e > s;
}

void wb_tokens_free(wb_tokens *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++) {
		free(t->v[i].merchant);
		if (t->locks)
			pthread_mutex_destroy(&t->v[i].lock);
	}
	free(t->v);
	free(t);
}

wb_err wb_tokens_parse(const char *text, size_t len, const char *name,
		       wb_tokens **out, char *msg, size_t msglen)
{
	*out = NULL;
	wb_tokens *t = wb_xcalloc(1, sizeof(*t));
	size_t cap = 0;
	/* an empty file may come as NULL: no arithmetic on it */
	const char *p = text, *end = len ? text + len : text;
	int lineno = 0;
	while (p < end) {
		lineno++;
		size_t left = (size_t)(end - p);
		const char *eol = memchr(p, '\n', left);
		size_t n = eol ? (size_t)(eol - p) : left;
		const char *q = p;
		p += n + 1;
		if (n > 0 && q[n - 1] == '\r')
			n--;
		const char *le = q + n;
		if (memchr(q, '\0', n)) {
			wb_tokens_free(t);
			return wb_fail(msg, msglen, WB_EPARSE,
				       "%s:%d: NUL byte", name, lineno);
		}
		const char *f[4];
		size_t fn[4];
		int nf = 0;
		while (nf < 4 && next_field(&q, le, &f[nf], &fn[nf]))
			nf++;
		if (nf == 0 || f[0][0] == '#')
			continue;
		if (nf >= 1 && fn[0] >= 4 && memcmp(f[0], "wbt_", 4) == 0) {
			wb_tokens_free(t);
			return wb_fail(msg, msglen, WB_EPARSE,
				       "%s:%d: this looks like a token itself; "
				       "the file holds only their SHA-256 "
				       "hashes (see `waybill token new`)",
				       name, lineno);
		}
		bool comment = nf == 4 && f[3][0] == '#';
		if (nf < 3 || (nf == 4 && !comment)) {
			wb_tokens_free(t);
			return wb_fail(msg, msglen, WB_EPARSE,
				       "%s:%d: expected '<sha256 hex> "
				       "<merchant> <scopes>'",
				       name, lineno);
		}
		struct wb_token tok = {.line = lineno};
		if (fn[0] != 64 || !wb_unhex(f[0], 64, tok.digest, 32)) {
			wb_tokens_free(t);
			return wb_fail(msg, msglen, WB_EPARSE,
				       "%s:%d: the first field must be 64 hex "
				       "digits (the token's SHA-256)",
				       name, lineno);
		}
		if (!merchant_ok(f[1], fn[1])) {
			wb_tokens_free(t);
			return wb_fail(msg, msglen, WB_EPARSE,
				       "%s:%d: bad merchant", name, lineno);
		}
		if (!parse_scopes(f[2], fn[2], &tok.scopes)) {
			wb_tokens_free(t);
			return wb_fail(msg, msglen, WB_EPARSE,
				       "%s:%d: scopes must be read and/or act, "
				       "comma-separated",
				       name, lineno);
		}
		if (t->n == cap) {
			cap = cap ? 2 * cap : 16;
			t->v = wb_xrealloc(t->v, cap * sizeof(*t->v));
		}
		tok.merchant = wb_xstrndup(f[1], fn[1]);
		t->v[t->n++] = tok;
	}
	if (t->n)
		qsort(t->v, t->n, sizeof(*t->v), digest_cmp);
	for (size_t i = 1; i < t->n; i++) {
		if (memcmp(t->v[i - 1].digest, t->v[i].digest, 32) == 0) {
			int a = t->v[i - 1].line, b = t->v[i].line;
			wb_tokens_free(t);
			return wb_fail(msg, msglen, WB_EPARSE,
				       "%s:%d: the same token as line %d",
				       name, a > b ? a : b, a > b ? b : a);
		}
	}
	/* Locks only now that the entries stay where they are. */
	for (size_t i = 0; i < t->n; i++)
		pthread_mutex_init(&t->v[i].lock, NULL);
	t->locks = true;
	*out = t;
	return WB_OK;
}

wb_err wb_tokens_load(const char *path, wb_tokens **out, char *msg,
		      size_t msglen)
{
	char *text = NULL;
	size_t len = 0;
	wb_err rc = wb_read_file(path, TOKENS_FILE_MAX, &text, &len, msg,
				 msglen);
	if (rc)
		return rc;
	rc = wb_tokens_parse(text, len, path, out, msg, msglen);
	OPENSSL_cleanse(text, len);
	free(text);
	return rc;
}

struct wb_token *wb_tokens_find(const wb_tokens *t, const char *token,
				size_t len)
{
	if (!t || t->n == 0)
		return NULL;
	uint8_t d[32];
	wb_token_digest(token, len, d);
	size_t lo = 0, hi = t->n;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (memcmp(t->v[mid].digest, d, 32) <= 0)
			lo = mid;
		else
			hi = mid;
	}
	return CRYPTO_memcmp(t->v[lo].digest, d, 32) == 0 ? &t->v[lo] : NULL;
}

void wb_tokens_carry_buckets(wb_tokens *newt, const wb_tokens *old)
{
	if (!newt || !old)
		return;
	size_t j = 0;
	for (size_t i = 0; i < newt->n; i++) {
		while (j < old->n &&
		       memcmp(old->v[j].digest, newt->v[i].digest, 32) < 0)
			j++;
		if (j < old->n &&
		    memcmp(old->v[j].digest, newt->v[i].digest, 32) == 0) {
			struct wb_token *o = (struct wb_token *)&old->v[j];
			pthread_mutex_lock(&o->lock);
			newt->v[i].bucket = o->bucket;
			pthread_mutex_unlock(&o->lock);
		}
	}
}

/* RFC 6750 b64token / RFC 7235 token68. */
static bool token68_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	       c == '~' || c == '+' || c == '/';
}

bool wb_http_bearer(const char *authz, const char **token, size_t *len)
{
	if (!authz || strncasecmp(authz, "Bearer", 6) != 0 ||
	    (authz[6] != ' ' && authz[6] != '\t'))
		return false;
	const char *s = authz + 7;
	while (*s == ' ' || *s == '\t')
		s++;
	const char *e = s;
	while (token68_char((unsigned char)*e))
		e++;
	const char *body_end = e;
	while (*e == '=')
		e++;
	const char *tail = e;
	while (*tail == ' ' || *tail == '\t')
		tail++;
	if (body_end == s || *tail != '\0' || e - s > 1024)
		return false;
	*token = s;
	*len = (size_t)(e - s);
	return true;
}
