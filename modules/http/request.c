/* request.c: the parts of an HTTP transfer that do not depend on how its body
 * is read (see http_internal.h): the request table turned into a configured
 * curl easy handle, the response header block as a Lua table, and a failed
 * transfer as an error object. Shared by http.c and stream.c.
 *
 * Calls curl and Lua only: never the loop, never task_await. Every buffer has
 * a cap; everything allocated hangs off struct http_req, which its owner
 * frees with http_req_free. */
#include "http_internal.h"

#include "errors/errors.h"
#include "host.h"
#include "redact.h"

#include <ctype.h>
#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_HEADER_BYTES (256L << 10)
#define MAX_SECONDS      1e7

int http_buf_add(struct http_buf *b, const char *p, size_t n)
{
    if (n > b->max - b->len) {
        b->overflow = 1;
        return -1;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        if (cap > b->max) cap = b->max;
        char *np = realloc(b->p, cap);
        if (!np) return -1;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

void http_buf_free(struct http_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->overflow = 0;
}

void http_req_free(struct http_req *r)
{
    if (r->easy) curl_easy_cleanup(r->easy);
    r->easy = NULL;
    curl_slist_free_all(r->headers);
    curl_slist_free_all(r->resolve);
    curl_slist_free_all(r->connect_to);
    r->headers = r->resolve = r->connect_to = NULL;
    http_buf_free(&r->head);
}

int http_req_header(struct http_req *r, const char *line, size_t n)
{
    if (n > 5 && memcmp(line, "HTTP/", 5) == 0) r->head.len = 0; /* a new response */
    return http_buf_add(&r->head, line, n);
}

/* ---- reading the request table (at stack index 1) ---- */

static const char *opt_string(lua_State *L, const char *field, size_t *len)
{
    const char *s = NULL;
    int type = lua_getfield(L, 1, field);
    if (type == LUA_TSTRING)
        s = lua_tolstring(L, -1, len);
    else if (type != LUA_TNIL)
        luaL_error(L, "http: field '%s' must be a string, got %s", field, luaL_typename(L, -1));
    lua_pop(L, 1); /* the string stays referenced by the request table */
    return s;
}

/* Seconds in (0, 1e7], or dflt when the field is absent. */
static double opt_seconds(lua_State *L, const char *field, double dflt)
{
    double v = dflt;
    int type = lua_getfield(L, 1, field);
    if (type == LUA_TNUMBER) {
        v = lua_tonumber(L, -1);
        if (!(v > 0) || v > MAX_SECONDS)
            luaL_error(L, "http: field '%s' must be > 0 seconds", field);
    } else if (type != LUA_TNIL) {
        luaL_error(L, "http: field '%s' must be a number of seconds", field);
    }
    lua_pop(L, 1);
    return v;
}

static int opt_bool(lua_State *L, const char *field)
{
    lua_getfield(L, 1, field);
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

static int has_crlf(const char *s, size_t n)
{
    return memchr(s, '\r', n) || memchr(s, '\n', n);
}

/* Request headers from req.headers {name = value}: validated, each as one
 * "Name: value" line. Raises on names or values that would split a header. */
static void add_headers(lua_State *L, struct http_req *r)
{
    int type = lua_getfield(L, 1, "headers");
    if (type == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            size_t nlen, vlen;
            if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "http: header names must be strings");
            const char *name = lua_tolstring(L, -2, &nlen);
            if (!lua_isstring(L, -1)) luaL_error(L, "http: header '%s' must be a string", name);
            const char *value = lua_tolstring(L, -1, &vlen);
            if (nlen == 0 || has_crlf(name, nlen) || memchr(name, ':', nlen) ||
                has_crlf(value, vlen))
                luaL_error(L, "http: invalid header '%s'", name);
            /* "Name:" with no value tells curl to drop its own; "Name;" sends it empty */
            lua_pushfstring(L, vlen ? "%s: %s" : "%s;", name, value);
            struct curl_slist *l = curl_slist_append(r->headers, lua_tostring(L, -1));
            if (!l) luaL_error(L, "http: out of memory");
            r->headers = l;
            lua_pop(L, 2);
        }
    } else if (type != LUA_TNIL) {
        luaL_error(L, "http: field 'headers' must be a table");
    }
    lua_pop(L, 1);
    struct curl_slist *l = curl_slist_append(r->headers, "Expect:"); /* no 100-continue wait */
    if (!l) luaL_error(L, "http: out of memory");
    r->headers = l;
    curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
}

/* Whether s is "[+]host:port:address" (what CURLOPT_RESOLVE adds). */
static int is_resolve_entry(const char *s, size_t n)
{
    if (n == 0 || strlen(s) != n || has_crlf(s, n) || *s == '-') return 0;
    const char *port = strchr(s, ':');
    if (!port || port == s || (port == s + 1 && *s == '+')) return 0;
    const char *p = port + 1;
    while (isdigit((unsigned char)*p)) p++;
    return p > port + 1 && *p == ':' && p[1] != '\0';
}

/* Whether s is "host:port:connect-host:connect-port" (CURLOPT_CONNECT_TO);
 * the hosts may be empty ("::host:port" redirects every host). */
static int is_connect_to_entry(const char *s, size_t n)
{
    if (n == 0 || strlen(s) != n || has_crlf(s, n)) return 0;
    int colons = 0;
    for (const char *p = s; *p; p++) colons += *p == ':';
    return colons >= 3;
}

/* A list field of the request as a curl_slist option: req.resolve
 * {"host:port:address", ...} connects to address whenever a URL names
 * host:port (curl --resolve); req.connect_to {"host:port:other:port", ...}
 * connects elsewhere while TLS still verifies the URL's host (curl
 * --connect-to). */
static void add_list(lua_State *L, struct http_req *r, const char *field, struct curl_slist **list,
                     CURLoption opt, int (*valid)(const char *, size_t), const char *shape)
{
    int type = lua_getfield(L, 1, field);
    if (type == LUA_TTABLE) {
        lua_Integer n = luaL_len(L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            size_t len = 0;
            const char *s = lua_geti(L, -1, i) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
            if (!s || !valid(s, len))
                luaL_error(L, "http: field '%s' item %d must be \"%s\"", field, (int)i, shape);
            struct curl_slist *l = curl_slist_append(*list, s);
            if (!l) luaL_error(L, "http: out of memory");
            *list = l;
            lua_pop(L, 1);
        }
        curl_easy_setopt(r->easy, opt, *list);
    } else if (type != LUA_TNIL) {
        luaL_error(L, "http: field '%s' must be a list of \"%s\" strings", field, shape);
    }
    lua_pop(L, 1);
}

static void set_blob(CURL *e, CURLoption opt, const char *p, size_t len)
{
    struct curl_blob blob = {(void *)p, len, CURL_BLOB_COPY};
    curl_easy_setopt(e, opt, &blob);
}

static void add_tls(lua_State *L, CURL *e)
{
    size_t len;
    const char *ca_file = opt_string(L, "ca_file", NULL);
    if (ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, ca_file);
    const char *ca = opt_string(L, "ca_data", &len);
    if (ca) set_blob(e, CURLOPT_CAINFO_BLOB, ca, len);
    const char *cert = opt_string(L, "cert_data", &len);
    if (cert) {
        set_blob(e, CURLOPT_SSLCERT_BLOB, cert, len);
        curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
    }
    const char *key = opt_string(L, "key_data", &len);
    if (key) {
        set_blob(e, CURLOPT_SSLKEY_BLOB, key, len);
        curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (opt_bool(L, "insecure")) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
}

void http_req_setup(lua_State *L, struct http_req *r)
{
    const char *why = curl_load();
    if (why) luaL_error(L, "http: %s", why);
    if (!(r->easy = curl_easy_init())) luaL_error(L, "http: cannot create a transfer");
    r->head.max = MAX_HEADER_BYTES;
    CURL *e = r->easy;
    size_t len;
    const char *url = opt_string(L, "url", NULL);
    if (!url) luaL_error(L, "http: field 'url' is required");
    const char *method = opt_string(L, "method", NULL);
    if (!method) method = "GET";
    for (const char *m = method; *m; m++)
        if (!isupper((unsigned char)*m)) luaL_error(L, "http: bad method '%s'", method);

    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "ferry/" FERRY_VERSION);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L); /* a proxy's CONNECT answer */
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(opt_seconds(L, "timeout", 60) * 1000));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(opt_seconds(L, "connect_timeout", 10) * 1000));
    double idle = opt_seconds(L, "idle_timeout", 0);
    if (idle > 0) { /* curl counts whole seconds below one byte per second */
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)ceil(idle));
    }

    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "GET") != 0)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    const char *body = opt_string(L, "body", &len);
    if (body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body);
    } else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
               strcmp(method, "PATCH") == 0) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
        curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, "");
    }

    const char *proxy = opt_string(L, "proxy", &len);
    if (proxy) { /* given explicitly, it wins over http_proxy and no_proxy; "" means none */
        if (has_crlf(proxy, len) || strlen(proxy) != len) luaL_error(L, "http: bad proxy URL");
        curl_easy_setopt(e, CURLOPT_PROXY, proxy);
        curl_easy_setopt(e, CURLOPT_NOPROXY, "");
    }
    add_list(L, r, "resolve", &r->resolve, CURLOPT_RESOLVE, is_resolve_entry, "host:port:address");
    add_list(L, r, "connect_to", &r->connect_to, CURLOPT_CONNECT_TO, is_connect_to_entry,
             "host:port:connect-host:connect-port");
    add_tls(L, e);
    add_headers(L, r);
}

/* ---- the response ---- */

void http_req_push_headers(lua_State *L, const struct http_req *r)
{
    lua_newtable(L);
    const char *p = r->head.p, *end = r->head.p + r->head.len;
    while (p && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon && !(eol - p >= 5 && memcmp(p, "HTTP/", 5) == 0)) { /* not a status line */
            const char *v = colon + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            luaL_Buffer b;
            char *name = luaL_buffinitsize(L, &b, (size_t)(colon - p));
            for (size_t i = 0; i < (size_t)(colon - p); i++)
                name[i] = (char)tolower((unsigned char)p[i]);
            luaL_pushresultsize(&b, (size_t)(colon - p));
            lua_pushvalue(L, -1);
            if (lua_rawget(L, -3) == LUA_TSTRING) {
                lua_pushliteral(L, ", ");
                lua_pushlstring(L, v, (size_t)(ve - v));
                lua_concat(L, 3);
            } else {
                lua_pop(L, 1);
                lua_pushlstring(L, v, (size_t)(ve - v));
            }
            lua_rawset(L, -3);
        }
        p = eol + 1;
    }
}

/* Whether the query parameter name (n bytes) carries a secret: the parts of
 * a SigV4 presigned URL that let anyone holding the URL act as its signer. */
static int is_secret_param(const char *name, size_t n)
{
    static const char *const secret[] = {"X-Amz-Signature", "X-Amz-Security-Token"};
    for (size_t i = 0; i < sizeof secret / sizeof secret[0]; i++)
        if (strlen(secret[i]) == n && strncasecmp(name, secret[i], n) == 0) return 1;
    return 0;
}

const char *http_push_safe_url(lua_State *L, const char *url)
{
    if (!url) url = "?";
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    const char *p = url;
    /* userinfo: "scheme://user:password@host" keeps the user only */
    const char *auth = strstr(p, "://");
    if (auth) {
        auth += 3;
        size_t hostpart = strcspn(auth, "/?#");
        const char *at = memchr(auth, '@', hostpart);
        const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon) {
            luaL_addlstring(&b, p, (size_t)(colon - p));
            luaL_addstring(&b, ":" REDACT_MASK);
            p = at;
        }
    }
    const char *q = strchr(p, '?');
    if (!q) {
        luaL_addstring(&b, p);
        luaL_pushresult(&b);
        return lua_tostring(L, -1);
    }
    luaL_addlstring(&b, p, (size_t)(q - p));
    p = q;
    while (*p && *p != '#') { /* p at '?' or '&' */
        luaL_addchar(&b, *p++);
        size_t len = strcspn(p, "&#");
        const char *eq = memchr(p, '=', len);
        if (eq && is_secret_param(p, (size_t)(eq - p))) {
            luaL_addlstring(&b, p, (size_t)(eq - p) + 1);
            luaL_addstring(&b, REDACT_MASK);
        } else {
            luaL_addlstring(&b, p, len);
        }
        p += len;
    }
    luaL_addstring(&b, p);
    luaL_pushresult(&b);
    return lua_tostring(L, -1);
}

void http_req_push_error(lua_State *L, struct http_req *r, CURLcode result, const char *too_large)
{
    static const struct {
        CURLcode c;
        const char *code;
        int retryable;
    } kinds[] = {
        {CURLE_COULDNT_RESOLVE_HOST, "resolve", 1},
        {CURLE_COULDNT_RESOLVE_PROXY, "resolve", 1},
        {CURLE_COULDNT_CONNECT, "connect", 1},
        {CURLE_OPERATION_TIMEDOUT, "timeout", 1},
        {CURLE_GOT_NOTHING, "connection", 1},
        {CURLE_SEND_ERROR, "connection", 1},
        {CURLE_RECV_ERROR, "connection", 1},
        {CURLE_PARTIAL_FILE, "connection", 1},
        {CURLE_HTTP2, "connection", 1},
        {CURLE_HTTP2_STREAM, "connection", 1},
        {CURLE_PEER_FAILED_VERIFICATION, "tls", 0},
        {CURLE_SSL_CONNECT_ERROR, "tls", 0},
        {CURLE_SSL_CERTPROBLEM, "tls", 0},
        {CURLE_SSL_CACERT_BADFILE, "tls", 0},
        {CURLE_URL_MALFORMAT, "bad_url", 0},
        {CURLE_UNSUPPORTED_PROTOCOL, "bad_url", 0},
    };
    const char *url = NULL, *method = NULL;
    if (r->easy) {
        curl_easy_getinfo(r->easy, CURLINFO_EFFECTIVE_URL, &url);
        curl_easy_getinfo(r->easy, CURLINFO_EFFECTIVE_METHOD, &method);
    }
    const char *m = method ? method : "GET";
    int retryable = 0;
    url = http_push_safe_url(L, url); /* never a presigned URL's signature or token */
    const char *u = url;
    if (too_large) {
        errors_push(L, "too_large", "%s %s: %s", m, u, too_large);
    } else if (r->head.overflow) {
        errors_push(L, "too_large", "%s %s: response headers larger than %I bytes", m, u,
                    (lua_Integer)r->head.max);
    } else {
        const char *code = "transport";
        for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
            if (kinds[i].c == result) {
                code = kinds[i].code;
                retryable = kinds[i].retryable;
            }
        const char *why = r->errbuf[0] ? r->errbuf : curl_easy_strerror(result);
        errors_push(L, code, "%s %s: %s", m, u, why);
    }
    errors_set(L, -1, "url", url);
    errors_set(L, -1, "method", method);
    lua_pushboolean(L, retryable);
    lua_setfield(L, -2, "retryable");
    lua_remove(L, -2); /* the safe URL */
}
