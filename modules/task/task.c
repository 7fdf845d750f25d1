/* task.c: coroutines as tasks on the host loop — spawn, wait, sleep, cancel,
 * deadlines — and task_await, the one way native I/O suspends a task.
 *
 * Invariants: a task is resumed only from its loop job (task_run), never from
 * an I/O callback; until it ends, a task is anchored in the registry and on
 * the host's live list (which signals cancel); cancellation is delivered at
 * the task's next suspension point, never in the middle of Lua code.
 * Each task's lua_State carries its struct task in lua_getextraspace, so
 * task_current() is one load; every other thread's extra space is NULL. */
#include "task.h"

#include "errors/errors.h"
#include "host.h"
#include "loop.h"

#include <lauxlib.h>
#include <string.h>

#define TASK_MT "ferry.task.Task"

/* Uservalues of a task userdata. */
enum { UV_THREAD = 1, UV_CONTEXT, UV_RESULT, UV_TRACEBACK, UV_COUNT = UV_TRACEBACK };

enum task_state { TASK_READY, TASK_RUNNING, TASK_WAITING, TASK_DONE };

struct task {
    struct loop_job job; /* resumes the task; first member */
    struct loop_timer deadline;
    struct host *host;
    lua_State *co;
    enum task_state state;
    int started, nargs, ref, ok, done, shielded;
    unsigned id;
    const char *cancel;        /* pending cancellation reason, or NULL */
    struct task_wait *wait;    /* what a WAITING task waits on */
    struct task_wait *waiters; /* waits for this task to end */
    struct task *prev, *next;  /* the host's live list */
};

#define TASK_OF(p, member) ((struct task *)((char *)(p)-offsetof(struct task, member)))

static struct task **live_head(struct host *h)
{
    return (struct task **)&h->tasks;
}

static struct task *task_current(lua_State *L)
{
    return *(struct task **)lua_getextraspace(L);
}

static struct task *check_task(lua_State *L, int i)
{
    return luaL_checkudata(L, i, TASK_MT);
}

static const char *state_name(const struct task *t)
{
    static const char *names[] = {"ready", "running", "waiting", "done"};
    if (t->state == TASK_DONE && !t->ok) return "failed";
    return names[t->state];
}

/* ---- scheduling ---- */

static void schedule(struct task *t)
{
    t->state = TASK_READY;
    loop_post(t->host->loop, &t->job);
}

void task_wake(struct task_wait *w)
{
    w->woken = 1;
    struct task *t = w->task;
    if (t && t->wait == w) {
        t->wait = NULL;
        schedule(t);
    }
}

static void task_cancel(struct task *t, const char *reason)
{
    if (t->state == TASK_DONE) return;
    if (!t->cancel) t->cancel = reason;
    if (t->state == TASK_WAITING && t->wait) {
        struct task_wait *w = t->wait;
        t->wait = NULL;
        w->cancel(w);
        w->reason = t->cancel;
        schedule(t);
    }
    /* READY or RUNNING: delivered at its next task_await (or before it starts) */
}

static void on_deadline(struct loop_timer *tm)
{
    task_cancel(TASK_OF(tm, deadline), "timeout");
}

static void on_signal(void *arg, int sig)
{
    struct host *h = arg;
    h->signal = sig;
    for (struct task *t = *live_head(h); t; t = t->next)
        if (!t->shielded) task_cancel(t, "interrupted");
}

/* Unwinds a coroutine that died with an error (on top of its stack), running
 * its to-be-closed variables' __close handlers, as a normal return would. */
static void close_thread(lua_State *co, lua_State *from)
{
#if LUA_VERSION_RELEASE_NUM >= 50406
    lua_closethread(co, from);
#else
    (void)from;
    lua_resetthread(co);
#endif
}

/* [-0, +0, -] Ends t: stores its results or its error and traceback (taken
 * from the coroutine's stack, nres values or the error on top), releases the
 * coroutine and wakes the tasks waiting for it. */
static void finish(struct task *t, int ok, int nres)
{
    lua_State *L = t->host->L, *co = t->co;
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref); /* the task userdata */
    if (ok) {
        lua_createtable(L, nres, 1);
        lua_xmove(co, L, nres);
        for (int i = nres; i >= 1; i--) lua_rawseti(L, -(i + 1), i);
        lua_pushinteger(L, nres);
        lua_setfield(L, -2, "n");
    } else {
        luaL_traceback(L, co, NULL, 0); /* before the stack unwinds */
        lua_setiuservalue(L, -2, UV_TRACEBACK);
        lua_pushvalue(co, -1);
        lua_xmove(co, L, 1); /* the error value; a copy stays on top of co */
        close_thread(co, L); /* runs its pending __close handlers with that error */
    }
    lua_setiuservalue(L, -2, UV_RESULT);
    lua_pushnil(L);
    lua_setiuservalue(L, -2, UV_THREAD); /* the coroutine is garbage now */
    lua_pop(L, 1);

    t->co = NULL;
    t->state = TASK_DONE;
    t->ok = ok;
    t->done = 1;
    loop_timer_stop(t->host->loop, &t->deadline);
    if (t->prev)
        t->prev->next = t->next;
    else
        *live_head(t->host) = t->next;
    if (t->next) t->next->prev = t->prev;
    t->prev = t->next = NULL;
    for (struct task_wait *w = t->waiters, *next; w; w = next) {
        next = w->next;
        w->next = NULL;
        task_wake(w);
    }
    t->waiters = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, t->ref); /* from here on only Lua holds it */
    t->ref = LUA_NOREF;
}

static void task_run(struct loop_job *j)
{
    struct task *t = (struct task *)j;
    if (t->state == TASK_DONE) return;
    if (!t->started && t->cancel) { /* cancelled before it ever ran */
        lua_settop(t->co, 0);
        errors_push(t->co, t->cancel, "task %d %s before it started", (int)t->id,
                    strcmp(t->cancel, "timeout") == 0 ? "timed out" : t->cancel);
        finish(t, 0, 0);
        return;
    }
    int nargs = t->started ? 0 : t->nargs, nres = 0;
    t->started = 1;
    t->state = TASK_RUNNING;
    int status = lua_resume(t->co, NULL, nargs, &nres);
    if (status == LUA_YIELD) {
        if (t->state == TASK_RUNNING) { /* a bare coroutine.yield(): run again next turn */
            lua_pop(t->co, nres);
            schedule(t);
        }
        return;
    }
    finish(t, status == LUA_OK, nres);
}

/* ---- suspension ---- */

int task_raise_cancelled(lua_State *L, const struct task_wait *w)
{
    const char *r = w->reason ? w->reason : "cancelled";
    if (strcmp(r, "timeout") == 0)
        errors_push(L, r, "deadline exceeded");
    else if (strcmp(r, "interrupted") == 0)
        errors_push(L, r, "interrupted by a signal");
    else if (strcmp(r, "deadlock") == 0)
        errors_push(L, r, "waiting on something that can never finish");
    else
        errors_push(L, r, "task cancelled");
    return lua_error(L);
}

int task_await(lua_State *L, struct task_wait *w, lua_KContext ctx, lua_KFunction k)
{
    struct task *t = task_current(L);
    w->woken = 0;
    w->reason = NULL;
    if (t && lua_isyieldable(L)) {
        if (t->cancel) {
            w->cancel(w);
            w->reason = t->cancel;
            return task_raise_cancelled(L, w);
        }
        w->task = t;
        t->wait = w;
        t->state = TASK_WAITING;
        return lua_yieldk(L, 0, ctx, k);
    }
    /* Not in a task, or in a call that cannot yield: block, running the loop. */
    struct host *h = host_get(L);
    w->task = NULL;
    enum loop_status st = loop_run_until(host_loop(h), &w->woken);
    if (!w->woken) {
        w->cancel(w);
        w->reason = st == LOOP_SIGNAL ? "interrupted" : "deadlock";
    }
    return k(L, LUA_OK, ctx);
}

/* ---- spawning ---- */

static int task_tostring(lua_State *L);
static int task_cancel_l(lua_State *L);
static int task_id(lua_State *L);
static int task_status(lua_State *L);
static int task_wait(lua_State *L);

static const luaL_Reg task_methods[] = {
    {"cancel", task_cancel_l}, {"id", task_id}, {"status", task_status},
    {"wait", task_wait},       {NULL, NULL},
};

/* [-0, +1, m] The task metatable, made on first use. */
static void push_task_mt(lua_State *L)
{
    if (luaL_newmetatable(L, TASK_MT)) {
        luaL_newlib(L, task_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, task_tostring);
        lua_setfield(L, -2, "__tostring");
    }
}

/* [-(n+1), +1, m] Makes a task of the function below its n arguments. */
static struct task *spawn(lua_State *L, int nargs)
{
    struct host *h = host_get(L);
    int fn = lua_gettop(L) - nargs;
    struct task *t = lua_newuserdatauv(L, sizeof *t, UV_COUNT);
    memset(t, 0, sizeof *t);
    t->ref = LUA_NOREF;
    push_task_mt(L); /* the root task exists before anyone requires "task" */
    lua_setmetatable(L, -2);
    t->host = h;
    t->job.run = task_run;
    t->deadline.fire = on_deadline;
    t->id = ++h->task_ids;
    t->nargs = nargs;

    t->co = lua_newthread(L);
    *(struct task **)lua_getextraspace(t->co) = t;
    lua_setiuservalue(L, -2, UV_THREAD);
    struct task *parent = task_current(L);
    if (parent) { /* children inherit the context (the current step) and the shield */
        t->shielded = parent->shielded;
        lua_rawgeti(L, LUA_REGISTRYINDEX, parent->ref);
        if (lua_getiuservalue(L, -1, UV_CONTEXT) == LUA_TTABLE)
            lua_setiuservalue(L, -3, UV_CONTEXT);
        else
            lua_pop(L, 1);
        lua_pop(L, 1);
    }
    lua_insert(L, fn); /* task below fn and args */
    lua_xmove(L, t->co, nargs + 1);

    lua_pushvalue(L, -1);
    t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    struct task **head = live_head(h);
    t->next = *head;
    if (*head) (*head)->prev = t;
    *head = t;
    host_loop(h); /* make sure the loop (and its signal hook) exists */
    schedule(t);
    return t;
}

static void ensure_signal_hook(struct host *h)
{
    loop_on_signal(host_loop(h), on_signal, h);
}

void task_run_root(lua_State *L, int nargs, int shielded)
{
    struct host *h = host_get(L);
    ensure_signal_hook(h);
    struct task *t = spawn(L, nargs);
    t->shielded = shielded;
    while (!t->done) {
        enum loop_status st = loop_run_until(h->loop, &t->done);
        if (st == LOOP_IDLE && !t->done) { /* waiting on nothing that can end */
            task_cancel(t, "deadlock");
            if (t->state != TASK_READY) break;
        }
    }
    lua_pushboolean(L, t->ok);
    lua_getiuservalue(L, -2, UV_RESULT);
    lua_getiuservalue(L, -3, UV_TRACEBACK);
    lua_remove(L, -4);
}

/* ---- Lua API ---- */

/* task.spawn(fn, ...) -> task */
static int task_spawn(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    ensure_signal_hook(host_get(L));
    spawn(L, lua_gettop(L) - 1);
    return 1;
}

/* [-0, +n, v] Pushes the results of a finished task, or raises its error
 * (string errors get the task's traceback appended; error objects get a
 * traceback field). */
static int push_outcome(lua_State *L, int ti)
{
    lua_getiuservalue(L, ti, UV_RESULT);
    struct task *t = lua_touserdata(L, ti);
    if (t->ok) {
        lua_getfield(L, -1, "n");
        int n = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
        luaL_checkstack(L, n, "too many results");
        for (int i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
        return n;
    }
    lua_getiuservalue(L, ti, UV_TRACEBACK);
    if (lua_type(L, -2) == LUA_TTABLE) {
        if (lua_getfield(L, -2, "traceback") == LUA_TNIL) {
            lua_pop(L, 1);
            lua_setfield(L, -2, "traceback");
        } else {
            lua_pop(L, 2);
        }
    } else if (lua_type(L, -2) == LUA_TSTRING) {
        lua_pushliteral(L, "\n");
        lua_insert(L, -2);
        lua_concat(L, 3);
    } else {
        lua_pop(L, 1);
    }
    return lua_error(L);
}

/* A task waiting for another: on the target's list of waiters until it ends. */
struct joiner {
    struct task_wait w; /* first */
    struct task *target;
};

static void unlink_joiner(struct task_wait *w)
{
    struct task *t = ((struct joiner *)w)->target;
    for (struct task_wait **p = &t->waiters; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
}

static int task_wait_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    struct joiner *j = lua_touserdata(L, (int)ctx);
    if (j->w.reason) return task_raise_cancelled(L, &j->w);
    return push_outcome(L, 1);
}

/* task.wait(t) -> the task's results; re-raises its error with its traceback. */
static int task_wait(lua_State *L)
{
    struct task *t = check_task(L, 1);
    lua_settop(L, 1);
    if (t->done) return push_outcome(L, 1);
    if (t == task_current(L)) return luaL_error(L, "a task cannot wait for itself");
    struct joiner *j = lua_newuserdatauv(L, sizeof *j, 0);
    memset(j, 0, sizeof *j);
    j->target = t;
    j->w.cancel = unlink_joiner;
    j->w.next = t->waiters;
    t->waiters = &j->w;
    return task_await(L, &j->w, 2, task_wait_k);
}

struct sleeper {
    struct task_wait w;
    struct loop_timer timer;
    struct loop *loop;
};

static void sleeper_fire(struct loop_timer *tm)
{
    struct sleeper *s = (struct sleeper *)((char *)tm - offsetof(struct sleeper, timer));
    task_wake(&s->w);
}

static void sleeper_cancel(struct task_wait *w)
{
    struct sleeper *s = (struct sleeper *)w;
    loop_timer_stop(s->loop, &s->timer);
}

static int task_sleep_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    struct sleeper *s = lua_touserdata(L, (int)ctx);
    if (s->w.reason) return task_raise_cancelled(L, &s->w);
    return 0;
}

/* task.sleep(seconds) */
static int task_sleep(lua_State *L)
{
    lua_Number secs = luaL_checknumber(L, 1);
    luaL_argcheck(L, secs >= 0 && secs < 1e9, 1, "seconds out of range");
    lua_settop(L, 1);
    struct sleeper *s = lua_newuserdatauv(L, sizeof *s, 0);
    memset(s, 0, sizeof *s);
    s->loop = host_loop(host_get(L));
    s->w.cancel = sleeper_cancel;
    s->timer.fire = sleeper_fire;
    loop_timer_start(s->loop, &s->timer, loop_now() + secs);
    return task_await(L, &s->w, 2, task_sleep_k);
}

/* task.cancel(t [, reason]): t raises {code = reason} at its next suspension. */
static int task_cancel_l(lua_State *L)
{
    static const char *const reasons[] = {"cancelled", "timeout", "interrupted", NULL};
    struct task *t = check_task(L, 1);
    task_cancel(t, reasons[luaL_checkoption(L, 2, "cancelled", reasons)]);
    return 0;
}

/* task.deadline(t, seconds): cancels t with reason "timeout" after seconds. */
static int task_deadline(lua_State *L)
{
    struct task *t = check_task(L, 1);
    lua_Number secs = luaL_checknumber(L, 2);
    luaL_argcheck(L, secs >= 0, 2, "seconds must not be negative");
    if (!t->done) loop_timer_start(t->host->loop, &t->deadline, loop_now() + secs);
    return 0;
}

/* task.current() -> the running task, or nil outside one */
static int task_current_l(lua_State *L)
{
    struct task *t = task_current(L);
    if (!t) return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
    return 1;
}

void task_push_context(lua_State *L)
{
    struct task *t = task_current(L);
    if (!t) {
        lua_pushnil(L);
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
    lua_getiuservalue(L, -1, UV_CONTEXT);
    lua_remove(L, -2);
}

/* task.context([tbl]) -> the current task's context table (inherited by the
 * tasks it spawns); with tbl, replaces it. Outside a task: nil. */
static int task_context(lua_State *L)
{
    struct task *t = task_current(L);
    if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TTABLE);
    if (!t) return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
    if (lua_istable(L, 1)) {
        lua_pushvalue(L, 1);
        lua_setiuservalue(L, -2, UV_CONTEXT);
        lua_pushvalue(L, 1);
        return 1;
    }
    lua_getiuservalue(L, -1, UV_CONTEXT);
    return 1;
}

/* task.shield(t, on): a shielded task is not cancelled by signals (teardown). */
static int task_shield(lua_State *L)
{
    check_task(L, 1)->shielded = lua_toboolean(L, 2);
    return 0;
}

/* task.interrupted() -> the signal number that interrupted the run, or nil */
static int task_interrupted(lua_State *L)
{
    struct host *h = host_get(L);
    if (!h->signal) return 0;
    lua_pushinteger(L, h->signal);
    return 1;
}

/* task.now() -> monotonic seconds (for durations; not wall-clock time) */
static int task_now(lua_State *L)
{
    lua_pushnumber(L, loop_now());
    return 1;
}

static int task_status(lua_State *L)
{
    lua_pushstring(L, state_name(check_task(L, 1)));
    return 1;
}

static int task_tostring(lua_State *L)
{
    struct task *t = check_task(L, 1);
    lua_pushfstring(L, "task %d (%s)", (int)t->id, state_name(t));
    return 1;
}

static int task_id(lua_State *L)
{
    lua_pushinteger(L, check_task(L, 1)->id);
    return 1;
}

int luaopen_task(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"cancel", task_cancel_l},
        {"context", task_context},
        {"current", task_current_l},
        {"deadline", task_deadline},
        {"interrupted", task_interrupted},
        {"now", task_now},
        {"shield", task_shield},
        {"sleep", task_sleep},
        {"spawn", task_spawn},
        {"status", task_status},
        {"wait", task_wait},
        {NULL, NULL},
    };
    luaL_newlib(L, fns);
    return host_embed_call(L, "task", 1); /* task.lua adds all, map, timeout */
}
