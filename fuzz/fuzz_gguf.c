/* fuzz_gguf.c: libFuzzer target for the GGUF reader and the tokenizer built
 * from GGUF metadata (tokenizer.ggml.*): any bytes must give a clean error or
 * a file every accessor can walk. Layer: fuzz (engine/model, engine/tokenizer). */
#include <stdint.h>
#include "mh/gguf.h"
#include "mh/tokenizer.h"
#include "fuzz.h"

static void walk(const mh_gguf *g)
{
    volatile size_t sink = 0;
    for (int64_t i = 0; i < mh_gguf_n_kv(g); i++) {
        const mh_gguf_kv *kv = mh_gguf_kv_at(g, i);
        if (!kv) continue;
        /* a float is only compared: casting an out-of-range one is UB */
        sink += (size_t)mh_gguf_kv_int(kv) + (mh_gguf_kv_float(kv) != 0);
        sink += mh_gguf_kv_str(kv).len;
        for (uint64_t j = 0; j < 4; j++) {
            sink += mh_gguf_arr_str(kv, j).len + (size_t)mh_gguf_arr_int(kv, j);
            sink += mh_gguf_arr_float(kv, j) != 0;
        }
    }
    for (int64_t i = 0; i < mh_gguf_n_tensors(g); i++)
        sink += mh_gguf_tensor_at(g, i) != NULL;
    sink += mh_gguf_find_tensor(g, "token_embd.weight") != NULL;
    (void)sink;
}

static void tokenize(const mh_gguf *g)
{
    mh_tokenizer *t = NULL;
    if (mh_tokenizer_from_gguf(g, &t, NULL) != MH_OK) return;
    static const char text[] = " Hello world<s> </s>\n\t 123 \xe2\x96\x81\xff";
    mh_tok_encode_opts o = { .add_bos = -1, .add_eos = -1, .parse_special = true };
    mh_tok_ids ids = { 0 };
    mh_tok_buf out = { 0 };
    if (mh_tokenizer_encode(t, text, sizeof text - 1, &o, &ids, NULL) == MH_OK)
        mh_tokenizer_decode(t, ids.v, ids.n, 0, &out, NULL);
    int32_t probe[] = { 0, 1, 2, mh_tokenizer_n_vocab(t) - 1 };
    mh_tokenizer_decode(t, probe, 4, MH_DECODE_SKIP_SPECIAL, &out, NULL);
    mh_tok_ids_free(&ids);
    mh_tok_buf_free(&out);
    mh_tokenizer_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("in.gguf", data, size);
    mh_gguf *g = NULL;
    if (mh_gguf_open(path, &g, NULL) != MH_OK) return 0;
    walk(g);
    tokenize(g);
    mh_gguf_close(g);
    return 0;
}
