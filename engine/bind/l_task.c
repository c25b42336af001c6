/* l_task.c: the task userdata of l_task.h — task:result(), task:done();
 * collecting a task nobody waits for leaves its thread to finish and free.
 * Layer: engine/bind (lua.h + mh/work.h + mh/loop.h). */
#include "l_task.h"

#define TASK_MT "moonhub.task"

typedef struct task_box {
    mh_work *w;
    mhl_task_push_fn push;
    int taken;                       /* result() already pushed the values */
} task_box;

static task_box *check_task(lua_State *L)
{
    task_box *b = luaL_checkudata(L, 1, TASK_MT);
    if (!b->w) luaL_error(L, "task: already released");
    return b;
}

/* task:result() -> the results | nil, msg; raises while it still runs */
static int task_result(lua_State *L)
{
    task_box *b = check_task(L);
    if (!mh_work_done(b->w)) return luaL_error(L, "task:result: still running (wait for its channel to close)");
    if (b->taken) return luaL_error(L, "task:result: the result was already taken");
    mh_err err = { 0 };
    if (mh_work_status(b->w, &err)) return mh_lua_fail(L, &err);
    b->taken = 1;
    return b->push(L, mh_work_arg(b->w));
}

static int task_done(lua_State *L)
{
    lua_pushboolean(L, mh_work_done(check_task(L)->w));
    return 1;
}

static int task_gc(lua_State *L)
{
    task_box *b = luaL_checkudata(L, 1, TASK_MT);
    mh_work_release(b->w);
    b->w = NULL;
    return 0;
}

int mhl_task_start(lua_State *L, const char *fname, mh_work_fn fn, mhl_task_push_fn push,
                   mh_work_free_fn free_arg, void *arg)
{
    if (luaL_newmetatable(L, TASK_MT)) {
        static const luaL_Reg m[] = { { "result", task_result }, { "done", task_done }, { NULL, NULL } };
        lua_pop(L, 1);
        mh_lua_new_class(L, TASK_MT, m, task_gc);
    } else {
        lua_pop(L, 1);
    }
    task_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    *b = (task_box){ NULL, push, 0 };
    luaL_setmetatable(L, TASK_MT);
    mh_err err = { 0 };
    mh_chan *ch = mh_chan_new(mh_lua_loop(L), &err);
    if (!ch) {
        free_arg(arg);
        return mh_lua_raise(L, fname, &err);
    }
    mh_lua_push_chan(L, ch);         /* the channel box takes our reference */
    b->w = mh_work_start(fn, arg, free_arg, ch, &err);
    if (!b->w) return mh_lua_raise(L, fname, &err);
    return 2;
}
