/* One worker at a time reads /dev/fuse: the one that answered last.
 *
 * The kernel hands each request to the worker that has waited longest in
 * read(2) (an exclusive, first-in first-out wait queue). A caller that
 * sends its next request as soon as it has the reply thus meets a worker
 * that has slept since the request before, while the worker that answered
 * would have found the request queued on its way back (the caller, woken
 * by the reply, mostly runs first): one wake-up and context switch more per
 * request, about a quarter of the daemon's CPU for 4 KiB O_DIRECT reads.
 *
 * So the loop's workers pass a baton: only its holder reads, the others
 * park, and the holder keeps it from request to request. What more workers
 * are for, serving other requests while one is slow (a wait in the kernel
 * for a page that another request holds, fe_inval; a commit), a deputy
 * keeps: the first parked worker looks every period and takes the baton
 * over when the holder has served one request (has not come back to read)
 * for a whole period; the holder then parks when it comes back. A holder
 * waiting in read(2) through a whole period is idle: the deputy then sleeps
 * until the holder's next request wakes it, so an idle daemon does not
 * wake.
 *
 * A thread in read(2) without the baton (one taken over while on its way
 * there) does no harm: the baton decides who waits, never who may read. */
#ifndef UEXT4_FRONTEND_BATON_H
#define UEXT4_FRONTEND_BATON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* How long the holder may serve one request before the deputy takes the
 * baton over, in microseconds. A deputy that looks costs a wake-up per
 * period while requests come (2 ms: under 1% of a round trip's CPU). */
#define FE_BATON_PERIOD_US 2000

struct fe_baton {
    /* A private leaf: held by no one across anything but the waits below. */
    pthread_mutex_t m;
    pthread_cond_t parked; /* workers without the baton, but the deputy */
    pthread_cond_t watch;  /* the deputy */
    bool held;             /* protected by m: a worker has taken it */
    bool has_deputy;       /* protected by m */
    unsigned period_us;
    unsigned serial; /* this baton among those of the process */
    /* Written by the holder without m (its fast path), read by the deputy. */
    atomic_uint gen;                 /* bumped by each takeover */
    atomic_uint seq;                 /* requests the holder has read */
    atomic_bool reading;             /* the holder is in read(2) */
    atomic_bool deputy_idle;         /* the deputy waits for the next request */
    atomic_uint_least64_t takeovers; /* stats; relaxed */
};

void fe_baton_init(struct fe_baton *b, unsigned period_us);
void fe_baton_fini(struct fe_baton *b);
/* Before read(2) of /dev/fuse: returns once the calling thread holds the
 * baton (at once if it kept it). A cancellation point, as read(2) is. */
void fe_baton_wait(struct fe_baton *b);
/* After that read(2) returned, whatever it returned. */
void fe_baton_read_done(struct fe_baton *b);
/* Takeovers so far: how often the holder was slow for a whole period. */
uint64_t fe_baton_takeovers(const struct fe_baton *b);

#endif
