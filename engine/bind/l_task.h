/* l_task.h: worker-thread tasks for the bindings — a C function runs on a
 * worker thread (mh/work.h) while Lua waits on a channel; the result is
 * turned into Lua values on the loop thread. Layer: engine/bind. */
#ifndef MH_L_TASK_H
#define MH_L_TASK_H

#include "bind.h"
#include "mh/work.h"

/* Loop thread, once, after fn succeeded: pushes the results, taking what it
 * keeps out of arg (so that the free function does not free it). */
typedef int (*mhl_task_push_fn)(lua_State *L, void *arg);

/* Starts fn(arg) on a worker thread and pushes (task, channel): the channel
 * closes when fn has returned; then task:result() gives push's results, or
 * nil, msg when fn failed. free_arg frees arg in every case. Raises when no
 * thread can start. */
int mhl_task_start(lua_State *L, const char *fname, mh_work_fn fn, mhl_task_push_fn push,
                   mh_work_free_fn free_arg, void *arg);

#endif
