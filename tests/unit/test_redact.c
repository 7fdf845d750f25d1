/* test_redact.c: masking of registered secrets (host/redact.c). */
#include "redact.h"
#include "unit.h"

#include <lauxlib.h>
#include <string.h>

static lua_State *L;

static const char *masked(struct redact *r, const char *s)
{
    lua_settop(L, 0);
    return redact_push(r, L, s, strlen(s));
}

TEST(masks_every_occurrence)
{
    struct redact *r = redact_new();
    CHECK(redact_add(r, "s3cr3t", 6) == 0);
    CHECK(strcmp(masked(r, "a s3cr3t b s3cr3t"), "a **** b ****") == 0);
    redact_free(r);
}

TEST(longest_secret_wins)
{
    struct redact *r = redact_new();
    redact_add(r, "token", 5);
    redact_add(r, "token-long-value", 16);
    CHECK(strcmp(masked(r, "x=token-long-value;y=token"), "x=****;y=****") == 0);
    redact_free(r);
}

TEST(short_values_are_refused)
{
    struct redact *r = redact_new();
    CHECK(redact_add(r, "abc", 3) == -1);
    CHECK(strcmp(masked(r, "abc"), "abc") == 0);
    redact_free(r);
}

TEST(duplicates_are_kept_once)
{
    struct redact *r = redact_new();
    CHECK(redact_add(r, "password", 8) == 0);
    CHECK(redact_add(r, "password", 8) == 0);
    CHECK(strcmp(masked(r, "password"), "****") == 0);
    redact_free(r);
}

TEST(binary_safe_and_null_set)
{
    CHECK(strcmp(masked(NULL, "plain"), "plain") == 0);
    struct redact *r = redact_new();
    redact_add(r, "ab\0cd", 5);
    lua_settop(L, 0);
    size_t len;
    redact_push(r, L, "xab\0cdy", 7);
    const char *s = lua_tolstring(L, -1, &len);
    CHECK(len == 6 && memcmp(s, "x****y", 6) == 0);
    redact_free(r);
}

int main(void)
{
    static const struct unit_test tests[] = {
        {"masks_every_occurrence", masks_every_occurrence},
        {"longest_secret_wins", longest_secret_wins},
        {"short_values_are_refused", short_values_are_refused},
        {"duplicates_are_kept_once", duplicates_are_kept_once},
        {"binary_safe_and_null_set", binary_safe_and_null_set},
        {NULL, NULL},
    };
    L = luaL_newstate();
    int rc = unit_run("redact", tests);
    lua_close(L);
    return rc;
}
