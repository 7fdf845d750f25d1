/* json.c: the json module: decode through lua-cjson's decoder, encode with our
 * own encoder, json.null and the array marker (json.h) shared with yaml and log.
 *
 * Decoding keeps what Kubernetes manifests need and lua-cjson 2.1.0 loses:
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
 *
 * Encoding: exact integers, shortest round-trip floats, strings with JSON
 * escapes, object keys sorted by bytes (deterministic plans and tests), depth
 * limit JSON_MAX_DEPTH (which also stops cycles), output capped at
 * JSON_MAX_SIZE. Errors name the path of the offending value ($.spec.ports[0]).
 *
 * May call: lua-cjson's decode (a C function) through lua_pcall, to rewrite its
 * error message; never Lua code. No mutable globals. */
#include "json.h"

#include <lua-cjson.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_MT       "ferry.json.array"
#define EMPTY_MT       "ferry.json.empty_array" /* json.empty_array: marked and read-only */
#define BUFFER_MT      "ferry.json.Buffer"
#define JSON_MAX_DEPTH 128
#define JSON_MAX_SIZE  ((size_t)256 << 20) /* encoder output, decoder input */
#define LONG_INT       16                  /* digits from which an integer may not fit a double */
#define PATH_KEY_MAX   64                  /* bytes of a key shown in an error path */

/* The placeholders as they appear in the rewritten text and once decoded. */
#define EMPTY_TEXT  "[\"\\u0000ferry:empty-array\"]"
#define EMPTY_VALUE "\0ferry:empty-array"
#define INT_OPEN    "\"\\u0000ferry:int:"
#define INT_VALUE   "\0ferry:int:"
#define LIT_LEN(s)  (sizeof(s) - 1)

/* ---- Markers ---- */

void json_push_array_mt(lua_State *L)
{
    if (luaL_newmetatable(L, ARRAY_MT)) {
        lua_pushliteral(L, "json.array");
        lua_setfield(L, -2, "__name");
    }
}

void json_push_null(lua_State *L)
{
    lua_pushlightuserdata(L, NULL);
}

static int empty_array_newindex(lua_State *L)
{
    return luaL_error(L, "json.empty_array is read-only; use json.array() for a new array");
}

/* [-0, +1, m] Pushes the metatable of json.empty_array, created on first use:
 * named like the array metatable, refuses new keys, and getmetatable() on it
 * answers the array metatable (which also stops setmetatable from Lua). */
static void push_empty_mt(lua_State *L)
{
    if (luaL_newmetatable(L, EMPTY_MT)) {
        lua_pushliteral(L, "json.array");
        lua_setfield(L, -2, "__name");
        lua_pushcfunction(L, empty_array_newindex);
        lua_setfield(L, -2, "__newindex");
        json_push_array_mt(L);
        lua_setfield(L, -2, "__metatable");
    }
}

int json_is_marked(lua_State *L, int idx)
{
    int marked;
    if (!lua_getmetatable(L, idx)) return 0;
    json_push_array_mt(L);
    marked = lua_rawequal(L, -1, -2);
    lua_pop(L, 1);
    if (!marked) {
        push_empty_mt(L);
        marked = lua_rawequal(L, -1, -2);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return marked;
}

/* ---- Strings ---- */

/* Length of the leading part of s[0..len) that needs no escaping. */
static size_t plain_run(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && (unsigned char)s[i] >= 0x20 && s[i] != '"' && s[i] != '\\') i++;
    return i;
}

/* Writes the escape of c (a byte plain_run stopped at) to out; returns its
 * length (2 or 6). */
static size_t escape_byte(unsigned char c, char out[6])
{
    static const char hex[] = "0123456789abcdef";
    static const char from[] = "\"\\\b\f\n\r\t", to[] = "\"\\bfnrt";
    const char *p = memchr(from, c, LIT_LEN(from));
    out[0] = '\\';
    if (p != NULL) {
        out[1] = to[p - from];
        return 2;
    }
    memcpy(out + 1, "u00", 3);
    out[4] = hex[c >> 4];
    out[5] = hex[c & 15];
    return 6;
}

void json_append_string(luaL_Buffer *b, const char *s, size_t len)
{
    char esc[6];
    luaL_addchar(b, '"');
    while (len > 0) {
        size_t run = plain_run(s, len);
        luaL_addlstring(b, s, run);
        s += run;
        len -= run;
        if (len > 0) {
            luaL_addlstring(b, esc, escape_byte((unsigned char)*s, esc));
            s++;
            len--;
        }
    }
    luaL_addchar(b, '"');
}

/* ---- Decoding ---- */

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
static int json_decode(lua_State *L)
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

/* ---- Encoding ---- */

/* An object key being sorted: slot is its index in the anchor table. */
struct key {
    const char *s;
    size_t len;
    lua_Integer slot;
};

/* The encoder's memory: the output and a stack of the keys of the objects
 * being encoded (each object sorts its keys on top of the outer objects').
 * A userdata, so that an error anywhere frees it (it is a to-be-closed slot
 * of json.encode); p and keys are owned by it and allocated with the state's
 * allocator. */
struct buffer {
    char *p;
    size_t n, cap;
    struct key *keys;
    size_t nkeys, keys_cap;
    lua_Alloc alloc;
    void *ud;
};

/* One step of the path to the value being encoded: a key or an array index.
 * A table's step is unset (key NULL, index -1) until its first child. */
struct seg {
    const char *key; /* NULL for an index */
    size_t len;
    lua_Integer index; /* 0-based */
};

/* Once started, encoding creates no Lua objects (only the anchor table and
 * the stack may grow), so no garbage collection step, and no finalizer, runs
 * in the middle of it; the anchor table keeps the sorted keys' strings alive
 * regardless. */
struct enc {
    lua_State *L;
    struct buffer *out;
    int pretty, sort;
    int array_mt, empty_mt; /* stack indices of the marker metatables */
    int anchor;             /* stack index of the anchor table */
    lua_Integer anchored;   /* keys on the anchor table's stack */
    int depth;              /* tables open; also the number of path segments */
    struct seg path[JSON_MAX_DEPTH];
};

static int buffer_gc(lua_State *L)
{
    struct buffer *b = luaL_checkudata(L, 1, BUFFER_MT);
    if (b->p != NULL) b->alloc(b->ud, b->p, b->cap, 0);
    if (b->keys != NULL) b->alloc(b->ud, b->keys, b->keys_cap * sizeof *b->keys, 0);
    b->p = NULL;
    b->keys = NULL;
    b->n = b->cap = b->nkeys = b->keys_cap = 0;
    return 0;
}

static int is_ident(const char *s, size_t len)
{
    if (len == 0 || (s[0] >= '0' && s[0] <= '9') || s[0] == '-') return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* [-0, +0, v] Raises "json.encode: <what> at <path>", after the caller's
 * position like luaL_error. */
static _Noreturn void fail(struct enc *e, const char *what)
{
    lua_State *L = e->L;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "json.encode: ");
    luaL_addstring(&b, what);
    luaL_addstring(&b, " at $");
    for (int i = 0; i < e->depth; i++) {
        const struct seg *g = &e->path[i];
        if (g->key == NULL && g->index < 0) {
            break;
        } else if (g->key == NULL) {
            char num[32];
            snprintf(num, sizeof num, "[" LUA_INTEGER_FMT "]", (LUAI_UACINT)g->index);
            luaL_addstring(&b, num);
        } else if (is_ident(g->key, g->len) && g->len <= PATH_KEY_MAX) {
            luaL_addchar(&b, '.');
            luaL_addlstring(&b, g->key, g->len);
        } else {
            size_t n = g->len <= PATH_KEY_MAX ? g->len : PATH_KEY_MAX;
            luaL_addchar(&b, '[');
            json_append_string(&b, g->key, n);
            if (n < g->len) luaL_addstring(&b, "...");
            luaL_addchar(&b, ']');
        }
    }
    luaL_pushresult(&b);
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
    lua_error(L);
    abort(); /* lua_error does not return */
}

/* Makes room for n more bytes of output, within JSON_MAX_SIZE. */
static void reserve(struct enc *e, size_t n)
{
    struct buffer *b = e->out;
    size_t cap;
    char *p;
    if (n <= b->cap - b->n) return;
    if (n > JSON_MAX_SIZE - b->n) fail(e, "output larger than 256 MiB");
    cap = b->cap < 256 ? 256 : b->cap;
    while (cap - b->n < n) cap = cap <= JSON_MAX_SIZE / 2 ? cap * 2 : JSON_MAX_SIZE;
    p = b->alloc(b->ud, b->p, b->cap, cap);
    if (p == NULL) fail(e, "out of memory");
    b->p = p;
    b->cap = cap;
}

/* Makes room for n more keys on the key stack. Every key costs at least 4
 * bytes of output ("":0), so the output cap also bounds the key stack. */
static void reserve_keys(struct enc *e, size_t n)
{
    struct buffer *b = e->out;
    size_t cap;
    struct key *p;
    if (n <= b->keys_cap - b->nkeys) return;
    if (n > JSON_MAX_SIZE / 4 - b->nkeys) fail(e, "output larger than 256 MiB");
    cap = b->keys_cap < 64 ? 64 : b->keys_cap;
    while (cap - b->nkeys < n) cap *= 2;
    p = b->alloc(b->ud, b->keys, b->keys_cap * sizeof *p, cap * sizeof *p);
    if (p == NULL) fail(e, "out of memory");
    b->keys = p;
    b->keys_cap = cap;
}

static void put(struct enc *e, const char *s, size_t n)
{
    reserve(e, n);
    memcpy(e->out->p + e->out->n, s, n);
    e->out->n += n;
}

static void put_char(struct enc *e, char c)
{
    reserve(e, 1);
    e->out->p[e->out->n++] = c;
}

/* A newline and the indentation of the current depth (pretty output only). */
static void put_indent(struct enc *e)
{
    size_t n = 1 + 2 * (size_t)e->depth;
    if (!e->pretty) return;
    reserve(e, n);
    e->out->p[e->out->n] = '\n';
    memset(e->out->p + e->out->n + 1, ' ', n - 1);
    e->out->n += n;
}

static void put_string(struct enc *e, const char *s, size_t len)
{
    char esc[6];
    put_char(e, '"');
    while (len > 0) {
        size_t run = plain_run(s, len);
        put(e, s, run);
        s += run;
        len -= run;
        if (len > 0) {
            put(e, esc, escape_byte((unsigned char)*s, esc));
            s++;
            len--;
        }
    }
    put_char(e, '"');
}

/* The shortest of %.15g, %.16g, %.17g that reads back as x (finite). */
static void put_float(struct enc *e, lua_Number x)
{
    char buf[64];
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, sizeof buf, "%.*g", prec, (double)x);
        if (strtod(buf, NULL) == (double)x) break;
    }
    for (int i = 0; i < n; i++) /* a locale's decimal comma */
        if (buf[i] == ',') buf[i] = '.';
    put(e, buf, (size_t)n);
}

static void encode_value(struct enc *e);

/* Enters a child of the current table (key NULL: array index). */
static void push_seg(struct enc *e, const char *key, size_t len, lua_Integer index)
{
    struct seg *g = &e->path[e->depth - 1];
    g->key = key;
    g->len = len;
    g->index = index;
}

/* [-0, +0, e] Encodes the table at t as an array of n elements (nil -> null). */
static void encode_array(struct enc *e, int t, lua_Integer n)
{
    if (n == 0) {
        put(e, "[]", 2);
        return;
    }
    put_char(e, '[');
    for (lua_Integer i = 1; i <= n; i++) {
        if (i > 1) put_char(e, ',');
        put_indent(e);
        push_seg(e, NULL, 0, i - 1);
        lua_rawgeti(e->L, t, i);
        encode_value(e);
        lua_pop(e->L, 1);
    }
    e->depth--;
    put_indent(e);
    e->depth++;
    put_char(e, ']');
}

/* [-0, +0, e] Encodes the member whose key is on top of the stack (value at
 * t[key]); first says whether it opens the object. */
static void encode_member(struct enc *e, int t, int first)
{
    lua_State *L = e->L;
    size_t len;
    const char *key = lua_tolstring(L, -1, &len);
    if (!first) put_char(e, ',');
    put_indent(e);
    put_string(e, key, len);
    if (e->pretty)
        put(e, ": ", 2);
    else
        put_char(e, ':');
    push_seg(e, key, len, 0);
    lua_pushvalue(L, -1);
    lua_rawget(L, t); /* key value */
    encode_value(e);
    lua_pop(L, 1);
}

static int key_cmp(const void *a, const void *b)
{
    const struct key *x = a, *y = b;
    int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
    if (c != 0) return c;
    return (x->len > y->len) - (x->len < y->len);
}

/* [-0, +0, e] Encodes the table at t, whose count keys are all strings, as an
 * object, in byte order of the keys when e->sort. */
static void encode_object(struct enc *e, int t, lua_Integer count)
{
    lua_State *L = e->L;
    if (count == 0) {
        put(e, "{}", 2);
        return;
    }
    put_char(e, '{');
    if (e->sort && count > 1) {
        /* Copies of the keys go on the anchor table's stack, which no one
         * else can change, so their string pointers stay valid; the key
         * stack is addressed by index since a nested object may move it. */
        struct buffer *b = e->out;
        size_t base = b->nkeys, n = 0;
        reserve_keys(e, (size_t)count);
        lua_pushnil(L);
        while (lua_next(L, t)) { /* key value */
            struct key *k = &b->keys[base + n++];
            lua_pop(L, 1);
            lua_pushvalue(L, -1);
            lua_rawseti(L, e->anchor, ++e->anchored);
            k->s = lua_tolstring(L, -1, &k->len);
            k->slot = e->anchored;
        }
        b->nkeys += n;
        qsort(b->keys + base, n, sizeof *b->keys, key_cmp);
        for (size_t i = 0; i < n; i++) {
            lua_rawgeti(L, e->anchor, b->keys[base + i].slot); /* key */
            encode_member(e, t, i == 0);
            lua_pop(L, 1);
        }
        b->nkeys = base;
        e->anchored -= (lua_Integer)n;
    } else {
        int first = 1;
        lua_pushnil(L);
        while (lua_next(L, t)) { /* key value */
            lua_pop(L, 1);
            encode_member(e, t, first);
            first = 0;
        }
    }
    e->depth--;
    put_indent(e);
    e->depth++;
    put_char(e, '}');
}

/* [-0, +0, e] Encodes the table on top of the stack: an array if it carries
 * the marker or its keys are exactly 1..n (n > 0), an object if its keys are
 * all strings, an error otherwise. */
static void encode_table(struct enc *e)
{
    lua_State *L = e->L;
    int t = lua_gettop(L), marked = 0;
    lua_Integer count = 0, max = 0;
    int strings = 1, indices = 1;
    if (e->depth >= JSON_MAX_DEPTH) fail(e, "nested deeper than 128 tables (a cycle?)");
    luaL_checkstack(L, 6, "json.encode");
    if (lua_getmetatable(L, t)) {
        marked = lua_rawequal(L, -1, e->array_mt) || lua_rawequal(L, -1, e->empty_mt);
        lua_pop(L, 1);
    }
    lua_pushnil(L);
    while (lua_next(L, t)) { /* key value */
        lua_pop(L, 1);
        count++;
        if (lua_type(L, -1) == LUA_TSTRING) {
            indices = 0;
        } else {
            strings = 0;
            if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
                lua_Integer k = lua_tointeger(L, -1);
                if (k > max) max = k;
            } else {
                indices = 0;
            }
        }
    }
    e->depth++;
    push_seg(e, NULL, 0, -1);
    if (marked && indices) {
        encode_array(e, t, max); /* holes, if any, as null */
    } else if (marked) {
        e->depth--;
        fail(e, "array with non-index keys");
    } else if (count > 0 && indices && max == count) {
        encode_array(e, t, count);
    } else if (strings) {
        encode_object(e, t, count);
    } else {
        e->depth--;
        fail(e, indices ? "sparse array (mark it with json.array, holes become null)"
                        : "mixed or non-string keys");
    }
    e->depth--;
}

/* [-0, +0, e] Encodes the value on top of the stack. */
static void encode_value(struct enc *e)
{
    lua_State *L = e->L;
    char buf[64];
    switch (lua_type(L, -1)) {
    case LUA_TNIL:
        put(e, "null", 4);
        break;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, -1))
            put(e, "true", 4);
        else
            put(e, "false", 5);
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, -1)) {
            int n = snprintf(buf, sizeof buf, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, -1));
            put(e, buf, (size_t)n);
        } else {
            lua_Number x = lua_tonumber(L, -1);
            if (isnan(x)) fail(e, "cannot encode NaN");
            if (isinf(x)) fail(e, x > 0 ? "cannot encode inf" : "cannot encode -inf");
            put_float(e, x);
        }
        break;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        put_string(e, s, len);
        break;
    }
    case LUA_TTABLE:
        encode_table(e);
        break;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, -1) == NULL) {
            put(e, "null", 4);
            break;
        }
        /* fall through */
    default:
        snprintf(buf, sizeof buf, "cannot encode %s", luaL_typename(L, -1));
        fail(e, buf);
    }
}

/* [-0, +0, v] Reads the boolean option name of the table at 2, without
 * metamethods (nil: dflt). */
static int opt_bool(lua_State *L, const char *name, int dflt)
{
    int v = dflt;
    lua_pushstring(L, name);
    lua_rawget(L, 2);
    if (lua_isboolean(L, -1))
        v = lua_toboolean(L, -1);
    else if (!lua_isnil(L, -1))
        luaL_argerror(L, 2, lua_pushfstring(L, "'%s' must be a boolean", name));
    lua_pop(L, 1);
    return v;
}

/* [-0, +0, v] Reads json.encode's options (argument 2, a table or nil) into
 * e; unknown options raise, so a misspelt one is not silently ignored. */
static void check_opts(lua_State *L, struct enc *e)
{
    e->pretty = 0;
    e->sort = 1;
    if (lua_isnoneornil(L, 2)) return;
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 2)) { /* key value */
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        if (k == NULL) luaL_argerror(L, 2, "option names must be strings");
        if (strcmp(k, "pretty") != 0 && strcmp(k, "sort") != 0)
            luaL_argerror(L, 2, lua_pushfstring(L, "unknown option '%s'", k));
        lua_pop(L, 1);
    }
    e->pretty = opt_bool(L, "pretty", 0);
    e->sort = opt_bool(L, "sort", 1);
}

/* json.encode(value [, {pretty = false, sort = true}]) -> string */
static int json_encode(lua_State *L)
{
    struct enc e;
    struct buffer *b;
    luaL_checkany(L, 1);
    check_opts(L, &e);
    lua_settop(L, 2);
    json_push_array_mt(L);
    push_empty_mt(L);
    lua_createtable(L, 64, 0); /* value opts mt emt anchor */
    e.L = L;
    e.array_mt = 3;
    e.empty_mt = 4;
    e.anchor = 5;
    e.anchored = 0;
    e.depth = 0;
    b = lua_newuserdatauv(L, sizeof *b, 0); /* value opts mt emt anchor buffer */
    memset(b, 0, sizeof *b);
    b->alloc = lua_getallocf(L, &b->ud);
    luaL_setmetatable(L, BUFFER_MT);
    lua_toclose(L, 6);
    e.out = b;
    lua_pushvalue(L, 1);
    encode_value(&e);
    lua_pop(L, 1);
    lua_pushlstring(L, b->p != NULL ? b->p : "", b->n); /* ... buffer json */
    lua_closeslot(L, 6);
    return 1;
}

/* ---- Arrays ---- */

/* json.array([t]) -> t, marked as an array */
static int json_array(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    } else {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_settop(L, 1);
        if (json_is_marked(L, 1)) return 1;
        if (lua_getmetatable(L, 1)) return luaL_argerror(L, 1, "table already has a metatable");
    }
    json_push_array_mt(L);
    lua_setmetatable(L, 1);
    return 1;
}

/* json.is_array(v) -> boolean */
static int json_is_array(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_pushboolean(L, lua_type(L, 1) == LUA_TTABLE && json_is_marked(L, 1));
    return 1;
}

int luaopen_json(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"array", json_array},
        {"decode", json_decode},
        {"encode", json_encode},
        {"is_array", json_is_array},
        {NULL, NULL},
    };
    static const luaL_Reg buffer_meta[] = {
        {"__close", buffer_gc},
        {"__gc", buffer_gc},
        {NULL, NULL},
    };
    luaL_newmetatable(L, BUFFER_MT);
    luaL_setfuncs(L, buffer_meta, 0);
    lua_pop(L, 1);
    luaL_newlibtable(L, funcs); /* json */
    lua_pushcfunction(L, luaopen_cjson);
    lua_call(L, 0, 1); /* json cjson */
    lua_getfield(L, -1, "decode_invalid_numbers");
    lua_pushboolean(L, 0); /* strict: no NaN, Infinity, hex or leading zeros */
    lua_call(L, 1, 0);
    lua_getfield(L, -1, "decode"); /* json cjson decode */
    lua_remove(L, -2);             /* json decode */
    luaL_setfuncs(L, funcs, 1);    /* every function gets cjson's decode as upvalue 1 */
    json_push_null(L);
    lua_setfield(L, -2, "null");
    lua_newtable(L);
    push_empty_mt(L);
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "empty_array");
    return 1;
}
