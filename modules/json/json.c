/* json.c: the json module table: json.null and the array marker (json.h)
 * shared with yaml and log, json.empty_array, json.array and json.is_array,
 * and luaopen_json, which wires in the decoder (json_decode.c, lua-cjson's
 * decode as its upvalue) and the encoder (json_encode.c).
 *
 * The markers are registry metatables created on first use; nothing here
 * holds state of its own. May call: lua-cjson's luaopen_cjson (to get its
 * decode) and the two halves; never Lua code. No mutable globals. */
#include "json_internal.h"

#include <lua-cjson.h>

#define ARRAY_MT "ferry.json.array"
#define EMPTY_MT "ferry.json.empty_array" /* json.empty_array: marked and read-only */

/* ---- Markers ---- */

void json_push_array_mt(lua_State *L)
{
    if (luaL_newmetatable(L, ARRAY_MT)) {
        lua_pushliteral(L, "json.array");
        lua_setfield(L, -2, "__name");
    }
}

void json_push_null(lua_State *L)
{
    lua_pushlightuserdata(L, NULL);
}

static int empty_array_newindex(lua_State *L)
{
    return luaL_error(L, "json.empty_array is read-only; use json.array() for a new array");
}

/* See json_internal.h. */
void json_push_empty_mt(lua_State *L)
{
    if (luaL_newmetatable(L, EMPTY_MT)) {
        lua_pushliteral(L, "json.array");
        lua_setfield(L, -2, "__name");
        lua_pushcfunction(L, empty_array_newindex);
        lua_setfield(L, -2, "__newindex");
        json_push_array_mt(L);
        lua_setfield(L, -2, "__metatable");
    }
}

int json_is_marked(lua_State *L, int idx)
{
    int marked;
    if (!lua_getmetatable(L, idx)) return 0;
    json_push_array_mt(L);
    marked = lua_rawequal(L, -1, -2);
    lua_pop(L, 1);
    if (!marked) {
        json_push_empty_mt(L);
        marked = lua_rawequal(L, -1, -2);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return marked;
}

/* ---- Arrays ---- */

/* json.array([t]) -> t, marked as an array */
static int json_array(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    } else {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_settop(L, 1);
        if (json_is_marked(L, 1)) return 1;
        if (lua_getmetatable(L, 1)) return luaL_argerror(L, 1, "table already has a metatable");
    }
    json_push_array_mt(L);
    lua_setmetatable(L, 1);
    return 1;
}

/* json.is_array(v) -> boolean */
static int json_is_array(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_pushboolean(L, lua_type(L, 1) == LUA_TTABLE && json_is_marked(L, 1));
    return 1;
}

int luaopen_json(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"array", json_array},
        {"decode", json_decode},
        {"encode", json_encode},
        {"is_array", json_is_array},
        {NULL, NULL},
    };
    json_encode_register(L);
    luaL_newlibtable(L, funcs); /* json */
    lua_pushcfunction(L, luaopen_cjson);
    lua_call(L, 0, 1); /* json cjson */
    lua_getfield(L, -1, "decode_invalid_numbers");
    lua_pushboolean(L, 0); /* strict: no NaN, Infinity, hex or leading zeros */
    lua_call(L, 1, 0);
    lua_getfield(L, -1, "decode"); /* json cjson decode */
    lua_remove(L, -2);             /* json decode */
    luaL_setfuncs(L, funcs, 1);    /* every function gets cjson's decode as upvalue 1 */
    json_push_null(L);
    lua_setfield(L, -2, "null");
    lua_newtable(L);
    json_push_empty_mt(L);
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "empty_array");
    return 1;
}
