/* yaml_dump.c: Lua values to YAML text through libyaml's emitter, laid out
 * the way kubectl prints objects: block style, mapping keys sorted by bytes,
 * sequences under a key not indented, `[]` and `{}` for empty collections.
 *
 * Tables with the json array metatable, or with exactly the keys 1..n (n > 0),
 * are sequences; other tables are mappings and need string keys. json.null
 * (and nil) is null. A string is plain only when it reads back as the same
 * string (yaml_scalar_is_plain); one with a newline is asked for as a literal
 * block, which libyaml turns into a double-quoted scalar when a block cannot
 * carry it (trailing spaces, control characters); everything else is double
 * quoted. Floats print the shortest form that reads back exactly and always
 * with a '.', 'e', .inf or .nan, so they reload as floats.
 *
 * Invariants: the emitter and its output buffer live in a to-be-closed
 * userdata, so a Lua error frees them; output is capped at YAML_MAX_OUTPUT and
 * nesting at YAML_MAX_DEPTH; a table met again on its own path is a cycle.
 * Calls libyaml, Lua and json/json.h only. */
#include "yaml_internal.h"

#include "json/json.h"

#include <lauxlib.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define EMITTER_MT "ferry.yaml.Emitter"

/* One step of the path from the root to the value being dumped. */
struct step {
    const void *table; /* the table at this depth (cycle check) */
    const char *key;   /* reached by this key, or by index when NULL */
    size_t keylen;
    lua_Integer index;
};

struct dumper {
    yaml_emitter_t emitter;
    int emitter_live;
    char *out; /* malloc'd; owned here, freed by dumper_close */
    size_t len, cap;
    int overflow;         /* the output reached YAML_MAX_OUTPUT */
    lua_Integer document; /* document number from 1 in documents mode, else 0 */
    struct step path[YAML_MAX_DEPTH + 1];
};

/* A mapping key, pointing into a string the dumped table keeps alive. */
struct key {
    const char *s;
    size_t len;
};

/* __gc and __close: frees the emitter and the output; idempotent. */
static int dumper_close(lua_State *L)
{
    struct dumper *d = luaL_checkudata(L, 1, EMITTER_MT);
    if (d->emitter_live) yaml_emitter_delete(&d->emitter);
    d->emitter_live = 0;
    free(d->out);
    d->out = NULL;
    d->len = d->cap = 0;
    return 0;
}

static const luaL_Reg dumper_meta[] = {
    {"__close", dumper_close},
    {"__gc", dumper_close},
    {NULL, NULL},
};

/* libyaml's output handler: appends to d->out, up to YAML_MAX_OUTPUT. */
static int write_output(void *data, unsigned char *buffer, size_t size)
{
    struct dumper *d = data;
    if (size > YAML_MAX_OUTPUT - d->len) {
        d->overflow = 1;
        return 0;
    }
    if (d->len + size > d->cap) {
        size_t cap = d->cap ? d->cap : 4096;
        char *p;
        while (cap < d->len + size) cap *= 2;
        if (cap > YAML_MAX_OUTPUT) cap = YAML_MAX_OUTPUT;
        if (!(p = realloc(d->out, cap))) return 0;
        d->out = p;
        d->cap = cap;
    }
    memcpy(d->out + d->len, buffer, size);
    d->len += size;
    return 1;
}

/* Whether a key can follow '.' in a path: letters, digits, '_' and '-'. */
static int is_simple_key(const char *s, size_t len)
{
    if (len == 0) return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* Writes the JSONPath to depth, indices from 0 as in json.encode's errors
 * ("$.spec.containers[0].env", "$[1].kind" for the second document), into
 * buf, truncated to cap; returns buf. */
static const char *format_path(struct dumper *d, int depth, char *buf, size_t cap)
{
    size_t n;
    if (d->document)
        snprintf(buf, cap, "$[%lld]", (long long)d->document - 1);
    else
        snprintf(buf, cap, "$");
    for (int i = 1; i <= depth && (n = strlen(buf)) < cap - 1; i++) {
        const struct step *s = &d->path[i];
        int keylen = s->keylen > 64 ? 64 : (int)s->keylen;
        if (!s->key)
            snprintf(buf + n, cap - n, "[%lld]", (long long)s->index - 1);
        else if (is_simple_key(s->key, s->keylen))
            snprintf(buf + n, cap - n, ".%.*s", keylen, s->key);
        else
            snprintf(buf + n, cap - n, "[\"%.*s\"]", keylen, s->key);
    }
    return buf;
}

/* [-0, +0, v] Raises "yaml.dump: <message> at <path to depth>". */
static void fail(lua_State *L, struct dumper *d, int depth, const char *fmt, ...)
{
    char msg[256], path[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    luaL_error(L, "yaml.dump: %s at %s", msg, format_path(d, depth, path, sizeof path));
}

/* [-0, +0, v] Raises the emitter's error. */
static void fail_emitter(lua_State *L, struct dumper *d, int depth)
{
    if (d->overflow) fail(L, d, depth, "output larger than %d MiB", (int)(YAML_MAX_OUTPUT >> 20));
    fail(L, d, depth, "%s", d->emitter.problem ? d->emitter.problem : "out of memory");
}

/* [-0, +0, v] Emits ev (libyaml takes it, emitted or not); raises on failure. */
static void emit(lua_State *L, struct dumper *d, int depth, yaml_event_t *ev)
{
    if (!yaml_emitter_emit(&d->emitter, ev)) fail_emitter(L, d, depth);
}

/* [-0, +0, v] Checks an event initializer's result (0: out of memory). */
static void check_init(lua_State *L, struct dumper *d, int depth, int ok)
{
    if (!ok) fail(L, d, depth, "out of memory");
}

/* [-0, +0, v] Emits a scalar in the given style; plain ones must resolve as
 * intended (the caller decides), the others are implicitly strings. */
static void emit_scalar(lua_State *L, struct dumper *d, int depth, const char *s, size_t len,
                        yaml_scalar_style_t style)
{
    yaml_event_t ev;
    int plain = style == YAML_PLAIN_SCALAR_STYLE;
    if (len > YAML_MAX_OUTPUT)
        fail(L, d, depth, "output larger than %d MiB", (int)(YAML_MAX_OUTPUT >> 20));
    check_init(
        L, d, depth,
        yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)len, plain, 1, style));
    emit(L, d, depth, &ev);
}

/* [-0, +0, v] Emits a string so that it reads back as itself. */
static void emit_string(lua_State *L, struct dumper *d, int depth, const char *s, size_t len)
{
    yaml_scalar_style_t style = YAML_DOUBLE_QUOTED_SCALAR_STYLE;
    if (!yaml_scalar_is_utf8(s, len)) fail(L, d, depth, "string is not valid UTF-8");
    if (memchr(s, '\n', len)) {
        /* NEL, LS and PS would come back as '\n' or shift lines: keep quoted. */
        if (!memmem(s, len, "\xc2\x85", 2) && !memmem(s, len, "\xe2\x80\xa8", 3) &&
            !memmem(s, len, "\xe2\x80\xa9", 3))
            style = YAML_LITERAL_SCALAR_STYLE;
    } else if (yaml_scalar_is_plain(s, len)) {
        style = YAML_PLAIN_SCALAR_STYLE;
    }
    emit_scalar(L, d, depth, s, len, style);
}

/* Shortest "%.*g" of x that reads back as x, with ".0" added when it would
 * otherwise read back as an integer; inf and nan in YAML spelling. */
static void format_float(double x, char *buf, size_t cap)
{
    if (isnan(x))
        snprintf(buf, cap, ".nan");
    else if (isinf(x))
        snprintf(buf, cap, x > 0 ? ".inf" : "-.inf");
    else {
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, cap, "%.*g", prec, x);
            if (strtod(buf, NULL) == x) break;
        }
        if (!strpbrk(buf, ".eE")) strncat(buf, ".0", cap - strlen(buf) - 1);
    }
}

static int compare_keys(const void *a, const void *b)
{
    const struct key *x = a, *y = b;
    int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static void dump_value(lua_State *L, struct dumper *d, int idx, int depth);

/* [-0, +0, e] Emits the n-element sequence t (flow [] when empty). */
static void dump_sequence(lua_State *L, struct dumper *d, int t, lua_Integer n, int depth)
{
    yaml_event_t ev;
    yaml_sequence_style_t style = n ? YAML_BLOCK_SEQUENCE_STYLE : YAML_FLOW_SEQUENCE_STYLE;
    check_init(L, d, depth, yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, style));
    emit(L, d, depth, &ev);
    for (lua_Integer i = 1; i <= n; i++) {
        d->path[depth + 1] = (struct step){NULL, NULL, 0, i};
        lua_rawgeti(L, t, i);
        dump_value(L, d, -1, depth + 1);
        lua_pop(L, 1);
    }
    check_init(L, d, depth, yaml_sequence_end_event_initialize(&ev));
    emit(L, d, depth, &ev);
}

/* [-0, +0, e] Emits mapping t with its n string keys in byte order ({} when
 * empty). */
static void dump_mapping(lua_State *L, struct dumper *d, int t, size_t n, int depth)
{
    yaml_event_t ev;
    yaml_mapping_style_t style = n ? YAML_BLOCK_MAPPING_STYLE : YAML_FLOW_MAPPING_STYLE;
    struct key *keys = lua_newuserdatauv(L, n ? n * sizeof *keys : 1, 0); /* keys */
    size_t i = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) { /* keys k v */
        if (i < n) {
            keys[i].s = lua_tolstring(L, -2, &keys[i].len);
            i++;
        }
        lua_pop(L, 1);
    }
    qsort(keys, n, sizeof *keys, compare_keys);
    check_init(L, d, depth, yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, style));
    emit(L, d, depth, &ev);
    for (i = 0; i < n; i++) {
        d->path[depth + 1] = (struct step){NULL, keys[i].s, keys[i].len, 0};
        emit_string(L, d, depth + 1, keys[i].s, keys[i].len);
        lua_pushlstring(L, keys[i].s, keys[i].len); /* keys k */
        lua_rawget(L, t);                           /* keys v */
        dump_value(L, d, -1, depth + 1);
        lua_pop(L, 1); /* keys */
    }
    check_init(L, d, depth, yaml_mapping_end_event_initialize(&ev));
    emit(L, d, depth, &ev);
    lua_pop(L, 1);
}

/* [-0, +0, e] Emits table t: a sequence or a mapping, as the module comment says. */
static void dump_table(lua_State *L, struct dumper *d, int t, int depth)
{
    size_t strings = 0, ints = 0;
    lua_Integer max = 0;
    int array = json_is_marked(L, t);
    if (depth >= YAML_MAX_DEPTH) fail(L, d, depth, "nesting deeper than %d levels", YAML_MAX_DEPTH);
    d->path[depth].table = lua_topointer(L, t);
    for (int i = 0; i < depth; i++)
        if (d->path[i].table == d->path[depth].table) fail(L, d, depth, "cycle");
    luaL_checkstack(L, 8, "yaml nesting");
    if (array) {
        dump_sequence(L, d, t, (lua_Integer)lua_rawlen(L, t), depth);
        return;
    }
    lua_pushnil(L);
    while (lua_next(L, t)) { /* k v */
        if (lua_type(L, -2) == LUA_TSTRING) {
            strings++;
        } else if (lua_isinteger(L, -2) && lua_tointeger(L, -2) >= 1) {
            ints++;
            if (lua_tointeger(L, -2) > max) max = lua_tointeger(L, -2);
        } else {
            char key[64] = "";
            if (lua_isinteger(L, -2))
                snprintf(key, sizeof key, " " LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, -2));
            else if (lua_type(L, -2) == LUA_TNUMBER)
                snprintf(key, sizeof key, " %.14g", (double)lua_tonumber(L, -2));
            fail(L, d, depth, "non-string key%s (%s) in mapping", key, luaL_typename(L, -2));
        }
        lua_pop(L, 1);
    }
    if (ints == 0)
        dump_mapping(L, d, t, strings, depth);
    else if (strings == 0 && (lua_Integer)ints == max)
        dump_sequence(L, d, t, max, depth);
    else if (strings == 0)
        fail(L, d, depth, "sparse array (keys are not 1..n)");
    else
        fail(L, d, depth, "non-string key (number) in mapping");
}

/* [-0, +0, e] Emits the value at idx, reached by d->path[depth]. */
static void dump_value(lua_State *L, struct dumper *d, int idx, int depth)
{
    char buf[64];
    size_t len;
    const char *s;
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        emit_scalar(L, d, depth, "null", 4, YAML_PLAIN_SCALAR_STYLE);
        break;
    case LUA_TBOOLEAN:
        s = lua_toboolean(L, idx) ? "true" : "false";
        emit_scalar(L, d, depth, s, strlen(s), YAML_PLAIN_SCALAR_STYLE);
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            snprintf(buf, sizeof buf, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
        else
            format_float((double)lua_tonumber(L, idx), buf, sizeof buf);
        emit_scalar(L, d, depth, buf, strlen(buf), YAML_PLAIN_SCALAR_STYLE);
        break;
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &len);
        emit_string(L, d, depth, s, len);
        break;
    case LUA_TTABLE:
        dump_table(L, d, idx, depth);
        break;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            emit_scalar(L, d, depth, "null", 4, YAML_PLAIN_SCALAR_STYLE);
            break;
        }
        /* fall through */
    default:
        fail(L, d, depth, "cannot encode %s", luaL_typename(L, idx));
        break;
    }
}

/* [-0, +0, e] Emits one document holding the value at idx. */
static void dump_document(lua_State *L, struct dumper *d, int idx)
{
    yaml_event_t ev;
    check_init(L, d, 0, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1));
    emit(L, d, 0, &ev);
    dump_value(L, d, idx, 0);
    check_init(L, d, 0, yaml_document_end_event_initialize(&ev, 1));
    emit(L, d, 0, &ev);
}

void yaml_dump_value(lua_State *L, int idx, int documents)
{
    struct dumper *d;
    yaml_event_t ev;
    int base = lua_gettop(L);
    idx = lua_absindex(L, idx);
    luaL_checkstack(L, 8, "yaml");
    lua_pushnil(L); /* base+1: the text, copied here at the end */
    d = lua_newuserdatauv(L, sizeof *d, 0);
    memset(d, 0, sizeof *d);
    if (luaL_newmetatable(L, EMITTER_MT)) luaL_setfuncs(L, dumper_meta, 0);
    lua_setmetatable(L, -2);
    lua_toclose(L, -1); /* base+2: closed by the settop below or by an error */
    if (!yaml_emitter_initialize(&d->emitter)) luaL_error(L, "yaml.dump: out of memory");
    d->emitter_live = 1;
    yaml_emitter_set_output(&d->emitter, write_output, d);
    yaml_emitter_set_unicode(&d->emitter, 1);
    yaml_emitter_set_width(&d->emitter, -1);
    yaml_emitter_set_indent(&d->emitter, 2);
    check_init(L, d, 0, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING));
    emit(L, d, 0, &ev);
    if (documents) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
        for (d->document = 1; d->document <= n; d->document++) {
            lua_rawgeti(L, idx, d->document);
            dump_document(L, d, -1);
            lua_pop(L, 1);
        }
        d->document = 0;
    } else {
        dump_document(L, d, idx);
    }
    check_init(L, d, 0, yaml_stream_end_event_initialize(&ev));
    emit(L, d, 0, &ev);
    if (!yaml_emitter_flush(&d->emitter)) fail_emitter(L, d, 0);
    lua_pushlstring(L, d->out ? d->out : "", d->len);
    lua_replace(L, base + 1);
    lua_settop(L, base + 1); /* closes the emitter */
}
