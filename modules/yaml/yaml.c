/* yaml.c: the yaml module scripts require — load, load_file, dump — on top of
 * yaml_load.c (text to values) and yaml_dump.c (values to text). Arguments
 * are checked here; bad YAML, unreadable files and values that cannot be
 * written raise plain strings "yaml.<function>: ...". Calls Lua, stdio and
 * the two halves only. */
#include "yaml_internal.h"

#include <errno.h>
#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#define FILE_MT    "ferry.yaml.File"
#define READ_CHUNK 65536

/* A file load_file is reading; the userdata owns the handle. */
struct file {
    FILE *f;
};

/* __gc and __close: closes the file; idempotent. */
static int file_close(lua_State *L)
{
    struct file *fh = luaL_checkudata(L, 1, FILE_MT);
    if (fh->f) fclose(fh->f);
    fh->f = NULL;
    return 0;
}

static const luaL_Reg file_meta[] = {
    {"__close", file_close},
    {"__gc", file_close},
    {NULL, NULL},
};

/* yaml.dump(value [, {documents = bool}]) -> string */
static int yaml_dump(lua_State *L)
{
    int documents = 0;
    luaL_checkany(L, 1);
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "documents");
        documents = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    if (documents) luaL_argexpected(L, lua_istable(L, 1), 1, "table (list of documents)");
    yaml_dump_value(L, 1, documents);
    return 1;
}

/* yaml.load(text [, {name = string}]) -> list of documents */
static int yaml_load(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    const char *name = "input";
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        if (lua_getfield(L, 2, "name") != LUA_TNIL) { /* stays at index 3 */
            if (lua_type(L, -1) != LUA_TSTRING) return luaL_argerror(L, 2, "name must be a string");
            name = lua_tostring(L, -1);
        }
    }
    yaml_load_text(L, "yaml.load", name, text, len);
    return 1;
}

/* yaml.load_file(path) -> list of documents */
static int yaml_load_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct file *fh;
    luaL_Buffer b;
    size_t total = 0, n, len;
    const char *text;
    fh = lua_newuserdatauv(L, sizeof *fh, 0);
    fh->f = NULL;
    if (luaL_newmetatable(L, FILE_MT)) luaL_setfuncs(L, file_meta, 0);
    lua_setmetatable(L, -2);
    lua_toclose(L, -1); /* 2: the handle, closed on return or error */
    if (!(fh->f = fopen(path, "rb")))
        return luaL_error(L, "yaml.load_file: %s: %s", path, strerror(errno));
    luaL_buffinit(L, &b);
    do {
        char *p = luaL_prepbuffsize(&b, READ_CHUNK);
        n = fread(p, 1, READ_CHUNK, fh->f);
        luaL_addsize(&b, n);
        if ((total += n) > YAML_MAX_INPUT)
            return luaL_error(L, "yaml.load_file: %s: larger than %d MiB", path,
                              (int)(YAML_MAX_INPUT >> 20));
    } while (n == READ_CHUNK);
    if (ferror(fh->f)) return luaL_error(L, "yaml.load_file: %s: %s", path, strerror(errno));
    fclose(fh->f);
    fh->f = NULL;
    luaL_pushresult(&b); /* 3: the text */
    text = lua_tolstring(L, 3, &len);
    yaml_load_text(L, "yaml.load_file", path, text, len);
    return 1;
}

static const luaL_Reg yaml_funcs[] = {
    {"dump", yaml_dump},
    {"load", yaml_load},
    {"load_file", yaml_load_file},
    {NULL, NULL},
};

int luaopen_yaml(lua_State *L)
{
    luaL_newlib(L, yaml_funcs);
    return 1;
}
