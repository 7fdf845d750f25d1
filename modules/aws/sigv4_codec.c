/* sigv4_codec.c: the byte-level primitives of SigV4 (see sigv4.h): capped
 * buffers, RFC 3986 percent-encoding and decoding, hex, SHA-256, HMAC-SHA256
 * and the X-Amz-Date format.
 *
 * Invariants: no function here allocates except through a sigv4_buf, whose
 * cap it honours; none keeps a pointer it was given. May call: libc,
 * libcrypto. */
#include "aws/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char HEX_UPPER[] = "0123456789ABCDEF";
static const char HEX_LOWER[] = "0123456789abcdef";

const char *sigv4_strerror(enum sigv4_err e)
{
    switch (e) {
    case SIGV4_OK:
        return "ok";
    case SIGV4_ENOMEM:
        return "out of memory";
    case SIGV4_ETOOBIG:
        return "request too large to sign";
    case SIGV4_EURL:
        return "not an http(s) URL with a host";
    case SIGV4_EHEADER:
        return "invalid header name or value";
    case SIGV4_ETIME:
        return "time out of range";
    case SIGV4_ECRYPTO:
        return "libcrypto failure";
    }
    return "unknown error";
}

/* ---- capped buffers ---- */

void sigv4_buf_init(struct sigv4_buf *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max;
}

int sigv4_buf_add(struct sigv4_buf *b, const void *p, size_t n)
{
    if (b->err) return -1;
    if (n > b->max - b->len) {
        b->err = SIGV4_ETOOBIG;
        return -1;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        if (cap > b->max + 1) cap = b->max + 1;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->err = SIGV4_ENOMEM;
            return -1;
        }
        b->p = np;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int sigv4_buf_adds(struct sigv4_buf *b, const char *s)
{
    return sigv4_buf_add(b, s, strlen(s));
}

void sigv4_buf_free(struct sigv4_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* Empties b for reuse, keeping its memory and cap. */
void sigv4_buf_reset(struct sigv4_buf *b)
{
    b->len = 0;
    if (b->p) b->p[0] = '\0';
}

/* ---- encodings and hashes ---- */

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

int sigv4_uri_encode(struct sigv4_buf *b, const char *s, size_t n, int encode_slash)
{
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (run < n && (unreserved((unsigned char)s[run]) || (s[run] == '/' && !encode_slash)))
            run++;
        if (run > i && sigv4_buf_add(b, s + i, run - i)) return -1;
        if (run == n) break;
        unsigned char c = (unsigned char)s[run];
        char esc[3] = {'%', HEX_UPPER[c >> 4], HEX_UPPER[c & 15]};
        if (sigv4_buf_add(b, esc, 3)) return -1;
        i = run + 1;
    }
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Appends s with each %XX replaced by its byte; a '%' without two hex digits
 * stays literal, and '+' is a plus (RFC 3986), not a space. */
int sigv4_uri_decode(struct sigv4_buf *b, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (run < n && s[run] != '%') run++;
        if (run > i && sigv4_buf_add(b, s + i, run - i)) return -1;
        if (run == n) break;
        int hi = run + 2 < n ? hexval(s[run + 1]) : -1, lo = hi >= 0 ? hexval(s[run + 2]) : -1;
        char c = lo >= 0 ? (char)(hi << 4 | lo) : '%';
        if (sigv4_buf_add(b, &c, 1)) return -1;
        i = run + (lo >= 0 ? 3 : 1);
    }
    return 0;
}

void sigv4_hex(const unsigned char *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = HEX_LOWER[p[i] >> 4];
        out[2 * i + 1] = HEX_LOWER[p[i] & 15];
    }
    out[2 * n] = '\0';
}

int sigv4_sha256_hex(const void *p, size_t n, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!EVP_Digest(p ? p : "", n, md, &len, EVP_sha256(), NULL) || len != 32) return -1;
    sigv4_hex(md, 32, hex);
    return 0;
}

int sigv4_hmac_sha256(const void *key, size_t klen, const void *msg, size_t n,
                      unsigned char out[32])
{
    unsigned int len = 0;
    if (klen > INT_MAX) return -1;
    if (!HMAC(EVP_sha256(), key ? key : "", (int)klen, msg ? msg : "", n, out, &len) || len != 32)
        return -1;
    return 0;
}

int sigv4_amz_date(int64_t t, char out[17])
{
    if (t < 0 || t > SIGV4_MAX_TIME) return -1;
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm)) return -1;
    return strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) == 16 ? 0 : -1;
}
