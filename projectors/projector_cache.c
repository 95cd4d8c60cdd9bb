/*
 * projector_cache.c — rendered answers of GET /v1/orders/{id}, so a hot
 * order is not re-read, re-presented and re-serialised on every request.
 *
 * An order only changes by entries of its own ledger partition, so an
 * entry is stamped with that partition's applied seq as read *before* the
 * store was queried, and is served only while the partition's applied seq
 * is still exactly that (any apply, rebuild or reset makes it a miss).
 * The presented view also depends on the clock (the return window), so an
 * entry also expires after a short TTL. Keys include the merchant, and
 * only successful answers are stored: another merchant's order and a
 * missing one both always go to the store, with the same cost.
 *
 * Direct-mapped slots behind striped locks: a collision replaces.
 */
#include "projector_http.h"

#include <stdlib.h>
#include <string.h>

#define STRIPES 64

struct slot {
	uint64_t hash;
	char *key;      /* merchant NUL order_id NUL */
	size_t keylen;
	int32_t partition;
	int64_t stamp;
	int64_t born_us;
	char *body;
	size_t len;
};

struct wb_http_cache {
	struct slot *slots;
	size_t n;
	int64_t ttl_us;
	pthread_mutex_t locks[STRIPES];
	uint64_t hits, misses;
};

static uint64_t key_hash(const char *k, size_t n)
{
	return wb_fnv1a(WB_FNV_OFFSET, k, n);
}

/* "merchant\0order_id\0" into buf (caller's, big enough). */
static size_t make_key(char *buf, const char *merchant, const char *id)
{
	size_t a = strlen(merchant) + 1, b = strlen(id) + 1;
	memcpy(buf, merchant, a);
	memcpy(buf + a, id, b);
	return a + b;
}

struct wb_http_cache *wb_http_cache_create(size_t slots, int64_t ttl_us)
{
	if (slots == 0 || ttl_us <= 0)
		return NULL;
	struct wb_http_cache *c = wb_xcalloc(1, sizeof(*c));
	c->slots = wb_xcalloc(slots, sizeof(*c->slots));
	c->n = slots;
	c->ttl_us = ttl_us;
	for (int i = 0; i < STRIPES; i++)
		pthread_mutex_init(&c->locks[i], NULL);
	return c;
}

void wb_http_cache_destroy(struct wb_http_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++) {
		free(c->slots[i].key);
		free(c->slots[i].body);
	}
	for (int i = 0; i < STRIPES; i++)
		pthread_mutex_destroy(&c->locks[i]);
	free(c->slots);
	free(c);
}

bool wb_http_cache_get(struct wb_http_cache *c, const char *merchant,
		       const char *id, int64_t now_us,
		       int64_t (*applied)(void *ud, int32_t partition),
		       void *ud, wb_buf *out)
{
	if (!c)
		return false;
	char key[2 * (WB_HTTP_VALUE_MAX + 1)];
	if (strlen(merchant) > WB_HTTP_VALUE_MAX ||
	    strlen(id) > WB_HTTP_VALUE_MAX)
		return false;
	size_t kl = make_key(key, merchant, id);
	uint64_t h = key_hash(key, kl);
	size_t i = (size_t)(h % c->n);
	pthread_mutex_t *lock = &c->locks[i % STRIPES];
	bool hit = false;
	pthread_mutex_lock(lock);
	struct slot *s = &c->slots[i];
	if (s->key && s->hash == h && s->keylen == kl &&
	    memcmp(s->key, key, kl) == 0 && now_us - s->born_us < c->ttl_us &&
	    now_us >= s->born_us && applied(ud, s->partition) == s->stamp) {
		wb_buf_append(out, s->body, s->len);
		hit = true;
	}
	pthread_mutex_unlock(lock);
	__atomic_fetch_add(hit ? &c->hits : &c->misses, 1, __ATOMIC_RELAXED);
	return hit;
}

void wb_http_cache_put(struct wb_http_cache *c, const char *merchant,
		       const char *id, int32_t partition, int64_t stamp,
		       int64_t now_us, const char *body, size_t len)
{
	if (!c || partition < 0 || strlen(merchant) > WB_HTTP_VALUE_MAX ||
	    strlen(id) > WB_HTTP_VALUE_MAX)
		return;
	char key[2 * (WB_HTTP_VALUE_MAX + 1)];
	size_t kl = make_key(key, merchant, id);
	uint64_t h = key_hash(key, kl);
	size_t i = (size_t)(h % c->n);
	char *nk = wb_xmalloc(kl);
	memcpy(nk, key, kl);
	char *nb = wb_xmalloc(len ? len : 1);
	memcpy(nb, body, len);
	pthread_mutex_t *lock = &c->locks[i % STRIPES];
	pthread_mutex_lock(lock);
	struct slot *s = &c->slots[i];
	char *ok = s->key, *ob = s->body;
	*s = (struct slot){.hash = h, .key = nk, .keylen = kl,
			   .partition = partition, .stamp = stamp,
			   .born_us = now_us, .body = nb, .len = len};
	pthread_mutex_unlock(lock);
	free(ok);
	free(ob);
}

void wb_http_cache_stats(const struct wb_http_cache *c, uint64_t *hits,
			 uint64_t *misses)
{
	*hits = c ? __atomic_load_n(&c->hits, __ATOMIC_RELAXED) : 0;
	*misses = c ? __atomic_load_n(&c->misses, __ATOMIC_RELAXED) : 0;
}
