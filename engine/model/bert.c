/* bert.c: encoder embedding models (GGUF "bert" and "nomic-bert"): their
 * tensors, a bidirectional forward over several texts at once (each text
 * attends to itself only, no KV cache), pooling and L2 normalisation.
 * Layer: engine/model (pure C11; mh/quant.h, mh/kernels.h, threadpool).
 * Tensor names, shapes and the graph follow llama.cpp c392e5094
 * (llama-model.cpp load_tensors, llama.cpp build_bert): post-norm layers with
 * LayerNorm(+bias); bert: learned positions, q/k/v/o and FFN biases, GELU;
 * nomic-bert: fused qkv, NEOX rope, SwiGLU, no biases. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mh/gguf.h"
#include "mh/kernels.h"
#include "mh/quant.h"
#include "mh/threadpool.h"
#include "model_internal.h"

typedef struct bert_layer {
    mh_weight wq, wk, wv;             /* bert: (E, E) each */
    mh_weight wqkv;                   /* nomic-bert: (3E, E) */
    mh_weight wo;                     /* (E, E) */
    mh_weight up, gate, down;         /* (F, E) (F, E) nomic only, (E, F) */
    const float *bq, *bk, *bv, *bo;   /* (E) bert, NULL for nomic */
    const float *b_up, *b_down;       /* (F) (E) bert */
    const float *ln1_w, *ln1_b;       /* (E) attn_output_norm */
    const float *ln2_w, *ln2_b;       /* (E) layer_output_norm */
} bert_layer;

struct mh_bert {
    const float *type0;               /* (E) row 0 of token_types: every token is "sentence A" */
    mh_weight pos;                    /* (n_ctx_train, E) bert only */
    const float *ln_w, *ln_b;         /* (E) token_embd_norm */
    bert_layer *L;                    /* (n_layer) */
};

/* ===== loading ===== */

void mh_bert_free(struct mh_bert *b)
{
    if (!b) return;
    free(b->L);
    free(b);
}

static int vec(mh_model *m, mh_tensor_getter get, const char *name, int64_t n, const float **out,
               mh_err *err)
{
    return mh_model_get_vec(m, get, name, n, true, out, err);
}

static int bind_layer(mh_model *m, mh_tensor_getter get, int64_t l, mh_err *err)
{
    const mh_hparams *hp = &m->hp;
    const bool nomic = hp->arch == MH_ARCH_NOMIC_BERT;
    const int64_t E = hp->n_embd, F = hp->n_ff;
    bert_layer *L = &m->bert->L[l];
    char n[96];
    int st = MH_OK;
#define NM(s) (snprintf(n, sizeof n, "blk.%lld." s, (long long)l), n)
#define W(s, r, c, dst) if (!st) st = mh_model_get_weight(m, get, NM(s), r, c, true, dst, err)
#define V(s, len, dst) if (!st) st = vec(m, get, NM(s), len, dst, err)
    if (nomic) {
        W("attn_qkv.weight", 3 * E, E, &L->wqkv);
    } else {
        W("attn_q.weight", E, E, &L->wq); V("attn_q.bias", E, &L->bq);
        W("attn_k.weight", E, E, &L->wk); V("attn_k.bias", E, &L->bk);
        W("attn_v.weight", E, E, &L->wv); V("attn_v.bias", E, &L->bv);
    }
    W("attn_output.weight", E, E, &L->wo);
    V("attn_output_norm.weight", E, &L->ln1_w); V("attn_output_norm.bias", E, &L->ln1_b);
    W("ffn_up.weight", F, E, &L->up);
    W("ffn_down.weight", E, F, &L->down);
    if (nomic) {
        W("ffn_gate.weight", F, E, &L->gate);
    } else {
        V("attn_output.bias", E, &L->bo);
        V("ffn_up.bias", F, &L->b_up);
        V("ffn_down.bias", E, &L->b_down);
    }
    V("layer_output_norm.weight", E, &L->ln2_w); V("layer_output_norm.bias", E, &L->ln2_b);
#undef NM
#undef W
#undef V
    return st;
}

int mh_bert_bind(mh_model *m, mh_tensor_getter get, mh_err *err)
{
    mh_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd;
    m->bert = calloc(1, sizeof *m->bert);
    if (!m->bert || !(m->bert->L = calloc((size_t)hp->n_layer, sizeof(bert_layer))))
        return mh_err_set(err, MH_ENOMEM, "model: out of memory");
    struct mh_bert *b = m->bert;
    if (m->gguf) {                          /* an HF folder's config.json gave it */
        const mh_gguf_tensor *tt = mh_gguf_find_tensor(m->gguf, "token_types.weight");
        hp->n_token_types = tt ? tt->ne[1] : 0;
    }
    if (hp->n_token_types < 1 || hp->n_token_types > 1024)
        return mh_err_set(err, MH_EFORMAT, "model: %s needs tensor 'token_types.weight' (n_embd, "
                          "token types)", hp->arch_name);
    mh_weight types;
    int st = mh_model_get_weight(m, get, "token_embd.weight", hp->n_vocab, E, true, &m->g.tok_embd, err);
    if (!st) st = mh_model_get_weight(m, get, "token_types.weight", hp->n_token_types, E, true, &types, err);
    if (!st && types.dtype == MH_DTYPE_F32) b->type0 = types.data;
    else if (!st) {                         /* stored quantized: row 0 as an owned f32 copy */
        float *row = malloc(sizeof(float) * (size_t)E);
        if (!row) return mh_err_set(err, MH_ENOMEM, "model: out of memory");
        if ((st = mh_model_own(m, row, err))) return st;
        if (mh_dequantize_row(types.dtype, types.data, row, E))
            return mh_err_set(err, MH_EFORMAT, "model: cannot read token_types.weight");
        b->type0 = row;
    }
    if (!st && hp->arch == MH_ARCH_BERT)
        st = mh_model_get_weight(m, get, "position_embd.weight", hp->n_ctx_train, E, true, &b->pos, err);
    if (!st) st = vec(m, get, "token_embd_norm.weight", E, &b->ln_w, err);
    if (!st) st = vec(m, get, "token_embd_norm.bias", E, &b->ln_b, err);
    for (int64_t l = 0; l < hp->n_layer && !st; l++) st = bind_layer(m, get, l, err);
    return st;
}

bool mh_model_is_encoder(const mh_model *m) { return m->hp.encoder; }

/* ===== small kernels ===== */

/* y = (x - mean) / sqrt(var + eps) * w + b over one row of n (ggml_norm,
 * then the weight and bias; sums in double as ggml does). */
static void layer_norm(int64_t n, const float *x, const float *w, const float *b, float eps, float *y)
{
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < n; i++) sum += x[i];
    float mean = (float)(sum / (double)n);
    for (int64_t i = 0; i < n; i++) {
        float d = x[i] - mean;
        sq += (double)(d * d);
    }
    float scale = 1.0f / sqrtf((float)(sq / (double)n) + eps);
    for (int64_t i = 0; i < n; i++) y[i] = (x[i] - mean) * scale * w[i] + b[i];
}

static void add_bias(float *y, const float *b, int64_t T, int64_t n)
{
    if (!b) return;
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < n; i++) y[t * n + i] += b[i];
}

/* NEOX rope of the first n_rot dims of each head of one row at position
 * p: pairs (i, i + n_rot/2); the angle p * base^(-2i/n_rot) is built by
 * repeated products in float, as ggml's rope cache does. */
static void rope_row(const mh_hparams *hp, float *v, int64_t p)
{
    const int64_t half = hp->n_rot / 2, hd = hp->head_dim;
    const float step = powf(hp->rope_base, -2.0f / (float)hp->n_rot);
    float theta = (float)p;
    for (int64_t i = 0; i < half; i++, theta *= step) {
        float c = cosf(theta), s = sinf(theta);
        for (int64_t h = 0; h < hp->n_head; h++) {
            float *x = v + h * hd;
            float x0 = x[i], x1 = x[i + half];
            x[i] = x0 * c - x1 * s;
            x[i + half] = x0 * s + x1 * c;
        }
    }
}

/* ===== the forward ===== */

typedef struct bert_run {
    const mh_model *m;
    int n_seqs;
    const int64_t *n;        /* (n_seqs) tokens of each text */
    const int64_t *start;    /* (n_seqs) first row of each text */
    int64_t T, max_n;
    const float *q, *k, *v;  /* rows (T, ld): head h at column h * head_dim */
    int64_t ld;
    float *out;              /* (T, E) attention output */
    float *scores;           /* (n_seqs * n_head, max_n) one row per task */
} bert_run;

/* Tasks [t0, t1): one (text, head) each: softmax(q k^T * scale) v over the
 * text's own rows, no mask (every token sees every token of its text). */
static void attn_task(void *ctx, int64_t t0, int64_t t1)
{
    const bert_run *r = ctx;
    const mh_hparams *hp = &r->m->hp;
    const mh_kernels *K = mh_kernels_get();
    const int64_t hd = hp->head_dim, E = hp->n_embd;
    for (int64_t task = t0; task < t1; task++) {
        int64_t s = task / hp->n_head, h = task % hp->n_head, n = r->n[s], r0 = r->start[s];
        float *sc = r->scores + task * r->max_n;
        for (int64_t i = 0; i < n; i++) {
            const float *q = r->q + (r0 + i) * r->ld + h * hd;
            for (int64_t j = 0; j < n; j++)
                sc[j] = K->dot(hd, q, r->k + (r0 + j) * r->ld + h * hd) * hp->attn_scale;
            K->softmax_row(n, sc, sc, false);
            float *o = r->out + (r0 + i) * E + h * hd;
            memset(o, 0, sizeof(float) * (size_t)hd);
            for (int64_t j = 0; j < n; j++) {
                const float *vv = r->v + (r0 + j) * r->ld + h * hd;
                for (int64_t d = 0; d < hd; d++) o[d] += sc[j] * vv[d];
            }
        }
    }
}

typedef struct bert_buf {
    float *x;        /* (T, E) hidden state */
    float *qkv;      /* (T, 3E) */
    float *att;      /* (T, E) */
    float *tmp;      /* (T, E) */
    float *up;       /* (T, F) */
    float *gate;     /* (T, F) nomic only */
    float *scores;   /* (n_seqs * n_head, max_n) */
    int64_t *start;  /* (n_seqs) */
} bert_buf;

static void buf_free(bert_buf *b)
{
    free(b->x); free(b->qkv); free(b->att); free(b->tmp); free(b->up); free(b->gate);
    free(b->scores); free(b->start);
}

static int buf_alloc(const mh_hparams *hp, int n_seqs, int64_t T, int64_t max_n, bert_buf *b, mh_err *err)
{
    const size_t E = (size_t)hp->n_embd, F = (size_t)hp->n_ff, t = (size_t)T, f = sizeof(float);
    memset(b, 0, sizeof *b);
    b->x = malloc(t * E * f);
    b->qkv = malloc(t * 3 * E * f);
    b->att = malloc(t * E * f);
    b->tmp = malloc(t * E * f);
    b->up = malloc(t * F * f);
    b->gate = hp->arch == MH_ARCH_NOMIC_BERT ? malloc(t * F * f) : NULL;
    b->scores = malloc((size_t)n_seqs * (size_t)hp->n_head * (size_t)max_n * f);
    b->start = malloc((size_t)n_seqs * sizeof *b->start);
    if (b->x && b->qkv && b->att && b->tmp && b->up && b->scores && b->start &&
        (b->gate || hp->arch != MH_ARCH_NOMIC_BERT))
        return MH_OK;
    buf_free(b);
    return mh_err_set(err, MH_ENOMEM, "embed: out of memory for %lld tokens", (long long)T);
}

/* token + type-0 (+ position) embeddings, then token_embd_norm. */
static int embed_tokens(const mh_model *m, const int32_t *const *tok, const int64_t *n, int n_seqs,
                        bert_buf *b, mh_err *err)
{
    const mh_hparams *hp = &m->hp;
    const struct mh_bert *bt = m->bert;
    const int64_t E = hp->n_embd;
    size_t erow = mh_dtype_row_size(m->g.tok_embd.dtype, E), prow = 0;
    if (bt->pos.data) prow = mh_dtype_row_size(bt->pos.dtype, E);
    int64_t r = 0;
    for (int s = 0; s < n_seqs; s++) {
        b->start[s] = r;
        for (int64_t p = 0; p < n[s]; p++, r++) {
            float *x = b->x + r * E, *t = b->tmp + r * E;
            int st = mh_dequantize_row(m->g.tok_embd.dtype,
                                       (const uint8_t *)m->g.tok_embd.data + (size_t)tok[s][p] * erow, x, E);
            if (!st && bt->pos.data)
                st = mh_dequantize_row(bt->pos.dtype, (const uint8_t *)bt->pos.data + (size_t)p * prow, t, E);
            if (st) return mh_err_set(err, st, "embed: cannot read the embedding rows");
            for (int64_t i = 0; i < E; i++) x[i] = (x[i] + bt->type0[i]) + (bt->pos.data ? t[i] : 0.0f);
            layer_norm(E, x, bt->ln_w, bt->ln_b, hp->norm_eps, x);
        }
    }
    return MH_OK;
}

/* One layer over all T rows of b->x. */
static int layer_forward(const mh_model *m, const bert_layer *L, bert_run *r, bert_buf *b, mh_err *err)
{
    const mh_hparams *hp = &m->hp;
    const mh_kernels *K = mh_kernels_get();
    const int64_t E = hp->n_embd, F = hp->n_ff, T = r->T;
    int st;
    if (hp->arch == MH_ARCH_NOMIC_BERT) {
        if ((st = mh_linear(&L->wqkv, b->x, T, b->qkv, err))) return st;
        r->q = b->qkv, r->k = b->qkv + E, r->v = b->qkv + 2 * E, r->ld = 3 * E;
        for (int s = 0; s < r->n_seqs; s++)
            for (int64_t p = 0; p < r->n[s]; p++) {
                rope_row(hp, b->qkv + (b->start[s] + p) * 3 * E, p);
                rope_row(hp, b->qkv + (b->start[s] + p) * 3 * E + E, p);
            }
    } else {
        float *q = b->qkv, *k = b->qkv + T * E, *v = b->qkv + 2 * T * E;
        if ((st = mh_linear(&L->wq, b->x, T, q, err)) || (st = mh_linear(&L->wk, b->x, T, k, err)) ||
            (st = mh_linear(&L->wv, b->x, T, v, err)))
            return st;
        add_bias(q, L->bq, T, E); add_bias(k, L->bk, T, E); add_bias(v, L->bv, T, E);
        r->q = q, r->k = k, r->v = v, r->ld = E;
    }
    mh_parallel_for((int64_t)r->n_seqs * hp->n_head, 1, attn_task, r);
    if ((st = mh_linear(&L->wo, b->att, T, b->tmp, err))) return st;
    add_bias(b->tmp, L->bo, T, E);
    for (int64_t t = 0; t < T; t++) {   /* x = LN(attn + x) */
        K->add(E, b->tmp + t * E, b->x + t * E, b->x + t * E);
        layer_norm(E, b->x + t * E, L->ln1_w, L->ln1_b, hp->norm_eps, b->x + t * E);
    }
    if ((st = mh_linear(&L->up, b->x, T, b->up, err))) return st;
    if (hp->arch == MH_ARCH_NOMIC_BERT) {
        if ((st = mh_linear(&L->gate, b->x, T, b->gate, err))) return st;
        for (int64_t t = 0; t < T; t++) K->swiglu_llama(F, b->gate + t * F, b->up + t * F, b->up + t * F);
    } else {
        add_bias(b->up, L->b_up, T, F);
        K->gelu(T * F, b->up, b->up);
    }
    if ((st = mh_linear(&L->down, b->up, T, b->tmp, err))) return st;
    add_bias(b->tmp, L->b_down, T, E);
    for (int64_t t = 0; t < T; t++) {   /* x = LN(ffn + x) */
        K->add(E, b->tmp + t * E, b->x + t * E, b->x + t * E);
        layer_norm(E, b->x + t * E, L->ln2_w, L->ln2_b, hp->norm_eps, b->x + t * E);
    }
    return MH_OK;
}

static int check_texts(const mh_model *m, const int32_t *const *tok, const int64_t *n, int n_seqs,
                       int64_t *T, int64_t *max_n, mh_err *err)
{
    const mh_hparams *hp = &m->hp;
    if (!hp->encoder) return mh_err_set(err, MH_EINVAL, "embed: %s is not an encoder", hp->arch_name);
    if (n_seqs <= 0) return mh_err_set(err, MH_EINVAL, "embed: no texts");
    *T = *max_n = 0;
    for (int s = 0; s < n_seqs; s++) {
        if (n[s] <= 0) return mh_err_set(err, MH_EINVAL, "embed: text %d has no tokens", s);
        if (n[s] > hp->n_ctx_train)
            return mh_err_set(err, MH_EINVAL, "embed: text %d has %lld tokens but the model takes at "
                              "most %lld (truncate it)", s, (long long)n[s], (long long)hp->n_ctx_train);
        for (int64_t p = 0; p < n[s]; p++)
            if (tok[s][p] < 0 || tok[s][p] >= hp->n_vocab)
                return mh_err_set(err, MH_EINVAL, "embed: token id %d of text %d is outside the "
                                  "vocabulary (0..%lld)", tok[s][p], s, (long long)hp->n_vocab - 1);
        *T += n[s];
        if (n[s] > *max_n) *max_n = n[s];
    }
    return MH_OK;
}

/* The final token states of all texts into b->x; b is allocated here. */
static int encode(mh_model *m, const int32_t *const *tok, const int64_t *n, int n_seqs, bert_buf *b,
                  mh_err *err)
{
    int64_t T = 0, max_n = 0;
    int st = check_texts(m, tok, n, n_seqs, &T, &max_n, err);
    if (!st) st = mh_model_check(m, err);
    if (!st) st = buf_alloc(&m->hp, n_seqs, T, max_n, b, err);
    if (st) return st;
    bert_run r = { m, n_seqs, n, b->start, T, max_n, NULL, NULL, NULL, 0, b->att, b->scores };
    st = embed_tokens(m, tok, n, n_seqs, b, err);
    for (int64_t l = 0; l < m->hp.n_layer && !st; l++) st = layer_forward(m, &m->bert->L[l], &r, b, err);
    if (!st) st = mh_model_check(m, err);   /* the file shrank while we read it */
    if (st) buf_free(b);
    return st;
}

int mh_model_encode(mh_model *m, const int32_t *tokens, int64_t n, float *hidden, mh_err *err)
{
    bert_buf b;
    int st = encode(m, &tokens, &n, 1, &b, err);
    if (st) return st;
    memcpy(hidden, b.x, sizeof(float) * (size_t)(n * m->hp.n_embd));
    buf_free(&b);
    return MH_OK;
}

/* Pools text s's rows into out (E) and scales it to unit length. */
static void pool(const mh_hparams *hp, const float *x, int64_t n, float *out)
{
    const int64_t E = hp->n_embd;
    if (hp->pooling == MH_POOL_CLS || hp->pooling == MH_POOL_LAST) {
        memcpy(out, x + (hp->pooling == MH_POOL_CLS ? 0 : n - 1) * E, sizeof(float) * (size_t)E);
    } else {
        for (int64_t i = 0; i < E; i++) {
            double sum = 0;
            for (int64_t t = 0; t < n; t++) sum += x[t * E + i];
            out[i] = (float)(sum / (double)n);
        }
    }
    double norm = 0;
    for (int64_t i = 0; i < E; i++) norm += (double)out[i] * out[i];
    float inv = norm > 0 ? (float)(1.0 / sqrt(norm)) : 0.0f;
    for (int64_t i = 0; i < E; i++) out[i] *= inv;
}

int mh_model_embed_batch(mh_model *m, const int32_t *const *tokens, const int64_t *n, int n_seqs,
                         float *out, mh_err *err)
{
    const int64_t E = m->hp.n_embd;
    if (!m->hp.encoder) {                   /* decoders: one text at a time */
        for (int s = 0; s < n_seqs; s++) {
            int st = mh_model_embed(m, tokens[s], n[s], out + s * E, err);
            if (st) return st;
        }
        return MH_OK;
    }
    bert_buf b;
    int st = encode(m, tokens, n, n_seqs, &b, err);
    if (st) return st;
    for (int s = 0; s < n_seqs; s++) pool(&m->hp, b.x + b.start[s] * E, n[s], out + s * E);
    buf_free(&b);
    return MH_OK;
}
