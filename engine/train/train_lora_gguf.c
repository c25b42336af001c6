/* train_lora_gguf.c: LoRA adapters as GGUF in llama.cpp's adapter format
 * (general.type = adapter, adapter.type = lora, adapter.lora.alpha; tensors
 * blk.N.<target>.weight.lora_a (ne [in, r]) and .lora_b (ne [r, out]) in
 * the base GGUF's row order), so `llama-cli --lora` can use what
 * moonhub trains. Layer: engine/train; uses the GGUF writer. */
#include <string.h>
#include "mh/gguf.h"
#include "mh/gguf_write.h"
#include "train_internal.h"

static int write_meta(const mh_trainer *t, mh_gguf_writer *w, mh_err *err)
{
    const char *arch = t->hp->arch_name;
    int st;
    if ((st = mh_gguf_writer_set_str(w, "general.architecture", arch, strlen(arch), err)) ||
        (st = mh_gguf_writer_set_str(w, "general.type", "adapter", 7, err)) ||
        (st = mh_gguf_writer_set_str(w, "adapter.type", "lora", 4, err)) ||
        (st = mh_gguf_writer_set_float(w, "adapter.lora.alpha", MH_GGUF_FLOAT32, t->cfg.lora_alpha, err)))
        return st;
    return MH_OK;
}

int mh_trainer_save_adapter_gguf(const mh_trainer *t, const char *path, mh_err *err)
{
    if (t->cfg.method != MH_TRAIN_LORA)
        return mh_err_set(err, MH_EINVAL, "save_adapter: full training has no adapter (use export)");
    mh_gguf_writer *w = mh_gguf_writer_new();
    if (!w) return mh_err_set(err, MH_ENOMEM, "save_adapter: out of memory");
    int st = write_meta(t, w, err);
    for (int i = 0; !st && i < t->n_params; i++) {
        const mh_train_param *p = &t->params[i];
        int64_t ne[4] = { p->cols, p->rows, 1, 1 };
        st = mh_gguf_writer_add_tensor(w, p->name, 2, ne, MH_DTYPE_F32, err);
    }
    if (!st) st = mh_gguf_writer_begin(w, path, err);
    for (int i = 0; !st && i < t->n_params; i++) {
        const mh_train_param *p = &t->params[i];
        st = mh_gguf_writer_write_data(w, p->data, sizeof(float) * (size_t)(p->rows * p->cols), err);
    }
    if (!st) st = mh_gguf_writer_finish(w, err);
    mh_gguf_writer_free(w);
    return st;
}
