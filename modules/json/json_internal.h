/* json_internal.h: what the files of the json module share — limits, the
 * json.empty_array metatable (json.c), the decoder (json_decode.c: lua-cjson
 * plus the restoration of empty arrays and exact integers) and the encoder
 * (json_encode.c). json.c holds the markers, json.array/json.is_array and
 * luaopen_json on top of these. Not for other modules: they use json.h. */
#ifndef FERRY_JSON_INTERNAL_H
#define FERRY_JSON_INTERNAL_H

#include "json.h"

#include <lua.h>
#include <stddef.h>

#define JSON_MAX_DEPTH 128                 /* nested tables json.encode accepts */
#define JSON_MAX_SIZE  ((size_t)256 << 20) /* encoder output, decoder input */

/* [-0, +1, m] Pushes the metatable of json.empty_array, created on first use:
 * named like the array metatable, refuses new keys, and getmetatable() on it
 * answers the array metatable (which also stops setmetatable from Lua). */
void json_push_empty_mt(lua_State *L);

/* json.decode(text) -> value. Upvalue 1 must be lua-cjson's decode. */
int json_decode(lua_State *L);

/* json.encode(value [, {pretty = false, sort = true}]) -> string */
int json_encode(lua_State *L);

/* [-0, +0, m] Registers the metatable of the encoder's scratch buffer; called
 * once by luaopen_json before json_encode can run. */
void json_encode_register(lua_State *L);

#endif
