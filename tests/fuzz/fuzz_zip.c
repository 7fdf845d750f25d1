/* fuzz_zip.c: zip.read (modules/zip/zip.c on libzip) on arbitrary bytes, as
 * codepipeline.input_artifact gets an S3 object. The caps are passed as the
 * caller passes them, but small (1 MiB, 64 files), so that a zip bomb meets
 * them in milliseconds: the checks are the same code at any size. zip.read
 * must answer a table of strings within the caps, or nil and a message; it
 * must not raise. */
#include "fuzz.h"

#include <stddef.h>
#include <stdint.h>

int luaopen_zip(lua_State *L);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lua_State *L;
    if (!L) L = fuzz_state("zip", luaopen_zip);

    fuzz_push_function(L, "zip", "read");
    lua_pushlstring(L, (const char *)data, size);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, 1 << 20);
    lua_setfield(L, -2, "max_size");
    lua_pushinteger(L, 64);
    lua_setfield(L, -2, "max_files");
    if (lua_pcall(L, 2, 2, 0) != LUA_OK) fuzz_fail("zip.read raised: %s", lua_tostring(L, -1));

    if (lua_isnil(L, 1)) {
        if (lua_type(L, 2) != LUA_TSTRING) fuzz_fail("zip.read: nil without a message");
    } else if (lua_istable(L, 1)) { /* the caps hold for what it returns */
        size_t files = 0, total = 0;
        for (lua_pushnil(L); lua_next(L, 1); lua_pop(L, 1)) {
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                fuzz_fail("zip.read: a %s key or a %s value", luaL_typename(L, -2),
                          luaL_typename(L, -1));
            files++;
            total += lua_rawlen(L, -1);
        }
        if (files > 64 || total > 1 << 20)
            fuzz_fail("zip.read passed its caps: %zu files, %zu bytes", files, total);
    } else {
        fuzz_fail("zip.read returned a %s", luaL_typename(L, 1));
    }
    return fuzz_done(L);
}
