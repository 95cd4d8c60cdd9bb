/*
 * ledger_map.h — a string -> (int64, uint64) open-addressing hash map whose
 * keys live in one arena, for the ledger's per-order states (version and
 * merchant digest) and the event ids of the batches (entry index and
 * identity hash). Internal to ledger/.
 */
#ifndef LEDGER_MAP_H
#define LEDGER_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "wb_common.h"

struct ledger_map_slot {
	uint64_t hash; /* 0 = empty */
	uint32_t gen;  /* the slot is in use only if gen == map gen */
	size_t off;    /* key offset in keys */
	size_t len;
	int64_t val;
	uint64_t aux;
};

struct ledger_map {
	struct ledger_map_slot *slots;
	size_t cap; /* power of two */
	size_t n;
	uint32_t gen;
	wb_buf keys;
};

/* Whether slot s holds a key. */
static inline int ledger_map_used(const struct ledger_map *m,
				  const struct ledger_map_slot *s)
{
	return s->hash != 0 && s->gen == m->gen;
}

void ledger_map_init(struct ledger_map *m);
void ledger_map_finish(struct ledger_map *m);
void ledger_map_clear(struct ledger_map *m);
/* The slot of key, or NULL. Valid until the next put/clear. */
struct ledger_map_slot *ledger_map_get(struct ledger_map *m, const char *key,
				       size_t len);
void ledger_map_put(struct ledger_map *m, const char *key, size_t len,
		    int64_t val, uint64_t aux);

#endif
