/* The baton of the /dev/fuse readers (src/frontend/baton.h), with real
 * threads standing for libfuse's workers: the holder keeps it from request
 * to request while parked workers wait; the deputy takes it over from a
 * holder stuck on one request, never from one waiting in read(2) (idle),
 * and the holder it replaced parks when it comes back; a worker cancelled
 * while it waits (the loop's end) gives up the deputy's post. Periods are
 * long (tens of ms) so that a loaded machine's preemptions cannot pass for
 * a stuck holder. */
#include "frontend/baton.h"
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#define PERIOD_US 50000u

struct worker {
    struct fe_baton *b;
    pthread_t t;
    atomic_bool got; /* fe_baton_wait() returned */
};

/* Takes the baton, reads a request and is stuck on it (ends). */
static void *worker_wait(void *arg)
{
    struct worker *w = arg;

    fe_baton_wait(w->b);
    fe_baton_read_done(w->b);
    atomic_store(&w->got, true);
    return NULL;
}

static int worker_start(struct worker *w, struct fe_baton *b)
{
    w->b = b;
    atomic_init(&w->got, false);
    return pthread_create(&w->t, NULL, worker_wait, w);
}

/* Whether @w got the baton within @ms. */
static bool got_within(struct worker *w, unsigned ms)
{
    for (unsigned i = 0; i < ms && !atomic_load(&w->got); i++)
        usleep(1000);
    return atomic_load(&w->got);
}

/* The holder serves requests of a fifth of a period each for four periods:
 * the waiting worker stays parked; then the holder is stuck on one, and the
 * deputy takes over; coming back, the old holder waits until the new one is
 * stuck in turn. */
static int holder_keeps_then_is_taken_over(void)
{
    struct fe_baton b;
    struct worker w;

    fe_baton_init(&b, PERIOD_US);
    fe_baton_wait(&b);
    CHECK_EQ(worker_start(&w, &b), 0);
    for (unsigned i = 0; i < 20; i++) {
        fe_baton_read_done(&b); /* a request came */
        usleep(PERIOD_US / 5);  /* served */
        fe_baton_wait(&b);      /* back to read(2) */
    }
    CHECK(!atomic_load(&w.got));
    CHECK_EQ(fe_baton_takeovers(&b), 0);
    fe_baton_read_done(&b); /* a request that takes long */
    CHECK(got_within(&w, 5000));
    CHECK_EQ(fe_baton_takeovers(&b), 1);
    pthread_join(w.t, NULL);
    /* The worker holds it and is stuck (it has ended): back for our next
     * read, we wait a period and take it over. */
    fe_baton_wait(&b);
    CHECK_EQ(fe_baton_takeovers(&b), 2);
    fe_baton_fini(&b);
    return 0;
}

/* A holder in read(2) for several periods is idle, not stuck: no takeover,
 * and the deputy sleeps; the next request wakes it, and a holder stuck on
 * that request is taken over. */
static int idle_holder_is_not_taken_over(void)
{
    struct fe_baton b;
    struct worker w;

    fe_baton_init(&b, PERIOD_US);
    fe_baton_wait(&b);
    CHECK_EQ(worker_start(&w, &b), 0);
    usleep(4 * PERIOD_US);
    CHECK(!atomic_load(&w.got));
    CHECK_EQ(fe_baton_takeovers(&b), 0);
    CHECK(atomic_load(&b.deputy_idle));
    fe_baton_read_done(&b);
    CHECK(got_within(&w, 5000));
    CHECK_EQ(fe_baton_takeovers(&b), 1);
    pthread_join(w.t, NULL);
    fe_baton_fini(&b);
    return 0;
}

/* The deputy cancelled in its wait (libfuse cancels its workers when the
 * loop ends) leaves the post to the next parked worker, which then takes
 * the baton over from a stuck holder. */
static int cancelled_deputy_leaves_the_post(void)
{
    struct fe_baton b;
    struct worker deputy, next;

    fe_baton_init(&b, PERIOD_US);
    fe_baton_wait(&b);
    fe_baton_read_done(&b); /* serving, and never done */
    CHECK_EQ(worker_start(&deputy, &b), 0);
    /* The first to wait is the deputy: it takes over within two periods. */
    usleep(PERIOD_US / 10);
    pthread_cancel(deputy.t);
    pthread_join(deputy.t, NULL);
    CHECK(!atomic_load(&deputy.got));
    CHECK_EQ(worker_start(&next, &b), 0);
    CHECK(got_within(&next, 5000));
    CHECK_EQ(fe_baton_takeovers(&b), 1);
    pthread_join(next.t, NULL);
    fe_baton_fini(&b);
    return 0;
}

int main(void)
{
    static const struct test_case tests[] = {
        {"holder_keeps_then_is_taken_over", holder_keeps_then_is_taken_over},
        {"idle_holder_is_not_taken_over", idle_holder_is_not_taken_over},
        {"cancelled_deputy_leaves_the_post", cancelled_deputy_leaves_the_post},
    };

    return run_tests(tests, sizeof(tests) / sizeof(tests[0]));
}
