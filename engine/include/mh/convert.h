/* convert.h: writes a GGUF model from a Hugging Face folder (config.json,
 * tokenizer.json + tokenizer_config.json, safetensors shards) with the
 * metadata keys and tensor names llama.cpp's convert_hf_to_gguf.py writes.
 * Layer: engine/model (pure C11). Uses hf_config (shared with the folder
 * loader), safetensors, tokenizer, gguf_write and quantize's type rules. */
#ifndef MH_CONVERT_H
#define MH_CONVERT_H

#include <stdint.h>
#include "mh/dtype.h"
#include "mh/err.h"
#include "mh/quantize.h"

typedef struct mh_convert_opts {
    mh_ftype ftype;            /* F32, F16, BF16, Q8_0, Q4_K_M...: llama-quantize's rules */
    const char *name;          /* general.name; NULL: the folder's base name */
    mh_progress_fn progress;   /* optional: (tensors written, tensor count) after each */
    void *progress_ud;
} mh_convert_opts;

typedef struct mh_convert_stats {
    char arch[32];             /* general.architecture written */
    int64_t n_tensors, n_vocab;
    int64_t n_by_type[MH_DTYPE_COUNT];
    uint64_t file_bytes;
    double seconds;
} mh_convert_stats;

/* Converts folder dir to out_path. The file is written under a temporary
 * name beside out_path, synced and renamed only when complete, so no
 * failure (a bad folder, a full disk) leaves a partial file under
 * out_path. MH_EIO for files that cannot be read or written, MH_EFORMAT
 * naming the key or tensor for a folder this cannot convert (unknown
 * architecture with the supported list, missing or mis-shaped tensors,
 * missing shards). stats may be NULL. */
int mh_convert_hf(const char *dir, const char *out_path, const mh_convert_opts *opts,
                  mh_convert_stats *stats, mh_err *err);

#endif
