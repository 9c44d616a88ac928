#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

/* Written once by log_setup() before threads exist, read-only afterwards. */
static const char *log_ident = "uext4";
static enum log_level log_max = LOG_LVL_WARN;
static bool log_to_syslog;
/* Changed while threads run (the commit thread logs before the mount is
 * ready): read and written atomically. */
static bool log_stderr_copy;

void log_setup(const char *ident, enum log_level max, bool use_syslog)
{
    log_ident = ident;
    log_max = max;
    log_to_syslog = use_syslog;
    if (use_syslog)
        openlog(ident, LOG_PID, LOG_DAEMON);
}

void log_copy_to_stderr(bool on)
{
    __atomic_store_n(&log_stderr_copy, on, __ATOMIC_SEQ_CST);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG};
    static const char *const name[] = {"error", "warning", "notice", "info", "debug"};
    /* One fprintf per line keeps lines from different threads whole. */
    char line[1024];
    va_list ap;

    if (lvl > log_max)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (log_to_syslog)
        syslog(prio[lvl], "%s", line);
    if (!log_to_syslog || __atomic_load_n(&log_stderr_copy, __ATOMIC_SEQ_CST))
        fprintf(stderr, "%s: %s: %s\n", log_ident, name[lvl], line);
}
