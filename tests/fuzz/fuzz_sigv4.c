/* fuzz_sigv4.c: sigv4_sign (modules/aws/sigv4.c, sigv4_codec.c) on arbitrary
 * URLs, headers and bodies: the URL split, path normalisation, percent
 * decoding and encoding, query sorting, header trimming and folding. No Lua.
 *
 * An input reads like a request:
 *     METHOD FLAGS\n      FLAGS decimal: enum sigv4_flag, and 64 = a session token
 *     URL\n
 *     Name: value\n       header lines (a trailing \r is dropped), up to a blank line
 *     \n
 *     body
 * A method that is not a token is skipped: aws.c refuses it before signing.
 * Invariant: the canonical request is always its six parts, one header a
 * line — no input may add or remove a line (that would let a value forge
 * what is signed) — and the signature is 64 hex digits. */
#include "aws/sigv4.h"
#include "fuzz.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_METHOD 32

/* The next line of [*p, end), without its \n (and a \r before it); advances *p. */
static const char *next_line(const char **p, const char *end, size_t *len)
{
    const char *s = *p, *nl = memchr(s, '\n', (size_t)(end - s));
    const char *e = nl ? nl : end;
    *p = nl ? nl + 1 : end;
    if (e > s && e[-1] == '\r') e--;
    *len = (size_t)(e - s);
    return s;
}

static int is_tchar(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Checks out against what a canonical request must look like. */
static void check(const struct sigv4_out *out)
{
    const char *c = out->canonical.p;
    size_t lines = 1, names = 1;
    if (!c || out->canonical.len != strlen(c)) fuzz_fail("canonical request missing or holds NUL");
    for (size_t i = 0; i < out->canonical.len; i++) lines += c[i] == '\n';
    /* the signed names: the line before the last */
    const char *last = strrchr(c, '\n');
    const char *start = last;
    while (start > c && start[-1] != '\n') start--;
    for (const char *s = start; s < last; s++) names += *s == ';';
    /* method, URI, query, one line per name, the blank line, names, payload hash */
    if (lines != names + 6)
        fuzz_fail("canonical request has %zu lines for %zu signed headers:\n%s", lines, names, c);
    if (strlen(out->signature) != 64 || strspn(out->signature, "0123456789abcdef") != 64)
        fuzz_fail("signature '%s' is not 64 hex digits", out->signature);
    if (!out->result.p || out->result.len == 0) fuzz_fail("no Authorization value or URL");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sigv4_header hs[SIGV4_MAX_HEADERS + 1];
    const char *p = (const char *)data, *end = p + size, *line;
    size_t len, nh = 0;
    char method[MAX_METHOD + 1];
    unsigned flags = 0;

    line = next_line(&p, end, &len); /* METHOD FLAGS */
    size_t ml = 0;
    while (ml < len && line[ml] != ' ') ml++;
    if (ml == 0 || ml > MAX_METHOD) return 0;
    for (size_t i = 0; i < ml; i++) {
        if (!is_tchar((unsigned char)line[i])) return 0;
        method[i] = line[i];
    }
    method[ml] = '\0';
    for (size_t i = ml + 1; i < len && line[i] >= '0' && line[i] <= '9'; i++)
        flags = (flags * 10 + (unsigned)(line[i] - '0')) & 0x7f;
    int token = flags & 64;
    flags &= 0x3f;
    if (flags & SIGV4_QUERY) flags &= ~(unsigned)SIGV4_SIGN_BODY; /* as aws.c sets them */

    const char *url = next_line(&p, end, &len);
    size_t url_len = len;

    while (p < end) {
        line = next_line(&p, end, &len);
        if (len == 0) break;
        if (nh == SIGV4_MAX_HEADERS + 1) return 0; /* aws.c refuses more than 256 */
        const char *colon = memchr(line, ':', len);
        size_t nl = colon ? (size_t)(colon - line) : len;
        hs[nh].name = line;
        hs[nh].name_len = nl;
        hs[nh].value = colon ? colon + 1 : line + len;
        hs[nh].value_len = colon ? len - nl - 1 : 0;
        nh++;
    }

    struct sigv4_input in = {
        .method = method,
        .url = url,
        .url_len = url_len,
        .headers = hs,
        .nheaders = nh,
        .body = p,
        .body_len = (size_t)(end - p),
        .access_key_id = "AKIDEXAMPLE",
        .secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        .secret_len = 40,
        .token =
            token ? "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQW" : NULL,
        .region = "us-east-1",
        .service = "service",
        .time = 1440938160, /* 2015-08-30T12:36:00Z, as in AWS's test suite */
        .expires = 3600,
        .flags = flags,
    };
    struct sigv4_out out;
    enum sigv4_err err = sigv4_sign(&in, &out);
    if (err == SIGV4_OK)
        check(&out);
    else if (err != SIGV4_ETOOBIG && err != SIGV4_EURL && err != SIGV4_EHEADER)
        fuzz_fail("sigv4_sign: unexpected error %d (%s)", (int)err, sigv4_strerror(err));
    sigv4_out_free(&out);
    return 0;
}
