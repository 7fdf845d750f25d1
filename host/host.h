/* host.h: the per-run state shared by the host and the native modules.
 *
 * One struct host per process, created by main() and reached from Lua through
 * the registry (host_get). Nothing else in Ferry is a mutable global except the
 * signal pipe in loop.c. */
#ifndef FERRY_HOST_H
#define FERRY_HOST_H

#include <lua.h>

#define FERRY_VERSION "0.1.0"

/* Process exit codes (DESIGN.md): stable, documented in README.md. */
enum ferry_exit {
    EXIT_OK = 0,
    EXIT_STEP_FAILED = 1, /* a step failed; teardown succeeded */
    EXIT_USAGE = 2,       /* usage, script or input error */
    EXIT_TEARDOWN = 3,    /* teardown failed: resources may be left */
    EXIT_SIGINT = 130,
    EXIT_SIGTERM = 143,
};

enum log_format { LOG_TEXT, LOG_JSON };
enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

struct loop;
struct redact;

struct host {
    lua_State *L;
    struct loop *loop;      /* created on first use: `ferry version` needs none */
    struct redact *secrets; /* values masked in everything Ferry prints */
    enum log_format log_format;
    enum log_level log_level;
    int signal;  /* last SIGINT/SIGTERM received, or 0 */
    void *tasks; /* live tasks (modules/task): the ones signals cancel */
    unsigned task_ids;
};

/* [-0, +0, m] Makes h the host of L's state (h->L = L). */
void host_attach(struct host *h, lua_State *L);

/* [-0, +0, -] The host that owns L (any thread of its state). */
struct host *host_get(lua_State *L);

/* The loop, created on first call. Never NULL (aborts when out of memory). */
struct loop *host_loop(struct host *h);

/* [-n, +1, e] Runs the embedded Lua source `name` (see embed.h) with the n
 * values on top of the stack as its arguments; leaves its one result. The
 * native modules with a Lua half (task, http) return this from luaopen_. */
struct embed_file;
const struct embed_file *host_embed_find(const char *name);
int host_embed_call(lua_State *L, const char *name, int nargs);

#endif
