/*
 * wb_avro_codec.c — canonical JSON <-> Avro binary, driven by the compiled
 * schema graph of wb_avro.c.
 *
 * Errors carry a JSON path ("$.payload.lines[2].quantity") so whoever wrote
 * the bad input can find it. The decoder checks every declared length and
 * count against the bytes actually left before it allocates anything, and
 * tracks whether the input used the one canonical encoding (minimal varints,
 * one block per array/map) so the ledger can hash bytes that any correct
 * encoder would reproduce.
 */
#include "wb_avro_internal.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

#define MAX_DEPTH 64

/* Where the codec is in the value, kept as a stack of frames and turned
 * into text ("$.payload.lines[2]") only when an error is reported: the
 * happy path must not pay for formatting. */
struct frame {
	const char *field; /* NULL for an array index */
	size_t index;
};

struct path {
	const char *root;
	struct frame f[MAX_DEPTH + 2];
	size_t depth;
};

static size_t path_push_field(struct path *p, const char *name)
{
	size_t old = p->depth;
	if (p->depth < MAX_DEPTH + 2)
		p->f[p->depth++] = (struct frame){name, 0};
	return old;
}

static size_t path_push_index(struct path *p, size_t i)
{
	size_t old = p->depth;
	if (p->depth < MAX_DEPTH + 2)
		p->f[p->depth++] = (struct frame){NULL, i};
	return old;
}

static void path_pop(struct path *p, size_t old)
{
	p->depth = old;
}

static void path_render(const struct path *p, char *out, size_t outlen)
{
	size_t o = (size_t)snprintf(out, outlen, "%s", p->root);
	for (size_t i = 0; i < p->depth && o < outlen; i++) {
		int n = p->f[i].field
				? snprintf(out + o, outlen - o, ".%s", p->f[i].field)
				: snprintf(out + o, outlen - o, "[%zu]",
					   p->f[i].index);
		if (n < 0)
			break;
		o += (size_t)n;
	}
}

struct ctx {
	struct path path;
	char *msg;
	size_t msglen;
};

__attribute__((format(printf, 3, 4))) static wb_err fail(struct ctx *c,
							 wb_err code,
							 const char *fmt, ...)
{
	char detail[384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	char where[256];
	path_render(&c->path, where, sizeof(where));
	return wb_fail(c->msg, c->msglen, code, "%s: %s", where, detail);
}

bool wb_utf8_valid(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t len;
		uint32_t cp;
		if ((c & 0xe0) == 0xc0) {
			len = 2;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (i + len > n)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
		    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

/* ---- encode ----------------------------------------------------------- */

static const char *json_kind(json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

static bool kind_accepts(const struct wb_avro_node *n, json_t *j)
{
	switch (n->kind) {
	case WB_K_NULL: return json_is_null(j);
	case WB_K_BOOLEAN: return json_is_boolean(j);
	case WB_K_INT:
	case WB_K_LONG: return json_is_integer(j);
	case WB_K_FLOAT:
	case WB_K_DOUBLE: return json_is_number(j);
	case WB_K_STRING:
	case WB_K_BYTES:
	case WB_K_ENUM:
	case WB_K_FIXED: return json_is_string(j);
	case WB_K_ARRAY: return json_is_array(j);
	case WB_K_RECORD:
	case WB_K_MAP: return json_is_object(j);
	default: return false;
	}
}

static wb_err enc(struct ctx *c, const struct wb_avro_node *n, json_t *j,
		  const char *hint, wb_buf *out, int depth);

static wb_err enc_union(struct ctx *c, const struct wb_avro_node *n,
			json_t *j, const char *hint, wb_buf *out, int depth)
{
	int pick = -1;
	if (json_is_null(j)) {
		pick = n->null_branch;
	} else if (hint) {
		for (size_t i = 0; i < n->n; i++)
			if (n->sub[i]->name && strcmp(n->sub[i]->name, hint) == 0)
				pick = (int)i;
		if (pick < 0)
			return fail(c, WB_ESCHEMA, "unknown type '%s'", hint);
	} else {
		for (size_t i = 0; i < n->n && pick < 0; i++)
			if (n->sub[i]->kind != WB_K_NULL &&
			    kind_accepts(n->sub[i], j))
				pick = (int)i;
	}
	if (pick < 0)
		return fail(c, WB_ESCHEMA, "%s is not allowed here",
			    json_kind(j));
	wb_avro_put_long(out, pick);
	return enc(c, n->sub[pick], j, NULL, out, depth + 1);
}

static wb_err enc_record(struct ctx *c, const struct wb_avro_node *n,
			 json_t *j, wb_buf *out, int depth)
{
	if (!json_is_object(j))
		return fail(c, WB_ESCHEMA, "expected an object (%s), got %s",
			    n->name, json_kind(j));
	const char *key;
	json_t *v;
	json_object_foreach(j, key, v) {
		size_t i;
		for (i = 0; i < n->n; i++)
			if (strcmp(n->names[i], key) == 0)
				break;
		if (i == n->n)
			return fail(c, WB_ESCHEMA, "unknown field '%s' in %s",
				    key, n->name);
	}
	/* A record with a string "type" and a union "payload" (OrderEvent)
	 * picks the payload branch by that type. */
	const char *type_hint = json_string_value(json_object_get(j, "type"));
	for (size_t i = 0; i < n->n; i++) {
		json_t *fv = json_object_get(j, n->names[i]);
		size_t old = path_push_field(&c->path, n->names[i]);
		if (!fv) {
			fv = n->defaults[i];
			if (!fv && n->sub[i]->kind == WB_K_UNION &&
			    n->sub[i]->null_branch >= 0)
				fv = json_null();
			if (!fv) {
				path_pop(&c->path, old);
				return fail(c, WB_ESCHEMA,
					    "missing field '%s' of %s",
					    n->names[i], n->name);
			}
		}
		const char *hint = strcmp(n->names[i], "payload") == 0
					   ? type_hint
					   : NULL;
		wb_err rc = enc(c, n->sub[i], fv, hint, out, depth + 1);
		if (rc)
			return rc;
		path_pop(&c->path, old);
	}
	return WB_OK;
}

static wb_err enc_hex(struct ctx *c, json_t *j, size_t fixed, wb_buf *out)
{
	if (!json_is_string(j))
		return fail(c, WB_ESCHEMA, "expected a hex string, got %s",
			    json_kind(j));
	const char *s = json_string_value(j);
	size_t len = json_string_length(j);
	if (len % 2 || (fixed && len != 2 * fixed))
		return fail(c, WB_ESCHEMA, "expected %s hex digits",
			    fixed ? "2*size" : "an even number of");
	if (!fixed)
		wb_avro_put_long(out, (int64_t)(len / 2));
	wb_buf_reserve(out, len / 2);
	if (!wb_unhex(s, len, out->data + out->len, len / 2))
		return fail(c, WB_ESCHEMA, "not a hex string");
	out->len += len / 2;
	return WB_OK;
}

static wb_err enc(struct ctx *c, const struct wb_avro_node *n, json_t *j,
		  const char *hint, wb_buf *out, int depth)
{
	if (depth > MAX_DEPTH)
		return fail(c, WB_ESCHEMA, "nested too deeply");
	switch (n->kind) {
	case WB_K_NULL:
		if (!json_is_null(j))
			return fail(c, WB_ESCHEMA, "expected null, got %s",
				    json_kind(j));
		return WB_OK;
	case WB_K_BOOLEAN:
		if (!json_is_boolean(j))
			return fail(c, WB_ESCHEMA,
				    "expected a boolean, got %s", json_kind(j));
		wb_buf_putc(out, json_is_true(j) ? 1 : 0);
		return WB_OK;
	case WB_K_INT:
	case WB_K_LONG: {
		if (!json_is_integer(j))
			return fail(c, WB_ESCHEMA,
				    "expected an integer, got %s", json_kind(j));
		json_int_t v = json_integer_value(j);
		if (n->kind == WB_K_INT && (v < INT32_MIN || v > INT32_MAX))
			return fail(c, WB_ESCHEMA, "%lld out of int range",
				    (long long)v);
		wb_avro_put_long(out, v);
		return WB_OK;
	}
	case WB_K_FLOAT: {
		if (!json_is_number(j))
			return fail(c, WB_ESCHEMA, "expected a number, got %s",
				    json_kind(j));
		float f = (float)json_number_value(j);
		wb_buf_append(out, &f, 4); /* little-endian hosts only */
		return WB_OK;
	}
	case WB_K_DOUBLE: {
		if (!json_is_number(j))
			return fail(c, WB_ESCHEMA, "expected a number, got %s",
				    json_kind(j));
		double d = json_number_value(j);
		wb_buf_append(out, &d, 8);
		return WB_OK;
	}
	case WB_K_STRING:
		if (!json_is_string(j))
			return fail(c, WB_ESCHEMA, "expected a string, got %s",
				    json_kind(j));
		wb_avro_put_bytes(out, json_string_value(j),
				  json_string_length(j));
		return WB_OK;
	case WB_K_BYTES:
		return enc_hex(c, j, 0, out);
	case WB_K_FIXED:
		return enc_hex(c, j, n->size, out);
	case WB_K_ENUM: {
		const char *s = json_string_value(j);
		if (!s)
			return fail(c, WB_ESCHEMA,
				    "expected a %s symbol, got %s", n->name,
				    json_kind(j));
		for (size_t i = 0; i < n->n; i++) {
			if (strcmp(n->names[i], s) == 0) {
				wb_avro_put_long(out, (int64_t)i);
				return WB_OK;
			}
		}
		char list[256] = "";
		for (size_t i = 0; i < n->n; i++) {
			size_t l = strlen(list);
			snprintf(list + l, sizeof(list) - l, "%s%s",
				 i ? ", " : "", n->names[i]);
		}
		return fail(c, WB_ESCHEMA, "'%.64s' is not a %s (one of: %s)",
			    s, n->name, list);
	}
	case WB_K_ARRAY: {
		if (!json_is_array(j))
			return fail(c, WB_ESCHEMA,
				    "expected an array, got %s", json_kind(j));
		size_t cnt = json_array_size(j);
		if (cnt)
			wb_avro_put_long(out, (int64_t)cnt);
		for (size_t i = 0; i < cnt; i++) {
			size_t old = path_push_index(&c->path, i);
			wb_err rc = enc(c, n->items, json_array_get(j, i),
					NULL, out, depth + 1);
			if (rc)
				return rc;
			path_pop(&c->path, old);
		}
		wb_avro_put_long(out, 0);
		return WB_OK;
	}
	case WB_K_MAP: {
		if (!json_is_object(j))
			return fail(c, WB_ESCHEMA,
				    "expected an object, got %s", json_kind(j));
		size_t cnt = json_object_size(j);
		if (cnt)
			wb_avro_put_long(out, (int64_t)cnt);
		const char *key;
		json_t *v;
		json_object_foreach(j, key, v) {
			wb_avro_put_bytes(out, key, strlen(key));
			size_t old = path_push_field(&c->path, key);
			wb_err rc = enc(c, n->items, v, NULL, out, depth + 1);
			if (rc)
				return rc;
			path_pop(&c->path, old);
		}
		wb_avro_put_long(out, 0);
		return WB_OK;
	}
	case WB_K_UNION:
		return enc_union(c, n, j, hint, out, depth);
	case WB_K_RECORD:
		return enc_record(c, n, j, out, depth);
	}
	return fail(c, WB_ESCHEMA, "unsupported type");
}

wb_err wb_avro_encode(wb_schema_id id, json_t *value, wb_buf *out,
		      char *msg, size_t msglen)
{
	struct ctx c = {.path = {.root = "$"}, .msg = msg, .msglen = msglen};
	size_t start = out->len;
	wb_err rc = enc(&c, wb_avro_root(id), value, NULL, out, 0);
	if (rc)
		out->len = start;
	return rc;
}

/* ---- decode ----------------------------------------------------------- */

static wb_err dec(struct ctx *c, const struct wb_avro_node *n,
		  struct wb_avro_reader *r, json_t **out, int depth);

static wb_err truncated(struct ctx *c)
{
	return fail(c, WB_EPARSE, "truncated or malformed Avro data");
}

/* Reads one block header of an array or map; *count = 0 ends it. */
static wb_err block_count(struct ctx *c, const struct wb_avro_node *items,
			  struct wb_avro_reader *r, size_t blocks,
			  size_t *count)
{
	int64_t cnt;
	if (!wb_avro_get_long(r, &cnt))
		return truncated(c);
	if (cnt < 0) {
		int64_t bytes;
		if (cnt == INT64_MIN || !wb_avro_get_long(r, &bytes) ||
		    bytes < 0)
			return truncated(c);
		cnt = -cnt;
		r->canonical = false;
	}
	if (cnt > 0 && blocks > 0)
		r->canonical = false;
	size_t left = (size_t)(r->end - r->p);
	size_t cap = items->min_size ? left / items->min_size : (1u << 20);
	if ((uint64_t)cnt > cap)
		return fail(c, WB_EPARSE,
			    "block of %" PRId64 " items cannot fit in %zu bytes",
			    cnt, left);
	*count = (size_t)cnt;
	return WB_OK;
}

static wb_err dec_string(struct ctx *c, struct wb_avro_reader *r,
			 json_t **out, bool is_bytes)
{
	const uint8_t *p;
	size_t len;
	if (!wb_avro_get_bytes(r, &p, &len))
		return truncated(c);
	if (!is_bytes && !wb_utf8_valid(p, len))
		return fail(c, WB_EPARSE, "string is not valid UTF-8");
	if (!is_bytes && memchr(p, '\0', len))
		return fail(c, WB_EPARSE, "string holds a NUL byte");
	if (!out)
		return WB_OK;
	if (!is_bytes) {
		*out = json_stringn((const char *)p, len);
	} else {
		char *hex = wb_xmalloc(2 * len + 1);
		wb_hex(p, len, hex);
		*out = json_stringn(hex, 2 * len);
		free(hex);
	}
	return *out ? WB_OK : fail(c, WB_ENOMEM, "cannot build JSON");
}

static wb_err dec_record(struct ctx *c, const struct wb_avro_node *n,
			 struct wb_avro_reader *r, json_t **out, int depth)
{
	json_t *obj = out ? json_object() : NULL;
	for (size_t i = 0; i < n->n; i++) {
		size_t old = path_push_field(&c->path, n->names[i]);
		json_t *v = NULL;
		wb_err rc = dec(c, n->sub[i], r, obj ? &v : NULL, depth + 1);
		if (rc) {
			json_decref(obj);
			return rc;
		}
		if (obj)
			json_object_set_new(obj, n->names[i], v);
		path_pop(&c->path, old);
	}
	if (out)
		*out = obj;
	return WB_OK;
}

static wb_err dec_array(struct ctx *c, const struct wb_avro_node *n,
			struct wb_avro_reader *r, json_t **out, int depth)
{
	bool map = n->kind == WB_K_MAP;
	json_t *coll = out ? (map ? json_object() : json_array()) : NULL;
	size_t idx = 0;
	for (size_t blocks = 0;; blocks++) {
		size_t cnt = 0;
		wb_err rc = block_count(c, n->items, r, blocks, &cnt);
		if (rc)
			goto fail;
		if (cnt == 0)
			break;
		for (size_t i = 0; i < cnt; i++, idx++) {
			const uint8_t *kp = NULL;
			size_t klen = 0;
			if (map && (!wb_avro_get_bytes(r, &kp, &klen) ||
				    !wb_utf8_valid(kp, klen))) {
				rc = truncated(c);
				goto fail;
			}
			size_t old = path_push_index(&c->path, idx);
			json_t *v = NULL;
			rc = dec(c, n->items, r, coll ? &v : NULL, depth + 1);
			if (rc)
				goto fail;
			path_pop(&c->path, old);
			if (!coll)
				continue;
			if (map) {
				char *k = wb_xstrndup((const char *)kp, klen);
				json_object_set_new(coll, k, v);
				free(k);
			} else {
				json_array_append_new(coll, v);
			}
		}
		continue;
fail:
		json_decref(coll);
		return rc;
	}
	if (out)
		*out = coll;
	return WB_OK;
}

static wb_err dec(struct ctx *c, const struct wb_avro_node *n,
		  struct wb_avro_reader *r, json_t **out, int depth)
{
	if (depth > MAX_DEPTH)
		return fail(c, WB_EPARSE, "nested too deeply");
	int64_t v;
	switch (n->kind) {
	case WB_K_NULL:
		if (out)
			*out = json_null();
		return WB_OK;
	case WB_K_BOOLEAN:
		if (r->p >= r->end || *r->p > 1)
			return truncated(c);
		if (out)
			*out = json_boolean(*r->p);
		r->p++;
		return WB_OK;
	case WB_K_INT:
	case WB_K_LONG:
		if (!wb_avro_get_long(r, &v))
			return truncated(c);
		if (n->kind == WB_K_INT && (v < INT32_MIN || v > INT32_MAX))
			return fail(c, WB_EPARSE, "int out of range");
		if (out)
			*out = json_integer(v);
		return WB_OK;
	case WB_K_FLOAT:
	case WB_K_DOUBLE: {
		size_t w = n->kind == WB_K_FLOAT ? 4 : 8;
		if ((size_t)(r->end - r->p) < w)
			return truncated(c);
		double d;
		if (w == 4) {
			float f;
			memcpy(&f, r->p, 4);
			d = f;
		} else {
			memcpy(&d, r->p, 8);
		}
		r->p += w;
		if (out) {
			/* JSON has no NaN or infinity */
			if (!isfinite(d))
				return fail(c, WB_EPARSE, "non-finite number");
			*out = json_real(d);
		}
		return WB_OK;
	}
	case WB_K_STRING:
	case WB_K_BYTES:
		return dec_string(c, r, out, n->kind == WB_K_BYTES);
	case WB_K_FIXED:
		if ((size_t)(r->end - r->p) < n->size)
			return truncated(c);
		if (out) {
			char *hex = wb_xmalloc(2 * n->size + 1);
			wb_hex(r->p, n->size, hex);
			*out = json_string(hex);
			free(hex);
		}
		r->p += n->size;
		return WB_OK;
	case WB_K_ENUM:
		if (!wb_avro_get_long(r, &v))
			return truncated(c);
		if (v < 0 || (uint64_t)v >= n->n)
			return fail(c, WB_EPARSE, "enum index %" PRId64
				    " out of range for %s", v, n->name);
		if (out)
			*out = json_string(n->names[v]);
		return WB_OK;
	case WB_K_UNION:
		if (!wb_avro_get_long(r, &v))
			return truncated(c);
		if (v < 0 || (uint64_t)v >= n->n)
			return fail(c, WB_EPARSE,
				    "union branch %" PRId64 " out of range", v);
		return dec(c, n->sub[v], r, out, depth + 1);
	case WB_K_RECORD:
		return dec_record(c, n, r, out, depth);
	case WB_K_ARRAY:
	case WB_K_MAP:
		return dec_array(c, n, r, out, depth);
	}
	return fail(c, WB_EPARSE, "unsupported type");
}

static wb_err decode_all(wb_schema_id id, const uint8_t *body, size_t len,
			 json_t **out, bool *canonical, char *msg,
			 size_t msglen)
{
	struct ctx c = {.path = {.root = "$"}, .msg = msg, .msglen = msglen};
	if (len > WB_AVRO_MAX_BODY)
		return wb_fail(msg, msglen, WB_ETOOBIG,
			       "Avro body of %zu bytes over the %u cap", len,
			       WB_AVRO_MAX_BODY);
	struct wb_avro_reader r = {body, body + len, true};
	json_t *v = NULL;
	wb_err rc = dec(&c, wb_avro_root(id), &r, out ? &v : NULL, 0);
	if (rc == WB_OK && r.p != r.end) {
		json_decref(v);
		return wb_fail(msg, msglen, WB_EPARSE,
			       "%zu trailing bytes after %s",
			       (size_t)(r.end - r.p), wb_schema_name(id));
	}
	if (rc == WB_OK && out)
		*out = v;
	if (canonical)
		*canonical = r.canonical;
	return rc;
}

wb_err wb_avro_decode(wb_schema_id id, const uint8_t *body, size_t len,
		      json_t **out, char *msg, size_t msglen)
{
	return decode_all(id, body, len, out, NULL, msg, msglen);
}

wb_err wb_avro_validate(wb_schema_id id, const uint8_t *body, size_t len,
			bool *canonical, char *msg, size_t msglen)
{
	return decode_all(id, body, len, NULL, canonical, msg, msglen);
}

/* Validates one value of node n from r (used by wb_event.c). */
wb_err wb_avro_skip(const struct wb_avro_node *n, struct wb_avro_reader *r,
		    const char *where, char *msg, size_t msglen)
{
	struct ctx c = {.path = {.root = where}, .msg = msg, .msglen = msglen};
	return dec(&c, n, r, NULL, 0);
}
