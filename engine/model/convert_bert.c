/* convert_bert.c: Hugging Face encoder folders (BertModel, BertForMaskedLM,
 * NomicBertModel): sentence-transformers' pooling, the checkpoint's tensor
 * names, and what convert writes for them (tensor plan, metadata keys), as
 * llama.cpp c392e5094's convert_hf_to_gguf.py BertModel / NomicBertModel
 * classes do. Layer: engine/model (pure C11 + cJSON); shared with llama_hf.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cJSON.h>
#include "mh/gguf_write.h"
#include "mh/safetensors.h"
#include "hf_config.h"

static const cJSON *key(const cJSON *c, const char *k) { return cJSON_GetObjectItemCaseSensitive(c, k); }

/* ===== sentence-transformers pooling ===== */

/* A whole JSON file of any kind (modules.json is a list); NULL with err. */
static cJSON *read_any_json(const char *path, mh_err *err)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n = -1;
    cJSON *j = NULL;
    if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n < (1 << 20) &&
        fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n)
        j = cJSON_ParseWithLength(buf, (size_t)n);
    if (f) fclose(f);
    free(buf);
    if (!j) mh_err_set(err, MH_EFORMAT, "cannot read %s as JSON", path);
    return j;
}

/* llama.cpp's BertModel.set_gguf_parameters: modules.json names the Pooling
 * module's folder, whose config.json says mean or CLS (pooling_type is
 * written only then). Modules that change the vector afterwards (Dense...)
 * are refused: the GGUF could not say them. */
int mh_hf_bert_pooling(const char *dir, mh_hf_config *c, mh_err *err)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/modules.json", dir);
    FILE *f = fopen(p, "rb");
    if (!f) return MH_OK;
    fclose(f);
    cJSON *mods = read_any_json(p, err), *pc = NULL;
    const cJSON *m;
    const char *path = NULL;
    int st = mods ? MH_OK : MH_EFORMAT;
    if (mods && !cJSON_IsArray(mods)) st = mh_err_set(err, MH_EFORMAT, "%s is not a list of modules", p);
    const cJSON *list = st ? NULL : mods;
    cJSON_ArrayForEach(m, list) {
        const char *type = cJSON_GetStringValue(key(m, "type"));
        if (type && !strcmp(type, "sentence_transformers.models.Pooling")) {
            if (!path) path = cJSON_GetStringValue(key(m, "path"));
        } else if (!type || (strcmp(type, "sentence_transformers.models.Transformer") &&
                             strcmp(type, "sentence_transformers.models.Normalize"))) {
            st = mh_err_set(err, MH_EFORMAT, "modules.json: module type '%s' is not supported "
                            "(Transformer, Pooling and Normalize are)", type ? type : "?");
            break;
        }
    }
    if (!st && path) {
        snprintf(p, sizeof p, "%s/%s/config.json", dir, path);
        if (!(pc = read_any_json(p, err))) st = MH_EFORMAT;
    }
    if (!st && pc) {
        c->pooling_given = true;
        if (cJSON_IsTrue(key(pc, "pooling_mode_mean_tokens"))) c->hp.pooling = MH_POOL_MEAN;
        else if (cJSON_IsTrue(key(pc, "pooling_mode_cls_token"))) c->hp.pooling = MH_POOL_CLS;
        else st = mh_err_set(err, MH_EFORMAT, "%s: neither pooling_mode_mean_tokens nor "
                             "pooling_mode_cls_token is true (other poolings are not supported)", p);
    }
    cJSON_Delete(pc);
    cJSON_Delete(mods);
    return st;
}

/* ===== tensor names ===== */

/* GGUF -> checkpoint names: BERT's (encoder.layer.N...) and nomic-bert's
 * (encoder.layers.N...), paired as llama.cpp's tensor_mapping.py pairs them. */
bool mh_hf_bert_tensor_name(const mh_hf_config *c, const char *gguf, char *out, size_t n)
{
    static const char *const globals[][3] = {   /* GGUF, bert, nomic-bert */
        { "token_embd", "embeddings.word_embeddings", "embeddings.word_embeddings" },
        { "token_types", "embeddings.token_type_embeddings", "embeddings.token_type_embeddings" },
        { "position_embd", "embeddings.position_embeddings", NULL },
        { "token_embd_norm", "embeddings.LayerNorm", "emb_ln" },
    };
    static const char *const layers[][3] = {
        { "attn_q", "attention.self.query", NULL },    { "attn_k", "attention.self.key", NULL },
        { "attn_v", "attention.self.value", NULL },    { "attn_qkv", NULL, "attn.Wqkv" },
        { "attn_output", "attention.output.dense", "attn.out_proj" },
        { "attn_output_norm", "attention.output.LayerNorm", "norm1" },
        { "ffn_up", "intermediate.dense", "mlp.fc11" }, { "ffn_gate", NULL, "mlp.fc12" },
        { "ffn_down", "output.dense", "mlp.fc2" },     { "layer_output_norm", "output.LayerNorm", "norm2" },
    };
    const int col = c->hp.arch == MH_ARCH_NOMIC_BERT ? 2 : 1;
    char part[48], suffix[16], base[96];
    long long l = -1;
    const char *hf = NULL;
    if (sscanf(gguf, "blk.%lld.%47[^.].%15s", &l, part, suffix) == 3 && l >= 0) {
        for (size_t i = 0; i < sizeof layers / sizeof layers[0] && !hf; i++)
            if (!strcmp(part, layers[i][0])) hf = layers[i][col];
        if (hf) snprintf(base, sizeof base, "encoder.layer%s.%lld.%s", col == 2 ? "s" : "", l, hf);
    } else if (strncmp(gguf, "blk.", 4) && sscanf(gguf, "%47[^.].%15s", part, suffix) == 2) {
        for (size_t i = 0; i < sizeof globals / sizeof globals[0] && !hf; i++)
            if (!strcmp(part, globals[i][0])) hf = globals[i][col];
        if (hf) snprintf(base, sizeof base, "%s", hf);
    }
    if (!hf || (strcmp(suffix, "weight") && strcmp(suffix, "bias"))) return false;
    const char *sfx = suffix;
    if (c->st_gamma && strstr(base, "LayerNorm")) sfx = suffix[0] == 'w' ? "gamma" : "beta";
    return snprintf(out, n, "%s%s.%s", c->st_prefix, base, sfx) < (int)n;
}

/* BertForMaskedLM checkpoints put "bert." before every name and old ones
 * call LayerNorm's weight and bias gamma and beta (llama.cpp strips and
 * renames both): looked up once, then every name is spelt their way. */
void mh_hf_bert_resolve(mh_hf_config *c, const mh_safetensors *st)
{
    char nm[192];
    if (c->hp.arch != MH_ARCH_BERT) return;
    c->st_prefix[0] = 0;
    c->st_gamma = false;
    if (mh_hf_bert_tensor_name(c, "token_embd.weight", nm, sizeof nm) && mh_safetensors_find(st, nm) < 0) {
        snprintf(c->st_prefix, sizeof c->st_prefix, "bert.");
        if (mh_hf_bert_tensor_name(c, "token_embd.weight", nm, sizeof nm) && mh_safetensors_find(st, nm) < 0)
            c->st_prefix[0] = 0;    /* neither: the missing tensor is reported under its plain name */
    }
    c->st_gamma = true;
    if (!mh_hf_bert_tensor_name(c, "token_embd_norm.weight", nm, sizeof nm) || mh_safetensors_find(st, nm) < 0)
        c->st_gamma = false;
}

bool mh_convert_bert_ignored(const mh_hf_config *c, const char *hf)
{
    size_t k = strlen(c->st_prefix);
    if (!strncmp(hf, c->st_prefix, k)) hf += k;
    return !strcmp(hf, "embeddings.position_ids") || !strncmp(hf, "pooler.dense.", 13) ||
           !strncmp(hf, "cls.predictions", 15) || !strncmp(hf, "cls.seq_relationship", 20);
}

/* ===== convert: tensors and keys ===== */

static int plan_layer(const mh_hf_config *c, int64_t l, mh_hf_plan_fn add, void *ud, mh_err *err)
{
    const bool nomic = c->hp.arch == MH_ARCH_NOMIC_BERT;
    const int64_t E = c->hp.n_embd, F = c->hp.n_ff;
    char n[96];
    int rc = MH_OK;
#define ADD(part, rows, cols) \
    if (!rc) rc = (snprintf(n, sizeof n, "blk.%lld.%s", (long long)l, part), add(ud, n, rows, cols, err))
    if (nomic) {
        ADD("attn_qkv.weight", 3 * E, E);
    } else {
        ADD("attn_q.weight", E, E); ADD("attn_q.bias", 0, E);
        ADD("attn_k.weight", E, E); ADD("attn_k.bias", 0, E);
        ADD("attn_v.weight", E, E); ADD("attn_v.bias", 0, E);
    }
    ADD("attn_output.weight", E, E);
    if (!nomic) { ADD("attn_output.bias", 0, E); }
    ADD("attn_output_norm.weight", 0, E); ADD("attn_output_norm.bias", 0, E);
    ADD("ffn_up.weight", F, E);
    if (nomic) {
        ADD("ffn_gate.weight", F, E);
    } else {
        ADD("ffn_up.bias", 0, F);
    }
    ADD("ffn_down.weight", E, F);
    if (!nomic) { ADD("ffn_down.bias", 0, E); }
    ADD("layer_output_norm.weight", 0, E); ADD("layer_output_norm.bias", 0, E);
#undef ADD
    return rc;
}

/* llama.cpp's tensors for the two (llama-model.cpp load_tensors), every
 * one required: bert.c binds them all. */
int mh_convert_bert_plan(const mh_hf_config *c, mh_hf_plan_fn add, void *ud, mh_err *err)
{
    const mh_hparams *hp = &c->hp;
    const int64_t E = hp->n_embd;
    int rc = add(ud, "token_embd.weight", hp->n_vocab, E, err);
    if (!rc) rc = add(ud, "token_types.weight", c->n_token_types, E, err);
    if (!rc && hp->arch == MH_ARCH_BERT) rc = add(ud, "position_embd.weight", hp->n_ctx_train, E, err);
    if (!rc) rc = add(ud, "token_embd_norm.weight", 0, E, err);
    if (!rc) rc = add(ud, "token_embd_norm.bias", 0, E, err);
    for (int64_t l = 0; l < hp->n_layer && !rc; l++) rc = plan_layer(c, l, add, ud, err);
    return rc;
}

static int u32(mh_gguf_writer *w, const char *arch, const char *k, int64_t v, mh_err *err)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, k);
    return mh_gguf_writer_set_int(w, key, MH_GGUF_UINT32, v, err);
}

/* Model.set_gguf_parameters' keys for these configs (no head_count_kv, no
 * rms epsilon: they have neither), then BertModel's causal flag and
 * pooling, NomicBertModel's rope base, and set_vocab's token type count. */
int mh_convert_bert_keys(const mh_hf_config *c, int ftype, mh_gguf_writer *w, mh_err *err)
{
    const mh_hparams *hp = &c->hp;
    const char *a = hp->arch_name;
    char k[128];
    int rc = u32(w, a, "block_count", hp->n_layer, err);
    if (!rc) rc = u32(w, a, "context_length", hp->n_ctx_train, err);
    if (!rc) rc = u32(w, a, "embedding_length", hp->n_embd, err);
    if (!rc) rc = u32(w, a, "feed_forward_length", hp->n_ff, err);
    if (!rc) rc = u32(w, a, "attention.head_count", hp->n_head, err);
    snprintf(k, sizeof k, "%s.attention.layer_norm_epsilon", a);
    if (!rc) rc = mh_gguf_writer_set_float(w, k, MH_GGUF_FLOAT32, hp->norm_eps, err);
    if (!rc) rc = mh_gguf_writer_set_int(w, "general.file_type", MH_GGUF_UINT32, ftype, err);
    snprintf(k, sizeof k, "%s.attention.causal", a);
    if (!rc) rc = mh_gguf_writer_set_int(w, k, MH_GGUF_BOOL, 0, err);
    if (!rc && c->pooling_given) rc = u32(w, a, "pooling_type", hp->pooling, err);
    snprintf(k, sizeof k, "%s.rope.freq_base", a);
    if (!rc && hp->arch == MH_ARCH_NOMIC_BERT) rc = mh_gguf_writer_set_float(w, k, MH_GGUF_FLOAT32, hp->rope_base, err);
    if (!rc) rc = mh_gguf_writer_set_int(w, "tokenizer.ggml.token_type_count", MH_GGUF_UINT32, c->n_token_types, err);
    if (!rc) rc = mh_gguf_writer_set_int(w, "general.quantization_version", MH_GGUF_UINT32, 2, err);
    return rc;
}
