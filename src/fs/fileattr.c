/* File attributes (ext4's i_flags as lsattr/chattr see them) and FITRIM.
 *
 * The rules are ext4's (ext4_fileattr_set, ext4_ioctl_setflags) with the
 * VFS checks in front of them (vfs_fileattr_set): through FUSE the kernel
 * made those already with the caller's capabilities; the core makes them
 * again with what it knows of the caller (root or not), which also serves
 * library mode. Immutable and append-only are enforced where each
 * operation checks permissions (perm.c, attr.c, file.c, namei.c,
 * rename.c, xattr.c, mmap.c). */
#include "fs/fs_internal.h"

#include <errno.h>
#include <string.h>

/* Change by ext4 rules, never silently ignored here (see uext4.h). */
#define FL_JOURNAL_DATA 0x00004000u
#define FL_DAX          0x02000000u
/* dax_compatible(): DAX excludes verity, encryption and inline data. */
#define FL_DAX_EXCL 0x10100800u

int uext4_fileattr_get(struct uext4_fs *fs, uint32_t ino, struct uext4_fileattr *fa)
{
    struct e2_attr a;
    int ret;

    rwlock_rdlock(&fs->mount_lock);
    ret = FS_CHECK(fs, ino, e2_inode_get(fs->img, ino, &a));
    rwlock_unlock(&fs->mount_lock);
    if (ret)
        return ret;
    fa->flags = a.flags & E2_FL_USER_VISIBLE;
    fa->projid = e2_has_project(fs->img) ? a.projid : 0;
    fa->generation = a.generation;
    return 0;
}

/* ext4_fileattr_set() and what vfs_fileattr_set() checks before it. The
 * new i_flags in *@out. */
static int setflags_check(struct uext4_fs *fs, const struct fs_cred *fc, uint32_t ino,
                          const struct e2_attr *a, uint32_t flags, uint32_t projid, uint32_t *out)
{
    uint32_t old = a->flags, changed;
    int ret;

    if (!fs_is_owner(fs, fc, a))
        return -EPERM;
    if (((flags ^ (old & E2_FL_USER_VISIBLE)) & (E2_FL_IMMUTABLE | E2_FL_APPEND)) && !fc->root)
        return -EPERM;
    if (flags & ~E2_FL_USER_VISIBLE)
        return -EOPNOTSUPP;
    /* chattr sets what lsattr read, changed: flags that are visible but
     * not settable are dropped silently, as ext4 does. */
    flags &= E2_FL_USER_MODIFIABLE;
    if (fs_mask_flags(a->mode, flags) != flags)
        return -EOPNOTSUPP;
    /* ext4_ioctl_check_immutable(): only clearing i changes such a file. */
    if ((old & E2_FL_IMMUTABLE) && (flags & E2_FL_IMMUTABLE) &&
        ((old & ~E2_FL_IMMUTABLE) != (flags & ~E2_FL_IMMUTABLE) ||
         (e2_has_project(fs->img) && a->projid != projid)))
        return -EPERM;
    changed = (flags ^ old) & E2_FL_USER_MODIFIABLE;
    if ((changed & FL_JOURNAL_DATA) && !fc->root)
        return -EPERM; /* CAP_SYS_RESOURCE */
    if ((flags & FL_DAX) && (old & FL_DAX_EXCL & (S_ISDIR(a->mode) ? ~E2_FL_INLINE_DATA : ~0u)))
        return -EOPNOTSUPP;
    /* Migrating between extents and block maps is not done here. */
    if (changed & E2_FL_EXTENTS)
        return -EOPNOTSUPP;
    /* Case folding changes only on an empty directory of a casefold
     * image: its names would otherwise need rehashing and could collide.
     * The mount lock (read) keeps names from being added meanwhile. */
    if (changed & E2_FL_CASEFOLD) {
        if (!e2_has_casefold(fs->img))
            return -EOPNOTSUPP;
        if (!S_ISDIR(a->mode))
            return -ENOTDIR;
        ret = fs_dir_is_empty(fs, ino);
        if (ret <= 0)
            return ret ? ret : -ENOTEMPTY;
    }
    /* ext4_ioctl_setproject(): the quota charge moves with the inode
     * (quota.c sees the new projid written). */
    if (projid != (e2_has_project(fs->img) ? a->projid : 0) && !e2_has_project(fs->img))
        return -EOPNOTSUPP;
    *out = (old & ~E2_FL_USER_MODIFIABLE) | flags;
    return 0;
}

int uext4_fileattr_set(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino,
                       uint32_t flags, uint32_t projid)
{
    struct fs_inode *fi;
    struct fs_cred fc;
    struct e2_attr a;
    uint32_t nflags = 0;
    int ret;

    fs_cred_from(fs, cr, &fc);
    fi = fs_op_begin(fs, ino);
    if (!fi)
        return -ENOMEM;
    ret = fs_may_write(fs);
    if (!ret)
        ret = e2_inode_get(fs->img, ino, &a);
    if (!ret)
        ret = setflags_check(fs, &fc, ino, &a, flags, projid, &nflags);
    /* As ext4 before a file turns immutable: its dirty pages go back
     * first, while they still may. */
    if (!ret && S_ISREG(a.mode) && !(a.flags & E2_FL_IMMUTABLE) && (nflags & E2_FL_IMMUTABLE))
        ret = fs_writeback_locked(fs, fi);
    if (!ret)
        ret = e2_inode_get(fs->img, ino, &a);
    if (!ret) {
        unsigned fields = E2_A_FLAGS | E2_A_CTIME;
        struct e2_attr n = a;

        /* The name index, if any, matches names the old way. */
        if ((a.flags ^ nflags) & E2_FL_CASEFOLD)
            fs_dir_index_free(fi);
        n.flags = nflags;
        n.projid = projid;
        fs_now(&n.ctime);
        if (e2_has_project(fs->img) && projid != a.projid) {
            fields |= E2_A_PROJID;
            /* dquot_transfer(): the new project's quota entry, and its
             * hard limits, which CAP_SYS_RESOURCE passes. */
            ret = e2_quota_may_transfer(fs->img, ino, &a, &n, !fc.root);
        }
        if (!ret)
            ret = e2_inode_set(fs->img, ino, &n, fields);
    }
    ret = FS_CHECK(fs, ino, ret);
    fs_op_end(fs, fi);
    return ret;
}

int uext4_trim(struct uext4_fs *fs, const struct uext4_cred *cr, uint64_t start, uint64_t len,
               uint64_t minlen, uint64_t *trimmed)
{
    struct fs_cred fc;
    int ret;

    *trimmed = 0;
    fs_cred_from(fs, cr, &fc);
    if (!fc.root)
        return -EPERM; /* CAP_SYS_ADMIN */
    ret = fs_may_write(fs);
    if (ret)
        return ret;
    /* No block a crash could bring back is punched, commit or not: those
     * freed in the running transaction stay marked in the in-memory bitmap
     * until the commit that frees them is durable (journal.c), as ext4's
     * stay in use in its buddy bitmap until their transaction commits
     * (ext4_mb_free_metadata); ext4_trim_fs commits nothing. A commit here
     * only makes those blocks free for good, so that a file just deleted
     * gives its space back now rather than at the next FITRIM after a
     * commit: it is made only when there are such blocks, and is no
     * durability point otherwise. The mount lock held for writing keeps
     * every operation out until the holes are punched. */
    rwlock_wrlock(&fs->mount_lock);
    ret = e2_has_reserved_blocks(fs->img) ? e2_image_sync(fs->img) : 0;
    if (!ret)
        ret = e2_trim(fs->img, start, len, minlen, trimmed);
    rwlock_unlock(&fs->mount_lock);
    return ret;
}

_Static_assert(UEXT4_LABEL_MAX == E2_LABEL_MAX, "one label size");

int uext4_label_get(struct uext4_fs *fs, char label[UEXT4_LABEL_MAX + 1])
{
    e2_label_get(fs->img, label);
    return 0;
}

int uext4_label_set(struct uext4_fs *fs, const struct uext4_cred *cr, const char *label, size_t len)
{
    struct fs_cred fc;
    int ret;

    fs_cred_from(fs, cr, &fc);
    if (!fc.root)
        return -EPERM; /* CAP_SYS_ADMIN */
    len = strnlen(label, len);
    if (len > UEXT4_LABEL_MAX)
        return -EINVAL;
    ret = fs_may_write(fs);
    if (ret)
        return ret;
    /* One step under the disk lock; the mount lock, read, as every
     * change holds it, so that a commit sees it whole. */
    rwlock_rdlock(&fs->mount_lock);
    ret = e2_label_set(fs->img, label, len);
    rwlock_unlock(&fs->mount_lock);
    return ret;
}

int uext4_resize(struct uext4_fs *fs, const struct uext4_cred *cr, uint64_t new_blocks)
{
    struct fs_cred fc;
    int ret;

    fs_cred_from(fs, cr, &fc);
    if (!fc.root)
        return -EPERM; /* ext4_resize_begin: CAP_SYS_RESOURCE */
    ret = fs_may_write(fs);
    if (ret)
        return ret;
    /* With every operation kept out, the grow is a transaction of its
     * own: the running one commits first, and the grow commits before the
     * reply, as ext4 flushes its journal after a resize. */
    rwlock_wrlock(&fs->mount_lock);
    ret = e2_image_sync(fs->img);
    if (!ret)
        ret = e2_resize(fs->img, new_blocks);
    if (!ret)
        ret = e2_image_sync(fs->img);
    rwlock_unlock(&fs->mount_lock);
    return ret;
}
