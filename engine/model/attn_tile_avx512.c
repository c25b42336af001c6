/* attn_tile_avx512.c: the SIMD kernels of the tiled prompt attention
 * (attn.c). Layer: engine/model; compiled with the AVX-512 flags and called
 * only when the CPU level in force is AVX-512. Every score and every mixed
 * value sees the fused operations, lanes and trees of the per-query
 * kernels (kernels_llama_simd.h), so the two paths agree to the bit. */
#include <immintrin.h>
#include "attn.h"

/* kt (hd, 16) = rows (16, hd)ᵀ, 16 columns at a time: four butterfly stages
 * swap bit s of the row index with bit s of the column index. */
void mh_attn_transpose16_avx512(const float *rows, int64_t hd, float *kt)
{
    __m512i ia[4], ib[4];
    for (int s = 0; s < 4; s++) {
        int bit = 1 << s, a[16], b[16];
        for (int c = 0; c < 16; c++) {
            a[c] = (c & bit) ? 16 + (c & ~bit) : c;
            b[c] = (c & bit) ? 16 + c : (c | bit);
        }
        ia[s] = _mm512_loadu_si512(a);
        ib[s] = _mm512_loadu_si512(b);
    }
    for (int64_t c = 0; c < hd; c += 16) {
        __m512 r[16];
        _Pragma("GCC unroll 16") for (int j = 0; j < 16; j++) r[j] = _mm512_loadu_ps(rows + j * hd + c);
        _Pragma("GCC unroll 4") for (int s = 0; s < 4; s++) {
            const int bit = 1 << s;
            _Pragma("GCC unroll 16") for (int j = 0; j < 16; j++) {
                if (j & bit) continue;
                const __m512 x = r[j], y = r[j | bit];
                r[j] = _mm512_permutex2var_ps(x, ia[s], y);
                r[j | bit] = _mm512_permutex2var_ps(x, ib[s], y);
            }
        }
        _Pragma("GCC unroll 16") for (int j = 0; j < 16; j++) _mm512_storeu_ps(kt + (c + j) * 16, r[j]);
    }
}

/* The lane tree of ggml's 16-lane reduction, one score (or value) per lane. */
static inline __m512 tree16(const __m512 a[16])
{
    __m512 t[8];
    _Pragma("GCC unroll 8") for (int l = 0; l < 8; l++) t[l] = _mm512_add_ps(a[l], a[l + 8]);
    const __m512 s0 = _mm512_add_ps(t[0], t[4]), s1 = _mm512_add_ps(t[1], t[5]);
    const __m512 s2 = _mm512_add_ps(t[2], t[6]), s3 = _mm512_add_ps(t[3], t[7]);
    return _mm512_add_ps(_mm512_add_ps(s0, s2), _mm512_add_ps(s1, s3));
}

/* s[16 b + j] = (q . key j of block b) * scale: accumulator l sums the
 * products of dimensions l, l + 16, ... in order, one position per lane. */
void mh_attn_scores_avx512(const float *kt, int64_t nblk, int64_t hd, const float *q, float scale, float *s)
{
    const __m512 sc = _mm512_set1_ps(scale);
    for (int64_t b = 0; b < nblk; b++) {
        const float *k = kt + b * 16 * hd;
        __m512 a[16];
        _Pragma("GCC unroll 16") for (int l = 0; l < 16; l++) a[l] = _mm512_setzero_ps();
        for (int64_t c = 0; c < hd; c += 16)
            _Pragma("GCC unroll 16") for (int l = 0; l < 16; l++)
                a[l] = _mm512_fmadd_ps(_mm512_loadu_ps(k + (c + l) * 16), _mm512_set1_ps(q[c + l]), a[l]);
        _mm512_storeu_ps(s + b * 16, _mm512_mul_ps(tree16(a), sc));
    }
}

/* acc (hd, 16) += the values of nblk blocks of 16 positions (vt: (hd, 16)
 * each, positions in lanes) weighted by w: lane l of dimension d sums the
 * products of its positions in order, as the per-query path's lane l does
 * (its lanes count from the row's first visible position, these from the
 * tile's; the lane tree gives the same sum under any rotation of the lanes).
 * Positions a row does not see have weight 0 and add exact zeros. */
void mh_attn_mix_avx512(float *acc, const float *vt, int64_t nblk, int64_t hd, const float *w)
{
    for (int64_t c = 0; c < hd; c += 16) {
        __m512 a[16];
        _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++) a[i] = _mm512_loadu_ps(acc + (c + i) * 16);
        for (int64_t b = 0; b < nblk; b++) {
            const __m512 wb = _mm512_loadu_ps(w + b * 16);
            const float *v = vt + b * 16 * hd + c * 16;
            _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++)
                a[i] = _mm512_fmadd_ps(_mm512_loadu_ps(v + i * 16), wb, a[i]);
        }
        _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++) _mm512_storeu_ps(acc + (c + i) * 16, a[i]);
    }
}

/* out[d] = the lane tree of acc (hd, 16) row d. */
void mh_attn_mix_out_avx512(const float *acc, int64_t hd, float *out)
{
    for (int64_t c = 0; c < hd; c += 16) {
        float t[256];
        mh_attn_transpose16_avx512(acc + c * 16, 16, t);   /* (lanes, 16 dims) */
        __m512 a[16];
        _Pragma("GCC unroll 16") for (int l = 0; l < 16; l++) a[l] = _mm512_loadu_ps(t + l * 16);
        _mm512_storeu_ps(out + c, tree16(a));
    }
}

/* The largest of s[0..n) (a NaN is passed over, as the scalar `s > mx ? s : mx`). */
float mh_attn_row_max_avx512(const float *s, int64_t n)
{
    __m512 m = _mm512_set1_ps(-INFINITY);
    int64_t p = 0;
    for (; p + 16 <= n; p += 16) m = _mm512_max_ps(_mm512_loadu_ps(s + p), m);
    float mx = _mm512_reduce_max_ps(m);
    for (; p < n; p++) mx = s[p] > mx ? s[p] : mx;
    return mx;
}

void mh_attn_row_scale_avx512(float *s, int64_t n, float k)
{
    const __m512 kv = _mm512_set1_ps(k);
    int64_t p = 0;
    for (; p + 16 <= n; p += 16) _mm512_storeu_ps(s + p, _mm512_mul_ps(_mm512_loadu_ps(s + p), kv));
    for (; p < n; p++) s[p] *= k;
}
