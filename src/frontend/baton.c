/* One worker at a time reads /dev/fuse (baton.h says why). */
#include "frontend/baton.h"

#include <errno.h>
#include <time.h>

/* The baton this thread holds, its serial and its generation then: it
 * still holds it while b->gen is unchanged. The serial tells a baton from
 * an earlier one at the same address. */
static _Thread_local struct fe_baton *baton_mine;
static _Thread_local unsigned baton_serial, baton_gen;
static atomic_uint baton_serials;

void fe_baton_init(struct fe_baton *b, unsigned period_us)
{
    pthread_condattr_t ca;

    pthread_mutex_init(&b->m, NULL);
    /* Periods are measured on the monotonic clock: a clock set back must
     * not hold a deputy for hours. */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->watch, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&b->parked, NULL);
    b->held = false;
    b->has_deputy = false;
    b->period_us = period_us;
    b->serial = atomic_fetch_add(&baton_serials, 1) + 1;
    atomic_init(&b->gen, 0);
    atomic_init(&b->seq, 0);
    atomic_init(&b->reading, false);
    atomic_init(&b->deputy_idle, false);
    atomic_init(&b->takeovers, 0);
}

void fe_baton_fini(struct fe_baton *b)
{
    pthread_cond_destroy(&b->watch);
    pthread_cond_destroy(&b->parked);
    pthread_mutex_destroy(&b->m);
}

static bool baton_is_mine(struct fe_baton *b)
{
    return baton_mine == b && baton_serial == b->serial &&
           baton_gen == atomic_load_explicit(&b->gen, memory_order_acquire);
}

struct baton_waiter {
    struct fe_baton *b;
    bool deputy;
};

/* The deputy's post is free again: another parked worker takes it. */
static void baton_leave_post_locked(struct baton_waiter *w)
{
    if (!w->deputy)
        return;
    w->deputy = false;
    w->b->has_deputy = false;
    pthread_cond_signal(&w->b->parked);
}

/* A worker cancelled in a wait (the loop ends) holds m again. */
static void baton_cancelled(void *arg)
{
    struct baton_waiter *w = arg;

    baton_leave_post_locked(w);
    pthread_mutex_unlock(&w->b->m);
}

/* The deputy found the holder waiting in read(2) a whole period: it sleeps
 * until fe_baton_read_done() wakes it. Dekker's pattern against the holder
 * (seq then deputy_idle there, deputy_idle then seq here, all seq_cst):
 * either the holder sees deputy_idle and wakes us, or we see its request. */
static void baton_sleep_idle_locked(struct fe_baton *b, unsigned seen)
{
    atomic_store(&b->deputy_idle, true);
    if (atomic_load(&b->seq) != seen || !atomic_load(&b->reading)) {
        atomic_store(&b->deputy_idle, false);
        return;
    }
    while (atomic_load(&b->deputy_idle))
        pthread_cond_wait(&b->watch, &b->m);
}

/* One period of the deputy's watch, m held: whether the holder has served
 * the same request all along (not in read(2) and nothing new read). */
static bool baton_watch_locked(struct fe_baton *b)
{
    unsigned seen = atomic_load(&b->seq);
    struct timespec until;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += (long)b->period_us * 1000;
    until.tv_sec += until.tv_nsec / 1000000000;
    until.tv_nsec %= 1000000000;
    if (pthread_cond_timedwait(&b->watch, &b->m, &until) != ETIMEDOUT)
        return false; /* woken early: look again, a period from now */
    if (atomic_load(&b->seq) != seen)
        return false;
    if (!atomic_load(&b->reading))
        return true;
    baton_sleep_idle_locked(b, seen);
    return false;
}

/* The slow path of fe_baton_wait(): wait as a parked worker or as the
 * deputy until the baton is free or taken over. */
static void baton_take(struct fe_baton *b)
{
    struct baton_waiter w = {.b = b};

    pthread_mutex_lock(&b->m);
    pthread_cleanup_push(baton_cancelled, &w);
    for (;;) {
        if (!b->held) {
            b->held = true;
            break;
        }
        if (!b->has_deputy)
            b->has_deputy = w.deputy = true;
        if (!w.deputy) {
            pthread_cond_wait(&b->parked, &b->m);
            continue;
        }
        if (baton_watch_locked(b)) {
            /* The old holder parks when it comes back for its next read. */
            atomic_fetch_add(&b->gen, 1);
            atomic_fetch_add_explicit(&b->takeovers, 1, memory_order_relaxed);
            break;
        }
    }
    baton_leave_post_locked(&w);
    baton_mine = b;
    baton_serial = b->serial;
    baton_gen = atomic_load(&b->gen);
    pthread_cleanup_pop(0);
    pthread_mutex_unlock(&b->m);
}

void fe_baton_wait(struct fe_baton *b)
{
    if (!baton_is_mine(b))
        baton_take(b);
    atomic_store(&b->reading, true);
}

/* The first request after an idle period wakes the deputy. */
static void baton_wake_deputy(struct fe_baton *b)
{
    pthread_mutex_lock(&b->m);
    atomic_store(&b->deputy_idle, false);
    pthread_cond_signal(&b->watch);
    pthread_mutex_unlock(&b->m);
}

void fe_baton_read_done(struct fe_baton *b)
{
    /* A holder taken over on its way into read(2) leaves the state to the
     * new one. */
    if (!baton_is_mine(b))
        return;
    atomic_store(&b->reading, false);
    atomic_fetch_add(&b->seq, 1);
    if (atomic_load(&b->deputy_idle))
        baton_wake_deputy(b);
}

uint64_t fe_baton_takeovers(const struct fe_baton *b)
{
    return atomic_load_explicit(&b->takeovers, memory_order_relaxed);
}
