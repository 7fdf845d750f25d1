/* loop.h: the one event loop: a curl multi handle, timers, a run queue of jobs,
 * watched file descriptors and the signal pipe. Everything that waits, waits here. */
#ifndef FERRY_LOOP_H
#define FERRY_LOOP_H

#include "curl.h"
#include <stddef.h>

/* A timer: armed while slot != 0. fire() runs from loop_turn, never nested. */
struct loop_timer {
    double when; /* loop_now() seconds */
    size_t slot; /* 1-based position in the heap; 0 when not armed */
    void (*fire)(struct loop_timer *t);
};

/* A job: run once on the next turn of the loop (tasks resume through these). */
struct loop_job {
    struct loop_job *next;
    int queued;
    void (*run)(struct loop_job *j);
};

/* A transfer in flight: set as CURLOPT_PRIVATE; done() is called once, after the
 * easy handle has been removed from the multi handle. It must not resume Lua. */
struct loop_io {
    void (*done)(struct loop_io *io, CURLcode result);
};

/* A file descriptor to watch (a WebSocket's socket, say): ready() runs from a
 * turn of the loop, never nested, when one of events (POLLIN, POLLOUT from
 * <poll.h>) is ready, or with the same bits on an error or hang-up. It must
 * not resume Lua: it calls task_wake. A watched fd keeps loop_run_until from
 * reporting LOOP_IDLE, so watch one only while a task waits on it, and unwatch
 * it before closing it. */
struct loop_fd {
    int fd;
    short events;
    void (*ready)(struct loop_fd *w, short revents);
    short revents; /* loop.c's: readiness not yet reported in this turn */
    size_t slot;   /* loop.c's: 1-based position in the watch table; 0 when not watched */
};

enum loop_status {
    LOOP_FLAG,   /* the awaited flag was set */
    LOOP_IDLE,   /* nothing left that could set it: a deadlock */
    LOOP_SIGNAL, /* SIGINT or SIGTERM arrived */
};

struct loop;

/* Caller frees with loop_free. libcurl is loaded at the first transfer. */
struct loop *loop_new(void);
void loop_free(struct loop *l);

/* Monotonic seconds. */
double loop_now(void);

void loop_timer_start(struct loop *l, struct loop_timer *t, double when);
void loop_timer_stop(struct loop *l, struct loop_timer *t);
void loop_post(struct loop *l, struct loop_job *j);

/* Hands easy to the multi handle; io->done is called when it ends. 0 on
 * success, -1 if the handle was refused. */
int loop_add_io(struct loop *l, CURL *easy, struct loop_io *io);
/* Takes easy back before it ends (cancellation); io->done is not called. */
void loop_remove_io(struct loop *l, CURL *easy);

/* Starts watching w (or, when watched already, takes its new events). */
void loop_watch_fd(struct loop *l, struct loop_fd *w);
/* Stops watching w; ready() is not called again, not even in this turn. Idempotent. */
void loop_unwatch_fd(struct loop *l, struct loop_fd *w);

/* Called (from a turn, not from the handler) for each SIGINT/SIGTERM. */
void loop_on_signal(struct loop *l, void (*fn)(void *arg, int sig), void *arg);

/* Runs turns until *flag is non-zero, nothing is left to do, or a signal came. */
enum loop_status loop_run_until(struct loop *l, const int *flag);

/* Installs SIGINT/SIGTERM handlers that wake the loop; ignores SIGPIPE. */
void loop_catch_signals(struct loop *l);

#endif
