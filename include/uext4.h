/* uext4 — the core API: an ext2/3/4 image served by inode number.
 *
 * This is the library that the FUSE daemon, the scenario runner and any C
 * program use. It needs no /dev/fuse and no root: open an image file, call
 * the operations, close it. Link with `pkg-config --libs uext4`.
 *
 * Conventions for every function below:
 *  - Return 0 (or a byte count / length) on success and a negative errno on
 *    failure. A corrupt image yields -EUCLEAN, a read-only mount -EROFS, a
 *    full image -ENOSPC; nothing is ever silently collapsed into -EIO.
 *  - Inode numbers are ext4's (the root directory is UEXT4_ROOT_INO).
 *  - A `struct uext4_cred` names the caller in *local* ids; the library maps
 *    them through the id map of the open options and checks permissions as
 *    the kernel does (owner/group/other, POSIX ACLs, sticky and setgid
 *    directories), unless the image is open with `fakeroot`.
 *  - `struct stat` results carry local ids (mapped back through the id map).
 *  - All functions are thread-safe; they may be called concurrently for
 *    different or the same inodes.
 */
#ifndef UEXT4_H
#define UEXT4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UEXT4_ROOT_INO 2u

struct uext4_fs;

/* What to do when the image is found corrupt during an operation
 * (the ext4 `errors=` mount option). The operation itself always fails with
 * -EUCLEAN; this chooses what happens to the mount afterwards. */
enum uext4_errors {
    UEXT4_ERRORS_DEFAULT,    /* the superblock's s_errors behaviour */
    UEXT4_ERRORS_CONTINUE,   /* keep serving */
    UEXT4_ERRORS_REMOUNT_RO, /* refuse all further writes with -EROFS */
    UEXT4_ERRORS_PANIC,      /* log and abort() the process */
};

/* Writeback of an mmap'd page of an inline-data inode (design.md, rule 3). */
enum uext4_inline_mmap {
    UEXT4_INLINE_MMAP_KEEP,    /* store back into the inode; never convert */
    UEXT4_INLINE_MMAP_CONVERT, /* convert to a block file, as Linux 6.18 does */
};

/* One range of the id map: local ids [local, local+count) are image ids
 * [image, image+count). Ids outside every range map to the overflow id
 * (65534) in stat results, and are refused (-EOVERFLOW) when stored. */
struct uext4_idmap {
    uint32_t image;
    uint32_t local;
    uint32_t count;
};

#define UEXT4_MAX_IDMAP 8

/* Open options. The struct grows at its end as uext4 learns options, without
 * a new soname: @size says how much of it the caller knows. Set it up with
 * uext4_options_init(&opts, sizeof(opts)) (or `.size = sizeof(struct
 * uext4_options)` in an initialiser) before setting fields. uext4_open()
 * reads the first @size bytes and takes the defaults for fields past them
 * (a program built against an older uext4.h), and refuses -EINVAL a @size
 * below this first layout's, or non-zero bytes in fields this library does
 * not know (a program built against a newer uext4.h). A @size of 0 (a
 * zero-initialised struct that never set it) is read as the first layout,
 * the fields up to gidmap: options added after them need @size. */
struct uext4_options {
    size_t size;
    bool read_only;
    bool fakeroot; /* every caller acts as uid 0 / gid 0 inside the image */
    enum uext4_errors errors;
    enum uext4_inline_mmap inline_mmap;
    /* An image whose journal needs recovery is opened read-only, without
     * replaying it (ext4's norecovery/noload). By default it is replayed. */
    bool norecovery;
    /* Seconds between commits, as ext4's commit=; 0 means 5. With a
     * journal (has_journal) a commit is a jbd2 transaction; without one it
     * writes the in-memory metadata (bitmaps, group descriptors,
     * superblock) to the image. */
    unsigned commit_seconds;
    /* Library mode: bytes of dirty emulated mmap pages (uext4_mmap_store)
     * above which a store first writes back (memory pressure); 0 means
     * 64 MiB. Unused through FUSE, where the kernel holds the pages. */
    size_t cache_bytes;
    /* Access times: by default updated as the kernel's relatime does (when
     * older than mtime or ctime, or a day old); never with noatime; on
     * every access with strictatime (noatime wins). nodiratime: never for
     * directories. */
    bool noatime;
    bool strictatime;
    bool nodiratime;
    /* New files take their directory's group, as ext4's grpid; by default
     * their creator's, unless the directory is setgid. */
    bool grpid;
    unsigned nuidmap, ngidmap;
    struct uext4_idmap uidmap[UEXT4_MAX_IDMAP];
    struct uext4_idmap gidmap[UEXT4_MAX_IDMAP];
    /* Fields after gidmap need @size (added in 1.1). */
    /* The file system starts @offset bytes into the image file and spans
     * at most @sizelimit bytes of it (0: to its end), as a loop device set
     * up with losetup --offset and --sizelimit: a partition of a disk
     * image. No byte of the file outside that window is read or written;
     * a file system larger than the window is refused (-EINVAL). */
    uint64_t offset;
    uint64_t sizelimit;
    /* The file holding the file system's external journal
     * (ext4's journal_path=: a file system made with mke2fs -J device=,
     * whose journal is on a device of its own, or a copy of that device),
     * read only during uext4_open(); NULL for none. It is checked as the
     * kernel checks a journal device (its UUID, block size, the file
     * system among its users), locked as the image is, replayed and
     * written as a journal inside the image would be. An image with an
     * external journal and no journal_path is refused (-EINVAL), or opened
     * read-only without its journal with @norecovery; journal_path with an
     * image whose journal is not external is refused (-EINVAL). */
    const char *journal_path;
};

/* Fill @opts (@size bytes: sizeof(*opts) as the caller was compiled) with
 * the defaults and set opts->size = @size. */
void uext4_options_init(struct uext4_options *opts, size_t size);

struct uext4_cred {
    uid_t uid;
    gid_t gid;
    mode_t umask;     /* applied to create/mkdir/mknod modes */
    unsigned ngroups; /* supplementary groups, local ids */
    const gid_t *groups;
    /* Optional: when set, @groups/@ngroups are not filled in and this is
     * called (at most once per operation, only when a group check needs
     * them) to fill them. Finding groups can be costly (FUSE reads /proc);
     * most operations never need them. */
    void (*load_groups)(const struct uext4_cred *cr, const gid_t **groups, unsigned *ngroups);
    /* Optional: whether a caller of uid 0 holds CAP_FSETID, which keeps a
     * file's setuid/setgid when it writes, truncates or fallocates it.
     * NULL: uid 0 holds it. Asked only when uid 0 modifies a set-id file. */
    bool (*has_fsetid)(const struct uext4_cred *cr);
};

/* Open @image (a file holding an ext2/3/4 file system) with @opts (NULL for
 * defaults). @image must be a regular file or a block device (opened
 * O_EXCL); it is opened once and locked with flock(2), exclusively unless
 * @opts->read_only (then shared). An open the lock refuses fails with
 * -EBUSY, after waiting up to 10 s for a holder that serves no FUSE mount
 * (none for this process itself). Refuses images that are
 * not ext2/3/4 (-EINVAL), need journal recovery, have errors recorded
 * (-EUCLEAN) or use features this version cannot write safely (-EOPNOTSUPP,
 * or opened read-only when @opts allows it). On failure, a one-line
 * explanation naming the cause is written to @why (if not NULL).
 * A read-write open of an image with multiple-mount protection (mmp) may
 * sleep: twice the check time (22 s or more) if its MMP block was not left
 * clean; -EBUSY if another system keeps it moving. */
int uext4_open(const char *image, const struct uext4_options *opts, struct uext4_fs **out,
               char *why, size_t why_len);

/* Write everything back, release deferred-delete inodes, mark the image
 * clean and close it. Returns the first error of that write-back, or of
 * freeing an unlinked inode that no uext4_fsync() or uext4_sync() has
 * reported yet (the image is closed either way). */
int uext4_close(struct uext4_fs *fs);

/* Flush all dirty state to the image file and fdatasync it. Also returns,
 * once, a failure to free an unlinked inode at its last uext4_forget() or
 * uext4_release() since the last report (-EUCLEAN for a corrupt inode): the
 * inode is then left allocated for e2fsck, and the error is recorded in
 * the superblock as corruption is. */
int uext4_sync(struct uext4_fs *fs);

/* Remount read-only (@read_only) or back to read-write, the image staying
 * open and locked. Read-only: dirty pages are written back and the journal
 * committed and emptied, the image marked clean and synced (a copy or an
 * `e2fsck -fn` of it is then consistent); every write fails with EROFS
 * from then on. Read-write: the image is marked in use again and writes
 * are accepted. Returns 0 (also if it already is so) or -errno, with @why
 * (may be NULL) saying why: -EROFS if @fs was opened read-only (reopen it
 * read-write instead), -EUCLEAN if it has errors recorded. Takes the mount
 * lock for writing: waits for every operation in flight. */
int uext4_remount(struct uext4_fs *fs, bool read_only, char *why, size_t why_len);

bool uext4_is_read_only(const struct uext4_fs *fs);
/* Whether uext4_open_file() may refuse an open that the caller's
 * permissions allow (opening an fs-verity file for writing: EPERM), so a
 * front end must pass every open to it. */
bool uext4_open_needs_check(const struct uext4_fs *fs);
/* Whether the image has case-insensitive directories (casefold): one
 * file then answers to many names, so a front end must not cache names
 * (positive or negative) by their exact bytes. */
bool uext4_has_casefold(const struct uext4_fs *fs);
unsigned uext4_block_size(const struct uext4_fs *fs);

/* ---- names ---- */

/* Look up @name in directory @dir. On success fills @st and takes one lookup
 * reference on the inode (released by uext4_forget), as FUSE's lookup does. */
int uext4_lookup(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t dir, const char *name,
                 struct stat *st);
/* Look up inode @ino itself, as for a file handle (by number, not by
 * name; no permission checked: whoever holds a handle may use it): like
 * uext4_lookup(), with @generation set to its i_generation (0 for the root,
 * which FUSE names without one). -ESTALE when @ino is not an inode files
 * live in, is free, or has no links left. */
int uext4_lookup_ino(struct uext4_fs *fs, uint32_t ino, struct stat *st, uint32_t *generation);
/* The i_generation of @ino, which the caller holds a reference on (0 for
 * the root, as above). */
int uext4_generation(struct uext4_fs *fs, uint32_t ino, uint32_t *generation);
/* Drop @n lookup references; an unlinked inode is freed when none remain
 * and it is not open (a failure is reported by the next uext4_fsync() or
 * uext4_sync(), see there). */
void uext4_forget(struct uext4_fs *fs, uint32_t ino, uint64_t n);
/* Resolve an absolute path ("/a/b") without taking references; for tools. */
int uext4_resolve(struct uext4_fs *fs, const char *path, uint32_t *ino);

/* The create-family calls return the new inode in @st with one lookup
 * reference taken. @mode includes the file type for mknod. */
int uext4_mknod(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t dir, const char *name,
                mode_t mode, dev_t rdev, struct stat *st);
int uext4_mkdir(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t dir, const char *name,
                mode_t mode, struct stat *st);
int uext4_symlink(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t dir, const char *name,
                  const char *target, struct stat *st);
/* O_TMPFILE: a new regular file in @dir's file system with no name (link
 * count 0, on the orphan list), with one lookup reference like the calls
 * above; open it with uext4_open_file(..., O_CREAT) as a create does. It
 * is freed at its last uext4_forget/uext4_release, or at the next mount if
 * the process dies first. Unless @flags has O_EXCL, uext4_link may give it
 * a name, once, as linkat(2) of the open file does. */
int uext4_tmpfile(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t dir, mode_t mode,
                  int flags, struct stat *st);
/* A second name for @ino. A file with no link left is refused (-ENOENT)
 * but for a linkable O_TMPFILE file, which leaves the orphan list. */
int uext4_link(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino, uint32_t newdir,
               const char *newname, struct stat *st);
int uext4_unlink(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t dir, const char *name);
int uext4_rmdir(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t dir, const char *name);

#define UEXT4_RENAME_NOREPLACE (1u << 0) /* same values as RENAME_* */
#define UEXT4_RENAME_EXCHANGE  (1u << 1)
/* Leave a whiteout (character device 0/0) at the old name, as overlayfs
 * asks of its upper directory. */
#define UEXT4_RENAME_WHITEOUT (1u << 2)
int uext4_rename(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t dir, const char *name,
                 uint32_t newdir, const char *newname, unsigned flags);

/* Copy the target into @buf (not NUL-terminated); returns its length, or
 * -ERANGE if @size is too small. */
ssize_t uext4_readlink(struct uext4_fs *fs, uint32_t ino, char *buf, size_t size);

/* ---- attributes ---- */

int uext4_getattr(struct uext4_fs *fs, uint32_t ino, struct stat *st);

/* What uext4_getattr gives, plus what only statx(2) can carry, as ext4
 * reports it: the birth time (i_crtime; STATX_BTIME in stx_mask only where
 * the inode has room for it, not in 128-byte inodes) and stx_attributes
 * (STATX_ATTR_APPEND, COMPRESSED, ENCRYPTED, IMMUTABLE, NODUMP, VERITY,
 * all six in stx_attributes_mask). stx_dev_* are 0, as st_dev is.
 * struct statx is <sys/stat.h>'s with _GNU_SOURCE. */
struct statx;
int uext4_statx(struct uext4_fs *fs, uint32_t ino, struct statx *stx);

#define UEXT4_SET_MODE      (1u << 0)
#define UEXT4_SET_UID       (1u << 1)
#define UEXT4_SET_GID       (1u << 2)
#define UEXT4_SET_SIZE      (1u << 3)
#define UEXT4_SET_ATIME     (1u << 4)
#define UEXT4_SET_MTIME     (1u << 5)
#define UEXT4_SET_ATIME_NOW (1u << 7)
#define UEXT4_SET_MTIME_NOW (1u << 8)
#define UEXT4_SET_CTIME     (1u << 10)
/* The size change comes through an open file (ftruncate): the permission
 * was checked at open. */
#define UEXT4_SET_FH (1u << 12)
/* Change the attributes selected by @to_set, taking values from @in (local
 * ids; st_atim/st_mtim/st_ctim for times, st_size for truncate). Fills @out. */
int uext4_setattr(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino,
                  const struct stat *in, unsigned to_set, struct stat *out);

/* Permission check as access(2): @mask of R_OK|W_OK|X_OK, or F_OK. */
int uext4_access(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino, int mask);

int uext4_statfs(struct uext4_fs *fs, struct statvfs *sv);

/* ---- directories ---- */

/* A snapshot of a directory's entries, taken by each uext4_readdir() from
 * position 0 (the first, and each rewind): a handle is read by one thread
 * at a time. */
struct uext4_dir;

int uext4_opendir(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino,
                  struct uext4_dir **dir);
/* Calls @fill for each entry from position @pos on, with the position of the
 * entry after it, until @fill returns non-zero. "." and ".." are included. */
typedef int (*uext4_filldir_t)(void *ctx, const char *name, uint32_t ino, unsigned dtype,
                               uint64_t next_pos);
int uext4_readdir(struct uext4_fs *fs, struct uext4_dir *dir, uint64_t pos, uext4_filldir_t fill,
                  void *ctx);
void uext4_releasedir(struct uext4_fs *fs, struct uext4_dir *dir);
/* uext4_lookup() of a name just listed, for the attributes a readdirplus
 * sends with it: the same answers and reference, but an inode refused as
 * damaged (-EUCLEAN) is not recorded as an error of the file system
 * (ext4's readdir reads no inode); damage in @dir is. */
int uext4_lookup_listed(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t dir,
                        const char *name, struct stat *st);

/* ---- file data ---- */

/* Check permission for open(2) @flags (O_ACCMODE, O_TRUNC) and count the open
 * file: an unlinked inode lives until its last release. O_CREAT in @flags
 * says this open created the file (as FUSE's create does): like open(2), it
 * then succeeds whatever the new file's mode. */
int uext4_open_file(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino, int flags);
/* Undo one uext4_open_file; returns a latched writeback error, if any, or
 * the error of freeing the inode if this was its last reference after an
 * unlink (reported again by the next uext4_fsync() or uext4_sync(), since
 * FUSE drops the reply to a release). */
int uext4_release(struct uext4_fs *fs, uint32_t ino);
/* uext4_release() of an open made with open(2) @flags: an open for
 * writing (O_WRONLY, O_RDWR) stops counting as a writer, which
 * uext4_enable_verity() refuses (ETXTBSY). An open for writing released
 * with uext4_release() counts as a writer until the inode leaves memory
 * (its last reference goes). */
int uext4_release_file(struct uext4_fs *fs, uint32_t ino, int flags);

/* ---- fs-verity (FS_IOC_ENABLE_VERITY, FS_IOC_MEASURE_VERITY) ---- */

/* struct fsverity_enable_arg's fields, the pointers resolved. */
struct uext4_verity_args {
    uint32_t hash_algorithm; /* 1: SHA-256, 2: SHA-512 */
    uint32_t block_size;     /* a power of two, 1 KiB to min(4 KiB, fs block size) */
    const void *salt;        /* @salt_size bytes, at most 32 */
    uint32_t salt_size;
    const void *sig; /* a built-in signature, stored unchecked, as a kernel without
                      * CONFIG_FS_VERITY_BUILTIN_SIGNATURES does; at most 16128 bytes */
    uint32_t sig_size;
};
/* Enable fs-verity on regular file @ino, which the caller has open with
 * @open_flags, as FS_IOC_ENABLE_VERITY on ext4: build the Merkle tree and
 * store it and the descriptor past EOF where ext4 does, set
 * EXT4_VERITY_FL (i_size unchanged), the flag in the same transaction as
 * the mapping of what was stored. Errors as the kernel's: -EOPNOTSUPP
 * (no verity feature; a file without extents), -EMSGSIZE (salt or
 * signature too large), -EACCES (no write permission), -EBADF (@open_flags
 * O_WRONLY), -EPERM (append-only, immutable), -EISDIR, -EINVAL (not a
 * regular file, unknown algorithm, block size), -EROFS, -ETXTBSY (open for
 * writing: counted by uext4_open_file() and uext4_release_file()), -EEXIST
 * (verity already), -ENOSPC. Inline data is converted to a block first. */
int uext4_enable_verity(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino,
                        int open_flags, const struct uext4_verity_args *args);
/* FS_IOC_MEASURE_VERITY: the file digest of verity file @ino into
 * @digest, its algorithm into *@hash_algorithm. Returns the digest's size,
 * -EOVERFLOW when @size is smaller, -ENODATA for a file without verity,
 * or the error of reading its descriptor (-EUCLEAN, -EINVAL). */
int uext4_measure_verity(struct uext4_fs *fs, uint32_t ino, unsigned *hash_algorithm, void *digest,
                         size_t size);

ssize_t uext4_read(struct uext4_fs *fs, uint32_t ino, void *buf, size_t size, off_t off);

/* A read by reference: where the bytes of a read lie in the image file. */
struct uext4_read_seg {
    off_t pos; /* byte offset in the image file, or -1: zeros */
    size_t len;
};
/* Called by uext4_read_ref() with the segments of the read, in order, and
 * the image file's descriptor @fd; the bytes are what they say only until
 * the callback returns (until then every write, truncation, fallocate and
 * copy into the file waits for it, as does anything that waits for one of
 * those: it must not wait on such an operation, nor call into uext4).
 * Other reads, of this file too, go on meanwhile. Returns 0 or a negative
 * errno, which uext4_read_ref() returns. */
typedef int (*uext4_read_sink)(void *arg, int fd, const struct uext4_read_seg *segs, unsigned nseg,
                               size_t total);
/* Read @size bytes at @off as uext4_read() does, but hand @sink the places
 * of the bytes in the image instead of copying them (for a splice into a
 * pipe). @total (the bytes read, short only at EOF) may be 0. Returns the
 * sink's result; or, without calling it, uext4_read()'s errors, or
 * -EOPNOTSUPP when the data must be copied with uext4_read(): inline data,
 * block-mapped files, blocks not yet written home, data in emulated mmap
 * pages, a range in more than UEXT4_READ_REF_SEGS pieces. */
#define UEXT4_READ_REF_SEGS 16
int uext4_read_ref(struct uext4_fs *fs, uint32_t ino, size_t size, off_t off, uext4_read_sink sink,
                   void *arg);

/* @flags for uext4_write: */
#define UEXT4_WRITE_MMAP (1u << 0) /* writeback of mmap'd pages: never grows i_size */
/* Data from a writeback cache kept by the caller (FUSE writeback_cache):
 * written as write(2) data (it may grow i_size), but the caller owns the
 * times and has cleared setuid/setgid already: neither is touched. */
#define UEXT4_WRITE_CACHED (1u << 1)
/* Write @size bytes at @off. A write(2) (flags 0) may grow i_size, and on an
 * inline inode converts it to a block file when the result no longer fits;
 * clears setuid/setgid as the kernel does. Returns bytes written. */
ssize_t uext4_write(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino, const void *buf,
                    size_t size, off_t off, unsigned flags);
/* uext4_write() of @size bytes that wait in the pipe @pipe_fd (a FUSE
 * daemon's spliced WRITE data, say): where they go straight to the file's
 * blocks, splice(2) moves them from the pipe into the image file without
 * a copy through memory. -EAGAIN when they have to pass through memory
 * (inline and block-mapped files, holes filled inside a file, unwritten
 * extents, an append-only file, dirty mmap pages in library mode, a file
 * just created, which may yet go inline): nothing was done and nothing
 * taken from the pipe; read them and call uext4_write(). Otherwise the
 * bytes written have left the pipe, and after an error an unknown part of
 * the rest too. @flags: 0 or UEXT4_WRITE_CACHED. */
ssize_t uext4_write_pipe(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino,
                         int pipe_fd, size_t size, off_t off, unsigned flags);
/* uext4_write_pipe() that says early when it will succeed, so that a FUSE
 * daemon can answer the WRITE while the bytes still move, and the caller
 * copies its next ones meanwhile. @accept(@arg, n) is called at most once,
 * from inside the call and with its locks held (it must not call this
 * library), when every check has passed and the blocks are allocated:
 * from then on only the image file can fail the write (a failing or full
 * host disk). *@told says whether it was called. The return is as for
 * uext4_write_pipe(); when it is not the n told, the failure is also kept
 * for the file's next uext4_fsync() and the next uext4_sync() (and
 * uext4_close()), which report it once, as ext4 reports its writeback
 * errors. Not called for a chattr +S file, which is durable first. */
typedef void (*uext4_accept_fn)(void *arg, size_t n);
ssize_t uext4_write_pipe_early(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino,
                               int pipe_fd, size_t size, off_t off, unsigned flags,
                               uext4_accept_fn accept, void *arg, bool *told);

/* Write back dirty mmap pages (below), then make the inode's data and the
 * metadata that reaches it durable in the image file. Also reports a
 * failure to free an unlinked inode, once, as uext4_sync() does. */
int uext4_fsync(struct uext4_fs *fs, uint32_t ino, bool datasync);

/* ---- mmap emulation (library mode) ----
 *
 * Through FUSE the kernel's page cache holds mmap'd pages and sends their
 * writeback as uext4_write(..., UEXT4_WRITE_MMAP). In library mode the core
 * emulates that page cache so a program can replay mmap sequences:
 * uext4_mmap_store() is a store through a MAP_SHARED mapping (it dirties the
 * 4 KiB pages it touches, reading them in first), and the dirty pages are
 * written back, never changing i_size, by uext4_writeback(), uext4_fsync(),
 * uext4_release() of the last open, and uext4_close(). write(2), truncate
 * and reads stay coherent with the dirty pages, as with the kernel's cache:
 * a shrinking truncate cuts them, and bytes stored past EOF never reach the
 * file. A store into a page wholly past EOF fails with -EFAULT (SIGBUS). */
int uext4_mmap_store(struct uext4_fs *fs, uint32_t ino, off_t off, const void *buf, size_t len);
/* Write back @ino's dirty pages now; returns a writeback error, once. */
int uext4_writeback(struct uext4_fs *fs, uint32_t ino);
/* Number of dirty emulated pages of @ino. */
unsigned uext4_dirty_pages(struct uext4_fs *fs, uint32_t ino);

/* fallocate(2): @mode of 0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE |
 * FALLOC_FL_KEEP_SIZE, FALLOC_FL_ZERO_RANGE (optionally | KEEP_SIZE).
 * Every mode drops setuid/setgid of a caller that is not capable, as a
 * write(2) does. */
int uext4_fallocate(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino, int mode,
                    off_t off, off_t len);

/* lseek(2) for SEEK_DATA / SEEK_HOLE; returns the offset or -ENXIO. */
off_t uext4_lseek(struct uext4_fs *fs, uint32_t ino, off_t off, int whence);

ssize_t uext4_copy_file_range(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino_in,
                              off_t off_in, uint32_t ino_out, off_t off_out, size_t len);

/* ---- extended attributes (names with their namespace prefix) ---- */

/* Returns the value's length; with @size 0 only the length; -ENODATA if
 * absent; -ERANGE if @size is too small. */
ssize_t uext4_getxattr(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino,
                       const char *name, void *value, size_t size);
/* @flags: XATTR_CREATE / XATTR_REPLACE. With quota and ea_inode, -EDQUOT
 * for a caller other than root when the value needs a new EA inode and
 * that inode or the value's blocks would pass a limit of the file's ids. */
int uext4_setxattr(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino, const char *name,
                   const void *value, size_t size, int flags);
/* NUL-separated names; returns the total length (size 0: only the length). */
ssize_t uext4_listxattr(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino, char *list,
                        size_t size);
int uext4_removexattr(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino,
                      const char *name);

/* ---- file attributes (lsattr/chattr: FS_IOC_GETFLAGS and friends) ---- */

struct uext4_fileattr {
    uint32_t flags;      /* ext4's i_flags as FS_IOC_GETFLAGS shows them (FS_*_FL) */
    uint32_t projid;     /* project id; 0 on images without `project` */
    uint32_t generation; /* i_generation (FS_IOC_GETVERSION) */
};

int uext4_fileattr_get(struct uext4_fs *fs, uint32_t ino, struct uext4_fileattr *fa);
/* FS_IOC_SETFLAGS (and FS_IOC_FSSETXATTR with @projid) as ext4 does it:
 * the owner or root only (-EPERM); i (immutable) and a (append-only) set
 * or cleared by root only (CAP_LINUX_IMMUTABLE; -EPERM); j by root only;
 * flags ext4 does not show -EOPNOTSUPP; flags that cannot be changed are
 * kept silently, as chattr(1) expects, except that e (extents) cannot
 * change here (-EOPNOTSUPP) and directory-only flags on a file are
 * -EOPNOTSUPP; an immutable inode changes only by clearing i. A project
 * id other than 0 needs the `project` feature (-EOPNOTSUPP), whose
 * images are read-only here. Immutable and append-only are then enforced
 * by every operation, as ext4 does (-EPERM). */
int uext4_fileattr_set(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino,
                       uint32_t flags, uint32_t projid);

/* FITRIM: give the host back the free space of the byte range [@start,
 * @start + @len) by punching holes in the image file over free runs of at
 * least @minlen bytes (at least the host file system's block size), after
 * a commit (so that blocks freed until now count). Root only (-EPERM);
 * -EINVAL as ext4 for @minlen above a block group, @start past the end or
 * @len below a block; -EOPNOTSUPP if the image's file system cannot punch
 * holes. *@trimmed: as ext4, the bytes of the free runs trimmed (a run that
 * starts in the range counts up to the end of its block group), whether or
 * not they were holes already. As ext4, block groups trimmed since the
 * file system was opened, with nothing freed in them since, are skipped
 * (count nothing) unless @minlen is smaller than the last call's. */
int uext4_trim(struct uext4_fs *fs, const struct uext4_cred *cr, uint64_t start, uint64_t len,
               uint64_t minlen, uint64_t *trimmed);

/* The volume label (FS_IOC_GETFSLABEL; added in 1.2), NUL-terminated: up to
 * UEXT4_LABEL_MAX bytes of ext4's s_volume_name. */
#define UEXT4_LABEL_MAX 16
int uext4_label_get(struct uext4_fs *fs, char label[UEXT4_LABEL_MAX + 1]);
/* FS_IOC_SETFSLABEL: @len bytes of @label (up to its first NUL) become the
 * label, in the superblock and its backups, as ext4 writes it. Root only
 * (-EPERM: CAP_SYS_ADMIN); -EINVAL past UEXT4_LABEL_MAX bytes; -EROFS on a
 * read-only mount. */
int uext4_label_set(struct uext4_fs *fs, const struct uext4_cred *cr, const char *label,
                    size_t len);
/* EXT4_IOC_RESIZE_FS (added in 1.2): grow the file system online to
 * @new_blocks blocks, as ext4 does (a last block group too small for its
 * metadata is left out). The image file, or its offset=/sizelimit=
 * window, must already be that large: -ENOSPC (logged, naming the file) if
 * not. Root only (-EPERM; ext4 asks for CAP_SYS_RESOURCE). -EINVAL for a
 * smaller count, as ext4. Growth past the reserved GDT blocks, or without
 * resize_inode, converts the file system to meta_bg, as ext4 does.
 * bigalloc grows too, its size rounded down to a cluster.
 * -EOPNOTSUPP (logged: unmount and run resize2fs) for sparse_super2 or a
 * partition; -EUCLEAN for a damaged resize inode;
 * -EROFS read-only. Committed before it returns. */
int uext4_resize(struct uext4_fs *fs, const struct uext4_cred *cr, uint64_t new_blocks);

/* EXT4_IOC_CHECKPOINT (added in 1.3), as jbd2_journal_flush(): the
 * running transaction committed, every block written home and synced, and
 * the journal marked empty on disk, so the image needs no recovery even if
 * the process dies now. @flags, ext4's: UEXT4_CHECKPOINT_DISCARD punches the
 * journal's blocks (all but its superblock) out of its file, as a loop
 * device discards; _ZEROOUT writes zeros over them; _DRY_RUN only checks.
 * Root only (-EPERM: CAP_SYS_ADMIN); -EINVAL for other flags or DISCARD
 * with ZEROOUT; -ENODEV without a journal; on a read-only mount 0 (its
 * journal is empty), -EROFS to erase it, or if its log was replayed in
 * memory only (an image that needed recovery); -EOPNOTSUPP (DISCARD)
 * where the image's file system cannot punch holes. */
#define UEXT4_CHECKPOINT_DISCARD 0x1u
#define UEXT4_CHECKPOINT_ZEROOUT 0x2u
#define UEXT4_CHECKPOINT_DRY_RUN 0x4u
int uext4_checkpoint(struct uext4_fs *fs, const struct uext4_cred *cr, unsigned flags);
/* EXT4_IOC_SWAP_BOOT (added in 1.3): regular file @ino and the boot loader
 * inode (5) trade their blocks, size, block count, access and
 * modification times, as ext4's swap: the file then holds what the boot
 * loader held (nothing, the first time), the boot loader the file's
 * data. @open_flags: how the caller opened the file (O_RDONLY: -EBADF), or
 * -1 if not known. -EROFS read-only; -EINVAL unless the file has one link
 * and is neither inline, encrypted nor data-journaled; -EPERM for
 * append-only or immutable files and callers other than root. */
int uext4_swap_boot(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino, int open_flags);

/* ---- inspection (for tools and tests) ---- */

struct uext4_extent {
    uint64_t lblk, pblk; /* first logical and physical block */
    uint32_t len;        /* blocks */
    bool unwritten;
};

/* Where an inode's data lives, as stored on disk. */
struct uext4_inode_info {
    uint32_t ino;
    mode_t mode;
    uint32_t nlink;
    uint32_t flags;  /* i_flags (EXT4_INLINE_DATA_FL 0x10000000, EXTENTS 0x80000) */
    uint64_t size;   /* i_size */
    uint64_t blocks; /* 512-byte units */
    bool is_inline;
    size_t inline_size;           /* bytes the inode gives to inline data: 60 + system.data */
    size_t inline_capacity;       /* the most it could hold inline (0: no room) */
    uint64_t xattr_block;         /* external xattr block, 0 if none */
    unsigned nextents;            /* mapped runs of blocks (extents, or block-map runs) */
    struct uext4_extent *extents; /* freed by uext4_inode_info_free */
};

int uext4_inspect(struct uext4_fs *fs, uint32_t ino, struct uext4_inode_info *info);
void uext4_inode_info_free(struct uext4_inode_info *info);

/* The names uext4-inspect and uext4_inspect_json() print: the type of
 * @mode ("file", "dir", "symlink", "device", "fifo", "socket", "unknown"),
 * and the flag whose only bit is @bit ("immutable", "append", "noatime",
 * "index", "huge", "extents", "ea_inode", "inline"; NULL for any other
 * bit). Static strings. */
const char *uext4_inode_type_name(mode_t mode);
const char *uext4_inode_flag_name(uint32_t bit);

/* The JSON object `uext4-inspect --json` prints: @info, the xattr names
 * @xattrs (NUL-separated, @xlen bytes; a negative @xlen lists none) and,
 * unless @path is NULL, a "path" member first. Returns a malloc'd string
 * (ending in '}', no newline) in *@out, 0 or -ENOMEM. */
int uext4_inspect_json(const struct uext4_inode_info *info, const char *path, const char *xattrs,
                       ssize_t xlen, char **out);

/* A read-only virtual extended attribute: uext4_getxattr (so getxattr(2)
 * on a mount) of this name returns uext4_inspect_json() of the inode as
 * stored now, with no "path" and only the xattr names the caller may list.
 * The state is the library's: what the next commit writes, including
 * everything not yet committed, but not the pages a kernel still holds
 * dirty (writeback_cache, mmap). It needs read permission on the inode
 * (what FIEMAP needs: an open for reading), works on every file type, is
 * never listed, and setting or removing it fails with -EPERM. */
#define UEXT4_INSPECT_XATTR "uext4.inspect"

/* ---- messages ---- */

enum uext4_log_level {
    UEXT4_LOG_ERR,
    UEXT4_LOG_WARNING,
    UEXT4_LOG_NOTICE, /* worth telling a user: a journal replayed, orphans freed */
    UEXT4_LOG_INFO,
    UEXT4_LOG_DEBUG,
};

/* Receives one message: a line without its newline, valid for the call
 * only. Called from the threads making uext4_* calls and from the library's
 * own commit thread (until uext4_close returns), possibly concurrently; it
 * must not call back into uext4. */
typedef void (*uext4_log_func)(enum uext4_log_level level, const char *msg, void *data);

/* Send the library's messages (corruption found, writeback errors, features
 * that force read-only, ...) at @max and more severe levels to @func with
 * @data, instead of to stderr (the default, at UEXT4_LOG_WARNING). @func NULL
 * restores the default. Call it before uext4_open() or while no uext4_* call
 * is running: it is not synchronised with them. */
void uext4_set_log_func(uext4_log_func func, void *data, enum uext4_log_level max);

const char *uext4_version(void);
/* The version of the libext2fs in use at run time. */
const char *uext4_ext2fs_version(void);

#ifdef __cplusplus
}
#endif

#endif
