/* json_decode.c: json.decode — lua-cjson's decoder, wrapped so that it keeps
 * what Kubernetes manifests need and lua-cjson 2.1.0 loses:
 * - integers: cjson reads every number as a float. A post-walk turns each float
 *   with an exact integer value that fits lua_Integer into an integer, and
 *   integer literals of 16 or more digits (beyond a double's 53 bits) are
 *   rewritten to placeholder strings before cjson sees them, then converted
 *   exactly (lua_stringtonumber), so 2^62 + 1 and math.maxinteger survive.
 * - [] versus {}: a string-aware scan finds `[` followed only by whitespace
 *   and `]` outside strings and rewrites each to a one-element array holding
 *   the placeholder string; the post-walk empties those arrays again.
 * - arrayness: every decoded array gets the array metatable, so it re-encodes
 *   as an array even after table.remove has emptied it.
 * Placeholders are strings that start with a NUL byte ("\0ferry:empty-array",
 * "\0ferry:int:<digits>"). A decoded string can hold a NUL only through a
 * \u0000 escape in the document, so only a document that spells out exactly a
 * placeholder (["\u0000ferry:empty-array"], "\u0000ferry:int:123...") could be
 * misread; no real data does. Texts that need no rewrite are decoded as they
 * are, and placeholders are only looked for when a rewrite happened.
 * Rewrites replace a value with a value (never a key: a number followed by `:`
 * is left alone), so the rewritten text is valid exactly when the original is;
 * on an error the original is decoded again to get cjson's position in it.
 * Input is capped at JSON_MAX_SIZE, before and after the rewrite.
 *
 * May call: lua-cjson's decode (a C function, upvalue 1) through lua_pcall, to
 * rewrite its error message; never Lua code. No mutable globals. */
#include "json_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LONG_INT 16 /* digits from which an integer may not fit a double */

/* The placeholders as they appear in the rewritten text and once decoded. */
#define EMPTY_TEXT  "[\"\\u0000ferry:empty-array\"]"
#define EMPTY_VALUE "\0ferry:empty-array"
#define INT_OPEN    "\"\\u0000ferry:int:"
#define INT_VALUE   "\0ferry:int:"
#define LIT_LEN(s)  (sizeof(s) - 1)

/* What a pass of rewrite() found. */
struct scan {
    size_t empties;  /* `[ ]` pairs outside strings */
    size_t longints; /* integer literals of LONG_INT or more digits */
    size_t size;     /* length of the rewritten text */
};

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Whether c ends a literal (number, true, false, null) in JSON text. */
static int is_delim(char c)
{
    return is_space(c) || c == ',' || c == ':' || c == ']' || c == '}' || c == '[' || c == '{' ||
           c == '"';
}

/* Whether s[0..n) is a JSON integer (-?(0|[1-9][0-9]*)) of LONG_INT or more
 * digits. */
static int is_long_int(const char *s, size_t n)
{
    size_t i = (n > 0 && s[0] == '-') ? 1 : 0;
    if (n - i < LONG_INT || s[i] == '0') return 0;
    for (; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

/* The offset just past the string whose contents start at s[i] (len when it
 * is not closed): its closing quote is the first one not preceded by an odd
 * number of backslashes. */
static size_t string_end(const char *s, size_t len, size_t i)
{
    size_t start = i;
    for (;;) {
        const char *q = memchr(s + i, '"', len - i);
        size_t j, n = 0;
        if (q == NULL) return len;
        j = (size_t)(q - s);
        while (j - n > start && s[j - n - 1] == '\\') n++;
        if (n % 2 == 0) return j + 1;
        i = j + 1;
    }
}

/* Scans the JSON text s[0..len) for empty arrays and long integers outside
 * strings and fills sc. When out is not NULL, also writes the rewritten text
 * there: out must hold sc->size bytes, as measured by a pass with out NULL. */
static void rewrite(const char *s, size_t len, char *out, struct scan *sc)
{
    size_t i = 0, from = 0, o = 0; /* s[from..i) is pending verbatim copy */
    memset(sc, 0, sizeof *sc);
#define FLUSH()                                                                                    \
    do {                                                                                           \
        if (out) memcpy(out + o, s + from, i - from);                                              \
        o += i - from;                                                                             \
    } while (0)
#define EMIT(p, n)                                                                                 \
    do {                                                                                           \
        if (out) memcpy(out + o, (p), (n));                                                        \
        o += (n);                                                                                  \
    } while (0)
    while (i < len) {
        char c = s[i];
        if (c == '"') {
            i = string_end(s, len, i + 1);
        } else if (c == '[') {
            size_t j = i + 1;
            while (j < len && is_space(s[j])) j++;
            if (j < len && s[j] == ']') {
                FLUSH();
                EMIT(EMPTY_TEXT, LIT_LEN(EMPTY_TEXT));
                sc->empties++;
                from = i = j + 1;
            } else {
                i++;
            }
        } else if (is_delim(c)) {
            i++;
        } else {
            size_t j = i, k;
            while (j < len && !is_delim(s[j])) j++;
            for (k = j; k < len && is_space(s[k]); k++) continue;
            if (is_long_int(s + i, j - i) && !(k < len && s[k] == ':')) {
                FLUSH();
                EMIT(INT_OPEN, LIT_LEN(INT_OPEN));
                EMIT(s + i, j - i);
                EMIT("\"", 1);
                sc->longints++;
                from = j;
            }
            i = j;
        }
    }
    FLUSH();
#undef FLUSH
#undef EMIT
    sc->size = o;
}

/* How the post-walk runs: mt is the stack index of the array metatable. */
struct walk {
    lua_State *L;
    int mt;
    int rewritten; /* placeholders may be present */
};

static void fix_table(struct walk *w);

/* [-1, +1, e] Fixes the decoded value on top of the stack in place. Returns 1
 * when it was replaced by a new value (the caller must store it back). */
static int fix_value(struct walk *w)
{
    lua_State *L = w->L;
    lua_Integer i;
    lua_Number n;
    switch (lua_type(L, -1)) {
    case LUA_TNUMBER:
        if (lua_isinteger(L, -1)) return 0;
        n = lua_tonumber(L, -1);
        if (n != floor(n) || !lua_numbertointeger(n, &i)) return 0;
        lua_pop(L, 1);
        lua_pushinteger(L, i);
        return 1;
    case LUA_TSTRING:
        if (w->rewritten) {
            size_t len;
            const char *s = lua_tolstring(L, -1, &len);
            if (len > LIT_LEN(INT_VALUE) && memcmp(s, INT_VALUE, LIT_LEN(INT_VALUE)) == 0 &&
                lua_stringtonumber(L, s + LIT_LEN(INT_VALUE)) != 0) {
                lua_remove(L, -2);
                return 1;
            }
        }
        return 0;
    case LUA_TTABLE:
        fix_table(w);
        return 0;
    default:
        return 0;
    }
}

/* [-0, +0, e] Fixes the decoded table on top of the stack: its values, and
 * for an array (cjson gives arrays keys 1..n, objects string keys only) the
 * placeholder of [] and the array metatable. */
static void fix_table(struct walk *w)
{
    lua_State *L = w->L;
    int t = lua_gettop(L);
    luaL_checkstack(L, 4, "json.decode: document nested too deeply");
    if (lua_rawgeti(L, t, 1) == LUA_TNIL) { /* t nil: an object */
        lua_pop(L, 1);
        lua_pushnil(L);
        while (lua_next(L, t)) { /* t key value */
            if (fix_value(w)) {
                lua_pushvalue(L, -2);
                lua_insert(L, -2); /* t key key value' */
                lua_rawset(L, t);  /* t key */
            } else {
                lua_pop(L, 1);
            }
        }
        return;
    }
    /* t first */
    if (w->rewritten && lua_rawlen(L, t) == 1 && lua_type(L, -1) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        if (len == LIT_LEN(EMPTY_VALUE) && memcmp(s, EMPTY_VALUE, len) == 0) {
            lua_pop(L, 1);
            lua_pushnil(L);
            lua_rawseti(L, t, 1);
            goto mark;
        }
    }
    if (fix_value(w))
        lua_rawseti(L, t, 1);
    else
        lua_pop(L, 1);
    for (lua_Integer i = 2, n = (lua_Integer)lua_rawlen(L, t); i <= n; i++) {
        lua_rawgeti(L, t, i); /* t value */
        if (fix_value(w))
            lua_rawseti(L, t, i);
        else
            lua_pop(L, 1);
    }
mark:
    lua_pushvalue(L, w->mt);
    lua_setmetatable(L, t);
}

/* [-0, +0, v] Raises "json.decode: <msg> (line L, column C)" with the position
 * of byte offset (1-based) in s, or without one when offset is 0. */
static int raise_at(lua_State *L, const char *msg, const char *s, size_t len, size_t offset)
{
    size_t line = 1, start = 0, end;
    if (offset == 0) return luaL_error(L, "json.decode: %s", msg);
    end = offset - 1 < len ? offset - 1 : len;
    for (size_t i = 0; i < end; i++)
        if (s[i] == '\n') {
            line++;
            start = i + 1;
        }
    return luaL_error(L, "json.decode: %s (line %I, column %I)", msg, (lua_Integer)line,
                      (lua_Integer)(end - start + 1));
}

/* [-1, +0, v] Re-raises the cjson error on top of the stack (status from
 * lua_pcall) with a line and column in the original text s. When the text was
 * rewritten, cjson's offset refers to the rewritten text, so the original is
 * decoded again for an error at the same token, with its own offset. */
static int decode_error(lua_State *L, int status, const char *s, size_t len, int rewritten)
{
    const char *msg, *at;
    size_t offset = 0;
    if (status != LUA_ERRRUN) return lua_error(L); /* out of memory: as is */
    if (rewritten) {
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_pushvalue(L, 1);
        status = lua_pcall(L, 1, 1, 0); /* ... err1 err2 */
        if (status == LUA_OK) {
            lua_pop(L, 1); /* cannot happen (see the top); keep err1, no position */
            msg = lua_tostring(L, -1);
            return luaL_error(L, "json.decode: %s", msg ? msg : "invalid JSON");
        }
        if (status != LUA_ERRRUN) return lua_error(L);
    }
    msg = lua_tostring(L, -1);
    if (msg == NULL) return luaL_error(L, "json.decode: invalid JSON");
    at = strstr(msg, " at character ");
    if (at != NULL) offset = strtoul(at + LIT_LEN(" at character "), NULL, 10);
    return raise_at(L, msg, s, len, offset);
}

/* json.decode(text) -> value */
int json_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *nul;
    struct scan sc;
    struct walk w;
    int status;
    lua_settop(L, 1);
    if (len > JSON_MAX_SIZE) return luaL_error(L, "json.decode: document larger than 256 MiB");
    nul = memchr(s, '\0', len);
    if (nul != NULL) return raise_at(L, "unexpected NUL byte", s, len, (size_t)(nul - s) + 1);
    rewrite(s, len, NULL, &sc);
    if (sc.size > JSON_MAX_SIZE) return luaL_error(L, "json.decode: document larger than 256 MiB");
    w.L = L;
    w.rewritten = sc.empties > 0 || sc.longints > 0;
    json_push_array_mt(L);
    w.mt = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1)); /* text mt decode */
    if (w.rewritten) {
        luaL_Buffer b;
        char *p = luaL_buffinitsize(L, &b, sc.size);
        rewrite(s, len, p, &sc);
        luaL_pushresultsize(&b, sc.size); /* text mt decode text' */
    } else {
        lua_pushvalue(L, 1);
    }
    status = lua_pcall(L, 1, 1, 0); /* text mt value */
    if (status != LUA_OK) return decode_error(L, status, s, len, w.rewritten);
    (void)fix_value(&w); /* the fixed value is on top either way */
    return 1;
}
