/* fuzz.h: helpers shared by the libFuzzer targets in fuzz/ — the parsers
 * take paths, so each input is written to one scratch file first.
 * Layer: fuzz (test code over engine/ headers; no lua.h here). */
#ifndef MH_FUZZ_H
#define MH_FUZZ_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A scratch folder made once per process (removed by run.sh's tmp dir). */
static inline const char *fuzz_dir(void)
{
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/mh-fuzz-XXXXXX");
        if (!mkdtemp(dir)) { perror("fuzz: mkdtemp"); abort(); }
    }
    return dir;
}

/* Writes data to <fuzz_dir>/name and returns the path (static storage). */
static inline const char *fuzz_write(const char *name, const uint8_t *data, size_t size)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror("fuzz: cannot write the scratch file");
        abort();
    }
    return path;
}

/* $MOONHUB_TEST_DATA (default ../shared) + "/" + rel; aborts with a clear
 * message when the file is not there, since a target without its vocabulary
 * would fuzz nothing. */
static inline const char *fuzz_shared(const char *rel)
{
    static char path[1024];
    const char *root = getenv("MOONHUB_TEST_DATA");
    snprintf(path, sizeof path, "%s/%s", root && *root ? root : "../shared", rel);
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "fuzz: %s is missing (set MOONHUB_TEST_DATA to the shared folder)\n", path);
        exit(2);
    }
    return path;
}

#endif
