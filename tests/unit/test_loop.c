/* test_loop.c: the loop's timer heap, run queue, watched descriptors and
 * idle detection (host/loop.c), without Lua. */
#include "loop.h"
#include "unit.h"

#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

static struct loop *l;
static int order[64], norder;

struct tick {
    struct loop_timer t;
    int id;
};

static void record(struct loop_timer *t)
{
    order[norder++] = ((struct tick *)t)->id;
}

TEST(timers_fire_in_deadline_order)
{
    struct tick ticks[8];
    double now = loop_now();
    static const int when[8] = {5, 1, 7, 3, 2, 8, 6, 4};
    norder = 0;
    for (int i = 0; i < 8; i++) {
        ticks[i] = (struct tick){{0, 0, record}, when[i]};
        loop_timer_start(l, &ticks[i].t, now + when[i] / 1000.0);
    }
    int never = 0;
    CHECK(loop_run_until(l, &never) == LOOP_IDLE);
    CHECK(norder == 8);
    for (int i = 0; i < norder; i++) CHECK(order[i] == i + 1);
}

TEST(stopped_timers_do_not_fire)
{
    struct tick a = {{0, 0, record}, 1}, b = {{0, 0, record}, 2}, c = {{0, 0, record}, 3};
    double now = loop_now();
    norder = 0;
    loop_timer_start(l, &a.t, now + 0.001);
    loop_timer_start(l, &b.t, now + 0.002);
    loop_timer_start(l, &c.t, now + 0.003);
    loop_timer_stop(l, &b.t);
    loop_timer_stop(l, &b.t); /* twice is harmless */
    int never = 0;
    loop_run_until(l, &never);
    CHECK(norder == 2 && order[0] == 1 && order[1] == 3);
    CHECK(a.t.slot == 0 && b.t.slot == 0 && c.t.slot == 0);
}

TEST(heap_survives_random_churn)
{
    enum { N = 200 };
    struct tick *ticks = calloc(N, sizeof *ticks);
    double now = loop_now() + 3600; /* never due during the test */
    srand(7);
    for (int i = 0; i < N; i++) {
        ticks[i] = (struct tick){{0, 0, record}, i};
        loop_timer_start(l, &ticks[i].t, now + rand() % 1000);
    }
    for (int i = 0; i < N; i += 3) loop_timer_stop(l, &ticks[i].t);
    for (int i = 1; i < N; i += 3) loop_timer_start(l, &ticks[i].t, now + rand() % 1000);
    /* armed timers have a slot, stopped ones none */
    int ok = 1;
    for (int i = 0; i < N; i++) {
        if (i % 3 == 0)
            ok &= ticks[i].t.slot == 0;
        else
            ok &= ticks[i].t.slot != 0;
    }
    CHECK(ok);
    for (int i = 0; i < N; i++) loop_timer_stop(l, &ticks[i].t);
    free(ticks);
}

struct counter {
    struct loop_job j;
    int runs, flag, repost;
};

static void count(struct loop_job *j)
{
    struct counter *c = (struct counter *)j;
    c->runs++;
    if (c->repost-- > 0)
        loop_post(l, j);
    else
        c->flag = 1;
}

TEST(jobs_run_once_per_post_and_reposting_waits_a_turn)
{
    struct counter c = {{NULL, 0, count}, 0, 0, 3};
    loop_post(l, &c.j);
    loop_post(l, &c.j); /* already queued: no second run */
    CHECK(loop_run_until(l, &c.flag) == LOOP_FLAG);
    CHECK(c.runs == 4);
}

TEST(nothing_to_do_is_idle)
{
    int never = 0;
    CHECK(loop_run_until(l, &never) == LOOP_IDLE);
}

/* A watched pipe end that records what it was ready for. */
struct watch {
    struct loop_fd fd;
    int calls, flag, unwatch;
    short revents;
};

static void on_fd(struct loop_fd *w, short revents)
{
    struct watch *x = (struct watch *)w;
    x->calls++;
    x->revents = revents;
    x->flag = 1;
    if (x->unwatch) loop_unwatch_fd(l, w);
}

TEST(a_readable_fd_calls_ready_and_an_unwatched_one_is_idle)
{
    int p[2];
    CHECK(pipe(p) == 0);
    struct watch r = {{p[0], POLLIN, on_fd, 0, 0}, 0, 0, 1, 0};
    loop_watch_fd(l, &r.fd);
    loop_watch_fd(l, &r.fd); /* twice is harmless */
    CHECK(write(p[1], "x", 1) == 1);
    CHECK(loop_run_until(l, &r.flag) == LOOP_FLAG);
    CHECK(r.calls == 1 && (r.revents & POLLIN));
    CHECK(r.fd.slot == 0); /* it unwatched itself */
    int never = 0;
    CHECK(loop_run_until(l, &never) == LOOP_IDLE);
    CHECK(r.calls == 1);
    close(p[0]);
    close(p[1]);
}

TEST(a_watched_fd_keeps_the_loop_busy_until_ready)
{
    int p[2];
    CHECK(pipe(p) == 0);
    struct watch w = {{p[1], POLLOUT, on_fd, 0, 0}, 0, 0, 1, 0};  /* writable at once */
    struct watch r = {{p[0], POLLIN, on_fd, 0, 0}, 0, 0, 1, 0};   /* never readable */
    struct watch hup = {{p[0], POLLIN, on_fd, 0, 0}, 0, 0, 1, 0}; /* after the close */
    loop_watch_fd(l, &r.fd);
    loop_watch_fd(l, &w.fd);
    CHECK(loop_run_until(l, &w.flag) == LOOP_FLAG);
    CHECK(w.calls == 1 && (w.revents & POLLOUT));
    CHECK(r.calls == 0 && r.fd.slot != 0);
    loop_unwatch_fd(l, &r.fd);
    loop_unwatch_fd(l, &r.fd); /* twice is harmless */
    close(p[1]);               /* a hang-up is reported as the events watched */
    loop_watch_fd(l, &hup.fd);
    CHECK(loop_run_until(l, &hup.flag) == LOOP_FLAG);
    CHECK(hup.calls == 1 && hup.revents == POLLIN);
    close(p[0]);
}

int main(void)
{
    static const struct unit_test tests[] = {
        {"timers_fire_in_deadline_order", timers_fire_in_deadline_order},
        {"stopped_timers_do_not_fire", stopped_timers_do_not_fire},
        {"heap_survives_random_churn", heap_survives_random_churn},
        {"jobs_run_once_per_post_and_reposting_waits_a_turn",
         jobs_run_once_per_post_and_reposting_waits_a_turn},
        {"nothing_to_do_is_idle", nothing_to_do_is_idle},
        {"a_readable_fd_calls_ready_and_an_unwatched_one_is_idle",
         a_readable_fd_calls_ready_and_an_unwatched_one_is_idle},
        {"a_watched_fd_keeps_the_loop_busy_until_ready",
         a_watched_fd_keeps_the_loop_busy_until_ready},
        {NULL, NULL},
    };
    l = loop_new();
    int rc = unit_run("loop", tests);
    loop_free(l);
    return rc;
}
