/* Logging for every layer. Messages go to stderr (foreground) or syslog
 * (daemonised); the destination is chosen once at start-up. A daemon that
 * is not yet mounted also copies them to stderr (log_copy_to_stderr), so
 * what it says before it is ready reaches the user who started it. */
#ifndef UEXT4_BASE_LOG_H
#define UEXT4_BASE_LOG_H

#include <stdbool.h>

/* NOTICE: normal but worth telling the user who mounts (a journal replayed);
 * a daemon logs up to NOTICE, the foreground up to INFO. */
enum log_level { LOG_LVL_ERR, LOG_LVL_WARN, LOG_LVL_NOTICE, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Call before any thread starts. @use_syslog sends output to syslog(3). */
void log_setup(const char *ident, enum log_level max, bool use_syslog);

/* With syslog output: while @on, every message is also printed to stderr.
 * Safe to call while other threads log; a message being written as it
 * turns off may still go to stderr. */
void log_copy_to_stderr(bool on);

void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...)    log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...)   log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LVL_NOTICE, __VA_ARGS__)
#define log_info(...)   log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)  log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
