/* kernels.c: the per-level kernel tables and their selection (mh/kernels.h).
 * Layer: engine/kernels. The one place that maps a CPU level to functions;
 * callers fetch the table once per operation, never per element. */
#include "mh/kernels.h"

#define MH_K_TABLE(lvl, sfx) { lvl, \
    mh_k_add_f32_##sfx, mh_k_sub_f32_##sfx, mh_k_mul_f32_##sfx, mh_k_div_f32_##sfx, \
    mh_k_scale_f32_##sfx, \
    mh_k_exp_f32_##sfx, mh_k_silu_f32_##sfx, mh_k_gelu_f32_##sfx, mh_k_tanh_f32_##sfx, \
    mh_k_sigmoid_f32_##sfx, \
    mh_k_sum_f32_##sfx, mh_k_max_f32_##sfx, mh_k_dot_f32_##sfx, \
    mh_k_softmax_f32_##sfx, mh_k_rms_norm_f32_##sfx, \
    mh_k_f16_to_f32_##sfx, mh_k_f32_to_f16_##sfx, mh_k_bf16_to_f32_##sfx, mh_k_f32_to_bf16_##sfx, \
    mh_k_softmax_exp_llama_##sfx, mh_k_swiglu_llama_##sfx, mh_k_attn_score_llama_##sfx, \
    mh_k_attn_mix_llama_##sfx, mh_k_attn_score_step_llama_##sfx, mh_k_attn_mix_step_llama_##sfx, \
    mh_k_attn_scores_step_llama_##sfx }

static const mh_kernels g_tables[3] = {
    MH_K_TABLE(MH_CPU_REF, ref),
    MH_K_TABLE(MH_CPU_AVX2, avx2),
    MH_K_TABLE(MH_CPU_AVX512, avx512),
};

const mh_kernels *mh_kernels_for(mh_cpu_level l)
{
    mh_cpu_level best = mh_cpu_detect();
    if ((int)l > (int)best) l = best;
    if ((int)l < 0) l = MH_CPU_REF;
    return &g_tables[l];
}

const mh_kernels *mh_kernels_get(void)
{
    return &g_tables[mh_cpu_level_get()];
}
