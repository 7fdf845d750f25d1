/* websocket_internal.h: what the three files of http.websocket share — the
 * connection (struct ws) and the calls between them. websocket_handshake.c
 * opens the connection (curl's connect, the HTTP Upgrade, the server's
 * answer); websocket_io.c moves its bytes and frames (the loop's socket
 * watching, curl_easy_send/recv, wslay's callbacks); websocket.c is the Lua
 * side (options, userdata, methods and their continuations) and owns the one
 * finalizer. Not for other modules: they use websocket.h. */
#ifndef FERRY_HTTP_WEBSOCKET_INTERNAL_H
#define FERRY_HTTP_WEBSOCKET_INTERNAL_H

#include "curl.h"
#include "http_internal.h"
#include "loop.h"
#include "task/task.h"

#include <lua.h>
#include <stddef.h>
#include <stdint.h>
#include <wslay/wslay.h>

#define WS_MAX_QUEUED_FRAMES 1024 /* pongs and the like waiting to be written */

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

/* A plain growable byte buffer (capped by its users). Owns p. */
struct ws_bytes {
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
    char key[25];       /* Sec-WebSocket-Key */
    char *protocols;    /* offered, "a, b" (malloc'd), or NULL */
    struct ws_bytes hs; /* the response as read: head, then body or the first frames */
    size_t head_len;    /* of the header block in hs, once complete */
    size_t pre_off;     /* bytes of hs after the head already given to wslay */
    int status;         /* the response's status code */
    int eof;            /* the peer closed the TCP connection */

    /* writing: one stable buffer (see websocket_io.c) */
    struct ws_bytes out;
    size_t out_off;
    int out_frozen; /* the last write would block: retry exactly it */

    /* reading */
    lua_Integer max_message;
    double ping_interval; /* seconds; 0: no keep-alive pings */
    int ping_due;
    struct ws_bytes msg; /* the message being reassembled */
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

/* ---- websocket.c ---- */

/* The one finalizer: frees everything ws owns, no I/O of its own; wakes a task
 * that still waits on the connection (it then raises "closed"). Idempotent. */
void http_ws_free(struct ws *ws);

/* ---- websocket_io.c ---- */

/* Makes room for n more bytes; 0 on success, -1 out of memory. */
int http_ws_bytes_reserve(struct ws_bytes *b, size_t n);

/* Frees b's memory and empties it. */
void http_ws_bytes_free(struct ws_bytes *b);

/* Records the connection's failure (the first one wins). */
void http_ws_fail(struct ws *ws, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sets up ws (zeroed) on loop: the waiters, the socket watch (no socket yet)
 * and the keep-alive ping timer. */
void http_ws_io_init(struct ws *ws, struct loop *loop);

/* Wakes wt's task if it waits (from the loop: never resumes Lua). */
void http_ws_wake(struct ws_waiter *wt);

/* Suspends the task until wt is woken (the socket is ready for events, or,
 * while connecting, curl is done or the deadline passed); continues in k. */
int http_ws_wait(lua_State *L, struct ws *ws, struct ws_waiter *wt, short events, lua_KContext ctx,
                 lua_KFunction k);

/* A continuation's first step: wt is no longer waiting, however it was woken. */
void http_ws_resumed(struct ws *ws, struct ws_waiter *wt);

/* Writes what the out buffer holds. 1 when empty, 0 when the socket would
 * block (retry the same bytes later), -1 on failure (recorded). */
int http_ws_flush_out(struct ws *ws);

/* Reads what the socket has into hs (up to cap bytes in all). 1 when bytes
 * came, 0 when it would block, -1 on failure (recorded); sets eof at the end
 * of the stream. */
int http_ws_read_some(struct ws *ws, size_t cap);

/* Creates the wslay client context once the handshake is done; frames read
 * with the response (in hs after the head) are its first input. 0 on
 * success, -1 out of memory. */
int http_ws_start_frames(struct ws *ws);

/* Whether bytes or frames wait to be written. */
int http_ws_want_write(struct ws *ws);

/* Writes queued frames until done or the socket would block. -1 on failure. */
int http_ws_pump_send(struct ws *ws);

/* Reads frames until a message is complete, the close frame came, or the
 * socket would block; writes the pongs and close replies that produces. */
void http_ws_pump_recv(struct ws *ws);

/* ---- websocket_handshake.c ---- */

/* [-0, +0, e] Starts the connection: configures curl's easy handle from the
 * options table at stack index 1 (http_req_setup, then connect-only to url),
 * writes the upgrade request into ws->out (offering ws->protocols), and hands
 * the handle to ws's private multi handle, driven by the loop, with a
 * deadline of timeout seconds for the whole handshake. Raises
 * "http.websocket: ..." on a bad option; ws keeps what was made (the
 * finalizer frees it). */
void http_ws_connect(lua_State *L, struct ws *ws, const char *url, double timeout);

/* Advances the handshake as far as it goes without blocking. Returns 1 when
 * open, 0 to wait (for *events on the socket; 0 = for curl or the deadline),
 * -1 when it failed (recorded). */
int http_ws_handshake(struct ws *ws, short *events);

/* The value of header name (lower case) in the head of hs, and how many times
 * it appears. The value is trimmed; *len is its length. */
const char *http_ws_find_header(struct ws *ws, const char *name, size_t *len, int *count);

/* The length of a refusal's body, which starts at hs.p + head_len; a chunked
 * body is decoded there in place first. */
size_t http_ws_refusal_body(struct ws *ws);

#endif
