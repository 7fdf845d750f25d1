/* log.c: levelled log lines on stderr — text for people, one JSON object per
 * line for CloudWatch (--log-format json) — stamped with UTC time and the
 * current step (the running task's context), with every secret registered by
 * log.secret masked. The last lines of each step are kept (capped) so reports
 * such as JUnit can quote them. */
#include "log.h"

#include "json/json.h"
#include "redact.h"
#include "task/task.h"

#include <lauxlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define EXCERPT_LINES 20   /* lines kept per step */
#define EXCERPT_WIDTH 2000 /* bytes kept per line */

static const char EXCERPTS_KEY = 'x'; /* registry: step name -> ring of lines */

static const char *const level_names[] = {"debug", "info", "warn", "error", NULL};

/* "2026-11-26T16:19:08.123Z" into buf (at least 25 bytes). */
static void timestamp(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* [-0, +0, m] Appends line to the excerpt ring of step. */
static void keep_excerpt(lua_State *L, const char *step, const char *line, size_t len)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &EXCERPTS_KEY) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &EXCERPTS_KEY);
    }
    if (lua_getfield(L, -1, step) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_createtable(L, EXCERPT_LINES, 1);
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, step);
    }
    lua_getfield(L, -1, "n");
    lua_Integer n = lua_tointeger(L, -1) + 1;
    lua_pop(L, 1);
    lua_pushlstring(L, line, len > EXCERPT_WIDTH ? EXCERPT_WIDTH : len);
    lua_rawseti(L, -2, (n - 1) % EXCERPT_LINES + 1);
    lua_pushinteger(L, n);
    lua_setfield(L, -2, "n");
    lua_pop(L, 2);
}

void log_write(lua_State *L, enum log_level level, const char *msg, size_t len)
{
    struct host *h = host_get(L);
    int top = lua_gettop(L);
    const char *step = NULL;
    task_push_context(L);
    if (lua_istable(L, -1) && lua_getfield(L, -1, "step") == LUA_TSTRING)
        step = lua_tostring(L, -1);
    msg = redact_push(h->secrets, L, msg, len);
    len = lua_rawlen(L, -1);
    if (step) keep_excerpt(L, step, msg, len);
    if (level < h->log_level) {
        lua_settop(L, top);
        return;
    }
    char ts[32];
    timestamp(ts, sizeof ts);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    if (h->log_format == LOG_JSON) {
        luaL_addstring(&b, "{\"time\":\"");
        luaL_addstring(&b, ts);
        luaL_addstring(&b, "\",\"level\":\"");
        luaL_addstring(&b, level_names[level]);
        luaL_addchar(&b, '"');
        if (step) {
            luaL_addstring(&b, ",\"step\":");
            json_append_string(&b, step, strlen(step));
        }
        luaL_addstring(&b, ",\"msg\":");
        json_append_string(&b, msg, len);
        luaL_addstring(&b, "}\n");
    } else {
        static const char *const tags[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
        luaL_addstring(&b, ts);
        luaL_addchar(&b, ' ');
        luaL_addstring(&b, tags[level]);
        luaL_addchar(&b, ' ');
        if (step) {
            luaL_addchar(&b, '[');
            luaL_addstring(&b, step);
            luaL_addstring(&b, "] ");
        }
        luaL_addlstring(&b, msg, len);
        luaL_addchar(&b, '\n');
    }
    luaL_pushresult(&b);
    size_t n;
    const char *line = lua_tolstring(L, -1, &n);
    fwrite(line, 1, n, stderr);
    fflush(stderr);
    lua_settop(L, top);
}

/* [-0, +1, e] The message: fmt formatted with the rest (string.format), or
 * tostring(fmt) alone. */
static const char *format_message(lua_State *L, size_t *len)
{
    int n = lua_gettop(L);
    if (n <= 1) return luaL_tolstring(L, 1, len);
    lua_getglobal(L, "string");
    lua_getfield(L, -1, "format");
    lua_remove(L, -2);
    lua_insert(L, 1);
    lua_call(L, n, 1);
    return lua_tolstring(L, -1, len);
}

static int log_at(lua_State *L, enum log_level level)
{
    luaL_checkany(L, 1);
    size_t len;
    const char *msg = format_message(L, &len);
    log_write(L, level, msg, len);
    return 0;
}

static int log_debug(lua_State *L)
{
    return log_at(L, LOG_DEBUG);
}

static int log_info(lua_State *L)
{
    return log_at(L, LOG_INFO);
}

static int log_warn(lua_State *L)
{
    return log_at(L, LOG_WARN);
}

static int log_error(lua_State *L)
{
    return log_at(L, LOG_ERROR);
}

/* log.secret(value) -> value: masks value everywhere Ferry prints from now on. */
static int log_secret(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    /* shorter values are not masked (they would mask ordinary text); a
     * secret that cannot be registered must not go on unmasked */
    if (len >= REDACT_MIN && redact_add(host_get(L)->secrets, s, len) != 0)
        return luaL_error(L, "log.secret: cannot register another secret (at most %d)", REDACT_MAX);
    lua_settop(L, 1);
    return 1;
}

/* log.redact(text) -> text with every registered secret masked */
static int log_redact(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    redact_push(host_get(L)->secrets, L, s, len);
    return 1;
}

/* log.excerpt(step) -> the last lines logged in that step, oldest first */
static int log_excerpt(lua_State *L)
{
    const char *step = luaL_checkstring(L, 1);
    luaL_Buffer b;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &EXCERPTS_KEY) != LUA_TTABLE ||
        lua_getfield(L, -1, step) != LUA_TTABLE) {
        lua_pushliteral(L, "");
        return 1;
    }
    int ring = lua_gettop(L);
    lua_getfield(L, ring, "n");
    lua_Integer n = lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_Integer first = n > EXCERPT_LINES ? n - EXCERPT_LINES + 1 : 1;
    luaL_buffinit(L, &b);
    for (lua_Integer i = first; i <= n; i++) {
        lua_rawgeti(L, ring, (i - 1) % EXCERPT_LINES + 1);
        luaL_addvalue(&b);
        luaL_addchar(&b, '\n');
    }
    luaL_pushresult(&b);
    return 1;
}

/* log.level([name]) -> the current level's name; with name, sets it. */
static int log_level(lua_State *L)
{
    struct host *h = host_get(L);
    if (!lua_isnoneornil(L, 1))
        h->log_level = (enum log_level)luaL_checkoption(L, 1, NULL, level_names);
    lua_pushstring(L, level_names[h->log_level]);
    return 1;
}

/* log.format() -> "text" or "json" */
static int log_format(lua_State *L)
{
    lua_pushstring(L, host_get(L)->log_format == LOG_JSON ? "json" : "text");
    return 1;
}

int luaopen_log(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"debug", log_debug},   {"error", log_error},   {"excerpt", log_excerpt},
        {"format", log_format}, {"info", log_info},     {"level", log_level},
        {"redact", log_redact}, {"secret", log_secret}, {"warn", log_warn},
        {NULL, NULL},
    };
    luaL_newlib(L, fns);
    return 1;
}
