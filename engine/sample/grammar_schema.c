/* grammar_schema.c: JSON schema (parsed with cJSON) -> byte-level grammar
 * rules (grammar_internal.h), plus the rule builder. Layer: engine/sample
 * (pure C11 + cjson). The supported subset is listed in docs/grammar.md;
 * anything else fails with the keyword and its place in the schema, never a
 * silent fallback to a looser grammar. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cJSON.h>
#include "mh/grammar.h"
#include "grammar_internal.h"

#define BOUND_MAX 256        /* largest minItems/maxItems/minLength/maxLength */
#define DEPTH_MAX 64         /* schema nesting */
#define REFS_MAX 128
#define NUM_DIGITS 16        /* digits of an integer part / a fraction */

/* ===== rule builder ===== */

static void *grow(void *p, int32_t *cap, int32_t need, size_t elsz, bool *oom)
{
    if (need <= *cap) return p;
    int32_t nc = *cap ? *cap * 2 : 16;
    while (nc < need) nc *= 2;
    void *q = realloc(p, (size_t)nc * elsz);
    if (!q) { *oom = true; return NULL; }
    *cap = nc;
    return q;
}

void gr_rules_free(gr_rules *r)
{
    free(r->el);
    free(r->start);
    free(r->sets);
    memset(r, 0, sizeof *r);
}

int32_t gr_rule_new(gr_rules *r)
{
    int32_t *s = grow(r->start, &r->cap_rules, r->n_rules + 1, sizeof *s, &r->oom);
    if (!s) return 0;
    r->start = s;
    r->start[r->n_rules] = -1;
    return r->n_rules++;
}

void gr_rule_define(gr_rules *r, int32_t id, gr_body *b)
{
    gr_body_add(b, GE_END, 0);
    gr_el *e = grow(r->el, &r->cap_el, r->n_el + b->n, sizeof *e, &r->oom);
    if (e && !r->oom) {
        r->el = e;
        memcpy(r->el + r->n_el, b->el, sizeof *e * (size_t)b->n);
        r->start[id] = r->n_el;
        r->n_el += b->n;
    }
    free(b->el);
    b->el = NULL;
    b->n = b->cap = 0;
}

int32_t gr_set_id(gr_rules *r, const gr_set *s)
{
    for (int32_t i = 0; i < r->n_sets; i++)
        if (!memcmp(&r->sets[i], s, sizeof *s)) return i;
    gr_set *n = grow(r->sets, &r->cap_sets, r->n_sets + 1, sizeof *n, &r->oom);
    if (!n) return 0;
    r->sets = n;
    r->sets[r->n_sets] = *s;
    return r->n_sets++;
}

void gr_body_init(gr_body *b, gr_rules *r) { memset(b, 0, sizeof *b); b->r = r; }

void gr_body_add(gr_body *b, int32_t kind, int32_t arg)
{
    gr_el *e = grow(b->el, &b->cap, b->n + 1, sizeof *e, &b->r->oom);
    if (!e) return;
    b->el = e;
    b->el[b->n++] = (gr_el){ kind, arg };
}

void gr_body_range(gr_body *b, unsigned char lo, unsigned char hi)
{
    gr_set s = {{0}};
    for (unsigned c = lo; c <= hi; c++) s.w[c >> 6] |= 1ull << (c & 63);
    gr_body_add(b, GE_SET, gr_set_id(b->r, &s));
}

void gr_body_byte(gr_body *b, unsigned char c) { gr_body_range(b, c, c); }

void gr_body_lit(gr_body *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) gr_body_byte(b, (unsigned char)s[i]);
}

void gr_body_alt(gr_body *b) { gr_body_add(b, GE_ALT, 0); }

int32_t gr_rule_from(gr_rules *r, gr_body *b)
{
    int32_t id = gr_rule_new(r);
    gr_rule_define(r, id, b);
    return id;
}

/* ===== compiler state ===== */

typedef struct cc {
    gr_rules *r;
    cJSON *root;
    mh_err *err;
    bool failed;
    char path[768];
    size_t plen;
    int depth;
    int32_t any, any_obj, any_arr, str, num, integer, boolean, null;   /* lazy, -1 */
    struct { char *ref; int32_t rule; } refs[REFS_MAX];
    int n_refs;
} cc;

static int32_t compile(cc *c, const cJSON *s);

static int32_t fail(cc *c, const char *fmt, ...)
{
    if (c->failed) return -1;
    c->failed = true;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    mh_err_set(c->err, MH_EINVAL, "json schema: #%s: %s", c->path, msg);
    return -1;
}

static size_t path_push(cc *c, const char *a, const char *b)
{
    size_t mark = c->plen;
    int n = snprintf(c->path + c->plen, sizeof c->path - c->plen, "/%s%s%s", a, b ? "/" : "", b ? b : "");
    if (n > 0) c->plen = strlen(c->path);
    return mark;
}

static void path_pop(cc *c, size_t mark) { c->plen = mark; c->path[mark] = 0; }

static void ws(gr_body *b) { gr_body_add(b, GE_WS, MH_GRAMMAR_WS_MAX); }

static void ref(gr_body *b, int32_t rule) { if (rule >= 0) gr_body_add(b, GE_REF, rule); }

/* A rule matching the exact bytes of s. */
static int32_t lit_rule(cc *c, const char *s)
{
    gr_body b;
    gr_body_init(&b, c->r);
    gr_body_lit(&b, s, strlen(s));
    return gr_rule_from(c->r, &b);
}

/* A rule for 0..n repetitions of one element (kind, arg); -1 when n == 0. */
static int32_t rep_opt(cc *c, int32_t kind, int32_t arg, int n)
{
    int32_t prev = -1;
    for (int k = 1; k <= n; k++) {
        gr_body b;
        gr_body_init(&b, c->r);
        gr_body_add(&b, kind, arg);
        ref(&b, prev);
        gr_body_alt(&b);
        prev = gr_rule_from(c->r, &b);
    }
    return prev;
}

static int32_t digit_set(cc *c, unsigned char lo)
{
    gr_set s = {{0}};
    for (unsigned ch = lo; ch <= '9'; ch++) s.w[0] |= 1ull << ch;
    return gr_set_id(c->r, &s);
}

/* ===== scalar rules ===== */

static int32_t string_rule(cc *c)
{
    if (c->str < 0) {
        gr_body b;
        gr_body_init(&b, c->r);
        gr_body_byte(&b, '"');
        gr_body_add(&b, GE_STRLOOP, 0);
        gr_body_byte(&b, '"');
        c->str = gr_rule_from(c->r, &b);
    }
    return c->str;
}

/* "-"? ("0" | [1-9][0-9]{0,15}); as_number adds an optional fraction and exponent. */
static int32_t number_rule(cc *c, bool as_number)
{
    int32_t *slot = as_number ? &c->num : &c->integer;
    if (*slot >= 0) return *slot;
    gr_body b;
    gr_body_init(&b, c->r);
    gr_body_byte(&b, '-');
    gr_body_alt(&b);
    int32_t neg = gr_rule_from(c->r, &b);
    int32_t digits = rep_opt(c, GE_SET, digit_set(c, '0'), NUM_DIGITS - 1);
    gr_body_init(&b, c->r);
    gr_body_byte(&b, '0');
    gr_body_alt(&b);
    gr_body_add(&b, GE_SET, digit_set(c, '1'));
    ref(&b, digits);
    int32_t ipart = gr_rule_from(c->r, &b);
    gr_body_init(&b, c->r);
    ref(&b, neg);
    ref(&b, ipart);
    if (as_number) {
        gr_body f;                               /* ("." [0-9]{1,16})? */
        gr_body_init(&f, c->r);
        gr_body_byte(&f, '.');
        gr_body_add(&f, GE_SET, digit_set(c, '0'));
        ref(&f, digits);
        gr_body_alt(&f);
        ref(&b, gr_rule_from(c->r, &f));
        gr_body_init(&f, c->r);                  /* ([eE] [+-]? [0-9]{1,3})? */
        gr_body_byte(&f, '+');
        gr_body_alt(&f);
        gr_body_byte(&f, '-');
        gr_body_alt(&f);
        int32_t sign = gr_rule_from(c->r, &f);
        gr_body_init(&f, c->r);
        gr_set e = {{0}};
        e.w[1] |= (1ull << ('e' - 64)) | (1ull << ('E' - 64));
        gr_body_add(&f, GE_SET, gr_set_id(c->r, &e));
        ref(&f, sign);
        gr_body_add(&f, GE_SET, digit_set(c, '0'));
        ref(&f, rep_opt(c, GE_SET, digit_set(c, '0'), 2));
        gr_body_alt(&f);
        ref(&b, gr_rule_from(c->r, &f));
    }
    *slot = gr_rule_from(c->r, &b);
    return *slot;
}

static int32_t bool_rule(cc *c)
{
    if (c->boolean < 0) {
        gr_body b;
        gr_body_init(&b, c->r);
        gr_body_lit(&b, "true", 4);
        gr_body_alt(&b);
        gr_body_lit(&b, "false", 5);
        c->boolean = gr_rule_from(c->r, &b);
    }
    return c->boolean;
}

static int32_t null_rule(cc *c)
{
    if (c->null < 0) c->null = lit_rule(c, "null");
    return c->null;
}

/* ===== containers ===== */

/* "{" ws ("}" | key ws ":" ws V ws ("," ws key ws ":" ws V ws)* "}"), key any string. */
static int32_t map_rule(cc *c, int32_t value)
{
    gr_body b;
    gr_body_init(&b, c->r);
    ref(&b, string_rule(c));
    ws(&b);
    gr_body_byte(&b, ':');
    ws(&b);
    ref(&b, value);
    ws(&b);
    int32_t member = gr_rule_from(c->r, &b);
    int32_t tail = gr_rule_new(c->r);
    gr_body_init(&b, c->r);
    gr_body_byte(&b, ',');
    ws(&b);
    ref(&b, member);
    ref(&b, tail);
    gr_body_alt(&b);
    gr_rule_define(c->r, tail, &b);
    gr_body_init(&b, c->r);
    gr_body_byte(&b, '{');
    ws(&b);
    gr_body_byte(&b, '}');
    gr_body_alt(&b);
    gr_body_byte(&b, '{');
    ws(&b);
    ref(&b, member);
    ref(&b, tail);
    gr_body_byte(&b, '}');
    return gr_rule_from(c->r, &b);
}

/* Items k+1.. of an array of item rule V with min..max items (max -1: any). */
static int32_t array_tail(cc *c, int32_t value, int k, int min, int max)
{
    if (max >= 0 && k >= max) return -1;
    gr_body b;
    gr_body_init(&b, c->r);
    if (max < 0 && k >= min) {                   /* ("," ws V ws)* */
        int32_t loop = gr_rule_new(c->r);
        gr_body_byte(&b, ',');
        ws(&b);
        ref(&b, value);
        ws(&b);
        ref(&b, loop);
        gr_body_alt(&b);
        gr_rule_define(c->r, loop, &b);
        return loop;
    }
    int32_t next = array_tail(c, value, k + 1, min, max);
    gr_body_byte(&b, ',');
    ws(&b);
    ref(&b, value);
    ws(&b);
    ref(&b, next);
    if (k >= min) gr_body_alt(&b);
    return gr_rule_from(c->r, &b);
}

static int32_t array_rule(cc *c, int32_t value, int min, int max)
{
    gr_body b;
    gr_body_init(&b, c->r);
    gr_body_byte(&b, '[');
    ws(&b);
    if (min == 0) {
        gr_body_byte(&b, ']');
        if (max != 0) {
            gr_body_alt(&b);
            gr_body_byte(&b, '[');
            ws(&b);
        }
    }
    if (max != 0) {
        ref(&b, value);
        ws(&b);
        ref(&b, array_tail(c, value, 1, min, max));
        gr_body_byte(&b, ']');
    }
    return gr_rule_from(c->r, &b);
}

static int32_t any_rule(cc *c)
{
    if (c->any >= 0) return c->any;
    c->any = gr_rule_new(c->r);
    c->any_obj = map_rule(c, c->any);
    c->any_arr = array_rule(c, c->any, 0, -1);
    gr_body b;
    gr_body_init(&b, c->r);
    int32_t alts[] = { c->any_obj, c->any_arr, string_rule(c), number_rule(c, true),
                       bool_rule(c), null_rule(c) };
    for (size_t i = 0; i < sizeof alts / sizeof *alts; i++) {
        if (i) gr_body_alt(&b);
        ref(&b, alts[i]);
    }
    gr_rule_define(c->r, c->any, &b);
    return c->any;
}

/* ===== keyword helpers ===== */

static const char *const k_meta[] = {
    "title", "description", "default", "examples", "$schema", "$id", "$comment", "format",
    "deprecated", "readOnly", "writeOnly", "$defs", "definitions", NULL };
static const char *const k_handled[] = {
    "type", "properties", "required", "additionalProperties", "items", "minItems",
    "maxItems", "minLength", "maxLength", "enum", "const", "anyOf", "oneOf", "allOf",
    "$ref", NULL };

static bool in_list(const char *k, const char *const *list)
{
    for (; *list; list++) if (!strcmp(k, *list)) return true;
    return false;
}

/* Fails on any keyword outside the subset, and on combinators mixed with
 * other constraints (their meaning would be an intersection we do not build). */
static bool check_keywords(cc *c, const cJSON *s)
{
    const cJSON *k, *comb = NULL;
    cJSON_ArrayForEach(k, s) {
        if (in_list(k->string, k_meta)) continue;
        if (!in_list(k->string, k_handled)) {
            fail(c, "unsupported schema keyword '%s'", k->string);
            return false;
        }
        if (!strcmp(k->string, "anyOf") || !strcmp(k->string, "oneOf") ||
            !strcmp(k->string, "allOf") || !strcmp(k->string, "$ref")) {
            if (comb) {
                fail(c, "'%s' combined with '%s' is not supported", comb->string, k->string);
                return false;
            }
            comb = k;
        }
    }
    cJSON_ArrayForEach(k, s) {
        if (comb && k != comb && !in_list(k->string, k_meta)) {
            fail(c, "'%s' combined with '%s' is not supported", comb->string, k->string);
            return false;
        }
    }
    return true;
}

/* Integer keyword in 0..BOUND_MAX, or dflt when absent; -2 on failure. */
static int bound(cc *c, const cJSON *s, const char *key, int dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, key);
    if (!v) return dflt;
    /* range before the integer test: casting 1e54 to an integer type is UB */
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0)) {
        fail(c, "'%s' must be a non-negative integer", key);
        return -2;
    }
    if (v->valuedouble > BOUND_MAX) {
        fail(c, "'%s' of %.0f is above the supported %d", key, v->valuedouble, BOUND_MAX);
        return -2;
    }
    if (v->valuedouble != (double)(int)v->valuedouble) {
        fail(c, "'%s' must be a non-negative integer", key);
        return -2;
    }
    return (int)v->valuedouble;
}

/* An object-valued keyword; an empty array counts as {} (Lua tables). */
static bool is_obj(const cJSON *v) { return cJSON_IsObject(v) || (cJSON_IsArray(v) && !v->child); }

/* The exact text of a JSON value as a rule (const, enum members). */
static int32_t value_lit(cc *c, const cJSON *v)
{
    char *txt = cJSON_PrintUnformatted(v);
    if (!txt) { c->r->oom = true; return -1; }
    int32_t id = lit_rule(c, txt);
    cJSON_free(txt);
    return id;
}

/* ===== typed schemas ===== */

static int32_t string_schema(cc *c, const cJSON *s)
{
    int min = bound(c, s, "minLength", 0), max = bound(c, s, "maxLength", -1);
    if (min == -2 || max == -2) return -1;
    if (max >= 0 && min > max) return fail(c, "minLength %d > maxLength %d", min, max);
    if (min == 0 && max < 0) return string_rule(c);
    gr_body b;
    gr_body_init(&b, c->r);
    gr_body_byte(&b, '"');
    for (int i = 0; i < min; i++) gr_body_add(&b, GE_STRCHAR, 0);
    if (max < 0) gr_body_add(&b, GE_STRLOOP, 0);
    else if (max > min) gr_body_add(&b, GE_STRN, max - min);
    gr_body_byte(&b, '"');
    return gr_rule_from(c->r, &b);
}

static int32_t array_schema(cc *c, const cJSON *s)
{
    int min = bound(c, s, "minItems", 0), max = bound(c, s, "maxItems", -1);
    if (min == -2 || max == -2) return -1;
    if (max >= 0 && min > max) return fail(c, "minItems %d > maxItems %d", min, max);
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
    int32_t v;
    if (!items) v = any_rule(c);
    else if (cJSON_IsArray(items)) return fail(c, "'items' as an array (tuples) is not supported");
    else {
        size_t m = path_push(c, "items", NULL);
        v = compile(c, items);
        path_pop(c, m);
    }
    if (v < 0) return -1;
    return array_rule(c, v, min, max);
}

/* Key text as a JSON string literal ("name" with escapes). */
static char *key_lit(const char *name)
{
    cJSON *k = cJSON_CreateString(name);
    char *txt = k ? cJSON_PrintUnformatted(k) : NULL;
    cJSON_Delete(k);
    return txt;
}

/* kv_i: "name" ws ":" ws V ws */
static int32_t member_rule(cc *c, const cJSON *prop)
{
    size_t m = path_push(c, "properties", prop->string);
    int32_t v = compile(c, prop);
    path_pop(c, m);
    if (v < 0) return -1;
    char *k = key_lit(prop->string);
    if (!k) { c->r->oom = true; return -1; }
    gr_body b;
    gr_body_init(&b, c->r);
    gr_body_lit(&b, k, strlen(k));
    cJSON_free(k);
    ws(&b);
    gr_body_byte(&b, ':');
    ws(&b);
    ref(&b, v);
    ws(&b);
    return gr_rule_from(c->r, &b);
}

static bool is_required(const cJSON *req, const char *name)
{
    const cJSON *r;
    cJSON_ArrayForEach(r, req) if (cJSON_IsString(r) && !strcmp(r->valuestring, name)) return true;
    return false;
}

/* Properties in schema order; optional ones may be left out. Two rules per
 * property: "first" (no comma before it) and "rest" (comma before it). */
static int32_t props_rule(cc *c, const cJSON *props, const cJSON *req)
{
    int n = cJSON_GetArraySize(props);
    const cJSON *r;
    cJSON_ArrayForEach(r, req) {
        if (!cJSON_IsString(r)) return fail(c, "'required' must be an array of strings");
        if (!cJSON_GetObjectItemCaseSensitive(props, r->valuestring))
            return fail(c, "required property '%s' is not in 'properties'", r->valuestring);
    }
    int32_t *kv = calloc((size_t)n, sizeof *kv);
    if (!kv) { c->r->oom = true; return -1; }
    int i = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, props) if ((kv[i++] = member_rule(c, p)) < 0) { free(kv); return -1; }
    int32_t next_first = -1, next_rest = -1;
    for (i = n - 1; i >= 0; i--) {
        bool req_i = is_required(req, cJSON_GetArrayItem(props, i)->string);
        gr_body b;
        gr_body_init(&b, c->r);
        gr_body_byte(&b, ',');
        ws(&b);
        ref(&b, kv[i]);
        ref(&b, next_rest);
        if (!req_i) { gr_body_alt(&b); ref(&b, next_rest); }
        int32_t rest = gr_rule_from(c->r, &b);
        gr_body_init(&b, c->r);
        ref(&b, kv[i]);
        ref(&b, next_rest);
        if (!req_i) { gr_body_alt(&b); ref(&b, next_first); }
        next_first = gr_rule_from(c->r, &b);
        next_rest = rest;
    }
    free(kv);
    gr_body b;
    gr_body_init(&b, c->r);
    gr_body_byte(&b, '{');
    ws(&b);
    ref(&b, next_first);
    gr_body_byte(&b, '}');
    return gr_rule_from(c->r, &b);
}

static int32_t object_schema(cc *c, const cJSON *s)
{
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(s, "required");
    const cJSON *add = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
    if (props && !is_obj(props)) return fail(c, "'properties' must be an object");
    if (req && !cJSON_IsArray(req)) return fail(c, "'required' must be an array of strings");
    if (add && !cJSON_IsBool(add) && !cJSON_IsObject(add))
        return fail(c, "'additionalProperties' must be a boolean or a schema");
    if (props && props->child) return props_rule(c, props, req);
    if (req && req->child) return fail(c, "'required' names properties but 'properties' is empty");
    if (cJSON_IsFalse(add)) return lit_rule(c, "{}");
    if (!add || cJSON_IsTrue(add)) return any_rule(c), c->any_obj;
    size_t m = path_push(c, "additionalProperties", NULL);
    int32_t v = compile(c, add);
    path_pop(c, m);
    return v < 0 ? -1 : map_rule(c, v);
}

static int32_t typed(cc *c, const cJSON *s, const char *t)
{
    if (!strcmp(t, "object")) return object_schema(c, s);
    if (!strcmp(t, "array")) return array_schema(c, s);
    if (!strcmp(t, "string")) return string_schema(c, s);
    if (!strcmp(t, "number")) return number_rule(c, true);
    if (!strcmp(t, "integer")) return number_rule(c, false);
    if (!strcmp(t, "boolean")) return bool_rule(c);
    if (!strcmp(t, "null")) return null_rule(c);
    return fail(c, "unknown type '%s'", t);
}

/* The type a schema without "type" stands for, from its keywords. */
static const char *implied_type(const cJSON *s)
{
    static const char *const obj[] = { "properties", "required", "additionalProperties", NULL };
    static const char *const arr[] = { "items", "minItems", "maxItems", NULL };
    static const char *const str[] = { "minLength", "maxLength", NULL };
    const char *const *lists[] = { obj, arr, str };
    const char *names[] = { "object", "array", "string" };
    for (int i = 0; i < 3; i++)
        for (const char *const *k = lists[i]; *k; k++)
            if (cJSON_GetObjectItemCaseSensitive(s, *k)) return names[i];
    return NULL;
}

/* ===== combinators and references ===== */

/* A rule choosing among the rules of the schemas in arr (anyOf, oneOf,
 * enum members when lits, a type list when types). */
static int32_t alternatives(cc *c, const cJSON *s, const cJSON *arr, const char *key, int mode)
{
    if (!cJSON_IsArray(arr) || !arr->child) return fail(c, "'%s' must be a non-empty array", key);
    gr_body b;
    gr_body_init(&b, c->r);
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, arr) {
        char idx[16];
        snprintf(idx, sizeof idx, "%d", i);
        size_t m = path_push(c, key, idx);
        int32_t r;
        if (mode == 1) r = value_lit(c, x);
        else if (mode == 2) r = cJSON_IsString(x) ? typed(c, s, x->valuestring)
                                                  : fail(c, "type names must be strings");
        else r = compile(c, x);
        path_pop(c, m);
        if (r < 0) { free(b.el); return -1; }
        if (i++) gr_body_alt(&b);
        ref(&b, r);
    }
    return gr_rule_from(c->r, &b);
}

/* Resolves a local JSON pointer ("#", "#/$defs/Name"), ~0 and ~1 decoded. */
static const cJSON *resolve(cc *c, const char *ptr)
{
    if (ptr[0] != '#') return NULL;
    const cJSON *cur = c->root;
    const char *p = ptr + 1;
    while (*p == '/' && cur) {
        char seg[256];
        size_t n = 0;
        for (p++; *p && *p != '/' && n + 1 < sizeof seg; p++) {
            if (p[0] == '~' && (p[1] == '0' || p[1] == '1')) { seg[n++] = p[1] == '0' ? '~' : '/'; p++; }
            else seg[n++] = *p;
        }
        seg[n] = 0;
        cur = cJSON_IsArray(cur) ? cJSON_GetArrayItem(cur, atoi(seg))
                                 : cJSON_GetObjectItemCaseSensitive(cur, seg);
    }
    return *p ? NULL : cur;
}

static int32_t ref_schema(cc *c, const cJSON *v)
{
    if (!cJSON_IsString(v)) return fail(c, "'$ref' must be a string");
    for (int i = 0; i < c->n_refs; i++)
        if (!strcmp(c->refs[i].ref, v->valuestring)) return c->refs[i].rule;
    const cJSON *target = resolve(c, v->valuestring);
    if (!target) {
        if (v->valuestring[0] != '#') return fail(c, "only local '$ref' (\"#/...\") are supported, got '%s'", v->valuestring);
        return fail(c, "'$ref' target '%s' does not exist", v->valuestring);
    }
    if (c->n_refs == REFS_MAX) return fail(c, "more than %d distinct '$ref'", REFS_MAX);
    int32_t id = gr_rule_new(c->r);                /* declared first: recursion */
    char *dup = strdup(v->valuestring);
    if (!dup) { c->r->oom = true; return -1; }
    c->refs[c->n_refs].ref = dup;
    c->refs[c->n_refs++].rule = id;
    char saved[sizeof c->path];
    size_t plen = c->plen;
    memcpy(saved, c->path, sizeof saved);
    snprintf(c->path, sizeof c->path, "%s", v->valuestring + 1);
    c->plen = strlen(c->path);
    int32_t body = compile(c, target);
    memcpy(c->path, saved, sizeof saved);
    c->plen = plen;
    if (body < 0) return -1;
    gr_body b;
    gr_body_init(&b, c->r);
    ref(&b, body);
    gr_rule_define(c->r, id, &b);
    return id;
}

static int32_t compile_obj(cc *c, const cJSON *s)
{
    if (!check_keywords(c, s)) return -1;
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(s, "$ref"))) return ref_schema(c, v);
    if ((v = cJSON_GetObjectItemCaseSensitive(s, "allOf"))) {
        if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 1)
            return fail(c, "'allOf' is supported with exactly one schema");
        size_t m = path_push(c, "allOf", "0");
        int32_t r = compile(c, v->child);
        path_pop(c, m);
        return r;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(s, "anyOf"))) return alternatives(c, s, v, "anyOf", 0);
    if ((v = cJSON_GetObjectItemCaseSensitive(s, "oneOf"))) return alternatives(c, s, v, "oneOf", 0);
    if ((v = cJSON_GetObjectItemCaseSensitive(s, "const"))) return value_lit(c, v);
    if ((v = cJSON_GetObjectItemCaseSensitive(s, "enum"))) return alternatives(c, s, v, "enum", 1);
    v = cJSON_GetObjectItemCaseSensitive(s, "type");
    if (cJSON_IsString(v)) return typed(c, s, v->valuestring);
    if (cJSON_IsArray(v)) return alternatives(c, s, v, "type", 2);
    if (v) return fail(c, "'type' must be a string or an array of strings");
    const char *t = implied_type(s);
    return t ? typed(c, s, t) : any_rule(c);
}

static int32_t compile(cc *c, const cJSON *s)
{
    if (c->failed || c->r->oom) return -1;
    if (cJSON_IsTrue(s)) return any_rule(c);
    if (cJSON_IsFalse(s)) return fail(c, "the schema 'false' allows no value");
    if (!cJSON_IsObject(s)) return fail(c, "a schema must be an object or a boolean");
    if (c->depth >= DEPTH_MAX) return fail(c, "schema nested deeper than %d", DEPTH_MAX);
    c->depth++;
    int32_t r = compile_obj(c, s);
    c->depth--;
    return r;
}

/* ===== entry ===== */

int32_t gr_compile_json(gr_rules *r, const char *schema_json, bool any_object, mh_err *err)
{
    cc c = { .r = r, .err = err, .any = -1, .any_obj = -1, .any_arr = -1, .str = -1,
             .num = -1, .integer = -1, .boolean = -1, .null = -1 };
    int32_t root = gr_rule_new(r), value;
    if (any_object) {
        any_rule(&c);
        value = c.any_obj;
    } else {
        c.root = cJSON_Parse(schema_json ? schema_json : "");
        if (!c.root) {
            mh_err_set(err, MH_EFORMAT, "json schema: not valid JSON near byte %ld",
                       schema_json ? (long)(cJSON_GetErrorPtr() - schema_json) : 0L);
            return -1;
        }
        value = compile(&c, c.root);
        cJSON_Delete(c.root);
    }
    for (int i = 0; i < c.n_refs; i++) free(c.refs[i].ref);
    if (value >= 0 && !r->oom) {
        gr_body b;
        gr_body_init(&b, r);
        ws(&b);
        ref(&b, value);
        ws(&b);
        gr_rule_define(r, root, &b);
    }
    if (r->oom) {
        mh_err_set(err, MH_ENOMEM, "json schema: out of memory building the grammar");
        return -1;
    }
    if (value < 0) return -1;
    for (int32_t i = 0; i < r->n_rules; i++)
        if (r->start[i] < 0) {
            mh_err_set(err, MH_EINVAL, "json schema: a '$ref' cycle defines nothing");
            return -1;
        }
    return root;
}
