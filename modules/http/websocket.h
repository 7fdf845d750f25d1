/* websocket.h: http.websocket (websocket.c), registered in http.c's luaL_Reg. */
#ifndef FERRY_HTTP_WEBSOCKET_H
#define FERRY_HTTP_WEBSOCKET_H

#include <lua.h>

/* http.websocket{url, protocols, headers, ...} -> a connection (suspends the task). */
int http_websocket(lua_State *L);

#endif
