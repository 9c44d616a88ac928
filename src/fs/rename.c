/* rename(2) and renameat2's RENAME_NOREPLACE / RENAME_EXCHANGE /
 * RENAME_WHITEOUT. Runs with
 * the mount lock held for writing, so the whole change is atomic to every
 * other operation. */
#include "fs/fs_internal.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

struct rn_side {
    uint32_t dir;
    const char *name;
    struct e2_attr da; /* the directory */
    uint32_t ino;      /* the entry's inode, 0 if none */
    struct e2_attr a;
};

/* -EINVAL if @ino (a directory) is @dir or one of its ancestors. */
static int check_not_ancestor(struct uext4_fs *fs, uint32_t ino, uint32_t dir)
{
    unsigned depth = 0;

    while (dir != UEXT4_ROOT_INO) {
        uint32_t parent;
        int ret;
        if (dir == ino)
            return -EINVAL;
        ret = fs_find_entry(fs, dir, "..", &parent);
        if (ret)
            return ret == -ENOENT ? -EUCLEAN : ret;
        if (++depth > 65536 || parent == dir)
            return -EUCLEAN; /* a loop in the tree */
        dir = parent;
    }
    return ino == UEXT4_ROOT_INO ? -EINVAL : 0;
}

/* Point directory @ino's ".." at @parent. */
static int set_dotdot(struct uext4_fs *fs, uint32_t ino, uint32_t parent)
{
    int ret = fs_dir_check_ino(fs, ino);

    return ret ? ret : e2_dir_set_dotdot(fs->img, ino, parent);
}

/* A directory moving to a new parent: fix its ".." and both link counts. */
static int move_dir(struct uext4_fs *fs, uint32_t ino, uint32_t from, uint32_t to)
{
    int ret;

    if (from == to)
        return 0;
    ret = set_dotdot(fs, ino, to);
    if (!ret)
        ret = fs_touch_dir(fs, from, -1);
    if (!ret)
        ret = fs_touch_dir(fs, to, +1);
    return ret;
}

static int touch_ctime(struct uext4_fs *fs, uint32_t ino, struct e2_attr *a)
{
    fs_now(&a->ctime);
    return e2_inode_set(fs->img, ino, a, E2_A_CTIME);
}

static int do_exchange(struct uext4_fs *fs, struct rn_side *s, struct rn_side *d)
{
    int ret = fs_retarget_entry(fs, s->dir, s->name, d->ino, d->a.mode);

    if (!ret)
        ret = fs_retarget_entry(fs, d->dir, d->name, s->ino, s->a.mode);
    if (!ret && S_ISDIR(s->a.mode) != S_ISDIR(d->a.mode)) {
        /* One directory changes parent; the link counts follow it. */
        if (S_ISDIR(s->a.mode))
            ret = move_dir(fs, s->ino, s->dir, d->dir);
        else
            ret = move_dir(fs, d->ino, d->dir, s->dir);
    } else if (!ret && S_ISDIR(s->a.mode) && s->dir != d->dir) {
        ret = set_dotdot(fs, s->ino, d->dir);
        if (!ret)
            ret = set_dotdot(fs, d->ino, s->dir);
    }
    if (!ret)
        ret = fs_touch_dir(fs, s->dir, 0);
    if (!ret && d->dir != s->dir)
        ret = fs_touch_dir(fs, d->dir, 0);
    if (!ret)
        ret = touch_ctime(fs, s->ino, &s->a);
    if (!ret)
        ret = touch_ctime(fs, d->ino, &d->a);
    return ret;
}

/* RENAME_WHITEOUT: the inode that takes the source's name, a character
 * device 0/0 with no permission bits (overlayfs's "deleted here"), owned
 * as any new file in the source directory. Made before anything changes,
 * so that a full image fails the rename untouched. */
static int new_whiteout(struct uext4_fs *fs, const struct fs_cred *fc, const struct rn_side *s,
                        uint32_t *ino)
{
    struct e2_attr a = {.mode = S_IFCHR, .rdev = 0};
    int ret;

    if (fc->uid == 0xffffffffu || fc->gid == 0xffffffffu)
        return -EOVERFLOW; /* the caller has no id in the image */
    fs_init_owner(fs, fc, &s->da, &a);
    /* As any create: the caller's ids may be new to the quota files. */
    ret = e2_quota_may_create(fs->img, &a, 0, !fc->root);
    return ret ? ret : e2_inode_new(fs->img, s->dir, &a, ino, NULL);
}

/* @whiteout: 0, or the inode to leave at the source name. */
static int do_move(struct uext4_fs *fs, struct rn_side *s, struct rn_side *d, uint32_t whiteout)
{
    int ret;

    if (d->ino) {
        if (S_ISDIR(s->a.mode) && !S_ISDIR(d->a.mode))
            return -ENOTDIR;
        if (!S_ISDIR(s->a.mode) && S_ISDIR(d->a.mode))
            return -EISDIR;
        if (S_ISDIR(d->a.mode)) {
            ret = fs_dir_is_empty(fs, d->ino);
            if (ret <= 0)
                return ret ? ret : -ENOTEMPTY;
        }
        ret = fs_retarget_entry(fs, d->dir, d->name, s->ino, s->a.mode);
    } else {
        if (S_ISDIR(s->a.mode) && s->dir != d->dir && d->da.nlink >= E2_LINK_MAX)
            return -EMLINK;
        ret = fs_add_entry(fs, d->dir, d->name, s->ino, s->a.mode);
    }
    if (ret)
        return ret;
    if (whiteout)
        ret = fs_retarget_entry(fs, s->dir, s->name, whiteout, S_IFCHR);
    else
        ret = fs_remove_entry(fs, s->dir, s->name);
    if (!ret && S_ISDIR(s->a.mode))
        ret = move_dir(fs, s->ino, s->dir, d->dir);
    if (!ret)
        ret = fs_touch_dir(fs, s->dir, 0);
    if (!ret && d->dir != s->dir)
        ret = fs_touch_dir(fs, d->dir, d->ino && S_ISDIR(d->a.mode) ? -1 : 0);
    else if (!ret && d->ino && S_ISDIR(d->a.mode))
        ret = fs_touch_dir(fs, d->dir, -1);
    if (!ret)
        ret = touch_ctime(fs, s->ino, &s->a);
    if (!ret && d->ino)
        ret = fs_drop_link(fs, d->ino, &d->a);
    return ret;
}

/* Both sides' inodes: the source's must exist, the destination's is 0
 * when its name is free. Searching needs write and search permission on
 * both directories (they will change). *@blame: the destination directory
 * when its blocks are found to lie. */
static int look_up_sides(struct uext4_fs *fs, const struct fs_cred *fc, struct rn_side *s,
                         struct rn_side *d, uint32_t *blame)
{
    int ret;

    if (!strcmp(s->name, ".") || !strcmp(s->name, "..") || !strcmp(d->name, ".") ||
        !strcmp(d->name, ".."))
        return -EBUSY;
    ret = fs_check_name(d->name);
    if (!ret)
        ret = fs_dir_access(fs, fc, s->dir, &s->da, true);
    if (!ret)
        ret = fs_dir_access(fs, fc, d->dir, &d->da, true);
    if (!ret)
        ret = fs_find_entry(fs, s->dir, s->name, &s->ino);
    if (!ret)
        ret = e2_inode_get(fs->img, s->ino, &s->a);
    if (ret)
        return ret;
    ret = fs_find_entry(fs, d->dir, d->name, &d->ino);
    if (ret == -EUCLEAN)
        *blame = d->dir;
    if (ret == -ENOENT) {
        d->ino = 0;
        return 0;
    }
    return ret ? ret : e2_inode_get(fs->img, d->ino, &d->a);
}

/* A directory @ino about to get a new "..": its blocks checked now, before
 * the entries change (*@blame then names it). */
static int may_reparent(struct uext4_fs *fs, uint32_t ino, uint32_t *blame)
{
    int ret = fs_dir_check_ino(fs, ino);

    if (ret == -EUCLEAN)
        *blame = ino;
    return ret;
}

/* Whether the caller may make this rename of two different inodes: sticky
 * directories, a directory below itself or given a new "..", a strict
 * casefold name, another project, a read-only image, a directory whose
 * blocks lie (*@blame). */
static int may_rename(struct uext4_fs *fs, const struct fs_cred *fc, struct rn_side *s,
                      struct rn_side *d, unsigned flags, uint32_t *blame)
{
    int ret;

    ret = fs_may_delete(fs, fc, &s->da, &s->a);
    if (!ret && d->ino)
        ret = fs_may_delete(fs, fc, &d->da, &d->a);
    /* Replacing the last link of a file whose blocks cannot be freed. */
    if (!ret && d->ino && !(flags & UEXT4_RENAME_EXCHANGE) &&
        (S_ISDIR(d->a.mode) || d->a.nlink <= 1))
        ret = e2_inode_may_free(fs->img, d->ino);
    if (ret)
        return ret;
    /* A directory may not move below itself. */
    if (S_ISDIR(s->a.mode) && s->dir != d->dir) {
        ret = check_not_ancestor(fs, s->ino, d->dir);
        /* Moving a directory to a new parent rewrites its "..". */
        if (!ret)
            ret = fs_permission(fs, fc, s->ino, &s->a, W_OK);
        if (!ret)
            ret = may_reparent(fs, s->ino, blame);
    }
    if (!ret && (flags & UEXT4_RENAME_EXCHANGE) && S_ISDIR(d->a.mode) && s->dir != d->dir) {
        ret = check_not_ancestor(fs, d->ino, s->dir);
        if (!ret)
            ret = fs_permission(fs, fc, d->ino, &d->a, W_OK);
        if (!ret)
            ret = may_reparent(fs, d->ino, blame);
    }
    /* A new name in a casefold directory of a strict image (ext4_add_entry). */
    if (!ret && !d->ino)
        ret = e2_name_check(fs->img, d->da.flags, d->name, strlen(d->name));
    /* ext4_rename(), ext4_cross_rename(): not into another project. */
    if (!ret && (fs_crosses_project(fs, &d->da, &s->a) ||
                 ((flags & UEXT4_RENAME_EXCHANGE) && fs_crosses_project(fs, &s->da, &d->a))))
        ret = -EXDEV;
    if (!ret)
        ret = fs_may_write(fs);
    return ret;
}

/* RENAME_WHITEOUT: the move, with a new whiteout inode at the source name. */
static int move_with_whiteout(struct uext4_fs *fs, const struct fs_cred *fc, struct rn_side *s,
                              struct rn_side *d)
{
    uint32_t wh;
    int ret;

    ret = new_whiteout(fs, fc, s, &wh);
    if (ret)
        return ret;
    ret = do_move(fs, s, d, wh);
    /* Not linked unless the source entry was retargeted: the first steps
     * are the ones that fail (no space, bad destination). */
    if (ret && fs_find_entry(fs, s->dir, s->name, &s->ino) == 0 && s->ino != wh)
        e2_inode_free(fs->img, wh);
    return ret;
}

static int rename_locked(struct uext4_fs *fs, const struct fs_cred *fc, struct rn_side *s,
                         struct rn_side *d, unsigned flags, uint32_t *blame)
{
    int ret;

    ret = look_up_sides(fs, fc, s, d, blame);
    if (ret)
        return ret;
    if ((flags & UEXT4_RENAME_EXCHANGE) && !d->ino)
        return -ENOENT;
    if ((flags & UEXT4_RENAME_NOREPLACE) && d->ino)
        return -EEXIST;
    if (d->ino == s->ino)
        return 0; /* the same file: POSIX says do nothing */
    ret = may_rename(fs, fc, s, d, flags, blame);
    if (ret)
        return ret;
    if (flags & UEXT4_RENAME_EXCHANGE)
        return do_exchange(fs, s, d);
    if (flags & UEXT4_RENAME_WHITEOUT)
        return move_with_whiteout(fs, fc, s, d);
    return do_move(fs, s, d, 0);
}

int uext4_rename(struct uext4_fs *fs, const struct uext4_cred *cr, uint32_t dir, const char *name,
                 uint32_t newdir, const char *newname, unsigned flags)
{
    struct rn_side s = {.dir = dir, .name = name}, d = {.dir = newdir, .name = newname};
    struct fs_cred fc;
    uint32_t blame = dir; /* where corruption is recorded */
    int ret;

    if (flags & ~(UEXT4_RENAME_NOREPLACE | UEXT4_RENAME_EXCHANGE | UEXT4_RENAME_WHITEOUT))
        return -EINVAL;
    /* EXCHANGE leaves nothing to replace, or to white out. */
    if ((flags & UEXT4_RENAME_EXCHANGE) &&
        (flags & (UEXT4_RENAME_NOREPLACE | UEXT4_RENAME_WHITEOUT)))
        return -EINVAL;
    fs_cred_from(fs, cr, &fc);
    fs_commit_if_overdue(fs);
    rwlock_wrlock(&fs->mount_lock);
    ret = rename_locked(fs, &fc, &s, &d, flags, &blame);
    ret = FS_CHECK(fs, blame, ret);
    rwlock_unlock(&fs->mount_lock);
    return ret;
}
