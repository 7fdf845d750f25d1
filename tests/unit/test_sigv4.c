/* test_sigv4.c: the SigV4 core without Lua (modules/aws/sigv4*.c): capped
 * buffers, encodings, path normalisation and double encoding, the caps on
 * URLs, parameters and headers, and the errors for bad URLs and headers.
 * The full signing vectors are in tests/lua/sigv4_spec.lua. */
#include "aws/sigv4.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

/* A header-mode input for url at 2015-08-30T12:36:00Z, service "service". */
static struct sigv4_input input(const char *url, unsigned flags)
{
    struct sigv4_input in = {
        .method = "GET",
        .url = url,
        .url_len = strlen(url),
        .access_key_id = "AKIDEXAMPLE",
        .secret = SECRET,
        .secret_len = strlen(SECRET),
        .region = "us-east-1",
        .service = "service",
        .time = 1440938160,
        .expires = 3600,
        .flags = flags,
    };
    return in;
}

/* The second line of the canonical request of url (into out, 256 bytes). */
static enum sigv4_err canonical_uri(const char *url, unsigned flags, char *out)
{
    struct sigv4_input in = input(url, flags);
    struct sigv4_out o;
    enum sigv4_err err = sigv4_sign(&in, &o);
    out[0] = '\0';
    if (err == SIGV4_OK) {
        const char *start = strchr(o.canonical.p, '\n') + 1;
        size_t n = (size_t)(strchr(start, '\n') - start);
        if (n < 256) {
            memcpy(out, start, n);
            out[n] = '\0';
        }
    }
    sigv4_out_free(&o);
    return err;
}

TEST(buffers_stop_at_their_cap_and_remember_why)
{
    struct sigv4_buf b;
    sigv4_buf_init(&b, 8);
    CHECK(sigv4_buf_add(&b, "12345678", 8) == 0);
    CHECK(sigv4_buf_add(&b, "9", 1) == -1);
    CHECK(b.err == SIGV4_ETOOBIG);
    CHECK(sigv4_buf_add(&b, "", 0) == -1); /* sticky */
    CHECK(b.len == 8 && strcmp(b.p, "12345678") == 0);
    sigv4_buf_free(&b);
    sigv4_buf_free(&b); /* idempotent */
    CHECK(b.p == NULL);
}

TEST(uri_encoding_is_rfc3986_with_uppercase_hex)
{
    struct sigv4_buf b;
    sigv4_buf_init(&b, 1024);
    sigv4_uri_encode(&b, "a/b c~-._\xe1\x88\xb4+=", 14, 1);
    CHECK(strcmp(b.p, "a%2Fb%20c~-._%E1%88%B4%2B%3D") == 0);
    sigv4_buf_reset(&b);
    sigv4_uri_encode(&b, "/a b/", 5, 0);
    CHECK(strcmp(b.p, "/a%20b/") == 0);
    sigv4_buf_reset(&b);
    sigv4_uri_decode(&b, "%41%zz%4+%e1%88%b4%", 19);
    CHECK(strcmp(b.p, "A%zz%4+\xe1\x88\xb4%") == 0);
    sigv4_buf_free(&b);
}

TEST(amz_date_covers_1970_to_9999)
{
    char d[17];
    CHECK(sigv4_amz_date(0, d) == 0 && strcmp(d, "19700101T000000Z") == 0);
    CHECK(sigv4_amz_date(1440938160, d) == 0 && strcmp(d, "20150830T123600Z") == 0);
    CHECK(sigv4_amz_date(SIGV4_MAX_TIME, d) == 0 && strcmp(d, "99991231T235959Z") == 0);
    CHECK(sigv4_amz_date(-1, d) == -1);
    CHECK(sigv4_amz_date(SIGV4_MAX_TIME + 1, d) == -1);
}

TEST(paths_normalise_and_double_encode_except_for_s3)
{
    char uri[256];
    unsigned std = SIGV4_NORMALIZE | SIGV4_DOUBLE_ENCODE;
    CHECK(canonical_uri("https://h", std, uri) == SIGV4_OK && strcmp(uri, "/") == 0);
    CHECK(canonical_uri("https://h//example//", std, uri) == 0 && strcmp(uri, "/example/") == 0);
    CHECK(canonical_uri("https://h/a/b/../..", std, uri) == 0 && strcmp(uri, "/") == 0);
    CHECK(canonical_uri("https://h/a/./b/../c", std, uri) == 0 && strcmp(uri, "/a/c") == 0);
    CHECK(canonical_uri("https://h/../../x", std, uri) == 0 && strcmp(uri, "/x") == 0);
    CHECK(canonical_uri("https://h/arn%3Aaws/x y", std, uri) == 0 &&
          strcmp(uri, "/arn%253Aaws/x%20y") == 0);
    /* S3: as it stands, encoded once: an encoded key keeps its encoding */
    CHECK(canonical_uri("https://h//a/../b%3A c+", 0, uri) == 0 &&
          strcmp(uri, "//a/../b%3A%20c%2B") == 0);
}

TEST(bad_urls_are_refused)
{
    const char *bad[] = {"ftp://h/",      "https//h/",      "https:///x",       "https://h:8x/",
                         "https://[::1/", "https://h/a\nb", "http://user@:80/", "https://a b/"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct sigv4_input in = input(bad[i], 0);
        struct sigv4_out o;
        CHECK(sigv4_sign(&in, &o) == SIGV4_EURL);
        sigv4_out_free(&o);
    }
}

TEST(caps_on_url_parameters_and_headers)
{
    size_t n = SIGV4_MAX_URL + 16;
    char *url = malloc(n + 1);
    memcpy(url, "https://h/?", 11);
    memset(url + 11, 'a', n - 11);
    url[n] = '\0';
    struct sigv4_input in = input(url, 0);
    struct sigv4_out o;
    CHECK(sigv4_sign(&in, &o) == SIGV4_ETOOBIG);
    sigv4_out_free(&o);

    size_t len = 11; /* SIGV4_MAX_PARAMS + 1 parameters, short of the URL cap */
    for (int i = 0; i <= SIGV4_MAX_PARAMS; i++) len += (size_t)sprintf(url + len, "p=%d&", i);
    in = input(url, 0);
    in.url_len = len - 1;
    CHECK(sigv4_sign(&in, &o) == SIGV4_ETOOBIG);
    sigv4_out_free(&o);
    free(url);

    struct sigv4_header hs[SIGV4_MAX_HEADERS + 1];
    for (size_t i = 0; i <= SIGV4_MAX_HEADERS; i++) hs[i] = (struct sigv4_header){"x-h", "v", 3, 1};
    in = input("https://h/", 0);
    in.headers = hs;
    in.nheaders = SIGV4_MAX_HEADERS + 1;
    CHECK(sigv4_sign(&in, &o) == SIGV4_ETOOBIG);
    sigv4_out_free(&o);
    in.nheaders = SIGV4_MAX_HEADERS; /* at the cap: fine, all joined on one line */
    CHECK(sigv4_sign(&in, &o) == SIGV4_OK);
    CHECK(strstr(o.canonical.p, "\nx-h:v,v,v,") != NULL);
    sigv4_out_free(&o);
}

TEST(header_names_and_values_that_split_a_line_are_refused)
{
    struct sigv4_header bad[] = {
        {"x h", "v", 3, 1}, {"", "v", 0, 1}, {"x", "a\r\nb: c", 1, 8}, {"x", "a\0b", 1, 3}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct sigv4_input in = input("https://h/", 0);
        struct sigv4_out o;
        in.headers = &bad[i];
        in.nheaders = 1;
        CHECK(sigv4_sign(&in, &o) == SIGV4_EHEADER);
        sigv4_out_free(&o);
    }
}

TEST(query_mode_keeps_the_secret_out_and_the_token_in)
{
    struct sigv4_input in = input("https://h/?b=2&a=1", SIGV4_QUERY);
    struct sigv4_out o;
    in.token = "tok/en+";
    CHECK(sigv4_sign(&in, &o) == SIGV4_OK);
    CHECK(strncmp(o.result.p, "https://h/?b=2&a=1&X-Amz-Algorithm=", 35) == 0);
    CHECK(strstr(o.result.p, "&X-Amz-Security-Token=tok%2Fen%2B&X-Amz-Signature=") != NULL);
    CHECK(strstr(o.canonical.p, "\nX-Amz-Algorithm=") != NULL);
    CHECK(strstr(o.canonical.p, "&a=1&b=2\n") != NULL); /* byte order: X < a */
    CHECK(strstr(o.result.p, "EXAMPLEKEY") == NULL && strstr(o.canonical.p, "EXAMPLEKEY") == NULL);
    sigv4_out_free(&o);
}

int main(void)
{
    static const struct unit_test tests[] = {
        {"buffers_stop_at_their_cap_and_remember_why", buffers_stop_at_their_cap_and_remember_why},
        {"uri_encoding_is_rfc3986_with_uppercase_hex", uri_encoding_is_rfc3986_with_uppercase_hex},
        {"amz_date_covers_1970_to_9999", amz_date_covers_1970_to_9999},
        {"paths_normalise_and_double_encode_except_for_s3",
         paths_normalise_and_double_encode_except_for_s3},
        {"bad_urls_are_refused", bad_urls_are_refused},
        {"caps_on_url_parameters_and_headers", caps_on_url_parameters_and_headers},
        {"header_names_and_values_that_split_a_line_are_refused",
         header_names_and_values_that_split_a_line_are_refused},
        {"query_mode_keeps_the_secret_out_and_the_token_in",
         query_mode_keeps_the_secret_out_and_the_token_in},
        {NULL, NULL},
    };
    return unit_run("sigv4", tests);
}
