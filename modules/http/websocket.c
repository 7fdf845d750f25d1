/* websocket.c: WebSocket client connections (RFC 6455) — http.websocket, the
 * transport of Kubernetes exec and attach (v5/v4.channel.k8s.io) and of any
 * other WebSocket API. This file is the Lua side: the options, the connection
 * userdata and its methods, whose continuations do all frame I/O in the
 * calling task. websocket_handshake.c opens the connection (curl's
 * connect-only connection, the HTTP Upgrade); websocket_io.c moves its bytes
 * and frames (the loop, curl_easy_send/recv, wslay). They share
 * websocket_internal.h.
 *
 * Invariants: nothing in the three files resumes Lua from a callback — the
 * socket's readiness, curl's completion, the handshake deadline and the
 * keep-alive ping timer only call task_wake. At most one task receives and
 * one sends at a time. A send waits until its message is written to the
 * socket.
 *
 * Owns: the easy handle (struct http_req), the private multi handle, the
 * wslay context and every buffer; all freed by http_ws_free, the one
 * finalizer (__gc, __close and :close()), which does no I/O of its own.
 * :close() and __close first try once, without waiting, to send a close
 * frame. */
#include "websocket.h"

#include "errors/errors.h"
#include "host.h"
#include "websocket_internal.h"

#include <ctype.h>
#include <lauxlib.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WS_MT                 "ferry.http.WebSocket"
#define DEFAULT_MAX_MESSAGE   ((lua_Integer)64 << 20)
#define DEFAULT_TIMEOUT       60.0
#define DEFAULT_PING_INTERVAL 30.0 /* seconds a receive waits before it pings */

/* Uservalues of the connection userdata. */
enum { UV_URL = 1, UV_PROTOCOL, UV_COUNT = UV_PROTOCOL };

/* ---- checks ---- */

/* Whether s[0..n) is a token (RFC 9110): header names, subprotocols. */
static int is_token(const char *s, size_t n)
{
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && (c == 0 || !strchr("!#$%&'*+-.^_`|~", c))) return 0;
    }
    return 1;
}

/* Whether s[0..n) is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates). */
static int is_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t more;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            more = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            more = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i <= more) return 0;
        for (size_t k = 1; k <= more; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((more == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (more == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        i += more + 1;
    }
    return 1;
}

/* ---- raising ---- */

/* [-0, +1, m] The error object for ws's failure. */
static void push_failure(lua_State *L, struct ws *ws, int ui)
{
    lua_getiuservalue(L, ui, UV_URL);
    const char *url = NULL;
    if (lua_isstring(L, -1)) { /* printable: no presigned signature or token */
        http_push_safe_url(L, lua_tostring(L, -1));
        lua_replace(L, -2);
        url = lua_tostring(L, -1);
    }
    int retryable = 0;
    if (ws->fail_curl && ws->state != WS_OPEN && ws->state != WS_CLOSED) {
        http_req_push_error(L, &ws->req, ws->fail_curl, NULL);
        lua_getfield(L, -1, "retryable");
        retryable = lua_toboolean(L, -1);
        lua_pop(L, 1);
    } else {
        errors_push(L, ws->fail_code ? ws->fail_code : "closed", "websocket %s: %s",
                    url ? url : "?", ws->fail_code ? ws->fail_msg : "the connection is closed");
        retryable = ws->fail_code && strcmp(ws->fail_code, "timeout") == 0;
    }
    errors_set(L, -1, "url", url);
    errors_set(L, -1, "method", "GET");
    if (ws->status && ws->status != 101) {
        retryable =
            ws->status == 429 || ws->status == 502 || ws->status == 503 || ws->status == 504;
        lua_pushinteger(L, ws->status);
        lua_setfield(L, -2, "status");
        /* the response headers, as http.request gives them */
        ws->req.head.len = 0;
        http_buf_add(&ws->req.head, ws->hs.p, ws->head_len);
        http_req_push_headers(L, &ws->req);
        lua_setfield(L, -2, "headers");
        size_t blen = http_ws_refusal_body(ws);
        lua_pushlstring(L, ws->hs.p + ws->head_len, blen);
        lua_setfield(L, -2, "body");
    }
    lua_pushboolean(L, retryable);
    lua_setfield(L, -2, "retryable");
    lua_remove(L, -2); /* the url */
}

/* [-0, +0, v] Raises ws's failure (freeing the connection during the handshake). */
static int raise_failure(lua_State *L, struct ws *ws, int ui)
{
    push_failure(L, ws, ui);
    if (ws->state != WS_OPEN) http_ws_free(ws);
    return lua_error(L);
}

/* ---- opening ---- */

static int open_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    int ui = (int)ctx;
    struct ws *ws = lua_touserdata(L, ui);
    http_ws_resumed(ws, &ws->rx);
    if (ws->rx.w.reason) return task_raise_cancelled(L, &ws->rx.w); /* freed by on_cancel */
    short events;
    int r = http_ws_handshake(ws, &events);
    if (r == 0) return http_ws_wait(L, ws, &ws->rx, events, ctx, open_k);
    if (r < 0) return raise_failure(L, ws, ui);

    loop_timer_stop(ws->loop, &ws->deadline);
    if (http_ws_start_frames(ws) != 0) {
        http_ws_free(ws);
        return luaL_error(L, "http.websocket: out of memory");
    }
    size_t len;
    int n;
    const char *proto = http_ws_find_header(ws, "sec-websocket-protocol", &len, &n);
    if (proto)
        lua_pushlstring(L, proto, len);
    else
        lua_pushnil(L);
    lua_setiuservalue(L, ui, UV_PROTOCOL);
    lua_pushvalue(L, ui);
    return 1;
}

/* Reads an optional positive number of seconds from the options table. */
static double opt_seconds(lua_State *L, const char *field, double dflt)
{
    double v = dflt;
    int type = lua_getfield(L, 1, field);
    if (type == LUA_TNUMBER)
        v = lua_tonumber(L, -1);
    else if (type != LUA_TNIL)
        luaL_error(L, "http.websocket: field '%s' must be a number of seconds", field);
    if (!(v > 0) || v > 1e7) luaL_error(L, "http.websocket: field '%s' must be > 0 seconds", field);
    lua_pop(L, 1);
    return v;
}

/* opts.protocols -> "a, b" in ws->protocols (NULL when none). */
static void read_protocols(lua_State *L, struct ws *ws)
{
    int type = lua_getfield(L, 1, "protocols");
    if (type == LUA_TTABLE) {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        lua_Integer n = luaL_len(L, -2);
        for (lua_Integer i = 1; i <= n; i++) {
            size_t len = 0;
            const char *s = lua_geti(L, -2, i) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
            if (!s || !is_token(s, len))
                luaL_error(L,
                           "http.websocket: protocols[%d] must be a token such as "
                           "\"v5.channel.k8s.io\"",
                           (int)i);
            lua_pop(L, 1);
            if (i > 1) luaL_addstring(&b, ", ");
            luaL_addlstring(&b, s, len);
        }
        luaL_pushresult(&b);
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        if (len && !(ws->protocols = strdup(s))) luaL_error(L, "http.websocket: out of memory");
        lua_pop(L, 1);
    } else if (type != LUA_TNIL) {
        luaL_error(L, "http.websocket: field 'protocols' must be a list of strings");
    }
    lua_pop(L, 1);
}

static void push_ws_mt(lua_State *L);

/* http.websocket{url, protocols, headers, timeout, connect_timeout, max_message,
 * ping_interval, ca_file, ca_data, cert_data, key_data, insecure, resolve, proxy} -> connection */
int http_websocket(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    struct ws *ws = lua_newuserdatauv(L, sizeof *ws, UV_COUNT); /* index 2 */
    memset(ws, 0, sizeof *ws);
    push_ws_mt(L);
    lua_setmetatable(L, 2);
    http_ws_io_init(ws, host_loop(host_get(L)));

    if (lua_getfield(L, 1, "url") != LUA_TSTRING)
        return luaL_error(L, "http.websocket: field 'url' must be a string");
    const char *url = lua_tostring(L, -1);
    lua_setiuservalue(L, 2, UV_URL);
    read_protocols(L, ws);
    ws->max_message = DEFAULT_MAX_MESSAGE;
    if (lua_getfield(L, 1, "max_message") != LUA_TNIL) {
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1)
            return luaL_error(L, "http.websocket: field 'max_message' must be a byte count > 0");
        ws->max_message = lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
    double timeout = opt_seconds(L, "timeout", DEFAULT_TIMEOUT);
    ws->ping_interval = DEFAULT_PING_INTERVAL;
    if (lua_getfield(L, 1, "ping_interval") != LUA_TNIL) {
        if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1))
            ws->ping_interval = 0;
        else if (lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) >= 0)
            ws->ping_interval = lua_tonumber(L, -1);
        else
            return luaL_error(
                L, "http.websocket: field 'ping_interval' must be seconds >= 0 or false");
    }
    lua_pop(L, 1);

    http_ws_connect(L, ws, url, timeout); /* the upgrade request, sent as curl connects */
    return open_k(L, LUA_OK, 2);
}

/* ---- the connection's methods ---- */

static struct ws *check_ws(lua_State *L)
{
    return luaL_checkudata(L, 1, WS_MT);
}

/* The one finalizer: frees everything, no I/O of its own; wakes a task that
 * still waits on the connection (it then raises "closed"). Idempotent. See
 * websocket_internal.h. */
void http_ws_free(struct ws *ws)
{
    if (ws->state == WS_CLOSED) return;
    ws->state = WS_CLOSED;
    http_ws_wake(&ws->rx);
    http_ws_wake(&ws->tx);
    loop_unwatch_fd(ws->loop, &ws->fd);
    ws->fd.fd = -1;
    loop_timer_stop(ws->loop, &ws->deadline);
    loop_timer_stop(ws->loop, &ws->ping_timer);
    if (ws->ctx) wslay_event_context_free(ws->ctx);
    ws->ctx = NULL;
    if (ws->multi) {
        if (ws->added)
            curl_multi_remove_handle(ws->multi, ws->req.easy); /* closes the connection */
        curl_multi_cleanup(ws->multi);
        ws->multi = NULL;
        ws->added = 0;
    }
    loop_timer_stop(ws->loop, &ws->curl_timer);
    while (ws->socks) {
        struct ws_sock *s = ws->socks;
        ws->socks = s->next;
        loop_unwatch_fd(ws->loop, &s->fd);
        free(s);
    }
    if (ws->curl_loaded) http_req_free(&ws->req);
    while (ws->rxq) {
        struct ws_msg *m = ws->rxq;
        ws->rxq = m->next;
        free(m->data);
        free(m);
    }
    ws->rxq_tail = NULL;
    free(ws->protocols);
    ws->protocols = NULL;
    http_ws_bytes_free(&ws->hs);
    http_ws_bytes_free(&ws->out);
    http_ws_bytes_free(&ws->msg);
}

/* Once, without waiting: sends a close frame with code if the connection is
 * open and has not sent one. */
static void try_close_frame(struct ws *ws, int code)
{
    if (ws->state != WS_OPEN || !ws->ctx || ws->eof || ws->fail_curl) return;
    wslay_event_queue_close(ws->ctx, (uint16_t)code, NULL, 0); /* unless one is queued already */
    http_ws_pump_send(ws);
}

static int ws_gc(lua_State *L)
{
    http_ws_free(check_ws(L));
    return 0;
}

/* __close: as ws:close() */
static int ws_close_mm(lua_State *L)
{
    struct ws *ws = check_ws(L);
    try_close_frame(ws, 1000);
    http_ws_free(ws);
    return 0;
}

/* ws:close([code]): sends a close frame if it can at once, then frees the
 * connection. Idempotent. */
static int ws_close(lua_State *L)
{
    struct ws *ws = check_ws(L);
    lua_Integer code = luaL_optinteger(L, 2, 1000);
    luaL_argcheck(L,
                  (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
                      (code >= 3000 && code <= 4999),
                  2, "not a close code a client may send");
    try_close_frame(ws, (int)code);
    http_ws_free(ws);
    return 0;
}

/* [-0, +3, -] nil, close code, reason: the peer closed. */
static int push_closed(lua_State *L, struct ws *ws)
{
    lua_pushnil(L);
    lua_pushinteger(L, ws->close_code ? ws->close_code : WSLAY_CODE_NO_STATUS_RCVD);
    lua_pushlstring(L, ws->close_reason, ws->close_reason_len);
    return 3;
}

static int receive_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    struct ws *ws = lua_touserdata(L, 1);
    http_ws_resumed(ws, &ws->rx);
    loop_timer_stop(ws->loop, &ws->ping_timer); /* armed again only to wait */
    if (ws->rx.w.reason) return task_raise_cancelled(L, &ws->rx.w);
    for (;;) {
        if (ws->ping_due && ws->state == WS_OPEN) {
            ws->ping_due = 0;
            struct wslay_event_msg ping = {WSLAY_PING, NULL, 0};
            wslay_event_queue_msg(ws->ctx, &ping); /* refused once closing: fine */
        }
        if (ws->rxq) {
            struct ws_msg *m = ws->rxq;
            if (!(ws->rxq = m->next)) ws->rxq_tail = NULL;
            lua_pushlstring(L, m->data ? m->data : "", m->len);
            lua_pushstring(L, m->text ? "text" : "binary");
            free(m->data);
            free(m);
            return 2;
        }
        if (ws->state != WS_OPEN) return raise_failure(L, ws, 1);
        if (wslay_event_get_close_received(ws->ctx)) {
            http_ws_pump_send(ws); /* the close reply, if it is still queued */
            return push_closed(L, ws);
        }
        if (ws->fail_code && strcmp(ws->fail_code, "connection") == 0) {
            lua_pushnil(L); /* lost without a close frame: code 1006 (RFC 6455 7.1.5) */
            lua_pushinteger(L, 1006);
            lua_pushstring(L, ws->fail_msg);
            return 3;
        }
        if (ws->fail_code) return raise_failure(L, ws, 1);
        http_ws_pump_recv(ws);
        if (ws->rxq || ws->fail_code || wslay_event_get_close_received(ws->ctx)) continue;
        short events = http_ws_want_write(ws) ? POLLOUT : 0;
        if (!events || wslay_event_get_queued_msg_count(ws->ctx) <= WS_MAX_QUEUED_FRAMES)
            events |= POLLIN;
        if (ws->ping_interval > 0)
            loop_timer_start(ws->loop, &ws->ping_timer, loop_now() + ws->ping_interval);
        return http_ws_wait(L, ws, &ws->rx, events, ctx, receive_k);
    }
}

/* ws:receive() -> data, "text"|"binary"; or nil, close code, reason once the
 * peer has closed (1006 and what happened when the connection was lost
 * without a close frame). Suspends the task until a message is complete. */
static int ws_receive(lua_State *L)
{
    struct ws *ws = check_ws(L);
    lua_settop(L, 1);
    if (ws->rx.waiting) return luaL_error(L, "websocket: another task is receiving");
    ws->rx.w.reason = NULL;
    return receive_k(L, LUA_OK, 0);
}

/* ctx 0: the message (stack index 2) still waits to be queued; 1: queued. */
static int send_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    struct ws *ws = lua_touserdata(L, 1);
    http_ws_resumed(ws, &ws->tx);
    if (ws->tx.w.reason) return task_raise_cancelled(L, &ws->tx.w);
    for (;;) {
        if (ws->state != WS_OPEN || ws->fail_code) return raise_failure(L, ws, 1);
        if (!wslay_event_get_write_enabled(ws->ctx) || wslay_event_get_close_received(ws->ctx)) {
            if (ctx == 0 || wslay_event_get_queued_msg_count(ws->ctx) > 0) {
                errors_push(L, "closed",
                            "websocket: the connection is closing; the message was not sent");
                return lua_error(L);
            }
            return 0;
        }
        if (ctx == 0) {
            size_t len;
            const char *data = lua_tolstring(L, 2, &len);
            size_t queued = wslay_event_get_queued_msg_length(ws->ctx);
            if (queued == 0 || queued + len <= (size_t)ws->max_message) {
                struct wslay_event_msg m = {lua_toboolean(L, 3) ? WSLAY_TEXT_FRAME
                                                                : WSLAY_BINARY_FRAME,
                                            (const uint8_t *)data, len};
                if (wslay_event_queue_msg(ws->ctx, &m) != 0)
                    return luaL_error(L, "websocket: cannot queue the message");
                ctx = 1;
            }
        }
        if (http_ws_pump_send(ws) < 0) continue;
        if (!http_ws_want_write(ws)) {
            if (ctx == 1) return 0;
            continue; /* the queue drained: now the message fits */
        }
        return http_ws_wait(L, ws, &ws->tx, POLLOUT, ctx, send_k);
    }
}

/* ws:send(data [, "binary"|"text"]): queues one message (binary unless told)
 * and suspends the task until it is written to the socket. */
static int ws_send(lua_State *L)
{
    static const char *const kinds[] = {"binary", "text", NULL};
    struct ws *ws = check_ws(L);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    int text = luaL_checkoption(L, 3, "binary", kinds);
    if (text) luaL_argcheck(L, is_utf8((const unsigned char *)data, len), 2, "text must be UTF-8");
    if (ws->tx.waiting) return luaL_error(L, "websocket: another task is sending");
    if (ws->state == WS_OPEN && (lua_Integer)len > ws->max_message) {
        errors_push(L, "too_large", "websocket: a %I-byte message passes max_message (%I bytes)",
                    (lua_Integer)len, ws->max_message);
        return lua_error(L);
    }
    lua_settop(L, 2);
    lua_pushboolean(L, text); /* index 3 */
    ws->tx.w.reason = NULL;
    return send_k(L, LUA_OK, 0);
}

static int ws_tostring(lua_State *L)
{
    struct ws *ws = check_ws(L);
    lua_getiuservalue(L, 1, UV_URL);
    lua_pushfstring(L, "websocket %s (%s)", lua_tostring(L, -1),
                    ws->state == WS_OPEN ? "open" : "closed");
    return 1;
}

/* __index: the methods, then the fields protocol and url. */
static int ws_index(lua_State *L)
{
    check_ws(L);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL || lua_type(L, 2) != LUA_TSTRING) return 1;
    const char *key = lua_tostring(L, 2);
    if (strcmp(key, "protocol") == 0) {
        lua_getiuservalue(L, 1, UV_PROTOCOL);
        return 1;
    }
    if (strcmp(key, "url") == 0) {
        lua_getiuservalue(L, 1, UV_URL);
        return 1;
    }
    return 0;
}

/* [-0, +1, m] The connection metatable, made on first use. */
static void push_ws_mt(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"close", ws_close},
        {"receive", ws_receive},
        {"send", ws_send},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, WS_MT)) {
        luaL_newlib(L, methods);
        lua_pushcclosure(L, ws_index, 1);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, ws_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, ws_close_mm);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, ws_tostring);
        lua_setfield(L, -2, "__tostring");
    }
}
