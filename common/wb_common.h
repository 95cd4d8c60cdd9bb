/*
 * wb_common.h — plumbing shared by every Waybill service: the error enum,
 * growable byte buffers, the one table of configuration properties with its
 * loaders (file, environment, flags), key=value logging and the librdkafka
 * set-up that turns `kafka.*` config keys into a client configuration.
 *
 * Conventions (see README "Code conventions"): functions that can fail return
 * a wb_err and write a human message into a caller-provided buffer; library
 * errors are translated into wb_err at the boundary; `_create` allocates and
 * its `_destroy` accepts NULL; `_init`/`_finish` work on caller storage.
 */
#ifndef WB_COMMON_H
#define WB_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- errors ---------------------------------------------------------- */

/* Stable numbers: they appear in logs and exit statuses; append only. */
typedef enum wb_err {
	WB_OK = 0,
	WB_EINVAL = 1,    /* bad argument or request */
	WB_EPARSE = 2,    /* malformed input: JSON, Avro, CSV, config */
	WB_ESCHEMA = 3,   /* well-formed input of the wrong shape */
	WB_ETOOBIG = 4,   /* input over its size cap */
	WB_EIO = 5,       /* file or socket error */
	WB_ENOMEM = 6,
	WB_EKAFKA = 7,    /* broker or client error */
	WB_ESTORE = 8,    /* RocksDB error */
	WB_ENOTFOUND = 9,
	WB_ECORRUPT = 10, /* stored data fails a check (hash chain, framing) */
	WB_ECONFIG = 11,  /* bad configuration */
	WB_ETIMEOUT = 12,
	WB_EHTTP = 13,    /* remote HTTP error */
	WB_ECONFLICT = 14 /* request conflicts with current state */
} wb_err;

const char *wb_strerror(wb_err code);

/* Formats a message into msg (if non-NULL) and returns code, so callers can
 * write `return wb_fail(msg, len, WB_EPARSE, "line %d: ...", n);`. */
wb_err wb_fail(char *msg, size_t msglen, wb_err code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Allocation that aborts on exhaustion: a service that cannot allocate a few
 * bytes cannot make progress, and a crash is recovered from cleanly. */
void *wb_xmalloc(size_t n);
void *wb_xcalloc(size_t n, size_t sz);
void *wb_xrealloc(void *p, size_t n);
char *wb_xstrdup(const char *s);
char *wb_xstrndup(const char *s, size_t n);

/* ---- byte buffer ------------------------------------------------------ */

typedef struct wb_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
} wb_buf;

void wb_buf_init(wb_buf *b);
void wb_buf_finish(wb_buf *b);
void wb_buf_reserve(wb_buf *b, size_t extra);
void wb_buf_append(wb_buf *b, const void *p, size_t n);
void wb_buf_putc(wb_buf *b, uint8_t c);
static inline void wb_buf_reset(wb_buf *b) { b->len = 0; }

/* ---- hashing ------------------------------------------------------------ */

/* 64-bit FNV-1a over n bytes, continuing from h (start: WB_FNV_OFFSET).
 * Some of its values are stored (hashed RocksDB key prefixes) or shown
 * (instance ids): the function must never change. */
#define WB_FNV_OFFSET 1469598103934665603ULL
static inline uint64_t wb_fnv1a(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ULL;
	return h;
}

/* MurmurHash3's finaliser: FNV-1a's low bits are weak for table indexes
 * and key prefixes; this mixes every input bit into every output bit. */
static inline uint64_t wb_fmix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

/* wb_fmix64(FNV-1a): the hash of the hashed key prefixes. */
static inline uint64_t wb_hash64(const void *p, size_t n)
{
	return wb_fmix64(wb_fnv1a(WB_FNV_OFFSET, p, n));
}

/* ---- small utilities -------------------------------------------------- */

int64_t wb_now_ms(void);
/* Monotonic clock in microseconds, for durations. */
int64_t wb_mono_us(void);
/* Lower-case hex of n bytes into out (2n+1 bytes). */
void wb_hex(const uint8_t *in, size_t n, char *out);
/* Parses exactly 2n hex characters into n bytes; returns false otherwise. */
bool wb_unhex(const char *in, size_t inlen, uint8_t *out, size_t n);
/* Reads a whole file, capped at max bytes; NUL-terminates. */
wb_err wb_read_file(const char *path, size_t max, char **out, size_t *outlen,
		    char *msg, size_t msglen);
/* Parses a decimal int64 in [min,max]; whole string must be consumed. */
bool wb_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
/* Canonical "<epoch ms>" or RFC 3339 time ("2026-11-27T13:09:28Z",
 * fractional seconds and offsets allowed) into epoch ms. */
bool wb_parse_time_ms(const char *s, int64_t *out);
/* Formats epoch ms as RFC 3339 UTC with milliseconds (25 bytes). */
void wb_format_time_ms(int64_t ms, char out[32]);
/* A listen address of an HTTP service, "host:port", "[v6]:port" or ":port"
 * (all interfaces), resolved for bind(2) (the family says which of
 * sockaddr_in/_in6 it is); port 0 lets the kernel pick. key names the
 * setting in the message. */
struct sockaddr_storage;
wb_err wb_parse_listen(const char *key, const char *s,
		       struct sockaddr_storage *out, char *msg, size_t msglen);

/* ---- logging ---------------------------------------------------------- */

typedef enum wb_log_level {
	WB_LOG_DEBUG = 0,
	WB_LOG_INFO = 1,
	WB_LOG_WARN = 2,
	WB_LOG_ERROR = 3
} wb_log_level;

/* One line per event on stderr:
 *   ts=2026-11-27T13:09:28.123Z level=info prog=waybill-ledger event=x k=v
 * fmt supplies the trailing key=value pairs; values from outside are quoted
 * with wb_log_q(). Thread-safe (one write(2) per line). */
void wb_log_init(const char *prog, wb_log_level min);
bool wb_log_level_parse(const char *s, wb_log_level *out);
void wb_log(wb_log_level lvl, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Quotes a value for a log line if it holds spaces, quotes or '='; returns a
 * pointer into one of a few per-thread rotating buffers (truncated at 200). */
const char *wb_log_q(const char *s);

/* ---- configuration ---------------------------------------------------- */

/* Which commands a property applies to (bit set). */
enum {
	WB_CMD_INGEST = 1u << 0,
	WB_CMD_LEDGER = 1u << 1,
	WB_CMD_PROJECTOR = 1u << 2,
	WB_CMD_CLI = 1u << 3,
	WB_CMD_ALL = 0xfu
};

enum {
	WB_PROP_SECRET = 1u << 0, /* never logged, default hidden in --help */
};

struct wb_config_prop {
	const char *key;
	const char *def;     /* default, NULL = unset */
	unsigned cmds;
	unsigned flags;
	const char *env;     /* extra environment name, or NULL */
	const char *help;
};

/* The one table; NULL-key terminated. --help and the README reference are
 * generated from it. */
extern const struct wb_config_prop wb_config_props[];

typedef struct wb_config wb_config;

wb_config *wb_config_create(unsigned cmd);
void wb_config_destroy(wb_config *cfg);

/* Sets key (must be in the table, or start with "kafka."). */
wb_err wb_config_set(wb_config *cfg, const char *key, const char *value,
		     char *msg, size_t msglen);
wb_err wb_config_load_file(wb_config *cfg, const char *path, char *msg,
			   size_t msglen);
/* Applies WAYBILL_* environment variables. */
wb_err wb_config_load_env(wb_config *cfg, char *msg, size_t msglen);

/* The whole command line: defaults < --config FILE (or WAYBILL_CONFIG) <
 * environment < flags. Flags are --KEY=VALUE or --KEY VALUE; aliases such as
 * --data-dir are resolved by the caller-provided table (may be NULL).
 * Non-flag arguments are returned in order in pos (pointers into argv).
 * Sets *help when --help/-h is seen. */
struct wb_config_alias {
	const char *flag; /* without leading dashes */
	const char *key;  /* config key, or NULL for a boolean option */
};
wb_err wb_config_parse_args(wb_config *cfg, int argc, char **argv,
			    const struct wb_config_alias *aliases,
			    int *npos, char **pos, bool *help,
			    char *msg, size_t msglen);

const char *wb_config_get(const wb_config *cfg, const char *key);
int64_t wb_config_get_int(const wb_config *cfg, const char *key);
/* key as an integer in [min, max]; otherwise WB_ECONFIG with
 * "KEY must be an integer from MIN to MAX (got 'VALUE')" in msg. */
wb_err wb_config_get_int_range(const wb_config *cfg, const char *key,
			       int64_t min, int64_t max, int64_t *out,
			       char *msg, size_t msglen);
bool wb_config_get_bool(const wb_config *cfg, const char *key);
/* Calls fn for every kafka.* key set (key without the "kafka." prefix). */
void wb_config_each_kafka(const wb_config *cfg,
			  void (*fn)(const char *k, const char *v, void *ud),
			  void *ud);
/* Whether key was set by a file, env or flag (not only defaulted). */
bool wb_config_is_set(const wb_config *cfg, const char *key);

/* Prints "Options:" with every property of cmd and its default. */
void wb_config_print_help(FILE *out, unsigned cmd);
/* The same for the properties whose key starts with one of prefixes
 * (NULL-terminated; NULL: all), e.g. the options of one ingest mode. */
void wb_config_print_help_keys(FILE *out, unsigned cmd,
			       const char *const *prefixes);
/* Markdown table of every property (README "Configuration reference"). */
void wb_config_print_reference(FILE *out);


/* ---- Kafka ------------------------------------------------------------ */

#include <librdkafka/rdkafka.h>

/* A librdkafka configuration from every kafka.* key of cfg, with its log
 * and error callbacks routed into wb_log. NULL with msg on a bad key.
 * Producers that partition by key set partitioner=murmur2_random
 * themselves (before the kafka.* keys), to match Java clients. */
rd_kafka_conf_t *wb_kafka_conf_new(const wb_config *cfg, char *msg,
				   size_t msglen);
/* Sets one librdkafka property; wb_err with librdkafka's message. */
wb_err wb_kafka_conf_set(rd_kafka_conf_t *conf, const char *k, const char *v,
			 char *msg, size_t msglen);
/* "<topic.prefix><name>" into out. */
void wb_kafka_topic(const wb_config *cfg, const char *name, char *out,
		    size_t outlen);
/* Number of partitions of topic (metadata request), or -1 with msg. */
int wb_kafka_partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms,
			     char *msg, size_t msglen);

#endif /* WB_COMMON_H */
