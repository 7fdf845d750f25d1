/* main.c: the ferry command line: parses arguments, builds the host and its
 * Lua state, runs the command, and turns the outcome into an exit code
 * (host.h). Commands that need no Lua (version, help) never create a state. */
#include "host.h"
#include "loop.h"
#include "redact.h"
#include "runtime.h"
#include "task/task.h"

#include <curl/curlver.h>
#include <lauxlib.h>
#include <lualib.h>
#include <openssl/opensslv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define MAX_PARAMS 256

struct cmd {
    const char *name;
    int (*run)(struct host *h, int argc, char **argv);
    const char *usage;
};

static const char *const main_usage =
    "usage: ferry COMMAND [ARGS]\n"
    "\n"
    "Ferry runs pipeline workflows written in Lua: snapshot production data,\n"
    "deploy a staging copy, verify it, tear it down.\n"
    "\n"
    "commands:\n"
    "  run SCRIPT [-p key=value]...   run a workflow\n"
    "  check SCRIPT...                load and validate workflows without running them\n"
    "  lua FILE [ARGS]                run a Lua file with every Ferry module (busted, tools)\n"
    "  -e CODE                        run a string of Lua\n"
    "  eks-token --cluster NAME       print an EKS ExecCredential (for kubeconfig exec)\n"
    "  version                        print versions\n"
    "  help [COMMAND]                 print help\n"
    "\n"
    "exit codes: 0 ok, 1 a step failed (teardown ran), 2 usage/script/input error,\n"
    "            3 teardown failed, 130 interrupted (SIGINT), 143 terminated (SIGTERM)\n";

static int usage_error(const char *fmt, const char *arg)
{
    fputs("ferry: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n(see 'ferry help')\n", stderr);
    return EXIT_USAGE;
}

/* [-0, +0, -] The exit code for a failed root task whose error is on top:
 * interrupted runs exit 128 + signal; everything else is a script error. */
static int failed(struct host *h, lua_State *L, int err, int tb)
{
    runtime_report(L, err, tb);
    if (h->signal) return 128 + h->signal;
    return EXIT_USAGE;
}

/* Runs the function on top of the stack (with n args) as the root task;
 * returns the exit code. On success leaves nothing and stores the results
 * table at *results_ref (if non-NULL) in the registry. */
static int run_root(struct host *h, int nargs, int shielded, int *results_ref)
{
    lua_State *L = h->L;
    task_run_root(L, nargs, shielded);
    int code;
    if (lua_toboolean(L, -3)) {
        if (results_ref) {
            lua_pushvalue(L, -2);
            *results_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        }
        code = h->signal ? 128 + h->signal : EXIT_OK;
    } else {
        code = failed(h, L, -2, -1);
    }
    lua_pop(L, 3);
    return code;
}

/* [-0, +1, -] Loads a script as text, or reports why not (exit 2). */
static int load_script(lua_State *L, const char *path)
{
    if (runtime_loadfile(L, path) == LUA_OK) return 0;
    fprintf(stderr, "ferry: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    return -1;
}

static void set_arg_table(lua_State *L, const char *prog, const char *script, int argc, char **argv)
{
    lua_createtable(L, argc, 2);
    lua_pushstring(L, prog);
    lua_rawseti(L, -2, -1);
    lua_pushstring(L, script);
    lua_rawseti(L, -2, 0);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setglobal(L, "arg");
}

/* ferry lua FILE [ARGS]: a plain interpreter; the file runs as the root task. */
static int cmd_lua(struct host *h, int argc, char **argv)
{
    if (argc < 1) return usage_error("lua: missing FILE%s", "");
    lua_State *L = h->L;
    set_arg_table(L, "ferry", argv[0], argc - 1, argv + 1);
    if (load_script(L, strcmp(argv[0], "-") == 0 ? NULL : argv[0])) return EXIT_USAGE;
    for (int i = 1; i < argc; i++) lua_pushstring(L, argv[i]);
    return run_root(h, argc - 1, 0, NULL);
}

/* ferry -e CODE */
static int cmd_eval(struct host *h, int argc, char **argv)
{
    if (argc < 1) return usage_error("-e: missing CODE%s", "");
    lua_State *L = h->L;
    set_arg_table(L, "ferry", "-e", argc - 1, argv + 1);
    if (luaL_loadbufferx(L, argv[0], strlen(argv[0]), "=(command line)", "t") != LUA_OK) {
        fprintf(stderr, "ferry: %s\n", lua_tostring(L, -1));
        return EXIT_USAGE;
    }
    return run_root(h, 0, 0, NULL);
}

/* [-0, +1, e] require(name)[field] */
static void push_module_field(lua_State *L, const char *name, const char *field)
{
    lua_getglobal(L, "require");
    lua_pushstring(L, name);
    lua_call(L, 1, 1);
    lua_getfield(L, -1, field);
    lua_remove(L, -2);
}

/* The Lua side of `run` and `check`: workflow._main(mode, path, chunk, opts)
 * returns the exit code. */
static int workflow_main(struct host *h, const char *mode, const char *path, int opts)
{
    lua_State *L = h->L;
    opts = lua_absindex(L, opts);
    push_module_field(L, "workflow", "_main");
    lua_pushstring(L, mode);
    lua_pushstring(L, path);
    if (load_script(L, path)) {
        lua_pop(L, 3);
        return EXIT_USAGE;
    }
    lua_pushvalue(L, opts);
    int ref = LUA_NOREF;
    int code = run_root(h, 4, 1, &ref);
    if (code != EXIT_OK) return code;
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    lua_rawgeti(L, -1, 1);
    code = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : EXIT_USAGE;
    lua_pop(L, 2);
    return code;
}

static int parse_timeout(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v > 0) || v > 1e7) return -1;
    *out = v;
    return 0;
}

/* ferry run SCRIPT [-p key=value]... [--log-format F] [--junit FILE] [--timeout S] */
static int cmd_run(struct host *h, int argc, char **argv)
{
    lua_State *L = h->L;
    const char *script = NULL, *junit = NULL;
    double timeout = 0;
    lua_newtable(L); /* opts */
    lua_newtable(L); /* opts.params */
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-p") == 0 || strcmp(a, "--param") == 0) {
            if (!v) return usage_error("run: %s needs key=value", a);
            const char *eq = strchr(v, '=');
            if (!eq || eq == v)
                return usage_error("run: bad parameter '%s': expected key=value", v);
            lua_pushlstring(L, v, (size_t)(eq - v));
            if (lua_rawget(L, -2) != LUA_TNIL)
                return usage_error("run: parameter '%s' given twice", v);
            lua_pop(L, 1);
            lua_pushlstring(L, v, (size_t)(eq - v));
            lua_pushstring(L, eq + 1);
            lua_rawset(L, -3);
            i++;
        } else if (strcmp(a, "--junit") == 0) {
            if (!v) return usage_error("run: %s needs a file name", a);
            junit = v;
            i++;
        } else if (strcmp(a, "--timeout") == 0) {
            if (!v || parse_timeout(v, &timeout))
                return usage_error("run: --timeout needs a number of seconds > 0, got '%s'",
                                   v ? v : "");
            i++;
        } else if (a[0] == '-' && a[1]) {
            return usage_error("run: unknown option '%s'", a);
        } else if (!script) {
            script = a;
        } else {
            return usage_error("run: unexpected argument '%s'", a);
        }
    }
    if (!script) return usage_error("run: missing SCRIPT%s", "");
    lua_setfield(L, -2, "params");
    if (junit) {
        lua_pushstring(L, junit);
        lua_setfield(L, -2, "junit");
    }
    if (timeout > 0) {
        lua_pushnumber(L, timeout);
        lua_setfield(L, -2, "timeout");
    }
    int code = workflow_main(h, "run", script, -1);
    lua_pop(L, 1);
    return code;
}

/* ferry check SCRIPT... */
static int cmd_check(struct host *h, int argc, char **argv)
{
    if (argc < 1) return usage_error("check: missing SCRIPT%s", "");
    int worst = EXIT_OK;
    lua_newtable(h->L);
    for (int i = 0; i < argc; i++) {
        int code = workflow_main(h, "check", argv[i], -1);
        if (code != EXIT_OK) worst = code;
    }
    lua_pop(h->L, 1);
    return worst;
}

/* ferry eks-token --cluster NAME [--region R]: prints an ExecCredential, so a
 * kubeconfig's exec plugin can be Ferry instead of `aws eks get-token`. */
static int cmd_eks_token(struct host *h, int argc, char **argv)
{
    lua_State *L = h->L;
    const char *cluster = NULL, *region = NULL;
    for (int i = 0; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--cluster") == 0 || strcmp(argv[i], "--cluster-name") == 0) {
            if (!v) return usage_error("eks-token: %s needs a name", argv[i]);
            cluster = v;
            i++;
        } else if (strcmp(argv[i], "--region") == 0) {
            if (!v) return usage_error("eks-token: %s needs a region", argv[i]);
            region = v;
            i++;
        } else {
            return usage_error("eks-token: unexpected argument '%s'", argv[i]);
        }
    }
    if (!cluster) return usage_error("eks-token: missing --cluster NAME%s", "");
    push_module_field(L, "aws", "exec_credential");
    lua_createtable(L, 0, 2);
    lua_pushstring(L, cluster);
    lua_setfield(L, -2, "cluster");
    if (region) {
        lua_pushstring(L, region);
        lua_setfield(L, -2, "region");
    }
    int ref = LUA_NOREF;
    int code = run_root(h, 1, 0, &ref);
    if (code != EXIT_OK) return code;
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    lua_rawgeti(L, -1, 1);
    size_t len;
    const char *json = lua_tolstring(L, -1, &len);
    if (json) {
        fwrite(json, 1, len, stdout);
        fputc('\n', stdout);
    }
    lua_pop(L, 2);
    return json ? EXIT_OK : EXIT_USAGE;
}

static int cmd_version(struct host *h, int argc, char **argv)
{
    (void)h;
    (void)argc;
    (void)argv;
    /* versions built against: loading libcurl just to ask would triple the run time */
    printf("ferry %s (%s, libcurl %s, %s, libyaml %s)\n", FERRY_VERSION, LUA_RELEASE,
           LIBCURL_VERSION, OPENSSL_VERSION_TEXT, yaml_get_version_string());
    return EXIT_OK;
}

static int cmd_help(struct host *h, int argc, char **argv);

static const struct cmd commands[] = {
    {"check", cmd_check,
     "usage: ferry check SCRIPT...\n\n"
     "Loads each workflow and validates its definition (name, steps, params)\n"
     "without running a step. Exit 0 when all are valid, 2 otherwise.\n"},
    {"eks-token", cmd_eks_token,
     "usage: ferry eks-token --cluster NAME [--region REGION]\n\n"
     "Prints a client.authentication.k8s.io ExecCredential holding an EKS token\n"
     "(what `aws eks get-token` prints), made in-process from the default AWS\n"
     "credential chain. In a kubeconfig user:\n"
     "  exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: ferry,\n"
     "         args: [eks-token, --cluster, NAME]}\n"},
    {"help", cmd_help, "usage: ferry help [COMMAND]\n"},
    {"lua", cmd_lua,
     "usage: ferry lua FILE [ARGS]\n\n"
     "Runs FILE (source text only) with the standard libraries and every Ferry\n"
     "module preloaded; ARGS are in the global `arg` and in `...`. It is a\n"
     "drop-in interpreter for Lua programs such as busted:\n"
     "  ferry lua /usr/bin/busted tests/lua\n"},
    {"run", cmd_run,
     "usage: ferry run SCRIPT [-p key=value]... [--junit FILE] [--timeout SECONDS]\n"
     "                 [--log-format text|json] [--log-level debug|info|warn|error]\n\n"
     "Runs the workflow SCRIPT returns (workflow.define{...}): its steps in order,\n"
     "undo actions (ctx:defer) when a step fails, then teardown, always.\n\n"
     "  -p, --param key=value   a workflow parameter (repeatable)\n"
     "  --junit FILE            write a JUnit XML report (one testcase per step)\n"
     "  --timeout SECONDS       deadline for the steps; teardown still runs\n"
     "  --log-format text|json  log lines as text or one JSON object per line\n"
     "  --log-level LEVEL       the least severe level printed (default info)\n"},
    {"version", cmd_version, "usage: ferry version\n"},
    {NULL, NULL, NULL},
};

static const struct cmd *find_cmd(const char *name)
{
    for (const struct cmd *c = commands; c->name; c++)
        if (strcmp(c->name, name) == 0) return c;
    return NULL;
}

static int cmd_help(struct host *h, int argc, char **argv)
{
    (void)h;
    const struct cmd *c = argc > 0 ? find_cmd(argv[0]) : NULL;
    if (argc > 0 && !c) return usage_error("help: unknown command '%s'", argv[0]);
    fputs(c ? c->usage : main_usage, stdout);
    return EXIT_OK;
}

/* --log-format and --log-level (after the command), else FERRY_LOG_FORMAT and
 * FERRY_LOG_LEVEL. Removes the options from argv (argc NULL: env only).
 * Returns -1 after reporting a bad value. */
static int take_log_options(struct host *h, int *argc, char **argv)
{
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    const char *level = getenv("FERRY_LOG_LEVEL"), *format = getenv("FERRY_LOG_FORMAT");
    int n = argc ? *argc : 0, out = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(argv[i], "--log-format") == 0 || strcmp(argv[i], "--log-level") == 0) {
            if (i + 1 == n) return usage_error("%s needs a value", argv[i]), -1;
            if (argv[i][6] == 'f')
                format = argv[++i];
            else
                level = argv[++i];
        } else {
            argv[out++] = argv[i];
        }
    }
    if (argc) *argc = out;
    h->log_level = LOG_INFO;
    h->log_format = LOG_TEXT;
    if (format && strcmp(format, "json") == 0)
        h->log_format = LOG_JSON;
    else if (format && strcmp(format, "text") != 0)
        return usage_error("--log-format must be text or json, got '%s'", format), -1;
    if (!level) return 0;
    for (int i = 0; levels[i]; i++)
        if (strcmp(level, levels[i]) == 0) {
            h->log_level = (enum log_level)i;
            return 0;
        }
    return usage_error("--log-level must be debug, info, warn or error, got '%s'", level), -1;
}
int main(int argc, char **argv)
{
    struct host host = {0};
    if (argc < 2) {
        fputs(main_usage, stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "-e") == 0)
        name = "-e";
    else if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
        name = "help";
    else if (strcmp(name, "--version") == 0)
        name = "version";
    static const struct cmd eval = {"-e", cmd_eval, "usage: ferry -e CODE\n"};
    const struct cmd *c = strcmp(name, "-e") == 0 ? &eval : find_cmd(name);
    if (!c) return usage_error("unknown command '%s'", name);

    int cargc = argc - 2;
    char **cargv = argv + 2;
    if (cargc > 0 && (strcmp(cargv[0], "--help") == 0 || strcmp(cargv[0], "-h") == 0)) {
        fputs(c->usage, stdout);
        return EXIT_OK;
    }
    if (c->run == cmd_version || c->run == cmd_help) return c->run(&host, cargc, cargv);
    /* after `lua FILE` and `-e CODE` every argument is the script's own */
    int script_args = c->run == cmd_lua || c->run == cmd_eval;
    if (take_log_options(&host, script_args ? NULL : &cargc, cargv)) return EXIT_USAGE;

    host.secrets = redact_new();
    if (!host.secrets || !runtime_open(&host)) {
        fputs("ferry: out of memory\n", stderr);
        return EXIT_USAGE;
    }
    int code = c->run(&host, cargc, cargv);
    fflush(stdout);
    lua_close(host.L);
    loop_free(host.loop);
    redact_free(host.secrets);
    return code;
}
