/*
 * wb_tamper.c — test tool that plays an outside attacker with write access
 * to the ledger's RocksDB: it rewrites one stored entry in place, the way
 * someone editing the data directory would, so that tests can check
 * `waybill verify` notices. It links RocksDB and libcrypto only, never the
 * ledger library: everything it knows about the layout is what
 * ledger/wb_ledger.h documents.
 *
 *   wb-tamper [--rehash | --rehash-chain] DATA_DIR PARTITION SEQ
 *
 * The entry at key BE32(PARTITION) | BE64(SEQ) of the `log` column family
 * (a LedgerEntry Avro body: zz(partition) zz(seq) zz(version)
 * zz(recorded_at) bytes(prev_hash) bytes(hash) event) gets the lowest bit
 * of its last byte flipped: a byte inside the event, same length.
 *
 *   (default)        only that byte changes; the stored hash is stale.
 *   --rehash         the entry's own hash is recomputed as well,
 *                    SHA-256(prev_hash | BE64 seq | zz(partition)
 *                    zz(version) zz(recorded_at) | event), so the entry is
 *                    self-consistent; the next entry's prev_hash is not.
 *   --rehash-chain   as --rehash, then every later entry of the partition
 *                    gets its prev_hash and hash recomputed, and the chain
 *                    head (`heads` CF: BE32 partition -> BE64 seq | hash)
 *                    is rewritten: the whole store is consistent again.
 *
 * Prints one line per rewritten entry ("rewrote P/S old=... new=...") and
 * exits 0; 1 on any error (no such entry, unreadable store, ...), 2 on a
 * usage error. The ledger must not be running.
 */
#include <openssl/evp.h>
#include <rocksdb/c.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HASH_LEN 32

static const char *const cf_names[] = {"default", "log",   "by_order",
				       "dedupe",  "orders", "heads",
				       "offsets", "outbox"};
enum { CF_DEFAULT, CF_LOG, CF_BY_ORDER, CF_DEDUPE, CF_ORDERS, CF_HEADS,
       CF_OFFSETS, CF_OUTBOX, CF_COUNT };

struct entry {
	int64_t partition, seq, version, recorded_at;
	size_t prev_off, hash_off, event_off; /* offsets into the value */
	size_t hdr_len;                       /* bytes of the four varints */
};

static void be32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void be64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static bool get_long(const uint8_t *p, size_t n, size_t *pos, int64_t *out)
{
	uint64_t v = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		if (*pos >= n)
			return false;
		uint8_t c = p[(*pos)++];
		v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
			return true;
		}
	}
	return false;
}

/* Splits a stored value; false if it is not a LedgerEntry body. */
static bool parse(const uint8_t *p, size_t n, struct entry *e)
{
	size_t pos = 0;
	int64_t len;
	if (!get_long(p, n, &pos, &e->partition) ||
	    !get_long(p, n, &pos, &e->seq) ||
	    !get_long(p, n, &pos, &e->version) ||
	    !get_long(p, n, &pos, &e->recorded_at))
		return false;
	e->hdr_len = pos;
	if (!get_long(p, n, &pos, &len) || len != HASH_LEN ||
	    n - pos < HASH_LEN)
		return false;
	e->prev_off = pos;
	pos += HASH_LEN;
	if (!get_long(p, n, &pos, &len) || len != HASH_LEN ||
	    n - pos < HASH_LEN)
		return false;
	e->hash_off = pos;
	e->event_off = pos + HASH_LEN;
	return e->event_off < n; /* an entry always carries an event */
}

static void put_long(uint8_t *out, size_t *n, int64_t v)
{
	uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
	while (z >= 0x80) {
		out[(*n)++] = (uint8_t)(z | 0x80);
		z >>= 7;
	}
	out[(*n)++] = (uint8_t)z;
}

/* The hash documented in wb_ledger.h, over the value's own fields. */
static bool compute_hash(const uint8_t *v, size_t n, const struct entry *e,
			 uint8_t out[HASH_LEN])
{
	uint8_t seq_be[8], varints[30];
	size_t vn = 0;
	be64(seq_be, (uint64_t)e->seq);
	put_long(varints, &vn, e->partition);
	put_long(varints, &vn, e->version);
	put_long(varints, &vn, e->recorded_at);
	unsigned int len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
		  EVP_DigestUpdate(ctx, v + e->prev_off, HASH_LEN) &&
		  EVP_DigestUpdate(ctx, seq_be, 8) &&
		  EVP_DigestUpdate(ctx, varints, vn) &&
		  EVP_DigestUpdate(ctx, v + e->event_off, n - e->event_off) &&
		  EVP_DigestFinal_ex(ctx, out, &len) && len == HASH_LEN;
	EVP_MD_CTX_free(ctx);
	return ok;
}

static void hex16(const uint8_t *h, char out[17])
{
	for (int i = 0; i < 8; i++)
		snprintf(out + 2 * i, 3, "%02x", h[i]);
}

static void usage(void)
{
	fprintf(stderr, "usage: wb-tamper [--rehash | --rehash-chain] DATA_DIR "
			"PARTITION SEQ\n");
}

int main(int argc, char **argv)
{
	int mode = 0; /* 0 flip only, 1 rehash, 2 rehash the rest */
	int a = 1;
	if (a < argc && strcmp(argv[a], "--rehash") == 0) {
		mode = 1;
		a++;
	} else if (a < argc && strcmp(argv[a], "--rehash-chain") == 0) {
		mode = 2;
		a++;
	}
	if (argc - a != 3) {
		usage();
		return 2;
	}
	const char *dir = argv[a];
	char *end;
	long long part = strtoll(argv[a + 1], &end, 10);
	if (*end || part < 0 || part > INT32_MAX) {
		usage();
		return 2;
	}
	long long seq = strtoll(argv[a + 2], &end, 10);
	if (*end || seq < 1) {
		usage();
		return 2;
	}

	rocksdb_options_t *opts = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(opts, 0);
	rocksdb_options_set_create_missing_column_families(opts, 0);
	const rocksdb_options_t *cf_opts[CF_COUNT];
	for (int i = 0; i < CF_COUNT; i++)
		cf_opts[i] = opts;
	rocksdb_column_family_handle_t *cf[CF_COUNT] = {0};
	char *err = NULL;
	rocksdb_t *db = rocksdb_open_column_families(
		opts, dir, CF_COUNT, cf_names, cf_opts, cf, &err);
	if (!db) {
		fprintf(stderr, "wb-tamper: open %s: %s\n", dir, err);
		rocksdb_free(err);
		rocksdb_options_destroy(opts);
		return 1;
	}
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(wo, 1);
	rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
	int status = 1;
	uint8_t prev[HASH_LEN]; /* the hash the next entry must chain to */
	int64_t last = 0;

	for (long long s = seq;; s++) {
		uint8_t key[12];
		be32(key, (uint32_t)part);
		be64(key + 4, (uint64_t)s);
		size_t n = 0;
		char *v = rocksdb_get_cf(db, ro, cf[CF_LOG], (char *)key, 12,
					 &n, &err);
		if (err) {
			fprintf(stderr, "wb-tamper: read %lld/%lld: %s\n", part,
				s, err);
			rocksdb_free(err);
			goto out;
		}
		if (!v) {
			if (s == seq) {
				fprintf(stderr, "wb-tamper: no entry at "
						"partition %lld seq %lld\n",
					part, s);
				goto out;
			}
			break; /* past the end of the chain */
		}
		uint8_t *val = (uint8_t *)v;
		struct entry e;
		if (!parse(val, n, &e) || e.partition != part || e.seq != s) {
			fprintf(stderr, "wb-tamper: %lld/%lld is not a "
					"LedgerEntry body\n",
				part, s);
			rocksdb_free(v);
			goto out;
		}
		char old16[17], new16[17];
		hex16(val + e.hash_off, old16);
		if (s == seq)
			val[n - 1] ^= 0x01; /* inside the event, same length */
		else
			memcpy(val + e.prev_off, prev, HASH_LEN);
		if (mode > 0 &&
		    !compute_hash(val, n, &e, val + e.hash_off)) {
			fprintf(stderr, "wb-tamper: SHA-256 failed\n");
			rocksdb_free(v);
			goto out;
		}
		hex16(val + e.hash_off, new16);
		memcpy(prev, val + e.hash_off, HASH_LEN);
		last = s;
		rocksdb_writebatch_put_cf(wb, cf[CF_LOG], (char *)key, 12, v, n);
		printf("rewrote %lld/%lld old=%s... new=%s...\n", part, s,
		       old16, new16);
		rocksdb_free(v);
		if (mode < 2)
			break;
	}
	if (mode == 2) {
		uint8_t hkey[4], hval[8 + HASH_LEN];
		be32(hkey, (uint32_t)part);
		be64(hval, (uint64_t)last);
		memcpy(hval + 8, prev, HASH_LEN);
		rocksdb_writebatch_put_cf(wb, cf[CF_HEADS], (char *)hkey, 4,
					  (char *)hval, sizeof(hval));
		printf("rewrote head of partition %lld (seq %lld)\n", part,
		       (long long)last);
	}
	rocksdb_write(db, wo, wb, &err);
	if (err) {
		fprintf(stderr, "wb-tamper: write: %s\n", err);
		rocksdb_free(err);
		goto out;
	}
	status = 0;
out:
	rocksdb_writebatch_destroy(wb);
	rocksdb_writeoptions_destroy(wo);
	rocksdb_readoptions_destroy(ro);
	for (int i = 0; i < CF_COUNT; i++)
		if (cf[i])
			rocksdb_column_family_handle_destroy(cf[i]);
	rocksdb_close(db);
	rocksdb_options_destroy(opts);
	return status;
}
