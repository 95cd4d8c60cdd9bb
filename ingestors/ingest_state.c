/*
 * ingest_state.c — the durable cursors of the polling modes (amazon-poll,
 * shopify-poll): one small text file per cursor under ingest.state.dir.
 *
 * A cursor only ever moves after Kafka acknowledged everything read up to
 * it, so losing a write costs a re-read (deduplicated by event_id), but a
 * torn or half-written file must never be read back as a cursor further
 * ahead than what was acknowledged. Hence the classic sequence: write a
 * temporary file, fsync it, rename it over the old one, fsync the folder.
 * A reader sees the old cursor or the new one, never a mix, also after a
 * power loss.
 */
#include "wb_ingest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Cursors are a timestamp or a token: anything longer is not ours. */
#define STATE_MAX 4096

static bool name_ok(const char *name)
{
	if (!*name || strchr(name, '/') || name[0] == '.')
		return false;
	return strlen(name) < 128;
}

/* mkdir -p for the state folder. */
static wb_err make_dirs(const char *dir, char *msg, size_t msglen)
{
	char path[4096];
	size_t n = strlen(dir);
	if (n == 0 || n >= sizeof(path))
		return wb_fail(msg, msglen, WB_ECONFIG,
			       "ingest.state.dir: empty or too long");
	memcpy(path, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		char c = path[i];
		path[i] = '\0';
		if (mkdir(path, 0700) != 0 && errno != EEXIST)
			return wb_fail(msg, msglen, WB_EIO, "mkdir %s: %s",
				       path, strerror(errno));
		path[i] = c;
	}
	return WB_OK;
}

wb_err wb_ingest_state_load(const char *dir, const char *name, char *out,
			    size_t outlen, bool *found, char *msg,
			    size_t msglen)
{
	*found = false;
	if (!name_ok(name))
		return wb_fail(msg, msglen, WB_EINVAL, "bad state name");
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	char *text = NULL;
	size_t len = 0;
	struct stat st;
	if (stat(path, &st) != 0) {
		if (errno == ENOENT)
			return WB_OK;
		return wb_fail(msg, msglen, WB_EIO, "%s: %s", path,
			       strerror(errno));
	}
	wb_err rc = wb_read_file(path, STATE_MAX, &text, &len, msg, msglen);
	if (rc)
		return rc;
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		text[--len] = '\0';
	if (len == 0 || len >= outlen || memchr(text, '\0', len) ||
	    memchr(text, '\n', len)) {
		free(text);
		return wb_fail(msg, msglen, WB_ECORRUPT,
			       "%s: not a cursor (empty, several lines or too "
			       "long); remove it to start over from the "
			       "configured start",
			       path);
	}
	memcpy(out, text, len + 1);
	free(text);
	*found = true;
	return WB_OK;
}

wb_err wb_ingest_state_save(const char *dir, const char *name,
			    const char *value, char *msg, size_t msglen)
{
	if (!name_ok(name))
		return wb_fail(msg, msglen, WB_EINVAL, "bad state name");
	size_t vlen = strlen(value);
	if (vlen == 0 || vlen >= STATE_MAX || strchr(value, '\n'))
		return wb_fail(msg, msglen, WB_EINVAL,
			       "a cursor is one non-empty line");
	wb_err rc = make_dirs(dir, msg, msglen);
	if (rc)
		return rc;
	char path[4096], tmp[4200];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return wb_fail(msg, msglen, WB_EIO, "%s: %s", tmp,
			       strerror(errno));
	char line[STATE_MAX + 1];
	memcpy(line, value, vlen);
	line[vlen] = '\n';
	size_t off = 0;
	while (off < vlen + 1) {
		ssize_t w = write(fd, line + off, vlen + 1 - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rc = wb_fail(msg, msglen, WB_EIO, "write %s: %s", tmp,
				     strerror(errno));
			close(fd);
			unlink(tmp);
			return rc;
		}
		off += (size_t)w;
	}
	if (fsync(fd) != 0) {
		rc = wb_fail(msg, msglen, WB_EIO, "fsync %s: %s", tmp,
			     strerror(errno));
		close(fd);
		unlink(tmp);
		return rc;
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		rc = wb_fail(msg, msglen, WB_EIO, "rename %s: %s", path,
			     strerror(errno));
		unlink(tmp);
		return rc;
	}
	/* The rename itself is durable only once the folder is synced. */
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return wb_fail(msg, msglen, WB_EIO, "%s: %s", dir,
			       strerror(errno));
	int src = fsync(dfd);
	close(dfd);
	if (src != 0)
		return wb_fail(msg, msglen, WB_EIO, "fsync %s: %s", dir,
			       strerror(errno));
	return WB_OK;
}
