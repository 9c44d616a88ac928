/* Directory entries: iterate, add, remove, retarget. Name lookups are the
 * fs layer's business (it indexes names; ext2fs_lookup scans linearly). */
#include "e2/iomgr.h"
#include "e2/e2_internal.h"
#include "base/log.h"

#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct iter_ctx {
    e2_dirent_fn fn;
    void *ctx;
};

static int iter_proc(ext2_ino_t dir, int entry, struct ext2_dir_entry *de, int offset,
                     int blocksize, char *buf, void *priv)
{
    struct iter_ctx *ic = priv;
    unsigned len = ext2fs_dirent_name_len(de);

    if (de->inode == 0)
        return 0;
    if (ic->fn(ic->ctx, de->name, len, de->inode, ext2fs_dirent_file_type(de)))
        return DIRENT_ABORT;
    return 0;
}

/* libext2fs wants DIRENT_FLAG_INCLUDE_INLINE_DATA exactly for inline
 * directories: it reports a block directory as corrupt when given it. */
static errcode_t iterate_locked(struct e2_image *img, uint32_t dir, int flags,
                                int (*fn)(ext2_ino_t, int, struct ext2_dir_entry *, int, int,
                                          char *, void *),
                                void *priv)
{
    struct ext2_inode in;
    errcode_t err = ext2fs_read_inode(img->fs, dir, &in);

    if (err)
        return err;
    if (!LINUX_S_ISDIR(in.i_mode))
        return EXT2_ET_NO_DIRECTORY;
    if (in.i_flags & EXT4_INLINE_DATA_FL)
        flags |= DIRENT_FLAG_INCLUDE_INLINE_DATA;
    return ext2fs_dir_iterate2(img->fs, dir, flags, NULL, fn, priv);
}

int e2_dir_iterate(struct e2_image *img, uint32_t dir, e2_dirent_fn fn, void *ctx)
{
    struct iter_ctx ic = {fn, ctx};
    int ret;

    e2_lock(img);
    ret = e2_errno(iterate_locked(img, dir, 0, iter_proc, &ic));
    e2_unlock(img);
    return ret;
}

unsigned e2_ftype(mode_t mode)
{
    switch (mode & S_IFMT) {
    case S_IFREG:
        return EXT2_FT_REG_FILE;
    case S_IFDIR:
        return EXT2_FT_DIR;
    case S_IFCHR:
        return EXT2_FT_CHRDEV;
    case S_IFBLK:
        return EXT2_FT_BLKDEV;
    case S_IFIFO:
        return EXT2_FT_FIFO;
    case S_IFSOCK:
        return EXT2_FT_SOCK;
    case S_IFLNK:
        return EXT2_FT_SYMLINK;
    }
    return EXT2_FT_UNKNOWN;
}

unsigned e2_ftype_to_dtype(unsigned ftype)
{
    static const unsigned char map[] = {
        [EXT2_FT_UNKNOWN] = DT_UNKNOWN, [EXT2_FT_REG_FILE] = DT_REG, [EXT2_FT_DIR] = DT_DIR,
        [EXT2_FT_CHRDEV] = DT_CHR,      [EXT2_FT_BLKDEV] = DT_BLK,   [EXT2_FT_FIFO] = DT_FIFO,
        [EXT2_FT_SOCK] = DT_SOCK,       [EXT2_FT_SYMLINK] = DT_LNK,
    };
    return ftype < sizeof(map) ? map[ftype] : DT_UNKNOWN;
}

/* An inline directory that is full grows into system.data, up to the
 * inode's capacity, before it is converted to a block (the kernel's
 * ext4_update_inline_dir): the new space extends the last entry of the
 * system.data part, or becomes one empty entry. Returns -ENOSPC when there
 * is no room worth growing into. */
static int grow_inline_dir_locked(struct e2_image *img, uint32_t dir)
{
    ext2_filsys fs = img->fs;
    struct ext2_inode_large in;
    size_t cap, old_len, new_len;
    void *old = NULL;
    char *buf;
    int ret;

    ret = e2_inline_capacity_locked(img, dir, &cap);
    if (!ret)
        ret = e2_inline_get_ea_locked(img, dir, &old, &old_len);
    if (ret)
        return ret;
    new_len = cap > EXT4_MIN_INLINE_DATA_SIZE ? (cap - EXT4_MIN_INLINE_DATA_SIZE) & ~(size_t)3 : 0;
    if (new_len <= old_len || new_len - old_len <= EXT2_DIR_REC_LEN(1)) {
        ext2fs_free_mem(&old);
        return -ENOSPC;
    }
    buf = calloc(1, new_len);
    if (!buf) {
        ext2fs_free_mem(&old);
        return -ENOMEM;
    }
    if (old_len)
        memcpy(buf, old, old_len);
    ext2fs_free_mem(&old);
    if (old_len) {
        struct ext2_dir_entry *de = NULL;
        unsigned off = 0, rec = 0;
        while (off < old_len) {
            de = (struct ext2_dir_entry *)(buf + off);
            if (ext2fs_get_rec_len(fs, de, &rec) || rec < 8 || off + rec > old_len) {
                free(buf);
                return -EUCLEAN;
            }
            off += rec;
        }
        ret = e2_errno(ext2fs_set_rec_len(fs, rec + (unsigned)(new_len - old_len), de));
    } else {
        struct ext2_dir_entry *de = (struct ext2_dir_entry *)buf;
        de->inode = 0;
        ret = e2_errno(ext2fs_set_rec_len(fs, (unsigned)new_len, de));
    }
    if (!ret)
        ret = e2_inline_set_ea_locked(img, dir, buf, new_len);
    free(buf);
    if (ret)
        return ret;
    ret = e2_read_inode_locked(img, dir, &in);
    if (ret)
        return ret;
    in.i_size = (uint32_t)(EXT4_MIN_INLINE_DATA_SIZE + new_len);
    return e2_write_inode_locked(img, dir, &in);
}

/* i_flags of directory @dir, 0 if unreadable (the walk that follows
 * reports that). */
static uint32_t dir_flags_locked(struct e2_image *img, uint32_t dir)
{
    struct ext2_inode in;

    return ext2fs_read_inode(img->fs, dir, &in) ? 0 : in.i_flags;
}

static bool is_inline_dir_locked(struct e2_image *img, uint32_t dir)
{
    struct ext2_inode in;

    return !ext2fs_read_inode(img->fs, dir, &in) && (in.i_flags & EXT4_INLINE_DATA_FL);
}

/* The kernel indexes a directory when its one block is full. */
static bool can_index_locked(struct e2_image *img, uint32_t dir)
{
    struct ext2_inode in;

    return ext2fs_has_feature_dir_index(img->fs->super) && !ext2fs_read_inode(img->fs, dir, &in) &&
           !(in.i_flags & (EXT2_INDEX_FL | EXT4_INLINE_DATA_FL)) &&
           EXT2_I_SIZE(&in) == img->fs->blocksize;
}

/* Add a block to the full directory @dir (an inline directory becomes a
 * block one) and link @name there. Without a journal, held and written in
 * crash order (iomgr.h): the new block, then the inode. libext2fs writes
 * the inode first and more than once; an inline directory's with its
 * entries and its ".." cleared before the block holding them exists. */
static errcode_t expand_and_link_locked(struct e2_image *img, uint32_t dir, const char *name,
                                        uint32_t ino, int ftype)
{
    uint64_t last = e2_inode_block(img->fs, dir);
    errcode_t err, rerr;

    e2_iom_hold(img->fs->io);
    err = ext2fs_expand_dir(img->fs, dir);
    rerr = e2_iom_release(img->fs->io, &last, 1);
    if (!err)
        err = rerr;
    if (!err)
        err = ext2fs_link(img->fs, dir, name, ino, ftype);
    return err;
}

/* ext2fs_link(), and what a full directory needs before it can take the
 * name: an inline directory grown, a linear one indexed, a block added.
 * @unfoldable: a name a casefold directory cannot hash (not indexed for
 * it). 0 or -errno. */
static int link_by_libext2fs_locked(struct e2_image *img, uint32_t dir, const char *name,
                                    uint32_t ino, int ftype, bool unfoldable)
{
    errcode_t err = ext2fs_link(img->fs, dir, name, ino, ftype);
    int ret;

    if (err == EXT2_ET_DIR_NO_SPACE && is_inline_dir_locked(img, dir)) {
        ret = grow_inline_dir_locked(img, dir);
        if (ret && ret != -ENOSPC)
            return ret;
        if (!ret)
            err = ext2fs_link(img->fs, dir, name, ino, ftype);
    }
    if (err == EXT2_ET_DIR_NO_SPACE && !unfoldable && can_index_locked(img, dir)) {
        ret = e2_dir_make_indexed_locked(img, dir);
        if (ret && ret != -EOPNOTSUPP)
            return ret;
        if (!ret)
            err = ext2fs_link(img->fs, dir, name, ino, ftype);
    }
    if (err == EXT2_ET_DIR_NO_SPACE && (dir_flags_locked(img, dir) & EXT2_INDEX_FL)) {
        /* ext2fs_link splits leaves and index nodes itself; it says "no
         * space" only when the index is as deep as ext4 allows (two levels
         * below the root with large_dir, one without). A block appended
         * here would be outside the index (e2fsck: "not referenced"), so
         * ENOSPC, as the kernel's "index full". */
        log_warn("'%s': directory inode %u: its htree index is full (%s); no entry added",
                 img->path, dir,
                 ext2fs_has_feature_largedir(img->fs->super)
                     ? "3 levels, the most large_dir allows"
                     : "2 levels, the most without large_dir");
        return e2_errno(err);
    }
    if (err == EXT2_ET_DIR_NO_SPACE)
        err = expand_and_link_locked(img, dir, name, ino, ftype);
    return e2_errno(err);
}

int e2_dir_link(struct e2_image *img, uint32_t dir, const char *name, uint32_t ino, mode_t mode)
{
    int ftype = (int)e2_ftype(mode), ret;
    uint32_t dflags;
    bool unfoldable;

    e2_lock(img);
    if (img->read_only) {
        ret = e2_errno(EXT2_ET_RO_FILSYS);
        goto out_unlock;
    }
    /* A name that is not UTF-8 in a casefold directory (allowed without
     * the strict flag): libext2fs 1.47 cannot hash it, so its ext2fs_link
     * fails on an indexed directory; a linear one is not indexed for it. */
    dflags = dir_flags_locked(img, dir);
    unfoldable = (dflags & EXT4_CASEFOLD_FL) && !e2_name_is_foldable(img->fs, name, strlen(name));
    if (unfoldable && (dflags & EXT2_INDEX_FL)) {
        e2_unlock(img);
        return -EINVAL;
    }
    ret = (dflags & EXT2_INDEX_FL)
              ? e2_dir_link_indexed_locked(img, dir, name, ino, (unsigned)ftype)
              : -EAGAIN;
    if (ret == -EAGAIN)
        ret = link_by_libext2fs_locked(img, dir, name, ino, ftype, unfoldable);
out_unlock:
    e2_step_end_locked(img);
    e2_unlock(img);
    return ret;
}

/* Remove entry @de of length @rec from its block @buf as the kernel's
 * ext4_generic_delete_entry() does: merge it into the previous entry of the
 * block (at @prev_off) and wipe it whole, or, first in its block, clear its
 * inode and wipe all but rec_len. (ext2fs_unlink leaves the name behind.) */
static int delete_entry(ext2_filsys fs, char *buf, int prev_off, struct ext2_dir_entry *de,
                        unsigned rec)
{
    if (prev_off >= 0) {
        struct ext2_dir_entry *prev = (struct ext2_dir_entry *)(buf + prev_off);
        unsigned prev_rec = 0;
        if (ext2fs_get_rec_len(fs, prev, &prev_rec) || ext2fs_set_rec_len(fs, prev_rec + rec, prev))
            return -EUCLEAN;
        memset(de, 0, rec);
    } else {
        de->inode = 0;
        memset((char *)de + offsetof(struct ext2_dir_entry, name_len), 0,
               rec - offsetof(struct ext2_dir_entry, name_len));
    }
    return 0;
}

/* Whether @de is @name: in a casefold directory (@dir_flags), by any case. */
static bool name_is(const struct e2_image *img, uint32_t dir_flags, const struct ext2_dir_entry *de,
                    const char *name, size_t len)
{
    return de->inode && e2_name_eq(img, dir_flags, de->name, ext2fs_dirent_name_len(de), name, len);
}

/* Remove @name from one directory block of @len usable bytes. */
static int remove_from_block(struct e2_image *img, uint32_t dir_flags, char *block, unsigned len,
                             const char *name, size_t name_len)
{
    ext2_filsys fs = img->fs;
    int prev = -1;

    for (unsigned off = 0; off < len;) {
        struct ext2_dir_entry *de = (struct ext2_dir_entry *)(block + off);
        unsigned rec = 0;
        /* An entry's header must fit before its length is read. */
        if (len - off < 8 || ext2fs_get_rec_len(fs, de, &rec) || rec < 8 || off + rec > len)
            return -EUCLEAN;
        if (name_is(img, dir_flags, de, name, name_len))
            return delete_entry(fs, block, prev, de, rec);
        prev = (int)off;
        off += rec;
    }
    return -ENOENT;
}

struct unlink_ctx {
    struct e2_image *img;
    uint32_t dir_flags;
    const char *name;
    size_t len;
    int prev_off; /* offset of the previous entry in the same block, or -1 */
    char *prev_buf;
    int err;
    bool done;
};

static int unlink_proc(ext2_ino_t dir, int entry, struct ext2_dir_entry *de, int offset,
                       int blocksize, char *buf, void *priv)
{
    struct unlink_ctx *uc = priv;
    unsigned rec = 0;

    /* A new block, or a new part of an inline directory (whose "." and
     * ".." are made up, in a buffer of their own). */
    if (buf != uc->prev_buf || offset == 0)
        uc->prev_off = -1;
    uc->prev_buf = buf;
    if (!name_is(uc->img, uc->dir_flags, de, uc->name, uc->len)) {
        uc->prev_off = offset;
        return 0;
    }
    if (ext2fs_get_rec_len(uc->img->fs, de, &rec) || rec < 8 ||
        offset + rec > (unsigned)blocksize ||
        (uc->err = delete_entry(uc->img->fs, buf, uc->prev_off, de, rec))) {
        uc->err = uc->err ? uc->err : -EUCLEAN;
        return DIRENT_ABORT;
    }
    uc->done = true;
    return DIRENT_CHANGED | DIRENT_ABORT;
}

int e2_dir_unlink(struct e2_image *img, uint32_t dir, const char *name)
{
    struct unlink_ctx uc = {.img = img, .name = name, .len = strlen(name), .prev_off = -1};
    int ret = -EROFS;

    e2_lock(img);
    if (img->read_only)
        goto out_unlock;
    uc.dir_flags = dir_flags_locked(img, dir);
    /* An indexed directory: only the leaf the hash points to. */
    ret = e2_dir_unlink_indexed_locked(img, dir, name, remove_from_block);
    if (ret != -ENOENT)
        goto out_unlock;
    ret = e2_errno(iterate_locked(img, dir, DIRENT_FLAG_INCLUDE_EMPTY, unlink_proc, &uc));
    if (!ret)
        ret = uc.err ? uc.err : (uc.done ? 0 : -ENOENT);
out_unlock:
    e2_step_end_locked(img);
    e2_unlock(img);
    return ret;
}

struct retarget_ctx {
    struct e2_image *img;
    uint32_t dir_flags;
    const char *name;
    size_t len;
    uint32_t ino;
    unsigned ftype;
    bool done;
};

static int retarget_proc(ext2_ino_t dir, int entry, struct ext2_dir_entry *de, int offset,
                         int blocksize, char *buf, void *priv)
{
    struct retarget_ctx *rc = priv;

    if (de->inode == 0)
        return 0;
    /* By name, "..", too: libext2fs numbers the ".." of an inline
     * directory as an ordinary entry. */
    if (!name_is(rc->img, rc->dir_flags, de, rc->name, rc->len))
        return 0;
    de->inode = rc->ino;
    if (rc->ftype)
        ext2fs_dirent_set_file_type(de, (int)rc->ftype);
    rc->done = true;
    return DIRENT_CHANGED | DIRENT_ABORT;
}

static int retarget(struct e2_image *img, uint32_t dir, struct retarget_ctx *rc)
{
    int ret = -EROFS;

    e2_lock(img);
    if (!img->read_only) {
        rc->img = img;
        rc->dir_flags = dir_flags_locked(img, dir);
        ret = e2_errno(iterate_locked(img, dir, 0, retarget_proc, rc));
        if (!ret && !rc->done)
            ret = -ENOENT;
    }
    e2_step_end_locked(img);
    e2_unlock(img);
    return ret;
}

int e2_dir_retarget(struct e2_image *img, uint32_t dir, const char *name, uint32_t ino, mode_t mode)
{
    struct retarget_ctx rc = {.name = name, .len = strlen(name), .ino = ino};

    rc.ftype = ext2fs_has_feature_filetype(img->fs->super) ? e2_ftype(mode) : 0;
    return retarget(img, dir, &rc);
}

int e2_dir_set_dotdot(struct e2_image *img, uint32_t dir, uint32_t parent)
{
    struct retarget_ctx rc = {.name = "..", .len = 2, .ino = parent};

    return retarget(img, dir, &rc);
}

static int count_proc(void *ctx, const char *name, size_t len, uint32_t ino, unsigned ftype)
{
    bool *nonempty = ctx;

    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
        return 0;
    *nonempty = true;
    return 1;
}

int e2_dir_is_empty(struct e2_image *img, uint32_t dir)
{
    bool nonempty = false;
    int ret = e2_dir_iterate(img, dir, count_proc, &nonempty);

    if (ret)
        return ret;
    return nonempty ? 0 : 1;
}

int e2_dir_check(struct e2_image *img, uint32_t dir)
{
    struct ext2_inode_large in;
    int ret;

    e2_lock(img);
    ret = e2_read_inode_locked(img, dir, &in);
    if (ret || !LINUX_S_ISDIR(in.i_mode))
        goto out_unlock;
    /* grow_inline_dir_locked() may write system.data into the xattr block. */
    ret = e2_sysz_check_acl_locked(img, dir, &in);
    if (!ret)
        ret = e2_sysz_check_free_locked(img, dir, &in, 0, ~(blk64_t)0);
out_unlock:
    e2_unlock(img);
    return ret;
}
