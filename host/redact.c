/* redact.c: a small set of secret strings and the masking of text against
 * them. Secrets are kept longest first, so a secret that contains another is
 * masked whole. Owns copies of the secrets; frees them in redact_free. */
#include "redact.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

struct secret {
    char *s;
    size_t len;
};

struct redact {
    struct secret *v;
    size_t n, cap;
};

struct redact *redact_new(void)
{
    return calloc(1, sizeof(struct redact));
}

void redact_free(struct redact *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) free(r->v[i].s);
    free(r->v);
    free(r);
}

int redact_add(struct redact *r, const char *s, size_t len)
{
    if (len < REDACT_MIN) return -1;
    size_t at = 0;
    for (; at < r->n; at++) {
        if (r->v[at].len == len && memcmp(r->v[at].s, s, len) == 0) return 0; /* known */
        if (r->v[at].len < len) break;
    }
    if (r->n == REDACT_MAX) return -1;
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 8;
        struct secret *v = realloc(r->v, cap * sizeof *v);
        if (!v) return -1;
        r->v = v;
        r->cap = cap;
    }
    char *copy = malloc(len);
    if (!copy) return -1;
    memcpy(copy, s, len);
    memmove(r->v + at + 1, r->v + at, (r->n - at) * sizeof *r->v);
    r->v[at] = (struct secret){copy, len};
    r->n++;
    return 0;
}

/* The length of the secret that starts at s, or 0. */
static size_t match(const struct redact *r, const char *s, size_t left)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].len <= left && memcmp(s, r->v[i].s, r->v[i].len) == 0) return r->v[i].len;
    return 0;
}

const char *redact_push(const struct redact *r, lua_State *L, const char *s, size_t len)
{
    if (!r || r->n == 0) return lua_pushlstring(L, s, len);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    size_t i = 0;
    while (i < len) {
        size_t m = match(r, s + i, len - i);
        if (m) {
            luaL_addstring(&b, REDACT_MASK);
            i += m;
        } else {
            luaL_addchar(&b, s[i]);
            i++;
        }
    }
    luaL_pushresult(&b);
    return lua_tostring(L, -1);
}
