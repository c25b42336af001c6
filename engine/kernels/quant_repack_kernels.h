/* quant_repack_kernels.h: private declarations of the packed q4_0 / q8_0 kernels
 * (layout in mh/quant_repack.h) that quant_repack.c wires into its level
 * table. Layer: engine/kernels. The _ref one is always built; _avx2 and
 * _avx512 live in files compiled for that ISA only. */
#ifndef MH_QUANT_REPACK_KERNELS_H
#define MH_QUANT_REPACK_KERNELS_H

#include "mh/quant_repack.h"

/* one block of a group: 16 rows x 16 nibble bytes, then 16 fp16 scales */
#define MH_RP_QS 256
#define MH_RP_D 32
#define MH_RP_BLOCK (MH_RP_QS + MH_RP_D)
/* q8_0: 16 rows x 32 level bytes (+ 128), then the 16 fp16 scales */
#define MH_RP8_QS 512
#define MH_RP8_BLOCK (MH_RP8_QS + MH_RP_D)

#define MH_K_RGEMM(name) void name(int64_t n, const uint8_t *wp, int64_t G, const uint8_t *x, \
                                   size_t x_row, const mh_repack_xsum *xs, int64_t C, float *y, \
                                   int64_t ldy)
MH_K_RGEMM(mh_k_rgemm_q4_0x16_ref);
MH_K_RGEMM(mh_k_rgemm_q4_0x16_avx2);
MH_K_RGEMM(mh_k_rgemm_q4_0x16_avx512);
MH_K_RGEMM(mh_k_rgemm_q4_0x16_avx512vnni);
#define MH_K_RGEMM8(name) void name(int64_t n, const uint8_t *wp, int64_t G, const uint8_t *x, \
                                    size_t x_row, const mh_repack_xsum8 *xs, int64_t C, float *y, \
                                    int64_t ldy)
MH_K_RGEMM8(mh_k_rgemm_q8_0x16_ref);
MH_K_RGEMM8(mh_k_rgemm_q8_0x16_avx2);
MH_K_RGEMM8(mh_k_rgemm_q8_0x16_avx512);
MH_K_RGEMM8(mh_k_rgemm_q8_0x16_avx512vnni);

#endif
