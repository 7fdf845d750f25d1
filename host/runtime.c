/* runtime.c: builds the Lua state scripts run in: the standard libraries,
 * one preload table naming every native module, and loading limited to
 * source text (load, loadfile, dofile and require refuse bytecode).
 * Also the one protected-call helper and the error reporter. */
#include "runtime.h"

#include "embed.h"
#include "host.h"
#include "log/log.h"
#include "redact.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>

int luaopen_aws(lua_State *L);
int luaopen_errors(lua_State *L);
int luaopen_http(lua_State *L);
int luaopen_json(lua_State *L);
int luaopen_log(lua_State *L);
int luaopen_task(lua_State *L);
int luaopen_yaml(lua_State *L);
int luaopen_zip(lua_State *L);

/* What scripts can require without a search path, one module a line,
 * alphabetical. Pure-Lua modules embedded in the binary (modules/workflow/...)
 * are added after these. */
/* clang-format off */
static const luaL_Reg preload[] = {
    {"aws", luaopen_aws},
    {"errors", luaopen_errors},
    {"http", luaopen_http},
    {"json", luaopen_json},
    {"log", luaopen_log},
    {"task", luaopen_task},
    {"yaml", luaopen_yaml},
    {"zip", luaopen_zip},
    {NULL, NULL},
};
/* clang-format on */

/* package.preload loader of an embedded pure-Lua module (upvalue: its entry). */
static int load_embedded(lua_State *L)
{
    const struct embed_file *f = lua_touserdata(L, lua_upvalueindex(1));
    if (luaL_loadbufferx(L, f->src, f->len, f->chunk, "t") != LUA_OK) return lua_error(L);
    lua_pushstring(L, f->name);
    lua_call(L, 1, 1);
    return 1;
}

/* ---- text-only loading ---- */

/* Calls the original loader (upvalue 1) with argument `mode` forced to "t",
 * passing on exactly the arguments given: an absent env must stay absent,
 * or the chunk would get a nil _ENV. */
static int call_text_only(lua_State *L, int mode)
{
    if (lua_gettop(L) < mode) lua_settop(L, mode);
    lua_pushliteral(L, "t");
    lua_replace(L, mode);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* load(chunk [, name [, mode [, env]]]) */
static int text_load(lua_State *L)
{
    return call_text_only(L, 3);
}

/* loadfile([file [, mode [, env]]]) */
static int text_loadfile(lua_State *L)
{
    return call_text_only(L, 2);
}

static int dofile_cont(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    return lua_gettop(L) - 1;
}

/* dofile([file]) loading text only. */
static int text_dofile(lua_State *L)
{
    const char *name = luaL_optstring(L, 1, NULL);
    lua_settop(L, 1);
    if (luaL_loadfilex(L, name, "t") != LUA_OK) return lua_error(L);
    lua_callk(L, 0, LUA_MULTRET, 0, dofile_cont);
    return dofile_cont(L, 0, 0);
}

/* The package.searchers entry for Lua files on package.path, text only. */
static int search_text(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "searchpath");
    lua_pushstring(L, name);
    lua_getfield(L, -3, "path");
    lua_call(L, 2, 2);
    if (lua_isnil(L, -2)) return 1; /* the "no file ..." message */
    const char *file = lua_tostring(L, -2);
    if (luaL_loadfilex(L, file, "t") != LUA_OK)
        return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, file,
                          lua_tostring(L, -1));
    lua_pushstring(L, file);
    return 2;
}

static void wrap_global(lua_State *L, const char *name, lua_CFunction fn)
{
    lua_getglobal(L, name);
    lua_pushcclosure(L, fn, 1);
    lua_setglobal(L, name);
}

static int open(lua_State *L)
{
    luaL_openlibs(L);
    wrap_global(L, "load", text_load);
    wrap_global(L, "loadfile", text_loadfile);
    lua_pushcfunction(L, text_dofile);
    lua_setglobal(L, "dofile");

    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    for (const luaL_Reg *m = preload; m->name; m++) {
        lua_pushcfunction(L, m->func);
        lua_setfield(L, -2, m->name);
    }
    for (const struct embed_file *f = embed_files; f->name; f++) {
        if (lua_getfield(L, -1, f->name) == LUA_TNIL) { /* not the Lua half of a C module */
            lua_pushlightuserdata(L, (void *)f);
            lua_pushcclosure(L, load_embedded, 1);
            lua_setfield(L, -3, f->name);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);

    lua_getglobal(L, "package");
    lua_getfield(L, -1, "searchers");
    lua_pushcfunction(L, search_text);
    lua_rawseti(L, -2, 2);
    lua_pop(L, 2);
    return 0;
}

lua_State *runtime_open(struct host *h)
{
    lua_State *L = luaL_newstate();
    if (!L) return NULL;
    /* tasks find themselves in a thread's extra space; every thread copies
     * the main thread's, which must therefore say "no task" */
    memset(lua_getextraspace(L), 0, LUA_EXTRASPACE);
    host_attach(h, L);
    lua_pushcfunction(L, open);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        fprintf(stderr, "ferry: %s\n", lua_tostring(L, -1));
        lua_close(L);
        return NULL;
    }
    return L;
}

int runtime_loadfile(lua_State *L, const char *path)
{
    return luaL_loadfilex(L, path, "t");
}

static int msghandler(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TTABLE) {
        if (lua_getfield(L, 1, "traceback") == LUA_TNIL) {
            luaL_traceback(L, L, NULL, 1);
            lua_setfield(L, 1, "traceback");
        }
        lua_settop(L, 1);
        return 1;
    }
    const char *msg = lua_tostring(L, 1);
    if (!msg) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int runtime_pcall(lua_State *L, int nargs, int nres)
{
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, msghandler);
    lua_insert(L, base);
    int status = lua_pcall(L, nargs, nres, base);
    lua_remove(L, base);
    return status;
}

void runtime_report(lua_State *L, int idx, int tb)
{
    struct host *h = host_get(L);
    int top = lua_gettop(L);
    idx = lua_absindex(L, idx);
    if (tb) tb = lua_absindex(L, tb);
    const char *msg = luaL_tolstring(L, idx, NULL);
    const char *trace = NULL;
    if (lua_type(L, idx) == LUA_TTABLE && lua_getfield(L, idx, "traceback") == LUA_TSTRING)
        trace = lua_tostring(L, -1);
    if (!trace && tb && lua_type(L, tb) == LUA_TSTRING && !strstr(msg, "stack traceback:"))
        trace = lua_tostring(L, tb);
    lua_pushfstring(L, "%s%s%s", msg, trace ? "\n" : "", trace ? trace : "");
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    if (h->log_format == LOG_JSON) { /* one parseable line, like every other */
        log_write(L, LOG_ERROR, text, len);
    } else {
        text = redact_push(h->secrets, L, text, len);
        fprintf(stderr, "ferry: %s\n", text);
    }
    lua_settop(L, top);
}
