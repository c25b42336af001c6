/* quantize.h: converts a GGUF model to another quantization (llama-quantize's
 * job): copies the metadata, picks each tensor's type by llama.cpp's rules
 * (the _M mixes, output/token_embd, row-size fallbacks) and writes it.
 * Layer: engine/model (pure C11). Uses gguf (read), gguf_write, quant. */
#ifndef MH_QUANTIZE_H
#define MH_QUANTIZE_H

#include <stdbool.h>
#include <stdint.h>
#include "mh/dtype.h"
#include "mh/err.h"

/* File types, numbered as llama.cpp's LLAMA_FTYPE (general.file_type). */
typedef enum mh_ftype {
    MH_FTYPE_ALL_F32 = 0, MH_FTYPE_F16 = 1, MH_FTYPE_Q4_0 = 2, MH_FTYPE_Q4_1 = 3,
    MH_FTYPE_Q8_0 = 7, MH_FTYPE_Q5_0 = 8, MH_FTYPE_Q5_1 = 9,
    MH_FTYPE_Q4_K_S = 14, MH_FTYPE_Q4_K_M = 15, MH_FTYPE_Q5_K_S = 16, MH_FTYPE_Q5_K_M = 17,
    MH_FTYPE_Q6_K = 18, MH_FTYPE_BF16 = 32,
} mh_ftype;

/* "Q8_0", "q4_k_m", "F16", ... -> ftype; -1 when unknown. */
int mh_ftype_from_name(const char *name);
/* "Q4_K_M" etc.; "?" for an ftype this module does not write. */
const char *mh_ftype_name(int ftype);
/* Comma-separated list of the names mh_ftype_from_name accepts. */
const char *mh_ftype_names(void);
/* The base tensor type of an ftype (Q4_K for Q4_K_M). */
mh_dtype mh_ftype_base_type(mh_ftype ftype);

/* What the type rules need to know about the whole model. */
typedef struct mh_quant_model_info {
    int n_layer;          /* number of attn_v tensors (= layers) */
    bool has_output;      /* an output.weight exists (else token_embd is tied) */
} mh_quant_model_info;

/* Whether a tensor is quantized at all (2-D+ weights, not norms/embeddings
 * of positions; as llama-quantize). */
bool mh_quantize_wants(const char *name, int n_dims);
/* The type llama.cpp's llama_tensor_get_type picks for a weight with row
 * length ne0, including the fallback when ne0 does not fit the block size
 * (k-quants -> q5_0/q5_1/q8_0, then F16). *fallback is set when one was used. */
mh_dtype mh_quantize_pick_type(mh_ftype ftype, const char *name, int64_t ne0,
                               const mh_quant_model_info *mi, bool *fallback);

typedef struct mh_quantize_stats {
    int64_t n_tensors;
    int64_t n_by_type[MH_DTYPE_COUNT];   /* output tensors per type */
    int64_t n_fallback;                  /* tensors that needed a fallback type */
    uint64_t bytes_in, bytes_out;        /* tensor data bytes */
    uint64_t file_bytes;                 /* output file size */
    double seconds;
} mh_quantize_stats;

/* Reads in_path, writes out_path (atomically; see gguf_write.h) with every
 * 2-D weight converted per ftype and everything else copied. stats may be
 * NULL. MH_EIO/MH_EFORMAT for file problems, MH_ETYPE for a tensor type
 * that cannot be converted, MH_EINVAL for a bad ftype. */
int mh_quantize_file(const char *in_path, const char *out_path, mh_ftype ftype,
                     mh_quantize_stats *stats, mh_err *err);

/* A progress hook for long file jobs (quantize, create): called on the
 * caller's thread after each written chunk with bytes done of total; the
 * last call has done == total. ud is the caller's; NULL means no hook. */
typedef void (*mh_progress_fn)(void *ud, uint64_t done, uint64_t total);
/* mh_quantize_file with a progress hook (done/total: input tensor bytes). */
int mh_quantize_file_cb(const char *in_path, const char *out_path, mh_ftype ftype,
                        mh_progress_fn progress, void *ud, mh_quantize_stats *stats, mh_err *err);

/* dst: rows * mh_dtype_row_size(t, n) bytes <- src: (rows, n) f32, rows
 * spread over the thread pool. Same statuses as mh_quantize_row. */
int mh_quantize_rows(mh_dtype t, const float *src, void *dst, int64_t rows, int64_t n);

#endif
