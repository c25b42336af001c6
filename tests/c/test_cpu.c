/* test_cpu.c: MOONHUB_CPU parsing (mh/cpu.h): a forced path the CPU lacks,
 * or an unknown name, is an error, never a silent downgrade (which would let
 * a cross-path test compare a path with itself). Layer: tests (C). */
#include "harness.h"
#include "mh/cpu.h"

static void test_parse_levels(void)
{
    mh_cpu_level l = MH_CPU_AVX512;
    CHECK(mh_cpu_parse_level("ref", MH_CPU_AVX2, &l, NULL) == MH_OK && l == MH_CPU_REF);
    CHECK(mh_cpu_parse_level("scalar", MH_CPU_REF, &l, NULL) == MH_OK && l == MH_CPU_REF);
    CHECK(mh_cpu_parse_level("avx2", MH_CPU_AVX512, &l, NULL) == MH_OK && l == MH_CPU_AVX2);
    CHECK(mh_cpu_parse_level("avx512", MH_CPU_AVX512, &l, NULL) == MH_OK && l == MH_CPU_AVX512);
    CHECK(mh_cpu_parse_level(NULL, MH_CPU_AVX2, &l, NULL) == MH_OK && l == MH_CPU_AVX2);
    CHECK(mh_cpu_parse_level("", MH_CPU_REF, &l, NULL) == MH_OK && l == MH_CPU_REF);
}

static void test_missing_level_is_an_error(void)
{
    mh_err err = {0};
    mh_cpu_level l = MH_CPU_REF;
    CHECK(mh_cpu_parse_level("avx512", MH_CPU_AVX2, &l, &err) == MH_EINVAL);
    CHECK(l == MH_CPU_REF);   /* untouched */
    CHECK_MSG(strstr(err.msg, "lacks") && strstr(err.msg, "avx2"), "%s", err.msg);
    CHECK(mh_cpu_parse_level("avx2", MH_CPU_REF, &l, &err) == MH_EINVAL);
    CHECK(mh_cpu_parse_level("AVX512", MH_CPU_AVX512, &l, &err) == MH_EINVAL);
    CHECK_MSG(strstr(err.msg, "ref, avx2 or avx512"), "%s", err.msg);
    CHECK(mh_cpu_parse_level("sse", MH_CPU_AVX512, &l, NULL) == MH_EINVAL);
}

int main(void)
{
    TEST_RUN(test_parse_levels);
    TEST_RUN(test_missing_level_is_an_error);
    return TEST_REPORT();
}
