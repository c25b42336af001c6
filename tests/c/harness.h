/* harness.h: the tiny C test harness. Each test program calls TEST_RUN for
 * its cases and ends with TEST_REPORT(), which prints "N passed, N failed,
 * N skipped" last and returns the exit code. A case fails on the first
 * failed CHECK. A case that needs missing shared data calls TEST_SKIP: it
 * counts as skipped, and as failed under MOONHUB_REQUIRE_TEST_DATA=1 (CI). */
#ifndef MH_TEST_HARNESS_H
#define MH_TEST_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <unistd.h>

static int test_passed, test_failed, test_case_failed, test_case_skipped;
__attribute__((unused)) static int test_skipped;

#define CHECK(cond) do { if (!(cond)) { \
    fprintf(stderr, "  FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
    test_case_failed = 1; return; } } while (0)

#define CHECK_MSG(cond, ...) do { if (!(cond)) { \
    fprintf(stderr, "  FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); \
    test_case_failed = 1; return; } } while (0)

/* |got - want| <= atol + rtol * |want| */
#define CHECK_CLOSE(got, want, atol, rtol) do { double g_ = (got), w_ = (want); \
    if (!(fabs(g_ - w_) <= (atol) + (rtol) * fabs(w_))) { \
        fprintf(stderr, "  FAIL %s:%d: %s = %.9g, want %.9g\n", __FILE__, __LINE__, #got, g_, w_); \
        test_case_failed = 1; return; } } while (0)

#define TEST_RUN(fn) do { test_case_failed = test_case_skipped = 0; fn(); \
    if (test_case_failed) { test_failed++; fprintf(stderr, "not ok %s\n", #fn); } \
    else if (test_case_skipped) { test_skipped++; printf("skip %s\n", #fn); } \
    else { test_passed++; printf("ok %s\n", #fn); } } while (0)

/* The one way a C case says "needs X": ends the case as skipped, or as
 * failed under MOONHUB_REQUIRE_TEST_DATA=1, where every need must be met. */
#define TEST_SKIP(why) do { const char *r_ = getenv("MOONHUB_REQUIRE_TEST_DATA"); \
    if (r_ && !strcmp(r_, "1")) { fprintf(stderr, "  FAIL: test data required: %s\n", why); \
        test_case_failed = 1; return; } \
    printf("  skip: %s\n", why); test_case_skipped = 1; return; } while (0)

#define TEST_REPORT() (printf("%d passed, %d failed, %d skipped\n", test_passed, test_failed, \
    test_skipped), test_failed ? 1 : 0)

/* Path of a file under the shared test data ($MOONHUB_TEST_DATA, default
 * ../shared); NULL when it is not there. buf must hold 4096 bytes. */
static inline const char *test_data_path(const char *rel, char *buf)
{
    const char *root = getenv("MOONHUB_TEST_DATA");
    snprintf(buf, 4096, "%s/%s", root && *root ? root : "../shared", rel);
    return access(buf, R_OK) == 0 ? buf : NULL;
}

#endif
