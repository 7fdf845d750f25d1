/* log.h: log lines from C (modules report warnings the same way scripts do). */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

#include "host.h"

#include <lua.h>
#include <stddef.h>

/* [-0, +0, m] Writes one log line at level with the current step as context,
 * secrets masked. */
void log_write(lua_State *L, enum log_level level, const char *msg, size_t len);

int luaopen_log(lua_State *L);

#endif
