/* http.c: one HTTP transfer on the host loop — the native half of the http
 * module. `_transfer(req)` builds a curl easy handle from the request table,
 * hands it to the loop and suspends the calling task (task_await) until curl
 * is done; the continuation returns status, headers, body or raises an error
 * object {code, message, url, method, retryable}. Retries, backoff and the
 * response table are http.lua's.
 *
 * Owns: the easy handle, its header list and the response buffers, all freed
 * by the transfer's finalizer (__gc/__close), which also takes a transfer
 * still in flight back from the loop. Bodies are capped (max_body). */
#include "curl.h"
#include "errors/errors.h"
#include "host.h"
#include "loop.h"
#include "task/task.h"

#include <ctype.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#define TRANSFER_MT      "ferry.http.Transfer"
#define DEFAULT_MAX_BODY (64L << 20)
#define MAX_HEADER_BYTES (256L << 10)

struct buf {
    char *p;
    size_t len, cap, max;
    int overflow;
};

struct transfer {
    struct task_wait w; /* first: the wait is the transfer */
    struct loop_io io;
    struct loop *loop;
    CURL *easy;
    struct curl_slist *headers;
    struct buf body, head;
    CURLcode result;
    int active; /* in the loop's multi handle */
    char errbuf[CURL_ERROR_SIZE];
};

static int buf_add(struct buf *b, const char *p, size_t n)
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

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct transfer *t = arg;
    return buf_add(&t->body, p, size * n) == 0 ? size * n : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct transfer *t = arg;
    if (size * n > 5 && memcmp(p, "HTTP/", 5) == 0)
        t->head.len = 0; /* a new response (after 100, redirect) */
    return buf_add(&t->head, p, size * n) == 0 ? size * n : 0;
}

static void on_done(struct loop_io *io, CURLcode result)
{
    struct transfer *t = (struct transfer *)((char *)io - offsetof(struct transfer, io));
    t->active = 0;
    t->result = result;
    task_wake(&t->w);
}

static void on_cancel(struct task_wait *w)
{
    struct transfer *t = (struct transfer *)w;
    if (t->active) loop_remove_io(t->loop, t->easy);
    t->active = 0;
}

/* Releases everything the transfer owns. Idempotent. */
static void transfer_free(struct transfer *t)
{
    on_cancel(&t->w);
    if (t->easy) curl_easy_cleanup(t->easy);
    curl_slist_free_all(t->headers);
    free(t->body.p);
    free(t->head.p);
    memset(&t->body, 0, sizeof t->body);
    memset(&t->head, 0, sizeof t->head);
    t->easy = NULL;
    t->headers = NULL;
}

/* The one finalizer: __gc and __close. */
static int transfer_gc(lua_State *L)
{
    transfer_free(luaL_checkudata(L, 1, TRANSFER_MT));
    return 0;
}

/* ---- building the request ---- */

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

static double opt_seconds(lua_State *L, const char *field, double dflt)
{
    double v = dflt;
    int type = lua_getfield(L, 1, field);
    if (type == LUA_TNUMBER)
        v = lua_tonumber(L, -1);
    else if (type != LUA_TNIL)
        luaL_error(L, "http: field '%s' must be a number of seconds", field);
    if (!(v > 0) || v > 1e7) luaL_error(L, "http: field '%s' must be > 0 seconds", field);
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
static void add_headers(lua_State *L, struct transfer *t)
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
            struct curl_slist *l = curl_slist_append(t->headers, lua_tostring(L, -1));
            if (!l) luaL_error(L, "http: out of memory");
            t->headers = l;
            lua_pop(L, 2);
        }
    } else if (type != LUA_TNIL) {
        luaL_error(L, "http: field 'headers' must be a table");
    }
    lua_pop(L, 1);
    t->headers = curl_slist_append(t->headers, "Expect:"); /* no 100-continue round trip */
}

static void setup(lua_State *L, struct transfer *t)
{
    CURL *e = t->easy;
    size_t len;
    const char *url = opt_string(L, "url", NULL);
    if (!url) luaL_error(L, "http: field 'url' is required");
    const char *method = opt_string(L, "method", NULL);
    if (!method) method = "GET";
    for (const char *m = method; *m; m++)
        if (!isupper((unsigned char)*m)) luaL_error(L, "http: bad method '%s'", method);

    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "ferry/" FERRY_VERSION);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(opt_seconds(L, "timeout", 60) * 1000));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(opt_seconds(L, "connect_timeout", 10) * 1000));

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

    const char *ca_file = opt_string(L, "ca_file", NULL);
    const char *ca = opt_string(L, "ca_data", &len);
    if (ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, ca_file);
    if (ca) {
        struct curl_blob blob = {(void *)ca, len, CURL_BLOB_COPY};
        curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &blob);
    }
    const char *cert = opt_string(L, "cert_data", &len);
    if (cert) {
        struct curl_blob blob = {(void *)cert, len, CURL_BLOB_COPY};
        curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &blob);
        curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
    }
    const char *key = opt_string(L, "key_data", &len);
    if (key) {
        struct curl_blob blob = {(void *)key, len, CURL_BLOB_COPY};
        curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &blob);
        curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (opt_bool(L, "insecure")) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }

    lua_Integer max = DEFAULT_MAX_BODY;
    if (lua_getfield(L, 1, "max_body") != LUA_TNIL) {
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0)
            luaL_error(L, "http: field 'max_body' must be a byte count");
        max = lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
    t->body.max = (size_t)max;
    t->head.max = MAX_HEADER_BYTES;
    add_headers(L, t);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
}

/* ---- the response ---- */

/* [-0, +1, m] The response headers as {lower-case name = value}; repeated
 * headers are joined with ", " as RFC 9110 allows. */
static void push_headers(lua_State *L, const struct buf *h)
{
    lua_newtable(L);
    const char *p = h->p, *end = h->p + h->len;
    while (p && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon && memcmp(p, "HTTP/", 5) != 0) {
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

/* [-0, +0, v] Raises the error object for a failed transfer. */
static int raise_failure(lua_State *L, struct transfer *t)
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
    curl_easy_getinfo(t->easy, CURLINFO_EFFECTIVE_URL, &url);
    curl_easy_getinfo(t->easy, CURLINFO_EFFECTIVE_METHOD, &method);
    const char *code = "transport";
    int retryable = 0;
    const char *why = t->errbuf[0] ? t->errbuf : curl_easy_strerror(t->result);
    if (t->body.overflow) {
        errors_push(L, "too_large", "%s %s: response body larger than max_body (%I bytes)",
                    method ? method : "GET", url ? url : "?", (lua_Integer)t->body.max);
    } else if (t->head.overflow) {
        errors_push(L, "too_large", "%s %s: response headers larger than %I bytes",
                    method ? method : "GET", url ? url : "?", (lua_Integer)t->head.max);
    } else {
        for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
            if (kinds[i].c == t->result) {
                code = kinds[i].code;
                retryable = kinds[i].retryable;
            }
        errors_push(L, code, "%s %s: %s", method ? method : "GET", url ? url : "?", why);
    }
    errors_set(L, -1, "url", url);
    errors_set(L, -1, "method", method);
    lua_pushboolean(L, retryable);
    lua_setfield(L, -2, "retryable");
    transfer_free(t);
    return lua_error(L);
}

static int transfer_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    struct transfer *t = lua_touserdata(L, (int)ctx);
    if (t->w.reason) return task_raise_cancelled(L, &t->w);
    if (t->result != CURLE_OK) return raise_failure(L, t);
    long code = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
    lua_pushinteger(L, code);
    push_headers(L, &t->head);
    lua_pushlstring(L, t->body.p ? t->body.p : "", t->body.len);
    transfer_free(t); /* now, not at the next collection */
    return 3;
}

/* _transfer(req) -> status, headers, body */
static int http_transfer(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    struct transfer *t = lua_newuserdatauv(L, sizeof *t, 0);
    memset(t, 0, sizeof *t);
    luaL_setmetatable(L, TRANSFER_MT);
    t->loop = host_loop(host_get(L));
    t->w.cancel = on_cancel;
    t->io.done = on_done;
    const char *why = curl_load();
    if (why) return luaL_error(L, "http: %s", why);
    t->easy = curl_easy_init();
    if (!t->easy) return luaL_error(L, "http: cannot create a transfer");
    setup(L, t);
    if (loop_add_io(t->loop, t->easy, &t->io) != 0)
        return luaL_error(L, "http: cannot start the transfer");
    t->active = 1;
    return task_await(L, &t->w, 2, transfer_k);
}

int luaopen_http(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"_transfer", http_transfer},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, TRANSFER_MT)) {
        lua_pushcfunction(L, transfer_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, transfer_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    return host_embed_call(L, "http", 1);
}
