/* host.c: the struct host behind a Lua state: how C code finds it, the loop
 * it creates on demand, and the embedded Lua sources. */
#include "host.h"

#include "embed.h"
#include "loop.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char HOST_KEY = 'h'; /* its address is the registry key */

void host_attach(struct host *h, lua_State *L)
{
    h->L = L;
    lua_pushlightuserdata(L, h);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &HOST_KEY);
}

struct host *host_get(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &HOST_KEY);
    struct host *h = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return h;
}

struct loop *host_loop(struct host *h)
{
    if (!h->loop) {
        h->loop = loop_new();
        if (!h->loop) {
            fputs("ferry: out of memory\n", stderr);
            abort();
        }
        loop_catch_signals(h->loop);
    }
    return h->loop;
}

const struct embed_file *host_embed_find(const char *name)
{
    for (const struct embed_file *f = embed_files; f->name; f++)
        if (strcmp(f->name, name) == 0) return f;
    return NULL;
}

int host_embed_call(lua_State *L, const char *name, int nargs)
{
    const struct embed_file *f = host_embed_find(name);
    if (!f) return luaL_error(L, "no embedded Lua source '%s'", name);
    if (luaL_loadbufferx(L, f->src, f->len, f->chunk, "t") != LUA_OK) return lua_error(L);
    lua_insert(L, -nargs - 1);
    lua_call(L, nargs, 1);
    return 1;
}
