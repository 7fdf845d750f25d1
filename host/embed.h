/* embed.h: the pure-Lua sources compiled into the binary (see embed.sh). */
#ifndef FERRY_EMBED_H
#define FERRY_EMBED_H

#include <stddef.h>

struct embed_file {
    const char *name;  /* module name: "workflow", "workflow.junit" */
    const char *chunk; /* chunk name for messages: "@modules/workflow/workflow.lua" */
    const char *src;
    size_t len;
};

/* Terminated by an entry whose name is NULL. */
extern const struct embed_file embed_files[];

#endif
