/* websocket.c: WebSocket client connections (RFC 6455) — http.websocket, the
 * transport of Kubernetes exec and attach (v5/v4.channel.k8s.io) and of any
 * other WebSocket API.
 *
 * The connection is curl's (CURLOPT_CONNECT_ONLY: DNS, proxy tunnel, TLS and
 * client certificates set up by request.c); the upgrade request and response
 * are written and read here; frames are wslay's, over curl_easy_send/recv.
 * Each connection has a private curl multi handle: a connect-only connection
 * lives in its multi handle's connection cache, where the loop's shared one
 * would close it when the handle leaves (loop.c removes finished transfers)
 * and prune or evict it while other transfers come and go. The private handle
 * is driven through the loop: its sockets are watched with loop_watch_fd, its
 * timer is a loop timer. Once connected, the socket is watched only while a
 * task waits on it, so an idle connection never keeps the loop busy.
 *
 * Invariants: nothing here resumes Lua — readiness, curl's completion, the
 * handshake deadline and the keep-alive ping timer only call task_wake; the
 * calling task does all frame I/O in its continuations. At most one task
 * receives and one sends at a time. Received messages are reassembled in one
 * buffer capped at max_message; reading stops while a complete message waits
 * to be taken or while too many control frames (pongs) wait to be written. A
 * send waits until its message is written to the socket. Writes go through
 * one stable buffer, so a write that would block is retried with the same
 * bytes at the same address, as OpenSSL requires.
 *
 * Owns: the easy handle (struct http_req), the private multi handle, the
 * wslay context and every buffer; all freed by ws_free, the one finalizer
 * (__gc, __close and :close()), which does no I/O of its own. :close() and
 * __close first try once, without waiting, to send a close frame. */
#include "websocket.h"

#include "curl.h"
#include "errors/errors.h"
#include "host.h"
#include "http_internal.h"
#include "loop.h"
#include "task/task.h"

#include <ctype.h>
#include <lauxlib.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <wslay/wslay.h>

#define WS_MT                 "ferry.http.WebSocket"
#define WS_GUID               "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define DEFAULT_MAX_MESSAGE   ((lua_Integer)64 << 20)
#define DEFAULT_TIMEOUT       60.0
#define DEFAULT_PING_INTERVAL 30.0       /* seconds a receive waits before it pings */
#define MAX_REQUEST           (64 << 10) /* the upgrade request, headers included */
#define MAX_HEAD              (64 << 10) /* the response's header block */
#define MAX_ERROR_BODY        (1 << 20)  /* the body kept from a refusal */
#define OUT_CHUNK             (16 << 10) /* bytes handed to curl per write: one TLS record */
#define MAX_QUEUED_FRAMES     1024       /* pongs and the like waiting to be written */
#define READ_CHUNK            (16 << 10)

/* Uservalues of the connection userdata. */
enum { UV_URL = 1, UV_PROTOCOL, UV_COUNT = UV_PROTOCOL };

enum ws_state {
    WS_NEW,        /* being set up */
    WS_CONNECTING, /* curl connects (TCP, proxy tunnel, TLS) */
    WS_REQUEST,    /* writing the upgrade request */
    WS_HEAD,       /* reading the response's header block */
    WS_BODY,       /* reading the body of a refusal */
    WS_OPEN,       /* frames flow */
    WS_FAILED,     /* the handshake failed; waiting to be raised and freed */
    WS_CLOSED,     /* freed */
};

struct ws;

/* A task waiting on the connection: the opener or receiver (rx), the sender (tx). */
struct ws_waiter {
    struct task_wait w; /* first */
    struct ws *ws;
    short events; /* POLLIN/POLLOUT it waits for on the socket */
    int waiting;
};

/* One socket curl wants watched while it connects. */
struct ws_sock {
    struct loop_fd fd; /* first */
    struct ws *ws;
    struct ws_sock *next;
};

/* A received message waiting for ws:receive. */
struct ws_msg {
    struct ws_msg *next;
    char *data; /* malloc'd, owned */
    size_t len;
    int text;
};

/* A plain growable byte buffer (capped by its users). */
struct bytes {
    char *p;
    size_t len, cap;
};

struct ws {
    struct ws_waiter rx, tx;
    struct loop_fd fd;            /* the connection's socket once connected (fd -1 before) */
    struct loop_timer curl_timer; /* curl's timeout while connecting */
    struct loop_timer deadline;   /* the whole handshake's */
    struct loop_timer ping_timer; /* keep-alive, armed while a task waits in receive */
    struct loop *loop;
    struct http_req req; /* the easy handle, its lists, errbuf */
    CURLM *multi;        /* private; holds the connect-only connection */
    struct ws_sock *socks;
    wslay_event_context_ptr ctx;
    enum ws_state state;
    int curl_loaded, added, connected, timed_out;
    CURLcode result; /* of the connect */

    /* the handshake */
    char key[25];    /* Sec-WebSocket-Key */
    char *protocols; /* offered, "a, b" (malloc'd), or NULL */
    struct bytes hs; /* the response as read: head, then body or the first frames */
    size_t head_len; /* of the header block in hs, once complete */
    size_t pre_off;  /* bytes of hs after the head already given to wslay */
    int status;      /* the response's status code */
    int eof;         /* the peer closed the TCP connection */

    /* writing: one stable buffer (see the top of the file) */
    struct bytes out;
    size_t out_off;
    int out_frozen; /* the last write would block: retry exactly it */

    /* reading */
    lua_Integer max_message;
    double ping_interval; /* seconds; 0: no keep-alive pings */
    int ping_due;
    struct bytes msg; /* the message being reassembled */
    int msg_text, in_ctrl;
    struct ws_msg *rxq, *rxq_tail;
    uint16_t close_code;
    char close_reason[124];
    size_t close_reason_len;

    /* a failure: raised by the call that finds it, and by every later one */
    const char *fail_code; /* NULL while healthy */
    CURLcode fail_curl;    /* for failures curl reports */
    char fail_msg[256];
};

static void ws_free(struct ws *ws);

/* ---- small helpers ---- */

/* Makes room for n more bytes; 0 on success, -1 out of memory. */
static int bytes_reserve(struct bytes *b, size_t n)
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

static void bytes_free(struct bytes *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

static void fail(struct ws *ws, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records the connection's failure (the first one wins). */
static void fail(struct ws *ws, const char *code, const char *fmt, ...)
{
    if (ws->fail_code) return;
    ws->fail_code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ws->fail_msg, sizeof ws->fail_msg, fmt, ap);
    va_end(ap);
}

/* base64 of n bytes into out (4 * ceil(n / 3) + 1 bytes, NUL-terminated). */
static void base64(const unsigned char *p, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, p, (int)n);
}

/* The Sec-WebSocket-Accept value for key (29 bytes with the NUL). */
static int accept_for(const char *key, char out[29])
{
    char in[24 + sizeof WS_GUID];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    snprintf(in, sizeof in, "%s%s", key, WS_GUID);
    if (!EVP_Digest(in, strlen(in), md, &mdlen, EVP_sha1(), NULL) || mdlen != 20) return -1;
    base64(md, 20, out);
    return 0;
}

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
static void wake(struct ws_waiter *wt)
{
    if (!wt->waiting) return;
    wt->waiting = 0;
    wt->events = 0;
    task_wake(&wt->w);
}

static void on_ready(struct loop_fd *fd, short revents)
{
    struct ws *ws = (struct ws *)((char *)fd - offsetof(struct ws, fd));
    if (ws->rx.waiting && (revents & ws->rx.events)) wake(&ws->rx);
    if (ws->tx.waiting && (revents & ws->tx.events)) wake(&ws->tx);
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
        ws_free(ws);
    else
        update_watch(ws);
}

/* Suspends the task until wt is woken (the socket is ready for events, or,
 * while connecting, curl is done or the deadline passed); continues in k. */
static int wait_on(lua_State *L, struct ws *ws, struct ws_waiter *wt, short events,
                   lua_KContext ctx, lua_KFunction k)
{
    wt->waiting = 1;
    wt->events = events;
    update_watch(ws);
    return task_await(L, &wt->w, ctx, k);
}

/* A continuation's first step: wt is no longer waiting, however it was woken. */
static void resumed(struct ws *ws, struct ws_waiter *wt)
{
    wt->waiting = 0;
    wt->events = 0;
    update_watch(ws);
}

/* ---- connecting: the private multi handle on the loop ---- */

static void check_connected(struct ws *ws)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(ws->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        ws->connected = 1;
        ws->result = m->data.result;
        loop_timer_stop(ws->loop, &ws->curl_timer);
        wake(&ws->rx);
    }
}

static void on_curl_ready(struct loop_fd *fd, short revents)
{
    struct ws *ws = ((struct ws_sock *)fd)->ws; /* fd may be unwatched by the call below */
    int mask =
        (revents & POLLIN ? CURL_CSELECT_IN : 0) | (revents & POLLOUT ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(ws->multi, fd->fd, mask, &running);
    check_connected(ws);
}

static void on_curl_timeout(struct loop_timer *t)
{
    struct ws *ws = (struct ws *)((char *)t - offsetof(struct ws, curl_timer));
    int running;
    curl_multi_socket_action(ws->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_connected(ws);
}

/* CURLMOPT_SOCKETFUNCTION: watch (or stop watching) one of curl's sockets. */
static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *arg, void *sockp)
{
    (void)easy;
    (void)sockp;
    struct ws *ws = arg;
    struct ws_sock *cs = NULL, *spare = NULL;
    for (struct ws_sock *p = ws->socks; p; p = p->next) {
        if (p->fd.fd == s) cs = p;
        if (p->fd.fd < 0) spare = p;
    }
    if (what == CURL_POLL_REMOVE) {
        if (cs) {
            loop_unwatch_fd(ws->loop, &cs->fd);
            cs->fd.fd = -1;
        }
        return 0;
    }
    if (ws->connected) return 0; /* the connection is ours now */
    if (!cs && !(cs = spare)) {
        if (!(cs = calloc(1, sizeof *cs))) return -1;
        cs->ws = ws;
        cs->fd.ready = on_curl_ready;
        cs->next = ws->socks;
        ws->socks = cs;
    }
    cs->fd.fd = s;
    cs->fd.events =
        (short)((what & CURL_POLL_IN ? POLLIN : 0) | (what & CURL_POLL_OUT ? POLLOUT : 0));
    loop_watch_fd(ws->loop, &cs->fd);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: curl wants on_curl_timeout after ms (-1: never). */
static int on_curl_timer(CURLM *multi, long ms, void *arg)
{
    (void)multi;
    struct ws *ws = arg;
    if (ms < 0 || ws->connected)
        loop_timer_stop(ws->loop, &ws->curl_timer);
    else
        loop_timer_start(ws->loop, &ws->curl_timer, loop_now() + (double)ms / 1000.0);
    return 0;
}

/* A receive has waited ping_interval: it sends a ping (keeping proxies and
 * load balancers from dropping a quiet connection) and waits on. */
static void on_ping_timer(struct loop_timer *t)
{
    struct ws *ws = (struct ws *)((char *)t - offsetof(struct ws, ping_timer));
    ws->ping_due = 1;
    wake(&ws->rx);
}

static void on_deadline(struct loop_timer *t)
{
    struct ws *ws = (struct ws *)((char *)t - offsetof(struct ws, deadline));
    ws->timed_out = 1;
    wake(&ws->rx);
}

/* ---- socket I/O through curl ---- */

/* Writes what the out buffer holds. 1 when empty, 0 when the socket would
 * block (retry the same bytes later), -1 on failure (recorded). */
static int flush_out(struct ws *ws)
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
            fail(ws, "connection", "send failed: %s", curl_easy_strerror(rc));
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
static int read_some(struct ws *ws, size_t cap)
{
    if (ws->hs.len >= cap) return 0;
    size_t want = cap - ws->hs.len < READ_CHUNK ? cap - ws->hs.len : READ_CHUNK;
    if (bytes_reserve(&ws->hs, want + 1) != 0) {
        fail(ws, "connection", "out of memory");
        return -1;
    }
    size_t n = 0;
    CURLcode rc = curl_easy_recv(ws->req.easy, ws->hs.p + ws->hs.len, want, &n);
    if (rc == CURLE_AGAIN) return 0;
    if (rc != CURLE_OK) {
        ws->fail_curl = rc;
        fail(ws, "connection", "receive failed: %s", curl_easy_strerror(rc));
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
        if (flush_out(ws) < 0) {
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
    if (bytes_reserve(&ws->out, OUT_CHUNK - ws->out.len) != 0) {
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
    if (ws->rxq || ws->fail_code || wslay_event_get_queued_msg_count(ctx) > MAX_QUEUED_FRAMES) {
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
        bytes_free(&ws->hs);
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
        fail(ws, "connection", "receive failed: %s", curl_easy_strerror(rc));
    } else if (n == 0) {
        ws->eof = 1;
        fail(ws, "connection", "the server closed the connection without a close frame");
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
        fail(ws, "too_large", "a message passed max_message (%zu bytes)", max);
        wslay_event_queue_close(ctx, WSLAY_CODE_MESSAGE_TOO_BIG, NULL, 0);
        return;
    }
    size_t need = ws->msg.len + (size_t)arg->payload_length;
    if (need > ws->msg.cap) { /* exact for one frame; doubling (within max) for more */
        size_t cap = ws->msg.cap * 2 > need ? ws->msg.cap * 2 : need;
        if (cap > max) cap = max;
        char *p = realloc(ws->msg.p, cap ? cap : 1);
        if (!p) {
            fail(ws, "too_large", "out of memory for a %zu-byte message", need);
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
        fail(ws, "too_large", "out of memory for a message");
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

/* ---- frame I/O, from the tasks' continuations ---- */

static int want_write(struct ws *ws)
{
    return ws->out.len > 0 || (ws->ctx && wslay_event_want_write(ws->ctx));
}

/* Writes queued frames until done or the socket would block. -1 on failure. */
static int pump_send(struct ws *ws)
{
    for (;;) {
        int r = flush_out(ws);
        if (r < 0) return -1;
        if (r == 0 || !ws->ctx || !wslay_event_want_write(ws->ctx)) return 0;
        if (wslay_event_send(ws->ctx) != 0) {
            fail(ws, "connection", "cannot send a frame");
            return -1;
        }
        if (!ws->out.len) return 0; /* wslay had nothing it could hand over */
    }
}

/* Reads frames until a message is complete, the close frame came, or the
 * socket would block; writes the pongs and close replies that produces. */
static void pump_recv(struct ws *ws)
{
    if (pump_send(ws) < 0 || !wslay_event_get_read_enabled(ws->ctx)) return;
    int r = wslay_event_recv(ws->ctx);
    if (r != 0) fail(ws, "connection", "cannot read a frame (wslay error %d)", r);
    pump_send(ws); /* pongs, and the close wslay queues for a broken frame */
    if (!wslay_event_get_read_enabled(ws->ctx) && !wslay_event_get_close_received(ws->ctx))
        fail(ws, "protocol", "the server broke the WebSocket protocol (close code %d)",
             (int)wslay_event_get_status_code_sent(ws->ctx));
}

/* ---- the handshake ---- */

/* The value of header name (lower case) in the head of hs, and how many times
 * it appears. The value is trimmed; *len is its length. */
static const char *find_header(struct ws *ws, const char *name, size_t *len, int *count)
{
    const char *p = ws->hs.p, *end = ws->hs.p + ws->head_len, *found = NULL;
    size_t nlen = strlen(name);
    *count = 0;
    p = memchr(p, '\n', (size_t)(end - p)); /* past the status line */
    while (p && ++p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) break;
        if ((size_t)(eol - p) > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0) {
            const char *v = p + nlen + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            if (!found) {
                found = v;
                *len = (size_t)(ve - v);
            }
            ++*count;
        }
        p = eol;
    }
    return found;
}

/* Whether the comma-separated list s[0..n) holds token (case-insensitive). */
static int list_has(const char *s, size_t n, const char *token)
{
    size_t tlen = strlen(token);
    const char *end = s + n;
    while (s < end) {
        while (s < end && (*s == ' ' || *s == '\t' || *s == ',')) s++;
        const char *e = s;
        while (e < end && *e != ',') e++;
        const char *te = e;
        while (te > s && (te[-1] == ' ' || te[-1] == '\t')) te--;
        if ((size_t)(te - s) == tlen && strncasecmp(s, token, tlen) == 0) return 1;
        s = e;
    }
    return 0;
}

/* Checks a 101 answer (RFC 6455 §4.1, the client's checks). 0 if good. */
static int verify_upgrade(struct ws *ws)
{
    size_t len;
    int n;
    const char *v = find_header(ws, "upgrade", &len, &n);
    if (!v || len != 9 || strncasecmp(v, "websocket", 9) != 0) {
        fail(ws, "handshake", "the 101 answer lacks Upgrade: websocket");
        return -1;
    }
    v = find_header(ws, "connection", &len, &n);
    if (!v || !list_has(v, len, "upgrade")) {
        fail(ws, "handshake", "the 101 answer lacks Connection: Upgrade");
        return -1;
    }
    char want[29];
    v = find_header(ws, "sec-websocket-accept", &len, &n);
    if (accept_for(ws->key, want) != 0 || !v || n != 1 || len != 28 || memcmp(v, want, 28) != 0) {
        fail(ws, "handshake", "the server's Sec-WebSocket-Accept does not match the key sent");
        return -1;
    }
    if (find_header(ws, "sec-websocket-extensions", &len, &n)) {
        fail(ws, "handshake", "the server chose an extension that was not offered");
        return -1;
    }
    v = find_header(ws, "sec-websocket-protocol", &len, &n);
    if (v) { /* none chosen is allowed; one chosen must match an offer exactly */
        int ok = 0;
        const char *s = ws->protocols, *end = s ? s + strlen(s) : NULL;
        while (n == 1 && s && s < end && !ok) {
            const char *e = strstr(s, ", ");
            if (!e) e = end;
            ok = (size_t)(e - s) == len && memcmp(s, v, len) == 0;
            s = e < end ? e + 2 : end;
        }
        if (!ok) {
            fail(ws, "handshake", "the server chose subprotocol '%.*s', which was not offered",
                 (int)(len > 100 ? 100 : len), v);
            return -1;
        }
    }
    return 0;
}

/* Where the header block in hs ends (past the blank line), or 0 if not yet. */
static size_t head_end(const struct bytes *b)
{
    for (size_t i = 0; i + 1 < b->len; i++) {
        if (b->p[i] != '\n') continue;
        if (b->p[i + 1] == '\n') return i + 2;
        if (i + 2 < b->len && b->p[i + 1] == '\r' && b->p[i + 2] == '\n') return i + 3;
    }
    return 0;
}

/* Decodes the chunked body at p[0..n) in place; returns its length. *done is
 * set when the last chunk was seen. */
static size_t dechunk(char *p, size_t n, int *done)
{
    size_t in = 0, out = 0;
    *done = 0;
    while (in < n) {
        char *eol = memchr(p + in, '\n', n - in);
        if (!eol) break;
        size_t size = (size_t)strtoul(p + in, NULL, 16);
        size_t data = (size_t)(eol - p) + 1;
        if (size == 0) {
            *done = 1;
            break;
        }
        size_t avail = n - data < size ? n - data : size;
        memmove(p + out, p + data, avail);
        out += avail;
        if (avail < size) break;
        in = data + size;
        if (in < n && p[in] == '\r') in++;
        if (in < n && p[in] == '\n') in++;
    }
    return out;
}

/* Whether the refusal's body (after the head) is complete. */
static int body_complete(struct ws *ws)
{
    size_t len;
    int n;
    if (ws->status < 200 || ws->status == 204 || ws->status == 304) return 1;
    const char *te = find_header(ws, "transfer-encoding", &len, &n);
    if (te && list_has(te, len, "chunked")) {
        size_t blen = ws->hs.len - ws->head_len;
        char *copy = malloc(blen + 1);
        if (!copy) return 1;
        memcpy(copy, ws->hs.p + ws->head_len, blen);
        int done;
        dechunk(copy, blen, &done);
        free(copy);
        return done;
    }
    const char *cl = find_header(ws, "content-length", &len, &n);
    if (cl) return ws->hs.len - ws->head_len >= (size_t)strtoull(cl, NULL, 10);
    return 0; /* until the server closes */
}

/* Advances the handshake as far as it goes without blocking. Returns 1 when
 * open, 0 to wait (for *events on the socket; 0 = for curl or the deadline),
 * -1 when it failed (recorded). */
static int handshake(struct ws *ws, short *events)
{
    *events = 0;
    for (;;) {
        if (ws->timed_out && !ws->fail_code) {
            fail(ws, "timeout", "no WebSocket connection within the timeout");
            ws->state = WS_FAILED;
        }
        if (ws->fail_code) ws->state = WS_FAILED;
        switch (ws->state) {
        case WS_CONNECTING: {
            if (!ws->connected) return 0;
            if (ws->result != CURLE_OK) {
                ws->fail_curl = ws->result;
                fail(ws, "connect", "%s", curl_easy_strerror(ws->result));
                continue;
            }
            curl_socket_t s = CURL_SOCKET_BAD;
            if (curl_easy_getinfo(ws->req.easy, CURLINFO_ACTIVESOCKET, &s) != CURLE_OK ||
                s == CURL_SOCKET_BAD) {
                fail(ws, "connection", "curl connected but gave no socket");
                continue;
            }
            ws->fd.fd = (int)s;
            ws->state = WS_REQUEST;
            break;
        }
        case WS_REQUEST: {
            int r = flush_out(ws);
            if (r < 0) continue;
            if (r == 0) {
                *events = POLLOUT;
                return 0;
            }
            ws->state = WS_HEAD;
            break;
        }
        case WS_HEAD: {
            int r = read_some(ws, MAX_HEAD);
            if (r < 0) continue;
            size_t end = head_end(&ws->hs);
            if (!end) {
                if (ws->eof)
                    fail(ws, "handshake", "the server closed the connection before answering");
                else if (ws->hs.len >= MAX_HEAD)
                    fail(ws, "too_large", "the response headers pass %d bytes", MAX_HEAD);
                else if (r == 0) {
                    *events = POLLIN;
                    return 0;
                }
                continue;
            }
            ws->head_len = end;
            int major, minor, status;
            if (sscanf(ws->hs.p, "HTTP/%d.%d %3d", &major, &minor, &status) != 3) {
                fail(ws, "handshake", "the answer is not HTTP");
                continue;
            }
            ws->status = status;
            if (status != 101) {
                ws->state = WS_BODY;
                break;
            }
            if (verify_upgrade(ws) != 0) continue;
            ws->state = WS_OPEN;
            return 1;
        }
        case WS_BODY: {
            while (!body_complete(ws) && !ws->eof && ws->hs.len < ws->head_len + MAX_ERROR_BODY) {
                int r = read_some(ws, ws->head_len + MAX_ERROR_BODY);
                if (r < 0) break;
                if (r == 0 && !ws->eof) {
                    *events = POLLIN;
                    return 0;
                }
            }
            ws->fail_code = NULL; /* a read failure after the head: report the status */
            ws->fail_curl = CURLE_OK;
            fail(ws, "handshake", "the server refused the WebSocket upgrade with HTTP %d",
                 ws->status);
            continue;
        }
        case WS_FAILED:
        case WS_CLOSED:
            return -1;
        default: /* WS_NEW, WS_OPEN: not reached */
            return ws->state == WS_OPEN ? 1 : -1;
        }
    }
}

/* ---- raising ---- */

/* [-0, +1, m] The error object for ws's failure. */
static void push_failure(lua_State *L, struct ws *ws, int ui)
{
    lua_getiuservalue(L, ui, UV_URL);
    const char *url = lua_tostring(L, -1);
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
        size_t blen = ws->hs.len - ws->head_len;
        size_t len;
        int n, done;
        const char *te = find_header(ws, "transfer-encoding", &len, &n);
        if (te && list_has(te, len, "chunked"))
            blen = dechunk(ws->hs.p + ws->head_len, blen, &done);
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
    if (ws->state != WS_OPEN) ws_free(ws);
    return lua_error(L);
}

/* ---- opening ---- */

static int open_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    int ui = (int)ctx;
    struct ws *ws = lua_touserdata(L, ui);
    resumed(ws, &ws->rx);
    if (ws->rx.w.reason) return task_raise_cancelled(L, &ws->rx.w); /* freed by on_cancel */
    short events;
    int r = handshake(ws, &events);
    if (r == 0) return wait_on(L, ws, &ws->rx, events, ctx, open_k);
    if (r < 0) return raise_failure(L, ws, ui);

    loop_timer_stop(ws->loop, &ws->deadline);
    static const struct wslay_event_callbacks callbacks = {
        on_wslay_recv,  on_wslay_send, on_wslay_genmask, on_frame_start,
        on_frame_chunk, NULL,          on_message,
    };
    if (wslay_event_context_client_init(&ws->ctx, &callbacks, ws) != 0) {
        ws_free(ws);
        return luaL_error(L, "http.websocket: out of memory");
    }
    wslay_event_config_set_no_buffering(ws->ctx, 1); /* data frames go to ws->msg directly */
    wslay_event_config_set_max_recv_msg_length(ws->ctx, UINT64_MAX); /* on_frame_start checks */
    size_t len;
    int n;
    const char *proto = find_header(ws, "sec-websocket-protocol", &len, &n);
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

/* The http(s) URL curl connects to, the request target and the Host header,
 * from a ws, wss, http or https URL. Pushes the three strings. */
static void split_url(lua_State *L, const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL, *full = NULL;
    const char *why = NULL;
    if (!u) luaL_error(L, "http.websocket: out of memory");
    if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        why = "not a URL";
        goto out;
    }
    const char *to = strcmp(scheme, "ws") == 0 || strcmp(scheme, "http") == 0     ? "http"
                     : strcmp(scheme, "wss") == 0 || strcmp(scheme, "https") == 0 ? "https"
                                                                                  : NULL;
    if (!to) {
        why = "the scheme must be ws, wss, http or https";
        goto out;
    }
    curl_url_get(u, CURLUPART_PORT, &port, 0); /* only when the URL names one */
    if (curl_url_set(u, CURLUPART_SCHEME, to, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
        why = "not a URL";
        goto out;
    }
    curl_url_get(u, CURLUPART_QUERY, &query, 0);
    lua_pushstring(L, full);
    lua_pushfstring(L, "%s%s%s", path, query ? "?" : "", query ? query : "");
    lua_pushfstring(L, "%s%s%s", host, port ? ":" : "", port ? port : "");
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(query);
    curl_free(full);
    curl_url_cleanup(u);
    if (why) luaL_error(L, "http.websocket: bad url '%s': %s", url, why);
}

/* Header names the handshake writes itself. */
static int is_reserved(const char *name)
{
    static const char *const names[] = {
        "host",
        "upgrade",
        "connection",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-protocol",
        "sec-websocket-extensions",
        "content-length",
        "transfer-encoding",
        NULL,
    };
    for (int i = 0; names[i]; i++)
        if (strcasecmp(name, names[i]) == 0) return 1;
    return 0;
}

/* Appends s to the upgrade request in ws->out; raises past MAX_REQUEST. */
static void add_line(lua_State *L, struct ws *ws, const char *s)
{
    size_t n = strlen(s);
    if (n > MAX_REQUEST - ws->out.len)
        luaL_error(L, "http.websocket: the request passes %d bytes", MAX_REQUEST);
    if (bytes_reserve(&ws->out, n) != 0) luaL_error(L, "http.websocket: out of memory");
    memcpy(ws->out.p + ws->out.len, s, n);
    ws->out.len += n;
}

/* [-0, +0, e] The upgrade request, into ws->out. target and host are the
 * request target and Host value; opts.headers were checked by http_req_setup. */
static void build_request(lua_State *L, struct ws *ws, const char *target, const char *host)
{
    unsigned char nonce[16];
    if (RAND_bytes(nonce, sizeof nonce) != 1) luaL_error(L, "http.websocket: no random bytes");
    base64(nonce, sizeof nonce, ws->key);
    add_line(L, ws,
             lua_pushfstring(L,
                             "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                             "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                             "Sec-WebSocket-Version: 13\r\n",
                             target, host, ws->key));
    lua_pop(L, 1);
    if (ws->protocols) {
        add_line(L, ws, lua_pushfstring(L, "Sec-WebSocket-Protocol: %s\r\n", ws->protocols));
        lua_pop(L, 1);
    }
    int agent = 0;
    if (lua_getfield(L, 1, "headers") == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            const char *name = lua_tostring(L, -2), *value = lua_tostring(L, -1);
            if (is_reserved(name))
                luaL_error(L, "http.websocket: header '%s' is the handshake's own", name);
            agent |= strcasecmp(name, "user-agent") == 0;
            add_line(L, ws, lua_pushfstring(L, "%s: %s\r\n", name, value));
            lua_pop(L, 2);
        }
    }
    lua_pop(L, 1);
    if (!agent) add_line(L, ws, "User-Agent: ferry/" FERRY_VERSION "\r\n");
    add_line(L, ws, "\r\n");
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
    ws->loop = host_loop(host_get(L));
    ws->rx.ws = ws->tx.ws = ws;
    ws->rx.w.cancel = ws->tx.w.cancel = on_cancel;
    ws->fd.fd = -1;
    ws->fd.ready = on_ready;
    ws->curl_timer.fire = on_curl_timeout;
    ws->deadline.fire = on_deadline;
    ws->ping_timer.fire = on_ping_timer;

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

    const char *why = curl_load();
    if (why) return luaL_error(L, "http.websocket: %s", why);
    ws->curl_loaded = 1;
    http_req_setup(L, &ws->req); /* TLS, proxy, resolve, timeouts; checks headers */
    split_url(L, url);           /* curl's URL, request target, Host */
    CURL *e = ws->req.easy;
    curl_easy_setopt(e, CURLOPT_URL, lua_tostring(L, -3));
    curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1); /* ALPN: no h2 */
    curl_easy_setopt(e, CURLOPT_HTTPPROXYTUNNEL, 1L); /* through a proxy: CONNECT */
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000));
    build_request(L, ws, lua_tostring(L, -2), lua_tostring(L, -1));
    lua_settop(L, 2);

    if (!(ws->multi = curl_multi_init())) return luaL_error(L, "http.websocket: out of memory");
    curl_multi_setopt(ws->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(ws->multi, CURLMOPT_SOCKETDATA, ws);
    curl_multi_setopt(ws->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(ws->multi, CURLMOPT_TIMERDATA, ws);
    ws->state = WS_CONNECTING;
    if (curl_multi_add_handle(ws->multi, e) != CURLM_OK)
        return luaL_error(L, "http.websocket: cannot start the connection");
    ws->added = 1;
    loop_timer_start(ws->loop, &ws->deadline, loop_now() + timeout);
    return open_k(L, LUA_OK, 2);
}

/* ---- the connection's methods ---- */

static struct ws *check_ws(lua_State *L)
{
    return luaL_checkudata(L, 1, WS_MT);
}

/* The one finalizer: frees everything, no I/O of its own; wakes a task that
 * still waits on the connection (it then raises "closed"). Idempotent. */
static void ws_free(struct ws *ws)
{
    if (ws->state == WS_CLOSED) return;
    ws->state = WS_CLOSED;
    wake(&ws->rx);
    wake(&ws->tx);
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
    bytes_free(&ws->hs);
    bytes_free(&ws->out);
    bytes_free(&ws->msg);
}

/* Once, without waiting: sends a close frame with code if the connection is
 * open and has not sent one. */
static void try_close_frame(struct ws *ws, int code)
{
    if (ws->state != WS_OPEN || !ws->ctx || ws->eof || ws->fail_curl) return;
    wslay_event_queue_close(ws->ctx, (uint16_t)code, NULL, 0); /* unless one is queued already */
    pump_send(ws);
}

static int ws_gc(lua_State *L)
{
    ws_free(check_ws(L));
    return 0;
}

/* __close: as ws:close() */
static int ws_close_mm(lua_State *L)
{
    struct ws *ws = check_ws(L);
    try_close_frame(ws, 1000);
    ws_free(ws);
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
    ws_free(ws);
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
    resumed(ws, &ws->rx);
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
            pump_send(ws); /* the close reply, if it is still queued */
            return push_closed(L, ws);
        }
        if (ws->fail_code && strcmp(ws->fail_code, "connection") == 0) {
            lua_pushnil(L); /* lost without a close frame: code 1006 (RFC 6455 7.1.5) */
            lua_pushinteger(L, 1006);
            lua_pushstring(L, ws->fail_msg);
            return 3;
        }
        if (ws->fail_code) return raise_failure(L, ws, 1);
        pump_recv(ws);
        if (ws->rxq || ws->fail_code || wslay_event_get_close_received(ws->ctx)) continue;
        short events = want_write(ws) ? POLLOUT : 0;
        if (!events || wslay_event_get_queued_msg_count(ws->ctx) <= MAX_QUEUED_FRAMES)
            events |= POLLIN;
        if (ws->ping_interval > 0)
            loop_timer_start(ws->loop, &ws->ping_timer, loop_now() + ws->ping_interval);
        return wait_on(L, ws, &ws->rx, events, ctx, receive_k);
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
    resumed(ws, &ws->tx);
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
        if (pump_send(ws) < 0) continue;
        if (!want_write(ws)) {
            if (ctx == 1) return 0;
            continue; /* the queue drained: now the message fits */
        }
        return wait_on(L, ws, &ws->tx, POLLOUT, ctx, send_k);
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
