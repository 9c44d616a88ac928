/* Names: lookup, create (mknod, mkdir, symlink), link, unlink, rmdir.
 * Rename is in rename.c. Namespace changes hold the mount lock for writing;
 * lookups hold it for reading and the directory's inode lock. */
#include "fs/fs_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

int fs_check_name(const char *name)
{
    size_t len = strlen(name);

    if (len == 0)
        return -ENOENT;
    if (len > 255)
        return -ENAMETOOLONG;
    if (strchr(name, '/'))
        return -EINVAL;
    return 0;
}

/* Find @name in directory @dir; under the mount lock (either mode). */
int fs_find_entry(struct uext4_fs *fs, uint32_t dir, const char *name, uint32_t *ino)
{
    struct fs_inode *di = fs_inode_get(fs, dir);
    unsigned ftype;
    int ret;

    if (!di)
        return -ENOMEM;
    mutex_lock(&di->lock);
    ret = fs_dir_find(fs, di, name, ino, &ftype);
    mutex_unlock(&di->lock);
    fs_inode_put(fs, di);
    return ret;
}

/* The directory @dir's attributes, checking it is one and that @fc may
 * search it (and write it when @write). */
int fs_dir_access(struct uext4_fs *fs, const struct fs_cred *fc, uint32_t dir, struct e2_attr *a,
                  bool write)
{
    int ret = e2_inode_get(fs->img, dir, a);

    if (ret)
        return ret;
    if (!S_ISDIR(a->mode))
        return a->nlink ? -ENOTDIR : -ENOENT;
    if (write && a->nlink == 0)
        return -ENOENT; /* removed directory */
    return fs_permission(fs, fc, dir, a, write ? (W_OK | X_OK) : X_OK);
}

/* uext4_lookup() and uext4_lookup_listed(): @record_inode says whether
 * damage found by reading the entry's inode is recorded as an error of the
 * file system (fs_check) or only refused. */
static int lookup(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t dir, const char *name,
                  struct stat *st, bool record_inode)
{
    struct fs_cred fc;
    struct e2_attr da, a;
    uint32_t ino = 0, blame = dir; /* 0: nothing to record */
    int ret;

    if (strlen(name) > 255)
        return -ENAMETOOLONG;
    fs_cred_from(fs, cr, &fc);
    rwlock_rdlock(&fs->mount_lock);
    ret = fs_dir_access(fs, &fc, dir, &da, false);
    if (ret)
        goto out_unlock;
    if (!strcmp(name, "."))
        ino = dir;
    else
        ret = fs_find_entry(fs, dir, name, &ino);
    if (!ret) {
        ret = e2_inode_load(fs->img, ino, &a);
        if (ret)
            blame = record_inode ? ino : 0; /* the inode itself lies, not the entry */
    }
    if (!ret && a.nlink == 0 && !S_ISDIR(a.mode)) {
        ret = -EUCLEAN; /* an entry naming a free inode */
        blame = record_inode ? dir : 0;
    }
    if (!ret) {
        fs_inode_ref_lookup(fs, ino, 1, &a);
        fs_attr_to_stat(fs, ino, &a, st);
    }
out_unlock:
    if (blame)
        ret = FS_CHECK(fs, blame, ret);
    rwlock_unlock(&fs->mount_lock);
    return ret;
}

int uext4_lookup(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t dir, const char *name,
                 struct stat *st)
{
    return lookup(fs, cr, dir, name, st, true);
}

/* What ext4's readdir never reads, uext4_lookup reads for a readdirplus
 * entry: the entry's inode. A damaged one is refused (-EUCLEAN) and the
 * entry goes out without attributes, but is not recorded as an error of
 * the file system (s_error_count, s_last_error_*, errors=): listing a
 * directory that names it finds nothing wrong on ext4. A lookup of the name
 * (uext4_lookup: ext4_lookup's ext4_iget) still records it. Damage in the
 * directory itself is recorded, as ext4's readdir does. */
int uext4_lookup_listed(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t dir,
                        const char *name, struct stat *st)
{
    return lookup(fs, cr, dir, name, st, false);
}

int uext4_lookup_ino(struct uext4_fs *fs, uint32_t ino, struct stat *st, uint32_t *generation)
{
    struct e2_attr a;
    int ret = 0;

    rwlock_rdlock(&fs->mount_lock);
    /* The bitmap first: the number may be anything, and reading a free
     * or never-used slot of the inode table is no business of a handle. */
    if (!e2_inode_in_use(fs->img, ino))
        ret = -ESTALE;
    if (!ret)
        ret = FS_CHECK(fs, ino, e2_inode_load(fs->img, ino, &a));
    /* An unlinked inode still in use (open, or known to the kernel) never
     * needs a lookup by number: the kernel finds it in its own cache. */
    if (!ret && a.nlink == 0)
        ret = -ESTALE;
    if (!ret) {
        fs_inode_ref_lookup(fs, ino, 1, &a);
        fs_attr_to_stat(fs, ino, &a, st);
        *generation = ino == UEXT4_ROOT_INO ? 0 : a.generation;
    }
    rwlock_unlock(&fs->mount_lock);
    return ret;
}

int uext4_generation(struct uext4_fs *fs, uint32_t ino, uint32_t *generation)
{
    struct e2_attr a;
    int ret;

    if (ino == UEXT4_ROOT_INO) {
        *generation = 0;
        return 0;
    }
    /* What the reference the caller holds recorded (no second inode read
     * per entry reply); otherwise (an O_TMPFILE file) the inode. */
    if (fs_inode_generation(fs, ino, generation))
        return 0;
    rwlock_rdlock(&fs->mount_lock);
    ret = FS_CHECK(fs, ino, e2_inode_get(fs->img, ino, &a));
    rwlock_unlock(&fs->mount_lock);
    if (!ret)
        *generation = a.generation;
    return ret;
}

int uext4_resolve(struct uext4_fs *fs, const char *path, uint32_t *out)
{
    uint32_t ino = UEXT4_ROOT_INO;
    char *copy, *save = NULL, *part;
    int ret = 0;

    if (path[0] != '/')
        return -EINVAL;
    copy = strdup(path);
    if (!copy)
        return -ENOMEM;
    rwlock_rdlock(&fs->mount_lock);
    for (part = strtok_r(copy, "/", &save); part && !ret; part = strtok_r(NULL, "/", &save))
        ret = fs_find_entry(fs, ino, part, &ino);
    rwlock_unlock(&fs->mount_lock);
    free(copy);
    if (!ret)
        *out = ino;
    return ret;
}

/* Parent directory times change with every entry added or removed. */
int fs_touch_dir(struct uext4_fs *fs, uint32_t dir, int nlink_delta)
{
    struct timespec now;

    fs_now(&now);
    return e2_inode_touch_dir(fs->img, dir, &now, nlink_delta);
}

/* Add @name -> @ino to @dir and its index. */
int fs_add_entry(struct uext4_fs *fs, uint32_t dir, const char *name, uint32_t ino, mode_t mode)
{
    struct fs_inode *di = fs_inode_get(fs, dir);
    int ret;

    if (!di)
        return -ENOMEM;
    ret = fs_dir_check(fs, di);
    if (!ret)
        ret = e2_dir_link(fs->img, dir, name, ino, mode);
    if (!ret)
        fs_dir_index_add(di, name, ino, e2_ftype(mode));
    else
        fs_dir_index_free(di); /* the directory may have changed shape */
    fs_inode_put(fs, di);
    return ret;
}

int fs_remove_entry(struct uext4_fs *fs, uint32_t dir, const char *name)
{
    struct fs_inode *di = fs_inode_get(fs, dir);
    int ret;

    if (!di)
        return -ENOMEM;
    ret = fs_dir_check(fs, di);
    if (!ret)
        ret = e2_dir_unlink(fs->img, dir, name);
    if (!ret)
        fs_dir_index_remove(di, name);
    fs_inode_put(fs, di);
    return ret;
}

int fs_retarget_entry(struct uext4_fs *fs, uint32_t dir, const char *name, uint32_t ino,
                      mode_t mode)
{
    struct fs_inode *di = fs_inode_get(fs, dir);
    int ret;

    if (!di)
        return -ENOMEM;
    ret = fs_dir_check(fs, di);
    if (!ret)
        ret = e2_dir_retarget(fs->img, dir, name, ino, mode);
    fs_dir_index_remove(di, name);
    if (!ret)
        fs_dir_index_add(di, name, ino, e2_ftype(mode));
    fs_inode_put(fs, di);
    return ret;
}

void fs_init_owner(struct uext4_fs *fs, const struct fs_cred *fc, const struct e2_attr *da,
                   struct e2_attr *a)
{
    a->uid = fc->uid;
    a->gid = fc->gid;
    if (fs->opts.grpid) {
        a->gid = da->gid;
    } else if (da->mode & S_ISGID) {
        /* setgid directory: the group is inherited, and so is the bit by
         * subdirectories. */
        a->gid = da->gid;
        if (S_ISDIR(a->mode))
            a->mode |= S_ISGID;
    }
    /* ext4_new_inode(): the project of a PROJINHERIT directory. */
    a->projid = e2_has_project(fs->img) && (da->flags & E2_FL_PROJINHERIT) ? da->projid : 0;
    fs_now(&a->atime);
    a->mtime = a->ctime = a->crtime = a->atime;
}

bool fs_crosses_project(struct uext4_fs *fs, const struct e2_attr *da, const struct e2_attr *a)
{
    return e2_has_project(fs->img) && (da->flags & E2_FL_PROJINHERIT) && da->projid != a->projid;
}

/* Common front half of every create: checks, owner, group, mode. */
static int prepare_create(struct uext4_fs *fs, const struct fs_cred *fc, uint32_t dir,
                          const char *name, struct e2_attr *da, struct e2_attr *a)
{
    uint32_t existing;
    int ret = fs_check_name(name);

    if (ret)
        return ret;
    if (fc->uid == FS_NO_ID || fc->gid == FS_NO_ID)
        return -EOVERFLOW; /* the caller has no id in the image */
    ret = fs_dir_access(fs, fc, dir, da, true);
    if (ret)
        return ret;
    ret = fs_may_write(fs);
    if (ret)
        return ret;
    /* In a casefold directory, a name that folds to an existing one. */
    ret = fs_find_entry(fs, dir, name, &existing);
    if (ret == 0)
        return -EEXIST;
    if (ret != -ENOENT)
        return ret;
    ret = e2_name_check(fs->img, da->flags, name, strlen(name));
    if (ret)
        return ret;
    fs_init_owner(fs, fc, da, a);
    return 0;
}

/* Apply the default ACL of @dir (or the umask) to the new inode's mode;
 * store the resulting ACLs on @ino. */
static int inherit_acls(struct uext4_fs *fs, const struct fs_cred *fc, uint32_t dir, mode_t *mode,
                        void **acc, size_t *acc_len, void **def, size_t *def_len)
{
    mode_t m = *mode;
    int ret = fs_acl_inherit(fs, dir, &m, acc, acc_len, def, def_len);

    if (ret < 0)
        return ret;
    if (ret == 0 && !S_ISLNK(m))
        m &= ~(fc->umask & 0777);
    *mode = m;
    return 0;
}

static int store_acls(struct uext4_fs *fs, const struct fs_cred *fc, uint32_t ino, void *acc,
                      size_t acc_len, void *def, size_t def_len)
{
    int ret = 0;

    if (acc_len)
        ret = e2_xattr_set(fs->img, ino, "system.posix_acl_access", acc, acc_len, 0, !fc->root);
    if (!ret && def_len)
        ret = e2_xattr_set(fs->img, ino, "system.posix_acl_default", def, def_len, 0, !fc->root);
    return ret;
}

enum create_kind { CREATE_NODE, CREATE_DIR, CREATE_SYMLINK };

/* The bytes a new inode is charged when it is made: a directory's first
 * block (none when inline), a slow symlink's block. */
static uint64_t new_inode_space(struct uext4_fs *fs, enum create_kind kind, const char *target)
{
    if ((kind == CREATE_DIR && !e2_has_inline_data(fs->img)) ||
        (kind == CREATE_SYMLINK && strlen(target) >= 60))
        return uext4_block_size(fs);
    return 0;
}

/* dquot_initialize(): the new ids' quota entries, for everyone;
 * dquot_alloc_inode(): hard limits, which CAP_SYS_RESOURCE passes. */
static int quota_may_create(struct uext4_fs *fs, const struct fs_cred *fc, const struct e2_attr *a,
                            uint64_t space)
{
    return e2_quota_may_create(fs->img, a, space, !fc->root);
}

/* ext4_new_inode(): a new inode takes the inheritable flags of its
 * directory (chattr +A, +S, +D, ...) that suit its type; @a, the new
 * inode's attributes, gets them too. */
static int inherit_flags(struct uext4_fs *fs, uint32_t ino, struct e2_attr *a,
                         const struct e2_attr *da)
{
    uint32_t fl = fs_mask_flags(a->mode, da->flags & E2_FL_INHERITED);
    struct e2_attr cur;
    int ret;

    if (!fl)
        return 0;
    ret = e2_inode_get(fs->img, ino, &cur);
    if (ret)
        return ret;
    cur.flags |= fl;
    a->flags |= fl;
    return e2_inode_set(fs->img, ino, &cur, E2_A_FLAGS);
}

/* Allocate and write the new inode of @kind. A node's @a becomes its
 * attributes as written (*@known); the others are read back at the end. */
static int make_inode(struct uext4_fs *fs, enum create_kind kind, uint32_t dir, const char *target,
                      struct e2_attr *a, uint32_t *ino, bool *known)
{
    *known = false;
    switch (kind) {
    case CREATE_DIR:
        return e2_inode_new_dir(fs->img, dir, a, ino);
    case CREATE_SYMLINK:
        return e2_inode_new_symlink(fs->img, dir, a, target, ino);
    case CREATE_NODE:
        break;
    }
    *known = true;
    return e2_inode_new(fs->img, dir, a, ino, a);
}

/* A new named inode: the default ACL applied, the inode made, its ACLs
 * and flags stored, the entry added, the directory touched; @a gets the
 * new inode's attributes. Under the mount lock held for writing. */
static int create_locked(struct uext4_fs *fs, const struct fs_cred *fc, uint32_t dir,
                         const struct e2_attr *da, const char *name, const char *target,
                         enum create_kind kind, struct e2_attr *a, uint32_t *ino)
{
    void *acc = NULL, *def = NULL;
    size_t acc_len = 0, def_len = 0;
    bool known;
    int ret = inherit_acls(fs, fc, dir, &a->mode, &acc, &acc_len, &def, &def_len);

    if (!ret)
        ret = make_inode(fs, kind, dir, target, a, ino, &known);
    if (ret)
        goto out_free;
    ret = store_acls(fs, fc, *ino, acc, acc_len, def, def_len);
    known = known && !acc_len && !def_len; /* an xattr block changes i_blocks */
    if (!ret)
        ret = inherit_flags(fs, *ino, a, da);
    if (!ret)
        ret = fs_add_entry(fs, dir, name, *ino, a->mode);
    if (ret) {
        e2_inode_free(fs->img, *ino);
        goto out_free;
    }
    ret = fs_touch_dir(fs, dir, kind == CREATE_DIR ? 1 : 0);
    if (!ret && !known)
        ret = e2_inode_get(fs->img, *ino, a);
out_free:
    free(acc);
    free(def);
    return ret;
}

static int do_create(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t dir,
                     const char *name, mode_t mode, dev_t rdev, const char *target,
                     enum create_kind kind, struct stat *st)
{
    struct fs_cred fc;
    struct e2_attr da, a = {0};
    uint32_t ino = 0;
    int ret;

    fs_cred_from(fs, cr, &fc);
    a.mode = mode;
    a.rdev = rdev;
    fs_commit_if_overdue(fs);
    rwlock_wrlock(&fs->mount_lock);
    ret = prepare_create(fs, &fc, dir, name, &da, &a);
    if (!ret)
        ret = quota_may_create(fs, &fc, &a, new_inode_space(fs, kind, target));
    if (!ret)
        ret = create_locked(fs, &fc, dir, &da, name, target, kind, &a, &ino);
    if (ret)
        goto out_unlock;
    /* The lookup reference first: it keeps the in-memory inode alive.
     * @a is the inode as written or read back (create_locked). */
    fs_inode_ref_lookup(fs, ino, 1, &a);
    if (kind == CREATE_NODE && S_ISREG(a.mode) && fs->inline_files) {
        struct fs_inode *fi = fs_inode_get(fs, ino);
        if (fi) {
            fi->may_inline = true; /* new inode: nobody else can hold its lock */
            fs_inode_put(fs, fi);
        }
    }
    fs_attr_to_stat(fs, ino, &a, st);
out_unlock:
    ret = FS_CHECK(fs, dir, ret);
    rwlock_unlock(&fs->mount_lock);
    return ret;
}

int uext4_mknod(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t dir, const char *name,
                mode_t mode, dev_t rdev, struct stat *st)
{
    switch (mode & S_IFMT) {
    case S_IFREG:
    case S_IFIFO:
    case S_IFSOCK:
        rdev = 0;
        break;
    case S_IFCHR:
    case S_IFBLK:
        break;
    case 0:
        mode |= S_IFREG;
        break;
    default:
        return -EINVAL;
    }
    return do_create(fs, cr, dir, name, mode, rdev, NULL, CREATE_NODE, st);
}

int uext4_tmpfile(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t dir, mode_t mode,
                  int flags, struct stat *st)
{
    void *acc = NULL, *def = NULL;
    size_t acc_len = 0, def_len = 0;
    struct fs_cred fc;
    struct e2_attr da, a = {.mode = S_IFREG | (mode & 07777)};
    uint32_t ino = 0;
    int ret;

    fs_cred_from(fs, cr, &fc);
    fs_commit_if_overdue(fs);
    rwlock_wrlock(&fs->mount_lock);
    ret = fs_dir_access(fs, &fc, dir, &da, true);
    if (!ret && (fc.uid == 0xffffffffu || fc.gid == 0xffffffffu))
        ret = -EOVERFLOW; /* the caller has no id in the image */
    if (!ret)
        ret = fs_may_write(fs);
    if (ret)
        goto out_unlock;
    fs_init_owner(fs, &fc, &da, &a);
    ret = quota_may_create(fs, &fc, &a, 0);
    if (!ret)
        ret = inherit_acls(fs, &fc, dir, &a.mode, &acc, &acc_len, &def, &def_len);
    if (!ret)
        ret = e2_inode_new(fs->img, dir, &a, &ino, NULL);
    if (ret)
        goto out_unlock;
    ret = store_acls(fs, &fc, ino, acc, acc_len, def, def_len);
    if (!ret)
        ret = inherit_flags(fs, ino, &a, &da);
    if (ret) {
        e2_inode_free(fs->img, ino);
        goto out_unlock;
    }
    /* The reference first, so that the last link going puts the inode on
     * the orphan list (in this transaction) instead of freeing it. As in
     * ext4, the directory itself does not change. */
    fs_inode_ref_lookup(fs, ino, 1, NULL);
    a.nlink = 0;
    ret = e2_inode_set(fs->img, ino, &a, E2_A_NLINK);
    if (!ret)
        ret = fs_inode_unlinked(fs, ino);
    if (ret) {
        uext4_forget(fs, ino, 1);
        e2_inode_free(fs->img, ino);
        goto out_unlock;
    }
    ret = e2_inode_get(fs->img, ino, &a);
    if (ret) {
        uext4_forget(fs, ino, 1); /* unlinked: frees it */
        goto out_unlock;
    }
    fs_inode_set_linkable(fs, ino, !(flags & O_EXCL));
    fs_attr_to_stat(fs, ino, &a, st);
out_unlock:
    ret = FS_CHECK(fs, dir, ret);
    rwlock_unlock(&fs->mount_lock);
    free(acc);
    free(def);
    return ret;
}

int uext4_mkdir(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t dir, const char *name,
                mode_t mode, struct stat *st)
{
    return do_create(fs, cr, dir, name, S_IFDIR | (mode & 07777 & ~(mode_t)S_ISGID), 0, NULL,
                     CREATE_DIR, st);
}

int uext4_symlink(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t dir, const char *name,
                  const char *target, struct stat *st)
{
    size_t len = strlen(target);

    if (len == 0)
        return -ENOENT;
    if (len >= uext4_block_size(fs))
        return -ENAMETOOLONG;
    return do_create(fs, cr, dir, name, S_IFLNK | 0777, 0, target, CREATE_SYMLINK, st);
}

int uext4_link(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t ino, uint32_t newdir,
               const char *newname, struct stat *st)
{
    struct fs_cred fc;
    struct e2_attr da, a, dummy;
    int ret;

    fs_cred_from(fs, cr, &fc);
    fs_commit_if_overdue(fs);
    rwlock_wrlock(&fs->mount_lock);
    ret = e2_inode_get(fs->img, ino, &a);
    if (ret)
        goto out_unlock;
    if (S_ISDIR(a.mode)) {
        ret = -EPERM;
        goto out_unlock;
    }
    dummy.mode = a.mode & S_IFMT;
    ret = prepare_create(fs, &fc, newdir, newname, &da, &dummy);
    /* vfs_link(): no new names for an immutable or append-only inode. */
    if (!ret && (a.flags & (E2_FL_IMMUTABLE | E2_FL_APPEND)))
        ret = -EPERM;
    /* ext4_link(): not into another project's tree. */
    if (!ret && fs_crosses_project(fs, &da, &a))
        ret = -EXDEV;
    if (ret)
        goto out_unlock;
    ret = fs_may_hardlink(fs, &fc, ino, &a);
    if (ret)
        goto out_unlock;
    if (a.nlink >= E2_LINK_MAX) {
        ret = -EMLINK;
        goto out_unlock;
    }
    /* No link left: only an O_TMPFILE file may get one, taken off the
     * orphan list in the same transaction as its name. */
    if (a.nlink == 0 && !fs_inode_is_linkable(fs, ino)) {
        ret = -ENOENT;
        goto out_unlock;
    }
    ret = fs_add_entry(fs, newdir, newname, ino, a.mode);
    if (!ret && a.nlink == 0)
        ret = fs_inode_relink(fs, ino);
    if (ret)
        goto out_unlock;
    a.nlink++;
    fs_now(&a.ctime);
    ret = e2_inode_set(fs->img, ino, &a, E2_A_NLINK | E2_A_CTIME);
    if (!ret)
        ret = fs_touch_dir(fs, newdir, 0);
    if (!ret) {
        fs_inode_ref_lookup(fs, ino, 1, &a);
        fs_attr_to_stat(fs, ino, &a, st);
    }
out_unlock:
    ret = FS_CHECK(fs, ino, ret);
    rwlock_unlock(&fs->mount_lock);
    return ret;
}

/* Drop one link of @ino (all of a directory's); free or defer it at 0. */
int fs_drop_link(struct uext4_fs *fs, uint32_t ino, const struct e2_attr *a0)
{
    struct e2_attr a = *a0;
    int ret;

    a.nlink = S_ISDIR(a.mode) || a.nlink == 0 ? 0 : a.nlink - 1;
    fs_now(&a.ctime);
    ret = e2_inode_set(fs->img, ino, &a, E2_A_NLINK | E2_A_CTIME);
    if (ret || a.nlink)
        return ret;
    return fs_inode_unlinked(fs, ino);
}

static int do_remove(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t dir,
                     const char *name, bool is_rmdir)
{
    struct fs_cred fc;
    struct e2_attr da, a;
    uint32_t ino;
    int ret;

    if (!strcmp(name, "."))
        return is_rmdir ? -EINVAL : -EISDIR;
    if (!strcmp(name, ".."))
        return is_rmdir ? -ENOTEMPTY : -EISDIR;
    fs_cred_from(fs, cr, &fc);
    fs_commit_if_overdue(fs);
    rwlock_wrlock(&fs->mount_lock);
    ret = fs_dir_access(fs, &fc, dir, &da, true);
    if (!ret)
        ret = fs_find_entry(fs, dir, name, &ino);
    if (!ret)
        ret = e2_inode_get(fs->img, ino, &a);
    if (!ret)
        ret = fs_may_delete(fs, &fc, &da, &a);
    if (!ret)
        ret = fs_may_write(fs);
    if (ret)
        goto out_unlock;
    if (is_rmdir && !S_ISDIR(a.mode)) {
        ret = -ENOTDIR;
        goto out_unlock;
    }
    if (!is_rmdir && S_ISDIR(a.mode)) {
        ret = -EISDIR;
        goto out_unlock;
    }
    /* The last link: a file whose blocks cannot be freed keeps its name
     * (the corruption is the file's, not the directory's). */
    if (is_rmdir || a.nlink <= 1) {
        ret = FS_CHECK(fs, ino, e2_inode_may_free(fs->img, ino));
        if (ret)
            goto out_unlock_checked;
    }
    if (is_rmdir) {
        if (ino == UEXT4_ROOT_INO) {
            ret = -EBUSY;
            goto out_unlock;
        }
        ret = fs_dir_is_empty(fs, ino);
        if (ret <= 0) {
            ret = ret ? ret : -ENOTEMPTY;
            goto out_unlock;
        }
    }
    ret = fs_remove_entry(fs, dir, name);
    if (!ret)
        ret = fs_touch_dir(fs, dir, is_rmdir ? -1 : 0);
    if (!ret)
        ret = fs_drop_link(fs, ino, &a);
out_unlock:
    ret = FS_CHECK(fs, dir, ret);
out_unlock_checked:
    rwlock_unlock(&fs->mount_lock);
    return ret;
}

int uext4_unlink(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t dir, const char *name)
{
    return do_remove(fs, cr, dir, name, false);
}

int uext4_rmdir(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t dir, const char *name)
{
    return do_remove(fs, cr, dir, name, true);
}

ssize_t uext4_readlink(struct uext4_fs *fs, uint32_t ino, char *buf, size_t size)
{
    int ret;

    rwlock_rdlock(&fs->mount_lock);
    ret = FS_CHECK(fs, ino, e2_readlink(fs->img, ino, buf, size));
    rwlock_unlock(&fs->mount_lock);
    return ret;
}
