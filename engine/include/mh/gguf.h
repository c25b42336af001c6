/* gguf.h: read-only GGUF (v2/v3) files: header, key/value metadata and
 * tensor infos, with tensor data mmapped zero-copy.
 * Layer: engine/model (pure C11). Every count, size and offset is checked
 * against the mapping; a bad file gives MH_EFORMAT, never a wild read. */
#ifndef MH_GGUF_H
#define MH_GGUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "mh/err.h"

/* Value types as numbered in the GGUF file format. */
typedef enum mh_gguf_type {
    MH_GGUF_UINT8 = 0, MH_GGUF_INT8, MH_GGUF_UINT16, MH_GGUF_INT16,
    MH_GGUF_UINT32, MH_GGUF_INT32, MH_GGUF_FLOAT32, MH_GGUF_BOOL,
    MH_GGUF_STRING, MH_GGUF_ARRAY, MH_GGUF_UINT64, MH_GGUF_INT64,
    MH_GGUF_FLOAT64, MH_GGUF_TYPE_COUNT
} mh_gguf_type;

/* A string inside the mapping: not NUL-terminated. */
typedef struct mh_gguf_str {
    const char *ptr;
    size_t len;
} mh_gguf_str;

typedef struct mh_gguf_kv {
    char *key;                 /* NUL-terminated copy */
    mh_gguf_type type;
    mh_gguf_type arr_type;     /* element type when type == ARRAY */
    uint64_t n;                /* element count when ARRAY, else 1 */
    const uint8_t *data;       /* the value, or the first element, in the mapping */
    const uint8_t **strs;      /* string arrays: where each element starts */
} mh_gguf_kv;

typedef struct mh_gguf_tensor {
    char *name;                /* NUL-terminated copy */
    int n_dims;
    int64_t ne[4];             /* ggml order: ne[0] varies fastest; unused dims 1 */
    uint32_t ggml_type;        /* type id as stored (GGML_TYPE_*) */
    int dtype;                 /* mh_dtype, or -1 when the engine has no such type */
    uint64_t offset;           /* from the start of the data section */
    uint64_t nbytes;
    const void *data;          /* inside the mapping (valid until close) */
} mh_gguf_tensor;

typedef struct mh_gguf mh_gguf;

/* Maps and parses path. On success *out owns the mapping (mh_gguf_close). */
int mh_gguf_open(const char *path, mh_gguf **out, mh_err *err);
void mh_gguf_close(mh_gguf *g);              /* NULL is a no-op */
/* MH_OK while the file still holds everything mapped; MH_EIO naming it once
 * it was truncated (reads past its new end gave zeros: see mh/mapguard.h). */
int mh_gguf_check(const mh_gguf *g, mh_err *err);

uint32_t mh_gguf_version(const mh_gguf *g);
size_t mh_gguf_file_size(const mh_gguf *g);
uint64_t mh_gguf_data_offset(const mh_gguf *g);  /* file offset of tensor data */
uint32_t mh_gguf_alignment(const mh_gguf *g);
/* A note about an irregular but accepted file ("" when none). */
const char *mh_gguf_warning(const mh_gguf *g);

/* ===== metadata ===== */
int64_t mh_gguf_n_kv(const mh_gguf *g);
const mh_gguf_kv *mh_gguf_kv_at(const mh_gguf *g, int64_t i);   /* NULL out of range */
/* The entry for key (the last one when a file repeats it), or NULL. */
const mh_gguf_kv *mh_gguf_find(const mh_gguf *g, const char *key);

/* Typed getters: false when the key is missing or of an incompatible type.
 * get_int accepts any integer or bool type; get_float any number type. */
bool mh_gguf_get_str(const mh_gguf *g, const char *key, mh_gguf_str *out);
bool mh_gguf_get_int(const mh_gguf *g, const char *key, int64_t *out);
bool mh_gguf_get_float(const mh_gguf *g, const char *key, double *out);
bool mh_gguf_get_bool(const mh_gguf *g, const char *key, bool *out);
/* The array under key with elements of type t (any type when t < 0). */
const mh_gguf_kv *mh_gguf_get_arr(const mh_gguf *g, const char *key, int t);

/* Element i of an array kv (i < kv->n; callers check the element type). */
mh_gguf_str mh_gguf_arr_str(const mh_gguf_kv *kv, uint64_t i);
int64_t mh_gguf_arr_int(const mh_gguf_kv *kv, uint64_t i);
double mh_gguf_arr_float(const mh_gguf_kv *kv, uint64_t i);
/* Scalar value of a non-array kv as int / float (0 for strings). */
int64_t mh_gguf_kv_int(const mh_gguf_kv *kv);
double mh_gguf_kv_float(const mh_gguf_kv *kv);
mh_gguf_str mh_gguf_kv_str(const mh_gguf_kv *kv);

/* ===== tensors ===== */
int64_t mh_gguf_n_tensors(const mh_gguf *g);
const mh_gguf_tensor *mh_gguf_tensor_at(const mh_gguf *g, int64_t i);
const mh_gguf_tensor *mh_gguf_find_tensor(const mh_gguf *g, const char *name);

/* "uint8" ... "float64"; "?" when unknown. */
const char *mh_gguf_type_name(int t);
/* "f32", "q4_K", ... for a GGML type id; NULL when unknown. */
const char *mh_gguf_ggml_type_name(uint32_t ggml_type);

#endif
