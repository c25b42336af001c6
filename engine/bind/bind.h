/* bind.h: shared helpers of the Lua binding layer and the list of C modules.
 * Layer: engine/bind (may include lua.h and mh/ headers). */
#ifndef MH_BIND_H
#define MH_BIND_H

#include <lua.h>
#include <lauxlib.h>
#include "mh/err.h"

typedef struct mh_lua_module {
    const char *name;          /* "moonhub.core.tensor" */
    lua_CFunction open;
} mh_lua_module;

/* NULL-terminated; engine/bind/modules.c. The host preloads each. */
extern const mh_lua_module mh_lua_modules[];

/* ===== errors: the one contract (docs/errors.md) =====
 * C fills an mh_err whose message may open with its own label ("forward: ",
 * "gguf_write: "); the binding raises once, naming the Lua function in place
 * of that label ("model.forward" + "forward: context full" -> "model.forward:
 * context full"), so no prefix is ever doubled. */

/* Raises "fname: <message>" (never returns). */
int mh_lua_raise(lua_State *L, const char *fname, const mh_err *err);
/* Pushes nil, "<message>" and returns 2 (environmental failures); the
 * message is as C wrote it (the Lua caller adds its own name once). */
int mh_lua_fail(lua_State *L, const mh_err *err);
/* The text mh_lua_raise puts after "fname: ": err->msg without a leading
 * label (a word of letters, digits, '_' or '.' followed by ": "). */
const char *mh_lua_err_text(const char *fname, const mh_err *err);

/* Registers metatable mt: methods as its __index table, gc as both __gc
 * and __close (one idempotent release). Leaves the stack as it was. */
void mh_lua_new_class(lua_State *L, const char *mt, const luaL_Reg *methods, lua_CFunction gc);

/* ===== models, caches and tokenizers across bindings =====
 * (l_model.c and l_tokenizer.c own the boxes; other modules go through these) */
struct mh_model;
struct mh_kv_cache;
struct mh_tokenizer;
typedef struct mh_lua_model_box mh_lua_model_box;

/* The model at idx (borrowed); raises "fname: ..." when idx is not a model,
 * or it was closed, or a scheduler owns it. */
struct mh_model *mh_lua_check_model(lua_State *L, int idx, const char *fname);
/* l_model.c: the batch form of embed shared by m:embed_batch and
 * s:embed_batch. Reads the list of id lists at idx (ids in 0..n_vocab-1),
 * runs fn once over all of them and returns a list of f32 tensors
 * (n_embd each); raises naming fname on bad input or fn's error. */
typedef int (*mh_lua_embed_fn)(void *ctx, const int32_t *const *tokens, const int64_t *n, int n_seqs,
                               float *out, mh_err *err);
int mh_lua_embed_list(lua_State *L, int idx, int64_t n_vocab, int64_t n_embd, mh_lua_embed_fn fn,
                      void *ctx, const char *fname);
/* The model at idx, or NULL when idx is not an open model (never raises). */
struct mh_model *mh_lua_to_model(lua_State *L, int idx);
/* Lends the model at idx to a scheduler's compute thread: until
 * mh_lua_model_unlend(box), model calls raise (they would race the thread).
 * The caller keeps the model userdata alive (a user value) meanwhile. */
mh_lua_model_box *mh_lua_model_lend(lua_State *L, int idx, const char *fname, struct mh_model **m);
void mh_lua_model_unlend(mh_lua_model_box *b);
/* The KV cache at idx, which must belong to model m (borrowed). */
struct mh_kv_cache *mh_lua_check_cache(lua_State *L, int idx, const struct mh_model *m, const char *fname);
/* The scheduler at idx (moonhub.core.sched; borrowed); raises "fname: ..."
 * when idx is not one or it was closed (l_sched.c). */
struct mh_sched *mh_lua_check_sched(lua_State *L, int idx, const char *fname);
/* The tokenizer at idx (borrowed); raises "fname: ..." when freed. */
struct mh_tokenizer *mh_lua_check_tokenizer(lua_State *L, int idx, const char *fname);

/* The grammar (moonhub.core.grammar) at idx as a decoding constraint that
 * now owns it (its box is emptied; l_grammar.c). Raises "fname: ..." when
 * idx is not an unused grammar. */
struct mh_sample_constraint;
void mh_lua_take_grammar(lua_State *L, int idx, const char *fname, struct mh_sample_constraint *out);

/* ===== tensors across bindings (defined in l_tensor.c) ===== */
struct mh_tensor;
/* Pushes a Lua tensor that takes over the caller's reference to t; when t is
 * NULL raises "fname: err->msg". */
void mh_lua_push_tensor(lua_State *L, struct mh_tensor *t, const char *fname, const mh_err *err);
/* The tensor at idx (borrowed; raises a clear error if it is not one). */
struct mh_tensor *mh_lua_check_tensor(lua_State *L, int idx);
/* The tensor at idx or NULL. */
struct mh_tensor *mh_lua_to_tensor(lua_State *L, int idx);

/* ===== the event loop across bindings (defined in l_http.c) ===== */
struct mh_loop;
struct mh_chan;
/* The loop of this state (moonhub.core.http's), loading that module first. */
struct mh_loop *mh_lua_loop(lua_State *L);
/* Pushes a channel (ch:recv, ch:close...) that takes over the caller's
 * reference to ch, made on mh_lua_loop(L); C threads push into it. */
void mh_lua_push_chan(lua_State *L, struct mh_chan *ch);

#endif
