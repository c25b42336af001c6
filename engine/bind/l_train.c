/* l_train.c: moonhub.core.train — trainers over loaded models (LoRA, QLoRA,
 * full). Layer: engine/bind (calls mh/train.h). Options arrive flat and
 * already defaulted from lua/moonhub/train.lua; batches are Lua arrays of
 * token rows, padded here to one width (pads are masked out). */
#include <stdlib.h>
#include <string.h>
#include "bind.h"
#include "mh/train.h"

#define TRAINER_MT "moonhub.trainer"

typedef struct trainer_box { mh_trainer *t; mh_model *m; } trainer_box;

/* The trainer at idx; raises when freed or when its model was closed. */
static trainer_box *check_trainer(lua_State *L, int idx, const char *fname)
{
    trainer_box *b = luaL_checkudata(L, idx, TRAINER_MT);
    if (!b->t) luaL_error(L, "%s: trainer has been closed", fname);
    lua_getiuservalue(L, idx, 1);
    if (mh_lua_to_model(L, -1) != b->m) luaL_error(L, "%s: the trainer's model has been closed", fname);
    lua_pop(L, 1);
    return b;
}

/* ===== options ===== */

static double opt_num(lua_State *L, int idx, const char *k, double def)
{
    lua_getfield(L, idx, k);
    double v = def;
    if (!lua_isnil(L, -1)) {
        if (!lua_isnumber(L, -1)) luaL_error(L, "train.trainer: option %s must be a number", k);
        v = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

static void read_config(lua_State *L, int idx, mh_train_config *c)
{
    mh_train_config_init(c);
    lua_getfield(L, idx, "method");
    const char *m = luaL_optstring(L, -1, "lora");
    if (strcmp(m, "lora") && strcmp(m, "full")) luaL_error(L, "train.trainer: method must be \"lora\" or \"full\", got \"%s\"", m);
    c->method = strcmp(m, "full") ? MH_TRAIN_LORA : MH_TRAIN_FULL;
    lua_getfield(L, idx, "decay");
    const char *d = luaL_optstring(L, -1, "constant");
    if (!strcmp(d, "constant")) c->decay = MH_DECAY_CONSTANT;
    else if (!strcmp(d, "linear")) c->decay = MH_DECAY_LINEAR;
    else if (!strcmp(d, "cosine")) c->decay = MH_DECAY_COSINE;
    else luaL_error(L, "train.trainer: schedule.decay must be constant, linear or cosine, got \"%s\"", d);
    lua_pop(L, 2);
    c->lora_rank = (int)opt_num(L, idx, "rank", c->lora_rank);
    c->lora_alpha = (float)opt_num(L, idx, "alpha", c->lora_alpha);
    c->lora_dropout = (float)opt_num(L, idx, "dropout", c->lora_dropout);
    c->lora_targets = (unsigned)opt_num(L, idx, "targets", c->lora_targets);
    c->lr = (float)opt_num(L, idx, "lr", c->lr);
    c->weight_decay = (float)opt_num(L, idx, "weight_decay", c->weight_decay);
    c->beta1 = (float)opt_num(L, idx, "beta1", c->beta1);
    c->beta2 = (float)opt_num(L, idx, "beta2", c->beta2);
    c->adam_eps = (float)opt_num(L, idx, "eps", c->adam_eps);
    c->warmup = (int64_t)opt_num(L, idx, "warmup", 0);
    c->total_steps = (int64_t)opt_num(L, idx, "total", 0);
    c->min_lr = (float)opt_num(L, idx, "min_lr", 0);
    c->grad_clip = (float)opt_num(L, idx, "grad_clip", c->grad_clip);
    c->accumulate = (int)opt_num(L, idx, "accumulate", 1);
    c->seed = (uint64_t)opt_num(L, idx, "seed", 1);
    lua_getfield(L, idx, "checkpoint");
    c->checkpoint = lua_toboolean(L, -1);
    lua_pop(L, 1);
}

/* trainer(model_handle, opts) -> trainer */
static int l_trainer(lua_State *L)
{
    mh_model *m = mh_lua_check_model(L, 1, "train.trainer");
    luaL_checktype(L, 2, LUA_TTABLE);
    mh_train_config c;
    read_config(L, 2, &c);
    trainer_box *b = lua_newuserdatauv(L, sizeof *b, 1);
    b->t = NULL;
    b->m = m;
    luaL_setmetatable(L, TRAINER_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);          /* keeps the model alive */
    mh_err err = {0};
    if (!(b->t = mh_trainer_new(m, &c, &err))) return mh_lua_raise(L, "train.trainer", &err);
    return 1;
}

/* ===== batches ===== */

typedef struct batch { int32_t *tok; uint8_t *mask; int64_t B, T; } batch;

/* tokens = {{ids...}, ...}, mask = nil | {{0/1...}, ...}: padded to T */
static void read_batch(lua_State *L, int ti, int mi, batch *bt, const char *fname)
{
    luaL_checktype(L, ti, LUA_TTABLE);
    bool has_mask = !lua_isnoneornil(L, mi);
    if (has_mask) luaL_checktype(L, mi, LUA_TTABLE);
    bt->B = (int64_t)luaL_len(L, ti);
    bt->T = 0;
    if (bt->B < 1) luaL_error(L, "%s: tokens must hold at least one row", fname);
    for (int64_t b = 1; b <= bt->B; b++) {
        if (lua_geti(L, ti, b) != LUA_TTABLE) luaL_error(L, "%s: tokens[%d] must be an array of ids", fname, (int)b);
        int64_t n = (int64_t)luaL_len(L, -1);
        if (n > bt->T) bt->T = n;
        lua_pop(L, 1);
    }
    if (bt->T < 2) luaL_error(L, "%s: rows need at least 2 tokens", fname);
    /* the buffers live in a userdata so an error below frees them */
    uint8_t *mem = lua_newuserdatauv(L, (size_t)(bt->B * bt->T) * 5, 0);
    bt->tok = (int32_t *)mem;
    bt->mask = mem + (size_t)(bt->B * bt->T) * 4;
    memset(mem, 0, (size_t)(bt->B * bt->T) * 5);
    for (int64_t b = 0; b < bt->B; b++) {
        lua_geti(L, ti, b + 1);
        if (has_mask && lua_geti(L, mi, b + 1) != LUA_TTABLE)
            luaL_error(L, "%s: mask[%d] must be an array of 0/1", fname, (int)b + 1);
        int64_t n = (int64_t)luaL_len(L, -1 - has_mask);
        for (int64_t i = 0; i < n; i++) {
            lua_geti(L, -1 - has_mask, i + 1);
            int ok;
            lua_Integer id = lua_tointegerx(L, -1, &ok);
            if (!ok) luaL_error(L, "%s: tokens[%d][%d] must be an integer", fname, (int)b + 1, (int)i + 1);
            bt->tok[b * bt->T + i] = (int32_t)(id < INT32_MIN || id > INT32_MAX ? -1 : id);
            lua_pop(L, 1);
            uint8_t mk = 1;
            if (has_mask) {
                lua_geti(L, -1, i + 1);
                mk = lua_isnil(L, -1) ? 1 : lua_isboolean(L, -1) ? (uint8_t)lua_toboolean(L, -1)
                                                                  : lua_tonumber(L, -1) != 0;
                lua_pop(L, 1);
            }
            bt->mask[b * bt->T + i] = mk;
        }
        lua_pop(L, 1 + has_mask);
    }
}

/* tr:step(tokens, mask) -> {loss, grad_norm, lr, tokens_per_s, status, step, tokens} */
static int t_step(lua_State *L)
{
    trainer_box *b = check_trainer(L, 1, "trainer:step");
    batch bt;
    read_batch(L, 2, 3, &bt, "trainer:step");
    mh_train_result r;
    mh_err err = {0};
    if (mh_trainer_step(b->t, bt.tok, bt.mask, bt.B, bt.T, &r, &err)) return mh_lua_raise(L, "trainer:step", &err);
    lua_createtable(L, 0, 8);
    lua_pushnumber(L, r.loss); lua_setfield(L, -2, "loss");
    lua_pushnumber(L, r.grad_norm); lua_setfield(L, -2, "grad_norm");
    lua_pushnumber(L, r.lr); lua_setfield(L, -2, "lr");
    lua_pushnumber(L, r.tokens_per_s); lua_setfield(L, -2, "tokens_per_s");
    lua_pushnumber(L, r.seconds); lua_setfield(L, -2, "seconds");
    lua_pushstring(L, r.nan ? "nan" : "ok"); lua_setfield(L, -2, "status");
    lua_pushinteger(L, r.step); lua_setfield(L, -2, "step");
    lua_pushinteger(L, r.n_tokens); lua_setfield(L, -2, "tokens");
    return 1;
}

/* tr:eval(tokens, mask) -> loss_sum, n_tokens */
static int t_eval(lua_State *L)
{
    trainer_box *b = check_trainer(L, 1, "trainer:eval");
    batch bt;
    read_batch(L, 2, 3, &bt, "trainer:eval");
    double sum;
    int64_t n;
    mh_err err = {0};
    if (mh_trainer_eval(b->t, bt.tok, bt.mask, bt.B, bt.T, &sum, &n, &err))
        return mh_lua_raise(L, "trainer:eval", &err);
    lua_pushnumber(L, sum);
    lua_pushinteger(L, n);
    return 2;
}

/* ===== files: environmental failures give nil, msg ===== */

static int file_result(lua_State *L, int st, const mh_err *err)
{
    if (st == MH_EINVAL || st == MH_ETYPE) return luaL_error(L, "%s", err->msg);
    if (st) return mh_lua_fail(L, err);
    lua_pushboolean(L, 1);
    return 1;
}

static int t_save_adapter(lua_State *L)
{
    trainer_box *b = check_trainer(L, 1, "trainer:save");
    mh_err err = {0};
    const char *path = luaL_checkstring(L, 2);
    size_t n = strlen(path);
    int st = n > 5 && !strcmp(path + n - 5, ".gguf") ? mh_trainer_save_adapter_gguf(b->t, path, &err)
                                                      : mh_trainer_save_adapter(b->t, path, &err);
    return file_result(L, st, &err);
}

static int t_checkpoint(lua_State *L)
{
    trainer_box *b = check_trainer(L, 1, "trainer:checkpoint");
    mh_err err = {0};
    return file_result(L, mh_trainer_checkpoint(b->t, luaL_checkstring(L, 2), &err), &err);
}

static int t_restore(lua_State *L)
{
    trainer_box *b = check_trainer(L, 1, "trainer:restore");
    mh_err err = {0};
    return file_result(L, mh_trainer_restore(b->t, luaL_checkstring(L, 2), &err), &err);
}

/* tr:export(path, type_name) */
static int t_export(lua_State *L)
{
    trainer_box *b = check_trainer(L, 1, "trainer:export");
    const char *path = luaL_checkstring(L, 2), *tn = luaL_optstring(L, 3, "f32");
    int dt = mh_dtype_from_name(tn);
    if (dt < 0) return luaL_error(L, "trainer:export: unknown type \"%s\"", tn);
    mh_err err = {0};
    return file_result(L, mh_trainer_export(b->t, path, (mh_dtype)dt, &err), &err);
}

static int t_info(lua_State *L)
{
    trainer_box *b = check_trainer(L, 1, "trainer:info");
    const mh_train_config *c = mh_trainer_config(b->t);
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, mh_trainer_steps(b->t)); lua_setfield(L, -2, "step");
    lua_pushinteger(L, mh_trainer_n_trainable(b->t)); lua_setfield(L, -2, "trainable");
    lua_pushinteger(L, mh_trainer_n_params(b->t)); lua_setfield(L, -2, "tensors");
    lua_pushstring(L, c->method == MH_TRAIN_FULL ? "full" : "lora"); lua_setfield(L, -2, "method");
    return 1;
}

static int t_lr_at(lua_State *L)
{
    trainer_box *b = check_trainer(L, 1, "trainer:lr_at");
    lua_pushnumber(L, mh_train_lr_at(mh_trainer_config(b->t), (int64_t)luaL_checkinteger(L, 2)));
    return 1;
}

static int t_close(lua_State *L)
{
    trainer_box *b = luaL_checkudata(L, 1, TRAINER_MT);
    mh_trainer_free(b->t);
    b->t = NULL;
    return 0;
}

static const luaL_Reg trainer_methods[] = {
    { "step", t_step }, { "eval", t_eval }, { "save_adapter", t_save_adapter },
    { "checkpoint", t_checkpoint }, { "restore", t_restore }, { "export", t_export },
    { "info", t_info }, { "lr_at", t_lr_at }, { "close", t_close }, { NULL, NULL },
};

int luaopen_moonhub_core_train(lua_State *L)
{
    luaL_newmetatable(L, TRAINER_MT);
    luaL_newlib(L, trainer_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, t_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, t_close);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushcfunction(L, l_trainer);
    lua_setfield(L, -2, "trainer");
    return 1;
}
