#include "base/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <syslog.h>
#include <time.h>

/* Written once by log_setup() before threads exist, read-only afterwards. */
static const char *log_ident = "uext4";
static enum log_level log_max = LOG_LVL_WARN;
static bool log_to_syslog;
/* Atomic: set by the daemon until it detaches, read by every thread. */
static bool log_tee_stderr;
/* Written by log_set_func() while no other thread logs (library mode). */
static log_func_t log_func;
static void *log_func_data;

void log_setup(const char *ident, enum log_level max, bool use_syslog)
{
    log_ident = ident;
    log_max = max;
    log_to_syslog = use_syslog;
    if (use_syslog)
        openlog(ident, LOG_PID, LOG_DAEMON);
}

void log_tee_to_stderr(bool on)
{
    __atomic_store_n(&log_tee_stderr, on, __ATOMIC_RELAXED);
}

void log_set_func(log_func_t func, void *data, enum log_level max)
{
    log_func = func;
    log_func_data = data;
    log_max = func ? max : LOG_LVL_WARN;
}

static void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG};
    static const char *const name[] = {"error", "warning", "notice", "info", "debug"};

    if (lvl > log_max)
        return;
    if (log_func) {
        char line[1024];
        vsnprintf(line, sizeof(line), fmt, ap);
        log_func(lvl, line, log_func_data);
        return;
    }
    if (log_to_syslog) {
        va_list again;
        va_copy(again, ap);
        vsyslog(prio[lvl], fmt, again);
        va_end(again);
    }
    /* A notice (a journal replayed, orphans freed) is for the user who
     * mounts as much as a warning is. */
    if (!log_to_syslog ||
        (__atomic_load_n(&log_tee_stderr, __ATOMIC_RELAXED) && lvl <= LOG_LVL_NOTICE)) {
        /* One fprintf per line keeps lines from different threads whole. */
        char line[1024];
        vsnprintf(line, sizeof(line), fmt, ap);
        fprintf(stderr, "%s: %s: %s\n", log_ident, name[lvl], line);
    }
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vmsg(lvl, fmt, ap);
    va_end(ap);
}

/* The window of log_corrupt(). A raw pthread mutex: a leaf taken with any
 * lock held (the image's, an inode's), held for a clock read. */
static pthread_mutex_t corrupt_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned corrupt_burst = LOG_CORRUPT_BURST; /* protected by corrupt_lock */
static uint64_t corrupt_interval_ns = LOG_CORRUPT_INTERVAL_MS * 1000000ull; /* ditto */
static uint64_t corrupt_start_ns;                /* ditto: the window's start */
static unsigned corrupt_printed, corrupt_missed; /* ditto: in this window */

void log_corrupt_limit(unsigned burst, unsigned interval_ms)
{
    pthread_mutex_lock(&corrupt_lock);
    corrupt_burst = burst ? burst : LOG_CORRUPT_BURST;
    corrupt_interval_ns = (interval_ms ? interval_ms : LOG_CORRUPT_INTERVAL_MS) * 1000000ull;
    corrupt_start_ns = 0;
    corrupt_printed = corrupt_missed = 0;
    pthread_mutex_unlock(&corrupt_lock);
}

/* Whether this message may go out; *@missed: how many the window that
 * just ended left out (to be said first). */
static bool corrupt_pass(unsigned *missed)
{
    struct timespec now;
    uint64_t ns;
    bool pass;

    clock_gettime(CLOCK_MONOTONIC, &now);
    ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
    pthread_mutex_lock(&corrupt_lock);
    *missed = 0;
    if (!corrupt_start_ns || ns - corrupt_start_ns >= corrupt_interval_ns) {
        *missed = corrupt_missed;
        corrupt_start_ns = ns;
        corrupt_printed = corrupt_missed = 0;
    }
    pass = corrupt_printed < corrupt_burst;
    if (pass)
        corrupt_printed++;
    else
        corrupt_missed++;
    pthread_mutex_unlock(&corrupt_lock);
    return pass;
}

void log_corrupt(const char *fmt, ...)
{
    unsigned missed;
    va_list ap;

    if (!corrupt_pass(&missed))
        return;
    if (missed)
        log_msg(LOG_LVL_ERR, "%u more errors found in the image were not logged", missed);
    va_start(ap, fmt);
    log_vmsg(LOG_LVL_ERR, fmt, ap);
    va_end(ap);
}
