/* test_llama_hf.c: Hugging Face checkpoint directories (config.json +
 * safetensors) loaded by engine/model/llama_hf.c: the BF16 HF copy of
 * mh-smol-llama-17m against its F16 GGUF and llama.cpp's reference logits, a
 * sharded qwen2 checkpoint rebuilt from its GGUF (bit-identical logits),
 * llama3 rope scaling, and clear errors for bad configs and tensors. */
#include <cJSON.h>
#include <dirent.h>
#include <stdint.h>
#include "harness.h"
#include "mh/gguf.h"
#include "mh/model.h"
#include "mh/safetensors.h"
#include "mh/tensor.h"
#include "../../engine/model/model_internal.h"   /* m->st: the shard count */

/* ===== helpers ===== */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    if (buf) buf[n] = 0;
    fclose(f);
    return buf;
}

static int write_text(const char *dir, const char *name, const char *text)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) return -1;
    int ok = fputs(text, f) >= 0;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* Removes a flat temporary directory and its files. */
static void rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[4096];
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

static int argmax(const float *x, int64_t n)
{
    int a = 0;
    for (int64_t j = 1; j < n; j++) if (x[j] > x[a]) a = (int)j;
    return a;
}

/* ===== smol-llama: HF BF16 directory vs F16 GGUF and llama.cpp ===== */

typedef struct cmp_stats {
    double flip_gap;         /* in: a changed argmax counts where the reference's top-2 gap exceeds this */
    double max_vs_gguf, max_vs_ref, sum_vs_ref;
    long n_ref;
    int flips, prompts, greedy_same;
} cmp_stats;

/* Greedy ids from the prompt's cache must match the reference up to its first near-tie. */
static int greedy_matches(mh_model *m, mh_kv_cache *c, const float *last, const cJSON *p)
{
    const cJSON *g = cJSON_GetObjectItem(p, "greedy");
    const cJSON *ids = cJSON_GetObjectItem(g, "ids"), *margins = cJSON_GetObjectItem(g, "top1_top2_margins");
    int64_t V = mh_model_hparams(m)->n_vocab;
    float *step = malloc(sizeof(float) * (size_t)V);
    const float *lg = last;
    int same = 1;
    mh_err err;
    for (int i = 0; i < cJSON_GetArraySize(ids) && same; i++) {
        if (cJSON_GetArrayItem(margins, i)->valuedouble < 0.2) break;
        int32_t tok = argmax(lg, V);
        if (tok != cJSON_GetArrayItem(ids, i)->valueint) same = 0;
        else if (mh_model_forward(m, c, &tok, 1, step, false, &err)) same = 0;
        lg = step;
    }
    free(step);
    return same;
}

static int compare_prompt(mh_model *hf, mh_model *gg, const cJSON *p, cmp_stats *s)
{
    const cJSON *toks = cJSON_GetObjectItem(p, "tokens"), *top = cJSON_GetObjectItem(p, "top20_per_position");
    int n = cJSON_GetArraySize(toks);
    int64_t V = mh_model_hparams(hf)->n_vocab;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)n);
    float *a = malloc(sizeof(float) * (size_t)(n * V)), *b = malloc(sizeof(float) * (size_t)(n * V));
    for (int i = 0; i < n; i++) ids[i] = cJSON_GetArrayItem(toks, i)->valueint;
    mh_err err = {0};
    mh_kv_cache *ca = mh_kv_cache_new(hf, 512, &err), *cb = mh_kv_cache_new(gg, 512, &err);
    int bad = !ca || !cb || mh_model_forward(hf, ca, ids, n, a, true, &err) ||
              mh_model_forward(gg, cb, ids, n, b, true, &err);
    if (bad) fprintf(stderr, "  forward: %s\n", err.msg);
    for (int64_t k = 0; !bad && k < n * V; k++) s->max_vs_gguf = fmax(s->max_vs_gguf, fabs(a[k] - b[k]));
    for (int i = 0; !bad && i < n; i++) {
        const cJSON *row = cJSON_GetArrayItem(top, i), *e;
        const float *lg = a + (size_t)i * (size_t)V;
        double gap = cJSON_GetArrayItem(cJSON_GetArrayItem(row, 0), 1)->valuedouble -
                     cJSON_GetArrayItem(cJSON_GetArrayItem(row, 1), 1)->valuedouble;
        if (argmax(lg, V) != cJSON_GetArrayItem(cJSON_GetArrayItem(row, 0), 0)->valueint && gap > s->flip_gap)
            s->flips++;
        cJSON_ArrayForEach(e, row) {
            double d = fabs(lg[cJSON_GetArrayItem(e, 0)->valueint] - cJSON_GetArrayItem(e, 1)->valuedouble);
            s->max_vs_ref = fmax(s->max_vs_ref, d);
            s->sum_vs_ref += d;
            s->n_ref++;
        }
    }
    if (!bad) s->greedy_same += greedy_matches(hf, ca, a + (size_t)(n - 1) * (size_t)V, p);
    s->prompts++;
    mh_kv_cache_free(ca);
    mh_kv_cache_free(cb);
    free(ids); free(a); free(b);
    return bad;
}

/* Runs the reference prompts through the HF checkpoint at dir and the F16
 * GGUF; 0 ok, 1 failure (message printed), -1 data missing. */
static int compare_smol(const char *dir, double flip_gap, cmp_stats *s)
{
    char gp[4096], rp[4096];
    memset(s, 0, sizeof *s);
    s->flip_gap = flip_gap;
    if (!test_data_path("models/mh-smol-llama-17m-F16.gguf", gp) ||
        !test_data_path("vectors/reference/mh-smol-llama-17m-F16.json", rp))
        return -1;
    mh_model *hf = NULL, *gg = NULL;
    mh_err err = {0};
    char *txt = read_file(rp);
    cJSON *ref = cJSON_Parse(txt), *p;
    free(txt);
    int bad = !ref || mh_model_load(dir, &hf, &err) || mh_model_load(gp, &gg, &err);
    if (bad) fprintf(stderr, "  load: %s\n", err.msg);
    const mh_hparams *a = hf ? mh_model_hparams(hf) : NULL, *b = gg ? mh_model_hparams(gg) : NULL;
    if (!bad && !(a->n_vocab == b->n_vocab && a->n_embd == b->n_embd && a->n_layer == b->n_layer &&
                  a->n_head == b->n_head && a->n_head_kv == b->n_head_kv && a->head_dim == b->head_dim &&
                  a->n_ff == b->n_ff && a->n_rot == b->n_rot && a->n_ctx_train == b->n_ctx_train &&
                  a->rope_base == b->rope_base && a->rms_eps == b->rms_eps &&
                  a->tied_embeddings && b->tied_embeddings && !strcmp(a->arch_name, "llama") &&
                  a->rope_neox && !b->rope_neox &&      /* rotate-half rows, read as they are */
                  mh_model_n_params(hf) == mh_model_n_params(gg))) {
        fprintf(stderr, "  hparams differ from the GGUF's\n");
        bad = 1;
    }
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(ref, "prompts")) if (!bad) bad |= compare_prompt(hf, gg, p, s);
    cJSON_Delete(ref);
    mh_model_free(hf);
    mh_model_free(gg);
    printf("  %s: |d| vs F16 gguf max %.4f; vs llama.cpp top20 max %.4f mean %.4f; greedy same %d/%d, "
           "flips %d\n", strrchr(dir, '/') + 1, s->max_vs_gguf, s->max_vs_ref,
           s->sum_vs_ref / (double)(s->n_ref ? s->n_ref : 1), s->greedy_same, s->prompts, s->flips);
    return bad || !s->prompts;
}

/* The shipped BF16 directory. BF16 weights run with activations rounded to
 * bf16 (llama.cpp's vec_dot_type), so it is held to the BF16 tolerances of
 * test_llama.c (0.2 against llama.cpp); a wrong rope layout gives several units.
 * The reference is llama.cpp on the F16 file, so a top-2 pair closer than
 * that 0.2 may swap on bf16 rounding alone: flips count above it (measured:
 * one swap at a 0.07 gap with vdpbf16ps's pair order, max |d| 0.18 either order). */
static void test_smol_bf16_dir(void)
{
    char dp[4096];
    cmp_stats s;
    if (!test_data_path("models/hf/mh-smol-llama-17m/model.safetensors", dp))
        TEST_SKIP("models/hf/mh-smol-llama-17m missing");
    *strrchr(dp, '/') = 0;
    int r = compare_smol(dp, 0.2, &s);
    if (r < 0) TEST_SKIP("models/mh-smol-llama-17m-F16.gguf or its reference is missing");
    CHECK(r == 0);
    CHECK(s.max_vs_gguf <= 0.4);
    CHECK(s.max_vs_ref <= 0.2);
    CHECK(s.sum_vs_ref / (double)s.n_ref <= 0.05);
    CHECK(s.flips == 0);
    CHECK(s.greedy_same == s.prompts);
}

/* The same weights converted to F16 in a temporary directory: the GGUF F16
 * holds the same values with q/k rows permuted, so only the rope layout (and
 * with it the order of the q.k sums) differs. Measured max 0.026: rounding
 * activations to f16 before each matmul turns last-bit differences into
 * f16 steps. Held to test_llama.c's F16 tolerance. */
static int write_f16_copy(const char *src, const char *dir)
{
    mh_err err = {0};
    mh_safetensors *st = mh_safetensors_open(src, &err);
    int n = st ? mh_safetensors_count(st) : 0, rc = st ? 0 : -1;
    mh_st_named *ts = calloc((size_t)n + 1, sizeof *ts);
    for (int i = 0; i < n && !rc; i++) {
        mh_tensor *t = mh_safetensors_tensor(st, i, &err);
        ts[i].name = mh_safetensors_info(st, i)->name;
        ts[i].tensor = t ? mh_tensor_to(t, MH_DTYPE_F16, &err) : NULL;
        mh_tensor_release(t);
        if (!ts[i].tensor) rc = -1;
    }
    char p[4200];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    if (!rc) rc = mh_safetensors_save(p, ts, n, NULL, 0, &err) ? -1 : 0;
    snprintf(p, sizeof p, "%s/config.json", src);
    char *cfg = read_file(p);
    if (!rc) rc = cfg ? write_text(dir, "config.json", cfg) : -1;
    free(cfg);
    for (int i = 0; i < n; i++) mh_tensor_release((mh_tensor *)ts[i].tensor);
    free(ts);
    mh_safetensors_close(st);
    if (rc) fprintf(stderr, "  f16 copy: %s\n", err.msg);
    return rc;
}

static void test_smol_f16_copy(void)
{
    char src[4096], dir[] = "/tmp/mh_hf_smol16_XXXXXX";
    cmp_stats s;
    if (!test_data_path("models/hf/mh-smol-llama-17m/model.safetensors", src))
        TEST_SKIP("models/hf/mh-smol-llama-17m missing");
    *strrchr(src, '/') = 0;
    CHECK(mkdtemp(dir) != NULL);
    int w = write_f16_copy(src, dir), r = w ? 1 : compare_smol(dir, 0.05, &s);
    rm_dir(dir);
    if (r < 0) TEST_SKIP("models/mh-smol-llama-17m-F16.gguf or its reference is missing");
    CHECK(w == 0 && r == 0);
    CHECK(s.max_vs_gguf <= 0.05);
    CHECK(s.max_vs_ref <= 0.05);
    CHECK(s.sum_vs_ref / (double)s.n_ref <= 0.01);
    CHECK(s.flips == 0);
    CHECK(s.greedy_same == s.prompts);
}

/* The same directory through its config.json path, and the model's footprint. */
static void test_config_path(void)
{
    char cp[4096];
    if (!test_data_path("models/hf/mh-smol-llama-17m/config.json", cp))
        TEST_SKIP("models/hf/mh-smol-llama-17m missing");
    mh_model *m = NULL;
    mh_err err = {0};
    CHECK_MSG(mh_model_load(cp, &m, &err) == MH_OK, "%s", err.msg);
    CHECK(mh_model_gguf(m) == NULL);
    /* all 38 tensors are BF16: 2 bytes per parameter, embeddings counted once */
    CHECK(mh_model_weight_bytes(m) == (size_t)mh_model_n_params(m) * 2);
    CHECK(m->st != NULL && mh_safetensors_shard_count(m->st) == 1);
    mh_model_free(m);
}

/* ===== qwen2: a sharded HF checkpoint rebuilt from the GGUF ===== */

/* The HF name of a GGUF tensor (qwen2 rows need no permutation: both NEOX). */
static int hf_name(const char *gg, char *out, size_t n)
{
    static const char *map[][2] = {
        { "attn_norm.weight", "input_layernorm.weight" }, { "attn_q.weight", "self_attn.q_proj.weight" },
        { "attn_k.weight", "self_attn.k_proj.weight" }, { "attn_v.weight", "self_attn.v_proj.weight" },
        { "attn_q.bias", "self_attn.q_proj.bias" }, { "attn_k.bias", "self_attn.k_proj.bias" },
        { "attn_v.bias", "self_attn.v_proj.bias" }, { "attn_output.weight", "self_attn.o_proj.weight" },
        { "ffn_norm.weight", "post_attention_layernorm.weight" }, { "ffn_gate.weight", "mlp.gate_proj.weight" },
        { "ffn_up.weight", "mlp.up_proj.weight" }, { "ffn_down.weight", "mlp.down_proj.weight" },
    };
    int layer, off = 0;
    if (!strcmp(gg, "token_embd.weight")) return snprintf(out, n, "model.embed_tokens.weight"), 0;
    if (!strcmp(gg, "output_norm.weight")) return snprintf(out, n, "model.norm.weight"), 0;
    if (!strcmp(gg, "output.weight")) return snprintf(out, n, "lm_head.weight"), 0;
    if (sscanf(gg, "blk.%d.%n", &layer, &off) != 1 || !off) return -1;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(gg + off, map[i][0]))
            return snprintf(out, n, "model.layers.%d.%s", layer, map[i][1]), 0;
    return -1;
}

/* Writes every tensor of g into dir as two shards plus an index; shard 1
 * holds the embedding and layer 0. Returns the tensor count or -1. */
static int write_shards(const mh_gguf *g, const char *dir)
{
    int64_t n = mh_gguf_n_tensors(g);
    mh_st_named *part[2] = { calloc((size_t)n, sizeof(mh_st_named)), calloc((size_t)n, sizeof(mh_st_named)) };
    char (*names)[96] = calloc((size_t)n, 96);
    int cnt[2] = {0, 0}, rc = 0;
    cJSON *idx = cJSON_CreateObject(), *wm = cJSON_AddObjectToObject(idx, "weight_map");
    for (int64_t i = 0; i < n && !rc; i++) {
        const mh_gguf_tensor *t = mh_gguf_tensor_at(g, i);
        if (hf_name(t->name, names[i], 96) || t->dtype < 0) { rc = -1; break; }
        int64_t shape[2] = { t->ne[1], t->ne[0] };
        int nd = t->n_dims == 1 ? 1 : 2;
        if (nd == 1) shape[0] = t->ne[0];
        mh_storage *s = mh_storage_wrap((void *)t->data, (size_t)t->nbytes, NULL, NULL, NULL);
        mh_tensor *v = s ? mh_tensor_from_storage(s, 0, (mh_dtype)t->dtype, nd, shape, NULL, NULL) : NULL;
        mh_storage_release(s);
        int k = (!strncmp(t->name, "blk.0.", 6) || !strcmp(t->name, "token_embd.weight")) ? 0 : 1;
        part[k][cnt[k]++] = (mh_st_named){ names[i], v };
        cJSON_AddStringToObject(wm, names[i], k ? "model-00002-of-00002.safetensors"
                                                : "model-00001-of-00002.safetensors");
        if (!v) rc = -1;
    }
    char p[4096];
    for (int k = 0; k < 2 && !rc; k++) {
        snprintf(p, sizeof p, "%s/model-0000%d-of-00002.safetensors", dir, k + 1);
        rc = mh_safetensors_save(p, part[k], cnt[k], NULL, 0, NULL) ? -1 : 0;
    }
    char *js = cJSON_Print(idx);
    if (!rc) rc = write_text(dir, "model.safetensors.index.json", js);
    free(js);
    cJSON_Delete(idx);
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < cnt[k]; i++) mh_tensor_release((mh_tensor *)part[k][i].tensor);
        free(part[k]);
    }
    free(names);
    return rc ? -1 : (int)n;
}

static int write_qwen2_config(const char *dir, const mh_hparams *hp)
{
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"architectures\": [\"Qwen2ForCausalLM\"], \"hidden_act\": \"silu\", \"hidden_size\": %lld,"
             " \"intermediate_size\": %lld, \"num_hidden_layers\": %lld, \"num_attention_heads\": %lld,"
             " \"num_key_value_heads\": %lld, \"max_position_embeddings\": %lld, \"rms_norm_eps\": %.9g,"
             " \"rope_theta\": %.9g, \"vocab_size\": %lld, \"tie_word_embeddings\": %s,"
             " \"rope_scaling\": null, \"use_sliding_window\": false}",
             (long long)hp->n_embd, (long long)hp->n_ff, (long long)hp->n_layer, (long long)hp->n_head,
             (long long)hp->n_head_kv, (long long)hp->n_ctx_train, hp->rms_eps, hp->rope_base,
             (long long)hp->n_vocab, hp->tied_embeddings ? "true" : "false");
    return write_text(dir, "config.json", cfg);
}

/* Largest |d| between the two models' logits over a few tokens; -1 on error. */
static double max_logit_diff(mh_model *a, mh_model *b)
{
    int32_t ids[] = { 9707, 11, 1879, 0, 5, 42, 1000, 2 };
    int64_t V = mh_model_hparams(a)->n_vocab, n = 8;
    float *la = malloc(sizeof(float) * (size_t)(n * V)), *lb = malloc(sizeof(float) * (size_t)(n * V));
    mh_err err;
    mh_kv_cache *ca = mh_kv_cache_new(a, 64, &err), *cb = mh_kv_cache_new(b, 64, &err);
    double md = -1;
    for (int i = 0; i < n; i++) ids[i] %= (int32_t)V;
    if (ca && cb && !mh_model_forward(a, ca, ids, n, la, true, &err) &&
        !mh_model_forward(b, cb, ids, n, lb, true, &err)) {
        md = 0;
        for (int64_t k = 0; k < n * V; k++) md = fmax(md, fabs(la[k] - lb[k]));
    }
    mh_kv_cache_free(ca); mh_kv_cache_free(cb);
    free(la); free(lb);
    return md;
}

static void test_qwen2_sharded(void)
{
    char gp[4096], dir[] = "/tmp/mh_hf_qwen2_XXXXXX";
    if (!test_data_path("models/mh-tiny-qwen2-BF16.gguf", gp)) TEST_SKIP("models/mh-tiny-qwen2-BF16.gguf missing");
    mh_model *gg = NULL, *hf = NULL;
    mh_err err = {0};
    CHECK_MSG(mh_model_load(gp, &gg, &err) == MH_OK, "%s", err.msg);
    CHECK(mkdtemp(dir) != NULL);
    int n = write_shards(mh_model_gguf(gg), dir);
    int wc = write_qwen2_config(dir, mh_model_hparams(gg));
    int st = n > 0 && !wc ? mh_model_load(dir, &hf, &err) : -1;
    double md = st == MH_OK ? max_logit_diff(hf, gg) : -1;
    bool bias = st == MH_OK && mh_model_layer(hf, 0)->bq && mh_model_layer(hf, 0)->bk;
    bool shards = st == MH_OK && mh_safetensors_shard_count(hf->st) == 2;
    bool same_hp = st == MH_OK && mh_model_hparams(hf)->rope_neox &&
                   mh_model_n_params(hf) == mh_model_n_params(gg) &&
                   mh_model_hparams(hf)->tied_embeddings == mh_model_hparams(gg)->tied_embeddings;
    mh_model_free(hf);
    mh_model_free(gg);
    rm_dir(dir);
    printf("  qwen2 from %d tensors in 2 shards: max |d| %.3g\n", n, md);
    CHECK(n > 0 && wc == 0);
    CHECK_MSG(st == MH_OK, "%s", err.msg);
    CHECK(bias && shards && same_hp);
    CHECK(md == 0);     /* the same bytes through the same kernels */
}

/* ===== a tiny synthetic llama for rope scaling and error paths ===== */

enum { T_E = 64, T_HEADS = 2, T_KV = 1, T_HD = 32, T_FF = 96, T_V = 40, T_L = 2 };

typedef struct tiny_opts {
    const char *skip;       /* tensor left out */
    const char *reshape;    /* tensor written with one column too many */
    const char *as_i32;     /* tensor written as I32 */
    bool lm_head;           /* write lm_head.weight */
} tiny_opts;

static mh_tensor *tiny_tensor(const char *name, int nd, int64_t rows, int64_t cols, const tiny_opts *o,
                              uint32_t *seed)
{
    int64_t shape[2] = { rows, cols };
    if (nd == 1) shape[0] = cols;
    if (o->reshape && !strcmp(name, o->reshape)) shape[nd - 1]++;
    bool i32 = o->as_i32 && !strcmp(name, o->as_i32);
    mh_tensor *t = mh_tensor_new(i32 ? MH_DTYPE_I32 : MH_DTYPE_F32, nd, shape, NULL);
    float *f = t ? mh_tensor_data(t) : NULL;
    for (int64_t i = 0; f && !i32 && i < mh_tensor_numel(t); i++) {
        *seed = *seed * 1664525u + 1013904223u;
        f[i] = nd == 1 ? 1.0f : ((float)(*seed >> 8) / 16777216.0f - 0.5f) * 0.2f;
    }
    return t;
}

static int write_tiny(const char *dir, const char *config, const tiny_opts *o)
{
    static const struct { const char *n; int nd, r, c; } lt[] = {
        { "input_layernorm.weight", 1, 1, T_E }, { "self_attn.q_proj.weight", 2, T_HEADS * T_HD, T_E },
        { "self_attn.k_proj.weight", 2, T_KV * T_HD, T_E }, { "self_attn.v_proj.weight", 2, T_KV * T_HD, T_E },
        { "self_attn.o_proj.weight", 2, T_E, T_HEADS * T_HD }, { "post_attention_layernorm.weight", 1, 1, T_E },
        { "mlp.gate_proj.weight", 2, T_FF, T_E }, { "mlp.up_proj.weight", 2, T_FF, T_E },
        { "mlp.down_proj.weight", 2, T_E, T_FF },
    };
    enum { MAXT = 3 + T_L * 9 };
    char names[MAXT][96];
    mh_st_named ts[MAXT];
    int n = 0;
    uint32_t seed = 12345;
    snprintf(names[n++], 96, "model.embed_tokens.weight");
    snprintf(names[n++], 96, "model.norm.weight");
    if (o->lm_head) snprintf(names[n++], 96, "lm_head.weight");
    for (int l = 0; l < T_L; l++)
        for (int k = 0; k < 9; k++) snprintf(names[n++], 96, "model.layers.%d.%s", l, lt[k].n);
    int w = 0, rc = 0;
    for (int i = 0; i < n; i++) {
        if (o->skip && !strcmp(names[i], o->skip)) continue;
        const char *dot = strrchr(names[i], '.');
        int nd = 2, r = T_V, c = T_E;
        if (!strcmp(names[i], "model.norm.weight")) nd = 1, r = 1;
        for (int k = 0; k < 9; k++) {
            size_t ln = strlen(lt[k].n);
            if (dot && strlen(names[i]) > ln && !strcmp(names[i] + strlen(names[i]) - ln, lt[k].n))
                nd = lt[k].nd, r = lt[k].r, c = lt[k].c;
        }
        ts[w].name = names[i];
        ts[w].tensor = tiny_tensor(names[i], nd, r, c, o, &seed);
        if (!ts[w++].tensor) rc = -1;
    }
    char p[4096];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    if (!rc) rc = mh_safetensors_save(p, ts, w, NULL, 0, NULL) ? -1 : 0;
    for (int i = 0; i < w; i++) mh_tensor_release((mh_tensor *)ts[i].tensor);
    return rc ? rc : write_text(dir, "config.json", config);
}

#define TINY_BASE "\"hidden_size\": 64, \"intermediate_size\": 96, \"num_hidden_layers\": 2, " \
    "\"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"vocab_size\": 40, \"rms_norm_eps\": 1e-5"
#define TINY_LLAMA "{\"architectures\": [\"LlamaForCausalLM\"], " TINY_BASE "}"

/* The tiny llama config with the keys of the JSON object over replaced or
 * added (a raw concatenation would leave duplicate keys). Caller frees. */
static char *tiny_cfg(const char *over)
{
    cJSON *base = cJSON_Parse(TINY_LLAMA), *o = cJSON_Parse(over), *e;
    cJSON_ArrayForEach(e, o) {
        cJSON *v = cJSON_Duplicate(e, 1);
        if (cJSON_GetObjectItemCaseSensitive(base, e->string))
            cJSON_ReplaceItemInObjectCaseSensitive(base, e->string, v);
        else
            cJSON_AddItemToObject(base, e->string, v);
    }
    char *txt = cJSON_PrintUnformatted(base);
    cJSON_Delete(base);
    cJSON_Delete(o);
    return txt;
}

/* Loads a tiny checkpoint written with config and o; returns the status and
 * leaves the message in msg. With keep, *out gets the model. */
static int load_tiny(const char *config, tiny_opts o, char *msg, mh_model **out)
{
    char dir[] = "/tmp/mh_hf_tiny_XXXXXX";
    mh_model *m = NULL;
    mh_err err = {0};
    if (!mkdtemp(dir)) return -1;
    int st = write_tiny(dir, config, &o);
    if (!st) st = mh_model_load(dir, &m, &err);
    snprintf(msg, 512, "%s", err.msg);
    rm_dir(dir);    /* the mapping outlives the unlinked file */
    if (out) *out = m;
    else mh_model_free(m);
    return st;
}

static int load_tiny_cfg(const char *over, tiny_opts o, char *msg, mh_model **out)
{
    char *cfg = tiny_cfg(over);
    int st = load_tiny(cfg, o, msg, out);
    free(cfg);
    return st;
}

static void test_tiny_tied_and_lm_head(void)
{
    char msg[512];
    mh_model *m = NULL;
    CHECK_MSG(load_tiny(TINY_LLAMA, (tiny_opts){0}, msg, &m) == MH_OK, "%s", msg);
    const mh_hparams *hp = mh_model_hparams(m);
    bool ok = hp->tied_embeddings && hp->n_head_kv == 1 && hp->head_dim == 32 && hp->rope_neox &&
              hp->rope_base == 10000.0f && hp->n_ctx_train == 2048 && mh_model_globals_get(m)->rope_freqs == NULL;
    double md = max_logit_diff(m, m);
    mh_model_free(m);
    CHECK(ok);
    CHECK(md == 0);         /* runs, and is deterministic */
    CHECK(load_tiny_cfg("{\"tie_word_embeddings\": false}", (tiny_opts){ .lm_head = true },
                    msg, &m) == MH_OK);
    ok = !mh_model_hparams(m)->tied_embeddings && mh_model_globals_get(m)->output.data != mh_model_globals_get(m)->tok_embd.data;
    mh_model_free(m);
    CHECK(ok);
    /* tie_word_embeddings true ignores a stray lm_head, as transformers does */
    CHECK(load_tiny_cfg("{\"tie_word_embeddings\": true}", (tiny_opts){ .lm_head = true },
                    msg, &m) == MH_OK);
    ok = mh_model_hparams(m)->tied_embeddings && mh_model_globals_get(m)->output.data == mh_model_globals_get(m)->tok_embd.data;
    mh_model_free(m);
    CHECK(ok);
}

static void test_llama3_rope_scaling(void)
{
    char msg[512];
    mh_model *m = NULL;
    CHECK_MSG(load_tiny_cfg("{\"rope_theta\": 500000.0, \"rope_scaling\": {\"rope_type\": \"llama3\","
                        " \"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0,"
                        " \"original_max_position_embeddings\": 64}}", (tiny_opts){0}, msg, &m) == MH_OK,
              "%s", msg);
    float rf[T_HD / 2];
    bool have = mh_model_globals_get(m)->rope_freqs != NULL;
    if (have) memcpy(rf, mh_model_globals_get(m)->rope_freqs, sizeof rf);
    mh_model_free(m);
    CHECK(have);
    /* wavelengths 2*pi*500000^(2i/32): 6.3, 14.3 (< 64/4: kept), 32.4 (blended),
     * 73.6 and longer (> 64/1: divided by 8) */
    CHECK(rf[0] == 1.0f && rf[1] == 1.0f);
    double wl = 2 * M_PI * pow(500000.0, 4.0 / 32.0), smooth = (64.0 / wl - 1.0) / 3.0;
    CHECK_CLOSE(rf[2], 1.0 / ((1 - smooth) / 8.0 + smooth), 1e-5, 1e-5);
    CHECK(rf[2] > 1.0f && rf[2] < 8.0f);
    for (int i = 3; i < T_HD / 2; i++) CHECK(rf[i] == 8.0f);
    /* "type" is the older spelling of rope_type */
    CHECK(load_tiny_cfg("{\"rope_scaling\": {\"type\": \"llama3\", \"factor\": 8.0,"
                    " \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0,"
                    " \"original_max_position_embeddings\": 64}}", (tiny_opts){0}, msg, NULL) == MH_OK);
}

/* Each bad checkpoint fails with code and a message holding want. */
static int expect_error(const char *config, tiny_opts o, int code, const char *want)
{
    char msg[512] = "";
    int st = load_tiny(config, o, msg, NULL);
    if (st == code && strstr(msg, want)) return 1;
    fprintf(stderr, "  expected %d '%s', got %d '%s'\n", code, want, st, msg);
    return 0;
}

/* The same with the tiny llama config and the keys of over. */
static int expect_cfg_error(const char *over, tiny_opts o, int code, const char *want)
{
    char *cfg = tiny_cfg(over);
    int ok = expect_error(cfg, o, code, want);
    free(cfg);
    return ok;
}

static void test_bad_configs(void)
{
    tiny_opts z = {0};
    CHECK(expect_error("{\"architectures\": [\"GPT2LMHeadModel\"], " TINY_BASE "}", z, MH_EFORMAT,
                       "unsupported architecture 'GPT2LMHeadModel'"));
    CHECK(expect_error("{\"architectures\": [\"GPT2LMHeadModel\"], " TINY_BASE "}", z, MH_EFORMAT,
                       "Qwen2ForCausalLM"));
    CHECK(expect_error("{\"hidden_size\": 64}", z, MH_EFORMAT, "names no architecture"));
    CHECK(expect_error("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, "
                       "\"intermediate_size\": 96, \"num_hidden_layers\": 2, \"vocab_size\": 40}",
                       z, MH_EFORMAT, "lacks 'num_attention_heads'"));
    CHECK(expect_cfg_error("{\"hidden_size\": \"64\"}", z, MH_EFORMAT, "'hidden_size' must be"));
    CHECK(expect_cfg_error("{\"num_key_value_heads\": 3}", z, MH_EFORMAT, "heads 2/3"));
    CHECK(expect_cfg_error("{\"rope_theta\": -1}", z, MH_EFORMAT, "'rope_theta' must be"));
    CHECK(expect_cfg_error("{\"rope_scaling\": {\"rope_type\": \"dynamic\", \"factor\": 4}}", z,
                       MH_EFORMAT, "rope_scaling type 'dynamic' is not supported"));
    CHECK(expect_cfg_error("{\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8}}", z,
                       MH_EFORMAT, "'low_freq_factor'"));
    CHECK(expect_cfg_error("{\"hidden_act\": \"gelu\"}", z, MH_EFORMAT, "activation 'gelu'"));
    CHECK(expect_cfg_error("{\"attention_bias\": true}", z, MH_EFORMAT, "attention_bias"));
    CHECK(expect_error("{\"architectures\": [\"LlamaForCausalLM\"], ", z, MH_EFORMAT,
                       "config.json is not a JSON object"));
    CHECK(expect_error("[1, 2]", z, MH_EFORMAT, "not a JSON object"));
}

static void test_bad_tensors(void)
{
    const char *cfg = TINY_LLAMA;
    CHECK(expect_error(cfg, (tiny_opts){ .skip = "model.layers.1.mlp.up_proj.weight" }, MH_EFORMAT,
                       "tensor 'model.layers.1.mlp.up_proj.weight' is missing"));
    CHECK(expect_error(cfg, (tiny_opts){ .reshape = "model.layers.0.self_attn.k_proj.weight" }, MH_EFORMAT,
                       "'model.layers.0.self_attn.k_proj.weight' has shape (32,65), expected (32,64)"));
    CHECK(expect_error(cfg, (tiny_opts){ .reshape = "model.norm.weight" }, MH_EFORMAT,
                       "'model.norm.weight' has shape (65), expected (64)"));
    CHECK(expect_error(cfg, (tiny_opts){ .as_i32 = "model.layers.0.input_layernorm.weight" }, MH_EFORMAT,
                       "has dtype I32, expected F32, F16 or BF16"));
    CHECK(expect_cfg_error("{\"vocab_size\": 41}", (tiny_opts){0}, MH_EFORMAT,
                       "'model.embed_tokens.weight' has shape (40,64), expected (41,64)"));
    CHECK(expect_cfg_error("{\"tie_word_embeddings\": false}", (tiny_opts){0}, MH_EFORMAT,
                       "tensor 'lm_head.weight' is missing"));
    /* qwen2 needs its q/k/v biases */
    CHECK(expect_error("{\"architectures\": [\"Qwen2ForCausalLM\"], " TINY_BASE "}", (tiny_opts){0},
                       MH_EFORMAT, "tensor 'model.layers.0.self_attn.q_proj.bias' is missing"));
}

static void test_bad_dirs(void)
{
    char dir[] = "/tmp/mh_hf_empty_XXXXXX";
    mh_model *m = (mh_model *)1;
    mh_err err = {0};
    CHECK(mkdtemp(dir) != NULL);
    int st_noconf = mh_model_load(dir, &m, &err);
    bool msg1 = strstr(err.msg, "config.json") != NULL;
    int wr = write_text(dir, "config.json", TINY_LLAMA);
    int st_nost = mh_model_load(dir, &m, &err);
    bool msg2 = strstr(err.msg, "model.safetensors") != NULL;
    rm_dir(dir);
    CHECK(st_noconf == MH_EIO && msg1 && m == NULL);
    CHECK(wr == 0 && st_nost != MH_OK && msg2 && m == NULL);
    CHECK(mh_model_load("/nonexistent/dir/config.json", &m, &err) == MH_EIO);
}

int main(void)
{
    TEST_RUN(test_smol_bf16_dir);
    TEST_RUN(test_smol_f16_copy);
    TEST_RUN(test_config_path);
    TEST_RUN(test_qwen2_sharded);
    TEST_RUN(test_tiny_tied_and_lm_head);
    TEST_RUN(test_llama3_rope_scaling);
    TEST_RUN(test_bad_configs);
    TEST_RUN(test_bad_tensors);
    TEST_RUN(test_bad_dirs);
    return TEST_REPORT();
}
