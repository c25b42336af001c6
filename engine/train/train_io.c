/* train_io.c: what a trainer writes and reads: LoRA adapters as PEFT-style
 * safetensors, checkpoints (weights, AdamW moments, step) and the merged
 * model as GGUF. Layer: engine/train; uses the safetensors and GGUF
 * readers/writers of engine/model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mh/gguf.h"
#include "mh/gguf_write.h"
#include "mh/quant.h"
#include "mh/safetensors.h"
#include "mh/tensor.h"
#include "train_internal.h"

/* A new f32 tensor (rows, cols) holding a copy of src; NULL on ENOMEM. */
static mh_tensor *tensor_of(const float *src, int64_t rows, int64_t cols, mh_err *err)
{
    int64_t shape[2] = { rows, cols };
    mh_tensor *t = mh_tensor_new(MH_DTYPE_F32, 2, shape, err);
    if (t) memcpy(mh_tensor_data(t), src, sizeof(float) * (size_t)(rows * cols));
    return t;
}

/* GGUF stores llama's q/k rows interleaved per head (2j, 2j+1) where the
 * HF checkpoints that PEFT adapters apply to use halves (j, j + hd/2):
 * B's rows move between the two orders (qwen2 uses halves in both). */
static void rows_to_hf(float *dst, const float *src, int64_t out, int64_t hd, int64_t cols)
{
    for (int64_t r = 0; r < out; r++) {
        int64_t h = r / hd, i = r % hd, j = i / 2, k = i % 2;
        memcpy(dst + (h * hd + k * (hd / 2) + j) * cols, src + r * cols, sizeof(float) * (size_t)cols);
    }
}

static int save_pairs(const mh_trainer *t, mh_st_named *named, mh_tensor **held, char (*names)[128],
                      int *n, mh_err *err)
{
    const mh_hparams *hp = t->hp;
    for (int64_t l = 0; l < hp->n_layer; l++)
        for (int k = 0; k < MH_PROJ_COUNT; k++) {
            const tr_lin *L = &t->layers[l].lin[k];
            if (!L->a) continue;
            float *b = L->b->data, *tmp = NULL;
            if ((k == MH_PROJ_Q || k == MH_PROJ_K) && !hp->rope_neox) {
                if (!(tmp = malloc(sizeof(float) * (size_t)(L->b->rows * L->b->cols))))
                    return mh_err_set(err, MH_ENOMEM, "save_adapter: out of memory");
                rows_to_hf(tmp, b, L->b->rows, hp->head_dim, L->b->cols);
                b = tmp;
            }
            snprintf(names[*n], 128, "base_model.model.model.layers.%lld.%s.lora_A.weight", (long long)l, mh_proj_name((mh_proj)k, MH_LAYOUT_HF));
            snprintf(names[*n + 1], 128, "base_model.model.model.layers.%lld.%s.lora_B.weight", (long long)l, mh_proj_name((mh_proj)k, MH_LAYOUT_HF));
            held[*n] = tensor_of(L->a->data, L->a->rows, L->a->cols, err);
            held[*n + 1] = tensor_of(b, L->b->rows, L->b->cols, err);
            free(tmp);
            if (!held[*n] || !held[*n + 1]) return MH_ENOMEM;
            named[*n] = (mh_st_named){ names[*n], held[*n] };
            named[*n + 1] = (mh_st_named){ names[*n + 1], held[*n + 1] };
            *n += 2;
        }
    return MH_OK;
}

int mh_trainer_save_adapter(const mh_trainer *t, const char *path, mh_err *err)
{
    if (t->cfg.method != MH_TRAIN_LORA)
        return mh_err_set(err, MH_EINVAL, "save_adapter: full training has no adapter (use export)");
    int cap = t->n_params, n = 0, st;
    mh_st_named *named = calloc((size_t)cap, sizeof *named);
    mh_tensor **held = calloc((size_t)cap, sizeof *held);
    char (*names)[128] = calloc((size_t)cap, 128);
    if (!named || !held || !names) st = mh_err_set(err, MH_ENOMEM, "save_adapter: out of memory");
    else st = save_pairs(t, named, held, names, &n, err);
    if (!st) {
        char r[32], alpha[32], mods[160] = "";
        snprintf(r, sizeof r, "%d", t->cfg.lora_rank);
        snprintf(alpha, sizeof alpha, "%g", (double)t->cfg.lora_alpha);
        for (int k = 0; k < MH_PROJ_COUNT; k++)
            if (t->cfg.lora_targets & (1u << k)) {
                if (*mods) strcat(mods, ",");
                strcat(mods, strchr(mh_proj_name((mh_proj)k, MH_LAYOUT_HF), '.') + 1);
            }
        const char *meta[] = { "format", "pt", "r", r, "lora_alpha", alpha, "target_modules", mods,
                               "base_arch", t->hp->arch_name };
        st = mh_safetensors_save(path, named, n, meta, 5, err);
    }
    for (int i = 0; held && i < n + 2 && i < cap; i++) mh_tensor_release(held[i]);
    free(named); free(held); free(names);
    return st;
}

/* ===== checkpoints ===== */

static int ckpt_path(char *buf, size_t n, const char *dir, mh_err *err)
{
    if ((size_t)snprintf(buf, n, "%s/trainer.safetensors", dir) >= n)
        return mh_err_set(err, MH_EINVAL, "checkpoint: directory path too long");
    return MH_OK;
}

int mh_trainer_checkpoint(const mh_trainer *t, const char *dir, mh_err *err)
{
    char path[4096];
    int st = ckpt_path(path, sizeof path, dir, err), n = 3 * t->n_params;
    if (st) return st;
    mh_st_named *named = calloc((size_t)n, sizeof *named);
    mh_tensor **held = calloc((size_t)n, sizeof *held);
    char (*names)[128] = calloc((size_t)n, 128);
    if (!named || !held || !names) st = mh_err_set(err, MH_ENOMEM, "checkpoint: out of memory");
    for (int i = 0; !st && i < t->n_params; i++) {
        const mh_train_param *p = &t->params[i];
        const float *src[3] = { p->data, p->m, p->v };
        const char *suf[3] = { "", ".adam_m", ".adam_v" };
        for (int j = 0; j < 3 && !st; j++) {
            snprintf(names[3 * i + j], 128, "%s%s", p->name, suf[j]);
            if (!(held[3 * i + j] = tensor_of(src[j], p->rows, p->cols, err))) st = MH_ENOMEM;
            named[3 * i + j] = (mh_st_named){ names[3 * i + j], held[3 * i + j] };
        }
    }
    if (!st) {
        char step[32], np[32], method[8], rank[16], seed[32];
        snprintf(step, sizeof step, "%lld", (long long)t->step);
        snprintf(np, sizeof np, "%d", t->n_params);
        snprintf(method, sizeof method, "%s", t->cfg.method == MH_TRAIN_FULL ? "full" : "lora");
        snprintf(rank, sizeof rank, "%d", t->cfg.lora_rank);
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)t->cfg.seed);
        const char *meta[] = { "step", step, "n_params", np, "method", method, "rank", rank, "seed", seed };
        st = mh_safetensors_save(path, named, n, meta, 5, err);
    }
    for (int i = 0; held && i < n; i++) mh_tensor_release(held[i]);
    free(named); free(held); free(names);
    return st;
}

static int restore_one(mh_safetensors *sf, const char *name, float *dst, int64_t count, mh_err *err)
{
    mh_tensor *x = mh_safetensors_get(sf, name, err);
    if (!x) return mh_err_set(err, MH_EFORMAT, "resume: checkpoint lacks %s", name);
    int st = MH_OK;
    if (x->dtype != MH_DTYPE_F32 || mh_tensor_numel(x) != count || !mh_tensor_is_contiguous(x))
        st = mh_err_set(err, MH_EFORMAT, "resume: %s has another shape or type", name);
    else memcpy(dst, mh_tensor_data(x), sizeof(float) * (size_t)count);
    mh_tensor_release(x);
    return st;
}

int mh_trainer_restore(mh_trainer *t, const char *dir, mh_err *err)
{
    char path[4096], name[128];
    int st = ckpt_path(path, sizeof path, dir, err);
    if (st) return st;
    mh_safetensors *sf = mh_safetensors_open(path, err);
    if (!sf) return err ? err->code : MH_EIO;
    const char *np = mh_safetensors_meta_get(sf, "n_params"), *step = mh_safetensors_meta_get(sf, "step");
    const char *method = mh_safetensors_meta_get(sf, "method");
    if (!np || !step || !method || atoi(np) != t->n_params ||
        strcmp(method, t->cfg.method == MH_TRAIN_FULL ? "full" : "lora"))
        st = mh_err_set(err, MH_EFORMAT, "resume: %s was written by a trainer of another shape", path);
    for (int i = 0; !st && i < t->n_params; i++) {
        mh_train_param *p = &t->params[i];
        int64_t n = p->rows * p->cols;
        float *dst[3] = { p->data, p->m, p->v };
        const char *suf[3] = { "", ".adam_m", ".adam_v" };
        for (int j = 0; j < 3 && !st; j++) {
            snprintf(name, sizeof name, "%s%s", p->name, suf[j]);
            st = restore_one(sf, name, dst[j], n, err);
        }
    }
    if (!st) t->step = strtoll(step, NULL, 10);
    mh_safetensors_close(sf);
    return st;
}
