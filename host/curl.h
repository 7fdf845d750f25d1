/* curl.h: libcurl, loaded on first use.
 *
 * Debian's libcurl brings some thirty shared libraries with it (HTTP/2, SSH,
 * LDAP, Kerberos, ...); linking it outright made every `ferry` start take
 * five times longer and four times the memory, even for runs that never make
 * a request. So Ferry includes this header instead of <curl/curl.h>: the
 * types are curl's own, and the curl_* functions Ferry calls are pointers
 * filled by curl_load() from libcurl.so.4. Call curl_load() (loop.c does,
 * before its first transfer) and check it before any other curl_* call. */
#ifndef FERRY_CURL_H
#define FERRY_CURL_H

#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>

struct curl_api {
    CURLcode (*global_init)(long flags);
    void (*global_cleanup)(void);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *e, CURLoption opt, ...);
    CURLcode (*easy_getinfo)(CURL *e, CURLINFO info, ...);
    void (*easy_cleanup)(CURL *e);
    const char *(*easy_strerror)(CURLcode code);
    CURLcode (*easy_pause)(CURL *e, int bitmask);
    CURLcode (*easy_send)(CURL *e, const void *buf, size_t len, size_t *n);
    CURLcode (*easy_recv)(CURL *e, void *buf, size_t len, size_t *n);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_cleanup)(CURLM *m);
    CURLMcode (*multi_add_handle)(CURLM *m, CURL *e);
    CURLMcode (*multi_remove_handle)(CURLM *m, CURL *e);
    CURLMcode (*multi_poll)(CURLM *m, struct curl_waitfd fds[], unsigned n, int ms, int *ret);
    CURLMcode (*multi_perform)(CURLM *m, int *running);
    CURLMsg *(*multi_info_read)(CURLM *m, int *left);
    CURLMcode (*multi_setopt)(CURLM *m, CURLMoption opt, ...);
    CURLMcode (*multi_socket_action)(CURLM *m, curl_socket_t s, int ev, int *running);
    CURLU *(*url)(void);
    void (*url_cleanup)(CURLU *u);
    CURLUcode (*url_set)(CURLU *u, CURLUPart what, const char *part, unsigned int flags);
    CURLUcode (*url_get)(const CURLU *u, CURLUPart what, char **part, unsigned int flags);
    void (*free)(void *p);
    struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
    void (*slist_free_all)(struct curl_slist *l);
};

/* Filled once by curl_load; read-only afterwards (the one other global). */
extern struct curl_api curl_api;

/* Loads libcurl and runs curl_global_init once. Returns NULL on success, or
 * a static message saying why libcurl cannot be used. */
const char *curl_load(void);

#undef curl_easy_setopt /* curl.h's own argument-count macros */
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_global_init         curl_api.global_init
#define curl_global_cleanup      curl_api.global_cleanup
#define curl_easy_init           curl_api.easy_init
#define curl_easy_setopt         curl_api.easy_setopt
#define curl_easy_getinfo        curl_api.easy_getinfo
#define curl_easy_cleanup        curl_api.easy_cleanup
#define curl_easy_strerror       curl_api.easy_strerror
#define curl_easy_pause          curl_api.easy_pause
#define curl_easy_send           curl_api.easy_send
#define curl_easy_recv           curl_api.easy_recv
#define curl_multi_init          curl_api.multi_init
#define curl_multi_cleanup       curl_api.multi_cleanup
#define curl_multi_add_handle    curl_api.multi_add_handle
#define curl_multi_remove_handle curl_api.multi_remove_handle
#define curl_multi_poll          curl_api.multi_poll
#define curl_multi_perform       curl_api.multi_perform
#define curl_multi_info_read     curl_api.multi_info_read
#define curl_multi_setopt        curl_api.multi_setopt
#define curl_multi_socket_action curl_api.multi_socket_action
#define curl_url                 curl_api.url
#define curl_url_cleanup         curl_api.url_cleanup
#define curl_url_set             curl_api.url_set
#define curl_url_get             curl_api.url_get
#define curl_free                curl_api.free
#define curl_slist_append        curl_api.slist_append
#define curl_slist_free_all      curl_api.slist_free_all

#endif
