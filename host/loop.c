/* loop.c: sole owner of the curl multi handle (made at the first transfer), the timer heap, the run
 * queue and the signal pipe. Never resumes Lua itself: completed transfers, fired timers and posted
 * jobs call back into their owners (tasks), which resume coroutines only from jobs, so no Lua runs
 * inside a curl callback.
 *
 * The signal pipe is the one mutable global in Ferry: a handler can reach
 * nothing else. */
#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct loop {
    CURLM *multi;             /* created with the first transfer */
    int running;              /* transfers in the multi handle */
    struct loop_timer **heap; /* min-heap on when; heap[0] is the earliest */
    size_t ntimers, cap;
    struct loop_job *head, *tail;
    void (*on_signal)(void *arg, int sig);
    void *signal_arg;
    int pending_signal;
};

static int signal_pipe[2] = {-1, -1};

double loop_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct loop *loop_new(void)
{
    return calloc(1, sizeof(struct loop));
}

void loop_free(struct loop *l)
{
    if (!l) return;
    if (l->multi) curl_multi_cleanup(l->multi);
    free(l->heap);
    free(l);
}

/* ---- timers: a binary min-heap of pointers; each timer knows its slot ---- */

static void heap_set(struct loop *l, size_t i, struct loop_timer *t)
{
    l->heap[i] = t;
    t->slot = i + 1;
}

static void heap_up(struct loop *l, size_t i)
{
    struct loop_timer *t = l->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (l->heap[parent]->when <= t->when) break;
        heap_set(l, i, l->heap[parent]);
        i = parent;
    }
    heap_set(l, i, t);
}

static void heap_down(struct loop *l, size_t i)
{
    struct loop_timer *t = l->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= l->ntimers) break;
        if (c + 1 < l->ntimers && l->heap[c + 1]->when < l->heap[c]->when) c++;
        if (t->when <= l->heap[c]->when) break;
        heap_set(l, i, l->heap[c]);
        i = c;
    }
    heap_set(l, i, t);
}

void loop_timer_start(struct loop *l, struct loop_timer *t, double when)
{
    loop_timer_stop(l, t);
    if (l->ntimers == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        struct loop_timer **heap = realloc(l->heap, cap * sizeof *heap);
        if (!heap) abort(); /* out of memory: nothing sensible remains */
        l->heap = heap;
        l->cap = cap;
    }
    t->when = when;
    heap_set(l, l->ntimers++, t);
    heap_up(l, l->ntimers - 1);
}

void loop_timer_stop(struct loop *l, struct loop_timer *t)
{
    if (!t->slot) return;
    size_t i = t->slot - 1;
    t->slot = 0;
    struct loop_timer *last = l->heap[--l->ntimers];
    if (i == l->ntimers) return;
    heap_set(l, i, last);
    heap_up(l, i);
    heap_down(l, last->slot - 1);
}

/* ---- jobs ---- */

void loop_post(struct loop *l, struct loop_job *j)
{
    if (j->queued) return;
    j->queued = 1;
    j->next = NULL;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
}

/* Runs the jobs queued when the turn began; jobs they post wait for the next. */
static void run_jobs(struct loop *l)
{
    struct loop_job *last = l->tail;
    while (l->head) {
        struct loop_job *j = l->head;
        l->head = j->next;
        if (!l->head) l->tail = NULL;
        j->queued = 0;
        j->run(j);
        if (j == last) break;
    }
}

/* ---- transfers ---- */

int loop_add_io(struct loop *l, CURL *easy, struct loop_io *io)
{
    if (!l->multi && !(l->multi = curl_multi_init())) return -1;
    curl_easy_setopt(easy, CURLOPT_PRIVATE, io);
    if (curl_multi_add_handle(l->multi, easy) != CURLM_OK) return -1;
    l->running++;
    return 0;
}

void loop_remove_io(struct loop *l, CURL *easy)
{
    if (l->multi && curl_multi_remove_handle(l->multi, easy) == CURLM_OK) l->running--;
}

static void finish_transfers(struct loop *l)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(l->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        CURL *easy = m->easy_handle;
        CURLcode result = m->data.result;
        struct loop_io *io = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&io);
        loop_remove_io(l, easy);
        if (io) io->done(io, result);
    }
}

/* ---- signals ---- */

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (write(signal_pipe[1], &b, 1) < 0) { /* full pipe: a signal is pending anyway */
    }
    errno = saved;
}

void loop_catch_signals(struct loop *l)
{
    (void)l;
    if (signal_pipe[0] < 0) {
        if (pipe(signal_pipe) != 0) return;
        for (int i = 0; i < 2; i++) {
            fcntl(signal_pipe[i], F_SETFL, O_NONBLOCK);
            fcntl(signal_pipe[i], F_SETFD, FD_CLOEXEC);
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

void loop_on_signal(struct loop *l, void (*fn)(void *arg, int sig), void *arg)
{
    l->on_signal = fn;
    l->signal_arg = arg;
}

static int read_signals(struct loop *l)
{
    unsigned char b;
    int got = 0;
    while (signal_pipe[0] >= 0 && read(signal_pipe[0], &b, 1) == 1) {
        got = b;
        if (l->on_signal) l->on_signal(l->signal_arg, b);
    }
    return got;
}

/* ---- the turn ---- */

static void fire_timers(struct loop *l)
{
    double now = loop_now();
    while (l->ntimers && l->heap[0]->when <= now) {
        struct loop_timer *t = l->heap[0];
        loop_timer_stop(l, t);
        t->fire(t);
    }
}

enum loop_status loop_run_until(struct loop *l, const int *flag)
{
    for (;;) {
        run_jobs(l);
        if (*flag) return LOOP_FLAG;
        if (!l->head && !l->ntimers && !l->running) return LOOP_IDLE;

        int timeout = 0;
        if (!l->head) {
            timeout = 60000;
            if (l->ntimers) {
                double ms = (l->heap[0]->when - loop_now()) * 1000.0 + 0.999;
                timeout = ms < 0 ? 0 : ms > 60000 ? 60000 : (int)ms;
            }
        }
        if (l->multi) {
            struct curl_waitfd sigfd = {signal_pipe[0], CURL_WAIT_POLLIN, 0};
            curl_multi_poll(l->multi, &sigfd, signal_pipe[0] >= 0 ? 1 : 0, timeout, NULL);
        } else { /* no transfer yet: timers and signals only */
            struct pollfd pfd = {signal_pipe[0], POLLIN, 0};
            poll(&pfd, signal_pipe[0] >= 0 ? 1 : 0, timeout);
        }
        if (read_signals(l)) return LOOP_SIGNAL;
        if (l->multi) {
            int running;
            curl_multi_perform(l->multi, &running);
            finish_transfers(l);
        }
        fire_timers(l);
    }
}
