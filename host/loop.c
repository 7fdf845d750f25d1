/* loop.c: sole owner of the curl multi handle (made at the first transfer), the timer heap, the run
 * queue, the table of watched file descriptors and the signal pipe. Never resumes Lua itself:
 * completed transfers, fired timers, ready descriptors and posted jobs call back into their owners
 * (tasks), which resume coroutines only from jobs, so no Lua runs inside a curl callback.
 *
 * Watched descriptors wait alongside curl's own (curl_multi_poll's extra fds, or poll() before the
 * first transfer); their readiness is then read with a poll() of their own, so an error or a
 * hang-up reaches the owner even where curl's event mask has no bit for it.
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
    struct loop_fd **fds; /* watched descriptors; fds[i]->slot == i + 1 */
    size_t nfds, fdcap;
    struct pollfd *pollfds;      /* scratch for one wait: the signal pipe, then fds */
    struct curl_waitfd *waitfds; /* the same, as curl_multi_poll's extra fds */
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

/* Makes room for cap watched descriptors (and the signal pipe) in the table and the scratch
 * arrays; 0 on success. */
static int fds_reserve(struct loop *l, size_t cap)
{
    struct loop_fd **fds = realloc(l->fds, cap * sizeof *fds);
    if (!fds) return -1;
    l->fds = fds;
    struct pollfd *p = realloc(l->pollfds, (cap + 1) * sizeof *p);
    if (!p) return -1;
    l->pollfds = p;
    struct curl_waitfd *w = realloc(l->waitfds, (cap + 1) * sizeof *w);
    if (!w) return -1;
    l->waitfds = w;
    l->fdcap = cap;
    return 0;
}

struct loop *loop_new(void)
{
    struct loop *l = calloc(1, sizeof(struct loop));
    if (l && fds_reserve(l, 4) != 0) {
        loop_free(l);
        return NULL;
    }
    return l;
}

void loop_free(struct loop *l)
{
    if (!l) return;
    if (l->multi) curl_multi_cleanup(l->multi);
    free(l->heap);
    free(l->fds);
    free(l->pollfds);
    free(l->waitfds);
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

/* ---- watched descriptors ---- */

void loop_watch_fd(struct loop *l, struct loop_fd *w)
{
    if (w->slot) return; /* watched already: its events are read at every wait */
    if (l->nfds == l->fdcap && fds_reserve(l, 2 * l->fdcap) != 0)
        abort(); /* out of memory: nothing sensible remains */
    w->revents = 0;
    l->fds[l->nfds++] = w;
    w->slot = l->nfds;
}

void loop_unwatch_fd(struct loop *l, struct loop_fd *w)
{
    if (!w->slot) return;
    size_t i = w->slot - 1;
    struct loop_fd *last = l->fds[--l->nfds];
    l->fds[i] = last;
    last->slot = i + 1;
    w->slot = 0;
    w->revents = 0;
}

/* Calls ready() for each descriptor marked ready in this turn. A ready() may watch or unwatch
 * descriptors (its own included), so the table is scanned afresh after each call. */
static void report_fds(struct loop *l)
{
    for (size_t i = 0; i < l->nfds;) {
        struct loop_fd *w = l->fds[i];
        short r = w->revents;
        if (!r) {
            i++;
            continue;
        }
        w->revents = 0;
        w->ready(w, r);
        i = 0;
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

/* Waits up to timeout ms for curl's sockets, the signal pipe or a watched descriptor, then marks
 * each watched descriptor's readiness in its revents. */
static void wait_for_events(struct loop *l, int timeout)
{
    struct pollfd *p = l->pollfds;
    size_t n = 0;
    if (signal_pipe[0] >= 0) p[n++] = (struct pollfd){signal_pipe[0], POLLIN, 0};
    struct pollfd *watched = p + n;
    for (size_t i = 0; i < l->nfds; i++)
        p[n++] = (struct pollfd){l->fds[i]->fd, l->fds[i]->events, 0};
    if (l->multi) {
        struct curl_waitfd *c = l->waitfds;
        for (size_t i = 0; i < n; i++)
            c[i] = (struct curl_waitfd){p[i].fd,
                                        (short)((p[i].events & POLLIN ? CURL_WAIT_POLLIN : 0) |
                                                (p[i].events & POLLOUT ? CURL_WAIT_POLLOUT : 0)),
                                        0};
        curl_multi_poll(l->multi, c, (unsigned)n, timeout, NULL);
        if (l->nfds && poll(watched, l->nfds, 0) <= 0) n = 0;
    } else if (poll(p, n, timeout) <= 0) { /* no transfer yet: timers, signals, descriptors */
        n = 0;
    }
    for (size_t i = 0; i < l->nfds; i++) { /* n == 0: nothing is ready (or poll failed) */
        struct loop_fd *w = l->fds[i];
        short r = n ? watched[i].revents : 0;
        w->revents =
            (short)((r & w->events) | (r & (POLLERR | POLLHUP | POLLNVAL) ? w->events : 0));
    }
}

enum loop_status loop_run_until(struct loop *l, const int *flag)
{
    for (;;) {
        run_jobs(l);
        if (*flag) return LOOP_FLAG;
        if (!l->head && !l->ntimers && !l->running && !l->nfds) return LOOP_IDLE;

        int timeout = 0;
        if (!l->head) {
            timeout = 60000;
            if (l->ntimers) {
                double ms = (l->heap[0]->when - loop_now()) * 1000.0 + 0.999;
                timeout = ms < 0 ? 0 : ms > 60000 ? 60000 : (int)ms;
            }
        }
        wait_for_events(l, timeout);
        if (read_signals(l)) return LOOP_SIGNAL;
        if (l->multi) {
            int running;
            curl_multi_perform(l->multi, &running);
            finish_transfers(l);
        }
        report_fds(l);
        fire_timers(l);
    }
}
