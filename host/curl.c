/* curl.c: loads libcurl.so.4 on first use and fills curl_api (see curl.h for
 * why). Never unloads it: curl_global_cleanup runs at exit. */
#include "curl.h"

#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>

#define LIBCURL "libcurl.so.4"

struct curl_api curl_api;

static void cleanup(void)
{
    curl_api.global_cleanup();
}

/* Resolves one symbol into *slot; returns 0 on success. */
static int sym(void *lib, const char *name, void *slot)
{
    void *p = dlsym(lib, name);
    if (!p) return -1;
    *(void **)slot = p; /* POSIX guarantees data and function pointers convert */
    return 0;
}

const char *curl_load(void)
{
    static const char *status = "libcurl not loaded";
    static int tried;
    if (tried) return status;
    tried = 1;
    void *lib = dlopen(LIBCURL, RTLD_NOW | RTLD_LOCAL);
    if (!lib) return status = "cannot load " LIBCURL " (install libcurl4-openssl-dev)";
    static const struct {
        const char *name;
        size_t offset;
    } syms[] = {
#define SYM(field, name) {name, offsetof(struct curl_api, field)}
        SYM(global_init, "curl_global_init"),
        SYM(global_cleanup, "curl_global_cleanup"),
        SYM(easy_init, "curl_easy_init"),
        SYM(easy_setopt, "curl_easy_setopt"),
        SYM(easy_getinfo, "curl_easy_getinfo"),
        SYM(easy_cleanup, "curl_easy_cleanup"),
        SYM(easy_strerror, "curl_easy_strerror"),
        SYM(easy_pause, "curl_easy_pause"),
        SYM(easy_send, "curl_easy_send"),
        SYM(easy_recv, "curl_easy_recv"),
        SYM(multi_init, "curl_multi_init"),
        SYM(multi_cleanup, "curl_multi_cleanup"),
        SYM(multi_add_handle, "curl_multi_add_handle"),
        SYM(multi_remove_handle, "curl_multi_remove_handle"),
        SYM(multi_poll, "curl_multi_poll"),
        SYM(multi_perform, "curl_multi_perform"),
        SYM(multi_info_read, "curl_multi_info_read"),
        SYM(multi_setopt, "curl_multi_setopt"),
        SYM(multi_socket_action, "curl_multi_socket_action"),
        SYM(url, "curl_url"),
        SYM(url_cleanup, "curl_url_cleanup"),
        SYM(url_set, "curl_url_set"),
        SYM(url_get, "curl_url_get"),
        SYM(free, "curl_free"),
        SYM(slist_append, "curl_slist_append"),
        SYM(slist_free_all, "curl_slist_free_all"),
#undef SYM
    };
    struct curl_api api;
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++)
        if (sym(lib, syms[i].name, (char *)&api + syms[i].offset))
            return status = LIBCURL " lacks a function Ferry needs (libcurl too old?)";
    if (api.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return status = "curl_global_init failed";
    curl_api = api;
    atexit(cleanup);
    return status = NULL;
}
