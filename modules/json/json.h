/* json.h: the json module's markers, shared with the modules that build or print
 * JSON-shaped data (yaml marks sequences as arrays; log writes JSON lines).
 *
 * The array marker is one metatable in the registry ("ferry.json.array", __name
 * "json.array"). A table carrying it encodes as a JSON array even when empty;
 * json.decode gives it to every array it returns. json.null is the light
 * userdata NULL (the same value as lua-cjson's cjson.null). */
#ifndef FERRY_JSON_H
#define FERRY_JSON_H

#include <lauxlib.h>
#include <lua.h>
#include <stddef.h>

/* [-0, +1, m] Pushes the array metatable, created on first use. The caller
 * may set it on tables (lua_setmetatable) but must not modify it. */
void json_push_array_mt(lua_State *L);

/* [-0, +0, m] Whether the value at idx carries the array marker: the array
 * metatable or that of json.empty_array (a read-only empty array with its own
 * metatable, so comparing with json_push_array_mt's table alone misses it).
 * Use this, not a metatable comparison, to decide "encode as a sequence". */
int json_is_marked(lua_State *L, int idx);

/* [-0, +1, -] Pushes json.null (a light userdata holding NULL). */
void json_push_null(lua_State *L);

/* [-?, +?, m] Appends s[0..len) to b as a quoted JSON string: `"` and `\`
 * escaped, control characters as \b \f \n \r \t or \u00XX, everything else
 * (including bytes >= 0x80) copied as is. Uses only luaL_addchar and
 * luaL_addlstring, so it pushes nothing of its own while b is in use; the
 * caller must follow the usual luaL_Buffer rules. s stays owned by the caller
 * and may be freed once this returns. At most 6 * len + 2 bytes are added. */
void json_append_string(luaL_Buffer *b, const char *s, size_t len);

int luaopen_json(lua_State *L);

#endif
