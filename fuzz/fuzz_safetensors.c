/* fuzz_safetensors.c: libFuzzer target for the safetensors reader (8-byte
 * length, JSON header, data offsets): open, list, read every tensor.
 * Layer: fuzz (engine/model). */
#include <stdint.h>
#include "mh/safetensors.h"
#include "mh/tensor.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("model.safetensors", data, size);
    mh_safetensors *st = mh_safetensors_open(path, NULL);
    if (!st) return 0;
    for (int i = 0; i < mh_safetensors_count(st) && i < 64; i++) {
        mh_tensor *t = mh_safetensors_tensor(st, i, NULL);
        if (t) mh_tensor_release(t);
    }
    for (int i = 0; i < mh_safetensors_meta_count(st); i++)
        (void)mh_safetensors_meta_get(st, mh_safetensors_meta_key(st, i));
    mh_safetensors_close(st);
    return 0;
}
