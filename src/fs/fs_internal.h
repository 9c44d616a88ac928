/* Shared by the files of src/fs/ only: the mount and in-memory inodes.
 *
 * Locking (classes and order in base/lock.h):
 *  - fs->mount_lock: namespace operations (create, link, unlink, rename,
 *    mkdir, rmdir, symlink) hold it for writing, and so run alone; every
 *    other operation holds it for reading.
 *  - fs_inode.lock: data and attribute operations on one inode (read,
 *    write, truncate, setattr, xattrs, directory index builds), under the
 *    mount lock held for reading. Two inode locks are never held at once
 *    except by copy_file_range, which takes the mount lock for writing
 *    instead.
 *  - fs->itable_lock: the inode table and the counts in fs_inode.
 *  - the disk lock: inside e2/, a leaf.
 */
#ifndef UEXT4_FS_INTERNAL_H
#define UEXT4_FS_INTERNAL_H

#include "base/lock.h"
#include "e2/e2.h"
#include "pcache/pcache.h"
#include "uext4.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

struct dirindex;
struct fs_verity;

struct fs_inode {
    uint32_t ino;
    /* protected by itable_lock: */
    uint64_t nlookup; /* FUSE lookup references */
    unsigned nopen;   /* open files */
    unsigned pins;    /* operations in progress holding a pointer */
    unsigned nwrite;  /* of @nopen, those for writing (FS_IOC_ENABLE_VERITY's ETXTBSY) */
    bool unlinked;    /* nlink reached 0: free on the last reference */
    bool linkable;    /* an O_TMPFILE file that may get its one name */
    /* i_generation as the inode was read or made when a lookup reference
     * was taken (has_generation), for uext4_generation(): FUSE's entry
     * reply carries it, and reading the inode again for it cost a second
     * inode read per lookup. Nothing changes i_generation but the inode's
     * allocation and EXT4_IOC_SWAP_BOOT (bootloader.c), which leaves this
     * copy as it was on purpose, and the number is not freed (nor reused)
     * while this in-memory inode lives, which it does while referenced. */
    uint32_t generation;
    bool has_generation;
    struct fs_inode *hnext;

    struct mutex lock;
    /* protected by lock: */
    bool may_inline; /* new empty file: a first write that fits goes inline */
    /* [stale_lo, stale_hi): what a size-growing truncate exposed of the
     * page that held the old EOF. ext4 zeroes those bytes in its page
     * cache (pagecache_isize_extended); the FUSE kernel does not, and
     * writes the page back whole right after the truncate (it launders
     * the dirty page it invalidates), bytes stored there past the old
     * EOF through a mapping included. The next mmap writeback over the
     * range stores zeros there instead; a read or write(2) of the range
     * (the page is then the file's again) forgets it. */
    uint64_t stale_lo, stale_hi;
    /* The first failure of a write answered before its bytes reached the
     * image (uext4_write_pipe_early()) since the last fsync took it. */
    int write_err;
    /* fs->attrs_shown when a write last stored the times (file.c,
     * times_unseen); UINT64_MAX before that. */
    uint64_t times_shown;
    /* A verity file's descriptor and the tree blocks verified so far
     * (verity.c); NULL until its first open or read. */
    struct fs_verity *verity;
    /* protected by mount_lock (write) or lock with mount_lock (read): */
    struct dirindex *names;
    /* What a create in this directory finds of its default ACL
     * (fs_acl_inherit): unknown until read, then whether there is none,
     * so that creates in a directory without one stop reading its xattrs.
     * Only the absence is kept; a directory with a default ACL reads it
     * each time. Every xattr change through uext4_setxattr and
     * uext4_removexattr (setfacl, the library API) makes it unknown again;
     * nothing else changes a directory's default ACL (chmod rewrites the
     * access ACL only; store_acls writes a new inode, which has no
     * in-memory inode yet, as one exists only while its number is in use
     * and referenced). Same protection as @names. */
    enum fs_default_acl { FS_DEFACL_UNKNOWN, FS_DEFACL_NONE } default_acl;
    /* A directory whose every block passed e2_dir_check() (fs_dir_check).
     * Set once, never cleared: atomic, as the check is idempotent and two
     * racing first checks only repeat the walk. It stays true while the
     * image is ours (opened exclusively, MMP guarding it where enabled):
     * from then on the mapping changes only by this mount's own calls, and
     * every block they add (a directory growing, an htree index made or
     * split, a new directory given a freed number) comes from the block
     * allocator, which takes blocks the bitmap says are free: never those
     * of the system zone while the bitmap marks them in use (a bitmap
     * that marks its own group's metadata free misleads every allocation,
     * files' too; not this cache's to catch). The in-memory inode goes
     * when unused, and the next first use checks again. */
    atomic_bool dir_checked;
    /* Held for reading by each read by reference from the moment it maps
     * the file's blocks, under @lock, until its reply is sent, after @lock
     * is dropped (uext4_read_ref): a raw leaf, taken for writing only to
     * drain those readers (fs_inode_drain_replies_locked). */
    pthread_rwlock_t reply_lock;
};

static inline void assert_inode_locked(const struct fs_inode *fi)
{
    assert(mutex_is_held(&fi->lock));
}

struct fs_commit;

struct uext4_fs {
    struct e2_image *img;
    struct fs_commit *commit; /* the periodic commit thread; NULL if read-only */
    struct pc_cache *pc;      /* emulated page cache of library-mode mmap stores */
    atomic_bool dirty;        /* changed since the last commit */
    struct uext4_options opts;
    bool inline_files; /* inline_data and inodes with room for it */
    struct rwlock mount_lock;

    struct mutex itable_lock;
    struct fs_inode **itable; /* protected by itable_lock */
    struct fs_inode *root;    /* pinned from fs_icache_init() to fs_icache_destroy() */
    size_t itable_size, itable_count;
    /* protected by itable_lock: the first failure to free an unlinked
     * inode at a forget or release, until fs_take_free_error() reports it */
    int free_err;
    /* protected by itable_lock: the same for writes answered early
     * (fs_inode.write_err), until uext4_sync() reports it */
    int write_err;
    /* Attributes handed out so far (fs_attr_to_stat(): every stat, statx,
     * lookup, create or setattr reply). A write that finds none handed
     * out since it last stored an inode's times may leave them as they
     * are (file.c, times_unseen). */
    atomic_uint_fast64_t attrs_shown;
    /* The resolution of CLOCK_REALTIME_COARSE (the kernel's tick), in ns;
     * 0 if unknown. Set at open. */
    int64_t tick_ns;
};

/* ---- icache.c ---- */
int fs_icache_init(struct uext4_fs *fs);
/* Free every unlinked inode and the table (at close). */
int fs_icache_destroy(struct uext4_fs *fs);
/* Pin the in-memory inode of @ino, creating it if needed. */
struct fs_inode *fs_inode_get(struct uext4_fs *fs, uint32_t ino);
/* Drop a pin; frees an unlinked inode with no references left. */
void fs_inode_put(struct uext4_fs *fs, struct fs_inode *fi);
/* The start of an operation on one inode: the mount lock for reading,
 * the inode pinned and locked, and no reply of a read by reference of it
 * still being sent (such a reply reads the blocks the operation may
 * change or free). NULL when out of memory. */
struct fs_inode *fs_op_begin(struct uext4_fs *fs, uint32_t ino);
/* fs_op_begin() for a read, which changes no block of the file: replies of
 * earlier reads may still be in flight (so a reader's next read does not
 * wait for the worker that sent it the last one). */
struct fs_inode *fs_op_begin_read(struct uext4_fs *fs, uint32_t ino);
void fs_op_end(struct uext4_fs *fs, struct fs_inode *fi);
/* Wait until no reply of a read by reference of @fi is being sent. New
 * ones cannot start meanwhile: they begin under @fi's lock, which the
 * caller holds. */
void fs_inode_drain_replies_locked(struct fs_inode *fi);
/* Take @n lookup references on @ino; @a (may be NULL: not known) is the
 * inode as read or just written, whose generation is kept for
 * fs_inode_generation(). */
void fs_inode_ref_lookup(struct uext4_fs *fs, uint32_t ino, uint64_t n, const struct e2_attr *a);
/* The generation a lookup reference recorded for @ino: false when there is
 * no in-memory inode or none was recorded (the caller reads the inode). */
bool fs_inode_generation(struct uext4_fs *fs, uint32_t ino, uint32_t *generation);
/* Count an open (@delta 1) or a release (-1). Returns the error of freeing
 * the inode if this release freed it (also latched, see below). */
int fs_inode_ref_open(struct uext4_fs *fs, uint32_t ino, int delta);
/* Count an open for writing (@delta 1) or its release (-1): FUSE's
 * RELEASE and uext4_release_file() say which opens wrote. */
void fs_inode_ref_writer(struct uext4_fs *fs, uint32_t ino, int delta);
/* The opens for writing of @ino counted now. */
unsigned fs_inode_writers(struct uext4_fs *fs, uint32_t ino);
/* The first failure to free an unlinked inode at its last forget or
 * release since the last call, once (0 if none). Such a failure is also
 * logged and recorded in the superblock (errors= applies): the inode stays
 * allocated with no name until e2fsck repairs it. A forget has no reply
 * and FUSE drops release's, so fsync, sync and close report it. */
int fs_take_free_error(struct uext4_fs *fs);
/* The first failure of a write answered early (uext4_write_pipe_early())
 * since the last call; taken. uext4_sync() reports it, and an unmount. */
int fs_take_write_error(struct uext4_fs *fs);
/* The on-disk link count of @ino reached 0: free it now if nothing
 * refers to it, or at its last forget/release. */
int fs_inode_unlinked(struct uext4_fs *fs, uint32_t ino);
/* @ino is an unlinked inode still referenced: an O_TMPFILE file, made
 * linkable or not. */
void fs_inode_set_linkable(struct uext4_fs *fs, uint32_t ino, bool linkable);
/* Whether @ino is an unlinked O_TMPFILE file that may get a name. */
bool fs_inode_is_linkable(struct uext4_fs *fs, uint32_t ino);
/* A linkable inode got a name: it leaves the orphan list, and is unlinked
 * no more, nor linkable again (as the kernel's I_LINKABLE). -ENOENT for
 * any other inode. */
int fs_inode_relink(struct uext4_fs *fs, uint32_t ino);

/* ---- errors.c ---- */
/* Apply the errors= policy to an error of an operation on @ino; returns
 * @err unchanged. Corruption (-EUCLEAN) is logged and recorded. */
int fs_check(struct uext4_fs *fs, uint32_t ino, int err, const char *func, int line);
#define FS_CHECK(fs, ino, err) fs_check((fs), (ino), (err), __func__, __LINE__)
/* Record an error found in @ino in the superblock (error count, first and
 * last error) and apply the errors= policy; the caller has logged it. */
void fs_record_error(struct uext4_fs *fs, uint32_t ino, const char *func, int line);
int fs_may_write(struct uext4_fs *fs);
/* Whether @a's contents may change: -EPERM for an fs-verity file, whose
 * Merkle tree (past EOF) would no longer match, as the kernel refuses. */
int fs_may_write_data(const struct e2_attr *a);
void fs_now(struct timespec *ts);
/* An access to @ino (inode locked, @a its attributes): record it in atime
 * as the atime options say (relatime by default: only when atime predates
 * mtime or ctime, or is a day old). The kernel leaves atime to a FUSE
 * daemon. A failure to record it fails nothing. */
void fs_touch_atime(struct uext4_fs *fs, uint32_t ino, struct e2_attr *a);
static inline int timespec_cmp(const struct timespec *a, const struct timespec *b)
{
    if (a->tv_sec != b->tv_sec)
        return a->tv_sec < b->tv_sec ? -1 : 1;
    return a->tv_nsec < b->tv_nsec ? -1 : a->tv_nsec > b->tv_nsec;
}

/* ---- mmap.c ---- */
/* i_size went from @old to @new by a truncate: remember the tail of the
 * page holding @old as stale (fs_inode.stale_lo), or forget it. */
void fs_stale_tail_set(struct fs_inode *fi, uint64_t old, uint64_t new);
/* A read or write(2) of [@off, @off + @len): the range is no longer stale. */
void fs_stale_tail_touch(struct fs_inode *fi, uint64_t off, uint64_t len);
/* An mmap writeback of @size bytes at @off: NULL if it covers no stale
 * bytes, else a malloc'd copy of @buf with them zeroed (the range is then
 * forgotten); *@err is -ENOMEM when the copy fails. */
void *fs_stale_tail_scrub(struct fs_inode *fi, const void *buf, size_t size, uint64_t off,
                          int *err);
int fs_pcache_create(struct uext4_fs *fs);
/* Write back every inode's emulated dirty pages (commit, close). */
int fs_writeback_all(struct uext4_fs *fs);
/* Write back one inode's dirty pages (inode locked); returns a latched
 * writeback error, once. */
int fs_writeback_locked(struct uext4_fs *fs, struct fs_inode *fi);

/* ---- file.c ---- */
/* @ret is -ENOSPC and blocks freed since the last commit are held back
 * until it is durable (e2/journal.c): commit now (the caller holds no
 * lock) and say whether the operation should be tried once more, as ext4
 * does. */
bool fs_should_retry_enospc(struct uext4_fs *fs, long ret);

/* ---- commit.c ---- */
int fs_commit_start(struct uext4_fs *fs, unsigned seconds);
/* Commit now (fs.c): takes the mount lock for writing, so the caller holds
 * no lock. */
int fs_commit_now(struct uext4_fs *fs);
/* At the start of an operation, with no lock held: commit now if the
 * running transaction is overdue (e2_commit_overdue), so that no
 * operation can grow it past what the journal holds. */
void fs_commit_if_overdue(struct uext4_fs *fs);
void fs_commit_stop(struct uext4_fs *fs);

/* ---- perm.c ---- */
struct fs_groups {
    bool loaded;
    unsigned n;
    const gid_t *gids; /* local ids */
};

/* The image id of a caller whose local id the id map leaves out. */
#define FS_NO_ID 0xffffffffu

struct fs_cred {
    uint32_t uid, gid; /* image ids, FS_NO_ID when unmapped */
    /* Loaded on first use by fs_cred_in_group(): the pointer lets a const
     * fs_cred fill it in. */
    struct fs_groups *groups;
    struct fs_groups groups_storage;
    mode_t umask;
    bool root; /* uid 0 or fakeroot: the capability checks pass */
    const struct uext4_cred *local;
};
int fs_cred_from(struct uext4_fs *fs, const struct uext4_cred *cr, struct fs_cred *fc);
/* The caller's image uid is @uid. An unmapped caller is nobody in the
 * image, not the owner of whatever an image stores as 0xffffffff. */
static inline bool fs_cred_uid_is(const struct fs_cred *fc, uint32_t uid)
{
    return fc->uid != FS_NO_ID && fc->uid == uid;
}
bool fs_cred_in_group(struct uext4_fs *fs, const struct fs_cred *fc, uint32_t gid);
/* generic_permission(): @mask of MAY_READ/WRITE/EXEC (R_OK/W_OK/X_OK). */
int fs_permission(struct uext4_fs *fs, const struct fs_cred *fc, uint32_t ino,
                  const struct e2_attr *a, int mask);
/* The caller's root powers apply to this inode: it is root (or fakeroot)
 * and, under an id map, the inode's owner and group are mapped (the
 * kernel's capable_wrt_inode_uidgid()). */
bool fs_capable(const struct uext4_fs *fs, const struct fs_cred *fc, const struct e2_attr *a);
/* Owner, or capable (inode_owner_or_capable()). */
bool fs_is_owner(const struct uext4_fs *fs, const struct fs_cred *fc, const struct e2_attr *a);
/* may_linkat() under fs.protected_hardlinks: a caller who does not own
 * @ino may link it only if it is a regular file, not setuid nor setgid
 * executable, that it may read and write. 0, -EPERM, or another -errno. */
int fs_may_hardlink(struct uext4_fs *fs, const struct fs_cred *fc, uint32_t ino,
                    const struct e2_attr *a);
/* may_delete()'s rules for removing or replacing @victim in @dir (whose
 * write access the caller has checked): not out of an append-only
 * directory, not an immutable or append-only victim, and the sticky bit. */
int fs_may_delete(const struct uext4_fs *fs, const struct fs_cred *fc, const struct e2_attr *dir,
                  const struct e2_attr *victim);
/* New inode's mode and ACLs from the parent's default ACL (posix_acl_create). */
int fs_acl_inherit(struct uext4_fs *fs, uint32_t dir, mode_t *mode, void **access_acl,
                   size_t *access_len, void **default_acl, size_t *default_len);
/* Keep an access ACL's entries in step with a chmod (posix_acl_chmod);
 * @limited: as e2_xattr_set's. */
int fs_acl_chmod(struct uext4_fs *fs, uint32_t ino, mode_t mode, bool limited);
/* Mode bits equivalent to an access ACL being set; 1 if the ACL is fully
 * represented by the mode (and need not be stored). */
int fs_acl_equiv_mode(const void *acl, size_t len, mode_t *mode);
/* Translate the named-user and named-group ids of an ACL xattr in place. */
int fs_acl_map_ids(const struct uext4_fs *fs, void *buf, size_t len, bool to_image);
/* getxattr of UEXT4_INSPECT_XATTR (inspect.c): called with no lock held,
 * takes the mount lock shared like uext4_inspect(). Returns the JSON's
 * length (@size 0: only that), -ERANGE, or the -errno of a check. */
ssize_t fs_inspect_xattr(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino,
                         void *value, size_t size);

/* file_remove_privs() / setattr_should_drop_sgid(): drop setuid, and
 * setgid where it means group-exec or the caller is outside the group
 * (@in_group: member of the file's group, or capable). Returns whether
 * @mode changed. */
static inline bool fs_kill_priv(mode_t *mode, bool in_group)
{
    mode_t m = *mode & ~(mode_t)S_ISUID;

    if ((m & S_IXGRP) || !in_group)
        m &= ~(mode_t)S_ISGID;
    if (m == *mode)
        return false;
    *mode = m;
    return true;
}

/* file_remove_privs() for a modification (write, truncate, fallocate) of
 * @a by @fc: drops from *@mode what fs_kill_priv() drops, unless the caller
 * is capable and holds CAP_FSETID (uext4_cred.has_fsetid). Returns whether
 * *@mode changed. */
bool fs_remove_privs(struct uext4_fs *fs, const struct fs_cred *fc, const struct e2_attr *a,
                     mode_t *mode);

/* ext4_mask_flags(): the i_flags an inode of @mode can carry. */
static inline uint32_t fs_mask_flags(mode_t mode, uint32_t flags)
{
    if (S_ISDIR(mode))
        return flags;
    if (S_ISREG(mode))
        return flags & ~E2_FL_DIR_ONLY;
    return flags & E2_FL_OTHER_MASK;
}

/* ---- idmap.c ---- */
int fs_uid_to_image(const struct uext4_fs *fs, uint32_t local, uint32_t *image);
int fs_gid_to_image(const struct uext4_fs *fs, uint32_t local, uint32_t *image);
bool fs_uid_is_mapped(const struct uext4_fs *fs, uint32_t image, uint32_t *local);
bool fs_gid_is_mapped(const struct uext4_fs *fs, uint32_t image, uint32_t *local);
uint32_t fs_uid_to_local(const struct uext4_fs *fs, uint32_t image);
uint32_t fs_gid_to_local(const struct uext4_fs *fs, uint32_t image);
void fs_attr_to_stat(struct uext4_fs *fs, uint32_t ino, const struct e2_attr *a, struct stat *st);

/* ---- dirindex.c ---- */
/* Find @name in @dir (the in-memory inode of a directory, locked by the
 * caller as above): 0 with *ino and *ftype set, or -ENOENT. */
int fs_dir_find(struct uext4_fs *fs, struct fs_inode *dir, const char *name, uint32_t *ino,
                unsigned *ftype);
/* Keep an existing index in step with a change made to the directory. */
void fs_dir_index_add(struct fs_inode *dir, const char *name, uint32_t ino, unsigned ftype);
void fs_dir_index_remove(struct fs_inode *dir, const char *name);
void fs_dir_index_free(struct fs_inode *dir);
/* Before any call that reads or writes directory @dir's blocks (lookup
 * by scan or index build, readdir, adding, removing or retargeting an
 * entry, "..", the emptiness test): its whole mapping checked against the
 * system zone once per in-memory inode (fs_inode.dir_checked). 0 or
 * -EUCLEAN (logged, naming the inode and block); the caller records it. */
int fs_dir_check(struct uext4_fs *fs, struct fs_inode *dir);
/* fs_dir_check() by number (pins the in-memory inode for the call). */
int fs_dir_check_ino(struct uext4_fs *fs, uint32_t dir);
/* e2_dir_is_empty() after fs_dir_check_ino(). */
int fs_dir_is_empty(struct uext4_fs *fs, uint32_t dir);

/* ---- namei.c: helpers shared with rename.c; mount lock held ---- */
int fs_check_name(const char *name);
/* Owner, group and times of a new inode @a (its mode set) created by @fc
 * in the directory of attributes @da: the creator's ids, the directory's
 * group under grpid or when it is setgid (and then the bit, for a
 * directory), all times now. */
void fs_init_owner(struct uext4_fs *fs, const struct fs_cred *fc, const struct e2_attr *da,
                   struct e2_attr *a);
/* Whether @a may not get a name in the directory of attributes @da: the
 * directory has PROJINHERIT and another project (link and rename give
 * EXDEV, as ext4). */
bool fs_crosses_project(struct uext4_fs *fs, const struct e2_attr *da, const struct e2_attr *a);
int fs_find_entry(struct uext4_fs *fs, uint32_t dir, const char *name, uint32_t *ino);
int fs_dir_access(struct uext4_fs *fs, const struct fs_cred *fc, uint32_t dir, struct e2_attr *a,
                  bool write);
int fs_add_entry(struct uext4_fs *fs, uint32_t dir, const char *name, uint32_t ino, mode_t mode);
int fs_remove_entry(struct uext4_fs *fs, uint32_t dir, const char *name);
int fs_retarget_entry(struct uext4_fs *fs, uint32_t dir, const char *name, uint32_t ino,
                      mode_t mode);
/* Update a directory's mtime/ctime and, by @nlink_delta, its link count. */
int fs_touch_dir(struct uext4_fs *fs, uint32_t dir, int nlink_delta);
/* Drop a link of @ino (every link of a directory); at 0 free it now or
 * at its last reference. */
int fs_drop_link(struct uext4_fs *fs, uint32_t ino, const struct e2_attr *a);

/* ---- inline.c (the inline-data policy) ---- */
/* Write @size bytes at @off into @fi, whose attributes are @a. When any
 * byte is written, @fields of @na (the attributes the write changes:
 * E2_A_MTIME, E2_A_CTIME, E2_A_MODE; 0 for none) are stored with the data,
 * in the same storage step (e2_data_write()). */
ssize_t fs_file_write_locked(struct uext4_fs *fs, struct fs_inode *fi, const struct e2_attr *a,
                             const void *buf, size_t size, off_t off, const struct e2_attr *na,
                             unsigned fields);
/* fs_file_write_locked() with the bytes in a pipe (uext4_write_pipe()):
 * -EAGAIN, nothing taken, where they must pass through memory. @acc as
 * for e2_data_write_pipe(). */
ssize_t fs_file_write_pipe_locked(struct uext4_fs *fs, struct fs_inode *fi, const struct e2_attr *a,
                                  int pipe_fd, size_t size, off_t off, const struct e2_attr *na,
                                  unsigned fields, const struct e2_accept *acc);
/* Read @fi's data, inline or in blocks. The inode lock held is what keeps
 * the blocks e2_data_read() maps, then reads without the disk lock, the
 * file's (e2.h): every writer, truncate, punch, shift and free of a file's
 * blocks takes it too. */
ssize_t fs_file_read_locked(struct uext4_fs *fs, struct fs_inode *fi, const struct e2_attr *a,
                            void *buf, size_t size, off_t off);
/* Writeback of mmap'd pages: never changes i_size (rule 3). */
ssize_t fs_file_mmap_writeback_locked(struct uext4_fs *fs, struct fs_inode *fi,
                                      const struct e2_attr *a, const void *buf, size_t size,
                                      off_t off);
int fs_file_truncate_locked(struct uext4_fs *fs, struct fs_inode *fi, const struct e2_attr *a,
                            uint64_t size);
/* Convert an inline file to blocks (fallocate and growth beyond capacity). */
int fs_inline_convert_locked(struct uext4_fs *fs, struct fs_inode *fi);

/* ---- verity.c ---- */
/* Read @fi's descriptor (inode locked, @a its attributes) into fi->verity
 * if it is a verity file not loaded yet: 0, or -EUCLEAN (no descriptor
 * where ext4 puts it), -EINVAL (one the kernel refuses), -EMSGSIZE,
 * -ENOMEM, as the kernel's open of such a file fails. */
int fs_verity_load_locked(struct uext4_fs *fs, struct fs_inode *fi, const struct e2_attr *a);
void fs_verity_free(struct fs_verity *v);
/* fs_file_read_locked(), checked against the Merkle tree for a verity
 * file: -EIO if a block of the range (whole tree blocks around it) does
 * not match its hash. Every reader of file data for a caller uses this. */
ssize_t fs_file_read_verified_locked(struct uext4_fs *fs, struct fs_inode *fi,
                                     const struct e2_attr *a, void *buf, size_t size, off_t off);

#endif
