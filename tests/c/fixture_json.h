/* fixture_json.h: what the fixture-driven C tests (test_arch, test_bert)
 * share: reading a committed JSON fixture and turning the preset it
 * recorded into an mh_create_config. Header-only (static): each test is one
 * translation unit. Uses cJSON and mh/create.h. */
#ifndef MH_TEST_FIXTURE_JSON_H
#define MH_TEST_FIXTURE_JSON_H
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mh/create.h"

static cJSON *read_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cJSON *j = NULL;
    if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        buf[n] = 0;
        j = cJSON_Parse(buf);
    }
    free(buf);
    fclose(f);
    return j;
}

static double num(const cJSON *o, const char *k, double def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

/* A fixture's config (a moonhub create preset, as preset_json.lua prints
 * it) as the C config, with the defaults the Lua binding applies. */
static void config_from(const cJSON *o, mh_create_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->arch, sizeof c->arch, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(o, "arch")));
    snprintf(c->name, sizeof c->name, "test");
    c->n_layer = (int64_t)num(o, "n_layer", 0);
    c->n_embd = (int64_t)num(o, "n_embd", 0);
    c->n_ff = (int64_t)num(o, "n_ff", 0);
    c->n_head = (int64_t)num(o, "n_head", 0);
    c->n_head_kv = (int64_t)num(o, "n_head_kv", (double)c->n_head);
    c->n_vocab = (int64_t)num(o, "n_vocab", 0);
    c->n_ctx = (int64_t)num(o, "n_ctx", 2048);
    c->rope_base = num(o, "rope_base", 10000);
    c->rms_eps = num(o, "rms_eps", 1e-5);
    c->rope_factor = num(o, "rope_factor", 0);
    c->rope_low_freq = num(o, "rope_low_freq", 1);
    c->rope_high_freq = num(o, "rope_high_freq", 4);
    c->rope_orig_ctx = (int64_t)num(o, "rope_orig_ctx", 8192);
    c->std = num(o, "std", 0.02);
    c->head_dim = (int64_t)num(o, "head_dim", 0);
    c->n_swa = (int64_t)num(o, "n_swa", 0);
    c->attn_softcap = num(o, "attn_softcap", 0);
    c->final_softcap = num(o, "final_softcap", 0);
    c->rope_base_swa = num(o, "rope_base_swa", 0);
    c->rope_scale_linear = num(o, "rope_scale_linear", 0);
    c->rope_scale_yarn = num(o, "rope_scale_yarn", 0);
    c->norm_std = num(o, "norm_std", 0);
    c->tied = cJSON_IsTrue(cJSON_GetObjectItem(o, "tied"));
    c->qkv_bias = cJSON_IsTrue(cJSON_GetObjectItem(o, "qkv_bias"));
    c->longrope = cJSON_IsTrue(cJSON_GetObjectItem(o, "longrope"));
    c->n_expert = (int64_t)num(o, "n_expert", 0);
    c->n_expert_used = (int64_t)num(o, "n_expert_used", 0);
    c->n_ff_exp = (int64_t)num(o, "n_ff_exp", 0);
    c->n_ff_shexp = (int64_t)num(o, "n_ff_shexp", 0);
    c->pooling = (int64_t)num(o, "pooling", 0);
}

#endif
