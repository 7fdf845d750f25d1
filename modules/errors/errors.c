/* errors.c: the error objects every module raises for service and transport
 * failures: {code, message, ...} plus whatever the module adds (url, status,
 * retryable, op, request_id). Scripts test `err.code`; people read tostring(err):
 * "message [code, HTTP 503]". Bad arguments stay plain luaL_argerror strings. */
#include "errors.h"

#include <lauxlib.h>
#include <stdarg.h>
#include <string.h>

#define ERROR_MT "ferry.Error"

static int error_tostring(lua_State *L)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    lua_getfield(L, 1, "message");
    if (lua_isstring(L, -1))
        luaL_addvalue(&b);
    else {
        lua_pop(L, 1);
        luaL_addstring(&b, "error");
    }
    lua_getfield(L, 1, "code");
    lua_getfield(L, 1, "status");
    if (lua_isstring(L, -2)) {
        luaL_addstring(&b, " [");
        luaL_addstring(&b, lua_tostring(L, -2));
        if (lua_isinteger(L, -1))
            lua_pushfstring(L, ", HTTP %I]", lua_tointeger(L, -1));
        else
            lua_pushliteral(L, "]");
        lua_remove(L, -2);
        lua_remove(L, -2);
        luaL_addvalue(&b);
    } else {
        lua_pop(L, 2);
    }
    luaL_pushresult(&b);
    return 1;
}

/* [-0, +1, m] The metatable, created on first use. */
static void push_mt(lua_State *L)
{
    if (luaL_newmetatable(L, ERROR_MT)) {
        lua_pushcfunction(L, error_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, "ferry.Error");
        lua_setfield(L, -2, "__name");
    }
}

void errors_push(lua_State *L, const char *code, const char *fmt, ...)
{
    va_list ap;
    lua_createtable(L, 0, 4);
    lua_pushstring(L, code);
    lua_setfield(L, -2, "code");
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_setfield(L, -2, "message");
    push_mt(L);
    lua_setmetatable(L, -2);
}

void errors_set(lua_State *L, int idx, const char *key, const char *v)
{
    if (!v) return;
    idx = lua_absindex(L, idx);
    lua_pushstring(L, v);
    lua_setfield(L, idx, key);
}

/* errors.new{code, message, ...}: gives the table the error metatable. */
static int errors_new(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    if (lua_getfield(L, 1, "code") != LUA_TSTRING)
        luaL_argerror(L, 1, "field 'code' must be a string");
    if (lua_getfield(L, 1, "message") != LUA_TSTRING)
        luaL_argerror(L, 1, "field 'message' must be a string");
    lua_settop(L, 1);
    push_mt(L);
    lua_setmetatable(L, 1);
    return 1;
}

/* errors.is(value [, code]): is value an error object (with that code)? */
static int errors_is(lua_State *L)
{
    const char *code = luaL_optstring(L, 2, NULL);
    int is = 0;
    if (lua_getmetatable(L, 1)) {
        luaL_getmetatable(L, ERROR_MT);
        is = lua_rawequal(L, -1, -2);
        if (is && code) {
            lua_getfield(L, 1, "code");
            const char *c = lua_tostring(L, -1);
            is = c && strcmp(c, code) == 0;
        }
    }
    lua_pushboolean(L, is);
    return 1;
}

int luaopen_errors(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"is", errors_is},
        {"new", errors_new},
        {NULL, NULL},
    };
    luaL_newlib(L, fns);
    return 1;
}
