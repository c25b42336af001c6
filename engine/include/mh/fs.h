/* fs.h: whole-file writes that are never seen half done, and the temp-file
 * names they use. Layer: engine/base (pure C11, POSIX); no Lua.
 * Temp files are "<path>.tmp.<pid>.<n>" next to their target, so a crashed
 * writer's leftovers can be told from a live one's by its pid. */
#ifndef MH_FS_H
#define MH_FS_H

#include <stddef.h>
#include "mh/err.h"

/* Opens a new temp file next to path, for writing; its name goes to tmp
 * (cap bytes). Returns the fd, or -1 with err filled. */
int mh_fs_open_temp(const char *path, char *tmp, size_t cap, mh_err *err);

/* Syncs and closes fd, renames tmp over path and syncs the directory; on
 * any failure removes tmp. Returns a status. */
int mh_fs_commit_temp(int fd, const char *tmp, const char *path, mh_err *err);

/* Writes n bytes of data as the whole new content of path: readers see the
 * old file or the new one, never a part (temp file + fsync + rename). */
int mh_fs_write_atomic(const char *path, const void *data, size_t n, mh_err *err);

/* 1 when pid names a live process (ours or another user's), else 0; a
 * zombie (dead, not yet reaped) counts as dead. */
int mh_fs_pid_alive(long pid);

/* The pid in a temp name "<anything>.tmp.<pid>.<n>", or 0 if name is not one. */
long mh_fs_temp_pid(const char *name);

#endif
