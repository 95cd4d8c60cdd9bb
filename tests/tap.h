/*
 * tap.h — the few lines of TAP the C tests need (meson reads `protocol:
 * 'tap'`). ok() records one check and keeps going, so one run reports every
 * failure; tap_done() prints the plan and returns the exit status.
 */
#ifndef WB_TAP_H
#define WB_TAP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_failed;

#define ok(cond, ...)                                                      \
	do {                                                               \
		int tap_ok_ = !!(cond);                                    \
		tap_n++;                                                   \
		if (tap_ok_) {                                             \
			printf("ok %d - ", tap_n);                         \
		} else {                                                   \
			tap_failed++;                                      \
			printf("not ok %d - ", tap_n);                     \
		}                                                          \
		printf(__VA_ARGS__);                                       \
		printf("\n");                                              \
		if (!tap_ok_)                                              \
			printf("#   at %s:%d: %s\n", __FILE__, __LINE__,   \
			       #cond);                                     \
		fflush(stdout);                                            \
	} while (0)

#define diag(...)                                                          \
	do {                                                               \
		printf("# ");                                              \
		printf(__VA_ARGS__);                                       \
		printf("\n");                                              \
	} while (0)

static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
