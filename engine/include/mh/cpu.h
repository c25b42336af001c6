/* cpu.h: run-time CPU feature detection and the kernel path in force.
 * Layer: engine/base. MOONHUB_CPU=ref|avx2|avx512 forces a path (tests use
 * it to compare paths); a forced path the CPU lacks, or an unknown name, is
 * an error (mh_cpu_check_env, which the host runs at start-up). */
#ifndef MH_CPU_H
#define MH_CPU_H

#include <stdbool.h>
#include "mh/err.h"

typedef enum mh_cpu_level { MH_CPU_REF = 0, MH_CPU_AVX2 = 1, MH_CPU_AVX512 = 2 } mh_cpu_level;

mh_cpu_level mh_cpu_detect(void);          /* best level this CPU supports */
mh_cpu_level mh_cpu_level_get(void);       /* level in force (env or detect) */
/* name ("ref"/"scalar", "avx2", "avx512"; NULL or "": best) -> *out; MH_EINVAL
 * for an unknown name or a level above best. */
int mh_cpu_parse_level(const char *name, mh_cpu_level best, mh_cpu_level *out, mh_err *err);
int mh_cpu_check_env(mh_err *err);         /* MOONHUB_CPU against mh_cpu_detect() */
void mh_cpu_level_set(mh_cpu_level l);     /* tests; clamps to mh_cpu_detect() */
const char *mh_cpu_level_name(mh_cpu_level l);
bool mh_cpu_has_avx512_vnni(void);
bool mh_cpu_has_avx512_bf16(void);

#endif
