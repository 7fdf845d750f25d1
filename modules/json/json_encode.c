/* json_encode.c: json.encode, and json_append_string (json.h) for modules that
 * write JSON into a luaL_Buffer.
 *
 * Encoding: exact integers, shortest round-trip floats, strings with JSON
 * escapes, object keys sorted by bytes (deterministic plans and tests), depth
 * limit JSON_MAX_DEPTH (which also stops cycles), output capped at
 * JSON_MAX_SIZE. Errors name the path of the offending value ($.spec.ports[0]).
 * The output and the key stack live in a to-be-closed userdata, so an error
 * anywhere frees them.
 *
 * May call: Lua's C API and libc only; never Lua code (no metamethods: tables
 * are read raw). No mutable globals. */
#include "json_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUFFER_MT    "ferry.json.Buffer"
#define PATH_KEY_MAX 64 /* bytes of a key shown in an error path */
#define LIT_LEN(s)   (sizeof(s) - 1)

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
int json_encode(lua_State *L)
{
    struct enc e;
    struct buffer *b;
    luaL_checkany(L, 1);
    check_opts(L, &e);
    lua_settop(L, 2);
    json_push_array_mt(L);
    json_push_empty_mt(L);
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

void json_encode_register(lua_State *L)
{
    static const luaL_Reg buffer_meta[] = {
        {"__close", buffer_gc},
        {"__gc", buffer_gc},
        {NULL, NULL},
    };
    luaL_newmetatable(L, BUFFER_MT);
    luaL_setfuncs(L, buffer_meta, 0);
    lua_pop(L, 1);
}
