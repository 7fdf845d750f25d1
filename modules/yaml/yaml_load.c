/* yaml_load.c: a YAML stream to Lua values, driven by libyaml's event parser.
 *
 * Mappings become tables with string keys (a scalar key's source text: `80:`
 * is "80"), sequences tables with the json array metatable, null json.null,
 * plain scalars resolve as yaml_scalar.c says, quoted and block scalars are
 * strings; tags !!str !!int !!float !!bool !!null are honoured, others ignored.
 *
 * Invariants: the parser and its current event live in a to-be-closed
 * userdata, so any Lua error (bad input, out of memory) frees them. An anchor
 * is recorded only when its node is complete, so an alias never points into
 * an unfinished node and results have no cycles. Aliases share the anchored
 * table; the nodes they stand for count against YAML_MAX_ALIAS_NODES, so a
 * "billion laughs" document fails here, not in whoever walks the result.
 * Explicit keys beat merged (<<) ones; earlier merge sources beat later ones.
 * Calls libyaml, Lua and json/json.h only. */
#include "yaml_internal.h"

#include "json/json.h"

#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#define PARSER_MT  "ferry.yaml.Parser"
#define MERGE_TAG  "tag:yaml.org,2002:merge"
#define TAG_PREFIX "tag:yaml.org,2002:"

struct loader {
    yaml_parser_t parser;
    yaml_event_t event; /* the current event, valid while event_live */
    int parser_live, event_live;
    const char *fn, *name, *text; /* text: the input, for reader-error positions */
    size_t len;
    long long aliased; /* nodes produced through aliases so far */
    int mt;            /* stack index of the json array metatable */
    int anchors;       /* stack index of {anchor = value} */
    int sizes;         /* {anchor = nodes the value expands to} */
    int texts;         /* {anchor = source text}, scalar anchors only (alias keys) */
};

/* __gc and __close: frees the event and the parser; idempotent. */
static int parser_close(lua_State *L)
{
    struct loader *ld = luaL_checkudata(L, 1, PARSER_MT);
    if (ld->event_live) yaml_event_delete(&ld->event);
    if (ld->parser_live) yaml_parser_delete(&ld->parser);
    ld->event_live = ld->parser_live = 0;
    return 0;
}

static const luaL_Reg parser_meta[] = {
    {"__close", parser_close},
    {"__gc", parser_close},
    {NULL, NULL},
};

/* Up to 40 bytes of s, control bytes as '?', for messages; returns buf. */
static const char *excerpt(const char *s, size_t len, char buf[48])
{
    size_t n = len > 40 ? 40 : len;
    for (size_t i = 0; i < n; i++) buf[i] = (unsigned char)s[i] < 0x20 ? '?' : s[i];
    strcpy(buf + n, len > n ? "..." : "");
    return buf;
}

/* [-0, +0, v] Raises "<fn>: <name>:<line>:<column>: <message>" at mark. */
static void fail(lua_State *L, struct loader *ld, yaml_mark_t mark, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    luaL_error(L, "%s: %s:%I:%I: %s", ld->fn, ld->name, (lua_Integer)mark.line + 1,
               (lua_Integer)mark.column + 1, msg);
}

/* [-0, +0, v] Raises the parser's error. Reader errors (bad encoding) carry a
 * byte offset, not a mark; count lines up to it. */
static void fail_parser(lua_State *L, struct loader *ld)
{
    yaml_parser_t *p = &ld->parser;
    yaml_mark_t mark = p->problem_mark;
    const char *problem = p->problem ? p->problem : "invalid YAML";
    if (p->error == YAML_MEMORY_ERROR) luaL_error(L, "%s: %s: out of memory", ld->fn, ld->name);
    if (p->error == YAML_READER_ERROR) {
        size_t end = p->problem_offset < ld->len ? p->problem_offset : ld->len, bol = 0;
        mark.line = 0;
        for (size_t i = 0; i < end; i++)
            if (ld->text[i] == '\n') mark.line++, bol = i + 1;
        mark.column = end - bol;
    }
    if (p->context) fail(L, ld, mark, "%s (%s)", problem, p->context);
    fail(L, ld, mark, "%s", problem);
}

/* [-0, +0, e] Replaces the current event with the next one. */
static yaml_event_t *next_event(lua_State *L, struct loader *ld)
{
    if (ld->event_live) yaml_event_delete(&ld->event);
    ld->event_live = 0;
    if (!yaml_parser_parse(&ld->parser, &ld->event)) fail_parser(L, ld);
    ld->event_live = 1;
    return &ld->event;
}

/* Node counts saturate just past the limit: only their comparison matters. */
static long long add_size(long long a, long long b)
{
    return a + b > YAML_MAX_ALIAS_NODES ? YAML_MAX_ALIAS_NODES + 1 : a + b;
}

/* [-0, +0, e] Records the value on top as anchor `name`, standing for size
 * nodes; text is its source when it is a scalar (NULL otherwise). */
static void set_anchor(lua_State *L, struct loader *ld, const char *name, long long size,
                       const char *text, size_t len)
{
    lua_pushstring(L, name);
    lua_pushvalue(L, -2);
    lua_rawset(L, ld->anchors);
    lua_pushstring(L, name);
    lua_pushinteger(L, size);
    lua_rawset(L, ld->sizes);
    lua_pushstring(L, name);
    if (text)
        lua_pushlstring(L, text, len);
    else
        lua_pushnil(L);
    lua_rawset(L, ld->texts);
}

/* [-0, +1, e] Pushes the value of the current scalar event. */
static void push_scalar(lua_State *L, struct loader *ld)
{
    yaml_event_t *ev = &ld->event;
    const char *s = (const char *)ev->data.scalar.value, *tag = (const char *)ev->data.scalar.tag;
    size_t len = ev->data.scalar.length;
    struct yaml_scalar v;
    enum yaml_kind want = YAML_KIND_STR;
    char buf[48];
    if (tag && strcmp(tag, YAML_NULL_TAG) == 0)
        want = YAML_KIND_NULL;
    else if (tag && strcmp(tag, YAML_BOOL_TAG) == 0)
        want = YAML_KIND_BOOL;
    else if (tag && strcmp(tag, YAML_INT_TAG) == 0)
        want = YAML_KIND_INT;
    else if (tag && strcmp(tag, YAML_FLOAT_TAG) == 0)
        want = YAML_KIND_FLOAT;
    else if ((tag && strcmp(tag, YAML_STR_TAG) == 0) ||
             ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        lua_pushlstring(L, s, len);
        return;
    }
    yaml_scalar_resolve(s, len, &v);
    if (want == YAML_KIND_FLOAT && v.kind == YAML_KIND_INT) {
        v.kind = YAML_KIND_FLOAT;
        v.number = (double)v.integer;
    }
    if (want != YAML_KIND_STR && v.kind != want)
        fail(L, ld, ev->start_mark, "cannot read \"%s\" as !!%s", excerpt(s, len, buf),
             tag + strlen(TAG_PREFIX));
    switch (v.kind) {
    case YAML_KIND_NULL:
        json_push_null(L);
        break;
    case YAML_KIND_BOOL:
        lua_pushboolean(L, v.boolean);
        break;
    case YAML_KIND_INT:
        lua_pushinteger(L, v.integer);
        break;
    case YAML_KIND_FLOAT:
        lua_pushnumber(L, v.number);
        break;
    default:
        lua_pushlstring(L, s, len);
        break;
    }
}

/* [-0, +1, e] Pushes what the current alias event names; returns its size. */
static long long load_alias(lua_State *L, struct loader *ld)
{
    const char *name = (const char *)ld->event.data.alias.anchor;
    long long size;
    lua_pushstring(L, name);
    if (lua_rawget(L, ld->sizes) == LUA_TNIL)
        fail(L, ld, ld->event.start_mark, "unknown anchor \"%s\"", name);
    size = lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (size > YAML_MAX_ALIAS_NODES - ld->aliased)
        fail(L, ld, ld->event.start_mark, "aliases expand to more than %d nodes",
             YAML_MAX_ALIAS_NODES);
    ld->aliased += size;
    lua_pushstring(L, name);
    lua_rawget(L, ld->anchors);
    return size;
}

static long long load_node(lua_State *L, struct loader *ld, int depth);

/* [-0, +1, e] A new collection level: checks depth and stack, pushes the
 * anchor name (or nil) that finish() consumes. */
static void enter(lua_State *L, struct loader *ld, int depth, const yaml_char_t *anchor)
{
    if (depth >= YAML_MAX_DEPTH)
        fail(L, ld, ld->event.start_mark, "nesting deeper than %d levels", YAML_MAX_DEPTH);
    luaL_checkstack(L, 12, "yaml nesting");
    if (anchor)
        lua_pushstring(L, (const char *)anchor);
    else
        lua_pushnil(L);
}

/* [-2, +1, e] Below the finished collection on top sits its anchor name (or
 * nil): records the anchor and drops the name. */
static void finish(lua_State *L, struct loader *ld, long long size)
{
    if (!lua_isnil(L, -2)) set_anchor(L, ld, lua_tostring(L, -2), size, NULL, 0);
    lua_remove(L, -2);
}

/* Whether the value at idx is a mapping: a table without the array metatable. */
static int is_mapping(lua_State *L, struct loader *ld, int idx)
{
    int array;
    if (lua_type(L, idx) != LUA_TTABLE) return 0;
    if (!lua_getmetatable(L, idx)) return 1;
    array = lua_rawequal(L, -1, ld->mt);
    lua_pop(L, 1);
    return !array;
}

/* [-0, +0, e] Checks that the value on top can follow "<<:". */
static void check_merge(lua_State *L, struct loader *ld, yaml_mark_t mark)
{
    int ok = is_mapping(L, ld, -1);
    if (!ok && lua_type(L, -1) == LUA_TTABLE) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
        ok = 1;
        for (lua_Integer i = 1; ok && i <= n; i++) {
            lua_rawgeti(L, -1, i);
            ok = is_mapping(L, ld, -1);
            lua_pop(L, 1);
        }
    }
    if (!ok) fail(L, ld, mark, "merge key << needs a mapping or a list of mappings");
}

/* [-0, +0, e] Copies the pairs of mapping src into t where t has no such key. */
static void merge_one(lua_State *L, int t, int src)
{
    src = lua_absindex(L, src);
    lua_pushnil(L);
    while (lua_next(L, src)) { /* key value */
        lua_pushvalue(L, -2);  /* key value key */
        if (lua_rawget(L, t) == LUA_TNIL) {
            lua_pop(L, 1);        /* key value */
            lua_pushvalue(L, -2); /* key value key */
            lua_insert(L, -2);    /* key key value */
            lua_rawset(L, t);     /* key */
        } else {
            lua_pop(L, 2); /* key */
        }
    }
}

/* [-0, +0, e] Applies the merge sources listed in merges to mapping t. */
static void apply_merges(lua_State *L, struct loader *ld, int t, int merges)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, merges);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, merges, i);
        if (is_mapping(L, ld, -1)) {
            merge_one(L, t, -1);
        } else {
            lua_Integer m = (lua_Integer)lua_rawlen(L, -1);
            for (lua_Integer j = 1; j <= m; j++) {
                lua_rawgeti(L, -1, j);
                merge_one(L, t, -1);
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
    }
}

/* [-0, +(0|1), e] Pushes the current event as a mapping key (a string), or
 * pushes nothing and returns 1 for a merge key "<<". */
static int push_key(lua_State *L, struct loader *ld)
{
    yaml_event_t *ev = &ld->event;
    const char *s, *tag, *name;
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        s = (const char *)ev->data.scalar.value;
        tag = (const char *)ev->data.scalar.tag;
        if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && strcmp(s, "<<") == 0 &&
            (!tag || strcmp(tag, MERGE_TAG) == 0))
            return 1;
        if (ev->data.scalar.anchor) {
            push_scalar(L, ld);
            set_anchor(L, ld, (const char *)ev->data.scalar.anchor, 1, s, ev->data.scalar.length);
            lua_pop(L, 1);
        }
        lua_pushlstring(L, s, ev->data.scalar.length);
        return 0;
    case YAML_ALIAS_EVENT:
        name = (const char *)ev->data.alias.anchor;
        lua_pushstring(L, name);
        if (lua_rawget(L, ld->texts) != LUA_TNIL) return 0;
        lua_pushstring(L, name);
        if (lua_rawget(L, ld->sizes) == LUA_TNIL)
            fail(L, ld, ev->start_mark, "unknown anchor \"%s\"", name);
        fail(L, ld, ev->start_mark, "mapping key *%s is not a scalar", name);
        return 0;
    default:
        fail(L, ld, ev->start_mark, "mapping keys must be scalars (complex keys not supported)");
        return 0;
    }
}

/* [-0, +1, e] Loads the mapping whose start event is current. */
static long long load_mapping(lua_State *L, struct loader *ld, int depth)
{
    long long size = 1;
    int t, merges;
    char buf[48];
    enter(L, ld, depth, ld->event.data.mapping_start.anchor); /* name */
    lua_newtable(L);                                          /* name t */
    lua_pushnil(L);                                           /* name t merges */
    merges = lua_gettop(L);
    t = merges - 1;
    while (next_event(L, ld)->type != YAML_MAPPING_END_EVENT) {
        yaml_mark_t mark = ld->event.start_mark;
        if (push_key(L, ld)) {
            next_event(L, ld);
            mark = ld->event.start_mark;
            size = add_size(size, load_node(L, ld, depth + 1)); /* ... source */
            check_merge(L, ld, mark);
            if (lua_isnil(L, merges)) {
                lua_newtable(L);
                lua_replace(L, merges);
            }
            lua_rawseti(L, merges, (lua_Integer)lua_rawlen(L, merges) + 1);
            continue;
        }
        lua_pushvalue(L, -1); /* ... key key */
        if (lua_rawget(L, t) != LUA_TNIL) {
            size_t len;
            const char *key = lua_tolstring(L, -2, &len);
            fail(L, ld, mark, "duplicate key \"%s\"", excerpt(key, len, buf));
        }
        lua_pop(L, 1); /* ... key */
        size = add_size(size, 1);
        next_event(L, ld);
        size = add_size(size, load_node(L, ld, depth + 1)); /* ... key value */
        lua_rawset(L, t);
    }
    if (!lua_isnil(L, merges)) apply_merges(L, ld, t, merges);
    lua_pop(L, 1); /* name t */
    finish(L, ld, size);
    return size;
}

/* [-0, +1, e] Loads the sequence whose start event is current. */
static long long load_sequence(lua_State *L, struct loader *ld, int depth)
{
    long long size = 1;
    lua_Integer n = 0;
    enter(L, ld, depth, ld->event.data.sequence_start.anchor); /* name */
    lua_newtable(L);                                           /* name t */
    lua_pushvalue(L, ld->mt);
    lua_setmetatable(L, -2);
    while (next_event(L, ld)->type != YAML_SEQUENCE_END_EVENT) {
        size = add_size(size, load_node(L, ld, depth + 1)); /* name t value */
        lua_rawseti(L, -2, ++n);
    }
    finish(L, ld, size);
    return size;
}

/* [-0, +1, e] Loads the node whose first event is current; returns how many
 * nodes it stands for (aliases expanded). Leaves its last event current. */
static long long load_node(lua_State *L, struct loader *ld, int depth)
{
    yaml_event_t *ev = &ld->event;
    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        return load_alias(L, ld);
    case YAML_SEQUENCE_START_EVENT:
        return load_sequence(L, ld, depth);
    case YAML_MAPPING_START_EVENT:
        return load_mapping(L, ld, depth);
    case YAML_SCALAR_EVENT:
        push_scalar(L, ld);
        if (ev->data.scalar.anchor)
            set_anchor(L, ld, (const char *)ev->data.scalar.anchor, 1,
                       (const char *)ev->data.scalar.value, ev->data.scalar.length);
        return 1;
    default:
        fail(L, ld, ev->start_mark, "unexpected parser event %d", (int)ev->type);
        return 0;
    }
}

/* [-0, +0, m] Empties the anchor tables: anchors are per document. */
static void reset_anchors(lua_State *L, struct loader *ld)
{
    lua_newtable(L);
    lua_replace(L, ld->anchors);
    lua_newtable(L);
    lua_replace(L, ld->sizes);
    lua_newtable(L);
    lua_replace(L, ld->texts);
}

void yaml_load_text(lua_State *L, const char *fn, const char *name, const char *text, size_t len)
{
    struct loader *ld;
    int base = lua_gettop(L), list;
    lua_Integer n = 0;
    if (len > YAML_MAX_INPUT)
        luaL_error(L, "%s: %s: larger than %d MiB", fn, name, (int)(YAML_MAX_INPUT >> 20));
    luaL_checkstack(L, 16, "yaml");
    lua_pushnil(L); /* base+1: the result, copied here at the end */
    ld = lua_newuserdatauv(L, sizeof *ld, 0);
    memset(ld, 0, sizeof *ld);
    if (luaL_newmetatable(L, PARSER_MT)) luaL_setfuncs(L, parser_meta, 0);
    lua_setmetatable(L, -2);
    lua_toclose(L, -1); /* base+2: closed by the settop below or by an error */
    ld->fn = fn;
    ld->name = name;
    ld->text = text;
    ld->len = len;
    json_push_array_mt(L);
    ld->mt = lua_gettop(L);
    lua_newtable(L);
    ld->anchors = lua_gettop(L);
    lua_newtable(L);
    ld->sizes = lua_gettop(L);
    lua_newtable(L);
    ld->texts = lua_gettop(L);
    lua_newtable(L);
    list = lua_gettop(L);
    lua_pushvalue(L, ld->mt);
    lua_setmetatable(L, list);
    if (!yaml_parser_initialize(&ld->parser)) luaL_error(L, "%s: out of memory", fn);
    ld->parser_live = 1;
    yaml_parser_set_input_string(&ld->parser, (const unsigned char *)text, len);
    next_event(L, ld); /* STREAM-START */
    while (next_event(L, ld)->type == YAML_DOCUMENT_START_EVENT) {
        if (n > 0) reset_anchors(L, ld);
        next_event(L, ld);
        load_node(L, ld, 0);
        lua_rawseti(L, list, ++n);
        next_event(L, ld); /* DOCUMENT-END */
    }
    lua_copy(L, list, base + 1);
    lua_settop(L, base + 1); /* closes the parser */
}
