/* runtime.h: the Lua state: libraries, preloaded modules, text-only loading,
 * and the one protected-call helper. */
#ifndef FERRY_RUNTIME_H
#define FERRY_RUNTIME_H

#include <lua.h>

struct host;

/* A new state with the standard libraries, every native module in
 * package.preload, and load/loadfile/dofile/require limited to source text.
 * Caller closes it with lua_close. NULL when out of memory. */
lua_State *runtime_open(struct host *h);

/* [-0, +1, -] Loads a script as text (bytecode is refused); pushes the chunk,
 * or the error message ("file:line: ..."). Returns a lua status code. */
int runtime_loadfile(lua_State *L, const char *path);

/* [-(n+1), +r, -] lua_pcall with a traceback handler: string errors become
 * "message\ntraceback"; error objects get a traceback field. */
int runtime_pcall(lua_State *L, int nargs, int nres);

/* [-0, +0, -] Prints the error value at idx (and traceback, or nil at tb) to
 * stderr as "ferry: ...", with registered secrets masked. */
void runtime_report(lua_State *L, int idx, int tb);

#endif
