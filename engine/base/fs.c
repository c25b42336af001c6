/* fs.c: atomic whole-file writes through "<path>.tmp.<pid>.<n>" temp files,
 * and the pid checks that tell a crashed writer's temp files from a live one's.
 * Layer: engine/base (pure C11 + POSIX); used by bindings and writers. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "mh/fs.h"

int mh_fs_open_temp(const char *path, char *tmp, size_t cap, mh_err *err)
{
    static _Atomic unsigned counter;
    for (int tries = 0; tries < 100; tries++) {
        int n = snprintf(tmp, cap, "%s.tmp.%ld.%u", path, (long)getpid(), counter++);
        if (n < 0 || (size_t)n >= cap) {
            mh_err_set(err, MH_EINVAL, "path too long: %s", path);
            return -1;
        }
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) return fd;
        if (errno != EEXIST) {
            mh_err_set(err, MH_EIO, "cannot create %s: %s", tmp, strerror(errno));
            return -1;
        }
    }
    mh_err_set(err, MH_EIO, "cannot create a temporary file next to %s", path);
    return -1;
}

/* The directory entry of a rename lives in the directory: sync it too, or a
 * power cut may bring back the old name. Best effort (some file systems
 * refuse fsync on a directory). */
static void sync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else if ((size_t)(slash - path) < sizeof dir) snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

int mh_fs_commit_temp(int fd, const char *tmp, const char *path, mh_err *err)
{
    int rc = MH_OK;
    if (fsync(fd) != 0) rc = mh_err_set(err, MH_EIO, "cannot sync %s: %s", tmp, strerror(errno));
    if (close(fd) != 0 && rc == MH_OK)
        rc = mh_err_set(err, MH_EIO, "cannot close %s: %s", tmp, strerror(errno));
    if (rc == MH_OK && rename(tmp, path) != 0)
        rc = mh_err_set(err, MH_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (rc != MH_OK) unlink(tmp);
    else sync_dir(path);
    return rc;
}

int mh_fs_write_atomic(const char *path, const void *data, size_t n, mh_err *err)
{
    if (!path || !*path || (n > 0 && !data)) return mh_err_set(err, MH_EINVAL, "write_atomic: bad arguments");
    char tmp[4200];
    int fd = mh_fs_open_temp(path, tmp, sizeof tmp, err);
    if (fd < 0) return err ? err->code : MH_EIO;
    const char *p = data;
    while (n > 0) {
        size_t chunk = n > ((size_t)1 << 30) ? (size_t)1 << 30 : n;
        ssize_t k = write(fd, p, chunk);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            int rc = mh_err_set(err, MH_EIO, "cannot write %s: %s", tmp, k < 0 ? strerror(errno) : "short write");
            close(fd);
            unlink(tmp);
            return rc;
        }
        p += k;
        n -= (size_t)k;
    }
    return mh_fs_commit_temp(fd, tmp, path, err);
}

/* A zombie (killed, not yet reaped by its parent) still answers kill(0) but
 * writes nothing more: read its state from /proc where there is one. */
static int is_zombie(long pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *close_paren = strrchr(buf, ')');   /* the name may hold spaces and ')' */
    return close_paren && close_paren[1] == ' ' && close_paren[2] == 'Z';
}

int mh_fs_pid_alive(long pid)
{
    if (pid <= 0) return 0;
    if (kill((pid_t)pid, 0) != 0 && errno != EPERM) return 0;   /* EPERM: alive, not ours */
    return !is_zombie(pid);
}

long mh_fs_temp_pid(const char *name)
{
    /* the last ".tmp." followed by digits "." digits to the end */
    const char *hit = NULL;
    for (const char *s = strstr(name, ".tmp."); s; s = strstr(s + 1, ".tmp.")) hit = s;
    if (!hit) return 0;
    const char *p = hit + 5, *q = p;
    while (*q >= '0' && *q <= '9') q++;
    if (q == p || *q != '.' || q - p > 18) return 0;
    const char *r = q + 1, *e = r;
    while (*e >= '0' && *e <= '9') e++;
    if (e == r || *e) return 0;
    return strtol(p, NULL, 10);
}
