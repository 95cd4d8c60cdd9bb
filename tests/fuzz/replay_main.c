/*
 * replay_main.c — runs a fuzz target without libFuzzer: every file of the
 * directories (and every file) named on the command line goes once through
 * LLVMFuzzerTestOneInput, in name order. This is how the seed corpus and
 * every crash reproducer run in the normal test suite (meson suite 'fuzz')
 * with any compiler. An invariant violation aborts, so the test fails.
 *
 *   replay_<target> DIR|FILE...
 *
 * Exit status 0 when every input ran; 1 if an argument could not be read
 * or named an empty directory (a corpus that silently vanished).
 */
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "wb_common.h"

static int run_file(const char *path)
{
	char msg[512];
	char *data = NULL;
	size_t len = 0;
	/* the largest input any target's -max_len allows, with room */
	if (wb_read_file(path, 1 << 20, &data, &len, msg, sizeof(msg)) !=
	    WB_OK) {
		fprintf(stderr, "replay: %s\n", msg);
		return -1;
	}
	/* a copy of exactly len bytes, so ASan sees reads past the end */
	uint8_t *copy = wb_xmalloc(len ? len : 1);
	memcpy(copy, data, len);
	free(data);
	LLVMFuzzerTestOneInput(copy, len);
	free(copy);
	return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int skip_dots(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

/* Runs every file of dir; returns how many, or -1. */
static long run_dir(const char *dir)
{
	struct dirent **names;
	int n = scandir(dir, &names, skip_dots, by_name);
	if (n < 0) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	long ran = 0;
	int rc = 0;
	for (int i = 0; i < n; i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		struct stat st;
		if (rc == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			if (run_file(path) != 0)
				rc = -1;
			else
				ran++;
		}
		free(names[i]);
	}
	free(names);
	return rc ? -1 : ran;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
		return 1;
	}
	LLVMFuzzerInitialize(&argc, &argv);
	int status = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i],
				strerror(errno));
			status = 1;
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (run_file(argv[i]) != 0)
				status = 1;
			continue;
		}
		long ran = run_dir(argv[i]);
		if (ran < 0) {
			status = 1;
		} else if (ran == 0) {
			fprintf(stderr, "replay: %s: no inputs\n", argv[i]);
			status = 1;
		} else {
			printf("replay: %ld inputs from %s\n", ran, argv[i]);
		}
	}
	return status;
}
