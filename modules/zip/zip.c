/* zip.c: the zip module on libzip. zip.read turns an in-memory archive (a
 * CodePipeline artifact) into a table path -> contents; zip.write does the
 * reverse, with entries in byte order and a fixed timestamp, so equal input
 * gives equal bytes. Archives are untrusted input: the number of files and the
 * total uncompressed size are capped, first by what the central directory
 * declares and then by what decompression actually yields. Bad archives and
 * exceeded caps return nil, message; bad arguments raise; failures inside
 * zip.write (memory) raise. libzip objects live in a userdata whose one
 * idempotent finalizer (__close, __gc) releases them on every exit.
 * Calls libzip and Lua only. */
#include <lauxlib.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#define ARCHIVE_MT        "ferry.zip.Archive"
#define DEFAULT_MAX_SIZE  (256 * 1024 * 1024) /* bytes, all files together */
#define DEFAULT_MAX_FILES 10000
#define READ_CHUNK        65536
#define DOS_DATE_1980     0x21 /* 1980-01-01, the earliest DOS date */

/* The libzip objects of one call. src is non-NULL only while this struct owns
 * a reference to the source (before zip_open_from_source takes it, or the
 * extra reference zip.write keeps to read the written bytes back). */
struct archive {
    zip_source_t *src;
    zip_t *za;
    zip_file_t *zf;
};

/* One file zip.write adds; name and data point into the caller's table. */
struct entry {
    const char *name;
    size_t name_len;
    const char *data;
    size_t data_len;
};

/* __close and __gc: releases whatever the archive still holds; idempotent. */
static int archive_close(lua_State *L)
{
    struct archive *a = luaL_checkudata(L, 1, ARCHIVE_MT);
    if (a->zf) zip_fclose(a->zf);
    if (a->za) zip_discard(a->za);
    if (a->src) zip_source_free(a->src);
    a->zf = NULL;
    a->za = NULL;
    a->src = NULL;
    return 0;
}

static const luaL_Reg archive_meta[] = {
    {"__close", archive_close},
    {"__gc", archive_close},
    {NULL, NULL},
};

/* [-0, +1, m] Pushes an empty archive userdata marked to-be-closed. When keep
 * is a stack index, that value (the input string) becomes the userdata's user
 * value, so it outlives any libzip source reading from it. */
static struct archive *push_archive(lua_State *L, int keep)
{
    struct archive *a = lua_newuserdatauv(L, sizeof *a, 1);
    a->src = NULL;
    a->za = NULL;
    a->zf = NULL;
    if (luaL_newmetatable(L, ARCHIVE_MT)) luaL_setfuncs(L, archive_meta, 0);
    lua_setmetatable(L, -2);
    if (keep) {
        lua_pushvalue(L, keep);
        lua_setiuservalue(L, -2, 1);
    }
    lua_toclose(L, -1);
    return a;
}

/* [-0, +2, m] Pushes nil and "zip.read: <message>"; returns 2 for `return`. */
static int fail(lua_State *L, const char *fmt, ...)
{
    va_list ap;
    lua_pushnil(L);
    lua_pushliteral(L, "zip.read: ");
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_concat(L, 2);
    return 2;
}

/* [-0, +0, e] The optional positive integer opts[key] (opts at index idx), or def. */
static lua_Integer opt_limit(lua_State *L, int idx, const char *key, lua_Integer def)
{
    lua_Integer v = def;
    int isnum;
    if (lua_getfield(L, idx, key) != LUA_TNIL) {
        v = lua_tointegerx(L, -1, &isnum);
        if (!isnum || v < 0)
            luaL_error(L, "bad argument #%d to 'read' (%s must be a non-negative integer)", idx,
                       key);
    }
    lua_pop(L, 1);
    return v;
}

static int is_directory(const char *name)
{
    size_t n = strlen(name);
    return n > 0 && name[n - 1] == '/';
}

/* [-0, +1, m] Reads entry i of a->za and pushes its contents (returns 1) or
 * what went wrong (returns 0), adding the bytes decompressed to *total and
 * stopping once it passes max_size. a->zf is closed either way. */
static int read_entry(lua_State *L, struct archive *a, zip_uint64_t i, lua_Integer max_size,
                      lua_Integer *total)
{
    luaL_Buffer b;
    zip_int64_t n;
    const char *err = NULL;
    if (!(a->zf = zip_fopen_index(a->za, i, 0))) {
        lua_pushstring(L, zip_strerror(a->za));
        return 0;
    }
    luaL_buffinit(L, &b);
    for (;;) {
        char *p = luaL_prepbuffsize(&b, READ_CHUNK);
        if ((n = zip_fread(a->zf, p, READ_CHUNK)) <= 0) {
            if (n < 0) err = zip_file_strerror(a->zf); /* valid until zip_fclose */
            break;
        }
        luaL_addsize(&b, (size_t)n);
        if ((*total += n) > max_size) {
            err = "over max_size";
            break;
        }
    }
    luaL_pushresult(&b);
    if (err) {
        lua_pop(L, 1);
        lua_pushstring(L, err);
    }
    zip_fclose(a->zf);
    a->zf = NULL;
    return err == NULL;
}

/* zip.read(data [, {max_size, max_files}]) -> {[path] = contents} | nil, message */
static int zip_read(lua_State *L)
{
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);
    lua_Integer max_size = DEFAULT_MAX_SIZE, max_files = DEFAULT_MAX_FILES;
    lua_Integer files = 0, declared = 0, total = 0;
    zip_int64_t count;
    zip_error_t ze;
    struct zip_stat st;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        max_size = opt_limit(L, 2, "max_size", max_size);
        max_files = opt_limit(L, 2, "max_files", max_files);
    }
    lua_settop(L, 2);
    struct archive *a = push_archive(L, 1); /* 3: closed on return or error */
    if (len == 0) return fail(L, "not a zip archive (no data)");
    zip_error_init(&ze);
    if (!(a->src = zip_source_buffer_create(data, len, 0, &ze))) {
        fail(L, "%s", zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return 2;
    }
    if (!(a->za = zip_open_from_source(a->src, ZIP_RDONLY, &ze))) {
        fail(L, "not a zip archive (%s)", zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return 2;
    }
    a->src = NULL; /* the archive owns the source now */
    zip_error_fini(&ze);

    /* First the central directory: count files and their declared sizes. */
    count = zip_get_num_entries(a->za, 0);
    for (zip_int64_t i = 0; i < count; i++) {
        if (zip_stat_index(a->za, (zip_uint64_t)i, 0, &st) != 0)
            return fail(L, "entry %I: %s", (lua_Integer)i, zip_strerror(a->za));
        if (!(st.valid & ZIP_STAT_NAME)) return fail(L, "entry %I has no name", (lua_Integer)i);
        if (is_directory(st.name)) continue;
        if (++files > max_files)
            return fail(L, "more than %I files in the archive (max_files)", max_files);
        if ((st.valid & ZIP_STAT_SIZE) && st.size > (zip_uint64_t)(max_size - declared))
            return fail(L, "uncompressed size over %I bytes (max_size)", max_size);
        if (st.valid & ZIP_STAT_SIZE) declared += (lua_Integer)st.size;
    }

    /* Then the contents, counting what decompression really yields. */
    lua_createtable(L, 0, (int)files); /* 4: the result */
    for (zip_int64_t i = 0; i < count; i++) {
        if (zip_stat_index(a->za, (zip_uint64_t)i, 0, &st) != 0)
            return fail(L, "entry %I: %s", (lua_Integer)i, zip_strerror(a->za));
        if (is_directory(st.name)) continue;
        lua_pushstring(L, st.name);                                 /* 5: the path */
        if (!read_entry(L, a, (zip_uint64_t)i, max_size, &total)) { /* 6: the message */
            if (total > max_size)
                return fail(L, "uncompressed size over %I bytes (max_size)", max_size);
            return fail(L, "%s: %s", lua_tostring(L, 5), lua_tostring(L, 6));
        }
        lua_rawset(L, 4); /* result[path] = contents */
    }
    return 1;
}

static int entry_cmp(const void *x, const void *y)
{
    const struct entry *a = x, *b = y;
    size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
    int c = memcmp(a->name, b->name, n);
    if (c) return c;
    return (a->name_len > b->name_len) - (a->name_len < b->name_len);
}

/* [-0, +1, m] The bytes of an archive with no entries: the end record alone. */
static void push_empty_archive(lua_State *L)
{
    static const char eocd[22] = {'P', 'K', 5, 6};
    lua_pushlstring(L, eocd, sizeof eocd);
}

/* [-0, +1, e] Reads the whole of source src into a string on the stack. */
static void push_source_bytes(lua_State *L, zip_source_t *src)
{
    luaL_Buffer b;
    zip_int64_t n;
    if (zip_source_open(src) != 0)
        luaL_error(L, "zip.write: %s", zip_error_strerror(zip_source_error(src)));
    luaL_buffinit(L, &b);
    while ((n = zip_source_read(src, luaL_prepbuffsize(&b, READ_CHUNK), READ_CHUNK)) > 0)
        luaL_addsize(&b, (size_t)n);
    zip_source_close(src);
    if (n < 0) luaL_error(L, "zip.write: %s", zip_error_strerror(zip_source_error(src)));
    luaL_pushresult(&b);
}

/* zip.write({[path] = contents}) -> zip bytes */
static int zip_write(lua_State *L)
{
    size_t n = 0, k = 0;
    struct entry *e;
    zip_error_t ze;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    for (lua_pushnil(L); lua_next(L, 1); lua_pop(L, 1)) {
        size_t len;
        const char *name;
        if (lua_type(L, -2) != LUA_TSTRING)
            return luaL_argerror(L, 1, "file names must be strings");
        name = lua_tolstring(L, -2, &len);
        if (len == 0 || strlen(name) != len || name[len - 1] == '/')
            return luaL_argerror(
                L, 1, lua_pushfstring(L, "bad file name '%s' (empty, NUL or ending in '/')", name));
        if (lua_type(L, -1) != LUA_TSTRING)
            return luaL_argerror(L, 1,
                                 lua_pushfstring(L, "contents of '%s' must be a string", name));
        n++;
    }
    if (n == 0) {
        push_empty_archive(L);
        return 1;
    }
    e = lua_newuserdatauv(L, n * sizeof *e, 0); /* 2: entries, pointing into table 1 */
    for (lua_pushnil(L); lua_next(L, 1); lua_pop(L, 1)) {
        e[k].name = lua_tolstring(L, -2, &e[k].name_len);
        e[k].data = lua_tolstring(L, -1, &e[k].data_len);
        k++;
    }
    qsort(e, n, sizeof *e, entry_cmp);

    struct archive *a = push_archive(L, 0); /* 3: closed on return or error */
    zip_error_init(&ze);
    if (!(a->src = zip_source_buffer_create(NULL, 0, 0, &ze))) {
        lua_pushstring(L, zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return luaL_error(L, "zip.write: %s", lua_tostring(L, -1));
    }
    if (!(a->za = zip_open_from_source(a->src, ZIP_TRUNCATE, &ze))) {
        lua_pushstring(L, zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return luaL_error(L, "zip.write: %s", lua_tostring(L, -1));
    }
    zip_error_fini(&ze);
    zip_source_keep(a->src); /* the archive took our reference; keep one to read back */

    for (k = 0; k < n; k++) {
        zip_source_t *fs = zip_source_buffer(a->za, e[k].data, e[k].data_len, 0);
        zip_int64_t idx;
        if (!fs) return luaL_error(L, "zip.write: %s", zip_strerror(a->za));
        if ((idx = zip_file_add(a->za, e[k].name, fs, ZIP_FL_ENC_UTF_8)) < 0) {
            zip_source_free(fs);
            return luaL_error(L, "zip.write: %s: %s", e[k].name, zip_strerror(a->za));
        }
        if (zip_file_set_dostime(a->za, (zip_uint64_t)idx, 0, DOS_DATE_1980, 0) != 0)
            return luaL_error(L, "zip.write: %s: %s", e[k].name, zip_strerror(a->za));
    }
    if (zip_close(a->za) != 0) return luaL_error(L, "zip.write: %s", zip_strerror(a->za));
    a->za = NULL; /* zip_close freed it */
    push_source_bytes(L, a->src);
    return 1;
}

static const luaL_Reg zip_funcs[] = {
    {"read", zip_read},
    {"write", zip_write},
    {NULL, NULL},
};

int luaopen_zip(lua_State *L)
{
    luaL_newlib(L, zip_funcs);
    lua_pushinteger(L, DEFAULT_MAX_FILES);
    lua_setfield(L, -2, "default_max_files");
    lua_pushinteger(L, DEFAULT_MAX_SIZE);
    lua_setfield(L, -2, "default_max_size");
    return 1;
}
