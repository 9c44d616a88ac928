/* getattr, setattr (chmod, chown, utimens, truncate) and access. */
#include "fs/fs_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* The attributes of a live inode, for getattr and statx alike. */
static int read_attr(struct uext4_fs *fs, uint32_t ino, struct e2_attr *a)
{
    int ret;

    rwlock_rdlock(&fs->mount_lock);
    ret = FS_CHECK(fs, ino, e2_inode_get(fs->img, ino, a));
    rwlock_unlock(&fs->mount_lock);
    if (ret)
        return ret;
    if (a->nlink == 0 && a->mode == 0)
        return -ENOENT;
    return 0;
}

int uext4_getattr(struct uext4_fs *fs, uint32_t ino, struct stat *st)
{
    struct e2_attr a;
    int ret = read_attr(fs, ino, &a);

    if (ret)
        return ret;
    fs_attr_to_stat(fs, ino, &a, st);
    return 0;
}

static struct statx_timestamp statx_time(struct timespec ts)
{
    return (struct statx_timestamp){.tv_sec = ts.tv_sec, .tv_nsec = (uint32_t)ts.tv_nsec};
}

/* The inode flags ext4_getattr() shows as statx attributes. */
static const struct {
    uint32_t fl;
    uint64_t attr;
} statx_attrs[] = {
    {E2_FL_APPEND, STATX_ATTR_APPEND},     {E2_FL_COMPR, STATX_ATTR_COMPRESSED},
    {E2_FL_ENCRYPT, STATX_ATTR_ENCRYPTED}, {E2_FL_IMMUTABLE, STATX_ATTR_IMMUTABLE},
    {E2_FL_NODUMP, STATX_ATTR_NODUMP},     {E2_FL_VERITY, STATX_ATTR_VERITY},
};

int uext4_statx(struct uext4_fs *fs, uint32_t ino, struct statx *stx)
{
    struct e2_attr a;
    struct stat st;
    int ret = read_attr(fs, ino, &a);

    if (ret)
        return ret;
    /* The fields stat has, as uext4_getattr gives them (ids mapped). */
    fs_attr_to_stat(fs, ino, &a, &st);
    memset(stx, 0, sizeof(*stx));
    stx->stx_mask = STATX_BASIC_STATS;
    stx->stx_blksize = (uint32_t)st.st_blksize;
    stx->stx_nlink = (uint32_t)st.st_nlink;
    stx->stx_uid = st.st_uid;
    stx->stx_gid = st.st_gid;
    stx->stx_mode = (uint16_t)st.st_mode;
    stx->stx_ino = st.st_ino;
    stx->stx_size = (uint64_t)st.st_size;
    stx->stx_blocks = (uint64_t)st.st_blocks;
    stx->stx_atime = statx_time(st.st_atim);
    stx->stx_mtime = statx_time(st.st_mtim);
    stx->stx_ctime = statx_time(st.st_ctim);
    stx->stx_rdev_major = major(st.st_rdev);
    stx->stx_rdev_minor = minor(st.st_rdev);
    if (a.has_crtime) {
        stx->stx_mask |= STATX_BTIME;
        stx->stx_btime = statx_time(a.crtime);
    }
    for (size_t i = 0; i < sizeof(statx_attrs) / sizeof(statx_attrs[0]); i++) {
        stx->stx_attributes_mask |= statx_attrs[i].attr;
        if (a.flags & statx_attrs[i].fl)
            stx->stx_attributes |= statx_attrs[i].attr;
    }
    return 0;
}

/* A mode change that only clears setuid/setgid: what the kernel asks of a
 * writer that is not the owner (file_remove_privs()), allowed to whoever
 * may write the file. */
static bool only_drops_privs(struct uext4_fs *fs, const struct fs_cred *fc, uint32_t ino,
                             const struct e2_attr *a, const struct e2_attr *n)
{
    const mode_t privs = S_ISUID | S_ISGID;

    return n->mode != a->mode && (n->mode | privs) == (a->mode | privs) &&
           (n->mode & privs) == (n->mode & a->mode & privs) &&
           fs_permission(fs, fc, ino, a, W_OK) == 0;
}

/* The permission rules of notify_change()/setattr_prepare(). */
static int setattr_check(struct uext4_fs *fs, const struct fs_cred *fc, uint32_t ino,
                         const struct e2_attr *a, const struct e2_attr *n, unsigned to_set)
{
    const unsigned append_forbids = UEXT4_SET_MODE | UEXT4_SET_UID | UEXT4_SET_GID | UEXT4_SET_SIZE;
    bool explicit_time = (to_set & UEXT4_SET_ATIME && !(to_set & UEXT4_SET_ATIME_NOW)) ||
                         (to_set & UEXT4_SET_MTIME && !(to_set & UEXT4_SET_MTIME_NOW));

    /* ext4_setattr() and notify_change(): an immutable inode changes not
     * at all; an append-only one keeps its mode, owner, size and times,
     * but may be touched to "now". */
    if (a->flags & E2_FL_IMMUTABLE)
        return -EPERM;
    if ((a->flags & E2_FL_APPEND) && ((to_set & append_forbids) || explicit_time))
        return -EPERM;
    if ((to_set & UEXT4_SET_UID) && !fs_capable(fs, fc, a) && n->uid != a->uid)
        return -EPERM;
    if ((to_set & UEXT4_SET_GID) && !fs_capable(fs, fc, a) &&
        (!fs_cred_uid_is(fc, a->uid) || !fs_cred_in_group(fs, fc, n->gid)))
        return -EPERM;
    if ((to_set & UEXT4_SET_MODE) && !fs_is_owner(fs, fc, a) &&
        !only_drops_privs(fs, fc, ino, a, n))
        return -EPERM;
    if (to_set & (UEXT4_SET_ATIME | UEXT4_SET_MTIME)) {
        /* Explicit times need ownership; "now" needs write access. */
        if (!fs_is_owner(fs, fc, a)) {
            if (explicit_time)
                return -EPERM;
            if (fs_permission(fs, fc, ino, a, W_OK))
                return -EACCES;
        }
    }
    if ((to_set & UEXT4_SET_SIZE) && !(to_set & UEXT4_SET_FH)) {
        int ret = fs_permission(fs, fc, ino, a, W_OK);
        if (ret)
            return ret;
    }
    return 0;
}

static int setattr_locked(struct uext4_fs *fs, const struct fs_cred *fc, struct fs_inode *fi,
                          const struct stat *in, unsigned to_set)
{
    uint32_t ino = fi->ino;
    struct e2_attr a, n;
    unsigned fields = E2_A_CTIME;
    struct timespec now;
    int ret;

    ret = e2_inode_get(fs->img, ino, &a);
    if (ret)
        return ret;
    n = a;
    if (to_set & UEXT4_SET_UID) {
        ret = fs_uid_to_image(fs, in->st_uid, &n.uid);
        if (ret)
            return -EOVERFLOW; /* no image id for it */
    }
    if (to_set & UEXT4_SET_GID) {
        ret = fs_gid_to_image(fs, in->st_gid, &n.gid);
        if (ret)
            return -EOVERFLOW;
    }
    if (to_set & UEXT4_SET_MODE)
        n.mode = (a.mode & S_IFMT) | (in->st_mode & 07777);
    ret = setattr_check(fs, fc, ino, &a, &n, to_set);
    if (ret)
        return ret;
    ret = fs_may_write(fs);
    /* dquot_transfer(): the new owner's or group's quota entries, and
     * their hard limits, which CAP_SYS_RESOURCE passes. */
    if (!ret && (n.uid != a.uid || n.gid != a.gid))
        ret = e2_quota_may_transfer(fs->img, ino, &a, &n, !fc->root);
    if (ret)
        return ret;
    if ((to_set & UEXT4_SET_SIZE) && S_ISDIR(a.mode))
        return -EISDIR;
    if ((to_set & UEXT4_SET_SIZE) && (!S_ISREG(a.mode) || in->st_size < 0))
        return -EINVAL;
    if (to_set & UEXT4_SET_SIZE) {
        ret = fs_may_write_data(&a);
        if (ret)
            return ret;
    }
    if (to_set & UEXT4_SET_SIZE) {
        /* truncate(2) and open(O_TRUNC) set mtime even when the size
         * stays, and drop setuid/setgid of a non-capable caller. */
        fields |= E2_A_MTIME;
        if (!(to_set & UEXT4_SET_MODE) && fs_remove_privs(fs, fc, &a, &n.mode))
            fields |= E2_A_MODE;
    }
    /* The same size too, as ext4: blocks allocated past EOF (fallocate
     * with KEEP_SIZE) are freed by any truncate that does not grow. */
    if ((to_set & UEXT4_SET_SIZE) &&
        ((uint64_t)in->st_size != a.size || !(a.flags & E2_FL_INLINE_DATA))) {
        ret = fs_file_truncate_locked(fs, fi, &a, (uint64_t)in->st_size);
        if (ret)
            return ret;
        pc_resize(fs->pc, ino, a.size, (uint64_t)in->st_size);
        fs_stale_tail_set(fi, a.size, (uint64_t)in->st_size);
        ret = e2_inode_get(fs->img, ino, &a);
        if (ret)
            return ret;
        /* The truncate changed size and blocks; keep what we set above. */
        n.size = a.size;
        n.blocks = a.blocks;
        n.flags = a.flags;
    }
    fs_now(&now);
    if (to_set & UEXT4_SET_UID)
        fields |= E2_A_UID;
    if (to_set & UEXT4_SET_GID)
        fields |= E2_A_GID;
    if (to_set & UEXT4_SET_MODE) {
        n.mode = (a.mode & S_IFMT) | (in->st_mode & 07777);
        /* Only a member of the file's group may keep setgid. */
        if (!fs_capable(fs, fc, &a) &&
            !fs_cred_in_group(fs, fc, (to_set & UEXT4_SET_GID) ? n.gid : a.gid))
            n.mode &= ~(mode_t)S_ISGID;
        fields |= E2_A_MODE;
    }
    /* chown drops setuid, and setgid when it means "group exec". */
    if ((to_set & (UEXT4_SET_UID | UEXT4_SET_GID)) && !S_ISDIR(a.mode) &&
        !(to_set & UEXT4_SET_MODE) &&
        fs_kill_priv(&n.mode, fs_capable(fs, fc, &a) || fs_cred_in_group(fs, fc, a.gid)))
        fields |= E2_A_MODE;
    if (to_set & UEXT4_SET_ATIME) {
        n.atime = (to_set & UEXT4_SET_ATIME_NOW) ? now : in->st_atim;
        fields |= E2_A_ATIME;
    }
    if (fields & E2_A_MTIME)
        n.mtime = now;
    if (to_set & UEXT4_SET_MTIME) {
        n.mtime = (to_set & UEXT4_SET_MTIME_NOW) ? now : in->st_mtim;
        fields |= E2_A_MTIME;
    }
    n.ctime = (to_set & UEXT4_SET_CTIME) ? in->st_ctim : now;
    ret = e2_inode_set(fs->img, ino, &n, fields);
    if (ret)
        return ret;
    if ((fields & E2_A_MODE) && !S_ISLNK(a.mode))
        ret = fs_acl_chmod(fs, ino, n.mode, !fc->root);
    return ret;
}

int uext4_setattr(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino,
                  const struct stat *in, unsigned to_set, struct stat *out)
{
    struct fs_inode *fi;
    struct fs_cred fc;
    struct e2_attr a;
    int ret;

    fs_cred_from(fs, cr, &fc);
    fi = fs_op_begin(fs, ino);
    if (!fi)
        return -ENOMEM;
    ret = setattr_locked(fs, &fc, fi, in, to_set);
    if (!ret)
        ret = e2_inode_get(fs->img, ino, &a);
    ret = FS_CHECK(fs, ino, ret);
    fs_op_end(fs, fi);
    if (!ret && out)
        fs_attr_to_stat(fs, ino, &a, out);
    return ret;
}

int uext4_access(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino, int mask)
{
    struct fs_cred fc;
    struct e2_attr a;
    int ret;

    fs_cred_from(fs, cr, &fc);
    rwlock_rdlock(&fs->mount_lock);
    ret = FS_CHECK(fs, ino, e2_inode_get(fs->img, ino, &a));
    if (!ret && mask != F_OK)
        ret = fs_permission(fs, &fc, ino, &a, mask);
    if (!ret && (mask & W_OK) && e2_is_read_only(fs->img))
        ret = -EROFS;
    rwlock_unlock(&fs->mount_lock);
    return ret;
}
