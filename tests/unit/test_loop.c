/* test_loop.c: the loop's timer heap, run queue and idle detection
 * (host/loop.c), without Lua. */
#include "loop.h"
#include "unit.h"

#include <stdlib.h>

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

int main(void)
{
    static const struct unit_test tests[] = {
        {"timers_fire_in_deadline_order", timers_fire_in_deadline_order},
        {"stopped_timers_do_not_fire", stopped_timers_do_not_fire},
        {"heap_survives_random_churn", heap_survives_random_churn},
        {"jobs_run_once_per_post_and_reposting_waits_a_turn",
         jobs_run_once_per_post_and_reposting_waits_a_turn},
        {"nothing_to_do_is_idle", nothing_to_do_is_idle},
        {NULL, NULL},
    };
    l = loop_new();
    int rc = unit_run("loop", tests);
    loop_free(l);
    return rc;
}
