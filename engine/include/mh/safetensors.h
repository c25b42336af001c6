/* safetensors.h: read (mmap, zero-copy) and write Hugging Face .safetensors
 * files, including sharded checkpoints (model.safetensors.index.json).
 * Layer: engine/model (pure C11; cJSON parses the header).
 *
 * File layout: u64 LE header length N, N bytes of JSON (padded with spaces),
 * then the data section. The JSON maps tensor names to {dtype, shape,
 * data_offsets: [begin, end]} (offsets relative to the data section) and may
 * hold "__metadata__": {string: string}. */
#ifndef MH_SAFETENSORS_H
#define MH_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "mh/err.h"
#include "mh/dtype.h"
#include "mh/tensor.h"

/* ===== reader ===== */
typedef struct mh_safetensors mh_safetensors;

typedef struct mh_st_info {
    const char *name;
    int dtype;                     /* mh_dtype, or -1 when moonhub lacks it */
    const char *file_dtype;        /* the file's spelling: "BF16", "F64"... */
    int ndim;
    int64_t shape[MH_MAX_DIMS];
    uint64_t begin, end;           /* bytes, relative to the shard's data section */
    int shard;                     /* index into the shard list */
} mh_st_info;

/* Opens path, which may be a .safetensors file, a model.safetensors.index.json
 * (sharded checkpoint) or a directory holding one of the two. Every header and
 * offset is checked against the file size; a corrupt or truncated file gives
 * MH_EFORMAT naming the problem. Returns a new handle (NULL with err set). */
mh_safetensors *mh_safetensors_open(const char *path, mh_err *err);
/* MH_OK while every shard still holds what was mapped; MH_EIO naming the
 * first truncated one (its reads past the new end gave zeros: mh/mapguard.h). */
int mh_safetensors_check(const mh_safetensors *st, mh_err *err);
/* Drops the handle; tensors taken from it stay valid (they keep the map). */
void mh_safetensors_close(mh_safetensors *st);   /* NULL is a no-op */

int mh_safetensors_count(const mh_safetensors *st);           /* tensors, all shards */
const mh_st_info *mh_safetensors_info(const mh_safetensors *st, int i);  /* name order; NULL if out of range */
int mh_safetensors_find(const mh_safetensors *st, const char *name);     /* index or -1 */
int mh_safetensors_shard_count(const mh_safetensors *st);
const char *mh_safetensors_shard_path(const mh_safetensors *st, int shard);

/* Tensor i as a view on the shard's mapping (copy-on-write, so writing to it
 * never changes the file). Copies only when the file places the tensor at an
 * offset misaligned for its dtype. Returns a new reference; MH_ETYPE for a
 * dtype moonhub does not support (F64, BOOL...). */
mh_tensor *mh_safetensors_tensor(mh_safetensors *st, int i, mh_err *err);
/* Same, by name; MH_ERANGE when there is no such tensor. */
mh_tensor *mh_safetensors_get(mh_safetensors *st, const char *name, mh_err *err);

/* __metadata__ of the (first) file: n string pairs, in file order. */
int mh_safetensors_meta_count(const mh_safetensors *st);
const char *mh_safetensors_meta_key(const mh_safetensors *st, int i);
const char *mh_safetensors_meta_value(const mh_safetensors *st, int i);
const char *mh_safetensors_meta_get(const mh_safetensors *st, const char *key);  /* NULL if absent */

/* ===== writer ===== */
typedef struct mh_st_named {
    const char *name;
    const mh_tensor *tensor;       /* any plain dtype; non-contiguous is fine */
} mh_st_named;

/* Writes n tensors and n_meta metadata pairs (meta[2i] = key, meta[2i+1] =
 * value; meta may be NULL when n_meta is 0) to path. Data is laid out by
 * element size (largest first), then by name, with no gaps, so every tensor
 * is aligned for its dtype and the file passes the reference library's
 * strict checks; with one dtype that is plain name order. The header is
 * padded with spaces to a multiple of 8. The file is written under a
 * temporary name in the same directory, synced and renamed, so a failed
 * write never leaves a partial file under path (an old file survives).
 * Borrows everything. */
int mh_safetensors_save(const char *path, const mh_st_named *tensors, int n,
                        const char *const *meta, int n_meta, mh_err *err);

/* The safetensors spelling of dt ("F32"...), or NULL for a type the format
 * cannot hold (quantized blocks). */
const char *mh_safetensors_dtype_name(mh_dtype dt);

#endif
