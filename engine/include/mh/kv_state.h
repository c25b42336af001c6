/* kv_state.h: a KV cache's state on disk (docs/kv-state.md): one versioned
 * file holding the model's identity, the cache's shape and type, the token
 * ids and their K/V rows, closed by a SHA-256 of all of it. Written with
 * temp-and-rename; read with every field checked, so a truncated, corrupt or
 * foreign file is a clear error. Layer: engine/model (pure C11; mh/model.h,
 * mh/fs.h, OpenSSL's SHA-256). Little-endian, as every supported host. */
#ifndef MH_KV_STATE_H
#define MH_KV_STATE_H

#include <stddef.h>
#include <stdint.h>
#include "mh/err.h"
#include "mh/dtype.h"
#include "mh/model.h"

#define MH_KV_STATE_VERSION 1
#define MH_KV_STATE_ID_BYTES 32
#define MH_KV_STATE_HEADER 96           /* bytes before the token ids */
#define MH_KV_STATE_MAX_TOKENS (1 << 24)

typedef struct mh_kv_state_info {
    uint32_t version;
    uint8_t model_id[MH_KV_STATE_ID_BYTES];   /* mh_model_identity of the writer */
    mh_dtype type;                            /* f32, f16 or q8_0 rows */
    int64_t n_layer, n_head_kv, head_dim, n_vocab;
    int64_t n_tokens;                         /* positions saved */
    size_t row_bytes;                         /* one position of one layer's K (or V) */
    size_t rows_bytes;                        /* the K/V section: 2 n_layer n_tokens row_bytes */
} mh_kv_state_info;

/* The model's identity: SHA-256 over its hyperparameters, every weight's
 * type and shape and a sample of each weight's bytes (its first, middle and
 * last 4 KiB; norms whole), and the number of LoRA adapters applied. Costs
 * a few hundred KiB of hashing, so it is computed when needed. Two files of
 * the same weights in another quantization differ; so do fine-tunes. */
int mh_model_identity(const mh_model *m, uint8_t id[MH_KV_STATE_ID_BYTES], mh_err *err);
/* Hex of the first n bytes of id into out (2n + 1 bytes). */
void mh_kv_state_id_hex(const uint8_t *id, int n, char *out);

/* The header describing n positions of c for model identity id. */
void mh_kv_state_describe(const mh_model *m, const uint8_t id[MH_KV_STATE_ID_BYTES], const mh_kv_cache *c,
                          int64_t n, mh_kv_state_info *info);

/* Writes a state: info's header, tokens (info->n_tokens ids), rows (a
 * snapshot, mh_kv_cache_save layout, info->rows_bytes) and the checksum, to
 * a temp file renamed over path. durable: fsync before the rename (a cache
 * spill skips it: a torn file fails its checksum). Bytes written to *size. */
int mh_kv_state_write(const char *path, const mh_kv_state_info *info, const int32_t *tokens, const void *rows,
                      bool durable, size_t *size, mh_err *err);

/* Positions 0..n-1 of c (ids tokens) as a state file for model m. */
int mh_kv_state_save(const char *path, const mh_model *m, const mh_kv_cache *c, const int32_t *tokens,
                     int64_t n, size_t *size, mh_err *err);

/* Checks a whole state file image (size bytes): magic, version, every field
 * and the checksum; fills info and points *tokens (info->n_tokens ids,
 * unaligned: memcpy them) and *rows into buf. MH_EFORMAT naming the field. */
int mh_kv_state_parse(const void *buf, size_t size, mh_kv_state_info *info, const uint8_t **tokens,
                      const uint8_t **rows, mh_err *err);

/* Checks info against model m (identity id; NULL computes it) and cache c
 * (type, shape, room): MH_EINVAL with what differs. */
int mh_kv_state_check(const mh_kv_state_info *info, const mh_model *m, const uint8_t *id, const mh_kv_cache *c,
                      const char *path, mh_err *err);

/* The whole file at path (malloc'd into *buf, *size bytes). */
int mh_kv_state_read_file(const char *path, uint8_t **buf, size_t *size, mh_err *err);

/* Reads path into c for model m (id NULL: computed): checked, then the
 * first n_use positions (-1: all) are loaded and c's n_past becomes that;
 * *tokens (malloc'd, caller frees; may be NULL) gets their ids, *n their
 * count. On failure c is unchanged. */
int mh_kv_state_load(const char *path, const mh_model *m, const uint8_t *id, mh_kv_cache *c, int64_t n_use,
                     int32_t **tokens, int64_t *n, size_t *size, mh_err *err);

/* The header and token ids only (the rows are neither read nor summed):
 * for indexing a folder of states. *tokens malloc'd. */
int mh_kv_state_peek(const char *path, mh_kv_state_info *info, int32_t **tokens, mh_err *err);

#endif
