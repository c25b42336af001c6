/* test_convert_moe.c: Hugging Face folders of a mixture-of-experts model
 * (Qwen2-MoE) from C alone, so make asan covers the expert paths of
 * hf_config.c, llama_hf.c, moe.c and convert.c: a `create`d tiny qwen2moe
 * GGUF written back as a folder with one tensor per expert (names from a
 * table here, not from hf_config.c), loaded directly with the GGUF's
 * logits, converted back to its tensors byte for byte, and refused with a
 * named key or tensor when broken. tests/spec/convert/convert_moe_spec.lua
 * covers Mixtral, Q8_0 and the CLI. */
#include <cJSON.h>
#include <sys/stat.h>
#include "harness.h"
#include "mh/convert.h"
#include "mh/create.h"
#include "mh/gguf.h"
#include "mh/model.h"
#include "mh/safetensors.h"
#include "mh/storage.h"
#include "mh/tensor.h"

enum { E = 64, X = 4, K = 2, F_EXP = 32, F_SH = 64, L = 2 };

static char tmp[64];

static int write_text(const char *dir, const char *name, const char *text)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) return -1;
    int ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* HF name of GGUF tensor gg (expert e of a stacked one); -1 when unknown. */
static int hf_name(const char *gg, int e, char *out, size_t n)
{
    static const char *const map[][2] = {
        { "attn_norm.weight", "input_layernorm.weight" }, { "attn_q.weight", "self_attn.q_proj.weight" },
        { "attn_k.weight", "self_attn.k_proj.weight" }, { "attn_v.weight", "self_attn.v_proj.weight" },
        { "attn_q.bias", "self_attn.q_proj.bias" }, { "attn_k.bias", "self_attn.k_proj.bias" },
        { "attn_v.bias", "self_attn.v_proj.bias" }, { "attn_output.weight", "self_attn.o_proj.weight" },
        { "ffn_norm.weight", "post_attention_layernorm.weight" }, { "ffn_gate_inp.weight", "mlp.gate.weight" },
        { "ffn_gate_exps.weight", "mlp.experts.%d.gate_proj.weight" },
        { "ffn_up_exps.weight", "mlp.experts.%d.up_proj.weight" },
        { "ffn_down_exps.weight", "mlp.experts.%d.down_proj.weight" },
        { "ffn_gate_inp_shexp.weight", "mlp.shared_expert_gate.weight" },
        { "ffn_gate_shexp.weight", "mlp.shared_expert.gate_proj.weight" },
        { "ffn_up_shexp.weight", "mlp.shared_expert.up_proj.weight" },
        { "ffn_down_shexp.weight", "mlp.shared_expert.down_proj.weight" },
    };
    int l, off = 0;
    if (!strcmp(gg, "token_embd.weight")) return snprintf(out, n, "model.embed_tokens.weight"), 0;
    if (!strcmp(gg, "output_norm.weight")) return snprintf(out, n, "model.norm.weight"), 0;
    if (!strcmp(gg, "output.weight")) return snprintf(out, n, "lm_head.weight"), 0;
    if (sscanf(gg, "blk.%d.%n", &l, &off) != 1 || !off) return -1;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (strcmp(gg + off, map[i][0])) continue;
        char part[96];
        snprintf(part, sizeof part, map[i][1], e);
        return snprintf(out, n, "model.layers.%d.%s", l, part), 0;
    }
    return -1;
}

/* Writes g's tensors to dir/model.safetensors, experts un-stacked, the
 * shared expert's gate as (1, E); skip: an HF name left out. */
static int write_folder_tensors(const mh_gguf *g, const char *dir, const char *skip)
{
    enum { MAXT = 64 };
    static char names[MAXT][128];
    mh_st_named ts[MAXT];
    int n = 0, rc = 0;
    for (int64_t i = 0; i < mh_gguf_n_tensors(g) && !rc; i++) {
        const mh_gguf_tensor *t = mh_gguf_tensor_at(g, i);
        int parts = t->n_dims == 3 ? (int)t->ne[2] : 1;
        size_t each = (size_t)t->nbytes / (size_t)parts;
        for (int e = 0; e < parts && !rc; e++) {
            if (n == MAXT || hf_name(t->name, e, names[n], sizeof names[n]) || t->dtype < 0) { rc = -1; break; }
            if (skip && !strcmp(names[n], skip)) continue;
            int64_t shape[2] = { t->ne[1], t->ne[0] };
            int nd = t->n_dims == 1 ? 1 : 2;
            if (nd == 1) shape[0] = t->ne[0];
            if (strstr(t->name, "gate_inp_shexp")) nd = 2, shape[0] = 1, shape[1] = t->ne[0];
            mh_storage *s = mh_storage_wrap((uint8_t *)t->data + each * (size_t)e, each, NULL, NULL, NULL);
            ts[n].tensor = s ? mh_tensor_from_storage(s, 0, (mh_dtype)t->dtype, nd, shape, NULL, NULL) : NULL;
            mh_storage_release(s);
            ts[n].name = names[n];
            if (!ts[n++].tensor) rc = -1;
        }
    }
    char p[4200];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    if (!rc) rc = mh_safetensors_save(p, ts, n, NULL, 0, NULL) ? -1 : 0;
    for (int i = 0; i < n; i++) mh_tensor_release((mh_tensor *)ts[i].tensor);
    return rc;
}

#define QCFG "{\"architectures\": [\"Qwen2MoeForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 128, " \
    "\"num_hidden_layers\": 2, \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"vocab_size\": %lld, " \
    "\"rms_norm_eps\": 1e-6, \"rope_theta\": 1000000, \"num_experts\": 4, \"num_experts_per_tok\": 2, " \
    "\"moe_intermediate_size\": 32, \"shared_expert_intermediate_size\": 64, \"tie_word_embeddings\": false%s}"

/* A folder of GGUF g with config extra keys and tensor skip left out. */
static int make_folder(const char *gguf, const char *dir, const char *tok, const char *extra, const char *skip)
{
    mh_gguf *g = NULL;
    char cfg[1024];
    long n = 0;
    char *tj = NULL;
    FILE *f = fopen(tok, "rb");
    if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (tj = calloc(1, (size_t)n + 1)) && fread(tj, 1, (size_t)n, f) != (size_t)n) n = -1;
    if (f) fclose(f);
    int rc = n > 0 && tj && mkdir(dir, 0700) == 0 && mh_gguf_open(gguf, &g, NULL) == MH_OK ? 0 : -1;
    int64_t V = 0;
    for (int64_t i = 0; g && i < mh_gguf_n_tensors(g); i++)
        if (!strcmp(mh_gguf_tensor_at(g, i)->name, "token_embd.weight")) V = mh_gguf_tensor_at(g, i)->ne[1];
    snprintf(cfg, sizeof cfg, QCFG, (long long)V, extra ? extra : "");
    if (!rc) rc = write_folder_tensors(g, dir, skip);
    if (!rc) rc = write_text(dir, "config.json", cfg);
    if (!rc) rc = write_text(dir, "tokenizer.json", tj);
    mh_gguf_close(g);
    free(tj);
    return rc;
}

static void rm_folder(const char *dir)
{
    const char *files[] = { "model.safetensors", "config.json", "tokenizer.json", "out.gguf" };
    char p[4200];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        remove(p);
    }
    rmdir(dir);
}

static double max_logit_diff(mh_model *a, mh_model *b)
{
    int32_t ids[] = { 9, 11, 87, 0, 5, 42, 100, 2, 64, 33 };
    int64_t V = mh_model_hparams(a)->n_vocab, n = 10;
    float *la = malloc(sizeof(float) * (size_t)(n * V)), *lb = malloc(sizeof(float) * (size_t)(n * V));
    mh_kv_cache *ca = mh_kv_cache_new(a, 32, NULL), *cb = mh_kv_cache_new(b, 32, NULL);
    double md = -1;
    if (la && lb && ca && cb && !mh_model_forward(a, ca, ids, n, la, true, NULL) &&
        !mh_model_forward(b, cb, ids, n, lb, true, NULL)) {
        md = 0;
        for (int64_t k = 0; k < n * V; k++) md = fmax(md, fabs(la[k] - lb[k]));
    }
    mh_kv_cache_free(ca); mh_kv_cache_free(cb);
    free(la); free(lb);
    return md;
}

/* Every tensor of a in b with the same type, shape and bytes. */
static int same_tensors(const char *pa, const char *pb)
{
    mh_gguf *a = NULL, *b = NULL;
    int same = mh_gguf_open(pa, &a, NULL) == MH_OK && mh_gguf_open(pb, &b, NULL) == MH_OK &&
               mh_gguf_n_tensors(a) == mh_gguf_n_tensors(b);
    for (int64_t i = 0; same && i < mh_gguf_n_tensors(a); i++) {
        const mh_gguf_tensor *ta = mh_gguf_tensor_at(a, i), *tb = mh_gguf_find_tensor(b, ta->name);
        same = tb && ta->ggml_type == tb->ggml_type && ta->n_dims == tb->n_dims &&
               !memcmp(ta->ne, tb->ne, sizeof ta->ne) && !memcmp(ta->data, tb->data, (size_t)ta->nbytes);
        if (!same) fprintf(stderr, "  tensor %s differs\n", ta->name);
    }
    mh_gguf_close(a);
    mh_gguf_close(b);
    return same;
}

static void test_qwen2moe_folder(void)
{
    char tb[4096], gguf[128], dir[128], out[160];
    const char *tok = test_data_path("vectors/tokenizer/hf-smollm2/tokenizer.json", tb);
    if (!tok) TEST_SKIP("vectors/tokenizer/hf-smollm2/tokenizer.json missing");
    mh_create_config c = { .arch = "qwen2moe", .n_layer = L, .n_embd = E, .n_ff = 128, .n_head = 2,
                           .n_head_kv = 1, .n_vocab = 300, .n_ctx = 256, .rope_base = 1e6, .rms_eps = 1e-6,
                           .qkv_bias = true, .std = 0.25, .n_expert = X, .n_expert_used = K,
                           .n_ff_exp = F_EXP, .n_ff_shexp = F_SH };
    mh_create_opts co = { .ftype = MH_FTYPE_F16, .seed = 5, .tokenizer = tok };
    mh_err err = {0};
    snprintf(gguf, sizeof gguf, "%s/q.gguf", tmp);
    snprintf(dir, sizeof dir, "%s/q", tmp);
    snprintf(out, sizeof out, "%s/out.gguf", dir);
    CHECK_MSG(mh_create_model(&c, &co, gguf, NULL, &err) == MH_OK, "%s", err.msg);
    CHECK(make_folder(gguf, dir, tok, NULL, NULL) == 0);
    mh_model *gm = NULL, *fm = NULL;
    CHECK_MSG(mh_model_load(gguf, &gm, &err) == MH_OK, "%s", err.msg);
    int st = mh_model_load(dir, &fm, &err);
    double md = st == MH_OK ? max_logit_diff(gm, fm) : -1;
    bool bytes = st == MH_OK && mh_model_weight_bytes(gm) == mh_model_weight_bytes(fm) &&
                 mh_model_moe_idle_bytes(gm) == mh_model_moe_idle_bytes(fm) &&
                 mh_model_moe_idle_bytes(gm) == (size_t)(L * 3 * F_EXP * E * 2 * (X - K));
    mh_model_free(fm);
    mh_model_free(gm);
    CHECK_MSG(st == MH_OK, "%s", err.msg);
    printf("  qwen2moe folder: max |d| %.3g against its GGUF\n", md);
    CHECK(md == 0 && bytes);     /* the same F16 bytes through the same kernels */
    mh_convert_opts o = { .ftype = MH_FTYPE_F16 };
    mh_convert_stats cs;
    CHECK_MSG(mh_convert_hf(dir, out, &o, &cs, &err) == MH_OK, "%s", err.msg);
    CHECK(!strcmp(cs.arch, "qwen2moe"));
    CHECK(same_tensors(gguf, out));
    rm_folder(dir);
}

/* dir from the tiny GGUF with extra config keys / a tensor left out must be
 * refused by load and convert, both naming want. */
static int refused(const char *gguf, const char *tok, const char *extra, const char *skip, const char *want)
{
    char dir[128], out[160];
    snprintf(dir, sizeof dir, "%s/bad", tmp);
    snprintf(out, sizeof out, "%s/out.gguf", dir);
    mh_model *m = NULL;
    mh_err le = {0}, ce = {0};
    mh_convert_opts o = { .ftype = MH_FTYPE_Q8_0 };
    int ok = make_folder(gguf, dir, tok, extra, skip) == 0 && mh_model_load(dir, &m, &le) != MH_OK &&
             mh_convert_hf(dir, out, &o, NULL, &ce) != MH_OK && strstr(le.msg, want) && strstr(ce.msg, want) &&
             access(out, F_OK) != 0;
    if (!ok) fprintf(stderr, "  want '%s'; load: '%s'; convert: '%s'\n", want, le.msg, ce.msg);
    mh_model_free(m);
    rm_folder(dir);
    return ok;
}

static void test_refusals(void)
{
    char tb[4096], gguf[128];
    const char *tok = test_data_path("vectors/tokenizer/hf-smollm2/tokenizer.json", tb);
    if (!tok) TEST_SKIP("vectors/tokenizer/hf-smollm2/tokenizer.json missing");
    snprintf(gguf, sizeof gguf, "%s/q.gguf", tmp);
    if (access(gguf, R_OK)) TEST_SKIP("test_qwen2moe_folder made no GGUF");
    CHECK(refused(gguf, tok, ", \"norm_topk_prob\": true", NULL, "norm_topk_prob true is not supported"));
    CHECK(refused(gguf, tok, ", \"decoder_sparse_step\": 2", NULL, "decoder_sparse_step must be 1"));
    CHECK(refused(gguf, tok, ", \"mlp_only_layers\": [0]", NULL, "mlp_only_layers must be empty"));
    /* a head_dim no model has would size rope tables of gigabytes */
    CHECK(refused(gguf, tok, ", \"head_dim\": 131072", NULL, "bad head_dim 131072"));
    CHECK(refused(gguf, tok, NULL, "model.layers.1.mlp.experts.3.up_proj.weight",
                  "'model.layers.1.mlp.experts.3.up_proj.weight' is missing"));
    CHECK(refused(gguf, tok, NULL, "model.layers.0.mlp.shared_expert_gate.weight",
                  "'model.layers.0.mlp.shared_expert_gate.weight' is missing"));
    remove(gguf);
}

int main(void)
{
    snprintf(tmp, sizeof tmp, "/tmp/mh_convmoe_XXXXXX");
    if (!mkdtemp(tmp)) return 1;
    TEST_RUN(test_qwen2moe_folder);
    TEST_RUN(test_refusals);
    char p[128];
    snprintf(p, sizeof p, "%s/q.gguf", tmp);
    remove(p);
    rmdir(tmp);
    return TEST_REPORT();
}
