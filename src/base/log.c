#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

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

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG};
    static const char *const name[] = {"error", "warning", "notice", "info", "debug"};
    va_list ap;

    if (lvl > log_max)
        return;
    va_start(ap, fmt);
    if (log_func) {
        char line[1024];
        vsnprintf(line, sizeof(line), fmt, ap);
        log_func(lvl, line, log_func_data);
        va_end(ap);
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
    va_end(ap);
}
