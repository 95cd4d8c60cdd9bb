/*
 * wb_avro.c — the Avro codec behind wb_schema.h.
 *
 * Schemas are compiled from their .avsc JSON into a small node graph once per
 * process; encoding and decoding walk that graph directly. We do not go
 * through libavro-c's generic value API on the hot path: generic Avro value
 * APIs are several times slower than schema-driven code (see
 * shared/notes/performance-anchors.md §6), and libavro-c 1.11.1 allocates
 * whatever length hostile input declares. libavro-c still parses every
 * schema at start-up (so a schema it rejects never ships) and the tests
 * cross-check our bytes against it and against an independent Avro
 * implementation.
 */
#include "wb_schema.h"
#include "wb_avro_internal.h"

#include <assert.h>
#include <avro.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

extern const char wb_schema_text_OrderEvent[];
extern const char wb_schema_text_OrderCommand[];
extern const char wb_schema_text_LedgerEntry[];
extern const char wb_schema_text_OrderStatus[];

#define MAX_DEPTH 64

struct schema {
	const char *name;
	const char *text;
	json_t *json;
	struct wb_avro_node *root;
	char *pcf;
	uint64_t fp;
	/* every node allocated for this schema, for freeing */
	struct wb_avro_node **nodes;
	size_t nnodes, capnodes;
	/* named types by full name */
	struct {
		char *fullname;
		struct wb_avro_node *node;
	} *named;
	size_t nnamed, capnamed;
};

static struct schema schemas[WB_SCHEMA_COUNT] = {
	[WB_SCHEMA_ORDER_EVENT] = {.name = "OrderEvent",
				   .text = wb_schema_text_OrderEvent},
	[WB_SCHEMA_ORDER_COMMAND] = {.name = "OrderCommand",
				     .text = wb_schema_text_OrderCommand},
	[WB_SCHEMA_LEDGER_ENTRY] = {.name = "LedgerEntry",
				    .text = wb_schema_text_LedgerEntry},
	[WB_SCHEMA_ORDER_STATUS] = {.name = "OrderStatus",
				    .text = wb_schema_text_OrderStatus},
};

static pthread_once_t schemas_once = PTHREAD_ONCE_INIT;

/* ---- CRC-64-AVRO ----------------------------------------------------- */

#define CRC64_EMPTY 0xc15d213aa4d7a795ULL
static uint64_t crc64_table[256];

static void crc64_init(void)
{
	for (int i = 0; i < 256; i++) {
		uint64_t fp = (uint64_t)i;
		for (int j = 0; j < 8; j++)
			fp = (fp >> 1) ^ (CRC64_EMPTY & -(fp & 1));
		crc64_table[i] = fp;
	}
}

uint64_t wb_crc64_avro(const void *data, size_t len)
{
	if (crc64_table[1] == 0)
		crc64_init();
	const uint8_t *p = data;
	uint64_t fp = CRC64_EMPTY;
	for (size_t i = 0; i < len; i++)
		fp = (fp >> 8) ^ crc64_table[(fp ^ p[i]) & 0xff];
	return fp;
}

/* ---- schema compilation --------------------------------------------- */

static const struct {
	const char *name;
	enum wb_avro_kind kind;
} primitives[] = {
	{"null", WB_K_NULL},	 {"boolean", WB_K_BOOLEAN},
	{"int", WB_K_INT},	 {"long", WB_K_LONG},
	{"float", WB_K_FLOAT},	 {"double", WB_K_DOUBLE},
	{"bytes", WB_K_BYTES},	 {"string", WB_K_STRING},
};

static int primitive_kind(const char *s)
{
	for (size_t i = 0; i < sizeof(primitives) / sizeof(primitives[0]); i++)
		if (strcmp(primitives[i].name, s) == 0)
			return (int)primitives[i].kind;
	return -1;
}

static struct wb_avro_node *node_new(struct schema *s, enum wb_avro_kind k)
{
	struct wb_avro_node *n = wb_xcalloc(1, sizeof(*n));
	n->kind = k;
	n->null_branch = -1;
	if (s->nnodes == s->capnodes) {
		s->capnodes = s->capnodes ? 2 * s->capnodes : 64;
		s->nodes = wb_xrealloc(s->nodes,
				       s->capnodes * sizeof(*s->nodes));
	}
	s->nodes[s->nnodes++] = n;
	return n;
}

static void full_name(const char *name, const char *ns, char *out,
		      size_t outlen)
{
	if (strchr(name, '.') || !ns || !*ns)
		snprintf(out, outlen, "%s", name);
	else
		snprintf(out, outlen, "%s.%s", ns, name);
}

/* The namespace of a named type's fullname (text before the last dot). */
static void name_space(const char *fullname, char *out, size_t outlen)
{
	const char *dot = strrchr(fullname, '.');
	snprintf(out, outlen, "%.*s", dot ? (int)(dot - fullname) : 0,
		 fullname);
}

static struct wb_avro_node *named_find(struct schema *s, const char *full)
{
	for (size_t i = 0; i < s->nnamed; i++)
		if (strcmp(s->named[i].fullname, full) == 0)
			return s->named[i].node;
	return NULL;
}

static void named_add(struct schema *s, const char *full,
		      struct wb_avro_node *n)
{
	if (s->nnamed == s->capnamed) {
		s->capnamed = s->capnamed ? 2 * s->capnamed : 32;
		s->named = wb_xrealloc(s->named,
				       s->capnamed * sizeof(*s->named));
	}
	s->named[s->nnamed].fullname = wb_xstrdup(full);
	s->named[s->nnamed].node = n;
	s->nnamed++;
}

static struct wb_avro_node *compile(struct schema *s, json_t *j,
				    const char *ns, char *msg, size_t msglen);

static struct wb_avro_node *compile_named(struct schema *s, json_t *j,
					  const char *type, const char *ns,
					  char *msg, size_t msglen)
{
	const char *name = json_string_value(json_object_get(j, "name"));
	const char *jns = json_string_value(json_object_get(j, "namespace"));
	if (!name) {
		wb_fail(msg, msglen, WB_ESCHEMA, "%s without a name", type);
		return NULL;
	}
	char full[512], myns[512];
	full_name(name, jns ? jns : ns, full, sizeof(full));
	name_space(full, myns, sizeof(myns));
	if (named_find(s, full)) {
		wb_fail(msg, msglen, WB_ESCHEMA, "type %s defined twice", full);
		return NULL;
	}
	struct wb_avro_node *n;
	if (strcmp(type, "record") == 0 || strcmp(type, "error") == 0) {
		n = node_new(s, WB_K_RECORD);
		named_add(s, full, n);
		json_t *fields = json_object_get(j, "fields");
		if (!json_is_array(fields)) {
			wb_fail(msg, msglen, WB_ESCHEMA, "%s: no fields", full);
			return NULL;
		}
		n->n = json_array_size(fields);
		n->names = wb_xcalloc(n->n, sizeof(char *));
		n->sub = wb_xcalloc(n->n, sizeof(*n->sub));
		n->defaults = wb_xcalloc(n->n, sizeof(json_t *));
		for (size_t i = 0; i < n->n; i++) {
			json_t *f = json_array_get(fields, i);
			const char *fname =
				json_string_value(json_object_get(f, "name"));
			if (!fname) {
				wb_fail(msg, msglen, WB_ESCHEMA,
					"%s: field %zu has no name", full, i);
				return NULL;
			}
			n->names[i] = wb_xstrdup(fname);
			n->defaults[i] = json_object_get(f, "default");
			n->sub[i] = compile(s, json_object_get(f, "type"),
					    myns, msg, msglen);
			if (!n->sub[i])
				return NULL;
		}
	} else if (strcmp(type, "enum") == 0) {
		n = node_new(s, WB_K_ENUM);
		named_add(s, full, n);
		json_t *syms = json_object_get(j, "symbols");
		n->n = json_array_size(syms);
		if (!n->n) {
			wb_fail(msg, msglen, WB_ESCHEMA, "%s: no symbols",
				full);
			return NULL;
		}
		n->names = wb_xcalloc(n->n, sizeof(char *));
		for (size_t i = 0; i < n->n; i++) {
			const char *sym =
				json_string_value(json_array_get(syms, i));
			n->names[i] = wb_xstrdup(sym ? sym : "");
		}
	} else {
		n = node_new(s, WB_K_FIXED);
		named_add(s, full, n);
		json_int_t size = json_integer_value(json_object_get(j, "size"));
		if (size <= 0 || size > (1 << 20)) {
			wb_fail(msg, msglen, WB_ESCHEMA, "%s: bad size", full);
			return NULL;
		}
		n->size = (size_t)size;
	}
	n->name = wb_xstrdup(strrchr(full, '.') ? strrchr(full, '.') + 1
						: full);
	n->fullname = wb_xstrdup(full);
	return n;
}

static struct wb_avro_node *compile(struct schema *s, json_t *j,
				    const char *ns, char *msg, size_t msglen)
{
	if (json_is_string(j)) {
		const char *t = json_string_value(j);
		int k = primitive_kind(t);
		if (k >= 0)
			return node_new(s, (enum wb_avro_kind)k);
		char full[512];
		full_name(t, ns, full, sizeof(full));
		struct wb_avro_node *n = named_find(s, full);
		if (!n)
			n = named_find(s, t);
		if (!n)
			wb_fail(msg, msglen, WB_ESCHEMA, "unknown type %s", t);
		return n;
	}
	if (json_is_array(j)) {
		struct wb_avro_node *n = node_new(s, WB_K_UNION);
		n->n = json_array_size(j);
		n->sub = wb_xcalloc(n->n, sizeof(*n->sub));
		for (size_t i = 0; i < n->n; i++) {
			n->sub[i] = compile(s, json_array_get(j, i), ns, msg,
					    msglen);
			if (!n->sub[i])
				return NULL;
			if (n->sub[i]->kind == WB_K_NULL)
				n->null_branch = (int)i;
		}
		return n;
	}
	if (!json_is_object(j)) {
		wb_fail(msg, msglen, WB_ESCHEMA, "type must be a string, "
						 "array or object");
		return NULL;
	}
	json_t *type = json_object_get(j, "type");
	if (!json_is_string(type))
		return compile(s, type, ns, msg, msglen);
	const char *t = json_string_value(type);
	if (strcmp(t, "record") == 0 || strcmp(t, "error") == 0 ||
	    strcmp(t, "enum") == 0 || strcmp(t, "fixed") == 0)
		return compile_named(s, j, t, ns, msg, msglen);
	if (strcmp(t, "array") == 0 || strcmp(t, "map") == 0) {
		struct wb_avro_node *n = node_new(
			s, t[0] == 'a' ? WB_K_ARRAY : WB_K_MAP);
		n->items = compile(s,
				   json_object_get(j, t[0] == 'a' ? "items"
								  : "values"),
				   ns, msg, msglen);
		return n->items ? n : NULL;
	}
	return compile(s, type, ns, msg, msglen);
}

static size_t min_size(struct wb_avro_node *n, int depth)
{
	if (depth > MAX_DEPTH)
		return 1;
	switch (n->kind) {
	case WB_K_NULL:
		return 0;
	case WB_K_FLOAT:
		return 4;
	case WB_K_DOUBLE:
		return 8;
	case WB_K_FIXED:
		return n->size;
	case WB_K_RECORD: {
		size_t sum = 0;
		for (size_t i = 0; i < n->n; i++)
			sum += min_size(n->sub[i], depth + 1);
		return sum;
	}
	default:
		return 1;
	}
}

/* ---- Parsing Canonical Form ----------------------------------------- */

struct pcf_ctx {
	wb_buf out;
	char **seen;
	size_t nseen;
	char *msg;
	size_t msglen;
	wb_err rc;
};

static void pcf_str(struct pcf_ctx *c, const char *s)
{
	json_t *js = json_string(s);
	char *q = js ? json_dumps(js, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
	if (q)
		wb_buf_append(&c->out, q, strlen(q));
	free(q);
	json_decref(js);
}

static void pcf_lit(struct pcf_ctx *c, const char *s)
{
	wb_buf_append(&c->out, s, strlen(s));
}

static bool pcf_seen(struct pcf_ctx *c, const char *full)
{
	for (size_t i = 0; i < c->nseen; i++)
		if (strcmp(c->seen[i], full) == 0)
			return true;
	c->seen = wb_xrealloc(c->seen, (c->nseen + 1) * sizeof(char *));
	c->seen[c->nseen++] = wb_xstrdup(full);
	return false;
}

static void pcf_walk(struct pcf_ctx *c, json_t *j, const char *ns, int depth)
{
	if (c->rc || depth > MAX_DEPTH) {
		if (!c->rc)
			c->rc = wb_fail(c->msg, c->msglen, WB_ESCHEMA,
					"schema nested too deeply");
		return;
	}
	if (json_is_string(j)) {
		const char *t = json_string_value(j);
		char full[512];
		if (primitive_kind(t) >= 0) {
			pcf_str(c, t);
		} else {
			full_name(t, ns, full, sizeof(full));
			pcf_str(c, full);
		}
		return;
	}
	if (json_is_array(j)) {
		pcf_lit(c, "[");
		for (size_t i = 0; i < json_array_size(j); i++) {
			if (i)
				pcf_lit(c, ",");
			pcf_walk(c, json_array_get(j, i), ns, depth + 1);
		}
		pcf_lit(c, "]");
		return;
	}
	if (!json_is_object(j)) {
		c->rc = wb_fail(c->msg, c->msglen, WB_ESCHEMA,
				"bad type in schema");
		return;
	}
	json_t *type = json_object_get(j, "type");
	if (!json_is_string(type)) {
		pcf_walk(c, type, ns, depth + 1);
		return;
	}
	const char *t = json_string_value(type);
	if (primitive_kind(t) >= 0) {
		pcf_str(c, t);
		return;
	}
	if (strcmp(t, "array") == 0 || strcmp(t, "map") == 0) {
		bool arr = t[0] == 'a';
		pcf_lit(c, arr ? "{\"type\":\"array\",\"items\":"
			       : "{\"type\":\"map\",\"values\":");
		pcf_walk(c, json_object_get(j, arr ? "items" : "values"), ns,
			 depth + 1);
		pcf_lit(c, "}");
		return;
	}
	if (strcmp(t, "record") && strcmp(t, "error") && strcmp(t, "enum") &&
	    strcmp(t, "fixed")) {
		/* a reference to a named type written as {"type": "Name"} */
		pcf_walk(c, type, ns, depth + 1);
		return;
	}
	const char *name = json_string_value(json_object_get(j, "name"));
	const char *jns = json_string_value(json_object_get(j, "namespace"));
	if (!name) {
		c->rc = wb_fail(c->msg, c->msglen, WB_ESCHEMA,
				"named type without a name");
		return;
	}
	char full[512], myns[512];
	full_name(name, jns ? jns : ns, full, sizeof(full));
	name_space(full, myns, sizeof(myns));
	if (pcf_seen(c, full)) {
		pcf_str(c, full);
		return;
	}
	pcf_lit(c, "{\"name\":");
	pcf_str(c, full);
	pcf_lit(c, ",\"type\":");
	if (strcmp(t, "enum") == 0) {
		pcf_lit(c, "\"enum\",\"symbols\":[");
		json_t *syms = json_object_get(j, "symbols");
		for (size_t i = 0; i < json_array_size(syms); i++) {
			if (i)
				pcf_lit(c, ",");
			pcf_str(c, json_string_value(json_array_get(syms, i)));
		}
		pcf_lit(c, "]}");
	} else if (strcmp(t, "fixed") == 0) {
		char num[32];
		json_t *size = json_object_get(j, "size");
		snprintf(num, sizeof(num), "%lld",
			 json_is_string(size)
				 ? atoll(json_string_value(size))
				 : (long long)json_integer_value(size));
		pcf_lit(c, "\"fixed\",\"size\":");
		pcf_lit(c, num);
		pcf_lit(c, "}");
	} else {
		pcf_lit(c, "\"record\",\"fields\":[");
		json_t *fields = json_object_get(j, "fields");
		for (size_t i = 0; i < json_array_size(fields); i++) {
			json_t *f = json_array_get(fields, i);
			if (i)
				pcf_lit(c, ",");
			pcf_lit(c, "{\"name\":");
			pcf_str(c, json_string_value(json_object_get(f, "name")));
			pcf_lit(c, ",\"type\":");
			pcf_walk(c, json_object_get(f, "type"), myns,
				 depth + 1);
			pcf_lit(c, "}");
		}
		pcf_lit(c, "]}");
	}
}

char *wb_schema_pcf_of(const char *schema_json, char *msg, size_t msglen)
{
	json_error_t jerr;
	json_t *j = json_loads(schema_json, JSON_DECODE_ANY, &jerr);
	if (!j) {
		wb_fail(msg, msglen, WB_EPARSE, "schema: %s (line %d)",
			jerr.text, jerr.line);
		return NULL;
	}
	struct pcf_ctx c = {.msg = msg, .msglen = msglen};
	wb_buf_init(&c.out);
	pcf_walk(&c, j, "", 0);
	json_decref(j);
	for (size_t i = 0; i < c.nseen; i++)
		free(c.seen[i]);
	free(c.seen);
	if (c.rc) {
		wb_buf_finish(&c.out);
		return NULL;
	}
	wb_buf_putc(&c.out, '\0');
	return (char *)c.out.data;
}

/* ---- registry ------------------------------------------------------- */

static void schema_free(struct schema *s)
{
	for (size_t i = 0; i < s->nnodes; i++) {
		struct wb_avro_node *n = s->nodes[i];
		if (n->names && n->kind != WB_K_UNION)
			for (size_t k = 0; k < n->n; k++)
				free(n->names[k]);
		free(n->names);
		free(n->sub);
		free(n->defaults);
		free(n->name);
		free(n->fullname);
		free(n);
	}
	free(s->nodes);
	for (size_t i = 0; i < s->nnamed; i++)
		free(s->named[i].fullname);
	free(s->named);
	free(s->pcf);
	json_decref(s->json);
	s->nodes = NULL;
	s->named = NULL;
	s->nnodes = s->capnodes = s->nnamed = s->capnamed = 0;
	s->pcf = NULL;
	s->json = NULL;
	s->root = NULL;
}

static void schemas_cleanup(void) __attribute__((destructor));
static void schemas_cleanup(void)
{
	for (int i = 0; i < WB_SCHEMA_COUNT; i++)
		schema_free(&schemas[i]);
}

static void schemas_load(void)
{
	crc64_init();
	for (int i = 0; i < WB_SCHEMA_COUNT; i++) {
		struct schema *s = &schemas[i];
		char msg[256] = "";
		avro_schema_t as = NULL;
		/* libavro-c must accept every schema we ship. */
		if (avro_schema_from_json_length(s->text, strlen(s->text),
						 &as) != 0) {
			fprintf(stderr, "schema %s rejected by avro-c: %s\n",
				s->name, avro_strerror());
			abort();
		}
		avro_schema_decref(as);
		json_error_t jerr;
		s->json = json_loads(s->text, 0, &jerr);
		assert(s->json);
		s->root = compile(s, s->json, "", msg, sizeof(msg));
		if (!s->root) {
			fprintf(stderr, "schema %s: %s\n", s->name, msg);
			abort();
		}
		for (size_t k = 0; k < s->nnodes; k++)
			s->nodes[k]->min_size = min_size(s->nodes[k], 0);
		s->pcf = wb_schema_pcf_of(s->text, msg, sizeof(msg));
		assert(s->pcf);
		s->fp = wb_crc64_avro(s->pcf, strlen(s->pcf));
	}
}

static const struct schema *schema_get(wb_schema_id id)
{
	assert((unsigned)id < WB_SCHEMA_COUNT);
	pthread_once(&schemas_once, schemas_load);
	return &schemas[id];
}

const struct wb_avro_node *wb_avro_root(wb_schema_id id)
{
	return schema_get(id)->root;
}

const char *wb_schema_name(wb_schema_id id)
{
	return (unsigned)id < WB_SCHEMA_COUNT ? schemas[id].name : NULL;
}

const char *wb_schema_text(wb_schema_id id)
{
	return schema_get(id)->text;
}

const char *wb_schema_canonical(wb_schema_id id)
{
	return schema_get(id)->pcf;
}

uint64_t wb_schema_fingerprint(wb_schema_id id)
{
	return schema_get(id)->fp;
}

/* ---- framing -------------------------------------------------------- */

void wb_avro_frame(wb_schema_id id, wb_buf *out)
{
	uint64_t fp = wb_schema_fingerprint(id);
	uint8_t h[WB_AVRO_HEADER_LEN] = {0xC3, 0x01};
	for (int i = 0; i < 8; i++)
		h[2 + i] = (uint8_t)(fp >> (8 * i));
	wb_buf_append(out, h, sizeof(h));
}

wb_err wb_avro_unframe(wb_schema_id id, const uint8_t *data, size_t len,
		       const uint8_t **body, size_t *bodylen, char *msg,
		       size_t msglen)
{
	if (len < WB_AVRO_HEADER_LEN || data[0] != 0xC3 || data[1] != 0x01)
		return wb_fail(msg, msglen, WB_EPARSE,
			       "not Avro single-object encoding (no C3 01 "
			       "header)");
	uint64_t fp = 0;
	for (int i = 0; i < 8; i++)
		fp |= (uint64_t)data[2 + i] << (8 * i);
	if (fp != wb_schema_fingerprint(id))
		return wb_fail(msg, msglen, WB_ESCHEMA,
			       "schema fingerprint %016llx is not %s's "
			       "(%016llx)",
			       (unsigned long long)fp, wb_schema_name(id),
			       (unsigned long long)wb_schema_fingerprint(id));
	if (len - WB_AVRO_HEADER_LEN > WB_AVRO_MAX_BODY)
		return wb_fail(msg, msglen, WB_ETOOBIG,
			       "Avro body of %zu bytes over the %u cap",
			       len - WB_AVRO_HEADER_LEN, WB_AVRO_MAX_BODY);
	*body = data + WB_AVRO_HEADER_LEN;
	*bodylen = len - WB_AVRO_HEADER_LEN;
	return WB_OK;
}
