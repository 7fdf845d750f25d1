/* task.h: how native modules suspend the calling task (or block, outside one). */
#ifndef FERRY_TASK_H
#define FERRY_TASK_H

#include <lua.h>

struct task;

/* A suspension point. The owner (an http transfer, a sleep, a task.wait)
 * embeds one in a userdata kept on the Lua stack across the yield, sets
 * cancel, starts its I/O, then calls task_await. Its completion calls
 * task_wake. If the task is cancelled first, cancel() detaches the I/O and
 * reason is set; the continuation must then call task_raise_cancelled. */
struct task_wait {
    void (*cancel)(struct task_wait *w); /* stop the I/O; must not call task_wake */
    struct task *task;                   /* set by task_await; NULL when blocking */
    struct task_wait *next;              /* used by task.wait's list of waiters */
    int woken;
    const char *reason; /* "cancelled", "timeout", "interrupted" */
};

/* Suspends until task_wake(w), then returns k(L, LUA_YIELD or LUA_OK, ctx).
 * In a task: yields (lua_yieldk). Outside one (the main thread, a plain
 * coroutine, a non-yieldable C call): runs the loop here until woken. */
int task_await(lua_State *L, struct task_wait *w, lua_KContext ctx, lua_KFunction k);

/* Marks w done and makes its task runnable. Safe from loop callbacks. */
void task_wake(struct task_wait *w);

/* [-0, +0, v] Raises the error object for w->reason. */
int task_raise_cancelled(lua_State *L, const struct task_wait *w);

/* [-(n+1), +3, -] Runs fn (below its n args) as the root task until it ends,
 * shielded or not from signal cancellation. Pushes true, a results table
 * {n = ...}, nil; or false, the error value, its traceback string. */
void task_run_root(lua_State *L, int nargs, int shielded);

/* [-0, +1, -] The running task's context table (the workflow runner keeps
 * the current step's name there), or nil outside a task. */
void task_push_context(lua_State *L);

int luaopen_task(lua_State *L);

#endif
