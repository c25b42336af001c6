/* l_sched.h: what l_sched.c (moonhub.core.sched) shares with
 * l_sched_extra.c: readers of a submit table's per-request extensions, and
 * the batch form of embed.
 * Layer: engine/bind. */
#ifndef MH_L_SCHED_H
#define MH_L_SCHED_H

#include "bind.h"
#include "mh/sched.h"

/* t.lora = {adapter | {adapter =, scale =}, ...} into r->loras: a userdata
 * (GC-owned) pushed on the stack; raises on a bad entry. */
void mhl_sched_read_loras(lua_State *L, int t, mh_sched_request *r);

/* t.processors = true: r->park = a new (1, n_vocab) f32 tensor, pushed
 * (nil pushed when not asked); raises for a synchronous scheduler. */
void mhl_sched_read_park(lua_State *L, int t, bool sync, int64_t n_vocab, mh_sched_request *r);

/* s:embed({ids, ...}) -> {f32 tensor, ...}: several texts between two
 * steps (mh_sched_embed_batch: one forward for encoder models). Returns 0
 * (nothing pushed) when argument 2 is a plain id list; raises unless a table. */
int mhl_sched_embed_list(lua_State *L, mh_sched *s, int64_t n_vocab, const mh_model *m);

/* t.spec_costs = {draft_ms =, check_rounds = {[rows] = x, ...}} (as s:stats()
 * gives them) into c; raises on a bad entry. */
void mhl_sched_read_costs(lua_State *L, int t, const char *fn, mh_spec_costs *c);

/* s:stats(): st as a table (its fields by name), pushed. */
void mhl_sched_push_stats(lua_State *L, const mh_sched_stats *st);

#endif
