/* stream.c: responses read as they arrive — `http.open` for watches and log
 * follows. `_open(req)` starts the transfer and suspends the calling task
 * until the response headers are in (or the transfer failed), then returns a
 * stream; stream:read() suspends until body bytes are buffered and returns
 * them all, or nil at the end of the body.
 *
 * Flow control: curl's write callback appends to the stream's buffer; once
 * STREAM_CAP bytes wait there, it pauses the transfer (CURL_WRITEFUNC_PAUSE)
 * and read() resumes it (curl_easy_pause) after taking them, so a slow reader
 * holds the server back through TCP instead of growing memory. Streams speak
 * HTTP/1.1: pausing HTTP/2 streams has stalled transfers in many libcurl
 * releases, and a connection of its own means close() ends just this stream.
 *
 * Invariants: curl callbacks only buffer bytes and task_wake a waiting task
 * (never Lua, and only while one waits: a stream outlives the tasks that
 * used it). A stream is released — out of the loop, easy handle and buffers
 * freed — by its one finalizer (close(), __close, __gc), by a cancellation,
 * at the end of its body or when its error is raised; the error is kept and
 * raised again by later reads. Calls request.c, the loop and task_await. */
#include "host.h"
#include "http_internal.h"
#include "loop.h"
#include "task/task.h"

#include <lauxlib.h>
#include <string.h>

#define STREAM_MT  "ferry.http.Stream"
#define STREAM_CAP (1L << 20) /* body bytes buffered ahead of read() before curl pauses */

/* Uservalues of a stream userdata. */
enum { UV_HEADERS = 1, UV_ERROR, UV_COUNT = UV_ERROR };

struct stream {
    struct task_wait w; /* first: the wait is the stream */
    struct loop_io io;
    struct loop *loop;
    struct http_req req;
    struct http_buf body; /* received, not yet read */
    CURLcode result;      /* how the transfer ended, once done */
    long status;          /* of the last status line */
    int active;           /* in the loop's multi handle */
    int paused;           /* the write callback paused the transfer */
    int headers_done;     /* the final response's header block is in */
    int done;             /* curl finished: result is set */
    int waiting;          /* a task is suspended in open or read */
    int ended;            /* read() reached the end of the body */
    int released;         /* the request and buffers are freed */
};

/* Wakes the task suspended on s, if any (from loop callbacks and close()). */
static void notify(struct stream *s)
{
    if (s->waiting) task_wake(&s->w);
}

/* Frees what s holds, taking the transfer back from the loop first (curl
 * then closes its connection). Idempotent. */
static void stream_release(struct stream *s)
{
    if (s->active) loop_remove_io(s->loop, s->req.easy);
    s->active = s->paused = 0;
    http_req_free(&s->req);
    http_buf_free(&s->body);
    s->released = 1;
}

/* ---- curl callbacks: buffer and notify, nothing else ---- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct stream *s = arg;
    size_t len = size * n;
    if (s->body.len > 0 && s->body.len + len > STREAM_CAP) {
        s->paused = 1; /* curl keeps this chunk and offers it again after read() */
        return CURL_WRITEFUNC_PAUSE;
    }
    if (http_buf_add(&s->body, p, len) != 0) return 0; /* out of memory: a write error */
    notify(s);
    return len;
}

/* Whether line (as curl gives it) is the blank line ending a header block. */
static int is_blank(const char *line, size_t n)
{
    return (n == 2 && line[0] == '\r' && line[1] == '\n') || (n == 1 && line[0] == '\n');
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct stream *s = arg;
    size_t len = size * n;
    if (s->headers_done) return len; /* trailers after the body: not kept */
    if (http_req_header(&s->req, p, len) != 0) return 0;
    if (len > 5 && memcmp(p, "HTTP/", 5) == 0) {
        const char *c = memchr(p, ' ', len);
        s->status = 0;
        for (int i = 1; c && i <= 3 && (size_t)(c + i - p) < len && c[i] >= '0' && c[i] <= '9'; i++)
            s->status = s->status * 10 + (c[i] - '0');
    } else if (is_blank(p, len) && s->status >= 200) { /* 1xx blocks are followed by more */
        s->headers_done = 1;
        notify(s);
    }
    return len;
}

static void on_done(struct loop_io *io, CURLcode result)
{
    struct stream *s = (struct stream *)((char *)io - offsetof(struct stream, io));
    s->active = s->paused = 0;
    s->done = 1;
    s->result = result;
    notify(s);
}

/* task cancellation (deadline, task.cancel, signal) while in open or read */
static void on_cancel(struct task_wait *w)
{
    struct stream *s = (struct stream *)w;
    s->waiting = 0;
    stream_release(s);
}

/* ---- reading ---- */

/* [-0, +0, v] Raises the error object for the failed transfer, keeping it as
 * the stream's (the userdata at index ud) for later reads; releases s. */
static int raise_failure(lua_State *L, struct stream *s, int ud)
{
    http_req_push_error(L, &s->req, s->result, NULL);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, ud, UV_ERROR);
    stream_release(s);
    return lua_error(L);
}

/* Lets curl go on after read() made room. curl may call on_body from here
 * with the chunk it held (and pause again). */
static void resume(struct stream *s)
{
    s->paused = 0;
    CURLcode rc = curl_easy_pause(s->req.easy, CURLPAUSE_CONT);
    if (rc != CURLE_OK && s->active) {
        loop_remove_io(s->loop, s->req.easy);
        s->active = 0;
        s->done = 1;
        s->result = rc;
    }
}

static int read_k(lua_State *L, int status, lua_KContext ctx);

/* [-0, +1, v] read()'s work for the stream at index ud: pushes the bytes
 * buffered, or nil at the end; raises the transfer's error; or suspends
 * until one of those can happen. */
static int read_or_wait(lua_State *L, struct stream *s, int ud)
{
    if (s->body.len > 0) {
        lua_pushlstring(L, s->body.p, s->body.len);
        s->body.len = 0;
        if (s->paused && s->active) resume(s);
        return 1;
    }
    if (s->done) {
        if (s->result != CURLE_OK) return raise_failure(L, s, ud);
        stream_release(s); /* the connection went back to the pool when curl finished */
        s->ended = 1;
    }
    if (s->ended) {
        lua_pushnil(L);
        return 1;
    }
    s->waiting = 1;
    return task_await(L, &s->w, ud, read_k);
}

static int read_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    struct stream *s = lua_touserdata(L, (int)ctx);
    s->waiting = 0;
    if (s->w.reason) return task_raise_cancelled(L, &s->w);
    if (s->released && !s->ended) { /* another task closed it while we waited */
        lua_pushnil(L);
        return 1;
    }
    return read_or_wait(L, s, (int)ctx);
}

/* stream:read() -> the body bytes received since the last read (suspending
 * until there are some), or nil at the end of the body */
static int stream_read(lua_State *L)
{
    struct stream *s = luaL_checkudata(L, 1, STREAM_MT);
    lua_settop(L, 1);
    if (s->waiting) return luaL_error(L, "http: another task is reading this stream");
    if (lua_getiuservalue(L, 1, UV_ERROR) != LUA_TNIL) return lua_error(L);
    lua_pop(L, 1);
    if (s->released && !s->ended) return luaL_error(L, "http: attempt to read a closed stream");
    return read_or_wait(L, s, 1);
}

/* The one finalizer: close(), __close and __gc. Aborts a transfer still
 * running; a read waiting in another task returns nil. */
static int stream_gc(lua_State *L)
{
    struct stream *s = luaL_checkudata(L, 1, STREAM_MT);
    int reader = s->waiting;
    stream_release(s);
    if (reader) task_wake(&s->w);
    return 0;
}

/* stream.status, stream.headers, stream.buffered (bytes waiting for read())
 * and the methods (upvalue 1) */
static int stream_index(lua_State *L)
{
    struct stream *s = luaL_checkudata(L, 1, STREAM_MT);
    const char *key = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "";
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
    if (strcmp(key, "status") == 0)
        lua_pushinteger(L, s->status);
    else if (strcmp(key, "headers") == 0)
        lua_getiuservalue(L, 1, UV_HEADERS);
    else if (strcmp(key, "buffered") == 0)
        lua_pushinteger(L, (lua_Integer)s->body.len);
    else
        lua_pushnil(L);
    return 1;
}

static int stream_tostring(lua_State *L)
{
    struct stream *s = luaL_checkudata(L, 1, STREAM_MT);
    const char *state = s->ended ? "ended" : s->released ? "closed" : "open";
    lua_pushfstring(L, "http stream (%d, %s)", (int)s->status, state);
    return 1;
}

/* ---- opening ---- */

static int open_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    int ud = (int)ctx;
    struct stream *s = lua_touserdata(L, ud);
    s->waiting = 0;
    if (s->w.reason) return task_raise_cancelled(L, &s->w);
    if (!s->headers_done && !s->done) {
        s->waiting = 1;
        return task_await(L, &s->w, ctx, open_k);
    }
    if (!s->headers_done && s->result != CURLE_OK) return raise_failure(L, s, ud);
    if (!s->headers_done) curl_easy_getinfo(s->req.easy, CURLINFO_RESPONSE_CODE, &s->status);
    http_req_push_headers(L, &s->req);
    lua_setiuservalue(L, ud, UV_HEADERS);
    http_buf_free(&s->req.head);
    lua_settop(L, ud);
    return 1;
}

/* _open(req) -> stream, once the response headers are in. A transport error
 * before then raises the error object, as http.request does. */
int http_stream_open(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    struct stream *s = lua_newuserdatauv(L, sizeof *s, UV_COUNT);
    memset(s, 0, sizeof *s);
    luaL_setmetatable(L, STREAM_MT);
    s->loop = host_loop(host_get(L));
    s->w.cancel = on_cancel;
    s->io.done = on_done;
    s->body.max = STREAM_CAP + CURL_MAX_WRITE_SIZE; /* curl never offers more at once */
    http_req_setup(L, &s->req);
    CURL *e = s->req.easy;
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L); /* notice a peer gone during a quiet watch */
    curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 30L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 15L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, s);
    if (loop_add_io(s->loop, e, &s->io) != 0)
        return luaL_error(L, "http: cannot start the transfer");
    s->active = 1;
    s->waiting = 1;
    return task_await(L, &s->w, 2, open_k);
}

void http_stream_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"close", stream_gc},
        {"read", stream_read},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, STREAM_MT)) {
        lua_pushcfunction(L, stream_gc);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, stream_gc);
        lua_setfield(L, -2, "__gc");
        luaL_newlib(L, methods);
        lua_pushcclosure(L, stream_index, 1);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, stream_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
}
