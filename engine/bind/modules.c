/* modules.c: the C modules the host preloads as moonhub.core.<name>.
 * One line per module; each binding file defines its luaopen_ function. */
#include "bind.h"

int luaopen_moonhub_core_sys(lua_State *L);
int luaopen_moonhub_core_gguf(lua_State *L);
int luaopen_moonhub_core_tokenizer(lua_State *L);
int luaopen_moonhub_core_tensor(lua_State *L);
int luaopen_moonhub_core_safetensors(lua_State *L);
int luaopen_moonhub_core_sqlite(lua_State *L);
int luaopen_moonhub_core_pg(lua_State *L);

int luaopen_moonhub_core_model(lua_State *L);

int luaopen_moonhub_core_sample(lua_State *L);
int luaopen_moonhub_core_http(lua_State *L);
int luaopen_moonhub_core_sched(lua_State *L);
int luaopen_moonhub_core_gguf_write(lua_State *L);
int luaopen_moonhub_core_grammar(lua_State *L);
int luaopen_moonhub_core_fetch(lua_State *L);
int luaopen_moonhub_core_train(lua_State *L);
int luaopen_moonhub_core_fs(lua_State *L);
int luaopen_moonhub_core_kvstate(lua_State *L);

const mh_lua_module mh_lua_modules[] = {
    { "moonhub.core.sample", luaopen_moonhub_core_sample },
    { "moonhub.core.gguf_write", luaopen_moonhub_core_gguf_write },
    { "moonhub.core.grammar", luaopen_moonhub_core_grammar },
    { "moonhub.core.model", luaopen_moonhub_core_model },
    { "moonhub.core.sys", luaopen_moonhub_core_sys },
    { "moonhub.core.gguf", luaopen_moonhub_core_gguf },
    { "moonhub.core.tokenizer", luaopen_moonhub_core_tokenizer },
    { "moonhub.core.tensor", luaopen_moonhub_core_tensor },
    { "moonhub.core.safetensors", luaopen_moonhub_core_safetensors },
    { "moonhub.core.sqlite", luaopen_moonhub_core_sqlite },
    { "moonhub.core.pg", luaopen_moonhub_core_pg },
    { "moonhub.core.http", luaopen_moonhub_core_http },
    { "moonhub.core.sched", luaopen_moonhub_core_sched },
    { "moonhub.core.fetch", luaopen_moonhub_core_fetch },
    { "moonhub.core.train", luaopen_moonhub_core_train },
    { "moonhub.core.fs", luaopen_moonhub_core_fs },
    { "moonhub.core.kvstate", luaopen_moonhub_core_kvstate },
    { NULL, NULL },
};
