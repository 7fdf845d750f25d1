/* errors.h: Ferry's error objects: tables {code, message, ...} whose metatable
 * ("ferry.Error") gives them a readable __tostring. */
#ifndef FERRY_ERRORS_H
#define FERRY_ERRORS_H

#include <lua.h>

/* [-0, +1, m] Pushes a new error object {code = code, message = printf(fmt)}. */
void errors_push(lua_State *L, const char *code, const char *fmt, ...);

/* [-0, +0, m] Sets a string field of the table at idx (skipped when v is NULL). */
void errors_set(lua_State *L, int idx, const char *key, const char *v);

int luaopen_errors(lua_State *L);

#endif
