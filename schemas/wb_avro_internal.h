/*
 * wb_avro_internal.h — the compiled schema graph and the Avro primitive
 * readers/writers shared by the codec files of this folder (and by the
 * ledger, which lays out LedgerEntry bytes itself). Not a public API.
 */
#ifndef WB_AVRO_INTERNAL_H
#define WB_AVRO_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "wb_schema.h"

enum wb_avro_kind {
	WB_K_NULL, WB_K_BOOLEAN, WB_K_INT, WB_K_LONG, WB_K_FLOAT, WB_K_DOUBLE,
	WB_K_BYTES, WB_K_STRING, WB_K_RECORD, WB_K_ENUM, WB_K_ARRAY, WB_K_MAP,
	WB_K_UNION, WB_K_FIXED
};

struct wb_avro_node {
	enum wb_avro_kind kind;
	char *name;              /* short name of a named type */
	char *fullname;
	size_t n;                /* fields, symbols or branches */
	char **names;            /* field names or enum symbols */
	struct wb_avro_node **sub; /* field types or union branches */
	json_t **defaults;       /* per field; borrowed from the schema JSON */
	struct wb_avro_node *items; /* array items, map values */
	size_t size;             /* fixed size */
	size_t min_size;         /* fewest bytes one value can encode to */
	int null_branch;         /* union: index of "null", or -1 */
};

const struct wb_avro_node *wb_avro_root(wb_schema_id id);

/* Whether s[0..n) is valid UTF-8 (no overlongs, no surrogates). */
bool wb_utf8_valid(const uint8_t *s, size_t n);



/* Validates (without building anything) one value of n read from r; errors
 * are prefixed with where ("$.payload"). */
wb_err wb_avro_skip(const struct wb_avro_node *n, struct wb_avro_reader *r,
		    const char *where, char *msg, size_t msglen);
#endif /* WB_AVRO_INTERNAL_H */
