/* Lock wrappers and the lock-order checker.
 *
 * Every lock in the daemon belongs to a class. The order, outermost first,
 * and the function that creates each nesting:
 *
 *   LC_MOUNT  (rwlock, fs-wide namespace lock)
 *     -> LC_INODE     uext4_rename/_link/_create... take the directory and
 *                     then the child inode (fs/namei.c)
 *   LC_INODE  (mutex per in-memory inode; two at once only via
 *              lock_inode_pair(), lower inode number first = subclass 0)
 *     -> LC_ITABLE    fs_inode_get() from inside an inode-locked op (fs/icache.c)
 *     -> LC_PCACHE    pc_*() calls of a data op (pcache/pcache.c)
 *     -> LC_DISK      every libext2fs call of an op (e2/ via e2_lock())
 *   LC_PCACHE (mutex, the page cache's table of files; a leaf: never held
 *              across the cache's storage callbacks)
 *   LC_ITABLE (mutex, the inode number -> in-memory inode table)
 *     -> LC_DISK      fs_inode_put() frees an orphan inode (fs/icache.c)
 *   LC_DISK   (mutex, the libext2fs lock, held only around library calls;
 *              libext2fs is not thread-safe even for reads; it also guards
 *              the block cache and journal of src/e2/iomgr.c and journal.c)
 *     -> the commit thread's wake mutex (fs/commit.c, a raw pthread leaf)
 *                     e2_step_end_locked() asks for a commit when the running
 *                     transaction outgrows its share of the journal
 *
 * fs/readdir.c's dir_lock, over every open directory's snapshot, is a raw
 * pthread leaf, taken with none of these held and taking none (readdir.c
 * says why it is one lock and not one per handle).
 *
 * struct fs_inode's reply_lock (a raw pthread rwlock per in-memory inode,
 * fs/fs_internal.h) comes after LC_INODE:
 *   LC_INODE -> reply_lock (read)   uext4_read_ref() takes it before it
 *                     drops the inode and mount locks, holds it across the
 *                     reply, taking nothing more (fs/file.c read_ref_reply)
 *   LC_INODE -> reply_lock (write)  fs_op_begin() and copy_file_range's
 *                     lock_pair() take and drop it at once: a drain of the
 *                     replies in flight (fs_inode_drain_replies_locked)
 * A read's next read (fs_op_begin_read) does not drain.
 *
 * A journal commit (e2_image_sync) runs under LC_MOUNT held for writing,
 * so it sees only whole operations, and then LC_DISK.
 *
 * No lock is held across a fuse_reply_*() call, except
 *  - an inode's reply_lock (read) by a read by reference (uext4_read_ref()
 *    -> the front end's reply, frontend/file.c): the image blocks it
 *    splices or writes into the reply stay the file's only while whatever
 *    could change or free them waits (the drain);
 *  - LC_MOUNT (read), LC_INODE and LC_DISK by a WRITE answered early
 *    (uext4_write_pipe_early() -> fe_write_told()): its bytes move into the
 *    image after the answer, and the inode lock keeps every later request
 *    on the file, the next WRITE over the same pages first, behind them.
 * A reply never waits on this file system, so it cannot close a cycle.
 *
 * The checker (on in all debug and test builds) records for every pair of
 * classes whether B was ever taken while A was held; on the first
 * acquisition that would close a cycle it prints both sites and aborts. */
#ifndef UEXT4_BASE_LOCK_H
#define UEXT4_BASE_LOCK_H

#include <pthread.h>
#include <stdbool.h>

enum lock_class {
    LC_MOUNT,
    LC_INODE,
    LC_ITABLE,
    LC_PCACHE,
    LC_DISK,
    LC_TEST_A, /* for the checker's own unit test */
    LC_TEST_B,
    LC_NR_CLASSES
};

struct lock_site {
    const char *file;
    int line;
};

struct mutex {
    pthread_mutex_t m;
    enum lock_class cls;
    unsigned subclass;
    unsigned held_subclass; /* the subclass it was taken as */
    pthread_t owner;        /* valid while held; for mutex_assert_held() */
    bool held;
};

struct rwlock {
    pthread_rwlock_t rw;
    enum lock_class cls;
};

/* Turn the checker on or off for the process; the default is the build's
 * (on unless built with -Dlockdep=false). Call before threads start. */
void lockdep_enable(bool on);
bool lockdep_is_enabled(void);

void mutex_init(struct mutex *l, enum lock_class cls, unsigned subclass);
void mutex_destroy(struct mutex *l);
void mutex_lock_at(struct mutex *l, const char *file, int line);
/* Take a second lock of the same class; @subclass 1 must be taken inside 0. */
void mutex_lock_nested_at(struct mutex *l, unsigned subclass, const char *file, int line);
void mutex_unlock(struct mutex *l);
bool mutex_is_held(const struct mutex *l);

void rwlock_init(struct rwlock *l, enum lock_class cls);
void rwlock_destroy(struct rwlock *l);
void rwlock_rdlock_at(struct rwlock *l, const char *file, int line);
void rwlock_wrlock_at(struct rwlock *l, const char *file, int line);
void rwlock_unlock(struct rwlock *l);

/* The site of the acquisition is what the checker prints. */
#define mutex_lock(l)             mutex_lock_at((l), __FILE__, __LINE__)
#define mutex_lock_nested(l, sub) mutex_lock_nested_at((l), (sub), __FILE__, __LINE__)
#define rwlock_rdlock(l)          rwlock_rdlock_at((l), __FILE__, __LINE__)
#define rwlock_wrlock(l)          rwlock_wrlock_at((l), __FILE__, __LINE__)

#endif
