/*
 * fuzz_http_request.c — what the projector's HTTP API parses from a
 * request before anything else: the raw path (routes, percent-decoding of
 * the id), the Authorization header (bearer token) and query values.
 * Input: "PATH\nAUTHORIZATION\nQUERY VALUE" (missing parts are empty).
 *
 * Invariants:
 *  - a routed id that is not bad is 1..256 bytes of acceptable UTF-8, its
 *    length is idlen, and it holds no NUL;
 *  - decoding never grows a value; a decoded value, percent-encoded byte
 *    by byte again, decodes back to itself;
 *  - a bearer token lies inside the header, is 1..1024 bytes of token68
 *    characters (with trailing '=' padding only).
 */
#include <string.h>

#include "fuzz.h"
#include "projector_http.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

/* The next '\n'-terminated part of [*p, end) as a NUL-terminated copy. */
static char *part(const uint8_t **p, const uint8_t *end, size_t *n)
{
	const uint8_t *s = *p;
	const uint8_t *e = memchr(s, '\n', (size_t)(end - s));
	if (!e)
		e = end;
	*n = (size_t)(e - s);
	char *out = wb_xmalloc(*n + 1);
	memcpy(out, s, *n);
	out[*n] = '\0';
	*p = e < end ? e + 1 : end;
	return out;
}

static void check_decode(const char *in, size_t n, bool plus)
{
	char *out = wb_xmalloc(n + 1);
	size_t len = 0;
	if (wb_http_pct_decode(in, n, plus, out, &len)) {
		FUZZ_CHECK(len <= n, "decoded %zu bytes from %zu", len, n);
		FUZZ_CHECK(memchr(out, '\0', len) == NULL, "NUL decoded");
		char *enc = wb_xmalloc(3 * len + 1), *back = wb_xmalloc(len + 1);
		for (size_t i = 0; i < len; i++)
			snprintf(enc + 3 * i, 4, "%%%02X", (unsigned char)out[i]);
		size_t blen = 0;
		FUZZ_CHECK(wb_http_pct_decode(enc, 3 * len, plus, back, &blen) &&
				   blen == len && memcmp(back, out, len) == 0,
			   "re-encoded value does not decode back");
		free(enc);
		free(back);
	}
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;
	size_t plen, alen, qlen;
	char *path = part(&p, end, &plen);
	char *authz = part(&p, end, &alen);
	char *query = part(&p, end, &qlen);

	struct wb_route_match m;
	wb_http_route(path, &m);
	FUZZ_CHECK((unsigned)m.route < WB_ROUTE_COUNT, "route %d", m.route);
	if (m.route != WB_ROUTE_UNKNOWN && m.route != WB_ROUTE_HEALTHZ &&
	    m.route != WB_ROUTE_READYZ && m.route != WB_ROUTE_METRICS &&
	    m.route != WB_ROUTE_OPENAPI && m.route != WB_ROUTE_ORDERS &&
	    !m.bad_id) {
		FUZZ_CHECK(m.idlen == strlen(m.id), "idlen %zu", m.idlen);
		FUZZ_CHECK(wb_http_value_ok(m.id, m.idlen), "bad id routed");
	}
	FUZZ_CHECK(wb_http_route_name(m.route) != NULL, "no route name");
	check_decode(path, strlen(path), false);
	check_decode(query, strlen(query), true);

	const char *tok;
	size_t tlen;
	if (wb_http_bearer(authz, &tok, &tlen)) {
		FUZZ_CHECK(tok >= authz && tok + tlen <= authz + strlen(authz),
			   "token outside the header");
		FUZZ_CHECK(tlen >= 1 && tlen <= 1024, "token length %zu", tlen);
		bool pad = false;
		for (size_t i = 0; i < tlen; i++) {
			char c = tok[i];
			if (c == '=') {
				pad = true;
				continue;
			}
			FUZZ_CHECK(!pad && c != ' ' && c != '\t' && c != '"' &&
					   c != ',' && (unsigned char)c > 0x20,
				   "bad token character 0x%02x", (unsigned char)c);
		}
	}
	free(path);
	free(authz);
	free(query);
	return 0;
}
