/* redact.h: the secrets registered by log.secret, masked in everything Ferry
 * prints (logs, error reports, JUnit files). */
#ifndef FERRY_REDACT_H
#define FERRY_REDACT_H

#include <lua.h>
#include <stddef.h>

#define REDACT_MASK "****"
#define REDACT_MIN  4     /* shorter values would mask ordinary text */
#define REDACT_MAX  65536 /* a cap: a script cannot grow the set without bound */

struct redact;

/* Caller frees with redact_free. NULL when out of memory. */
struct redact *redact_new(void);
void redact_free(struct redact *r);

/* Copies s. Returns 0, or -1 when it is shorter than REDACT_MIN, REDACT_MAX
 * secrets are known already, or memory ran out. */
int redact_add(struct redact *r, const char *s, size_t len);

/* [-0, +1, m] Pushes s with every registered secret replaced by REDACT_MASK
 * and returns the pushed string (valid while it stays on the stack). r may be
 * NULL. */
const char *redact_push(const struct redact *r, lua_State *L, const char *s, size_t len);

#endif
