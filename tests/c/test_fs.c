/* test_fs.c: mh/fs.h — atomic whole-file writes leave the new content and no
 * temp file; a failed write keeps the old content; temp names parse to their
 * writer's pid; dead pids read as dead. Layer: tests (C only). */
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "harness.h"
#include "mh/fs.h"

static char dir[64];

static int count_entries(const char *d)
{
    DIR *h = opendir(d);
    int n = 0;
    struct dirent *e;
    while (h && (e = readdir(h))) n += e->d_name[0] != '.';
    if (h) closedir(h);
    return n;
}

static void read_back(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    buf[n] = 0;
    if (f) fclose(f);
}

static void test_write_replaces_whole(void)
{
    char path[128], buf[64];
    snprintf(path, sizeof path, "%s/a.txt", dir);
    mh_err err = { 0 };
    CHECK(mh_fs_write_atomic(path, "old content", 11, &err) == MH_OK);
    CHECK(mh_fs_write_atomic(path, "new", 3, &err) == MH_OK);
    read_back(path, buf, sizeof buf);
    CHECK(!strcmp(buf, "new"));
    CHECK(count_entries(dir) == 1);               /* no temp file left */
}

static void test_failed_write_keeps_old(void)
{
    char path[128], buf[64];
    snprintf(path, sizeof path, "%s/missing-dir/b.txt", dir);
    mh_err err = { 0 };
    CHECK(mh_fs_write_atomic(path, "x", 1, &err) == MH_EIO);
    CHECK(strstr(err.msg, "cannot create") != NULL);
    /* a directory in the way of the rename: the old entry stays, no temp */
    snprintf(path, sizeof path, "%s/sub", dir);
    CHECK(mkdir(path, 0755) == 0);
    char inner[160];
    snprintf(inner, sizeof inner, "%s/keep", path);
    CHECK(mh_fs_write_atomic(inner, "kept", 4, &err) == MH_OK);
    CHECK(mh_fs_write_atomic(path, "y", 1, &err) == MH_EIO);
    read_back(inner, buf, sizeof buf);
    CHECK(!strcmp(buf, "kept"));
    CHECK(count_entries(dir) == 2);               /* a.txt and sub only */
    CHECK(mh_fs_write_atomic(NULL, "x", 1, NULL) == MH_EINVAL);   /* err may be NULL */
}

static void test_temp_names(void)
{
    CHECK(mh_fs_temp_pid("model.safetensors.tmp.4242.7") == 4242);
    CHECK(mh_fs_temp_pid("a.tmp.b.tmp.12.0") == 12);
    CHECK(mh_fs_temp_pid("a.tmp.12") == 0);
    CHECK(mh_fs_temp_pid("a.tmp.12.") == 0);
    CHECK(mh_fs_temp_pid("a.tmp..3") == 0);
    CHECK(mh_fs_temp_pid("a.tmp.12.3x") == 0);
    CHECK(mh_fs_temp_pid("plain.txt") == 0);
    char path[128], tmp[256];
    snprintf(path, sizeof path, "%s/c.bin", dir);
    int fd = mh_fs_open_temp(path, tmp, sizeof tmp, NULL);
    CHECK(fd >= 0);
    close(fd);
    CHECK(mh_fs_temp_pid(tmp) == (long)getpid());  /* its own names parse back */
    CHECK(unlink(tmp) == 0);
    CHECK(mh_fs_open_temp(path, tmp, 8, NULL) < 0);   /* too long for the buffer */
}

static void test_pid_alive(void)
{
    CHECK(mh_fs_pid_alive((long)getpid()));
    pid_t child = fork();
    if (child == 0) _exit(0);
    CHECK(child > 0);
    /* dead but not reaped: a zombie, whose temp files are stale already */
    for (int i = 0; i < 30000 && mh_fs_pid_alive((long)child); i++) usleep(1000);
    CHECK(!mh_fs_pid_alive((long)child));
    waitpid(child, NULL, 0);                       /* reaped: the pid is free now */
    CHECK(!mh_fs_pid_alive((long)child));
    CHECK(!mh_fs_pid_alive(0));
    CHECK(!mh_fs_pid_alive(-1));
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/mh_test_fs.XXXXXX");
    if (!mkdtemp(dir)) return 1;
    TEST_RUN(test_write_replaces_whole);
    TEST_RUN(test_failed_write_keeps_old);
    TEST_RUN(test_temp_names);
    TEST_RUN(test_pid_alive);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return TEST_REPORT();
}
