/* http_internal.h: what the two kinds of transfer in the http module share —
 * http.c (one buffered response) and stream.c (a response read in chunks).
 * One implementation, in request.c, of "request table -> curl easy handle",
 * of the response header block as a table and of "failed transfer -> error
 * object". Not for other modules. */
#ifndef FERRY_HTTP_INTERNAL_H
#define FERRY_HTTP_INTERNAL_H

#include "curl.h"

#include <lua.h>
#include <stddef.h>

/* A byte buffer that never grows past max: an append that would is refused
 * and sets overflow. Owns p (free with http_buf_free). */
struct http_buf {
    char *p;
    size_t len, cap, max;
    int overflow;
};

/* Appends n bytes; 0 on success, -1 at the cap (overflow set) or out of memory. */
int http_buf_add(struct http_buf *b, const char *p, size_t n);

/* Frees b's memory and empties it; max is kept. Idempotent. */
void http_buf_free(struct http_buf *b);

/* What every request owns, whatever reads its body. All of it is freed by
 * http_req_free, which the owner calls once the easy handle is out of the
 * loop's multi handle. */
struct http_req {
    CURL *easy;
    struct curl_slist *headers;    /* request headers (CURLOPT_HTTPHEADER) */
    struct curl_slist *resolve;    /* "host:port:addr" entries (CURLOPT_RESOLVE) */
    struct curl_slist *connect_to; /* "host:port:host:port" entries (CURLOPT_CONNECT_TO) */
    struct http_buf head;          /* the response's header block, capped */
    char errbuf[CURL_ERROR_SIZE];
};

/* [-0, +0, e] Loads libcurl and creates r->easy (r zeroed by the caller), then
 * configures it from the request table at stack index 1: url, method,
 * headers, body, timeout, connect_timeout, idle_timeout, ca_file, ca_data,
 * cert_data, key_data, insecure, resolve, connect_to, proxy. Raises on a bad field (r
 * keeps what was made so far: the caller's finalizer frees it). The caller
 * then sets CURLOPT_WRITEFUNCTION/HEADERFUNCTION and their data. */
void http_req_setup(lua_State *L, struct http_req *r);

/* Frees everything r owns; r->easy must no longer be in the multi handle.
 * Idempotent. */
void http_req_free(struct http_req *r);

/* Adds one header line (as curl's header callback gets it) to r->head; a
 * status line starts the block afresh (after a 1xx or a proxy's answer).
 * 0 on success, -1 when the block would pass its cap. */
int http_req_header(struct http_req *r, const char *line, size_t n);

/* [-0, +1, m] The response headers in r->head as {lower-case name = value};
 * repeated headers are joined with ", " as RFC 9110 allows. */
void http_req_push_headers(lua_State *L, const struct http_req *r);

/* [-0, +1, m] The error object for a transfer that ended with result:
 * {code, message, url, method, retryable}. too_large, when not NULL, says
 * which cap the response passed (code "too_large"); a header block over its
 * cap is detected here. */
void http_req_push_error(lua_State *L, struct http_req *r, CURLcode result, const char *too_large);

/* [-0, +1, m] Pushes url ("?" when NULL) fit to print: a password in its
 * userinfo and the X-Amz-Signature and X-Amz-Security-Token values of a
 * presigned URL replaced by REDACT_MASK. Returns the pushed string. */
const char *http_push_safe_url(lua_State *L, const char *url);

/* stream.c: `_open(req)` -> a stream once the response headers are in
 * (suspends the task); http_stream_register makes the stream metatable. */
int http_stream_open(lua_State *L);
void http_stream_register(lua_State *L);

#endif
