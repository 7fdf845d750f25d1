/* yaml_internal.h: what the files of the yaml module share — limits, scalar
 * resolution (yaml_scalar.c), text to Lua values (yaml_load.c), Lua values to
 * text (yaml_dump.c). yaml.c holds the Lua functions on top of these. Not for
 * other modules: they use yaml through Lua. Our names avoid libyaml's own
 * yaml_parser_* / yaml_emitter_* / yaml_event_* families. */
#ifndef FERRY_YAML_INTERNAL_H
#define FERRY_YAML_INTERNAL_H

#include <lua.h>
#include <stddef.h>

#define YAML_MAX_INPUT       ((size_t)64 << 20) /* bytes load and load_file accept */
#define YAML_MAX_OUTPUT      ((size_t)64 << 20) /* bytes dump may produce */
#define YAML_MAX_DEPTH       128                /* nested sequences/mappings, load and dump */
#define YAML_MAX_ALIAS_NODES 1000000            /* nodes aliases may expand to, per load */

/* What a plain scalar means (Kubernetes' YAML 1.1 rules, see yaml_scalar.c). */
enum yaml_kind { YAML_KIND_STR, YAML_KIND_NULL, YAML_KIND_BOOL, YAML_KIND_INT, YAML_KIND_FLOAT };

struct yaml_scalar {
    enum yaml_kind kind;
    int boolean;         /* YAML_KIND_BOOL */
    lua_Integer integer; /* YAML_KIND_INT */
    double number;       /* YAML_KIND_FLOAT */
};

/* How the plain scalar s[0, len) resolves; fills *out and returns out->kind.
 * Pure: no Lua, no allocation beyond a transient copy of long numerals. */
enum yaml_kind yaml_scalar_resolve(const char *s, size_t len, struct yaml_scalar *out);

/* 1 when s[0, len) written as a single-line plain scalar reads back as the same
 * string here, in Kubernetes (go-yaml v2) and in YAML 1.1 readers; else 0. */
int yaml_scalar_is_plain(const char *s, size_t len);

/* 1 when s[0, len) is UTF-8 that libyaml's reader accepts (no overlong forms,
 * surrogates or code points above U+10FFFF); else 0. */
int yaml_scalar_is_utf8(const char *s, size_t len);

/* [-0, +1, e] Parses the YAML stream text[0, len) and pushes the list of its
 * documents. Errors read "<fn>: <name>:<line>:<column>: <problem>". text must
 * stay alive (on the stack) during the call; len is checked against
 * YAML_MAX_INPUT. The fuzz target calls this under lua_pcall. */
void yaml_load_text(lua_State *L, const char *fn, const char *name, const char *text, size_t len);

/* [-0, +1, e] Emits the value at idx (with documents, the list of documents at
 * idx) and pushes the YAML text. Errors read "yaml.dump: <problem> at <path>". */
void yaml_dump_value(lua_State *L, int idx, int documents);

/* [-0, +1, m] The module table: dump, load, load_file. */
int luaopen_yaml(lua_State *L);

#endif
