/*
 * wb_event.c — OrderEvent specifics: the envelope rules every event must
 * satisfy, and wb_event_peek, which validates a whole Avro body and returns
 * its envelope as slices into the body. The ledger runs peek on every record
 * it consumes, so it allocates nothing.
 */
#include "wb_avro_internal.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>

/* Field order of OrderEvent.avsc; checked once against the schema. */
enum {
	F_EVENT_ID, F_MERCHANT, F_ORDER_ID, F_CHANNEL, F_TYPE, F_SOURCE_TIME,
	F_INGEST_TIME, F_SOURCE, F_CORRELATION_ID, F_CAUSATION_ID, F_PAYLOAD,
	F_COUNT
};
static const char *const field_names[F_COUNT] = {
	"event_id", "merchant", "order_id", "channel", "type", "source_time",
	"ingest_time", "source", "correlation_id", "causation_id", "payload"};

#define MAX_ID_BYTES 256

static const char **type_names;
static pthread_once_t types_once = PTHREAD_ONCE_INIT;

static void types_load(void)
{
	const struct wb_avro_node *root = wb_avro_root(WB_SCHEMA_ORDER_EVENT);
	assert(root->kind == WB_K_RECORD && root->n == F_COUNT);
	for (int i = 0; i < F_COUNT; i++)
		assert(strcmp(root->names[i], field_names[i]) == 0);
	const struct wb_avro_node *u = root->sub[F_PAYLOAD];
	assert(u->kind == WB_K_UNION);
	type_names = wb_xcalloc(u->n + 1, sizeof(char *));
	for (size_t i = 0; i < u->n; i++)
		type_names[i] = u->sub[i]->name;
}

static void types_cleanup(void) __attribute__((destructor));
static void types_cleanup(void)
{
	free(type_names);
	type_names = NULL;
}

const char *const *wb_event_types(void)
{
	pthread_once(&types_once, types_load);
	return type_names;
}

static bool slice_eq(struct wb_slice s, const char *z)
{
	return s.n == strlen(z) && memcmp(s.p, z, s.n) == 0;
}

static wb_err check_id(struct wb_slice s, const char *name, char *msg,
		       size_t msglen)
{
	if (s.n == 0)
		return wb_fail(msg, msglen, WB_ESCHEMA, "$.%s: empty", name);
	if (s.n > MAX_ID_BYTES)
		return wb_fail(msg, msglen, WB_ETOOBIG,
			       "$.%s: %zu bytes, over the %d-byte cap", name,
			       s.n, MAX_ID_BYTES);
	if (memchr(s.p, '\0', s.n))
		return wb_fail(msg, msglen, WB_ESCHEMA,
			       "$.%s: contains a NUL byte", name);
	return WB_OK;
}

wb_err wb_event_check(const struct wb_event_view *v, char *msg,
		      size_t msglen)
{
	wb_err rc;
	if ((rc = check_id(v->event_id, "event_id", msg, msglen)) ||
	    (rc = check_id(v->merchant, "merchant", msg, msglen)) ||
	    (rc = check_id(v->order_id, "order_id", msg, msglen)) ||
	    (rc = check_id(v->channel, "channel", msg, msglen)) ||
	    (rc = check_id(v->source, "source", msg, msglen)))
		return rc;
	const char *colon = memchr(v->order_id.p, ':', v->order_id.n);
	if (!colon || (size_t)(colon - v->order_id.p) != v->channel.n ||
	    memcmp(v->order_id.p, v->channel.p, v->channel.n) != 0 ||
	    colon + 1 == v->order_id.p + v->order_id.n)
		return wb_fail(msg, msglen, WB_ESCHEMA,
			       "$.order_id: '%.*s' is not '<channel>:<id>' "
			       "for channel '%.*s'",
			       (int)(v->order_id.n > 80 ? 80 : v->order_id.n),
			       v->order_id.p,
			       (int)(v->channel.n > 40 ? 40 : v->channel.n),
			       v->channel.p);
	if (!slice_eq(v->type, v->payload_name))
		return wb_fail(msg, msglen, WB_ESCHEMA,
			       "$.type: '%.*s' but the payload is a %s",
			       (int)(v->type.n > 64 ? 64 : v->type.n),
			       v->type.p, v->payload_name);
	if (v->source_time < 0 || v->ingest_time < 0)
		return wb_fail(msg, msglen, WB_ESCHEMA,
			       "$.source_time/ingest_time: negative time");
	/* epoch ms past 9999-12-31T23:59:59.999Z is no channel's clock (and
	 * would not print as RFC 3339): a unit mix-up such as microseconds */
	if (v->source_time > WB_TIME_MAX_MS || v->ingest_time > WB_TIME_MAX_MS)
		return wb_fail(msg, msglen, WB_ESCHEMA,
			       "$.source_time/ingest_time: %" PRId64
			       " ms is after 9999-12-31 (milliseconds "
			       "expected)",
			       v->source_time > WB_TIME_MAX_MS
				       ? v->source_time
				       : v->ingest_time);
	return WB_OK;
}

/* Reads a string; NULL, or what is wrong with it. */
static const char *get_str(struct wb_avro_reader *r, struct wb_slice *s)
{
	const uint8_t *p;
	size_t n;
	if (!wb_avro_get_bytes(r, &p, &n))
		return "truncated, or a bad length";
	if (!wb_utf8_valid(p, n))
		return "invalid UTF-8";
	if (memchr(p, '\0', n))
		return "a NUL byte";
	s->p = (const char *)p;
	s->n = n;
	return NULL;
}

/* Reads a ["null","string"] union; NULL, or what is wrong with it. */
static const char *get_opt_str(struct wb_avro_reader *r, struct wb_slice *s)
{
	int64_t branch;
	if (!wb_avro_get_long(r, &branch))
		return "truncated, or a bad union branch";
	if (branch == 0) {
		s->p = NULL;
		s->n = 0;
		return NULL;
	}
	if (branch != 1)
		return "union branch out of range";
	return get_str(r, s);
}

/* Reads the envelope's fields before the payload; on failure names the
 * field and the problem. */
static wb_err read_envelope(struct wb_avro_reader *r, struct wb_event_view *v,
			    char *msg, size_t msglen)
{
	struct {
		const char *name;
		struct wb_slice *s;
	} strs[] = {{"event_id", &v->event_id}, {"merchant", &v->merchant},
		    {"order_id", &v->order_id},  {"channel", &v->channel},
		    {"type", &v->type}};
	const char *bad = NULL, *field = NULL;
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]) && !bad; i++)
		if ((bad = get_str(r, strs[i].s)))
			field = strs[i].name;
	int64_t *times[] = {&v->source_time, &v->ingest_time};
	for (int i = 0; i < 2 && !bad; i++) {
		if (!wb_avro_get_long(r, times[i])) {
			bad = "truncated, or a bad varint";
			field = i ? "ingest_time" : "source_time";
		}
	}
	if (!bad && (bad = get_str(r, &v->source)))
		field = "source";
	if (!bad && (bad = get_opt_str(r, &v->correlation_id)))
		field = "correlation_id";
	if (!bad && (bad = get_opt_str(r, &v->causation_id)))
		field = "causation_id";
	if (bad)
		return wb_fail(msg, msglen, WB_EPARSE,
			       "malformed OrderEvent: $.%s: %s", field, bad);
	return WB_OK;
}

wb_err wb_event_peek(const uint8_t *body, size_t len, struct wb_event_view *v,
		     char *msg, size_t msglen)
{
	const char *const *types = wb_event_types();
	const struct wb_avro_node *root = wb_avro_root(WB_SCHEMA_ORDER_EVENT);
	if (len > WB_AVRO_MAX_BODY)
		return wb_fail(msg, msglen, WB_ETOOBIG,
			       "event of %zu bytes over the cap", len);
	struct wb_avro_reader r = {body, body + len, true};
	int64_t branch;
	memset(v, 0, sizeof(*v));
	wb_err erc = read_envelope(&r, v, msg, msglen);
	if (erc)
		return erc;
	if (!wb_avro_get_long(&r, &branch))
		return wb_fail(msg, msglen, WB_EPARSE,
			       "malformed OrderEvent: $.payload: truncated, "
			       "or a bad union branch");
	const struct wb_avro_node *u = root->sub[F_PAYLOAD];
	if (branch < 0 || (uint64_t)branch >= u->n)
		return wb_fail(msg, msglen, WB_EPARSE,
			       "$.payload: union branch %lld out of range",
			       (long long)branch);
	v->payload_branch = (int)branch;
	v->payload_name = types[branch];
	wb_err rc = wb_avro_skip(u->sub[branch], &r, "$.payload", msg, msglen);
	if (rc)
		return rc;
	if (r.p != r.end)
		return wb_fail(msg, msglen, WB_EPARSE,
			       "%zu trailing bytes after OrderEvent",
			       (size_t)(r.end - r.p));
	v->canonical = r.canonical;
	return wb_event_check(v, msg, msglen);
}

/* Rules the schema cannot state, checked on every payload written by
 * hand or by a tool: a currency is an ISO-4217 code (three capitals), a
 * quantity is not negative. path is the JSON path of v so far. */
static wb_err payload_rules(json_t *v, char *path, size_t plen, size_t cap,
			    int depth, char *msg, size_t msglen)
{
	if (depth > 64)
		return WB_OK; /* the codec refuses deeper values itself */
	if (json_is_array(v)) {
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x)
		{
			snprintf(path + plen, cap - plen, "[%zu]", i);
			wb_err rc = payload_rules(x, path, strlen(path), cap,
						  depth + 1, msg, msglen);
			if (rc)
				return rc;
		}
		return WB_OK;
	}
	if (!json_is_object(v))
		return WB_OK;
	const char *k;
	json_t *x;
	json_object_foreach(v, k, x)
	{
		snprintf(path + plen, cap - plen, ".%s", k);
		if (strcmp(k, "currency") == 0 && json_is_string(x)) {
			const char *c = json_string_value(x);
			if (json_string_length(x) != 3 || c[0] < 'A' ||
			    c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z' ||
			    c[2] < 'A' || c[2] > 'Z')
				return wb_fail(msg, msglen, WB_ESCHEMA,
					       "%s: '%.16s' is not an ISO-4217 "
					       "code (three capital letters)",
					       path, c);
		} else if (strcmp(k, "quantity") == 0 && json_is_integer(x) &&
			   json_integer_value(x) < 0) {
			return wb_fail(msg, msglen, WB_ESCHEMA,
				       "%s: negative quantity %" JSON_INTEGER_FORMAT,
				       path, json_integer_value(x));
		}
		wb_err rc = payload_rules(x, path, strlen(path), cap,
					  depth + 1, msg, msglen);
		if (rc)
			return rc;
	}
	return WB_OK;
}

wb_err wb_event_encode_json(json_t *event, wb_buf *out, char *msg,
			    size_t msglen)
{
	if (!json_is_object(event))
		return wb_fail(msg, msglen, WB_ESCHEMA,
			       "$: an event must be a JSON object");
	json_t *type = json_object_get(event, "type");
	if (!json_is_string(type))
		return wb_fail(msg, msglen, WB_ESCHEMA,
			       "$.type: missing or not a string");
	size_t start = out->len;
	wb_err rc = wb_avro_encode(WB_SCHEMA_ORDER_EVENT, event, out, msg,
				   msglen);
	if (rc)
		return rc;
	char path[256] = "$.payload";
	rc = payload_rules(json_object_get(event, "payload"), path,
			   strlen(path), sizeof(path), 0, msg, msglen);
	if (rc) {
		out->len = start;
		return rc;
	}
	struct wb_event_view v;
	rc = wb_event_peek(out->data + start, out->len - start, &v, msg,
			   msglen);
	if (rc)
		out->len = start;
	return rc;
}
