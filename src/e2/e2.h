/* The storage layer: the only code that includes <ext2fs/ext2fs.h>.
 *
 * Every function takes the disk lock (LC_DISK, base/lock.h) itself, for the
 * duration of its libext2fs calls, and returns 0 / a count or -errno;
 * errcode_t never leaves this directory (translated by e2_errno()). Each call
 * is atomic with respect to other e2 calls; sequences of calls get their
 * atomicity from the fs layer's mount and inode locks.
 *
 * The fs layer never sees a `struct ext2_inode`: it reads and changes inode
 * fields through `struct e2_attr` and e2_inode_get()/e2_inode_set(). */
#ifndef UEXT4_E2_H
#define UEXT4_E2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct e2_image;

/* ---- image (image.c) ---- */

struct e2_open_opts {
    bool read_only;
    bool norecovery;  /* an image needing recovery is mounted read-only, unreplayed */
    bool force_ro_ok; /* may fall back to read-only for unwritable features */
    /* The file system starts @offset bytes into the image file and spans
     * at most @sizelimit bytes of it (0: to the end of the file). */
    uint64_t offset, sizelimit;
    /* The file holding the file system's external journal (ext4's
     * journal_path=), or NULL. */
    const char *journal_path;
};

/* Opens and locks @path. On failure @why gets a message naming the cause. On
 * success *@ro_forced says the image was opened read-only because of a
 * feature (named in @why). */
int e2_image_open(const char *path, const struct e2_open_opts *o, struct e2_image **out,
                  bool *ro_forced, char *why, size_t why_len);
/* Marks a read-write image clean, flushes and closes it; -EIO, writing
 * nothing, after e2_image_error(). */
int e2_image_close(struct e2_image *img);
/* Writes all metadata back and fdatasyncs the image file; with a journal,
 * commits the running transaction. The caller makes sure no sequence of
 * e2 calls that must be atomic is half done (the fs layer's mount lock). */
int e2_image_sync(struct e2_image *img);
/* EXT4_IOC_CHECKPOINT's journal flush (jbd2_journal_flush): the running
 * transaction committed, every block home and synced, the journal marked
 * empty on disk; with E2_CHECKPOINT_DISCARD its blocks (but its
 * superblock) punched out of the journal's file, with _ZEROOUT zeros
 * written over them; with _DRY_RUN only the checks. -ENODEV without a
 * journal; read-only, 0 (the log is empty on disk) unless asked to erase
 * it or it holds a log replayed in memory only: -EROFS. The caller makes
 * sure no operation is half done (the fs layer's mount lock). */
#define E2_CHECKPOINT_DISCARD 0x1u
#define E2_CHECKPOINT_ZEROOUT 0x2u
#define E2_CHECKPOINT_DRY_RUN 0x4u
int e2_image_checkpoint(struct e2_image *img, unsigned how);
/* EXT4_IOC_SWAP_BOOT (bootloader.c): regular file @ino and the boot
 * loader inode trade blocks, size, i_blocks, atime, mtime and i_version,
 * as ext4 swaps them; both get a new generation and @now as ctime. The
 * caller checked ext4's conditions and holds @ino still. */
int e2_swap_boot(struct e2_image *img, uint32_t ino, const struct timespec *now);
/* -EIO once a write of metadata or of the journal, or an fdatasync, of the
 * image has failed: from then on every sync fails and the image takes no
 * more changes (the last durable state stays on disk); else 0. */
int e2_image_error(struct e2_image *img);
/* @fn is called (with a leaf lock held: it may only signal) when the
 * running transaction should be committed soon. */
void e2_set_commit_notify(struct e2_image *img, void (*fn)(void *arg), void *arg);
/* The running transaction has outgrown half the journal without a commit:
 * the caller, about to start an operation and holding no lock, should
 * commit first (fs_commit_if_overdue). Lock-free. */
bool e2_commit_overdue(struct e2_image *img);
bool e2_has_journal(const struct e2_image *img);
/* Blocks freed since the last commit are held back from allocation until
 * it is durable (journal.c); a commit releases them. */
bool e2_has_reserved_blocks(struct e2_image *img);
/* Put @ino on the orphan list: its last link is gone while it is open. */
int e2_orphan_add(struct e2_image *img, uint32_t ino);
/* Take @ino off the orphan list (an O_TMPFILE file given a name). */
int e2_orphan_remove(struct e2_image *img, uint32_t ino);
/* Free every inode on the orphan list (at close: the unlinked files that
 * were still open), committing as the journal fills. */
int e2_orphans_release(struct e2_image *img);
bool e2_is_read_only(const struct e2_image *img);
void e2_set_read_only(struct e2_image *img);
/* Remount: switch an image opened read-write to read-only, or back. To
 * read-only: commit, empty the journal, mark the image clean and sync it,
 * as a close would (the image stays locked and open); writes then fail
 * with EROFS. Back: mark it in use again (needs_recovery, or not clean
 * without a journal) and restart the journal (the orphan list is left to
 * the last close of its files, still open). The
 * caller makes sure no operation is in flight (the fs layer's mount lock,
 * held for writing). Returns 0 (also when already so) or -errno with @why
 * naming the cause: -EROFS for an image opened read-only (its file is
 * open read-only, perhaps under a journal replayed in memory), -EUCLEAN
 * for going back with errors recorded. */
int e2_image_set_writable(struct e2_image *img, bool writable, char *why, size_t why_len);
unsigned e2_block_size(const struct e2_image *img);
/* libext2fs's version string, as loaded at run time. */
const char *e2_library_version(void);
bool e2_has_inline_data(const struct e2_image *img);
bool e2_has_verity(const struct e2_image *img);
bool e2_has_extents(const struct e2_image *img);
/* Project ids (the `project` feature). */
bool e2_has_project(const struct e2_image *img);

/* Quota (quota.c). */
enum { E2_QUOTA_USER, E2_QUOTA_GROUP, E2_QUOTA_PROJECT, E2_QUOTA_TYPES };
/* Hard limits (bhardlimit, ihardlimit) and soft ones whose grace time has
 * ended (checked by the fs layer for callers without CAP_SYS_RESOURCE).
 * e2_quota_may_create(): gives each id of an inode owned as @a (uid,
 * gid, projid) its entry in the quota files if it has none (as the kernel
 * does when an operation first charges an id), -ENOSPC if one cannot be
 * made; then, with @limits, -EDQUOT if the inode with @space bytes would
 * pass a limit. Called before the operation changes anything: the flush
 * before the commit then finds every entry it adds to.
 * e2_quota_may_write(): the blocks a write of *@size bytes at @off to @ino
 * would allocate, counted in order: -EDQUOT if the first does not fit,
 * else *@size cut to the bytes before the first that does not. */
struct e2_attr;
int e2_quota_may_create(struct e2_image *img, const struct e2_attr *a, uint64_t space, bool limits);
int e2_quota_may_write(struct e2_image *img, uint32_t ino, uint64_t off, uint64_t *size);
/* The entries of the ids that differ in @to from @from, made as by
 * e2_quota_may_create() (-ENOSPC); then, with @limits, -EDQUOT if inode
 * @ino of attributes @from (its blocks charged, and one inode plus one per
 * EA inode its xattrs reference) would pass a limit of one of those ids
 * (dquot_transfer, ext4_get_inode_usage). */
int e2_quota_may_transfer(struct e2_image *img, uint32_t ino, const struct e2_attr *from,
                          const struct e2_attr *to, bool limits);
uint64_t e2_blocks_count(const struct e2_image *img);

/* casefold.c: names in directories with E2_FL_CASEFOLD (@dir_flags is the
 * directory's i_flags; without the flag, or on an image without the
 * casefold feature, names are bytes). Pure functions of the image's
 * encoding, fixed at open: no lock needed. */
bool e2_has_casefold(const struct e2_image *img);
/* -EINVAL if @name may not be created in such a directory: not valid
 * UTF-8 on an image with the strict encoding flag. */
int e2_name_check(const struct e2_image *img, uint32_t dir_flags, const char *name, size_t len);
/* Whether two names are the same entry: casefolded equal, or byte-equal. */
bool e2_name_eq(const struct e2_image *img, uint32_t dir_flags, const char *a, size_t alen,
                const char *b, size_t blen);
/* A hash for in-memory name indexes that agrees with e2_name_eq(). */
uint32_t e2_name_hash(const struct e2_image *img, uint32_t dir_flags, const char *name, size_t len);
/* The largest file size ext4 allows for an extent-mapped (@extents) or
 * block-mapped file (the kernel's s_maxbytes / s_bitmap_maxbytes). */
uint64_t e2_max_file_size(const struct e2_image *img, bool extents);
/* Record a corruption (s_state ERROR_FS, s_error_count, first/last error
 * fields) as the kernel does; safe to call from any context. */
void e2_record_error(struct e2_image *img, uint32_t ino, const char *func, int line);

/* The volume label, s_volume_name (label.c): up to E2_LABEL_MAX bytes,
 * not NUL-terminated on disk when it has all of them. */
#define E2_LABEL_MAX 16
void e2_label_get(struct e2_image *img, char out[E2_LABEL_MAX + 1]);
/* Sets it in the superblock and its backups; -EINVAL past E2_LABEL_MAX
 * bytes, -EROFS on a read-only image. */
int e2_label_set(struct e2_image *img, const char *label, size_t len);

struct e2_statfs {
    uint64_t blocks, bfree, bavail, files, ffree;
    unsigned bsize, namemax;
};
int e2_statfs(struct e2_image *img, struct e2_statfs *st);

/* ---- inodes (inode.c) ---- */

struct e2_attr {
    mode_t mode; /* type and permission bits */
    uint32_t uid, gid;
    uint32_t nlink;
    uint64_t size;
    uint64_t blocks; /* in 512-byte units */
    struct timespec atime, mtime, ctime, crtime;
    bool has_crtime; /* the inode has room for i_crtime (not 128-byte inodes) */
    dev_t rdev;
    uint32_t flags; /* i_flags */
    uint32_t generation;
    uint32_t projid; /* i_projid; 0 where the inode has no room for it */
};

enum e2_attr_field {
    E2_A_MODE = 1u << 0,
    E2_A_UID = 1u << 1,
    E2_A_GID = 1u << 2,
    E2_A_NLINK = 1u << 3,
    E2_A_SIZE = 1u << 4, /* the i_size field only; data is not touched */
    E2_A_ATIME = 1u << 5,
    E2_A_MTIME = 1u << 6,
    E2_A_CTIME = 1u << 7,
    E2_A_FLAGS = 1u << 8,
    E2_A_PROJID = 1u << 9, /* -EOVERFLOW where the inode has no room for i_projid */
};

/* i_flags bits the fs layer needs to see. */
#define E2_FL_INLINE_DATA 0x10000000u
#define E2_FL_EXTENTS     0x00080000u
#define E2_FL_INDEX       0x00001000u
#define E2_FL_IMMUTABLE   0x00000010u
#define E2_FL_APPEND      0x00000020u
#define E2_FL_VERITY      0x00100000u
#define E2_FL_SYNC        0x00000008u
#define E2_FL_NOATIME     0x00000080u
#define E2_FL_CASEFOLD    0x40000000u
#define E2_FL_PROJINHERIT 0x20000000u
#define E2_FL_COMPR       0x00000004u
#define E2_FL_NODUMP      0x00000040u
#define E2_FL_ENCRYPT     0x00000800u

/* What FS_IOC_GETFLAGS shows and FS_IOC_SETFLAGS may change (the
 * kernel's EXT4_FL_USER_VISIBLE and EXT4_FL_USER_MODIFIABLE). */
#define E2_FL_USER_VISIBLE    0x725BDFFFu
#define E2_FL_USER_MODIFIABLE 0x624BC0FFu
/* Flags a new inode takes from its directory (EXT4_FL_INHERITED), and
 * those a regular file and other non-directories can carry. */
#define E2_FL_INHERITED  0x6201C4CFu
#define E2_FL_DIR_ONLY   0x60030000u /* DIRSYNC, TOPDIR, CASEFOLD, PROJINHERIT */
#define E2_FL_OTHER_MASK 0x000000C0u /* NODUMP, NOATIME */

/* Largest link count of a directory before dir_nlink makes it 1. */
#define E2_LINK_MAX 65000u

int e2_inode_get(struct e2_image *img, uint32_t ino, struct e2_attr *a);
/* e2_inode_get() for an inode about to be handed out (a lookup, the
 * kernel's iget): -EUCLEAN, logged, if its xattr block or a block named in
 * the inode itself is file system metadata or past the end, as ext4_iget
 * refuses it. Deeper blocks are checked where they are used. */
int e2_inode_load(struct e2_image *img, uint32_t ino, struct e2_attr *a);
/* Whether @ino names an inode files can live in (the root or one past the
 * reserved ones) and is allocated in the inode bitmap. For numbers that
 * come from outside (file handles): never reads the inode table. */
bool e2_inode_in_use(struct e2_image *img, uint32_t ino);
/* Read-modify-write of the @fields of inode @ino from @a. */
int e2_inode_set(struct e2_image *img, uint32_t ino, const struct e2_attr *a, unsigned fields);
/* An entry was added to or removed from directory @dir: mtime and ctime
 * become @now and the link count moves by @nlink_delta (-1, 0, +1) as
 * ext4's dir_nlink does it (past E2_LINK_MAX pinned at 1, never below 2).
 * One read and one write of the inode. */
int e2_inode_touch_dir(struct e2_image *img, uint32_t dir, const struct timespec *now,
                       int nlink_delta);

/* Allocate and write a new inode near directory @dir: a regular file,
 * device, fifo or socket (with its rdev), with @a's mode/uid/gid/times and
 * nlink 1, extent-mapped where the image has extents. @made (may be NULL,
 * may be @a) gets the attributes as written, what e2_inode_get() would
 * read back. */
int e2_inode_new(struct e2_image *img, uint32_t dir, const struct e2_attr *a, uint32_t *ino,
                 struct e2_attr *made);
/* A new directory with "." and "..", inline when the image has inline_data,
 * nlink 2; not linked into @parent. */
int e2_inode_new_dir(struct e2_image *img, uint32_t parent, const struct e2_attr *a, uint32_t *ino);
/* A new symlink (fast in i_block below 60 bytes, else in a block). */
int e2_inode_new_symlink(struct e2_image *img, uint32_t dir, const struct e2_attr *a,
                         const char *target, uint32_t *ino);
/* Release all of an unlinked inode's blocks and xattrs and free it. */
int e2_inode_free(struct e2_image *img, uint32_t ino);
/* Whether @ino's blocks may be freed: -EUCLEAN (logged) if its mapping
 * names file system metadata (sysz.c), which no free may touch; asked
 * before the last link goes, so that such a file keeps its name. */
int e2_inode_may_free(struct e2_image *img, uint32_t ino);
int e2_readlink(struct e2_image *img, uint32_t ino, char *buf, size_t size);

/* Encoding of ext4 timestamps (exposed for unit tests). */
void e2_time_encode(const struct timespec *ts, uint32_t *secs, uint32_t *extra);
void e2_time_decode(uint32_t secs, uint32_t extra, bool has_extra, struct timespec *ts);

/* ---- directories (dir.c) ---- */

/* Called for each live entry ("." and ".." included), in directory order;
 * return non-zero to stop. */
typedef int (*e2_dirent_fn)(void *ctx, const char *name, size_t len, uint32_t ino, unsigned ftype);
int e2_dir_iterate(struct e2_image *img, uint32_t dir, e2_dirent_fn fn, void *ctx);
/* Add an entry, growing the directory (or converting an inline one) when
 * full. Does not check for an existing entry of that name. */
int e2_dir_link(struct e2_image *img, uint32_t dir, const char *name, uint32_t ino, mode_t mode);
int e2_dir_unlink(struct e2_image *img, uint32_t dir, const char *name);
/* Point the existing entry @name at @ino (rename over / exchange). */
int e2_dir_retarget(struct e2_image *img, uint32_t dir, const char *name, uint32_t ino,
                    mode_t mode);
/* Set the ".." of directory @dir. */
int e2_dir_set_dotdot(struct e2_image *img, uint32_t dir, uint32_t parent);
/* 1 if only "." and ".." remain, 0 if not, -errno. */
int e2_dir_is_empty(struct e2_image *img, uint32_t dir);
/* Every block directory @dir maps, its extent tree or indirect blocks and
 * its xattr block, against the system zone (sysz.c): 0, or -EUCLEAN,
 * logged naming the inode and the block. The calls above hand the
 * directory's block I/O to libext2fs, which follows the mapping wherever
 * it points: callers run this once before them (the fs layer caches the
 * answer per directory), as e2_inode_load() checks only what the inode
 * itself names. Not a directory: 0 (nothing of it is used here). */
int e2_dir_check(struct e2_image *img, uint32_t dir);
/* The ext2 ftype (EXT2_FT_*) for a mode. */
unsigned e2_ftype(mode_t mode);
/* d_type (DT_*) of an ext2 ftype. */
unsigned e2_ftype_to_dtype(unsigned ftype);

/* ---- extended attributes (xattr.c) ---- */

/* As getxattr(2): length, -ENODATA, -ERANGE. POSIX ACLs come in the
 * Linux xattr format. */
ssize_t e2_xattr_get(struct e2_image *img, uint32_t ino, const char *name, void *buf, size_t size);
/* @flags: XATTR_CREATE / XATTR_REPLACE semantics. @limited: the caller is
 * held to quota limits (not root): a value that needs a new EA inode fails
 * with -EDQUOT, nothing changed, if one more inode or the value's clusters
 * would pass a limit of @ino's ids (ext4_xattr_inode_alloc_quota), and so
 * does a change that needs an xattr block @ino does not own alone (a new
 * one or a copy of a shared one) if a cluster more would
 * (ext4_xattr_block_set's dquot_alloc_block). */
int e2_xattr_set(struct e2_image *img, uint32_t ino, const char *name, const void *val, size_t len,
                 int flags, bool limited);
ssize_t e2_xattr_list(struct e2_image *img, uint32_t ino, char *buf, size_t size);
int e2_xattr_remove(struct e2_image *img, uint32_t ino, const char *name);

/* ---- inline data (inline.c) ---- */

/* The inline capacity of @ino as the kernel computes it: 60 bytes of
 * i_block plus what `system.data` could hold in the in-inode xattr space. */
int e2_inline_capacity(struct e2_image *img, uint32_t ino, size_t *cap);
/* Bytes currently allocated to inline data (60 + len(system.data)). */
int e2_inline_allocated(struct e2_image *img, uint32_t ino, size_t *len);
/* Copy the first @size bytes of inline data from @off (clamped to i_size). */
ssize_t e2_inline_read(struct e2_image *img, uint32_t ino, void *buf, size_t size, off_t off);
/* write(2) and mmap writeback into an inline file, in one step: the
 * content below i_size with @len bytes of @buf at @off (zeros in any gap),
 * i_size set to @isize, and @fields of @a (the attributes the write
 * changes, as for e2_data_write(); 0 for none), in one inode write.
 * -ENOSPC when the content would pass the inline capacity (nothing
 * changed: the caller converts to blocks). */
int e2_inline_write(struct e2_image *img, uint32_t ino, const void *buf, size_t len, uint64_t off,
                    uint64_t isize, const struct e2_attr *a, unsigned fields);
/* truncate(2) of an inline file: i_size @size, content past it dropped.
 * -ENOSPC when @size grows the file past both its i_size and the space the
 * inode already gives to inline data (nothing changed: the caller
 * converts, as the kernel does). */
int e2_inline_truncate(struct e2_image *img, uint32_t ino, uint64_t size);
/* Make a file with no blocks inline, keeping its i_size (the kernel's first
 * write into a new file). */
int e2_inline_begin(struct e2_image *img, uint32_t ino);
/* Convert an inline file or directory to a block file: allocate a block,
 * copy, clear the flag, drop system.data. On failure the inode is left
 * inline and unchanged. */
int e2_inline_convert(struct e2_image *img, uint32_t ino);

/* ---- inspection (inspect.c) ---- */

struct e2_run {
    uint64_t lblk, pblk;
    uint32_t len;
    bool unwritten;
};
/* The mapped runs of @ino (extents, or contiguous runs of a block map),
 * in a malloc'd array; and its external xattr block. */
int e2_inode_runs(struct e2_image *img, uint32_t ino, struct e2_run **runs, unsigned *n,
                  uint64_t *xattr_block);

/* ---- block-mapped data (data.c) ---- */

/* Read up to @size bytes at @off (clamped to i_size; 0 at or past EOF) of
 * a block-mapped file into @buf: holes and unwritten extents read as zeros,
 * blocks that are file system metadata or outside it fail with -EUCLEAN
 * (sysz.c), as do the extent tree blocks on the way to the range's ends.
 * Extent files are mapped under the disk lock (e2_data_map()) and their
 * blocks read from the image file after it is dropped, so concurrent reads
 * do not queue on it; the rest (block maps, blocks not home yet, ranges in
 * more than 16 pieces) is read under it.
 *
 * Contract: the caller keeps @ino's blocks from being freed, moved or
 * rewritten through the journal from the call until it returns: nothing
 * may write, truncate, punch, shift or free @ino meanwhile. In uext4 that
 * is the inode's lock (LC_INODE, held by every caller through
 * fs_op_begin(), with the in-memory inode pinned so it is not freed when
 * unlinked), which every operation that changes a file's blocks takes; a
 * block of @ino cannot go to another file before @ino frees it. Without
 * it a read could return the bytes of a block freed and reused meanwhile:
 * another file's data, or metadata. */
ssize_t e2_data_read(struct e2_image *img, uint32_t ino, void *buf, size_t size, off_t off);

/* Where file data lies in the image: @len bytes at byte @pos of the file
 * system (of the image file past e2_image_fd()'s @base), or zeros (a hole, an unwritten extent)
 * when @pos is E2_SEG_ZERO. */
#define E2_SEG_ZERO UINT64_MAX
struct e2_seg {
    uint64_t pos;
    uint64_t len;
};
/* Map up to @size bytes from @off (clamped to i_size) to at most @max
 * segments, for a reader that takes the bytes from the image file itself.
 * Returns the bytes mapped (0 at or past EOF), or -EOPNOTSUPP when the
 * data must be copied instead: inline or block-mapped files, blocks whose
 * newest contents are not home yet (iomgr.h), more than @max segments. The
 * map holds while nothing changes the inode (the caller's inode lock). */
ssize_t e2_data_map(struct e2_image *img, uint32_t ino, off_t off, size_t size, struct e2_seg *segs,
                    unsigned max, unsigned *nseg);
/* The image file's descriptor, for the reader of e2_data_map(), and in
 * *@base the byte of it where the file system starts (e2_seg.pos counts
 * from there). */
int e2_image_fd(struct e2_image *img, uint64_t *base);
/* The reader of e2_data_map() is about to read the image (fault.h: the
 * test builds' read delay). */
void e2_data_before_read(struct e2_image *img);
/* Write to a block-mapped file, growing i_size to the end of the write.
 * The caller clamps mmap writeback to i_size first. Returns bytes written.
 * When anything was written, the attributes the write changes (the fs
 * layer decides them: mtime and ctime, set-id bits dropped) are stored in
 * the same locked step: @fields (E2_A_MODE, E2_A_MTIME, E2_A_CTIME; 0 for
 * none) of @a, with the inode write that records the data where there is
 * one (extent files: a new i_size), else in one of their own. */
ssize_t e2_data_write(struct e2_image *img, uint32_t ino, const void *buf, size_t size, off_t off,
                      const struct e2_attr *a, unsigned fields);
/* e2_data_write() of @size bytes read from the pipe @pipe_fd, which holds
 * at least that many: whole blocks go from the pipe to the image by
 * splice(2). -EAGAIN when the bytes must be in memory (a block-mapped or
 * inline file, a write filling a hole inside the file or meeting unwritten
 * extents, a bigalloc cluster freed in this transaction): nothing changed,
 * nothing taken from the pipe. Otherwise the pipe has given up the bytes
 * written, and on an error an unknown part of the others. The attributes
 * @fields of @a go with the data as for e2_data_write().
 * With @acc, @acc->fn(@acc->arg, n) is called once the write is decided
 * (its blocks allocated, nothing left that can refuse it), before the
 * bytes move: from then on only the image file can fail it, and the
 * return says whether it did. Called with the disk lock held: it must not
 * call into the image. Not called for -EAGAIN or an error found before. */
struct e2_accept {
    void (*fn)(void *arg, size_t n);
    void *arg;
};
ssize_t e2_data_write_pipe(struct e2_image *img, uint32_t ino, int pipe_fd, size_t size, off_t off,
                           const struct e2_attr *a, unsigned fields, const struct e2_accept *acc);
/* Set i_size, freeing every block past the new end (those fallocated past
 * the old end too, even when the size stays); zeroes the tail of the last
 * block so a later extension reads zeros. */
int e2_data_truncate(struct e2_image *img, uint32_t ino, uint64_t size);
int e2_data_punch(struct e2_image *img, uint32_t ino, uint64_t off, uint64_t len);
/* fallocate COLLAPSE_RANGE / INSERT_RANGE (shift.c), as ext4: remove the
 * blocks of [off, off+len) and move the rest of the file down over them,
 * or move everything from @off up by @len, leaving a hole; i_size follows.
 * -EOPNOTSUPP for a file without extents, -EINVAL for a range not in
 * whole blocks, or reaching EOF (collapse) or starting at or past it
 * (insert), -EFBIG past the largest file size. */
int e2_data_collapse(struct e2_image *img, uint32_t ino, uint64_t off, uint64_t len);
int e2_data_insert(struct e2_image *img, uint32_t ino, uint64_t off, uint64_t len);
/* Allocate blocks (as unwritten extents where possible) for the range. */
int e2_data_allocate(struct e2_image *img, uint32_t ino, uint64_t off, uint64_t len);
/* Next data (@data true) or hole offset at or after @off, within @size. */
int e2_data_seek(struct e2_image *img, uint32_t ino, uint64_t off, uint64_t size, bool data,
                 uint64_t *res);

/* ---- fs-verity metadata past EOF (verity.c) ---- */
/* Read @size bytes at @off of the extent file @ino wherever they lie, past
 * i_size too (the Merkle tree and descriptor): holes read as zeros. The
 * caller holds the inode lock, as for e2_data_read(). -EUCLEAN for a file
 * without extents (ext4 keeps verity metadata in extent files only). */
ssize_t e2_verity_read(struct e2_image *img, uint32_t ino, void *buf, size_t size, uint64_t off);
/* In *@end, the byte just past the last block @ino maps (the descriptor's
 * size is in the 4 bytes before it): -EUCLEAN when it maps none or has no
 * extents. */
int e2_verity_end(struct e2_image *img, uint32_t ino, uint64_t *end);
/* Write @size bytes at @off, past i_size, where the file maps nothing (the
 * caller truncated it to i_size first), and set EXT4_VERITY_FL, i_size
 * unchanged, in one storage step: one transaction with a journal, and
 * without one the data and the blocks that map it made durable (two
 * fdatasyncs) before the inode that carries the flag is written. -EOPNOTSUPP without extents,
 * -ENOSPC, -EIO. On failure the caller truncates to i_size (blocks may have been mapped). */
int e2_verity_seal(struct e2_image *img, uint32_t ino, const void *buf, size_t size, uint64_t off);

/* ---- resize.c ---- */

/* EXT4_IOC_RESIZE_FS: grow the file system to @new_blocks blocks, as
 * ext4_resize_fs() does (a last group too small for its metadata is left
 * out, so the result may be smaller). The image file must already hold
 * them: -ENOSPC, logged, if not. Past the reserved GDT blocks, or without
 * resize_inode, the file system is converted to meta_bg as ext4 converts
 * it. -EINVAL for a shrink or a size past what the file system can count;
 * bigalloc sizes are rounded down to a cluster, as ext4 rounds them.
 * -EOPNOTSUPP, logged with the advice to unmount and run resize2fs, for
 * sparse_super2 or a partition (offset=, sizelimit=); -EUCLEAN for
 * a resize inode that does not list its blocks or holds more than ext4's
 * conversion expects, reserved GDT blocks without resize_inode, or
 * resize_inode with meta_bg; -EROFS read-only. The caller commits before and after, with the
 * file system quiescent, so that the grow is a transaction of its own. */
int e2_resize(struct e2_image *img, uint64_t new_blocks);

/* ---- trim.c ---- */

/* FITRIM as ext4_trim_fs(): punch holes in the image file (fallocate
 * PUNCH_HOLE|KEEP_SIZE) over every run of free blocks that starts in the
 * byte range [@start, @start + @len) and has at least @minlen bytes (raised
 * to the host file system's block size, the discard granularity of an
 * image file), each run taken up to the end of its block group, so a
 * sparse image gives the space back to the host. Blocks freed in the
 * running transaction are still marked in use and stay; the caller commits
 * first to include them. *@trimmed: the bytes of the runs punched, as ext4
 * reports the bytes it discarded (not what the host released: a run that
 * was a hole already counts). As ext4, groups trimmed since the image was
 * opened with nothing freed in them since are skipped (and count nothing)
 * unless @minlen is now below the last trim's. -EINVAL as ext4: @minlen
 * above a group, @start past the end, @len below a block; -EROFS;
 * -EOPNOTSUPP when the host file system cannot punch holes. */
int e2_trim(struct e2_image *img, uint64_t start, uint64_t len, uint64_t minlen, uint64_t *trimmed);

#endif
