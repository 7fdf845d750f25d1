/* websocket_handshake.c: opening a WebSocket connection (RFC 6455 §4) — curl's
 * connect, the HTTP/1.1 Upgrade request, and the checks of the server's
 * answer (Sec-WebSocket-Accept, the chosen subprotocol), or the refusal kept
 * for the error object (see websocket_internal.h).
 *
 * The connection is curl's (CURLOPT_CONNECT_ONLY: DNS, proxy tunnel, TLS and
 * client certificates set up by request.c); the upgrade request and response
 * are written and read here, through websocket_io.c. Each connection has a
 * private curl multi handle: a connect-only connection lives in its multi
 * handle's connection cache, where the loop's shared one would close it when
 * the handle leaves (loop.c removes finished transfers) and prune or evict it
 * while other transfers come and go. The private handle is driven through the
 * loop: its sockets are watched with loop_watch_fd while it connects, its
 * timer is a loop timer.
 *
 * Invariants: curl's socket and timer callbacks and the handshake deadline
 * only call http_ws_wake; the opening task advances the handshake
 * (http_ws_handshake) in its continuation. The request is capped at
 * MAX_REQUEST, the response head at MAX_HEAD and a refusal's body at
 * MAX_ERROR_BODY. May call: curl, request.c, the loop, OpenSSL (the key and
 * the accept digest) and websocket_io.c. */
#include "websocket_internal.h"

#include "host.h"

#include <lauxlib.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define WS_GUID        "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define MAX_REQUEST    (64 << 10) /* the upgrade request, headers included */
#define MAX_HEAD       (64 << 10) /* the response's header block */
#define MAX_ERROR_BODY (1 << 20)  /* the body kept from a refusal */

/* ---- keys ---- */

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
        http_ws_wake(&ws->rx);
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

static void on_deadline(struct loop_timer *t)
{
    struct ws *ws = (struct ws *)((char *)t - offsetof(struct ws, deadline));
    ws->timed_out = 1;
    http_ws_wake(&ws->rx);
}

/* ---- the upgrade request ---- */

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
    if (http_ws_bytes_reserve(&ws->out, n) != 0) luaL_error(L, "http.websocket: out of memory");
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

/* See websocket_internal.h. */
void http_ws_connect(lua_State *L, struct ws *ws, const char *url, double timeout)
{
    int top = lua_gettop(L);
    ws->curl_timer.fire = on_curl_timeout;
    ws->deadline.fire = on_deadline;
    const char *why = curl_load();
    if (why) luaL_error(L, "http.websocket: %s", why);
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
    lua_settop(L, top);

    if (!(ws->multi = curl_multi_init())) luaL_error(L, "http.websocket: out of memory");
    curl_multi_setopt(ws->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(ws->multi, CURLMOPT_SOCKETDATA, ws);
    curl_multi_setopt(ws->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(ws->multi, CURLMOPT_TIMERDATA, ws);
    ws->state = WS_CONNECTING;
    if (curl_multi_add_handle(ws->multi, e) != CURLM_OK)
        luaL_error(L, "http.websocket: cannot start the connection");
    ws->added = 1;
    loop_timer_start(ws->loop, &ws->deadline, loop_now() + timeout);
}

/* ---- the server's answer ---- */

/* The value of header name (lower case) in the head of hs, and how many times
 * it appears. The value is trimmed; *len is its length. */
const char *http_ws_find_header(struct ws *ws, const char *name, size_t *len, int *count)
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
    const char *v = http_ws_find_header(ws, "upgrade", &len, &n);
    if (!v || len != 9 || strncasecmp(v, "websocket", 9) != 0) {
        http_ws_fail(ws, "handshake", "the 101 answer lacks Upgrade: websocket");
        return -1;
    }
    v = http_ws_find_header(ws, "connection", &len, &n);
    if (!v || !list_has(v, len, "upgrade")) {
        http_ws_fail(ws, "handshake", "the 101 answer lacks Connection: Upgrade");
        return -1;
    }
    char want[29];
    v = http_ws_find_header(ws, "sec-websocket-accept", &len, &n);
    if (accept_for(ws->key, want) != 0 || !v || n != 1 || len != 28 || memcmp(v, want, 28) != 0) {
        http_ws_fail(ws, "handshake",
                     "the server's Sec-WebSocket-Accept does not match the key sent");
        return -1;
    }
    if (http_ws_find_header(ws, "sec-websocket-extensions", &len, &n)) {
        http_ws_fail(ws, "handshake", "the server chose an extension that was not offered");
        return -1;
    }
    v = http_ws_find_header(ws, "sec-websocket-protocol", &len, &n);
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
            http_ws_fail(ws, "handshake",
                         "the server chose subprotocol '%.*s', which was not offered",
                         (int)(len > 100 ? 100 : len), v);
            return -1;
        }
    }
    return 0;
}

/* Where the header block in hs ends (past the blank line), or 0 if not yet. */
static size_t head_end(const struct ws_bytes *b)
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
    const char *te = http_ws_find_header(ws, "transfer-encoding", &len, &n);
    if (te && list_has(te, len, "chunked")) {
        size_t blen = ws->hs.len - ws->head_len;
        char *copy = malloc(blen + 1);
        if (!copy) return 1;
        memcpy(copy, ws->hs.p + ws->head_len, blen);
        copy[blen] = '\0'; /* dechunk's strtoul must stop here */
        int done;
        dechunk(copy, blen, &done);
        free(copy);
        return done;
    }
    const char *cl = http_ws_find_header(ws, "content-length", &len, &n);
    if (cl) return ws->hs.len - ws->head_len >= (size_t)strtoull(cl, NULL, 10);
    return 0; /* until the server closes */
}

/* Advances the handshake as far as it goes without blocking. Returns 1 when
 * open, 0 to wait (for *events on the socket; 0 = for curl or the deadline),
 * -1 when it failed (recorded). */
int http_ws_handshake(struct ws *ws, short *events)
{
    *events = 0;
    for (;;) {
        if (ws->timed_out && !ws->fail_code) {
            http_ws_fail(ws, "timeout", "no WebSocket connection within the timeout");
            ws->state = WS_FAILED;
        }
        if (ws->fail_code) ws->state = WS_FAILED;
        switch (ws->state) {
        case WS_CONNECTING: {
            if (!ws->connected) return 0;
            if (ws->result != CURLE_OK) {
                ws->fail_curl = ws->result;
                http_ws_fail(ws, "connect", "%s", curl_easy_strerror(ws->result));
                continue;
            }
            curl_socket_t s = CURL_SOCKET_BAD;
            if (curl_easy_getinfo(ws->req.easy, CURLINFO_ACTIVESOCKET, &s) != CURLE_OK ||
                s == CURL_SOCKET_BAD) {
                http_ws_fail(ws, "connection", "curl connected but gave no socket");
                continue;
            }
            ws->fd.fd = (int)s;
            ws->state = WS_REQUEST;
            break;
        }
        case WS_REQUEST: {
            int r = http_ws_flush_out(ws);
            if (r < 0) continue;
            if (r == 0) {
                *events = POLLOUT;
                return 0;
            }
            ws->state = WS_HEAD;
            break;
        }
        case WS_HEAD: {
            int r = http_ws_read_some(ws, MAX_HEAD);
            if (r < 0) continue;
            size_t end = head_end(&ws->hs);
            if (!end) {
                if (ws->eof)
                    http_ws_fail(ws, "handshake",
                                 "the server closed the connection before answering");
                else if (ws->hs.len >= MAX_HEAD)
                    http_ws_fail(ws, "too_large", "the response headers pass %d bytes", MAX_HEAD);
                else if (r == 0) {
                    *events = POLLIN;
                    return 0;
                }
                continue;
            }
            ws->head_len = end;
            int major, minor, status;
            if (sscanf(ws->hs.p, "HTTP/%d.%d %3d", &major, &minor, &status) != 3) {
                http_ws_fail(ws, "handshake", "the answer is not HTTP");
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
                int r = http_ws_read_some(ws, ws->head_len + MAX_ERROR_BODY);
                if (r < 0) break;
                if (r == 0 && !ws->eof) {
                    *events = POLLIN;
                    return 0;
                }
            }
            ws->fail_code = NULL; /* a read failure after the head: report the status */
            ws->fail_curl = CURLE_OK;
            http_ws_fail(ws, "handshake", "the server refused the WebSocket upgrade with HTTP %d",
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

/* See websocket_internal.h. */
size_t http_ws_refusal_body(struct ws *ws)
{
    size_t blen = ws->hs.len - ws->head_len;
    size_t len;
    int n, done;
    const char *te = http_ws_find_header(ws, "transfer-encoding", &len, &n);
    if (te && list_has(te, len, "chunked")) blen = dechunk(ws->hs.p + ws->head_len, blen, &done);
    return blen;
}
