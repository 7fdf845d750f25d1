/* fuzz_yaml.c: yaml_load_text (modules/yaml/yaml_load.c: libyaml's events to
 * Lua values with Kubernetes' scalar rules, anchors and aliases, merge keys,
 * and the depth, size and alias-expansion limits) on arbitrary bytes, as
 * yaml.load gets manifests and kubeconfigs. What loads is dumped again
 * (yaml_dump.c walks the loaded, untrusted structure), and the invariant
 * checked is that the dump loads: Ferry must read back what it writes. */
#include "fuzz.h"
#include "yaml/yaml_internal.h"

#include <stddef.h>
#include <stdint.h>

/* load(text) -> documents: yaml_load_text on the string at index 1, which
 * stays on the stack (alive) while libyaml reads it. */
static int load(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    yaml_load_text(L, "fuzz", "input", text, len);
    return 1;
}

/* dump(documents) -> text */
static int dump(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    yaml_dump_value(L, 1, 1);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lua_State *L;
    if (!L) L = fuzz_state("yaml", luaopen_yaml);

    lua_pushcfunction(L, load);
    lua_pushlstring(L, (const char *)data, size);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) return fuzz_done(L);

    lua_pushcfunction(L, dump); /* documents dump */
    lua_insert(L, 1);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) return fuzz_done(L); /* e.g. a float key */

    size_t len;
    const char *text = lua_tolstring(L, 1, &len);
    if (!text) fuzz_fail("yaml dump returned a %s", luaL_typename(L, 1));
    lua_pushcfunction(L, load); /* text load */
    lua_pushvalue(L, 1);        /* text load text: text stays alive */
    if (lua_pcall(L, 1, 1, 0) != LUA_OK)
        fuzz_fail("yaml load refuses the dump of what it loaded: %s\n  dump: %.*s",
                  lua_tostring(L, -1), (int)(len > 400 ? 400 : len), text);
    return fuzz_done(L);
}
