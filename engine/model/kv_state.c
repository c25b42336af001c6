/* kv_state.c: KV state files (mh/kv_state.h, docs/kv-state.md): the model's
 * identity, writing a state with temp-and-rename and reading one back with
 * every field checked before a byte reaches a cache.
 * Layer: engine/model (pure C11 + POSIX; mh/fs.h, OpenSSL EVP for SHA-256).
 * Layout (little-endian): magic "MHKVSTAT", u32 version, u32 header bytes,
 * id[32], u32 type, u32 n_layer, n_head_kv, head_dim, n_vocab, u32 0,
 * u64 n_tokens, u64 row_bytes, u64 rows_bytes | i32 ids | K/V rows | sha256. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "mh/fs.h"
#include "mh/kv_state.h"
#include "model_internal.h"

static const char MAGIC[8] = { 'M', 'H', 'K', 'V', 'S', 'T', 'A', 'T' };
#define SUM_BYTES 32
#define SAMPLE 4096

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "kv_state: the format is little-endian");

/* ===== identity ===== */

static void hash_i64(EVP_MD_CTX *md, int64_t v) { EVP_DigestUpdate(md, &v, sizeof v); }

/* A weight's type, shape and its first, middle and last SAMPLE bytes. */
static void hash_weight(EVP_MD_CTX *md, const mh_weight *w)
{
    hash_i64(md, w->data ? (int64_t)w->dtype : -1);
    hash_i64(md, w->rows);
    hash_i64(md, w->cols);
    if (!w->data) return;
    size_t n = mh_dtype_row_size(w->dtype, w->cols) * (size_t)w->rows;
    const uint8_t *p = w->data;
    if (n <= 3 * SAMPLE) { EVP_DigestUpdate(md, p, n); return; }
    EVP_DigestUpdate(md, p, SAMPLE);
    EVP_DigestUpdate(md, p + n / 2 - SAMPLE / 2, SAMPLE);
    EVP_DigestUpdate(md, p + n - SAMPLE, SAMPLE);
}

static void hash_vec(EVP_MD_CTX *md, const float *v, int64_t n)
{
    hash_i64(md, v ? n : -1);
    if (v) EVP_DigestUpdate(md, v, sizeof(float) * (size_t)n);
}

static void hash_hparams(EVP_MD_CTX *md, const mh_hparams *hp)
{
    EVP_DigestUpdate(md, "moonhub-model-id-1", 18);
    EVP_DigestUpdate(md, hp->arch_name, strnlen(hp->arch_name, sizeof hp->arch_name));
    int64_t v[] = { hp->arch, hp->n_vocab, hp->n_embd, hp->n_layer, hp->n_head, hp->n_head_kv, hp->head_dim,
                    hp->n_ff, hp->n_rot, hp->rope_neox, hp->tied_embeddings };
    EVP_DigestUpdate(md, v, sizeof v);
    EVP_DigestUpdate(md, &hp->rope_base, sizeof hp->rope_base);
    EVP_DigestUpdate(md, &hp->rms_eps, sizeof hp->rms_eps);
}

/* Experts (moe.c): their routing and every expert's weights. Nothing for a
 * dense model, whose identity (and its saved states) stays as it was. */
static void hash_moe(EVP_MD_CTX *md, const mh_model *m)
{
    const mh_hparams *hp = &m->hp;
    if (!m->moe || hp->n_expert <= 0) return;
    int64_t v[] = { hp->n_expert, hp->n_expert_used, hp->n_ff_exp, hp->n_ff_shexp, hp->expert_norm };
    EVP_DigestUpdate(md, "experts", 7);
    EVP_DigestUpdate(md, v, sizeof v);
    for (int64_t l = 0; l < hp->n_layer; l++) {
        const mh_moe_layer *M = &m->moe[l];
        hash_weight(md, &M->router);
        for (int64_t e = 0; e < hp->n_expert; e++) {
            hash_weight(md, &M->gate[e]);
            hash_weight(md, &M->up[e]);
            hash_weight(md, &M->down[e]);
        }
        hash_vec(md, M->shexp_gate, hp->n_embd);
        hash_weight(md, &M->sh_gate);
        hash_weight(md, &M->sh_up);
        hash_weight(md, &M->sh_down);
    }
}

int mh_model_identity(const mh_model *m, uint8_t id[MH_KV_STATE_ID_BYTES], mh_err *err)
{
    if (!m || !id) return mh_err_set(err, MH_EINVAL, "model identity: a model is required");
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        return mh_err_set(err, MH_ENOMEM, "model identity: cannot start SHA-256");
    }
    const mh_hparams *hp = &m->hp;
    hash_hparams(md, hp);
    hash_weight(md, &m->g.tok_embd);
    hash_weight(md, &m->g.output);
    hash_vec(md, m->g.output_norm, hp->n_embd);
    for (int64_t l = 0; l < hp->n_layer; l++) {
        const mh_layer *L = &m->layers[l];
        for (int k = 0; k < MH_PROJ_COUNT; k++) {
            const mh_weight *w = mh_layer_proj(L, (mh_proj)k);
            hash_weight(md, w);
            hash_vec(md, mh_layer_bias(L, (mh_proj)k), w->rows);
        }
        hash_vec(md, L->attn_norm, hp->n_embd);
        hash_vec(md, L->ffn_norm, hp->n_embd);
    }
    hash_moe(md, m);
    hash_i64(md, m->n_lora);            /* adapters change every K/V row */
    unsigned len = 0;
    int ok = EVP_DigestFinal_ex(md, id, &len) == 1 && len == MH_KV_STATE_ID_BYTES;
    EVP_MD_CTX_free(md);
    return ok ? MH_OK : mh_err_set(err, MH_EIO, "model identity: SHA-256 failed");
}

void mh_kv_state_id_hex(const uint8_t *id, int n, char *out)
{
    for (int i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", id[i]);
    out[2 * n] = 0;
}

/* ===== header ===== */

void mh_kv_state_describe(const mh_model *m, const uint8_t id[MH_KV_STATE_ID_BYTES], const mh_kv_cache *c,
                          int64_t n, mh_kv_state_info *info)
{
    memset(info, 0, sizeof *info);
    info->version = MH_KV_STATE_VERSION;
    memcpy(info->model_id, id, MH_KV_STATE_ID_BYTES);
    info->type = c->type;
    info->n_layer = c->n_layer;
    info->n_head_kv = m->hp.n_head_kv;
    info->head_dim = m->hp.head_dim;
    info->n_vocab = m->hp.n_vocab;
    info->n_tokens = n;
    info->row_bytes = c->row_bytes;
    info->rows_bytes = mh_kv_cache_snapshot_bytes(c, n);
}

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static void encode_header(const mh_kv_state_info *in, uint8_t h[MH_KV_STATE_HEADER])
{
    memset(h, 0, MH_KV_STATE_HEADER);
    memcpy(h, MAGIC, 8);
    put32(h + 8, in->version);
    put32(h + 12, MH_KV_STATE_HEADER);
    memcpy(h + 16, in->model_id, MH_KV_STATE_ID_BYTES);
    put32(h + 48, (uint32_t)in->type);
    put32(h + 52, (uint32_t)in->n_layer);
    put32(h + 56, (uint32_t)in->n_head_kv);
    put32(h + 60, (uint32_t)in->head_dim);
    put32(h + 64, (uint32_t)in->n_vocab);
    put64(h + 72, (uint64_t)in->n_tokens);
    put64(h + 80, in->row_bytes);
    put64(h + 88, in->rows_bytes);
}

/* Decodes and checks the header's fields against each other (not the file
 * size, the checksum or a model). */
static int decode_header(const uint8_t *h, size_t avail, mh_kv_state_info *out, mh_err *err)
{
    if (avail < 12 || memcmp(h, MAGIC, 8) != 0)
        return mh_err_set(err, MH_EFORMAT, "not a moonhub KV state file (no MHKVSTAT magic)");
    out->version = get32(h + 8);
    if (out->version != MH_KV_STATE_VERSION)
        return mh_err_set(err, MH_EFORMAT, "KV state version %u; this build reads version %d (save it again "
                          "with this build)", out->version, MH_KV_STATE_VERSION);
    if (avail < MH_KV_STATE_HEADER + SUM_BYTES)
        return mh_err_set(err, MH_EFORMAT, "truncated: %zu bytes, shorter than a KV state header", avail);
    if (get32(h + 12) != MH_KV_STATE_HEADER || get32(h + 68) != 0)
        return mh_err_set(err, MH_EFORMAT, "bad header size %u (expected %d)", get32(h + 12), MH_KV_STATE_HEADER);
    memcpy(out->model_id, h + 16, MH_KV_STATE_ID_BYTES);
    uint32_t t = get32(h + 48);
    if (t != MH_DTYPE_F32 && t != MH_DTYPE_F16 && t != MH_DTYPE_Q8_0)
        return mh_err_set(err, MH_EFORMAT, "bad KV type %u (f32, f16 or q8_0 expected)", t);
    out->type = (mh_dtype)t;
    out->n_layer = get32(h + 52);
    out->n_head_kv = get32(h + 56);
    out->head_dim = get32(h + 60);
    out->n_vocab = get32(h + 64);
    if (out->n_layer < 1 || out->n_layer > 4096 || out->n_head_kv < 1 || out->n_head_kv > 4096 ||
        out->head_dim < 1 || out->head_dim > 4096 || out->n_vocab < 1 || out->n_vocab > (1 << 24) ||
        out->head_dim % mh_dtype_info(out->type)->block_size)
        return mh_err_set(err, MH_EFORMAT, "bad shape: n_layer %lld, n_head_kv %lld, head_dim %lld, n_vocab %lld",
                          (long long)out->n_layer, (long long)out->n_head_kv, (long long)out->head_dim,
                          (long long)out->n_vocab);
    uint64_t n = get64(h + 72);
    if (n < 1 || n > MH_KV_STATE_MAX_TOKENS)
        return mh_err_set(err, MH_EFORMAT, "bad token count %llu (1..%d)", (unsigned long long)n,
                          MH_KV_STATE_MAX_TOKENS);
    out->n_tokens = (int64_t)n;
    out->row_bytes = mh_dtype_row_size(out->type, out->n_head_kv * out->head_dim);
    if (get64(h + 80) != out->row_bytes)
        return mh_err_set(err, MH_EFORMAT, "bad row size %llu (the shape gives %zu)",
                          (unsigned long long)get64(h + 80), out->row_bytes);
    out->rows_bytes = out->row_bytes * 2 * (size_t)out->n_layer * (size_t)n;    /* < 2^63: bounds above */
    if (get64(h + 88) != out->rows_bytes)
        return mh_err_set(err, MH_EFORMAT, "bad K/V size %llu (the shape gives %zu)",
                          (unsigned long long)get64(h + 88), out->rows_bytes);
    return MH_OK;
}

static size_t file_bytes(const mh_kv_state_info *info)
{
    return MH_KV_STATE_HEADER + sizeof(int32_t) * (size_t)info->n_tokens + info->rows_bytes + SUM_BYTES;
}

/* ===== writing ===== */

static int sha256_parts(const struct iovec *v, int n, uint8_t out[SUM_BYTES], mh_err *err)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned len = 0;
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
    for (int i = 0; ok && i < n; i++) ok = EVP_DigestUpdate(md, v[i].iov_base, v[i].iov_len) == 1;
    ok = ok && EVP_DigestFinal_ex(md, out, &len) == 1 && len == SUM_BYTES;
    EVP_MD_CTX_free(md);
    return ok ? MH_OK : mh_err_set(err, MH_EIO, "kv state: SHA-256 failed");
}

static int write_all(int fd, const void *p, size_t n, const char *tmp, mh_err *err)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t k = write(fd, b, n > ((size_t)1 << 30) ? (size_t)1 << 30 : n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return mh_err_set(err, MH_EIO, "cannot write %s: %s", tmp, k < 0 ? strerror(errno) : "short write");
        b += k;
        n -= (size_t)k;
    }
    return MH_OK;
}

int mh_kv_state_write(const char *path, const mh_kv_state_info *info, const int32_t *tokens, const void *rows,
                      bool durable, size_t *size, mh_err *err)
{
    if (!path || !*path || !info || !tokens || (!rows && info->rows_bytes))
        return mh_err_set(err, MH_EINVAL, "kv state write: a path, a header, ids and rows are required");
    uint8_t h[MH_KV_STATE_HEADER], sum[SUM_BYTES];
    encode_header(info, h);
    struct iovec v[4] = { { h, sizeof h }, { (void *)tokens, sizeof(int32_t) * (size_t)info->n_tokens },
                          { (void *)rows, info->rows_bytes }, { sum, SUM_BYTES } };
    if (sha256_parts(v, 3, sum, err)) return err ? err->code : MH_EIO;
    char tmp[4200];
    int fd = mh_fs_open_temp(path, tmp, sizeof tmp, err);
    if (fd < 0) return err ? err->code : MH_EIO;
    for (int i = 0; i < 4; i++) {
        if (write_all(fd, v[i].iov_base, v[i].iov_len, tmp, err) == MH_OK) continue;
        close(fd);
        unlink(tmp);
        return err ? err->code : MH_EIO;
    }
    if (size) *size = file_bytes(info);
    if (durable) return mh_fs_commit_temp(fd, tmp, path, err);
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        int rc = mh_err_set(err, MH_EIO, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return rc;
    }
    return MH_OK;
}

int mh_kv_state_save(const char *path, const mh_model *m, const mh_kv_cache *c, const int32_t *tokens,
                     int64_t n, size_t *size, mh_err *err)
{
    if (!m || !c || !tokens) return mh_err_set(err, MH_EINVAL, "kv state save: a model, a cache and ids are required");
    if (n < 1 || n > c->n_past)
        return mh_err_set(err, MH_ERANGE, "kv state save: %lld positions asked, the cache holds %lld",
                          (long long)n, (long long)c->n_past);
    uint8_t id[MH_KV_STATE_ID_BYTES];
    if (mh_model_identity(m, id, err)) return err ? err->code : MH_EIO;
    mh_kv_state_info info;
    mh_kv_state_describe(m, id, c, n, &info);
    void *rows = malloc(info.rows_bytes);
    if (!rows) return mh_err_set(err, MH_ENOMEM, "kv state save: out of memory for %zu bytes", info.rows_bytes);
    int st = mh_kv_cache_save(c, n, rows, info.rows_bytes, err);
    if (st == MH_OK) st = mh_kv_state_write(path, &info, tokens, rows, true, size, err);
    free(rows);
    return st;
}

/* ===== reading ===== */

int mh_kv_state_parse(const void *buf, size_t size, mh_kv_state_info *info, const uint8_t **tokens,
                      const uint8_t **rows, mh_err *err)
{
    const uint8_t *b = buf;
    if (!b) return mh_err_set(err, MH_EINVAL, "kv state: no data");
    int st = decode_header(b, size, info, err);
    if (st) return st;
    size_t want = file_bytes(info);
    if (size != want)
        return mh_err_set(err, MH_EFORMAT, "%s: %zu bytes, the header describes %zu (%lld tokens)",
                          size < want ? "truncated" : "trailing bytes", size, want, (long long)info->n_tokens);
    uint8_t sum[SUM_BYTES];
    struct iovec v = { (void *)b, size - SUM_BYTES };
    if (sha256_parts(&v, 1, sum, err)) return err ? err->code : MH_EIO;
    if (memcmp(sum, b + size - SUM_BYTES, SUM_BYTES) != 0)
        return mh_err_set(err, MH_EFORMAT, "corrupt: the checksum does not match the contents");
    const uint8_t *ids = b + MH_KV_STATE_HEADER;
    for (int64_t i = 0; i < info->n_tokens; i++) {
        int32_t t;
        memcpy(&t, ids + 4 * i, 4);
        if (t < 0 || t >= info->n_vocab)
            return mh_err_set(err, MH_EFORMAT, "token %lld is %d, outside the vocabulary of %lld", (long long)i + 1,
                              t, (long long)info->n_vocab);
    }
    *tokens = ids;
    *rows = ids + 4 * (size_t)info->n_tokens;
    return MH_OK;
}

int mh_kv_state_check(const mh_kv_state_info *info, const mh_model *m, const uint8_t *id, const mh_kv_cache *c,
                      const char *path, mh_err *err)
{
    uint8_t own[MH_KV_STATE_ID_BYTES];
    if (!id) {
        if (mh_model_identity(m, own, err)) return err ? err->code : MH_EIO;
        id = own;
    }
    const mh_hparams *hp = &m->hp;
    char a[17], b[17];
    mh_kv_state_id_hex(info->model_id, 8, a);
    mh_kv_state_id_hex(id, 8, b);
    if (memcmp(info->model_id, id, MH_KV_STATE_ID_BYTES) != 0)
        return mh_err_set(err, MH_EINVAL, "%s was saved from another model (id %s: %lld layers, %lld KV heads x %lld, "
                          "vocab %lld); this model is %s (%lld layers, %lld KV heads x %lld, vocab %lld): restore it "
                          "into the model that saved it", path, a, (long long)info->n_layer, (long long)info->n_head_kv,
                          (long long)info->head_dim, (long long)info->n_vocab, b, (long long)hp->n_layer,
                          (long long)hp->n_head_kv, (long long)hp->head_dim, (long long)hp->n_vocab);
    if (info->type != c->type || info->n_layer != c->n_layer || info->row_bytes != c->row_bytes)
        return mh_err_set(err, MH_EINVAL, "%s holds a %s KV cache; this cache is %s (use kv_type %s)", path,
                          mh_dtype_info(info->type)->name, mh_dtype_info(c->type)->name,
                          mh_dtype_info(info->type)->name);
    if (info->n_tokens > c->n_ctx)
        return mh_err_set(err, MH_ERANGE, "%s holds %lld tokens; this cache fits %lld (raise ctx)", path,
                          (long long)info->n_tokens, (long long)c->n_ctx);
    return MH_OK;
}

int mh_kv_state_read_file(const char *path, uint8_t **buf, size_t *size, mh_err *err)
{
    *buf = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return mh_err_set(err, MH_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return mh_err_set(err, MH_EIO, "%s is not a regular file", path);
    }
    size_t n = (size_t)sb.st_size;
    uint8_t *b = malloc(n ? n : 1);
    if (!b) { fclose(f); return mh_err_set(err, MH_ENOMEM, "out of memory reading %s (%zu bytes)", path, n); }
    size_t got = fread(b, 1, n, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != n) { free(b); return mh_err_set(err, MH_EIO, "cannot read %s", path); }
    *buf = b;
    *size = n;
    return MH_OK;
}

/* The ids of a checked image as an aligned copy (NULL out: not wanted). */
static int copy_ids(const uint8_t *src, int64_t n, int32_t **out, mh_err *err)
{
    if (!out) return MH_OK;
    *out = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    if (!*out) return mh_err_set(err, MH_ENOMEM, "kv state: out of memory for %lld ids", (long long)n);
    memcpy(*out, src, sizeof(int32_t) * (size_t)n);
    return MH_OK;
}

int mh_kv_state_load(const char *path, const mh_model *m, const uint8_t *id, mh_kv_cache *c, int64_t n_use,
                     int32_t **tokens, int64_t *n, size_t *size, mh_err *err)
{
    if (tokens) *tokens = NULL;
    if (!path || !m || !c) return mh_err_set(err, MH_EINVAL, "kv state load: a path, a model and a cache are required");
    uint8_t *buf;
    size_t bytes;
    int st = mh_kv_state_read_file(path, &buf, &bytes, err);
    if (st) return st;
    mh_kv_state_info info;
    const uint8_t *ids, *rows;
    mh_err e2 = { 0 };
    st = mh_kv_state_parse(buf, bytes, &info, &ids, &rows, &e2);
    if (st) mh_err_set(err, st, "%s: %s", path, e2.msg);
    else st = mh_kv_state_check(&info, m, id, c, path, err);
    if (!st && (n_use < 0 || n_use > info.n_tokens)) n_use = info.n_tokens;
    if (!st) st = copy_ids(ids, n_use, tokens, err);
    if (!st) st = mh_kv_cache_load(c, rows, info.rows_bytes, info.n_tokens, n_use, err);
    free(buf);
    if (st && tokens) { free(*tokens); *tokens = NULL; }
    if (!st && n) *n = n_use;
    if (!st && size) *size = bytes;
    return st;
}

int mh_kv_state_peek(const char *path, mh_kv_state_info *info, int32_t **tokens, mh_err *err)
{
    *tokens = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return mh_err_set(err, MH_EIO, "cannot open %s: %s", path, strerror(errno));
    uint8_t h[MH_KV_STATE_HEADER] = { 0 };
    struct stat sb;
    size_t got = fread(h, 1, sizeof h, f);
    int st = fstat(fileno(f), &sb) != 0 ? mh_err_set(err, MH_EIO, "cannot stat %s", path)
                                        : decode_header(h, (size_t)sb.st_size, info, err);
    if (!st && got != sizeof h) st = mh_err_set(err, MH_EFORMAT, "%s: truncated header", path);
    if (!st && (size_t)sb.st_size != file_bytes(info))
        st = mh_err_set(err, MH_EFORMAT, "%s: %lld bytes, the header describes %zu", path,
                        (long long)sb.st_size, file_bytes(info));
    if (!st && !(*tokens = malloc(sizeof(int32_t) * (size_t)info->n_tokens)))
        st = mh_err_set(err, MH_ENOMEM, "%s: out of memory for %lld ids", path, (long long)info->n_tokens);
    if (!st && fread(*tokens, sizeof(int32_t), (size_t)info->n_tokens, f) != (size_t)info->n_tokens)
        st = mh_err_set(err, MH_EIO, "%s: cannot read the ids", path);
    fclose(f);
    if (st) { free(*tokens); *tokens = NULL; }
    return st;
}
