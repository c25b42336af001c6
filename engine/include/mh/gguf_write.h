/* gguf_write.h: writes GGUF v3 files: metadata, tensor infos, aligned data.
 * Layer: engine/model (pure C11 + POSIX). The file is written to a temporary
 * name in the target directory and renamed only when complete, so a failure
 * (bad path, disk full) never leaves a half file under the final name. */
#ifndef MH_GGUF_WRITE_H
#define MH_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "mh/dtype.h"
#include "mh/err.h"
#include "mh/gguf.h"

typedef struct mh_gguf_writer mh_gguf_writer;

/* A new empty writer (no keys, no tensors); NULL when out of memory. */
mh_gguf_writer *mh_gguf_writer_new(void);
/* Frees w; an unfinished output's temporary file is removed. NULL: no-op. */
void mh_gguf_writer_free(mh_gguf_writer *w);

/* ===== metadata (before mh_gguf_writer_begin) =====
 * Setting an existing key replaces its value in place (order is kept).
 * All copy their inputs. MH_ENOMEM, or MH_EINVAL for a bad key/type or when
 * called after begin. */
int mh_gguf_writer_set_int(mh_gguf_writer *w, const char *key, mh_gguf_type t, int64_t v,
                           mh_err *err);     /* any integer type or BOOL */
int mh_gguf_writer_set_float(mh_gguf_writer *w, const char *key, mh_gguf_type t, double v,
                             mh_err *err);   /* FLOAT32 or FLOAT64 */
int mh_gguf_writer_set_str(mh_gguf_writer *w, const char *key, const char *s, size_t len,
                           mh_err *err);
/* An array of n numbers of type t, packed little-endian as in the file. */
int mh_gguf_writer_set_arr(mh_gguf_writer *w, const char *key, mh_gguf_type t,
                           const void *data, uint64_t n, mh_err *err);
/* An array of n strings (strs[i] of lens[i] bytes). */
int mh_gguf_writer_set_arr_str(mh_gguf_writer *w, const char *key, const char *const *strs,
                               const size_t *lens, uint64_t n, mh_err *err);
/* Copies one key/value (any type) from an open reader. */
int mh_gguf_writer_copy_kv(mh_gguf_writer *w, const mh_gguf_kv *kv, mh_err *err);
/* Removes key; false when it was not there. */
bool mh_gguf_writer_remove(mh_gguf_writer *w, const char *key);
int64_t mh_gguf_writer_n_kv(const mh_gguf_writer *w);

/* ===== tensors =====
 * Declares the next tensor: ne in ggml order (ne[0] = row length), n_dims
 * 1..4, dtype any type with a GGUF id. Data follow in declaration order. */
int mh_gguf_writer_add_tensor(mh_gguf_writer *w, const char *name, int n_dims,
                              const int64_t ne[4], mh_dtype dtype, mh_err *err);
int64_t mh_gguf_writer_n_tensors(const mh_gguf_writer *w);

/* ===== output =====
 * begin: creates the temporary file and writes header, metadata and tensor
 * infos (alignment from general.alignment, default 32). write_data appends
 * n bytes of tensor data; a tensor may come in several pieces, and the
 * padding between tensors is written automatically. finish checks that
 * every tensor got all its bytes, flushes, syncs and renames to path.
 * File errors give MH_EIO naming the path; after any error the temporary
 * file is gone and the writer only accepts free. */
int mh_gguf_writer_begin(mh_gguf_writer *w, const char *path, mh_err *err);
int mh_gguf_writer_write_data(mh_gguf_writer *w, const void *data, size_t n, mh_err *err);
int mh_gguf_writer_finish(mh_gguf_writer *w, mh_err *err);
/* Bytes written so far (the whole file after finish). */
uint64_t mh_gguf_writer_bytes(const mh_gguf_writer *w);

/* GGML type id of a dtype; -1 when GGUF has none. */
int mh_gguf_ggml_type_of(mh_dtype t);

#endif
