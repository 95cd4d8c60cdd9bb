/*
 * fuzz_tokens_file.c — the projector's tokens file parser
 * (wb_tokens_parse: "<sha256 hex> <merchant> <scopes>" lines).
 *
 * Invariants:
 *  - a file that parses yields entries sorted by digest with no two alike,
 *    each with a merchant of 1..256 printable bytes without spaces and
 *    scopes within read|act, not empty;
 *  - written back as lines, those entries parse to the same entries;
 *  - a file that does not parse says where ("tok:LINE: ...").
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char msg[512] = "";
	wb_tokens *t = NULL;
	if (wb_tokens_parse((const char *)data, size, "tok", &t, msg,
			    sizeof(msg)) != WB_OK) {
		FUZZ_CHECK(t == NULL && strncmp(msg, "tok:", 4) == 0,
			   "error without its place: %s", msg);
		return 0;
	}
	wb_buf b;
	wb_buf_init(&b);
	for (size_t i = 0; i < t->n; i++) {
		const struct wb_token *e = &t->v[i];
		if (i)
			FUZZ_CHECK(memcmp(t->v[i - 1].digest, e->digest, 32) < 0,
				   "entries %zu and %zu out of order", i - 1, i);
		size_t ml = strlen(e->merchant);
		FUZZ_CHECK(ml >= 1 && ml <= WB_HTTP_VALUE_MAX, "merchant %zu", ml);
		for (size_t k = 0; k < ml; k++)
			FUZZ_CHECK(e->merchant[k] > 0x20 && e->merchant[k] < 0x7f,
				   "merchant byte 0x%02x",
				   (unsigned char)e->merchant[k]);
		FUZZ_CHECK(e->scopes && !(e->scopes & ~(unsigned)(WB_SCOPE_READ |
								   WB_SCOPE_ACT)),
			   "scopes %u", e->scopes);
		char hex[65];
		wb_hex(e->digest, 32, hex);
		wb_buf_append(&b, hex, 64);
		wb_buf_putc(&b, ' ');
		wb_buf_append(&b, e->merchant, ml);
		const char *sc = e->scopes == WB_SCOPE_READ  ? " read\n"
				 : e->scopes == WB_SCOPE_ACT ? " act\n"
							     : " read,act\n";
		wb_buf_append(&b, sc, strlen(sc));
	}
	wb_tokens *t2 = NULL;
	FUZZ_CHECK(wb_tokens_parse((const char *)b.data, b.len, "tok", &t2, msg,
				   sizeof(msg)) == WB_OK &&
			   t2->n == t->n,
		   "written back, the tokens do not parse: %s", msg);
	for (size_t i = 0; i < t->n; i++)
		FUZZ_CHECK(memcmp(t->v[i].digest, t2->v[i].digest, 32) == 0 &&
				   strcmp(t->v[i].merchant, t2->v[i].merchant) == 0 &&
				   t->v[i].scopes == t2->v[i].scopes,
			   "entry %zu changed on the way back", i);
	wb_tokens_free(t2);
	wb_tokens_free(t);
	wb_buf_finish(&b);
	return 0;
}
