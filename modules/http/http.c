/* http.c: one HTTP transfer on the host loop — the native half of the http
 * module. `_transfer(req)` builds a curl easy handle from the request table
 * (http_req_setup, request.c), hands it to the loop and suspends the calling
 * task (task_await) until curl is done; the continuation returns status,
 * headers, body or raises an error object {code, message, url, method,
 * retryable}. Retries, backoff and the response table are http.lua's;
 * streamed responses (`_open`) are stream.c's.
 *
 * Owns: the request (easy handle, header lists) and the response buffers, all
 * freed by the transfer's finalizer (__gc/__close), which also takes a
 * transfer still in flight back from the loop. Bodies are capped (max_body). */
#include "host.h"
#include "http_internal.h"
#include "loop.h"
#include "task/task.h"
#include "websocket.h"

#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#define TRANSFER_MT      "ferry.http.Transfer"
#define DEFAULT_MAX_BODY (64L << 20)

struct transfer {
    struct task_wait w; /* first: the wait is the transfer */
    struct loop_io io;
    struct loop *loop;
    struct http_req req;
    struct http_buf body;
    CURLcode result;
    int active; /* in the loop's multi handle */
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct transfer *t = arg;
    return http_buf_add(&t->body, p, size * n) == 0 ? size * n : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct transfer *t = arg;
    return http_req_header(&t->req, p, size * n) == 0 ? size * n : 0;
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
    if (t->active) loop_remove_io(t->loop, t->req.easy);
    t->active = 0;
}

/* Releases everything the transfer owns. Idempotent. */
static void transfer_free(struct transfer *t)
{
    on_cancel(&t->w);
    http_req_free(&t->req);
    http_buf_free(&t->body);
}

/* The one finalizer: __gc and __close. */
static int transfer_gc(lua_State *L)
{
    transfer_free(luaL_checkudata(L, 1, TRANSFER_MT));
    return 0;
}

/* [-0, +0, v] Raises the error object for a failed transfer. */
static int raise_failure(lua_State *L, struct transfer *t)
{
    char too_large[80];
    if (t->body.overflow)
        snprintf(too_large, sizeof too_large, "response body larger than max_body (%zu bytes)",
                 t->body.max);
    http_req_push_error(L, &t->req, t->result, t->body.overflow ? too_large : NULL);
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
    curl_easy_getinfo(t->req.easy, CURLINFO_RESPONSE_CODE, &code);
    lua_pushinteger(L, code);
    http_req_push_headers(L, &t->req);
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
    http_req_setup(L, &t->req);
    CURL *e = t->req.easy;
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
    lua_Integer max = DEFAULT_MAX_BODY;
    if (lua_getfield(L, 1, "max_body") != LUA_TNIL) {
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0)
            return luaL_error(L, "http: field 'max_body' must be a byte count");
        max = lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
    t->body.max = (size_t)max;
    if (loop_add_io(t->loop, e, &t->io) != 0)
        return luaL_error(L, "http: cannot start the transfer");
    t->active = 1;
    return task_await(L, &t->w, 2, transfer_k);
}

int luaopen_http(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"_open", http_stream_open},
        {"_transfer", http_transfer},
        {"websocket", http_websocket},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, TRANSFER_MT)) {
        lua_pushcfunction(L, transfer_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, transfer_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    http_stream_register(L);
    luaL_newlib(L, fns);
    return host_embed_call(L, "http", 1);
}
