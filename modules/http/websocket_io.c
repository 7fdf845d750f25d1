/* websocket_io.c: a WebSocket connection's bytes and frames — the tasks'
 * waits on its socket (through the loop), curl_easy_send/recv on curl's
 * connect-only connection, and wslay's event callbacks that turn those bytes
 * into frames and messages (see websocket_internal.h).
 *
 * Once connected, the socket is watched only while a task waits on it, so an
 * idle connection never keeps the loop busy.
 *
 * Invariants: nothing here resumes Lua — readiness and the keep-alive ping
 * timer only call task_wake; the calling task does all frame I/O
 * (http_ws_pump_send/recv) in its continuations. Received messages are
 * reassembled in one buffer capped at max_message; reading stops while a
 * complete message waits to be taken or while too many control frames
 * (pongs) wait to be written. Writes go through one stable buffer, so a write
 * that would block is retried with the same bytes at the same address, as
 * OpenSSL requires. May call: curl, wslay, OpenSSL (frame masks), the loop,
 * task_await/task_wake and http_ws_free (a cancelled handshake). */
#include "websocket_internal.h"

#include <openssl/rand.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#define OUT_CHUNK  (16 << 10) /* bytes handed to curl per write: one TLS record */
#define READ_CHUNK (16 << 10)

/* ---- buffers and failures ---- */

/* Makes room for n more bytes; 0 on success, -1 out of memory. */
int http_ws_bytes_reserve(struct ws_bytes *b, size_t n)
{
    if (n <= b->cap - b->len) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

void http_ws_bytes_free(struct ws_bytes *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* Records the connection's failure (the first one wins). */
void http_ws_fail(struct ws *ws, const char *code, const char *fmt, ...)
{
    if (ws->fail_code) return;
    ws->fail_code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ws->fail_msg, sizeof ws->fail_msg, fmt, ap);
    va_end(ap);
}

/* ---- waiting ---- */

/* Watches the socket for what the waiting tasks want, or stops watching it. */
static void update_watch(struct ws *ws)
{
    short events =
        (short)((ws->rx.waiting ? ws->rx.events : 0) | (ws->tx.waiting ? ws->tx.events : 0));
    if (events && ws->fd.fd >= 0) {
        ws->fd.events = events;
        loop_watch_fd(ws->loop, &ws->fd);
    } else {
        loop_unwatch_fd(ws->loop, &ws->fd);
    }
}

/* Wakes wt's task if it waits (from the loop: never resumes Lua). */
void http_ws_wake(struct ws_waiter *wt)
{
    if (!wt->waiting) return;
    wt->waiting = 0;
    wt->events = 0;
    task_wake(&wt->w);
}

static void on_ready(struct loop_fd *fd, short revents)
{
    struct ws *ws = (struct ws *)((char *)fd - offsetof(struct ws, fd));
    if (ws->rx.waiting && (revents & ws->rx.events)) http_ws_wake(&ws->rx);
    if (ws->tx.waiting && (revents & ws->tx.events)) http_ws_wake(&ws->tx);
    update_watch(ws);
}

/* task_wait.cancel: the task stops waiting; the connection stays usable, except
 * during the handshake, which is abandoned (everything is freed). */
static void on_cancel(struct task_wait *w)
{
    struct ws_waiter *wt = (struct ws_waiter *)w;
    struct ws *ws = wt->ws;
    wt->waiting = 0;
    wt->events = 0;
    if (wt == &ws->rx) loop_timer_stop(ws->loop, &ws->ping_timer);
    if (ws->state < WS_OPEN)
        http_ws_free(ws);
    else
        update_watch(ws);
}

/* Suspends the task until wt is woken (the socket is ready for events, or,
 * while connecting, curl is done or the deadline passed); continues in k. */
int http_ws_wait(lua_State *L, struct ws *ws, struct ws_waiter *wt, short events, lua_KContext ctx,
                 lua_KFunction k)
{
    wt->waiting = 1;
    wt->events = events;
    update_watch(ws);
    return task_await(L, &wt->w, ctx, k);
}

/* A continuation's first step: wt is no longer waiting, however it was woken. */
void http_ws_resumed(struct ws *ws, struct ws_waiter *wt)
{
    wt->waiting = 0;
    wt->events = 0;
    update_watch(ws);
}

/* A receive has waited ping_interval: it sends a ping (keeping proxies and
 * load balancers from dropping a quiet connection) and waits on. */
static void on_ping_timer(struct loop_timer *t)
{
    struct ws *ws = (struct ws *)((char *)t - offsetof(struct ws, ping_timer));
    ws->ping_due = 1;
    http_ws_wake(&ws->rx);
}

/* See websocket_internal.h. */
void http_ws_io_init(struct ws *ws, struct loop *loop)
{
    ws->loop = loop;
    ws->rx.ws = ws->tx.ws = ws;
    ws->rx.w.cancel = ws->tx.w.cancel = on_cancel;
    ws->fd.fd = -1;
    ws->fd.ready = on_ready;
    ws->ping_timer.fire = on_ping_timer;
}

/* ---- socket I/O through curl ---- */

/* Writes what the out buffer holds. 1 when empty, 0 when the socket would
 * block (retry the same bytes later), -1 on failure (recorded). */
int http_ws_flush_out(struct ws *ws)
{
    while (ws->out_off < ws->out.len) {
        size_t n = 0;
        CURLcode rc =
            curl_easy_send(ws->req.easy, ws->out.p + ws->out_off, ws->out.len - ws->out_off, &n);
        if (rc == CURLE_AGAIN) {
            ws->out_frozen = 1;
            return 0;
        }
        if (rc != CURLE_OK) {
            ws->fail_curl = rc;
            http_ws_fail(ws, "connection", "send failed: %s", curl_easy_strerror(rc));
            return -1;
        }
        ws->out_frozen = 0;
        ws->out_off += n;
    }
    ws->out_off = ws->out.len = 0;
    ws->out_frozen = 0;
    return 1;
}

/* Reads what the socket has into hs (up to cap bytes in all). 1 when bytes
 * came, 0 when it would block, -1 on failure (recorded); sets eof at the end
 * of the stream. */
int http_ws_read_some(struct ws *ws, size_t cap)
{
    if (ws->hs.len >= cap) return 0;
    size_t want = cap - ws->hs.len < READ_CHUNK ? cap - ws->hs.len : READ_CHUNK;
    if (http_ws_bytes_reserve(&ws->hs, want + 1) != 0) {
        http_ws_fail(ws, "connection", "out of memory");
        return -1;
    }
    size_t n = 0;
    CURLcode rc = curl_easy_recv(ws->req.easy, ws->hs.p + ws->hs.len, want, &n);
    if (rc == CURLE_AGAIN) return 0;
    if (rc != CURLE_OK) {
        ws->fail_curl = rc;
        http_ws_fail(ws, "connection", "receive failed: %s", curl_easy_strerror(rc));
        return -1;
    }
    if (n == 0) {
        ws->eof = 1;
        return 0;
    }
    ws->hs.len += n;
    ws->hs.p[ws->hs.len] = '\0';
    return 1;
}

/* ---- wslay's callbacks ---- */

static ssize_t on_wslay_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
                             int flags, void *arg)
{
    (void)flags;
    struct ws *ws = arg;
    if (ws->out_frozen || ws->out.len == OUT_CHUNK) {
        if (http_ws_flush_out(ws) < 0) {
            wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
            return -1;
        }
        if (ws->out.len) {
            wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
            return -1;
        }
    }
    if (ws->out_off) { /* never while frozen: the retry needs the same address */
        memmove(ws->out.p, ws->out.p + ws->out_off, ws->out.len - ws->out_off);
        ws->out.len -= ws->out_off;
        ws->out_off = 0;
    }
    if (http_ws_bytes_reserve(&ws->out, OUT_CHUNK - ws->out.len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    size_t n = OUT_CHUNK - ws->out.len < len ? OUT_CHUNK - ws->out.len : len;
    memcpy(ws->out.p + ws->out.len, data, n);
    ws->out.len += n;
    return (ssize_t)n;
}

static ssize_t on_wslay_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                             void *arg)
{
    (void)flags;
    struct ws *ws = arg;
    /* back-pressure: a message waits to be taken, or pongs wait to be written */
    if (ws->rxq || ws->fail_code || wslay_event_get_queued_msg_count(ctx) > WS_MAX_QUEUED_FRAMES) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t pre = ws->hs.len - ws->head_len - ws->pre_off; /* frames read with the response */
    if (pre) {
        size_t n = pre < len ? pre : len;
        memcpy(buf, ws->hs.p + ws->head_len + ws->pre_off, n);
        ws->pre_off += n;
        return (ssize_t)n;
    }
    if (ws->hs.p) { /* the handshake is over: its buffer is not needed any more */
        http_ws_bytes_free(&ws->hs);
        ws->head_len = ws->pre_off = 0;
    }
    size_t n = 0;
    CURLcode rc = curl_easy_recv(ws->req.easy, buf, len, &n);
    if (rc == CURLE_AGAIN) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (rc != CURLE_OK) {
        ws->fail_curl = rc;
        http_ws_fail(ws, "connection", "receive failed: %s", curl_easy_strerror(rc));
    } else if (n == 0) {
        ws->eof = 1;
        http_ws_fail(ws, "connection", "the server closed the connection without a close frame");
    } else {
        return (ssize_t)n;
    }
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

static int on_wslay_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *arg)
{
    (void)ctx;
    (void)arg;
    return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

/* A frame starts: data frames are reassembled into ws->msg, within max_message. */
static void on_frame_start(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *arg, void *user)
{
    struct ws *ws = user;
    ws->in_ctrl = (arg->opcode & 0x8) != 0;
    if (ws->in_ctrl || ws->fail_code) return;
    if (arg->opcode != WSLAY_CONTINUATION_FRAME) {
        ws->msg.len = 0;
        ws->msg_text = arg->opcode == WSLAY_TEXT_FRAME;
    }
    size_t max = (size_t)ws->max_message;
    if (arg->payload_length > max - ws->msg.len) {
        http_ws_fail(ws, "too_large", "a message passed max_message (%zu bytes)", max);
        wslay_event_queue_close(ctx, WSLAY_CODE_MESSAGE_TOO_BIG, NULL, 0);
        return;
    }
    size_t need = ws->msg.len + (size_t)arg->payload_length;
    if (need > ws->msg.cap) { /* exact for one frame; doubling (within max) for more */
        size_t cap = ws->msg.cap * 2 > need ? ws->msg.cap * 2 : need;
        if (cap > max) cap = max;
        char *p = realloc(ws->msg.p, cap ? cap : 1);
        if (!p) {
            http_ws_fail(ws, "too_large", "out of memory for a %zu-byte message", need);
            wslay_event_queue_close(ctx, WSLAY_CODE_MESSAGE_TOO_BIG, NULL, 0);
            return;
        }
        ws->msg.p = p;
        ws->msg.cap = cap;
    }
}

static void on_frame_chunk(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_chunk_arg *arg, void *user)
{
    (void)ctx;
    struct ws *ws = user;
    if (ws->in_ctrl || ws->fail_code || !arg->data_length) return;
    memcpy(ws->msg.p + ws->msg.len, arg->data, arg->data_length); /* reserved at the start */
    ws->msg.len += arg->data_length;
}

static void on_message(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                       void *user)
{
    (void)ctx;
    struct ws *ws = user;
    if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        ws->close_code = arg->status_code ? arg->status_code : WSLAY_CODE_NO_STATUS_RCVD;
        size_t n = arg->msg_length > 2 ? arg->msg_length - 2 : 0;
        if (n > sizeof ws->close_reason) n = sizeof ws->close_reason;
        if (n) memcpy(ws->close_reason, arg->msg + 2, n);
        ws->close_reason_len = n;
        return;
    }
    if ((arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME) || ws->fail_code)
        return; /* pings are answered by wslay; pongs need nothing */
    struct ws_msg *m = malloc(sizeof *m);
    if (!m) {
        http_ws_fail(ws, "too_large", "out of memory for a message");
        return;
    }
    m->next = NULL;
    m->len = ws->msg.len;
    m->text = ws->msg_text;
    m->data = ws->msg.p; /* the message takes the buffer */
    memset(&ws->msg, 0, sizeof ws->msg);
    if (ws->rxq_tail)
        ws->rxq_tail->next = m;
    else
        ws->rxq = m;
    ws->rxq_tail = m;
}

/* See websocket_internal.h. */
int http_ws_start_frames(struct ws *ws)
{
    static const struct wslay_event_callbacks callbacks = {
        on_wslay_recv,  on_wslay_send, on_wslay_genmask, on_frame_start,
        on_frame_chunk, NULL,          on_message,
    };
    if (wslay_event_context_client_init(&ws->ctx, &callbacks, ws) != 0) return -1;
    wslay_event_config_set_no_buffering(ws->ctx, 1); /* data frames go to ws->msg directly */
    wslay_event_config_set_max_recv_msg_length(ws->ctx, UINT64_MAX); /* on_frame_start checks */
    return 0;
}

/* ---- frame I/O, from the tasks' continuations ---- */

int http_ws_want_write(struct ws *ws)
{
    return ws->out.len > 0 || (ws->ctx && wslay_event_want_write(ws->ctx));
}

/* Writes queued frames until done or the socket would block. -1 on failure. */
int http_ws_pump_send(struct ws *ws)
{
    for (;;) {
        int r = http_ws_flush_out(ws);
        if (r < 0) return -1;
        if (r == 0 || !ws->ctx || !wslay_event_want_write(ws->ctx)) return 0;
        if (wslay_event_send(ws->ctx) != 0) {
            http_ws_fail(ws, "connection", "cannot send a frame");
            return -1;
        }
        if (!ws->out.len) return 0; /* wslay had nothing it could hand over */
    }
}

/* Reads frames until a message is complete, the close frame came, or the
 * socket would block; writes the pongs and close replies that produces. */
void http_ws_pump_recv(struct ws *ws)
{
    if (http_ws_pump_send(ws) < 0 || !wslay_event_get_read_enabled(ws->ctx)) return;
    int r = wslay_event_recv(ws->ctx);
    if (r != 0) http_ws_fail(ws, "connection", "cannot read a frame (wslay error %d)", r);
    http_ws_pump_send(ws); /* pongs, and the close wslay queues for a broken frame */
    if (!wslay_event_get_read_enabled(ws->ctx) && !wslay_event_get_close_received(ws->ctx))
        http_ws_fail(ws, "protocol", "the server broke the WebSocket protocol (close code %d)",
                     (int)wslay_event_get_status_code_sent(ws->ctx));
}
