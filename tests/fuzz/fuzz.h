/* fuzz.h: what the libFuzzer targets (tests/fuzz/fuzz_*.c) share — one bare
 * Lua state per process with one native module opened, and calls into it
 * under lua_pcall that leave the stack as they found it.
 *
 * libFuzzer's entry point takes no context, so each target keeps its state in
 * one static pointer, made on the first input and never closed: the exception
 * to "no mutable globals" that a fuzzer entry point forces. Errors raised
 * under lua_pcall are expected (bad input); anything that escapes one is a
 * finding, and so is a broken invariant (fuzz_fail aborts). */
#ifndef FERRY_FUZZ_H
#define FERRY_FUZZ_H

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>

/* Reports a broken invariant and aborts, which libFuzzer records as a crash. */
#define fuzz_fail(...)                                                                             \
    do {                                                                                           \
        fprintf(stderr, "fuzz: invariant broken at %s:%d: ", __FILE__, __LINE__);                  \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

/* A new state with the standard libraries and, when open is not NULL, module
 * name (from open) in package.loaded. Aborts when out of memory: there is
 * nothing to fuzz then. */
static inline lua_State *fuzz_state(const char *name, lua_CFunction open)
{
    lua_State *L = luaL_newstate();
    if (!L) abort();
    luaL_openlibs(L);
    if (open) {
        luaL_requiref(L, name, open, 0);
        lua_pop(L, 1);
    }
    return L;
}

/* [-0, +1, -] Pushes field fn of the loaded module name. */
static inline void fuzz_push_function(lua_State *L, const char *name, const char *fn)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, name);
    lua_getfield(L, -1, fn);
    lua_replace(L, -3);
    lua_pop(L, 1);
}

/* [-0, +0, -] Ends an input: empties the stack and collects everything the
 * input made, so each input starts from the same heap (a finalizer that
 * crashes does so under this input, and crashes reproduce one input alone). */
static inline int fuzz_done(lua_State *L)
{
    lua_settop(L, 0);
    lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}

#endif
