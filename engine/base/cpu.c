/* cpu.c: cpuid feature detection and the kernel path in force (mh/cpu.h).
 * Layer: engine/base. AVX-512 needs F+BW+VL+DQ and OS support for the
 * ZMM state (XGETBV), AVX2 needs FMA and F16C too. */
#include <stdlib.h>
#include <string.h>
#include <cpuid.h>
#include "mh/cpu.h"

static int g_level = -1;
static int g_detected = -1;
static bool g_vnni, g_bf16;

static unsigned long long xgetbv0(void)
{
    unsigned eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

mh_cpu_level mh_cpu_detect(void)
{
    if (g_detected >= 0) return (mh_cpu_level)g_detected;
    unsigned a, b, c, d;
    int level = MH_CPU_REF;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        bool osxsave = c & bit_OSXSAVE, avx = c & bit_AVX, fma = c & bit_FMA, f16c = c & bit_F16C;
        unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
        bool ymm = (xcr0 & 0x6) == 0x6, zmm = (xcr0 & 0xe6) == 0xe6;
        if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
            bool avx2 = b & bit_AVX2;
            bool f512 = b & bit_AVX512F, bw = b & bit_AVX512BW, vl = b & bit_AVX512VL,
                 dq = b & bit_AVX512DQ;
            g_vnni = c & bit_AVX512VNNI;
            if (avx && avx2 && fma && f16c && ymm) level = MH_CPU_AVX2;
            if (level == MH_CPU_AVX2 && f512 && bw && vl && dq && zmm) level = MH_CPU_AVX512;
            if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) g_bf16 = a & (1u << 5);
            if (level != MH_CPU_AVX512) g_vnni = g_bf16 = false;
        }
    }
    g_detected = level;
    return (mh_cpu_level)level;
}

int mh_cpu_parse_level(const char *name, mh_cpu_level best, mh_cpu_level *out, mh_err *err)
{
    int want;
    if (!name || !*name) want = best;
    else if (!strcmp(name, "ref") || !strcmp(name, "scalar")) want = MH_CPU_REF;
    else if (!strcmp(name, "avx2")) want = MH_CPU_AVX2;
    else if (!strcmp(name, "avx512")) want = MH_CPU_AVX512;
    else return mh_err_set(err, MH_EINVAL, "MOONHUB_CPU=%s is not a kernel path: use ref, avx2 or avx512", name);
    /* a silent downgrade would let a test compare a path with itself */
    if (want > (int)best)
        return mh_err_set(err, MH_EINVAL, "MOONHUB_CPU=%s: this CPU lacks it (best path here: %s); "
                          "unset MOONHUB_CPU or pick a lower path", name, mh_cpu_level_name(best));
    if (out) *out = (mh_cpu_level)want;
    return MH_OK;
}

int mh_cpu_check_env(mh_err *err)
{
    return mh_cpu_parse_level(getenv("MOONHUB_CPU"), mh_cpu_detect(), NULL, err);
}

mh_cpu_level mh_cpu_level_get(void)
{
    if (g_level >= 0) return (mh_cpu_level)g_level;
    mh_cpu_level best = mh_cpu_detect(), want = best;
    if (mh_cpu_parse_level(getenv("MOONHUB_CPU"), best, &want, NULL) != MH_OK) want = best;
    g_level = (int)want;
    return (mh_cpu_level)g_level;
}

void mh_cpu_level_set(mh_cpu_level l)
{
    int best = mh_cpu_detect();
    g_level = (int)l < best ? (int)l : best;
}

const char *mh_cpu_level_name(mh_cpu_level l)
{
    switch (l) {
    case MH_CPU_AVX512: return "avx512";
    case MH_CPU_AVX2: return "avx2";
    default: return "ref";
    }
}

bool mh_cpu_has_avx512_vnni(void) { mh_cpu_detect(); return g_vnni; }
bool mh_cpu_has_avx512_bf16(void) { mh_cpu_detect(); return g_bf16; }
