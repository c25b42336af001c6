/* fuzz_hf_config.c: libFuzzer target for the Hugging Face config.json ->
 * hyperparameters mapping the folder loader and convert share
 * (engine/model/hf_config.c): the input is parsed as JSON, mapped, and every
 * tensor name the mapped config implies is asked for (dense, experts and
 * their slices), into a roomy and a cramped buffer. A finding: a crash, a
 * sanitizer report, a refusal without a message, or an accepted config with
 * hyperparameters the engine could not size. Layer: fuzz (engine/model). */
#include <cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../engine/model/hf_config.h"

static void finding(const char *what, const mh_hparams *hp)
{
    fprintf(stderr, "fuzz: finding in fuzz_hf_config: %s (arch %s, layers %lld, embd %lld, heads "
            "%lld/%lld, head_dim %lld, experts %lld/%lld)\n", what, hp->arch_name,
            (long long)hp->n_layer, (long long)hp->n_embd, (long long)hp->n_head,
            (long long)hp->n_head_kv, (long long)hp->head_dim, (long long)hp->n_expert_used,
            (long long)hp->n_expert);
    abort();
}

/* What the decoder loaders size buffers from must hold for an accepted
 * config (encoders size theirs by other rules: bert_load.c). */
static void check_hparams(const mh_hparams *hp)
{
    if (hp->encoder) return;
    if (hp->n_embd < 1 || hp->n_layer < 1 || hp->n_layer > 1024 || hp->n_ff < 1 || hp->n_vocab < 1)
        finding("accepted a non-positive size", hp);
    if (hp->n_head < 1 || hp->n_head_kv < 1 || hp->n_head % hp->n_head_kv)
        finding("accepted heads that do not group", hp);
    if (hp->head_dim < 2 || hp->head_dim % 2) finding("accepted an odd or empty head_dim", hp);
    if (hp->n_expert < 0 || hp->n_expert > 256 || (hp->n_expert > 0) != (hp->n_expert_used > 0) ||
        hp->n_expert_used > hp->n_expert)
        finding("accepted an expert count the router cannot hold", hp);
    if (hp->n_expert > 0 && (hp->n_ff_exp < 1 || hp->n_ff_shexp < 0))
        finding("accepted an expert without a width", hp);
}

/* Every GGUF name of layer l (and two expert slices) through the map. */
static void names(const mh_hf_config *c, int64_t l)
{
    static const char *const parts[] = {
        "attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_q.bias",
        "attn_output.weight", "attn_qkv.weight", "attn_q_norm.weight", "ffn_norm.weight",
        "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight", "post_ffw_norm.weight",
        "ffn_gate_inp.weight", "ffn_gate_exps.weight", "ffn_gate_exps.0.weight",
        "ffn_up_exps.%lld.weight", "ffn_down_exps.%lld.weight", "ffn_down_exps.-1.weight",
        "ffn_up_exps.1x.weight", "ffn_gate_inp_shexp.weight", "ffn_gate_shexp.weight",
        "ffn_up_shexp.weight", "ffn_down_shexp.weight", "nonsense",
    };
    char gguf[128], part[64], big[256], small[24];
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        snprintf(part, sizeof part, parts[i], (long long)(c->hp.n_expert - 1));
        snprintf(gguf, sizeof gguf, "blk.%lld.%s", (long long)l, part);
        bool a = mh_hf_tensor_name(c, gguf, big, sizeof big);
        bool b = mh_hf_tensor_name(c, gguf, small, sizeof small);
        if (b && !a) finding("a name fits a small buffer but not a large one", &c->hp);
        if (a && strlen(big) >= sizeof big) finding("an unterminated name", &c->hp);
        (void)mh_hf_norm_plus_one(c, gguf);
        (void)mh_hf_is_row_matrix(gguf);
    }
    static const char *const globals[] = { "token_embd.weight", "output_norm.weight", "output.weight" };
    for (int g = 0; g < 3; g++) (void)mh_hf_tensor_name(c, globals[g], big, sizeof big);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *j = cJSON_ParseWithLength((const char *)data, size);
    if (!j) return 0;
    mh_hf_config c;
    mh_err err = { 0 };
    int st = mh_hf_config_parse(j, &c, &err);
    if (st != MH_OK && (!err.msg[0] || err.code != st)) finding("a refusal without its message", &c.hp);
    if (st == MH_OK) {
        check_hparams(&c.hp);
        names(&c, 0);
        names(&c, c.hp.n_layer - 1);
    }
    mh_hf_config_free(&c);
    cJSON_Delete(j);
    return 0;
}
