/* fuzz_json.c: json.decode (modules/json/json_decode.c: the placeholder
 * rewrite of empty arrays and long integers, then lua-cjson, then the
 * post-walk) on arbitrary bytes, as it gets API responses, watch events and
 * exec-plugin output. What decodes is encoded again (json_encode.c walks the
 * decoded, untrusted structure), and the invariant checked is that the
 * encoder's output decodes: Ferry must read back what it writes. */
#include "fuzz.h"
#include "json/json_internal.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lua_State *L;
    if (!L) L = fuzz_state("json", luaopen_json);

    fuzz_push_function(L, "json", "decode"); /* json_decode, cjson's decode as upvalue 1 */
    lua_pushlstring(L, (const char *)data, size);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) return fuzz_done(L);

    fuzz_push_function(L, "json", "encode"); /* value encode */
    lua_insert(L, 1);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) return fuzz_done(L); /* e.g. deeper than 128 */

    size_t len;
    const char *text = lua_tolstring(L, 1, &len);
    if (!text) fuzz_fail("json.encode returned a %s", luaL_typename(L, 1));
    fuzz_push_function(L, "json", "decode"); /* text decode */
    lua_pushvalue(L, 1);                     /* text decode text: text stays alive */
    if (lua_pcall(L, 1, 1, 0) != LUA_OK)
        fuzz_fail("json.decode refuses json.encode's output: %s\n  output: %.*s",
                  lua_tostring(L, -1), (int)(len > 400 ? 400 : len), text);
    return fuzz_done(L);
}
