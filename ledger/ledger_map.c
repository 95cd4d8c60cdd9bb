/*
 * ledger_map.c — see ledger_map.h. Linear probing at load <= 1/2 with a
 * 64-bit FNV-1a hash (mixed, wb_hash64); keys are appended to one arena, and a clear bumps a
 * generation number instead of wiping the slots, so clearing a large map
 * after every batch costs nothing.
 */
#include "ledger_map.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_key(const char *k, size_t n)
{
	/* mixed: the slot index is the low bits */
	uint64_t h = wb_hash64(k, n);
	return h ? h : 1;
}

void ledger_map_init(struct ledger_map *m)
{
	m->cap = 1024;
	m->n = 0;
	m->gen = 1;
	m->slots = wb_xcalloc(m->cap, sizeof(*m->slots));
	wb_buf_init(&m->keys);
}

void ledger_map_finish(struct ledger_map *m)
{
	free(m->slots);
	m->slots = NULL;
	m->cap = m->n = 0;
	wb_buf_finish(&m->keys);
}

void ledger_map_clear(struct ledger_map *m)
{
	if (m->n && ++m->gen == 0) {
		memset(m->slots, 0, m->cap * sizeof(*m->slots));
		m->gen = 1;
	}
	m->n = 0;
	wb_buf_reset(&m->keys);
}

static struct ledger_map_slot *find(struct ledger_map *m, uint64_t h,
				    const char *key, size_t len)
{
	size_t mask = m->cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct ledger_map_slot *s = &m->slots[i];
		if (!ledger_map_used(m, s))
			return s;
		if (s->hash == h && s->len == len &&
		    memcmp(m->keys.data + s->off, key, len) == 0)
			return s;
	}
}

struct ledger_map_slot *ledger_map_get(struct ledger_map *m, const char *key,
				       size_t len)
{
	struct ledger_map_slot *s = find(m, hash_key(key, len), key, len);
	return ledger_map_used(m, s) ? s : NULL;
}

static void grow(struct ledger_map *m)
{
	struct ledger_map_slot *old = m->slots;
	size_t oldcap = m->cap;
	m->cap *= 2;
	m->slots = wb_xcalloc(m->cap, sizeof(*m->slots));
	for (size_t i = 0; i < oldcap; i++) {
		if (!ledger_map_used(m, &old[i]))
			continue;
		size_t mask = m->cap - 1, j = old[i].hash & mask;
		while (ledger_map_used(m, &m->slots[j]))
			j = (j + 1) & mask;
		m->slots[j] = old[i];
	}
	free(old);
}

void ledger_map_put(struct ledger_map *m, const char *key, size_t len,
		    int64_t val, uint64_t aux)
{
	uint64_t h = hash_key(key, len);
	struct ledger_map_slot *s = find(m, h, key, len);
	if (ledger_map_used(m, s)) {
		s->val = val;
		s->aux = aux;
		return;
	}
	if (2 * (m->n + 1) > m->cap) {
		grow(m);
		s = find(m, h, key, len);
	}
	s->hash = h;
	s->gen = m->gen;
	s->off = m->keys.len;
	s->len = len;
	s->val = val;
	s->aux = aux;
	wb_buf_append(&m->keys, key, len);
	m->n++;
}
