/* Shared by the files of src/jbd2/ only. */
#ifndef UEXT4_JBD2_INTERNAL_H
#define UEXT4_JBD2_INTERNAL_H

#include <stddef.h>

/* Format a message into the caller's @why buffer (may be NULL or 0 long). */
void jbd2_say(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
