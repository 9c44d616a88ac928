/* Logging for every layer. Messages go to stderr (foreground) or syslog
 * (daemonised); the destination is chosen once at start-up. A daemon that
 * is not yet mounted also copies them to stderr (log_tee_to_stderr), so
 * what it says before it is ready reaches the user who started it. */
#ifndef UEXT4_BASE_LOG_H
#define UEXT4_BASE_LOG_H

#include <stdbool.h>

/* NOTICE: normal but worth telling the user who mounts (a journal replayed);
 * a daemon logs up to NOTICE, the foreground up to INFO. */
enum log_level { LOG_LVL_ERR, LOG_LVL_WARN, LOG_LVL_NOTICE, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Call before any thread starts. @use_syslog sends output to syslog(3). */
void log_setup(const char *ident, enum log_level max, bool use_syslog);

/* With syslog: also write errors, warnings and notices to stderr while @on,
 * for a daemon whose starter still waits on its terminal (a lock being
 * waited for, a read-only fallback, a journal replayed). */
void log_tee_to_stderr(bool on);

/* Where messages go instead of stderr/syslog when set (library mode:
 * uext4_set_log_func). @line has no newline. */
typedef void (*log_func_t)(enum log_level lvl, const char *line, void *data);

/* Route messages at @max and more severe levels to @func (NULL: back to the
 * log_setup() destination, at LOG_LVL_WARN). Not synchronised with
 * log_msg(): call while no other thread logs. */
void log_set_func(log_func_t func, void *data, enum log_level max);

void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* An error found in the image (corruption, a lie), at LOG_LVL_ERR but at
 * most LOG_CORRUPT_BURST of them per LOG_CORRUPT_INTERVAL_MS, as ext4
 * rate-limits ext4_error() (err_ratelimit_burst 10 per 5 s): each lookup
 * of a damaged entry says so, and a loop listing a directory of 20,000
 * of them must not flood syslog. The first message of the next window
 * says how many were left out. Any thread. */
#define LOG_CORRUPT_BURST       10
#define LOG_CORRUPT_INTERVAL_MS 5000
void log_corrupt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Tests: another burst and interval (0, 0: the defaults). */
void log_corrupt_limit(unsigned burst, unsigned interval_ms);

#define log_err(...)    log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...)   log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LVL_NOTICE, __VA_ARGS__)
#define log_info(...)   log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)  log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
