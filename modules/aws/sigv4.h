/* sigv4.h: AWS Signature Version 4 on plain C strings — header signing and
 * query-string (presigned URL) signing, plus the primitives both use.
 *
 * No Lua here: aws.c reads request and option tables into a sigv4_input and
 * turns a sigv4_out into Lua values. Inputs are borrowed (never kept or
 * modified); outputs live in capped buffers that sigv4_out_free releases.
 * The rules follow ref/notes/aws.md §1 and the aws-c-auth v4 test suite. */
#ifndef FERRY_SIGV4_H
#define FERRY_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#define SIGV4_MAX_URL     (64 * 1024)           /* request URL, bytes */
#define SIGV4_MAX_PARAMS  1024                  /* query parameters in the URL */
#define SIGV4_MAX_HEADERS 256                   /* header lines, list items included */
#define SIGV4_MAX_TEXT    (1024 * 1024)         /* any buffer built while signing */
#define SIGV4_MAX_SECRET  1024                  /* secret access key, bytes */
#define SIGV4_MAX_TIME    INT64_C(253402300799) /* 9999-12-31T23:59:59Z */
#define SIGV4_MAX_EXPIRES 604800                /* a week: the longest presign */
#define SIGV4_UNSIGNED    "UNSIGNED-PAYLOAD"
#define SIGV4_ALGORITHM   "AWS4-HMAC-SHA256"

/* Stable values: aws.c maps them to messages (sigv4_strerror). */
enum sigv4_err {
    SIGV4_OK = 0,
    SIGV4_ENOMEM = 1,  /* malloc failed */
    SIGV4_ETOOBIG = 2, /* an input or a built string passed its cap */
    SIGV4_EURL = 3,    /* the URL is not http(s)://host[:port][/path][?query] */
    SIGV4_EHEADER = 4, /* a header name is not a token or a value splits a line */
    SIGV4_ETIME = 5,   /* time outside 1970-01-01 .. 9999-12-31 */
    SIGV4_ECRYPTO = 6, /* libcrypto failed */
};

/* A static description of e ("out of memory", ...). */
const char *sigv4_strerror(enum sigv4_err e);

/* A growable byte string with a cap. Once allocated, p is NUL-terminated.
 * The first failure (ENOMEM, ETOOBIG) sticks in err and later adds do
 * nothing, so a builder checks once at the end. Freed by sigv4_buf_free. */
struct sigv4_buf {
    char *p;
    size_t len, cap, max;
    enum sigv4_err err;
};

void sigv4_buf_init(struct sigv4_buf *b, size_t max);
/* 0 on success, -1 (and b->err set) when out of memory or past b->max. */
int sigv4_buf_add(struct sigv4_buf *b, const void *p, size_t n);
int sigv4_buf_adds(struct sigv4_buf *b, const char *s);
void sigv4_buf_free(struct sigv4_buf *b); /* idempotent */
/* Empties b for reuse, keeping its memory (and any sticky error). */
void sigv4_buf_reset(struct sigv4_buf *b);

/* Appends s percent-encoded per RFC 3986 as SigV4 wants it: every byte but
 * A-Z a-z 0-9 - . _ ~ becomes %XX (uppercase hex); '/' is kept unless
 * encode_slash. Returns sigv4_buf_add's result. */
int sigv4_uri_encode(struct sigv4_buf *b, const char *s, size_t n, int encode_slash);

/* Appends s with each %XX replaced by its byte; a '%' without two hex
 * digits stays literal and '+' stays a plus (RFC 3986, not forms). */
int sigv4_uri_decode(struct sigv4_buf *b, const char *s, size_t n);

/* Lowercase hex of p[0..n) into out (2n + 1 bytes, NUL-terminated). */
void sigv4_hex(const unsigned char *p, size_t n, char *out);

/* Lowercase hex SHA-256 of p[0..n) into hex (65 bytes, NUL-terminated).
 * 0, or -1 when libcrypto fails. */
int sigv4_sha256_hex(const void *p, size_t n, char hex[65]);

/* HMAC-SHA256(key, msg) into out (32 raw bytes). 0, or -1 on failure. */
int sigv4_hmac_sha256(const void *key, size_t klen, const void *msg, size_t n,
                      unsigned char out[32]);

/* "YYYYMMDDTHHMMSSZ" of epoch second t (UTC) into out (17 bytes).
 * 0, or -1 when t is outside 0 .. SIGV4_MAX_TIME. */
int sigv4_amz_date(int64_t t, char out[17]);

/* One request header as the caller sends it. A name may repeat (the values
 * are joined with "," in input order); names are matched without case. */
struct sigv4_header {
    const char *name, *value;
    size_t name_len, value_len;
};

enum sigv4_flag {
    SIGV4_QUERY = 1 << 0,            /* presign: sign the query, build the URL */
    SIGV4_NORMALIZE = 1 << 1,        /* remove dot segments and repeated '/' */
    SIGV4_DOUBLE_ENCODE = 1 << 2,    /* encode the wire path again (non-S3) */
    SIGV4_SIGN_BODY = 1 << 3,        /* header mode: add x-amz-content-sha256 */
    SIGV4_UNSIGNED_PAYLOAD = 1 << 4, /* payload hash "UNSIGNED-PAYLOAD" */
    SIGV4_OMIT_TOKEN = 1 << 5,       /* add the session token after signing */
};

/* Everything borrowed: the caller keeps these alive during sigv4_sign. */
struct sigv4_input {
    const char *method; /* uppercase, as sent */
    const char *url;
    size_t url_len;
    const struct sigv4_header *headers;
    size_t nheaders;
    const char *body; /* NULL: empty */
    size_t body_len;
    const char *access_key_id, *secret, *token; /* token NULL: none */
    size_t secret_len;
    const char *region, *service;
    int64_t time;   /* epoch seconds */
    long expires;   /* SIGV4_QUERY: X-Amz-Expires */
    unsigned flags; /* enum sigv4_flag */
};

/* What signing produced. All buffers are owned here and released by
 * sigv4_out_free (idempotent; also safe on a zeroed struct). */
struct sigv4_out {
    struct sigv4_buf canonical; /* the canonical request */
    struct sigv4_buf sts;       /* the string to sign */
    struct sigv4_buf result;    /* Authorization value, or the presigned URL */
    char signature[65];
    char amz_date[17];
    char payload_hash[65]; /* lowercase hex, or SIGV4_UNSIGNED */
    /* The Host value derived from the URL (host[:port] without a default
     * port): a slice of in->url; NULL when the headers name a host. */
    const char *host;
    size_t host_len;
};

/* Signs in per in->flags into out (which it initialises). On failure out
 * holds nothing worth reading but must still be freed. Never raises, never
 * logs; the secret and derived keys are wiped before it returns. */
enum sigv4_err sigv4_sign(const struct sigv4_input *in, struct sigv4_out *out);
void sigv4_out_free(struct sigv4_out *out);

#endif
