/* fuzz_http_headers.c: the parsers of a server's response head in the http
 * module, on arbitrary bytes taken as that head (and whatever follows it):
 *  - request.c, as http.request and http.open use it: each line, as curl's
 *    header callback hands them over (ending in \n), into http_req_header,
 *    then the block as a table (http_req_push_headers);
 *  - websocket_handshake.c, as http.websocket reads the raw answer to its
 *    upgrade: the head found in the bytes read (NUL-terminated after the
 *    last, as http_ws_read_some keeps them), the headers the handshake
 *    checks (http_ws_find_header), a refusal's headers as a table and its
 *    body, chunked or not (http_ws_refusal_body, which decodes in place).
 * The buffers grow in powers of two, so the bytes past their length are
 * still allocated: they are poisoned (ASan) before each parse, which then
 * faults on any read past the end of what it was given, not only at the end
 * of an allocation. The Kubernetes watch splitter has no C entry point
 * (modules/kube/watch.lua) and is not fuzzed here. No curl, no loop: the
 * structs are zeroed and only their buffers are used. */
#include "fuzz.h"
#include "http/http_internal.h"
#include "http/websocket_internal.h"

#include <sanitizer/asan_interface.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEADER_BYTES (256L << 10) /* request.c's cap, which http_req_setup sets */

/* Makes p[used, cap) unreadable (ASan) until the next unpoison_tail. */
static void poison_tail(char *p, size_t used, size_t cap)
{
    if (p && cap > used) ASAN_POISON_MEMORY_REGION(p + used, cap - used);
}

static void unpoison_tail(char *p, size_t used, size_t cap)
{
    if (p && cap > used) ASAN_UNPOISON_MEMORY_REGION(p + used, cap - used);
}

/* headers(req) -> {name = value}: http_req_push_headers on a light userdata. */
static int headers(lua_State *L)
{
    http_req_push_headers(L, lua_touserdata(L, 1));
    return 1;
}

/* As http.request: line by line into the capped block, then the table. A
 * line the block refuses ends the transfer (curl's callback returns 0), and
 * the request raises without reading the block. */
static void curl_path(lua_State *L, const char *data, size_t size)
{
    struct http_req r;
    memset(&r, 0, sizeof r);
    r.head.max = MAX_HEADER_BYTES;
    char *copy = malloc(size + 1); /* curl's lines end in \n: so does the last one here */
    if (!copy) abort();
    memcpy(copy, data, size);
    size_t n = size;
    if (n == 0 || copy[n - 1] != '\n') copy[n++] = '\n';
    int ok = 1;
    for (const char *p = copy, *end = copy + n; p < end && ok;) {
        const char *eol = (const char *)memchr(p, '\n', (size_t)(end - p)) + 1;
        ok = http_req_header(&r, p, (size_t)(eol - p)) == 0;
        p = eol;
    }
    free(copy);
    if (ok) {
        poison_tail(r.head.p, r.head.len, r.head.cap);
        lua_pushcfunction(L, headers);
        lua_pushlightuserdata(L, &r);
        lua_pcall(L, 1, 1, 0);
        lua_pop(L, 1);
        unpoison_tail(r.head.p, r.head.len, r.head.cap);
    }
    http_buf_free(&r.head);
}

/* Where the head ends in b (past the blank line), or 0: the handshake's
 * own test (websocket_handshake.c, static there). */
static size_t head_end(const struct ws_bytes *b)
{
    for (size_t i = 0; i + 1 < b->len; i++) {
        if (b->p[i] != '\n') continue;
        if (b->p[i + 1] == '\n') return i + 2;
        if (i + 2 < b->len && b->p[i + 1] == '\r' && b->p[i + 2] == '\n') return i + 3;
    }
    return 0;
}

/* As http.websocket: the bytes read so far in hs; once the head is in, the
 * checks of a 101 and what an error object keeps of a refusal. */
static void websocket_path(lua_State *L, const char *data, size_t size)
{
    static const char *const names[] = {
        "upgrade",
        "connection",
        "sec-websocket-accept",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "transfer-encoding",
        "content-length",
    };
    struct ws *ws = calloc(1, sizeof *ws);
    if (!ws) abort();
    if (http_ws_bytes_reserve(&ws->hs, size + 1) != 0) abort();
    memcpy(ws->hs.p, data, size);
    ws->hs.len = size;
    ws->hs.p[size] = '\0';
    ws->req.head.max = MAX_HEADER_BYTES;
    poison_tail(ws->hs.p, size + 1, ws->hs.cap); /* the NUL after the bytes may be read */
    if ((ws->head_len = head_end(&ws->hs))) {
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            size_t len;
            int count;
            const char *v = http_ws_find_header(ws, names[i], &len, &count);
            if (v && (v < ws->hs.p || v + len > ws->hs.p + ws->head_len || count < 1))
                fuzz_fail("%s: value outside the head, or counted %d times", names[i], count);
        }
        http_buf_add(&ws->req.head, ws->hs.p, ws->head_len); /* as push_failure does */
        poison_tail(ws->req.head.p, ws->req.head.len, ws->req.head.cap);
        lua_pushcfunction(L, headers);
        lua_pushlightuserdata(L, &ws->req);
        lua_pcall(L, 1, 1, 0);
        lua_pop(L, 1);
        unpoison_tail(ws->req.head.p, ws->req.head.len, ws->req.head.cap);
        size_t blen = http_ws_refusal_body(ws);
        if (blen > ws->hs.len - ws->head_len)
            fuzz_fail("refusal body of %zu bytes in %zu", blen, ws->hs.len - ws->head_len);
        lua_pushlstring(L, ws->hs.p + ws->head_len, blen);
        lua_pop(L, 1);
    }
    unpoison_tail(ws->hs.p, size + 1, ws->hs.cap);
    http_buf_free(&ws->req.head);
    http_ws_bytes_free(&ws->hs);
    free(ws);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lua_State *L;
    if (!L) L = fuzz_state(NULL, NULL); /* the parsers need no module */
    curl_path(L, (const char *)data, size);
    websocket_path(L, (const char *)data, size);
    return fuzz_done(L);
}
