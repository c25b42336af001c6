/* tok_hf.c: builds a tokenizer from a Hugging Face tokenizer.json (model
 * BPE or WordPiece, added tokens, normalizer, pre-tokenizer, post-processor)
 * plus tokenizer_config.json beside it (bos/eos names, add_*_token,
 * chat_template). Layer: engine/tokenizer (pure C11 + cJSON). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "tok_internal.h"

#define RE_BYTELEVEL "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define MAX_JSON (512u << 20)

static cJSON *read_json(const char *path, mh_err *err, bool required)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (required) mh_err_set(err, MH_EIO, "tokenizer: cannot open %s", path);
        return NULL;
    }
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && (unsigned long)n < MAX_JSON &&
        fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) &&
        fread(buf, 1, (size_t)n, f) != (size_t)n) n = -1;
    fclose(f);
    cJSON *j = buf && n >= 0 ? cJSON_ParseWithLength(buf, (size_t)n) : NULL;
    free(buf);
    if (!j && required) mh_err_set(err, MH_EFORMAT, "tokenizer: %s is not valid JSON", path);
    return j;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) {            /* {"content": "<s>", ...} */
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
        if (cJSON_IsString(c)) return c->valuestring;
    }
    return NULL;
}

static int jbool(const cJSON *o, const char *k, int dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static bool is_type(const cJSON *o, const char *type)
{
    const char *t = jstr(o, "type");
    return t && !strcmp(t, type);
}

/* ===== vocabulary ===== */

static int load_vocab(mh_tokenizer *t, const cJSON *model, const cJSON *added, mh_err *err)
{
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab"), *it;
    if (!cJSON_IsObject(vocab)) return mh_err_set(err, MH_EFORMAT, "tokenizer: tokenizer.json model has no vocab object");
    int64_t maxid = -1;
    size_t total = 0;
    cJSON_ArrayForEach(it, vocab) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble >= (1 << 24))
            return mh_err_set(err, MH_EFORMAT, "tokenizer: bad id for vocab entry '%.40s'", it->string);
        if ((int64_t)it->valuedouble > maxid) maxid = (int64_t)it->valuedouble;
        total += strlen(it->string);
    }
    cJSON_ArrayForEach(it, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        const char *c = jstr(it, "content");
        if (!cJSON_IsNumber(id) || !c || id->valuedouble < 0 || id->valuedouble >= (1 << 24))
            return mh_err_set(err, MH_EFORMAT, "tokenizer: bad entry in added_tokens");
        if ((int64_t)id->valuedouble > maxid) maxid = (int64_t)id->valuedouble;
        total += strlen(c);
    }
    if (maxid < 0) return mh_err_set(err, MH_EFORMAT, "tokenizer: empty vocabulary");
    int rc = tok_vocab_alloc(t, (int32_t)maxid + 1, total, err);
    if (rc) return rc;
    for (int32_t i = 0; i < t->n_vocab; i++) t->attr[i] = MH_TOKEN_UNUSED;   /* gaps */
    size_t pos = 0;
    cJSON_ArrayForEach(it, vocab) {
        int32_t id = (int32_t)it->valuedouble;
        tok_vocab_set(t, id, it->string, strlen(it->string), &pos);
        t->attr[id] = MH_TOKEN_NORMAL;
    }
    cJSON_ArrayForEach(it, added) {
        int32_t id = (int32_t)cJSON_GetObjectItemCaseSensitive(it, "id")->valuedouble;
        const char *c = jstr(it, "content");
        tok_vocab_set(t, id, c, strlen(c), &pos);
        t->attr[id] = jbool(it, "special", 0) ? MH_TOKEN_CONTROL : MH_TOKEN_USER_DEFINED;
        int strip = (jbool(it, "lstrip", 0) ? TOK_LSTRIP : 0) | (jbool(it, "rstrip", 0) ? TOK_RSTRIP : 0);
        if (strip && tok_set_strip(t, id, strip, true))
            return mh_err_set(err, MH_ENOMEM, "tokenizer: out of memory");
    }
    return MH_OK;
}

static int load_merges(mh_tokenizer *t, const cJSON *model, mh_err *err)
{
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges"), *it;
    int rc = tok_merges_init(t, (size_t)cJSON_GetArraySize(merges), err);
    int32_t rank = 0;
    mh_tok_buf cat = {0};
    cJSON_ArrayForEach(it, merges) {
        const char *a, *b;
        size_t la, lb;
        if (rc) break;
        if (cJSON_IsString(it)) {                 /* "a b" */
            const char *sp = it->valuestring[0] ? strchr(it->valuestring + 1, ' ') : NULL;
            if (!sp) { rank++; continue; }
            a = it->valuestring; la = (size_t)(sp - a); b = sp + 1; lb = strlen(b);
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 0)) && cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
            a = cJSON_GetArrayItem(it, 0)->valuestring; la = strlen(a);   /* ["a", "b"] */
            b = cJSON_GetArrayItem(it, 1)->valuestring; lb = strlen(b);
        } else { rank++; continue; }
        cat.n = 0;
        if (tok_buf_put(&cat, a, la) || tok_buf_put(&cat, b, lb)) rc = mh_err_set(err, MH_ENOMEM, "tokenizer: out of memory");
        int32_t ia = tok_find(t, a, la), ib = tok_find(t, b, lb), r = cat.p ? tok_find(t, cat.p, cat.n) : -1;
        if (!rc && ia >= 0 && ib >= 0 && r >= 0) tok_merges_put(t, ia, ib, rank, r);
        rank++;
    }
    mh_tok_buf_free(&cat);
    return rc;
}

/* ===== normalizer ===== */

static int add_norm(mh_tokenizer *t, int op, const char *a, const char *b, mh_err *err)
{
    tok_norm *n = realloc(t->norm, (size_t)(t->n_norm + 1) * sizeof *n);
    if (!n) return mh_err_set(err, MH_ENOMEM, "tokenizer: out of memory");
    t->norm = n;
    n[t->n_norm] = (tok_norm){ op, a ? strdup(a) : NULL, b ? strdup(b) : NULL };
    t->n_norm++;
    if (op == NORM_REPLACE && a && b && !strcmp(a, " ") && !strcmp(b, "\xE2\x96\x81")) t->escape_spaces = true;
    if (op == NORM_PREPEND && a && !strcmp(a, "\xE2\x96\x81")) t->strip_first_space = true;
    return MH_OK;
}

static int load_normalizer(mh_tokenizer *t, const cJSON *n, mh_err *err)
{
    static const struct { const char *name; int op; } simple[] = {
        {"NFC", NORM_NFC}, {"NFD", NORM_NFD}, {"NFKC", NORM_NFKC}, {"NFKD", NORM_NFKD},
        {"Lowercase", NORM_LOWER}, {"StripAccents", NORM_STRIP_ACCENTS},
    };
    if (!n || cJSON_IsNull(n)) return MH_OK;
    const char *type = jstr(n, "type");
    if (!type) return mh_err_set(err, MH_EFORMAT, "tokenizer: normalizer without a type");
    for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++)
        if (!strcmp(type, simple[i].name)) return add_norm(t, simple[i].op, NULL, NULL, err);
    if (!strcmp(type, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(n, "normalizers")) {
            int rc = load_normalizer(t, it, err);
            if (rc) return rc;
        }
        return MH_OK;
    }
    if (!strcmp(type, "Prepend")) return add_norm(t, NORM_PREPEND, jstr(n, "prepend") ? jstr(n, "prepend") : "", NULL, err);
    if (!strcmp(type, "Replace")) {
        const char *pat = jstr(cJSON_GetObjectItemCaseSensitive(n, "pattern"), "String");
        const char *content = jstr(n, "content");
        if (!pat || !content) return mh_err_set(err, MH_EFORMAT, "tokenizer: only string Replace normalizers are supported");
        return add_norm(t, NORM_REPLACE, pat, content, err);
    }
    if (!strcmp(type, "BertNormalizer")) {
        const cJSON *sa = cJSON_GetObjectItemCaseSensitive(n, "strip_accents");
        t->wp_lower = jbool(n, "lowercase", 1);
        t->wp_strip_accents = cJSON_IsBool(sa) ? cJSON_IsTrue(sa) : t->wp_lower;
        return MH_OK;
    }
    return mh_err_set(err, MH_EFORMAT, "tokenizer: unsupported normalizer '%s'", type);
}

/* ===== pre-tokenizer ===== */

static int load_pre(mh_tokenizer *t, const cJSON *p, mh_err *err)
{
    if (!p || cJSON_IsNull(p)) return MH_OK;
    const char *type = jstr(p, "type");
    if (!type) return mh_err_set(err, MH_EFORMAT, "tokenizer: pre_tokenizer without a type");
    if (!strcmp(type, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(p, "pretokenizers")) {
            int rc = load_pre(t, it, err);
            if (rc) return rc;
        }
        return MH_OK;
    }
    if (!strcmp(type, "ByteLevel")) {
        t->byte_level = true;
        t->add_space_prefix = jbool(p, "add_prefix_space", 0);
        return jbool(p, "use_regex", 1) ? tok_pre_add(t, RE_BYTELEVEL, PCRE2_ZERO_TERMINATED, PRE_ISOLATE, err) : MH_OK;
    }
    if (!strcmp(type, "Digits"))
        return tok_pre_add(t, jbool(p, "individual_digits", 0) ? "\\p{N}" : "\\p{N}+",
                           PCRE2_ZERO_TERMINATED, PRE_ISOLATE, err);
    if (!strcmp(type, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const char *re = jstr(pat, "Regex"), *lit = jstr(pat, "String"), *beh = jstr(p, "behavior");
        int mode = beh && !strcmp(beh, "Removed") ? PRE_REMOVE : PRE_ISOLATE;
        if ((!re && !lit) || jbool(p, "invert", 0) || (beh && strcmp(beh, "Removed") && strcmp(beh, "Isolated")))
            return mh_err_set(err, MH_EFORMAT, "tokenizer: unsupported Split pre-tokenizer (behavior %s)", beh ? beh : "?");
        if (re) return tok_pre_add(t, re, PCRE2_ZERO_TERMINATED, mode, err);
        char q[512];                          /* literal: quote it for PCRE2 */
        snprintf(q, sizeof q, "\\Q%s\\E", lit);
        return tok_pre_add(t, q, PCRE2_ZERO_TERMINATED, mode, err);
    }
    if (!strcmp(type, "Metaspace")) {
        const char *scheme = jstr(p, "prepend_scheme");
        t->escape_spaces = true;
        int rc = add_norm(t, NORM_REPLACE, " ", "\xE2\x96\x81", err);
        if (!rc && (scheme ? strcmp(scheme, "never") != 0 : jbool(p, "add_prefix_space", 1)))
            rc = add_norm(t, NORM_PREPEND, "\xE2\x96\x81", NULL, err);
        if (!rc && jbool(p, "split", 1)) rc = tok_pre_add(t, "\xE2\x96\x81[^\xE2\x96\x81]*", PCRE2_ZERO_TERMINATED, PRE_ISOLATE, err);
        return rc;
    }
    if (!strcmp(type, "BertPreTokenizer") || !strcmp(type, "Whitespace") || !strcmp(type, "WhitespaceSplit"))
        return t->kind == MH_TOK_WPM ? MH_OK
             : tok_pre_add(t, "\\s+", PCRE2_ZERO_TERMINATED, PRE_REMOVE, err);
    return mh_err_set(err, MH_EFORMAT, "tokenizer: unsupported pre_tokenizer '%s'", type);
}

/* ===== specials and flags ===== */

static int32_t id_of(const mh_tokenizer *t, const char *s) { return s ? tok_find(t, s, strlen(s)) : -1; }

/* TemplateProcessing: a special token first / last in "single" means BOS / EOS. */
static void load_post(mh_tokenizer *t, const cJSON *post)
{
    if (!post || !is_type(post, "TemplateProcessing")) return;
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(post, "single");
    int n = cJSON_GetArraySize(single);
    if (n < 2) return;
    const cJSON *first = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(single, 0), "SpecialToken");
    const cJSON *last = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(single, n - 1), "SpecialToken");
    int32_t id;
    if (first && (id = id_of(t, jstr(first, "id"))) >= 0) { t->add_bos = true; t->sp.bos = id; }
    if (last && (id = id_of(t, jstr(last, "id"))) >= 0) { t->add_eos = true; t->sp.eos = id; }
}

/* config.json's bos_token_id / eos_token_id (the model's own view). */
static void load_model_config(mh_tokenizer *t, const char *dir, int dl)
{
    char p[4096];
    snprintf(p, sizeof p, "%.*sconfig.json", dl, dir);
    cJSON *c = read_json(p, NULL, false);
    const char *keys[2] = { "bos_token_id", "eos_token_id" };
    int32_t *dst[2] = { &t->sp.bos, &t->sp.eos };
    for (int i = 0; c && i < 2; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, keys[i]);
        if (cJSON_IsArray(v)) v = cJSON_GetArrayItem(v, 0);
        if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < t->n_vocab)
            *dst[i] = (int32_t)v->valuedouble;
    }
    cJSON_Delete(c);
}

static void load_config(mh_tokenizer *t, const char *json_path)
{
    char p[4096];
    const char *slash = strrchr(json_path, '/');
    int dl = slash ? (int)(slash - json_path) + 1 : 0;
    load_model_config(t, json_path, dl);
    snprintf(p, sizeof p, "%.*stokenizer_config.json", dl, json_path);
    cJSON *c = read_json(p, NULL, false);
    if (!c) return;
    int32_t id;
    if ((id = id_of(t, jstr(c, "bos_token"))) >= 0) t->sp.bos = id;
    if ((id = id_of(t, jstr(c, "eos_token"))) >= 0) t->sp.eos = id;
    if ((id = id_of(t, jstr(c, "unk_token"))) >= 0) t->sp.unk = id;
    if ((id = id_of(t, jstr(c, "pad_token"))) >= 0) t->sp.pad = id;
    t->add_bos = jbool(c, "add_bos_token", t->add_bos);
    t->add_eos = jbool(c, "add_eos_token", t->add_eos);
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(c, "chat_template");
    if (cJSON_IsArray(ct)) ct = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(ct, 0), "template");
    if (cJSON_IsString(ct)) t->chat_template = strdup(ct->valuestring);
    cJSON_Delete(c);
}

static void default_specials(mh_tokenizer *t, const cJSON *model)
{
    static const char *const bos[] = { "<s>", "<|begin_of_text|>", "[CLS]", "<|endoftext|>", NULL };
    static const char *const eos[] = { "</s>", "<|end_of_text|>", "[SEP]", "<|endoftext|>", NULL };
    t->sp = (mh_tok_special){ -1, -1, -1, -1, -1, -1, -1, -1, -1 };
    t->sp.unk = id_of(t, jstr(model, "unk_token"));
    for (int i = 0; bos[i] && t->sp.bos < 0; i++) t->sp.bos = id_of(t, bos[i]);
    for (int i = 0; eos[i] && t->sp.eos < 0; i++) t->sp.eos = id_of(t, eos[i]);
    t->sp.cls = id_of(t, "[CLS]");
    t->sp.sep = id_of(t, "[SEP]");
    t->sp.mask = id_of(t, "[MASK]");
    t->sp.pad = id_of(t, "[PAD]");
    int32_t eot = id_of(t, "<|eot_id|>");
    if (eot < 0) eot = id_of(t, "<|im_end|>");
    t->sp.eot = eot;
    t->sp.eom = id_of(t, "<|eom_id|>");
}

static int build(mh_tokenizer *t, const cJSON *j, const char *path, mh_err *err)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    const char *type = jstr(model, "type");
    if (!type && cJSON_GetObjectItemCaseSensitive(model, "merges")) type = "BPE";
    if (!type || (strcmp(type, "BPE") && strcmp(type, "WordPiece")))
        return mh_err_set(err, MH_EFORMAT, "tokenizer: unsupported tokenizer.json model type '%s'", type ? type : "?");
    t->kind = strcmp(type, "BPE") ? MH_TOK_WPM : MH_TOK_BPE;
    int rc = load_vocab(t, model, cJSON_GetObjectItemCaseSensitive(j, "added_tokens"), err);
    if (!rc) rc = tok_vocab_finish(t, err);
    if (rc) return rc;
    if (t->kind == MH_TOK_BPE) {
        t->byte_fallback = jbool(model, "byte_fallback", 0);
        t->ignore_merges = jbool(model, "ignore_merges", 0);
        if ((rc = load_merges(t, model, err))) return rc;
    } else {
        const char *cp = jstr(model, "continuing_subword_prefix");
        snprintf(t->wp_cont_prefix, sizeof t->wp_cont_prefix, "%s", cp ? cp : "##");
        t->strip_first_space = true;
    }
    if (!rc) rc = load_normalizer(t, cJSON_GetObjectItemCaseSensitive(j, "normalizer"), err);
    if (!rc) rc = load_pre(t, cJSON_GetObjectItemCaseSensitive(j, "pre_tokenizer"), err);
    if (rc) return rc;
    if (t->byte_level) { for (int b = 0; b < 256; b++) { char s[4]; t->byte_tok[b] = tok_find(t, s, tok_utf8_put(tok_byte_to_cp((unsigned char)b), s)); } }
    snprintf(t->pre_name, sizeof t->pre_name, "%s", t->byte_level ? "hf-bytelevel" : "hf");
    default_specials(t, model);
    t->add_bos = t->add_eos = t->kind == MH_TOK_WPM;
    load_post(t, cJSON_GetObjectItemCaseSensitive(j, "post_processor"));
    load_config(t, path);
    return MH_OK;
}

int mh_tokenizer_from_hf(const char *json_path, mh_tokenizer **out, mh_err *err)
{
    *out = NULL;
    cJSON *j = read_json(json_path, err, true);
    if (!j) return err ? err->code : MH_EFORMAT;
    mh_tokenizer *t = calloc(1, sizeof *t);
    int rc = t ? build(t, j, json_path, err) : mh_err_set(err, MH_ENOMEM, "tokenizer: out of memory");
    cJSON_Delete(j);
    if (rc) {
        mh_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return MH_OK;
}
