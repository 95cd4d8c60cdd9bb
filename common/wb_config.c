/*
 * wb_config.c — loads configuration from defaults, a key=value file, WAYBILL_*
 * environment variables and --KEY=VALUE flags, in that order of precedence,
 * and prints --help and the Markdown reference from wb_config_props.
 *
 * Values live in a small array; lookups are linear, which is fine for a few
 * dozen keys read at start-up (hot paths copy what they need).
 */
#include "wb_common.h"

#include <assert.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

extern char **environ;

struct kv {
	char *key;
	char *value;
	bool set;
};

struct wb_config {
	unsigned cmd;
	struct kv *kv;
	size_t n, cap;
};

static const struct wb_config_prop *prop_find(const char *key)
{
	for (const struct wb_config_prop *p = wb_config_props; p->key; p++)
		if (strcmp(p->key, key) == 0)
			return p;
	return NULL;
}

static struct kv *kv_find(const wb_config *cfg, const char *key)
{
	for (size_t i = 0; i < cfg->n; i++)
		if (strcmp(cfg->kv[i].key, key) == 0)
			return &cfg->kv[i];
	return NULL;
}

static void kv_put(wb_config *cfg, const char *key, const char *value,
		   bool set)
{
	struct kv *kv = kv_find(cfg, key);
	if (!kv) {
		if (cfg->n == cfg->cap) {
			cfg->cap = cfg->cap ? cfg->cap * 2 : 32;
			cfg->kv = wb_xrealloc(cfg->kv,
					      cfg->cap * sizeof(*cfg->kv));
		}
		kv = &cfg->kv[cfg->n++];
		kv->key = wb_xstrdup(key);
		kv->value = NULL;
	}
	free(kv->value);
	kv->value = value ? wb_xstrdup(value) : NULL;
	kv->set = set;
}

wb_config *wb_config_create(unsigned cmd)
{
	wb_config *cfg = wb_xcalloc(1, sizeof(*cfg));
	cfg->cmd = cmd;
	for (const struct wb_config_prop *p = wb_config_props; p->key; p++)
		if (p->def)
			kv_put(cfg, p->key, p->def, false);
	return cfg;
}

void wb_config_destroy(wb_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->n; i++) {
		free(cfg->kv[i].key);
		free(cfg->kv[i].value);
	}
	free(cfg->kv);
	free(cfg);
}

/* A key of the table, or any kafka.* property (librdkafka checks those). */
static bool key_known(const char *key)
{
	return prop_find(key) ||
	       (strncmp(key, "kafka.", 6) == 0 && key[6] != '\0');
}

static wb_err fail_unknown(const char *key, char *msg, size_t msglen)
{
	return wb_fail(msg, msglen, WB_ECONFIG,
		       "unknown configuration key '%s' (see --help)", key);
}

wb_err wb_config_set(wb_config *cfg, const char *key, const char *value,
		     char *msg, size_t msglen)
{
	assert(cfg && key && value);
	if (!key_known(key))
		return fail_unknown(key, msg, msglen);
	kv_put(cfg, key, value, true);
	return WB_OK;
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

wb_err wb_config_load_file(wb_config *cfg, const char *path, char *msg,
			   size_t msglen)
{
	char *text = NULL;
	size_t len = 0;
	wb_err rc = wb_read_file(path, 1 << 20, &text, &len, msg, msglen);
	if (rc != WB_OK)
		return rc;
	/* A NUL would end the text early: the lines after it would be
	 * dropped without a word. */
	const char *nul = memchr(text, '\0', len);
	if (nul) {
		int at = 1;
		for (const char *p = text; p < nul; p++)
			at += *p == '\n';
		rc = wb_fail(msg, msglen, WB_ECONFIG, "%s:%d: NUL byte", path,
			     at);
		free(text);
		return rc;
	}
	/* Line by line (not strtok, which skips blank lines and so would
	 * misnumber every line after one). */
	int lineno = 0;
	for (char *line = text, *next; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		char *s = trim(line);
		if (*s == '\0' || *s == '#')
			continue;
		char *eq = strchr(s, '=');
		if (!eq) {
			rc = wb_fail(msg, msglen, WB_ECONFIG,
				     "%s:%d: expected key=value", path,
				     lineno);
			break;
		}
		*eq = '\0';
		char sub[256];
		rc = wb_config_set(cfg, trim(s), trim(eq + 1), sub,
				   sizeof(sub));
		if (rc != WB_OK) {
			wb_fail(msg, msglen, rc, "%s:%d: %s", path, lineno,
				sub);
			break;
		}
	}
	free(text);
	return rc;
}

/* "kafka.bootstrap.servers" -> "WAYBILL_KAFKA_BOOTSTRAP_SERVERS" */
static void env_name(const char *key, char *out, size_t outlen)
{
	size_t o = (size_t)snprintf(out, outlen, "WAYBILL_");
	for (const char *p = key; *p && o + 1 < outlen; p++)
		out[o++] = *p == '.' || *p == '-' ? '_'
						  : (char)toupper((unsigned char)*p);
	out[o] = '\0';
}

/* Whether librdkafka knows the property. WAYBILL_KAFKA_* also names
 * settings of ops/kafka (WAYBILL_KAFKA_PORT, ..._DIR), which must not turn
 * into client properties. */
static bool is_rdkafka_property(const char *name, const char *value)
{
	rd_kafka_conf_t *probe = rd_kafka_conf_new();
	char errstr[256];
	/* UNKNOWN only for names librdkafka lacks; a bad value is INVALID
	 * and is reported properly when the real client is configured. */
	bool known = rd_kafka_conf_set(probe, name, value, errstr,
				       sizeof(errstr)) != RD_KAFKA_CONF_UNKNOWN;
	rd_kafka_conf_destroy(probe);
	return known;
}

wb_err wb_config_load_env(wb_config *cfg, char *msg, size_t msglen)
{
	char name[256];
	for (const struct wb_config_prop *p = wb_config_props; p->key; p++) {
		const char *v = NULL;
		if (p->env)
			v = getenv(p->env);
		if (!v) {
			env_name(p->key, name, sizeof(name));
			v = getenv(name);
		}
		if (v)
			kv_put(cfg, p->key, v, true);
	}
	/* WAYBILL_KAFKA_<X> for librdkafka properties not in the table:
	 * librdkafka names use dots, so '_' maps back to '.'. */
	for (char **e = environ; e && *e; e++) {
		if (strncmp(*e, "WAYBILL_KAFKA_", 14) != 0)
			continue;
		const char *eq = strchr(*e, '=');
		if (!eq)
			continue;
		char key[256] = "kafka.";
		size_t o = 6;
		for (const char *p = *e + 14; p < eq && o + 1 < sizeof(key);
		     p++)
			key[o++] = *p == '_' ? '.' : (char)tolower((unsigned char)*p);
		key[o] = '\0';
		if (prop_find(key) || !is_rdkafka_property(key + 6, eq + 1))
			continue;
		kv_put(cfg, key, eq + 1, true);
	}
	(void)msg;
	(void)msglen;
	return WB_OK;
}

static const struct wb_config_alias *alias_find(
	const struct wb_config_alias *aliases, const char *flag, size_t n)
{
	for (const struct wb_config_alias *a = aliases; a && a->flag; a++)
		if (strlen(a->flag) == n && strncmp(a->flag, flag, n) == 0)
			return a;
	return NULL;
}

wb_err wb_config_parse_args(wb_config *cfg, int argc, char **argv,
			    const struct wb_config_alias *aliases,
			    int *npos, char **pos, bool *help,
			    char *msg, size_t msglen)
{
	wb_err rc;
	*npos = 0;
	*help = false;
	/* Pass 1: the config file, so flags can override what it says. */
	const char *file = getenv("WAYBILL_CONFIG");
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			file = argv[++i];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			file = argv[i] + 9;
		else if (strcmp(argv[i], "--") == 0)
			break;
	}
	if (file && (rc = wb_config_load_file(cfg, file, msg, msglen)))
		return rc;
	if ((rc = wb_config_load_env(cfg, msg, msglen)))
		return rc;
	/* Pass 2: flags and positional arguments. */
	bool rest = false;
	for (int i = 1; i < argc; i++) {
		char *a = argv[i];
		if (rest || a[0] != '-' || strcmp(a, "-") == 0) {
			pos[(*npos)++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			rest = true;
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			*help = true;
			continue;
		}
		if (strncmp(a, "--", 2) != 0)
			return wb_fail(msg, msglen, WB_ECONFIG,
				       "unknown option '%s' (see --help)", a);
		const char *name = a + 2;
		const char *eq = strchr(name, '=');
		size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
		const char *value = eq ? eq + 1 : NULL;
		if (nlen == 6 && strncmp(name, "config", 6) == 0) {
			if (!eq)
				i++;
			continue;
		}
		const struct wb_config_alias *al =
			alias_find(aliases, name, nlen);
		if (al && !al->key) {
			/* boolean option: recorded as "flag.<name>=true" */
			char key[128];
			snprintf(key, sizeof(key), "flag.%.*s", (int)nlen,
				 name);
			kv_put(cfg, key, value ? value : "true", true);
			continue;
		}
		char key[256];
		snprintf(key, sizeof(key), "%.*s", (int)nlen, name);
		const char *target = al ? al->key : key;
		/* a misspelt option is reported as such, not as missing its
		 * value, and never swallows the argument after it */
		if (!key_known(target))
			return fail_unknown(target, msg, msglen);
		if (!value) {
			if (i + 1 >= argc)
				return wb_fail(msg, msglen, WB_ECONFIG,
					       "option '--%.*s' needs a value",
					       (int)nlen, name);
			value = argv[++i];
		}
		const struct wb_config_prop *p = prop_find(target);
		if (p && (p->flags & WB_PROP_SECRET))
			wb_log(WB_LOG_WARN, "secret_on_command_line",
			       "key=%s hint=\"use the environment or the "
			       "config file; argv is visible to ps\"",
			       target);
		if ((rc = wb_config_set(cfg, target, value, msg, msglen)))
			return rc;
	}
	return WB_OK;
}

const char *wb_config_get(const wb_config *cfg, const char *key)
{
	const struct kv *kv = kv_find(cfg, key);
	return kv ? kv->value : NULL;
}

int64_t wb_config_get_int(const wb_config *cfg, const char *key)
{
	const char *v = wb_config_get(cfg, key);
	int64_t out = 0;
	if (v && wb_parse_i64(v, INT64_MIN, INT64_MAX, &out))
		return out;
	return 0;
}

wb_err wb_config_get_int_range(const wb_config *cfg, const char *key,
			       int64_t min, int64_t max, int64_t *out,
			       char *msg, size_t msglen)
{
	const char *v = wb_config_get(cfg, key);
	if (v && wb_parse_i64(v, min, max, out))
		return WB_OK;
	return wb_fail(msg, msglen, WB_ECONFIG,
		       "%s must be an integer from %lld to %lld (got '%s')", key,
		       (long long)min, (long long)max, v ? v : "");
}

bool wb_config_get_bool(const wb_config *cfg, const char *key)
{
	const char *v = wb_config_get(cfg, key);
	return v && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0 ||
		     strcmp(v, "yes") == 0 || strcmp(v, "on") == 0);
}

bool wb_config_is_set(const wb_config *cfg, const char *key)
{
	const struct kv *kv = kv_find(cfg, key);
	return kv && kv->set;
}

void wb_config_each_kafka(const wb_config *cfg,
			  void (*fn)(const char *k, const char *v, void *ud),
			  void *ud)
{
	for (size_t i = 0; i < cfg->n; i++)
		if (strncmp(cfg->kv[i].key, "kafka.", 6) == 0 &&
		    cfg->kv[i].value)
			fn(cfg->kv[i].key + 6, cfg->kv[i].value, ud);
}

void wb_config_print_help(FILE *out, unsigned cmd)
{
	wb_config_print_help_keys(out, cmd, NULL);
}

static bool has_prefix(const char *key, const char *const *prefixes)
{
	if (!prefixes)
		return true;
	for (const char *const *p = prefixes; *p; p++)
		if (strncmp(key, *p, strlen(*p)) == 0)
			return true;
	return false;
}

void wb_config_print_help_keys(FILE *out, unsigned cmd,
			       const char *const *prefixes)
{
	char env[256];
	fprintf(out, "\nOptions (--KEY=VALUE, a line KEY=VALUE in --config "
		     "FILE, or the environment variable shown):\n");
	fprintf(out, "  --config FILE\n      key=value lines, # comments "
		     "(env WAYBILL_CONFIG)\n");
	for (const struct wb_config_prop *p = wb_config_props; p->key; p++) {
		if (!(p->cmds & cmd) || !has_prefix(p->key, prefixes))
			continue;
		env_name(p->key, env, sizeof(env));
		const char *def = p->flags & WB_PROP_SECRET ? "(secret)"
				  : p->def			 ? p->def
								 : "(unset)";
		fprintf(out, "  --%s=%s\n      %s\n      env %s%s%s\n", p->key,
			def, p->help, env, p->env ? " or " : "",
			p->env ? p->env : "");
	}
	fprintf(out, "  --kafka.<property>=VALUE\n      any librdkafka "
		     "property (env WAYBILL_KAFKA_<PROPERTY>, dots as _)\n");
}

void wb_config_print_reference(FILE *out)
{
	static const char *const cmd_names[] = {"ingest", "ledger",
						"projector", "waybill"};
	fprintf(out, "| key | default | used by | environment | meaning |\n");
	fprintf(out, "|---|---|---|---|---|\n");
	char env[256];
	for (const struct wb_config_prop *p = wb_config_props; p->key; p++) {
		char used[64] = "";
		for (int b = 0; b < 4; b++)
			if (p->cmds & (1u << b)) {
				if (*used)
					strcat(used, ", ");
				strcat(used, cmd_names[b]);
			}
		env_name(p->key, env, sizeof(env));
		fprintf(out, "| `%s` | %s%s%s | %s | `%s`%s%s%s | %s |\n",
			p->key, p->def && !(p->flags & WB_PROP_SECRET) ? "`" : "",
			p->flags & WB_PROP_SECRET ? "(secret)"
			: p->def		  ? p->def
						  : "(unset)",
			p->def && !(p->flags & WB_PROP_SECRET) ? "`" : "",
			used, env, p->env ? " or `" : "", p->env ? p->env : "",
			p->env ? "`" : "", p->help);
	}
	fprintf(out, "| `kafka.<property>` | librdkafka's | all | "
		     "`WAYBILL_KAFKA_<PROPERTY>` | passed to librdkafka |\n");
}
