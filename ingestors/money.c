/*
 * money.c — channel money into Waybill money: decimal strings ("25.99",
 * as Amazon and POS exports write them) into integer minor units of an
 * ISO-4217 currency, digit by digit. Never through a double: 0.1 + 0.2 is
 * not 0.3 there, and a ledger that is off by a cent is wrong.
 *
 * The exponent (digits after the point) comes from ISO 4217: 0 for JPY,
 * KRW and a few others, 3 for the dinar family, 4 for CLF/UYW, 2 for the
 * rest. An amount with more fractional digits than its currency has is
 * accepted only if the extra digits are zeros ("10.00" JPY is 10 yen);
 * "25.99" JPY has no exact value in yen and is refused rather than rounded.
 */
#include "wb_ingest.h"

#include <string.h>

struct exp_entry {
	char code[4];
	int exponent;
};

/* ISO 4217 currencies whose minor unit is not 2 (list of codes, 2024). */
static const struct exp_entry exponents[] = {
	{"BHD", 3}, {"BIF", 0}, {"CLF", 4}, {"CLP", 0}, {"DJF", 0},
	{"GNF", 0}, {"IQD", 3}, {"ISK", 0}, {"JOD", 3}, {"JPY", 0},
	{"KMF", 0}, {"KRW", 0}, {"KWD", 3}, {"LYD", 3}, {"OMR", 3},
	{"PYG", 0}, {"RWF", 0}, {"TND", 3}, {"UGX", 0}, {"UYI", 0},
	{"UYW", 4}, {"VND", 0}, {"VUV", 0}, {"XAF", 0}, {"XOF", 0},
	{"XPF", 0},
};

int wb_currency_exponent(const char *code, size_t n)
{
	if (n != 3)
		return -1;
	for (size_t i = 0; i < 3; i++)
		if (code[i] < 'A' || code[i] > 'Z')
			return -1;
	for (size_t i = 0; i < sizeof(exponents) / sizeof(exponents[0]); i++)
		if (memcmp(exponents[i].code, code, 3) == 0)
			return exponents[i].exponent;
	return 2;
}

wb_err wb_money_parse(const char *s, size_t n, const char *currency,
		      size_t currency_len, int64_t *out, char *msg,
		      size_t msglen)
{
	int exp = wb_currency_exponent(currency, currency_len);
	if (exp < 0)
		return wb_fail(msg, msglen, WB_EPARSE,
			       "currency '%.*s' is not an ISO-4217 code (three "
			       "capital letters)",
			       (int)(currency_len > 16 ? 16 : currency_len),
			       currency);
	size_t i = 0;
	bool neg = false;
	if (i < n && s[i] == '-') {
		neg = true;
		i++;
	}
	size_t int_start = i;
	/* Accumulated as a negative number so INT64_MIN fits. */
	int64_t v = 0;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
		if (v < (INT64_MIN + (s[i] - '0')) / 10)
			goto too_big;
		v = v * 10 - (s[i] - '0');
	}
	size_t int_digits = i - int_start;
	int frac = 0;
	if (i < n && s[i] == '.') {
		i++;
		size_t frac_start = i;
		for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
			if (frac < exp) {
				if (v < (INT64_MIN + (s[i] - '0')) / 10)
					goto too_big;
				v = v * 10 - (s[i] - '0');
				frac++;
			} else if (s[i] != '0') {
				return wb_fail(msg, msglen, WB_EPARSE,
					       "'%.*s' has more decimals than "
					       "%.*s's %d; refusing to round",
					       (int)(n > 40 ? 40 : n), s,
					       (int)currency_len, currency, exp);
			}
		}
		if (i == frac_start)
			goto bad;
	}
	if (i != n || int_digits == 0)
		goto bad;
	for (; frac < exp; frac++) {
		if (v < INT64_MIN / 10)
			goto too_big;
		v *= 10;
	}
	if (!neg) {
		if (v == INT64_MIN)
			goto too_big;
		v = -v;
	}
	*out = v;
	return WB_OK;
bad:
	return wb_fail(msg, msglen, WB_EPARSE,
		       "'%.*s' is not a decimal amount (digits, optionally "
		       "'-' and one '.')",
		       (int)(n > 40 ? 40 : n), s);
too_big:
	return wb_fail(msg, msglen, WB_EPARSE,
		       "'%.*s' is too large for a 64-bit amount",
		       (int)(n > 40 ? 40 : n), s);
}
