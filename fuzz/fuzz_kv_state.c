/* fuzz_kv_state.c: libFuzzer target for KV state files (mh/kv_state.h): the
 * input as it is (parse, peek, restore into a stories260K cache), then the
 * same bytes with that model's identity and a valid checksum patched in, so
 * mutations reach the field, id and shape checks behind the SHA-256.
 * Layer: fuzz (engine/model; OpenSSL for the checksum it patches). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "mh/kv_state.h"
#include "mh/model.h"
#include "fuzz.h"

static mh_model *model;
static mh_kv_cache *caches[2];            /* f16 and f32: the seeds hold both */
static uint8_t model_id[MH_KV_STATE_ID_BYTES];

static void setup(void)
{
    if (model) return;
    mh_err err = { 0 };
    if (mh_model_load(fuzz_shared("models/stories260K.gguf"), &model, &err) ||
        mh_model_identity(model, model_id, &err)) {
        fprintf(stderr, "fuzz_kv_state: %s\n", err.msg);
        abort();
    }
    caches[0] = mh_kv_cache_new_type(model, 64, MH_DTYPE_F16, &err);
    caches[1] = mh_kv_cache_new_type(model, 64, MH_DTYPE_F32, &err);
    if (!caches[0] || !caches[1]) abort();
}

/* Every reader over one image: the in-memory parser, then the file ones. */
static void read_all(const uint8_t *data, size_t size)
{
    mh_kv_state_info info;
    const uint8_t *ids, *rows;
    if (mh_kv_state_parse(data, size, &info, &ids, &rows, NULL) == MH_OK) {
        volatile uint8_t sink = 0;             /* every pointed-at byte is inside data */
        if (info.n_tokens) sink ^= ids[4 * info.n_tokens - 1];
        if (info.rows_bytes) sink ^= rows[info.rows_bytes - 1];
        (void)sink;
    }
    const char *path = fuzz_write("state.mhkv", data, size);
    int32_t *tokens = NULL;
    if (mh_kv_state_peek(path, &info, &tokens, NULL) == MH_OK) free(tokens);
    for (int i = 0; i < 2; i++) {
        int64_t n = 0;
        tokens = NULL;
        if (mh_kv_state_load(path, model, model_id, caches[i], -1, &tokens, &n, NULL, NULL) == MH_OK) free(tokens);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    read_all(data, size);
    if (size < MH_KV_STATE_HEADER + 32) return 0;
    uint8_t *copy = malloc(size);
    if (!copy) return 0;
    memcpy(copy, data, size);
    memcpy(copy + 16, model_id, MH_KV_STATE_ID_BYTES);
    unsigned len = 0;
    EVP_Digest(copy, size - 32, copy + size - 32, &len, EVP_sha256(), NULL);
    read_all(copy, size);
    free(copy);
    return 0;
}
