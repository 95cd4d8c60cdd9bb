/*
 * fuzz.h — what every tests/fuzz/fuzz_*.c target shares. Each target is a
 * libFuzzer entry point (LLVMFuzzerTestOneInput) over one parser family;
 * built with -Dfuzz=true (clang) it links libFuzzer, otherwise
 * replay_main.c runs it over the seed corpus as an ordinary test.
 *
 * A target must not crash, hang or leak on any input; beyond that it
 * checks invariants with FUZZ_CHECK, which prints what broke and aborts so
 * both libFuzzer and the replay test report it.
 */
#ifndef WB_FUZZ_H
#define WB_FUZZ_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond, ...)                                              \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "%s:%d: invariant violated: %s\n  ", \
				__FILE__, __LINE__, #cond);                \
			fprintf(stderr, __VA_ARGS__);                      \
			fprintf(stderr, "\n");                             \
			abort();                                           \
		}                                                          \
	} while (0)

/* A fixed jansson hash seed: the same input takes the same path. */
static inline void fuzz_init_json(void)
{
	json_object_seed(1);
}

#endif /* WB_FUZZ_H */
