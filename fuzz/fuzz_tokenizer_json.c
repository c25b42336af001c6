/* fuzz_tokenizer_json.c: libFuzzer target for tokenizer.json loading (model,
 * added tokens, normalizer and pre-tokenizer sections) and an encode/decode
 * round with the result. Layer: fuzz (engine/tokenizer). */
#include <stdint.h>
#include "mh/tokenizer.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("tokenizer.json", data, size);
    mh_tokenizer *t = NULL;
    if (mh_tokenizer_from_hf(path, &t, NULL) != MH_OK) return 0;
    static const char text[] = "Hello  world!\n<|im_start|>user 12345 caf\xc3\xa9 \xf0\x9f\x98\x80\xff";
    for (int special = 0; special < 2; special++) {
        mh_tok_encode_opts o = { .add_bos = 1, .add_eos = 1, .parse_special = special };
        mh_tok_ids ids = { 0 };
        mh_tok_buf out = { 0 };
        if (mh_tokenizer_encode(t, text, sizeof text - 1, &o, &ids, NULL) == MH_OK)
            mh_tokenizer_decode(t, ids.v, ids.n, special ? 0 : MH_DECODE_SKIP_SPECIAL, &out, NULL);
        mh_tok_ids_free(&ids);
        mh_tok_buf_free(&out);
    }
    mh_tokenizer_free(t);
    return 0;
}
