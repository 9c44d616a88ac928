/* Extended attributes through libext2fs's xattr handle API. POSIX ACLs are
 * translated between the Linux xattr format and ext4's on-disk format by
 * libext2fs itself. */
#include "e2/e2_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/xattr.h>

/* The inode's xattr block is no block of the system zone (sysz.c):
 * checked before anything reads or changes the attributes. */
static int acl_block_ok_locked(struct e2_image *img, uint32_t ino)
{
    struct ext2_inode_large in;
    int ret = e2_read_inode_locked(img, ino, &in);

    return ret ? ret : e2_sysz_check_acl_locked(img, ino, &in);
}

/* -EOPNOTSUPP when the image lacks the ext_attr feature. */
static int open_read_locked(struct e2_image *img, uint32_t ino, struct ext2_xattr_handle **h)
{
    int ret = acl_block_ok_locked(img, ino);

    if (ret)
        return ret;
    ret = e2_errno(ext2fs_xattrs_open(img->fs, ino, h));

    if (ret)
        return ret;
    ret = e2_errno(ext2fs_xattrs_read(*h));
    if (ret)
        ext2fs_xattrs_close(h);
    return ret;
}

/* ext2fs_xattrs_write() (libext2fs 1.47.0) frees the xattr block only when
 * the inode had none to begin with: when the last attribute leaves a
 * block, it writes the block back empty and keeps it (a block per inode
 * wasted, and the kernel frees it). Free such a block after every change;
 * ext2fs_free_ext_attr() drops one reference and the block with the last. */
static int drop_empty_block_locked(struct e2_image *img, uint32_t ino)
{
    struct ext2_inode_large inode;
    const struct ext2_ext_attr_header *hdr;
    char *buf = NULL;
    blk64_t blk;
    int ret;

    ret =
        e2_errno(ext2fs_read_inode_full(img->fs, ino, (struct ext2_inode *)&inode, sizeof(inode)));
    if (ret)
        return ret;
    blk = ext2fs_file_acl_block(img->fs, (struct ext2_inode *)&inode);
    if (blk == 0)
        return 0;
    ret = e2_errno(ext2fs_get_mem(img->fs->blocksize, &buf));
    if (ret)
        return ret;
    ret = e2_errno(ext2fs_read_ext_attr3(img->fs, blk, buf, ino));
    hdr = (const void *)buf;
    /* The first entry after the header is the end marker: no entries. */
    if (!ret && hdr->h_magic == EXT2_EXT_ATTR_MAGIC &&
        EXT2_EXT_IS_LAST_ENTRY((const struct ext2_ext_attr_entry *)(hdr + 1)))
        ret = e2_errno(ext2fs_free_ext_attr(img->fs, ino, NULL));
    ext2fs_free_mem(&buf);
    return ret;
}

ssize_t e2_xattr_get(struct e2_image *img, uint32_t ino, const char *name, void *buf, size_t size)
{
    struct ext2_xattr_handle *h;
    void *val = NULL;
    size_t len = 0;
    ssize_t ret;

    e2_lock(img);
    ret = open_read_locked(img, ino, &h);
    if (ret == -EOPNOTSUPP)
        ret = -ENODATA; /* no ext_attr feature: no xattrs */
    if (ret)
        goto out_unlock;
    ret = e2_errno(ext2fs_xattr_get(h, name, &val, &len));
    if (ret)
        goto out_close;
    if (size && len > size)
        ret = -ERANGE;
    else {
        if (size)
            memcpy(buf, val, len);
        ret = (ssize_t)len;
    }
    ext2fs_free_mem(&val);
out_close:
    ext2fs_xattrs_close(&h);
out_unlock:
    e2_unlock(img);
    return ret;
}

/* XATTR_CREATE / XATTR_REPLACE against the attribute as it is: 0 to go on,
 * else -EEXIST, -ENODATA or a read error. */
static int check_flags(struct ext2_xattr_handle *h, const char *name, int flags)
{
    void *old = NULL;
    size_t oldlen;
    int ret = e2_errno(ext2fs_xattr_get(h, name, &old, &oldlen));

    if (ret == 0) {
        ext2fs_free_mem(&old);
        return (flags & XATTR_CREATE) ? -EEXIST : 0;
    }
    if (ret == -ENODATA && !(flags & XATTR_REPLACE))
        return 0;
    return ret;
}

/* The quota a set by a caller held to limits may need, before anything is
 * changed: an xattr block it needs is checked now, and counted with the EA
 * inode libext2fs may create for the value (quota.c's hold), as the kernel
 * charges both (ext4_xattr_inode_alloc_quota, then the block's
 * dquot_alloc_block) and refuses either with EDQUOT. */
static int hold_quota_locked(struct e2_image *img, uint32_t ino, const char *name, const void *val,
                             size_t len)
{
    ext2_filsys fs = img->fs;
    bool needs = false;
    int ret;

    if (!img->quota)
        return 0;
    ret = e2_xattr_needs_block_locked(img, ino, name, val, len, &needs);
    if (!ret && needs)
        ret = e2_quota_may_add_xattr_block_locked(img, ino);
    if (!ret)
        e2_quota_hold_ea_inode_locked(
            img, ino, len + (needs ? (size_t)fs->blocksize << fs->cluster_ratio_bits : 0));
    return ret;
}

int e2_xattr_set(struct e2_image *img, uint32_t ino, const char *name, const void *val, size_t len,
                 int flags, bool limited)
{
    struct ext2_xattr_handle *h;
    struct e2_ea_refs refs;
    int ret;

    e2_lock(img);
    if (img->read_only) {
        ret = -EROFS;
        goto out_unlock;
    }
    /* Before the EA inode references are read from its attributes. */
    ret = acl_block_ok_locked(img, ino);
    if (ret)
        goto out_unlock;
    ret = e2_ea_refs_get_locked(img, ino, &refs);
    if (ret)
        goto out_free_refs;
    ret = open_read_locked(img, ino, &h);
    if (ret)
        goto out_free_refs;
    ret = check_flags(h, name, flags);
    if (!ret && limited)
        ret = hold_quota_locked(img, ino, name, val, len);
    if (ret)
        goto out_close;
    ret = e2_errno(ext2fs_xattr_set(h, name, val, len));
    e2_quota_hold_ea_inode_locked(img, 0, 0);
    if (!ret)
        ret = drop_empty_block_locked(img, ino);
    if (!ret)
        ret = e2_ea_refs_update_locked(img, ino, &refs);
out_close:
    ext2fs_xattrs_close(&h);
out_free_refs:
    e2_ea_refs_free(&refs);
out_unlock:
    e2_step_end_locked(img);
    e2_unlock(img);
    return ret;
}

struct list_ctx {
    char *buf;
    size_t size, len;
};

static int list_proc(char *name, char *value, size_t value_len, void *data)
{
    struct list_ctx *lc = data;
    size_t n = strlen(name) + 1;

    /* Inline file data is stored as an xattr but is not one to callers. */
    if (!strcmp(name, "system.data"))
        return 0;
    if (lc->size && lc->len + n <= lc->size)
        memcpy(lc->buf + lc->len, name, n);
    lc->len += n;
    return 0;
}

ssize_t e2_xattr_list(struct e2_image *img, uint32_t ino, char *buf, size_t size)
{
    struct ext2_xattr_handle *h;
    struct list_ctx lc = {buf, size, 0};
    ssize_t ret;

    e2_lock(img);
    ret = open_read_locked(img, ino, &h);
    if (ret == -EOPNOTSUPP) {
        ret = 0; /* no ext_attr feature: no xattrs */
        goto out_unlock;
    }
    if (ret)
        goto out_unlock;
    ret = e2_errno(ext2fs_xattrs_iterate(h, list_proc, &lc));
    ext2fs_xattrs_close(&h);
    if (!ret)
        ret = (size && lc.len > size) ? -ERANGE : (ssize_t)lc.len;
out_unlock:
    e2_unlock(img);
    return ret;
}

int e2_xattr_remove(struct e2_image *img, uint32_t ino, const char *name)
{
    struct ext2_xattr_handle *h;
    void *old = NULL;
    struct e2_ea_refs refs;
    size_t oldlen;
    int ret;

    e2_lock(img);
    if (img->read_only) {
        ret = -EROFS;
        goto out_unlock;
    }
    ret = acl_block_ok_locked(img, ino);
    if (ret)
        goto out_unlock;
    ret = e2_ea_refs_get_locked(img, ino, &refs);
    if (ret)
        goto out_free_refs;
    ret = open_read_locked(img, ino, &h);
    if (ret)
        goto out_free_refs;
    /* libext2fs removes a missing key silently; removexattr(2) says ENODATA. */
    ret = e2_errno(ext2fs_xattr_get(h, name, &old, &oldlen));
    if (!ret) {
        ext2fs_free_mem(&old);
        ret = e2_errno(ext2fs_xattr_remove(h, name));
        if (!ret)
            ret = drop_empty_block_locked(img, ino);
        if (!ret)
            ret = e2_ea_refs_update_locked(img, ino, &refs);
    }
    ext2fs_xattrs_close(&h);
out_free_refs:
    e2_ea_refs_free(&refs);
out_unlock:
    e2_step_end_locked(img);
    e2_unlock(img);
    return ret;
}
