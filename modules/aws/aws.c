/* aws.c: the native half of the aws module. Signs request tables with SigV4
 * — sign (headers to send) and presign (a URL) — and gives aws.lua its
 * primitives: _sha256_hex, _hmac_sha256, _base64, _base64url,
 * _base64_decode, _uri_encode, _amz_date and _canonical. The credential
 * chain, aws.call and eks_token are aws.lua's.
 *
 * Invariants: bad arguments raise "bad argument" errors naming the field,
 * and no message ever carries a credential or header value. Strings are
 * borrowed from the Lua stack while sigv4_sign runs; its output buffers
 * belong to a "ferry.aws.Signing" userdata, so they are freed even when
 * pushing the results raises. May call: sigv4*.c, the Lua API, libcrypto,
 * host_embed_call. */
#include "aws/sigv4.h"
#include "host.h"

#include <lauxlib.h>
#include <math.h>
#include <openssl/crypto.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SIGNING_MT      "ferry.aws.Signing"
#define DEFAULT_EXPIRES 900
#define MAX_METHOD      32
#define MAX_SCOPE_NAME  64
#define MAX_CODEC       (64L << 20) /* input of _base64*, _uri_encode, _hmac_sha256's key */

/* The output of one signing, owned by a userdata (freed by signing_gc). */
struct signing {
    struct sigv4_out out;
};

/* Headers sign() replaces with its own, matched without case. */
enum skip { SKIP_AUTH = 1, SKIP_DATE = 2, SKIP_TOKEN = 4, SKIP_SHA = 8 };

/* What sign_args read: the signer's input plus what the callers need. */
struct args {
    struct sigv4_input in;
    int headers;   /* stack index of request.headers, or 0 */
    unsigned skip; /* enum skip */
};

static int signing_gc(lua_State *L)
{
    struct signing *g = luaL_checkudata(L, 1, SIGNING_MT);
    sigv4_out_free(&g->out);
    return 0;
}

/* ---- reading the arguments ---- */

/* [-0, +1, v] Pushes t[k]; returns it as a string, or NULL when it is nil
 * and optional. Raises naming `what` for any other type or an empty
 * required string (never showing the value). */
static const char *get_string(lua_State *L, int t, int arg, const char *k, const char *what,
                              int required, size_t *len)
{
    size_t l = 0;
    int type = lua_getfield(L, t, k);
    if (type == LUA_TNIL && !required) {
        if (len) *len = 0;
        return NULL;
    }
    if (type != LUA_TSTRING) luaL_argerror(L, arg, lua_pushfstring(L, "%s must be a string", what));
    const char *s = lua_tolstring(L, -1, &l);
    if (required && l == 0) luaL_argerror(L, arg, lua_pushfstring(L, "%s must not be empty", what));
    if (len) *len = l;
    return s;
}

/* [-0, +0, v] opts[k] as a boolean, dflt when nil. */
static int get_flag(lua_State *L, int t, int arg, const char *k, int dflt)
{
    int type = lua_getfield(L, t, k), v = dflt;
    if (type == LUA_TBOOLEAN)
        v = lua_toboolean(L, -1);
    else if (type != LUA_TNIL)
        luaL_argerror(L, arg, lua_pushfstring(L, "opts.%s must be a boolean", k));
    lua_pop(L, 1);
    return v;
}

/* [-0, +0, v] The epoch second of the number at idx (integer or float,
 * floored), or now when idx holds nil. */
static int64_t to_epoch(lua_State *L, int idx, int arg, const char *what)
{
    int64_t t;
    if (lua_isnil(L, idx)) return (int64_t)time(NULL);
    if (lua_type(L, idx) != LUA_TNUMBER)
        luaL_argerror(L, arg, lua_pushfstring(L, "%s must be a number (epoch seconds)", what));
    if (lua_isinteger(L, idx)) {
        t = (int64_t)lua_tointeger(L, idx);
    } else {
        lua_Number n = lua_tonumber(L, idx);
        t = n >= 0 && n <= (lua_Number)SIGV4_MAX_TIME ? (int64_t)floor(n) : -1;
    }
    if (t < 0 || t > SIGV4_MAX_TIME)
        luaL_argerror(L, arg, lua_pushfstring(L, "%s out of range (1970 to 9999)", what));
    return t;
}

/* A region or service name: up to MAX_SCOPE_NAME letters of a credential
 * scope. */
static int scope_name(const char *s, size_t len)
{
    if (len > MAX_SCOPE_NAME) return 0;
    for (size_t i = 0; i < len; i++)
        if (!(s[i] == '-' || s[i] == '_' || s[i] == '.' || (s[i] >= '0' && s[i] <= '9') ||
              (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
            return 0;
    return 1;
}

static int is_tchar(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int has_line_break(const char *s, size_t n)
{
    return memchr(s, '\r', n) || memchr(s, '\n', n) || memchr(s, '\0', n);
}

static int name_is(const char *name, size_t len, const char *lower)
{
    return strlen(lower) == len && strncasecmp(name, lower, len) == 0;
}

static int skipped(const char *name, size_t len, unsigned skip)
{
    return ((skip & SKIP_AUTH) && name_is(name, len, "authorization")) ||
           ((skip & SKIP_DATE) && name_is(name, len, "x-amz-date")) ||
           ((skip & SKIP_TOKEN) && name_is(name, len, "x-amz-security-token")) ||
           ((skip & SKIP_SHA) && name_is(name, len, "x-amz-content-sha256"));
}

/* [-0, +0, v] Checks the header value on top of the stack (a string or a
 * number, converted in place) and records it in hs under name. */
static void take_value(lua_State *L, struct sigv4_header *hs, size_t *nh, const char *name,
                       size_t nl)
{
    int type = lua_type(L, -1);
    if (type != LUA_TSTRING && type != LUA_TNUMBER)
        luaL_argerror(L, 1,
                      lua_pushfstring(
                          L, "request.headers['%s'] must be a string or a list of strings", name));
    if (*nh == SIGV4_MAX_HEADERS)
        luaL_argerror(L, 1, "request.headers: more than 256 header lines");
    struct sigv4_header *h = &hs[(*nh)++];
    h->name = name;
    h->name_len = nl;
    h->value = lua_tolstring(L, -1, &h->value_len);
    if (has_line_break(h->value, h->value_len))
        luaL_argerror(L, 1,
                      lua_pushfstring(L, "request.headers['%s'] contains a line break", name));
}

/* [-0, +k, v] Reads request.headers (at idx) into hs: each name and value is
 * copied onto the stack, where it stays while the signer borrows it; a list
 * value gives one entry per item. Names differing only in case raise. */
static size_t read_headers(lua_State *L, int idx, struct sigv4_header *hs, unsigned skip)
{
    size_t nh = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) { /* ... key value */
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_argerror(L, 1, "request.headers: names must be strings");
        size_t nl;
        const char *name = lua_tolstring(L, -2, &nl);
        for (size_t i = 0; i < nl; i++)
            if (!is_tchar((unsigned char)name[i]))
                luaL_argerror(L, 1, lua_pushfstring(L, "request.headers: invalid name '%s'", name));
        if (nl == 0) luaL_argerror(L, 1, "request.headers: empty name");
        if (skipped(name, nl, skip)) {
            lua_pop(L, 1);
            continue;
        }
        for (size_t i = 0; i < nh; i++)
            if (hs[i].name_len == nl && strncasecmp(hs[i].name, name, nl) == 0)
                luaL_argerror(L, 1,
                              lua_pushfstring(L,
                                              "request.headers: '%s' and '%s' name the same "
                                              "header; give one name a list of values",
                                              hs[i].name, name));
        luaL_checkstack(L, 4, "too many headers");
        lua_pushvalue(L, -2); /* ... key value name */
        lua_insert(L, -3);    /* ... name key value */
        name = lua_tostring(L, -3);
        if (lua_type(L, -1) != LUA_TTABLE) {
            take_value(L, hs, &nh, name, nl);
            lua_insert(L, -2); /* ... name value key */
            continue;
        }
        lua_Integer n = luaL_len(L, -1);
        if (n < 1)
            luaL_argerror(L, 1, lua_pushfstring(L, "request.headers['%s'] is an empty list", name));
        for (lua_Integer i = 1; i <= n; i++) {
            luaL_checkstack(L, 2, "too many headers");
            lua_geti(L, -1, i); /* ... name [items] key list item */
            take_value(L, hs, &nh, name, nl);
            lua_insert(L, -3); /* ... name [items] item key list */
        }
        lua_pop(L, 1); /* ... name items key */
    }
    return nh;
}

/* [-0, +k, v] Reads and checks request (arg 1) and opts (arg 2) into a,
 * leaving every borrowed string on the stack. */
static void read_args(lua_State *L, int query, struct args *a)
{
    struct sigv4_input *in = &a->in;
    memset(a, 0, sizeof *a);
    in->flags = query ? SIGV4_QUERY : 0;

    if (lua_getfield(L, 2, "credentials") != LUA_TTABLE)
        luaL_argerror(L, 2, "opts.credentials must be a table");
    int creds = lua_gettop(L);
    size_t akl, tl;
    in->access_key_id =
        get_string(L, creds, 2, "access_key_id", "opts.credentials.access_key_id", 1, &akl);
    if (has_line_break(in->access_key_id, akl) || memchr(in->access_key_id, '/', akl))
        luaL_argerror(L, 2, "opts.credentials.access_key_id has a '/' or a line break");
    in->secret = get_string(L, creds, 2, "secret_access_key", "opts.credentials.secret_access_key",
                            1, &in->secret_len);
    if (in->secret_len > SIGV4_MAX_SECRET)
        luaL_argerror(L, 2, "opts.credentials.secret_access_key is too long");
    in->token = get_string(L, creds, 2, "session_token", "opts.credentials.session_token", 0, &tl);
    if (in->token && tl == 0) in->token = NULL; /* AWS_SESSION_TOKEN="" means none */
    if (in->token && has_line_break(in->token, tl))
        luaL_argerror(L, 2, "opts.credentials.session_token contains a line break");

    size_t rl, sl;
    in->region = get_string(L, 2, 2, "region", "opts.region", 1, &rl);
    in->service = get_string(L, 2, 2, "service", "opts.service", 1, &sl);
    if (!scope_name(in->region, rl))
        luaL_argerror(L, 2, "opts.region must be up to 64 of [A-Za-z0-9._-]");
    if (!scope_name(in->service, sl))
        luaL_argerror(L, 2, "opts.service must be up to 64 of [A-Za-z0-9._-]");
    int s3 = strcmp(in->service, "s3") == 0;
    lua_getfield(L, 2, "time");
    in->time = to_epoch(L, -1, 2, "opts.time");
    lua_pop(L, 1);
    if (get_flag(L, 2, 2, "normalize_path", !s3)) in->flags |= SIGV4_NORMALIZE;
    if (get_flag(L, 2, 2, "double_encode", !s3)) in->flags |= SIGV4_DOUBLE_ENCODE;
    if (!query && get_flag(L, 2, 2, "sign_body", s3)) in->flags |= SIGV4_SIGN_BODY;
    if (get_flag(L, 2, 2, "unsigned_payload", query && s3)) in->flags |= SIGV4_UNSIGNED_PAYLOAD;
    if (get_flag(L, 2, 2, "omit_session_token", 0)) in->flags |= SIGV4_OMIT_TOKEN;
    in->expires = DEFAULT_EXPIRES;
    if (query && lua_getfield(L, 2, "expires") != LUA_TNIL) {
        int ok;
        lua_Integer e = lua_tointegerx(L, -1, &ok);
        if (!ok || lua_type(L, -1) != LUA_TNUMBER || e < 1 || e > SIGV4_MAX_EXPIRES)
            luaL_argerror(L, 2, "opts.expires must be an integer from 1 to 604800 (seconds)");
        in->expires = (long)e;
    }

    in->url = get_string(L, 1, 1, "url", "request.url", 1, &in->url_len);
    if (in->url_len > SIGV4_MAX_URL) luaL_argerror(L, 1, "request.url is longer than 64 KiB");
    size_t ml;
    const char *method = get_string(L, 1, 1, "method", "request.method", 0, &ml);
    if (!method) {
        method = "GET";
        ml = 3;
    }
    if (ml == 0 || ml > MAX_METHOD) luaL_argerror(L, 1, "request.method is not an HTTP method");
    luaL_Buffer b;
    char *up = luaL_buffinitsize(L, &b, ml);
    for (size_t i = 0; i < ml; i++) {
        if (!is_tchar((unsigned char)method[i]))
            luaL_argerror(L, 1, "request.method is not an HTTP method");
        up[i] = method[i] >= 'a' && method[i] <= 'z' ? method[i] - ('a' - 'A') : method[i];
    }
    luaL_pushresultsize(&b, ml);
    in->method = lua_tostring(L, -1);
    in->body = get_string(L, 1, 1, "body", "request.body", 0, &in->body_len);

    a->skip = query ? 0
                    : SKIP_AUTH | SKIP_DATE | (in->token ? SKIP_TOKEN : 0) |
                          (in->flags & SIGV4_SIGN_BODY ? SKIP_SHA : 0);
    int type = lua_getfield(L, 1, "headers");
    if (type == LUA_TTABLE) {
        a->headers = lua_gettop(L);
        struct sigv4_header *hs = lua_newuserdatauv(L, SIGV4_MAX_HEADERS * sizeof *hs, 0);
        in->headers = hs;
        in->nheaders = read_headers(L, a->headers, hs, a->skip);
    } else if (type != LUA_TNIL) {
        luaL_argerror(L, 1, "request.headers must be a table");
    }
}

/* [-0, +k, v] Reads the arguments into a and signs; pushes the Signing
 * userdata last (the caller frees its output once the results are pushed;
 * its __gc does it otherwise). Raises naming the field at fault. */
static struct signing *sign_args(lua_State *L, int query, struct args *a)
{
    read_args(L, query, a);
    struct signing *g = lua_newuserdatauv(L, sizeof *g, 0);
    memset(g, 0, sizeof *g);
    luaL_setmetatable(L, SIGNING_MT);
    enum sigv4_err err = sigv4_sign(&a->in, &g->out);
    if (err == SIGV4_OK) return g;
    sigv4_out_free(&g->out);
    switch (err) {
    case SIGV4_EURL:
        luaL_argerror(L, 1, "request.url is not an http(s) URL with a host");
        break;
    case SIGV4_EHEADER:
        luaL_argerror(L, 1, "request.headers has an invalid name or value");
        break;
    case SIGV4_ETOOBIG:
        luaL_argerror(L, 1, "request is too large to sign");
        break;
    case SIGV4_ETIME:
        luaL_argerror(L, 2, "opts.time out of range");
        break;
    default:
        break;
    }
    luaL_error(L, "aws: cannot sign: %s", sigv4_strerror(err));
    return NULL;
}

/* [-0, +1, m] Pushes the bytes of b as a string. */
static void push_buf(lua_State *L, const struct sigv4_buf *b)
{
    lua_pushlstring(L, b->p ? b->p : "", b->len);
}

/* ---- the API ---- */

/* sign(request, opts) -> headers: the request's headers (list values joined
 * with ",") plus Host when the URL gave it, X-Amz-Date, X-Amz-Security-Token
 * (with a session token), X-Amz-Content-Sha256 (s3, opts.sign_body) and
 * Authorization. Headers of those names in the request are replaced. */
static int aws_sign(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    struct args a;
    struct signing *g = sign_args(L, 0, &a);
    const struct sigv4_input *in = &a.in;
    lua_newtable(L);
    int result = lua_gettop(L);
    if (a.headers) {
        lua_pushnil(L);
        while (lua_next(L, a.headers)) { /* ... result key value */
            size_t nl;
            const char *name = lua_tolstring(L, -2, &nl);
            if (skipped(name, nl, a.skip)) {
                lua_pop(L, 1);
                continue;
            }
            if (lua_type(L, -1) == LUA_TTABLE) { /* one line: items joined with "," */
                int list = lua_gettop(L);
                lua_Integer n = luaL_len(L, list); /* 1..SIGV4_MAX_HEADERS: read_headers */
                luaL_checkstack(L, (int)(2 * n), "too many headers");
                for (lua_Integer i = 1; i <= n; i++) {
                    if (i > 1) lua_pushliteral(L, ",");
                    lua_geti(L, list, i);
                }
                lua_concat(L, (int)(2 * n - 1));
                lua_remove(L, list); /* ... key joined */
            }
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, result);
        }
    }
    if (g->out.host) {
        lua_pushlstring(L, g->out.host, g->out.host_len);
        lua_setfield(L, result, "Host");
    }
    lua_pushstring(L, g->out.amz_date);
    lua_setfield(L, result, "X-Amz-Date");
    if (in->token) {
        lua_pushstring(L, in->token);
        lua_setfield(L, result, "X-Amz-Security-Token");
    }
    if (in->flags & SIGV4_SIGN_BODY) {
        lua_pushstring(L, g->out.payload_hash);
        lua_setfield(L, result, "X-Amz-Content-Sha256");
    }
    push_buf(L, &g->out.result);
    lua_setfield(L, result, "Authorization");
    sigv4_out_free(&g->out);
    lua_settop(L, result);
    return 1;
}

/* presign(request, opts) -> url: the URL with the X-Amz-* query parameters
 * and X-Amz-Signature; the request's headers are signed too and must be
 * sent with it. opts.expires: seconds, 1..604800 (default 900). */
static int aws_presign(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    struct args a;
    struct signing *g = sign_args(L, 1, &a);
    push_buf(L, &g->out.result);
    sigv4_out_free(&g->out);
    return 1;
}

/* _canonical(request, opts) -> canonical request, string to sign, signature:
 * sign's path, or presign's when opts.presign is true. For tests and
 * debugging. */
static int aws_canonical(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    int query = get_flag(L, 2, 2, "presign", 0);
    struct args a;
    struct signing *g = sign_args(L, query, &a);
    push_buf(L, &g->out.canonical);
    push_buf(L, &g->out.sts);
    lua_pushstring(L, g->out.signature);
    sigv4_out_free(&g->out);
    return 3;
}

/* _sha256_hex(s) -> lowercase hex SHA-256 of s. */
static int aws_sha256_hex(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    char hex[65];
    if (sigv4_sha256_hex(s, n, hex)) return luaL_error(L, "aws: libcrypto failure");
    lua_pushstring(L, hex);
    return 1;
}

/* _hmac_sha256(key, s) -> the 32 raw bytes of HMAC-SHA256(key, s). */
static int aws_hmac_sha256(lua_State *L)
{
    size_t kl, n;
    const char *key = luaL_checklstring(L, 1, &kl);
    const char *s = luaL_checklstring(L, 2, &n);
    luaL_argcheck(L, kl <= (size_t)MAX_CODEC, 1, "key longer than 64 MiB");
    unsigned char mac[32];
    if (sigv4_hmac_sha256(key, kl, s, n, mac)) return luaL_error(L, "aws: libcrypto failure");
    lua_pushlstring(L, (const char *)mac, sizeof mac);
    OPENSSL_cleanse(mac, sizeof mac);
    return 1;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* [-0, +1, v] Pushes the base64 of the string argument 1 (at most
 * MAX_CODEC bytes) in alphabet abc, '='-padded when pad; returns 1. */
static int push_base64(lua_State *L, const char *abc, int pad)
{
    size_t n;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    luaL_argcheck(L, n <= (size_t)MAX_CODEC, 1, "string longer than 64 MiB");
    luaL_Buffer b;
    char *o = luaL_buffinitsize(L, &b, (n + 2) / 3 * 4), *p = o;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned long v = (unsigned long)s[i] << 16 | (unsigned long)s[i + 1] << 8 | s[i + 2];
        *p++ = abc[v >> 18 & 63];
        *p++ = abc[v >> 12 & 63];
        *p++ = abc[v >> 6 & 63];
        *p++ = abc[v & 63];
    }
    if (i < n) {
        unsigned long v =
            (unsigned long)s[i] << 16 | (i + 1 < n ? (unsigned long)s[i + 1] << 8 : 0);
        *p++ = abc[v >> 18 & 63];
        *p++ = abc[v >> 12 & 63];
        if (i + 1 < n)
            *p++ = abc[v >> 6 & 63];
        else if (pad)
            *p++ = '=';
        if (pad) *p++ = '=';
    }
    luaL_pushresultsize(&b, (size_t)(p - o));
    return 1;
}

/* _base64(s) -> standard base64 with '=' padding. */
static int aws_base64(lua_State *L)
{
    return push_base64(L, B64, 1);
}

/* _base64url(s) -> URL-alphabet base64 (- and _), no padding. */
static int aws_base64url(lua_State *L)
{
    return push_base64(L, B64URL, 0);
}

/* _base64_decode(s) -> bytes, or nil, err when s is not standard base64
 * (A-Z a-z 0-9 + /, padding optional but only at the end; no whitespace). */
static int aws_base64_decode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    luaL_argcheck(L, n <= (size_t)MAX_CODEC, 1, "string longer than 64 MiB");
    size_t len = n; /* without the padding */
    if (n % 4 == 0 && n >= 4 && s[n - 1] == '=') len = s[n - 2] == '=' ? n - 2 : n - 1;
    if (len % 4 == 1) goto bad;
    luaL_Buffer b;
    char *o = luaL_buffinitsize(L, &b, len / 4 * 3 + 2), *p = o;
    unsigned long v = 0;
    for (size_t i = 0; i < len; i++) {
        const char *c = s[i] ? strchr(B64, s[i]) : NULL;
        if (!c) goto bad;
        v = v << 6 | (unsigned long)(c - B64);
        if (i % 4 == 3) {
            *p++ = (char)(v >> 16);
            *p++ = (char)(v >> 8);
            *p++ = (char)v;
            v = 0;
        }
    }
    if (len % 4 == 2) *p++ = (char)(v >> 4);
    if (len % 4 == 3) {
        *p++ = (char)(v >> 10);
        *p++ = (char)(v >> 2);
    }
    luaL_pushresultsize(&b, (size_t)(p - o));
    return 1;
bad:
    lua_pushnil(L);
    lua_pushliteral(L, "invalid base64");
    return 2;
}

/* _uri_encode(s [, encode_slash = true]) -> s percent-encoded as SigV4 wants
 * (RFC 3986 unreserved kept, uppercase hex). */
static int aws_uri_encode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    int slash = 1;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TBOOLEAN);
        slash = lua_toboolean(L, 2);
    }
    luaL_argcheck(L, n <= (size_t)MAX_CODEC / 3, 1, "string longer than 21 MiB");
    struct signing *g = lua_newuserdatauv(L, sizeof *g, 0); /* owns the buffer */
    memset(g, 0, sizeof *g);
    luaL_setmetatable(L, SIGNING_MT);
    sigv4_buf_init(&g->out.result, (size_t)MAX_CODEC);
    if (sigv4_uri_encode(&g->out.result, s, n, slash))
        return luaL_error(L, "aws: %s", sigv4_strerror(g->out.result.err));
    push_buf(L, &g->out.result);
    sigv4_out_free(&g->out);
    return 1;
}

/* _amz_date([time]) -> "20150830T123600Z" for epoch seconds (default now). */
static int aws_amz_date(lua_State *L)
{
    lua_settop(L, 1);
    int64_t t = to_epoch(L, 1, 1, "time");
    char out[17];
    if (sigv4_amz_date(t, out)) return luaL_argerror(L, 1, "time out of range");
    lua_pushstring(L, out);
    return 1;
}

int luaopen_aws(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"_amz_date", aws_amz_date},
        {"_base64", aws_base64},
        {"_base64_decode", aws_base64_decode},
        {"_base64url", aws_base64url},
        {"_canonical", aws_canonical},
        {"_hmac_sha256", aws_hmac_sha256},
        {"_sha256_hex", aws_sha256_hex},
        {"_uri_encode", aws_uri_encode},
        {"presign", aws_presign},
        {"sign", aws_sign},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, SIGNING_MT)) {
        lua_pushcfunction(L, signing_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, signing_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    return host_embed_call(L, "aws", 1); /* aws.lua adds credentials, call, eks_token */
}
