/* Internal interface between the lock wrappers and the checker. */
#ifndef UEXT4_BASE_LOCKDEP_H
#define UEXT4_BASE_LOCKDEP_H

#include "base/lock.h"

void lockdep_acquire(enum lock_class cls, unsigned subclass, struct lock_site site);
void lockdep_release(enum lock_class cls, unsigned subclass);

/* Locks this thread holds that the checker knows of; 0 when disabled. The
 * FUSE front end asserts it is 0 before every reply. */
unsigned lockdep_held_count(void);

#endif
