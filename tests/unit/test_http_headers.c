/* test_http_headers.c: the response header block as a table
 * (modules/http/request.c: http_req_header, http_req_push_headers) — names
 * lowercased, values trimmed, repeats joined, a new status line starting the
 * block afresh — and no read past the end of the block, whatever its last
 * line (found by tests/fuzz/fuzz_http_headers.c: a chunked response whose
 * trailers end in a line shorter than "HTTP/"). */
#include "http/http_internal.h"
#include "unit.h"

#include <lauxlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static lua_State *L;

/* [-0, +1, -] The table of the header block r holds. */
static void push_headers(struct http_req *r)
{
    lua_settop(L, 0);
    http_req_push_headers(L, r);
}

/* The value of name in the table on top, or NULL. */
static const char *field(const char *name)
{
    lua_getfield(L, -1, name);
    const char *v = lua_tostring(L, -1);
    lua_pop(L, 1); /* the table keeps the string alive */
    return v;
}

TEST(lines_become_a_table_of_lowercase_names)
{
    static const char *const lines[] = {
        "HTTP/1.1 100 Continue\r\n",
        "\r\n",
        "HTTP/1.1 200 OK\r\n",
        "Content-Type:  application/json \r\n",
        "Set-Cookie: a=1\r\n",
        "set-cookie: b=2\r\n",
        "X-Empty:\r\n",
        "\r\n",
    };
    struct http_req r;
    memset(&r, 0, sizeof r);
    r.head.max = 4096;
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        CHECK(http_req_header(&r, lines[i], strlen(lines[i])) == 0);
    push_headers(&r);
    CHECK(field("content-type") && strcmp(field("content-type"), "application/json") == 0);
    CHECK(field("set-cookie") && strcmp(field("set-cookie"), "a=1, b=2") == 0);
    CHECK(field("x-empty") && strcmp(field("x-empty"), "") == 0);
    lua_pushnil(L);
    int n = 0;
    while (lua_next(L, -2)) {
        n++;
        lua_pop(L, 1);
    }
    CHECK(n == 3); /* neither status line is a header */
    http_buf_free(&r.head);
}

TEST(a_short_last_line_is_not_read_past)
{
    /* The block ends right before a page the process may not read, its last
     * line "a:\n" (a trailer after a chunked body: curl adds no blank line
     * after trailers). Reading 5 bytes there to look for "HTTP/" faults. */
    static const char block[] = "HTTP/1.1 200 OK\r\nX-A: 1\r\na:\n";
    size_t page = (size_t)sysconf(_SC_PAGESIZE), n = sizeof block - 1;
    char *mem = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(mem != MAP_FAILED);
    if (mem == MAP_FAILED) return;
    CHECK(mprotect(mem + page, page, PROT_NONE) == 0);
    struct http_req r;
    memset(&r, 0, sizeof r);
    r.head.p = mem + page - n; /* borrowed: not freed through r */
    r.head.len = r.head.cap = r.head.max = n;
    memcpy(r.head.p, block, n);
    push_headers(&r);
    CHECK(field("x-a") && strcmp(field("x-a"), "1") == 0);
    CHECK(field("a") && strcmp(field("a"), "") == 0);
    munmap(mem, 2 * page);
}

int main(void)
{
    static const struct unit_test tests[] = {
        {"lines_become_a_table_of_lowercase_names", lines_become_a_table_of_lowercase_names},
        {"a_short_last_line_is_not_read_past", a_short_last_line_is_not_read_past},
        {NULL, NULL},
    };
    L = luaL_newstate();
    int rc = unit_run("http_headers", tests);
    lua_close(L);
    return rc;
}
