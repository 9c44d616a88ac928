#include "base/lock.h"
#include "base/lockdep.h"

#include <assert.h>

void mutex_init(struct mutex *l, enum lock_class cls, unsigned subclass)
{
    pthread_mutex_init(&l->m, NULL);
    l->cls = cls;
    l->subclass = subclass;
    l->held = false;
}

void mutex_destroy(struct mutex *l)
{
    assert(!l->held);
    pthread_mutex_destroy(&l->m);
}

void mutex_lock_nested_at(struct mutex *l, unsigned subclass, const char *file, int line)
{
    /* Check before blocking: an inversion is reported even when this
     * particular run would not have deadlocked. */
    lockdep_acquire(l->cls, subclass, (struct lock_site){file, line});
    pthread_mutex_lock(&l->m);
    l->owner = pthread_self();
    l->held = true;
    l->held_subclass = subclass;
}

void mutex_lock_at(struct mutex *l, const char *file, int line)
{
    mutex_lock_nested_at(l, l->subclass, file, line);
}

void mutex_unlock(struct mutex *l)
{
    assert(mutex_is_held(l));
    /* Read before letting go: the next holder may free the mutex. */
    unsigned sub = l->held_subclass;
    enum lock_class cls = l->cls;

    l->held = false;
    pthread_mutex_unlock(&l->m);
    lockdep_release(cls, sub);
}

bool mutex_is_held(const struct mutex *l)
{
    return l->held && pthread_equal(l->owner, pthread_self());
}

void rwlock_init(struct rwlock *l, enum lock_class cls)
{
    pthread_rwlockattr_t attr;

    /* Writers first: glibc's default lets a stream of readers starve a
     * waiting writer, and the writer of the mount lock is the journal
     * commit, which must not wait while the transaction grows without
     * bound. Safe because no thread takes a lock it holds (the checker
     * aborts on recursive acquisition). */
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&l->rw, &attr);
    pthread_rwlockattr_destroy(&attr);
    l->cls = cls;
}

void rwlock_destroy(struct rwlock *l)
{
    pthread_rwlock_destroy(&l->rw);
}

void rwlock_rdlock_at(struct rwlock *l, const char *file, int line)
{
    lockdep_acquire(l->cls, 0, (struct lock_site){file, line});
    pthread_rwlock_rdlock(&l->rw);
}

void rwlock_wrlock_at(struct rwlock *l, const char *file, int line)
{
    lockdep_acquire(l->cls, 0, (struct lock_site){file, line});
    pthread_rwlock_wrlock(&l->rw);
}

void rwlock_unlock(struct rwlock *l)
{
    pthread_rwlock_unlock(&l->rw);
    lockdep_release(l->cls, 0);
}
