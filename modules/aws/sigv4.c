/* sigv4.c: AWS Signature Version 4 on plain C strings (see sigv4.h): the
 * URL split, canonical URI/query/headers, string to sign, the HMAC key chain
 * and the Authorization value or presigned URL.
 *
 * Invariants: every buffer built here is a capped sigv4_buf; inputs are
 * borrowed and never modified; the secret and every derived key live only
 * in stack arrays that are wiped (OPENSSL_cleanse) before sigv4_sign
 * returns, and no error carries a value. May call: libc, libcrypto,
 * sigv4_codec.c. */
#include "aws/sigv4.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the URL ---- */

struct url {
    const char *scheme_authority; /* "https://host:8443", as given */
    const char *host;             /* the Host value: a slice of the URL */
    const char *path, *query;     /* wire form; query without '?' (NULL: none) */
    size_t scheme_authority_len, host_len, path_len, query_len;
};

/* Splits scheme://[userinfo@]host[:port][path][?query][#fragment]. Rejects
 * control bytes anywhere, other schemes, an empty host, a bad port. */
static enum sigv4_err parse_url(const char *s, size_t n, struct url *u)
{
    memset(u, 0, sizeof *u);
    for (size_t k = 0; k < n; k++)
        if ((unsigned char)s[k] < 0x20 || s[k] == 0x7f) return SIGV4_EURL;
    size_t i = 0;
    while (i < n && s[i] != ':' && s[i] != '/' && s[i] != '?' && s[i] != '#') i++;
    if (n - i < 3 || memcmp(s + i, "://", 3) != 0) return SIGV4_EURL;
    int https = i == 5 && strncasecmp(s, "https", 5) == 0;
    if (!https && !(i == 4 && strncasecmp(s, "http", 4) == 0)) return SIGV4_EURL;
    size_t a = i + 3, e = a;
    while (e < n && s[e] != '/' && s[e] != '?' && s[e] != '#') e++;
    size_t h = a; /* host[:port] starts after any userinfo */
    for (size_t k = a; k < e; k++)
        if (s[k] == '@') h = k + 1;
    size_t hend = h;
    if (h < e && s[h] == '[') { /* IPv6 literal */
        while (hend < e && s[hend] != ']') hend++;
        if (hend == e) return SIGV4_EURL;
        hend++;
    } else {
        while (hend < e && s[hend] != ':') hend++;
    }
    if (hend == h || memchr(s + h, ' ', hend - h)) return SIGV4_EURL;
    u->scheme_authority = s;
    u->scheme_authority_len = e;
    u->host = s + h;
    u->host_len = e - h;
    if (hend < e) {
        if (s[hend] != ':') return SIGV4_EURL;
        const char *port = s + hend + 1;
        size_t plen = e - hend - 1;
        for (size_t k = 0; k < plen; k++)
            if (port[k] < '0' || port[k] > '9') return SIGV4_EURL;
        if (plen == 0 || (https && plen == 3 && memcmp(port, "443", 3) == 0) ||
            (!https && plen == 2 && memcmp(port, "80", 2) == 0))
            u->host_len = hend - h; /* what curl sends: no default port */
    }
    size_t q = e;
    while (q < n && s[q] != '?' && s[q] != '#') q++;
    u->path = s + e;
    u->path_len = q - e;
    if (q < n && s[q] == '?') {
        size_t f = q + 1;
        while (f < n && s[f] != '#') f++;
        u->query = s + q + 1;
        u->query_len = f - q - 1;
    }
    return SIGV4_OK;
}

/* ---- canonical URI ---- */

/* Appends p with dot segments removed and repeated '/' collapsed, keeping a
 * trailing '/' (botocore utils.remove_dot_segments); the result starts
 * with '/' and is never empty. */
static void normalize_path(struct sigv4_buf *b, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && p[j] != '/') j++;
        size_t len = j - i;
        if (len == 2 && p[i] == '.' && p[i + 1] == '.') {
            while (b->len > 0 && b->p[b->len - 1] != '/') b->len--; /* drop the last */
            if (b->len > 0) b->len--;                               /* segment and its '/' */
            if (b->p) b->p[b->len] = '\0';
        } else if (len > 0 && !(len == 1 && p[i] == '.')) {
            sigv4_buf_add(b, "/", 1);
            sigv4_buf_add(b, p + i, len);
        }
        i = j + 1;
    }
    if (b->len > 0 && n > 0 && p[n - 1] == '/') sigv4_buf_add(b, "/", 1);
    if (b->len == 0) sigv4_buf_add(b, "/", 1);
}

/* Appends the canonical URI of wire path p: normalised when asked, then
 * encoded again as it stands (double encoding), or decoded and encoded once
 * (S3). An empty path is "/". */
static enum sigv4_err canonical_uri(struct sigv4_buf *b, const char *p, size_t n, unsigned flags)
{
    struct sigv4_buf norm, raw;
    sigv4_buf_init(&norm, SIGV4_MAX_TEXT);
    sigv4_buf_init(&raw, SIGV4_MAX_TEXT);
    enum sigv4_err err;
    if (n > 0 && (flags & SIGV4_NORMALIZE)) {
        normalize_path(&norm, p, n);
        if ((err = norm.err)) goto out;
        p = norm.p;
        n = norm.len;
    }
    if (n == 0) {
        sigv4_buf_add(b, "/", 1);
    } else if (flags & SIGV4_DOUBLE_ENCODE) {
        sigv4_uri_encode(b, p, n, 0);
    } else {
        if (sigv4_uri_decode(&raw, p, n)) {
            err = raw.err;
            goto out;
        }
        sigv4_uri_encode(b, raw.p, raw.len, 0);
    }
    err = b->err;
out:
    sigv4_buf_free(&norm);
    sigv4_buf_free(&raw);
    return err;
}

/* ---- the signer's state ---- */

struct hdr {
    const char *name, *value; /* lowercased name, Trimall value (in harena) */
    size_t name_off, name_len, value_off, value_len, order;
};

struct param {
    const char *k, *v; /* encoded (in parena, or the signer's own buffers) */
    size_t k_off, k_len, v_off, v_len;
};

struct signer {
    const struct sigv4_input *in;
    struct sigv4_out *out;
    struct url url;
    struct hdr *hs;                       /* hcap entries, nh used (malloc'd; sigv4_sign frees) */
    struct param *ps;                     /* pcap entries, np used (malloc'd; sigv4_sign frees) */
    size_t nh, hcap, np, pcap, names_len; /* names_len: signed names' part of encoded */
    struct sigv4_buf harena, parena, tmp, hblock, signed_names, scope, cred, encoded;
    char expires[24];
};

/* Where offset off of b points once b is complete ("" while b is empty). */
static const char *at(const struct sigv4_buf *b, size_t off)
{
    return b->p ? b->p + off : "";
}

/* ---- headers ---- */

/* Sent as they are but never signed: proxies and curl may change them. */
static const char *const unsigned_headers[] = {
    "authorization", "connection", "expect",          "transfer-encoding",
    "upgrade",       "user-agent", "x-amzn-trace-id",
};

static int tchar(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Adds one header to s->hs with its lowercased name and Trimall value
 * (trimmed, inner runs of spaces and tabs as one space) in s->harena;
 * skips the unsigned ones. */
static enum sigv4_err add_header(struct signer *s, const char *name, size_t nl, const char *value,
                                 size_t vl)
{
    struct sigv4_buf *arena = &s->harena;
    if (nl == 0) return SIGV4_EHEADER;
    for (size_t i = 0; i < nl; i++)
        if (!tchar((unsigned char)name[i])) return SIGV4_EHEADER;
    if (memchr(value, '\r', vl) || memchr(value, '\n', vl) || memchr(value, '\0', vl))
        return SIGV4_EHEADER;
    for (size_t i = 0; i < sizeof unsigned_headers / sizeof unsigned_headers[0]; i++)
        if (strlen(unsigned_headers[i]) == nl && strncasecmp(unsigned_headers[i], name, nl) == 0)
            return SIGV4_OK;
    if (s->nh == s->hcap) return SIGV4_ETOOBIG;
    struct hdr *h = &s->hs[s->nh++];
    h->order = s->nh;
    h->name_off = arena->len;
    h->name_len = nl;
    if (sigv4_buf_add(arena, name, nl)) return arena->err;
    for (size_t i = h->name_off; i < arena->len; i++)
        if (arena->p[i] >= 'A' && arena->p[i] <= 'Z') arena->p[i] += 'a' - 'A';
    h->value_off = arena->len;
    size_t i = 0;
    while (i < vl) {
        while (i < vl && (value[i] == ' ' || value[i] == '\t')) i++;
        size_t j = i;
        while (j < vl && value[j] != ' ' && value[j] != '\t') j++;
        if (j > i) {
            if (arena->len > h->value_off) sigv4_buf_add(arena, " ", 1);
            sigv4_buf_add(arena, value + i, j - i);
        }
        i = j;
    }
    h->value_len = arena->len - h->value_off;
    return arena->err;
}

static int cmp_bytes(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl);
}

/* By name, then input order: repeated headers keep their order (stable). */
static int cmp_hdr(const void *pa, const void *pb)
{
    const struct hdr *a = pa, *b = pb;
    int c = cmp_bytes(a->name, a->name_len, b->name, b->name_len);
    return c ? c : (a->order > b->order) - (a->order < b->order);
}

/* ---- query parameters ---- */

static int cmp_param(const void *pa, const void *pb)
{
    const struct param *a = pa, *b = pb;
    int c = cmp_bytes(a->k, a->k_len, b->k, b->k_len);
    return c ? c : cmp_bytes(a->v, a->v_len, b->v, b->v_len);
}

/* ---- the signer ---- */

/* The header list: the caller's, then host (unless given) and, when signing
 * headers, x-amz-date, the session token and x-amz-content-sha256. Builds
 * the canonical header block and the signed header names. */
static enum sigv4_err signer_headers(struct signer *s)
{
    const struct sigv4_input *in = s->in;
    enum sigv4_err err;
    int has_host = 0;
    if (in->nheaders > SIGV4_MAX_HEADERS) return SIGV4_ETOOBIG;
    s->hcap = in->nheaders + 4; /* + host, x-amz-date, token, x-amz-content-sha256 */
    s->hs = calloc(s->hcap, sizeof *s->hs);
    if (!s->hs) return SIGV4_ENOMEM;
    for (size_t i = 0; i < in->nheaders; i++) {
        const struct sigv4_header *h = &in->headers[i];
        if ((err = add_header(s, h->name, h->name_len, h->value, h->value_len))) return err;
        has_host |= h->name_len == 4 && strncasecmp(h->name, "host", 4) == 0;
    }
    if (!has_host) {
        s->out->host = s->url.host;
        s->out->host_len = s->url.host_len;
        if ((err = add_header(s, "host", 4, s->url.host, s->url.host_len))) return err;
    }
    if (!(in->flags & SIGV4_QUERY)) {
        const char *date = s->out->amz_date, *hash = s->out->payload_hash;
        if ((err = add_header(s, "x-amz-date", 10, date, strlen(date)))) return err;
        if (in->token && !(in->flags & SIGV4_OMIT_TOKEN) &&
            (err = add_header(s, "x-amz-security-token", 20, in->token, strlen(in->token))))
            return err;
        if ((in->flags & SIGV4_SIGN_BODY) &&
            (err = add_header(s, "x-amz-content-sha256", 20, hash, strlen(hash))))
            return err;
    }
    for (size_t i = 0; i < s->nh; i++) { /* the arena is complete: fix the pointers */
        s->hs[i].name = at(&s->harena, s->hs[i].name_off);
        s->hs[i].value = at(&s->harena, s->hs[i].value_off);
    }
    qsort(s->hs, s->nh, sizeof *s->hs, cmp_hdr);
    for (size_t i = 0; i < s->nh; i++) {
        const struct hdr *h = &s->hs[i];
        int same = i > 0 && cmp_bytes(h->name, h->name_len, h[-1].name, h[-1].name_len) == 0;
        if (same) {
            sigv4_buf_add(&s->hblock, ",", 1);
        } else {
            if (i > 0) sigv4_buf_add(&s->hblock, "\n", 1);
            sigv4_buf_add(&s->hblock, h->name, h->name_len);
            sigv4_buf_add(&s->hblock, ":", 1);
            if (i > 0) sigv4_buf_add(&s->signed_names, ";", 1);
            sigv4_buf_add(&s->signed_names, h->name, h->name_len);
        }
        sigv4_buf_add(&s->hblock, h->value, h->value_len);
    }
    sigv4_buf_add(&s->hblock, "\n", 1);
    return s->hblock.err ? s->hblock.err : s->signed_names.err;
}

/* The URL's query parameters, each decoded then encoded once, in s->ps; in
 * query mode also the URL so far: scheme://authority/path?k=v&... */
static enum sigv4_err signer_url_params(struct signer *s)
{
    const char *q = s->url.query;
    size_t n = s->url.query_len, count = 1;
    for (size_t i = 0; i < n; i++) count += q[i] == '&';
    if (count > SIGV4_MAX_PARAMS) return SIGV4_ETOOBIG;
    s->pcap = count + 6; /* + the X-Amz-* parameters of query mode */
    s->ps = calloc(s->pcap, sizeof *s->ps);
    if (!s->ps) return SIGV4_ENOMEM;
    for (size_t i = 0; i < n;) {
        size_t j = i, eq;
        while (j < n && q[j] != '&') j++;
        for (eq = i; eq < j && q[eq] != '='; eq++) continue;
        if (j > i) {
            struct param *p = &s->ps[s->np++];
            sigv4_buf_reset(&s->tmp);
            sigv4_uri_decode(&s->tmp, q + i, eq - i);
            p->k_off = s->parena.len;
            sigv4_uri_encode(&s->parena, at(&s->tmp, 0), s->tmp.len, 1);
            p->k_len = s->parena.len - p->k_off;
            sigv4_buf_reset(&s->tmp);
            if (eq < j) sigv4_uri_decode(&s->tmp, q + eq + 1, j - eq - 1);
            p->v_off = s->parena.len;
            sigv4_uri_encode(&s->parena, at(&s->tmp, 0), s->tmp.len, 1);
            p->v_len = s->parena.len - p->v_off;
        }
        i = j + 1;
    }
    if (s->tmp.err) return s->tmp.err;
    if (s->parena.err) return s->parena.err;
    for (size_t i = 0; i < s->np; i++) {
        s->ps[i].k = at(&s->parena, s->ps[i].k_off);
        s->ps[i].v = at(&s->parena, s->ps[i].v_off);
    }
    if (s->in->flags & SIGV4_QUERY) {
        struct sigv4_buf *r = &s->out->result;
        sigv4_buf_add(r, s->url.scheme_authority, s->url.scheme_authority_len);
        if (s->url.path_len)
            sigv4_buf_add(r, s->url.path, s->url.path_len);
        else
            sigv4_buf_add(r, "/", 1);
        sigv4_buf_add(r, "?", 1);
        for (size_t i = 0; i < s->np; i++) {
            sigv4_buf_add(r, s->ps[i].k, s->ps[i].k_len);
            sigv4_buf_add(r, "=", 1);
            sigv4_buf_add(r, s->ps[i].v, s->ps[i].v_len);
            sigv4_buf_add(r, "&", 1);
        }
        return r->err;
    }
    return SIGV4_OK;
}

/* Adds an X-Amz-* parameter (k literal, v already encoded); room for six is
 * reserved by signer_url_params. */
static void push_param(struct signer *s, const char *k, const char *v, size_t vl)
{
    struct param *p = &s->ps[s->np++];
    p->k = k;
    p->k_len = strlen(k);
    p->v = v;
    p->v_len = vl;
}

/* Query mode: the X-Amz-* parameters signed with the request. Their values
 * sit in s->cred and s->encoded (signed names, then the token), complete
 * before any pointer into them is taken. */
static enum sigv4_err signer_auth_params(struct signer *s)
{
    const struct sigv4_input *in = s->in;
    sigv4_buf_reset(&s->tmp);
    sigv4_buf_adds(&s->tmp, in->access_key_id);
    sigv4_buf_add(&s->tmp, "/", 1);
    sigv4_buf_add(&s->tmp, s->scope.p, s->scope.len);
    if (s->tmp.err) return s->tmp.err;
    sigv4_uri_encode(&s->cred, s->tmp.p, s->tmp.len, 1);
    sigv4_uri_encode(&s->encoded, s->signed_names.p, s->signed_names.len, 1);
    s->names_len = s->encoded.len;
    if (in->token) sigv4_uri_encode(&s->encoded, in->token, strlen(in->token), 1);
    if (s->cred.err) return s->cred.err;
    if (s->encoded.err) return s->encoded.err;
    snprintf(s->expires, sizeof s->expires, "%ld", in->expires);
    push_param(s, "X-Amz-Algorithm", SIGV4_ALGORITHM, strlen(SIGV4_ALGORITHM));
    push_param(s, "X-Amz-Credential", at(&s->cred, 0), s->cred.len);
    push_param(s, "X-Amz-Date", s->out->amz_date, strlen(s->out->amz_date));
    push_param(s, "X-Amz-Expires", s->expires, strlen(s->expires));
    push_param(s, "X-Amz-SignedHeaders", at(&s->encoded, 0), s->names_len);
    if (in->token && !(in->flags & SIGV4_OMIT_TOKEN))
        push_param(s, "X-Amz-Security-Token", at(&s->encoded, s->names_len),
                   s->encoded.len - s->names_len);
    return SIGV4_OK;
}

/* The signing key chain over s->out->sts; the signature into out. */
static enum sigv4_err signer_signature(struct signer *s)
{
    const struct sigv4_input *in = s->in;
    unsigned char ksecret[4 + SIGV4_MAX_SECRET], k1[32], k2[32];
    enum sigv4_err err = SIGV4_ECRYPTO;
    if (in->secret_len > SIGV4_MAX_SECRET) return SIGV4_ETOOBIG;
    memcpy(ksecret, "AWS4", 4);
    memcpy(ksecret + 4, in->secret, in->secret_len);
    if (sigv4_hmac_sha256(ksecret, 4 + in->secret_len, s->out->amz_date, 8, k1) ||
        sigv4_hmac_sha256(k1, 32, in->region, strlen(in->region), k2) ||
        sigv4_hmac_sha256(k2, 32, in->service, strlen(in->service), k1) ||
        sigv4_hmac_sha256(k1, 32, "aws4_request", 12, k2) ||
        sigv4_hmac_sha256(k2, 32, s->out->sts.p, s->out->sts.len, k1))
        goto out;
    sigv4_hex(k1, 32, s->out->signature);
    err = SIGV4_OK;
out:
    OPENSSL_cleanse(ksecret, sizeof ksecret);
    OPENSSL_cleanse(k1, sizeof k1);
    OPENSSL_cleanse(k2, sizeof k2);
    return err;
}

/* Header mode: the Authorization value. Query mode: the rest of the URL,
 * whose first part signer_url_params wrote. */
static enum sigv4_err signer_result(struct signer *s)
{
    const struct sigv4_input *in = s->in;
    struct sigv4_buf *r = &s->out->result;
    if (!(in->flags & SIGV4_QUERY)) {
        sigv4_buf_adds(r, SIGV4_ALGORITHM " Credential=");
        sigv4_buf_adds(r, in->access_key_id);
        sigv4_buf_add(r, "/", 1);
        sigv4_buf_add(r, s->scope.p, s->scope.len);
        sigv4_buf_adds(r, ", SignedHeaders=");
        sigv4_buf_add(r, s->signed_names.p, s->signed_names.len);
        sigv4_buf_adds(r, ", Signature=");
        sigv4_buf_adds(r, s->out->signature);
        return r->err;
    }
    sigv4_buf_adds(r, "X-Amz-Algorithm=" SIGV4_ALGORITHM "&X-Amz-Credential=");
    sigv4_buf_add(r, s->cred.p, s->cred.len);
    sigv4_buf_adds(r, "&X-Amz-Date=");
    sigv4_buf_adds(r, s->out->amz_date);
    sigv4_buf_adds(r, "&X-Amz-Expires=");
    sigv4_buf_adds(r, s->expires);
    sigv4_buf_adds(r, "&X-Amz-SignedHeaders=");
    sigv4_buf_add(r, at(&s->encoded, 0), s->names_len);
    if (in->token) { /* signed, or appended after signing (SIGV4_OMIT_TOKEN) */
        sigv4_buf_adds(r, "&X-Amz-Security-Token=");
        sigv4_buf_add(r, at(&s->encoded, s->names_len), s->encoded.len - s->names_len);
    }
    sigv4_buf_adds(r, "&X-Amz-Signature=");
    sigv4_buf_adds(r, s->out->signature);
    return r->err;
}

/* The canonical request and the string to sign, into out. */
static enum sigv4_err signer_canonical(struct signer *s)
{
    const struct sigv4_input *in = s->in;
    struct sigv4_buf *c = &s->out->canonical, *t = &s->out->sts;
    enum sigv4_err err;
    sigv4_buf_adds(c, in->method);
    sigv4_buf_add(c, "\n", 1);
    if ((err = canonical_uri(c, s->url.path, s->url.path_len, in->flags))) return err;
    sigv4_buf_add(c, "\n", 1);
    qsort(s->ps, s->np, sizeof *s->ps, cmp_param);
    for (size_t i = 0; i < s->np; i++) {
        if (i > 0) sigv4_buf_add(c, "&", 1);
        sigv4_buf_add(c, s->ps[i].k, s->ps[i].k_len);
        sigv4_buf_add(c, "=", 1);
        sigv4_buf_add(c, s->ps[i].v, s->ps[i].v_len);
    }
    sigv4_buf_add(c, "\n", 1);
    sigv4_buf_add(c, s->hblock.p, s->hblock.len);
    sigv4_buf_add(c, "\n", 1);
    sigv4_buf_add(c, s->signed_names.p, s->signed_names.len);
    sigv4_buf_add(c, "\n", 1);
    sigv4_buf_adds(c, s->out->payload_hash);
    if (c->err) return c->err;

    char hash[65];
    if (sigv4_sha256_hex(c->p, c->len, hash)) return SIGV4_ECRYPTO;
    sigv4_buf_adds(t, SIGV4_ALGORITHM "\n");
    sigv4_buf_adds(t, s->out->amz_date);
    sigv4_buf_add(t, "\n", 1);
    sigv4_buf_add(t, s->scope.p, s->scope.len);
    sigv4_buf_add(t, "\n", 1);
    sigv4_buf_adds(t, hash);
    return t->err;
}

enum sigv4_err sigv4_sign(const struct sigv4_input *in, struct sigv4_out *out)
{
    struct signer s = {.in = in, .out = out};
    struct sigv4_buf *bufs[] = {&s.harena,       &s.parena, &s.tmp,  &s.hblock,
                                &s.signed_names, &s.scope,  &s.cred, &s.encoded};
    enum sigv4_err err;
    memset(out, 0, sizeof *out);
    sigv4_buf_init(&out->canonical, SIGV4_MAX_TEXT);
    sigv4_buf_init(&out->sts, SIGV4_MAX_TEXT);
    sigv4_buf_init(&out->result, SIGV4_MAX_TEXT);
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        sigv4_buf_init(bufs[i], SIGV4_MAX_TEXT);

    if (in->url_len > SIGV4_MAX_URL) {
        err = SIGV4_ETOOBIG;
        goto out;
    }
    if ((err = parse_url(in->url, in->url_len, &s.url))) goto out;
    if (sigv4_amz_date(in->time, out->amz_date)) {
        err = SIGV4_ETIME;
        goto out;
    }
    if (in->flags & SIGV4_UNSIGNED_PAYLOAD)
        strcpy(out->payload_hash, SIGV4_UNSIGNED);
    else if (sigv4_sha256_hex(in->body, in->body ? in->body_len : 0, out->payload_hash)) {
        err = SIGV4_ECRYPTO;
        goto out;
    }
    sigv4_buf_add(&s.scope, out->amz_date, 8);
    sigv4_buf_add(&s.scope, "/", 1);
    sigv4_buf_adds(&s.scope, in->region);
    sigv4_buf_add(&s.scope, "/", 1);
    sigv4_buf_adds(&s.scope, in->service);
    sigv4_buf_adds(&s.scope, "/aws4_request");
    if ((err = s.scope.err)) goto out;

    if ((err = signer_headers(&s))) goto out;
    if ((err = signer_url_params(&s))) goto out;
    if ((in->flags & SIGV4_QUERY) && (err = signer_auth_params(&s))) goto out;
    if ((err = signer_canonical(&s))) goto out;
    if ((err = signer_signature(&s))) goto out;
    err = signer_result(&s);
out:
    free(s.hs);
    free(s.ps);
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) sigv4_buf_free(bufs[i]);
    return err;
}

void sigv4_out_free(struct sigv4_out *out)
{
    sigv4_buf_free(&out->canonical);
    sigv4_buf_free(&out->sts);
    sigv4_buf_free(&out->result);
    out->host = NULL;
}
