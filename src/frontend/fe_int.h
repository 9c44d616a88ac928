/* The FUSE front end's internals: shared by the handler files of
 * src/frontend/ and by nothing else (main.c sees only fe.h).
 *
 * Every handler follows one shape: decode the request (inode numbers,
 * credentials), make one uext4_* call, release what the decode took, then
 * send exactly one reply through an fe_reply_*() helper. Handlers hold no
 * lock of their own; the core's locks are all dropped by the time a uext4_*
 * call returns, so no lock is held across a fuse_reply_*() call, with one
 * exception: a read by reference (file.c) replies from inside
 * uext4_read_ref(), which holds the inode's reply_lock for reading (not its
 * inode or mount lock), because the image blocks it splices are the file's
 * only while writes, truncation and block reuse wait for it. Writing a
 * reply never waits on this file system (it fills the pages of a request
 * the kernel is already waiting on), so that cannot deadlock. */
#ifndef UEXT4_FRONTEND_FE_INT_H
#define UEXT4_FRONTEND_FE_INT_H

#define FUSE_USE_VERSION 314

#include <fuse_lowlevel.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "frontend/record.h"
#include "frontend/wire.h"
#include "uext4.h"

/* Entry and attribute timeouts, in seconds. Long, because this daemon is the
 * only writer of its image: nothing can change behind the kernel's back. */
#define FE_TIMEOUT 86400.0

/* The largest write request we ask the kernel for (conn->max_write). */
#define FE_MAX_WRITE (1u << 20)

/* Per-session state, the fuse_session userdata. Written before the session
 * loop starts (and by init, which the kernel sends before any other request)
 * and read-only afterwards, so handlers read it without a lock. */
struct fe_ctx {
    struct uext4_fs *fs;
    bool posix_acl; /* offer FUSE_CAP_POSIX_ACL (only with default_permissions) */
    /* Seconds the kernel may keep a name. 0 when the daemon checks
     * permissions: a cached name would skip the search-permission check
     * of a directory whose mode changed since (the kernel checks it itself
     * with default_permissions). */
    double entry_timeout;
    /* FUSE_CAP_WRITEBACK_CACHE is on: write(2) data arrives as writeback
     * and the kernel owns i_size, mtime and ctime (file.c, attr.c). */
    bool writeback_cache;
    /* Large WRITEs' data may stay in the channel's pipe and go from there
     * into the image (wire.c, fe_write): not with -o no_splice_write, nor
     * -o record, which logs the bytes. */
    bool splice_write;
    /* Such a WRITE is answered once its blocks are allocated, before its
     * data moves (fe_write): not with -o no_early_write. */
    bool early_write;
    /* WRITEs answered so (the control socket's "stats"). */
    _Atomic uint64_t answered_early;
    /* OPEN is answered ENOSYS, so the kernel sends no OPEN and no RELEASE
     * for regular files (file.c): when the kernel checks permissions, or
     * nobody does (fakeroot). */
    bool no_open;
    /* strictatime: every open starts with no cached pages (no OPEN-less
     * opens, no keep_cache), so that its first read reaches the daemon,
     * which records the access (reads of cached pages never do). */
    bool drop_cache_on_open;
    /* The channel under libfuse (wire.c); its INIT state is written by
     * the worker that answers INIT, before any other request exists. */
    struct fe_wire wire;
    /* The session, for notifications (inval.c); set before the loop starts. */
    struct fuse_session *se;
    /* -o record=FILE, else NULL; set before the loop starts (record.h). */
    struct fe_record *rec;
};

static inline struct fe_ctx *fe_ctx(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

static inline struct uext4_fs *fe_fs(fuse_req_t req)
{
    return fe_ctx(req)->fs;
}

/* FUSE names the root 1 (FUSE_ROOT_ID); ext4 names it 2. Every other number
 * is the same on both sides, and ext4's inode 1 (bad blocks) is never handed
 * to the kernel, so the mapping is a bijection on what the kernel can see. */
static inline uint32_t fe_ext4_ino(fuse_ino_t ino)
{
    return ino == FUSE_ROOT_ID ? UEXT4_ROOT_INO : (uint32_t)ino;
}

static inline fuse_ino_t fe_fuse_ino(uint32_t ino)
{
    return ino == UEXT4_ROOT_INO ? FUSE_ROOT_ID : (fuse_ino_t)ino;
}

/* Fill @e for an inode the core has just returned with one lookup reference.
 * The entry carries the inode's i_generation, which the kernel puts in file
 * handles and checks when it finds a handle's inode by number (export
 * support): every entry of an inode must carry the same one, or the kernel
 * takes the inode for a stale one. Fails only on a corrupt inode. */
int fe_entry_fill(fuse_req_t req, struct fuse_entry_param *e, const struct stat *st);

/* ---- invalidation (inval.c) ---- */

/* Drops the kernel's cached attributes of @ino (a mode the daemon changed). */
void fe_inval_attr(fuse_req_t req, fuse_ino_t ino);
/* Drops the kernel's cached pages and attributes of @ino (its contents
 * replaced under it). */
void fe_inval_data(fuse_req_t req, fuse_ino_t ino);

/* ---- credentials (cred.c) ---- */

#define FE_GROUPS_INLINE 32

/* The caller of a request, in the form the core wants. Supplementary groups
 * live in @inline_groups, or on the heap for callers in many groups, so every
 * fe_cred_init() is paired with an fe_cred_release() before the reply. */
struct fe_cred {
    struct uext4_cred cr;
    fuse_req_t req;
    enum fe_wire_kill kill; /* the request's kill mark (wire.h) */
    gid_t *heap_groups;
    gid_t inline_groups[FE_GROUPS_INLINE];
};

/* @want_groups false skips reading the supplementary groups (they come from
 * /proc): for requests the kernel sends on nobody's behalf, such as the
 * writeback of mmap'd pages. */
void fe_cred_init(struct fe_cred *c, fuse_req_t req, bool want_groups);
void fe_cred_release(struct fe_cred *c);

/* ---- replies (reply.c) ----
 *
 * @rc is 0, a byte count or a negative errno, as every uext4_* call returns.
 * On rc < 0 each helper replies with the error through fe_reply_err(), the one
 * place that negates; otherwise it sends the success reply. */
void fe_reply_err(fuse_req_t req, int rc);
void fe_reply_status(fuse_req_t req, int rc);
/* On success the inode carries one lookup reference taken by the core; if the
 * reply cannot be delivered (the request was interrupted), the kernel never
 * learns of it, so the helper gives the reference back. */
void fe_reply_entry(fuse_req_t req, int rc, const struct stat *st);
/* fe_reply_entry() for a lookup: -ENOENT becomes a negative entry the
 * kernel may keep, where it may keep names at all (entry_timeout > 0). */
void fe_reply_lookup(fuse_req_t req, int rc, const struct stat *st);
void fe_reply_attr(fuse_req_t req, int rc, const struct stat *st);
/* The reply to a STATX (fe_wire_is_statx()). */
void fe_reply_statx(fuse_req_t req, int rc, const struct statx *stx);
void fe_reply_buf(fuse_req_t req, ssize_t rc, const void *buf);
void fe_reply_write(fuse_req_t req, ssize_t rc);
void fe_reply_xattr(fuse_req_t req, ssize_t rc, const void *buf, size_t size);
void fe_reply_statfs(fuse_req_t req, int rc, const struct statvfs *sv);
void fe_reply_lseek(fuse_req_t req, off_t rc);
/* An ioctl's result 0 with @size bytes of @buf for the caller. */
void fe_reply_ioctl(fuse_req_t req, int rc, const void *buf, size_t size);

/* ---- handlers, one file per mechanism ---- */

/* namei.c: names and links */
void fe_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void fe_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void fe_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets);
void fe_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void fe_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void fe_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name);
void fe_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);
void fe_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void fe_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void fe_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
               const char *newname, unsigned int flags);
void fe_readlink(fuse_req_t req, fuse_ino_t ino);

/* attr.c: attributes, permissions, statfs */
void fe_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fe_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                struct fuse_file_info *fi);
void fe_access(fuse_req_t req, fuse_ino_t ino, int mask);
void fe_statfs(fuse_req_t req, fuse_ino_t ino);

/* xattr.c */
void fe_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
                 int flags);
void fe_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void fe_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void fe_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

/* file.c: open files and their data */
void fe_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
               struct fuse_file_info *fi);
void fe_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fe_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void fe_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
              struct fuse_file_info *fi);
void fe_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fe_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void fe_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
                  struct fuse_file_info *fi);
void fe_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi);
void fe_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
                        struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
                        struct fuse_file_info *fi_out, size_t len, int flags);

/* ioctl.c: file attributes, FS_IOC_GETVERSION, FITRIM */
/* fi->fh of an open regular file: this mark and the open(2) flags in the
 * low 32 bits (file.c); 0 where no OPEN was sent (no_open). */
#define FE_FH_OPEN (1ull << 32)

void fe_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg,
              struct fuse_file_info *fi, unsigned flags, const void *in_buf, size_t in_bufsz,
              size_t out_bufsz);

/* dir.c: directory handles */
void fe_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fe_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void fe_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi);
void fe_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fe_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);

#endif
