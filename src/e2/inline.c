/* Inline data (EXT4_INLINE_DATA_FL): the first 60 bytes in i_block, the
 * rest in the in-inode xattr "system.data".
 *
 * libext2fs's file API must never see an inline inode (it ignores i_size
 * and writes nothing at offsets > 0), and its inline_data_set leaves stale
 * bytes and a stale system.data behind; so reads, stores and the file
 * conversion are done here from the xattr primitives. See design.md,
 * "Inline data: the rules". */
#include "e2/e2_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <ext2fs/ext3_extents.h>

#define INLINE_IBLOCK EXT4_MIN_INLINE_DATA_SIZE

/* Length of the current system.data value, 0 if absent. */
int e2_inline_get_ea_locked(struct e2_image *img, uint32_t ino, void **val, size_t *len)
{
    struct ext2_xattr_handle *h;
    errcode_t err;

    *val = NULL;
    *len = 0;
    err = ext2fs_xattrs_open(img->fs, ino, &h);
    if (err)
        return e2_errno(err);
    err = ext2fs_xattrs_read(h);
    if (!err) {
        err = ext2fs_xattr_get(h, "system.data", val, len);
        if (err == EXT2_ET_EA_KEY_NOT_FOUND) {
            *val = NULL;
            *len = 0;
            err = 0;
        }
    }
    ext2fs_xattrs_close(&h);
    return e2_errno(err);
}

int e2_inline_ea_len_locked(struct e2_image *img, uint32_t ino, size_t *len)
{
    void *val;
    int ret = e2_inline_get_ea_locked(img, ino, &val, len);

    ext2fs_free_mem(&val);
    return ret;
}

int e2_inline_capacity_locked(struct e2_image *img, uint32_t ino, size_t *cap)
{
    size_t cur, room;
    int ret;

    if (EXT2_INODE_SIZE(img->fs->super) <= EXT2_GOOD_OLD_INODE_SIZE) {
        *cap = 0;
        return 0;
    }
    ret = e2_inline_ea_len_locked(img, ino, &cur);
    if (ret)
        return ret;
    /* Space system.data could grow by in the in-inode xattr area. */
    ret = e2_errno(ext2fs_xattr_inode_max_size(img->fs, ino, &room));
    if (ret == -ENOSPC || ret == -ENODATA) {
        room = 0;
        ret = 0;
    }
    if (ret)
        return ret;
    /* xattr values occupy a multiple of 4 bytes: a 67-byte value already
     * owns 68. */
    *cap = INLINE_IBLOCK + ((cur + 3) & ~(size_t)3) + room;
    return 0;
}

int e2_inline_capacity(struct e2_image *img, uint32_t ino, size_t *cap)
{
    int ret;

    e2_lock(img);
    ret = e2_inline_capacity_locked(img, ino, cap);
    e2_unlock(img);
    return ret;
}

int e2_inline_allocated(struct e2_image *img, uint32_t ino, size_t *len)
{
    int ret;

    e2_lock(img);
    ret = e2_inline_ea_len_locked(img, ino, len);
    if (!ret)
        *len += INLINE_IBLOCK;
    e2_unlock(img);
    return ret;
}

/* Read the inline content that lies below i_size into a new buffer of at
 * least @min bytes, zero-filled past it; *@size is its length. The kernel
 * can leave i_size beyond the inline area (an empty file truncated up and
 * then written): those bytes read as zeros. */
static int load_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                       size_t min, char **out, size_t *size)
{
    size_t total = 0;
    char *buf;
    int ret;

    ret = e2_read_inode_locked(img, ino, in);
    if (ret)
        return ret;
    if (!(in->i_flags & EXT4_INLINE_DATA_FL))
        return -EUCLEAN;
    ret = e2_errno(ext2fs_inline_data_size(img->fs, ino, &total));
    if (ret)
        return ret;
    *size = EXT2_I_SIZE(in) < total ? EXT2_I_SIZE(in) : total;
    buf = calloc(1, total > min ? total : min);
    if (!buf)
        return -ENOMEM;
    ret = e2_errno(ext2fs_inline_data_get(img->fs, ino, (struct ext2_inode *)in, buf, NULL));
    if (ret) {
        free(buf);
        return ret;
    }
    memset(buf + *size, 0, total - *size);
    *out = buf;
    return 0;
}

ssize_t e2_inline_read(struct e2_image *img, uint32_t ino, void *buf, size_t size, off_t off)
{
    struct ext2_inode_large in;
    char *data = NULL;
    size_t clen;
    uint64_t isize, n;
    ssize_t ret;

    e2_lock(img);
    ret = load_locked(img, ino, &in, 0, &data, &clen);
    if (ret)
        goto out_unlock;
    isize = EXT2_I_SIZE(&in);
    if ((uint64_t)off >= isize) {
        ret = 0;
    } else {
        n = isize - (uint64_t)off < size ? isize - (uint64_t)off : size;
        memset(buf, 0, n);
        if ((uint64_t)off < clen)
            memcpy(buf, data + off, clen - (size_t)off < n ? clen - (size_t)off : n);
        ret = (ssize_t)n;
    }
    free(data);
out_unlock:
    e2_unlock(img);
    return ret;
}

int e2_inline_set_ea_locked(struct e2_image *img, uint32_t ino, const void *val, size_t len)
{
    struct ext2_xattr_handle *h;
    errcode_t err;

    err = ext2fs_xattrs_open(img->fs, ino, &h);
    if (err)
        return e2_errno(err);
    err = ext2fs_xattrs_read(h);
    if (!err)
        err = ext2fs_xattr_set(h, "system.data", len ? val : "", len);
    if (!err)
        err = ext2fs_xattrs_write(h);
    ext2fs_xattrs_close(&h);
    return e2_errno(err);
}

static int store_locked(struct e2_image *img, uint32_t ino, const void *data, size_t len,
                        uint64_t isize)
{
    struct ext2_inode_large in;
    size_t cap;
    int ret;

    if (img->read_only)
        return -EROFS;
    ret = e2_inline_capacity_locked(img, ino, &cap);
    if (ret)
        return ret;
    if (len > cap)
        return -ENOSPC;
    /* The xattr first: it rewrites the inode's xattr area, and it is the
     * step that can fail for want of space. */
    ret = e2_inline_set_ea_locked(img, ino, (const char *)data + INLINE_IBLOCK,
                        len > INLINE_IBLOCK ? len - INLINE_IBLOCK : 0);
    if (ret)
        return ret;
    ret = e2_read_inode_locked(img, ino, &in);
    if (ret)
        return ret;
    memset(in.i_block, 0, sizeof(in.i_block));
    memcpy(in.i_block, data, len < INLINE_IBLOCK ? len : INLINE_IBLOCK);
    in.i_size = (uint32_t)isize;
    in.i_size_high = (uint32_t)(isize >> 32);
    return e2_write_inode_locked(img, ino, &in);
}

int e2_inline_store(struct e2_image *img, uint32_t ino, const void *data, size_t len,
                    uint64_t isize)
{
    int ret;

    e2_lock(img);
    ret = store_locked(img, ino, data, len, isize);
    e2_unlock(img);
    return ret;
}

int e2_inline_begin(struct e2_image *img, uint32_t ino)
{
    struct ext2_inode_large in;
    int ret;

    e2_lock(img);
    if (img->read_only) {
        ret = -EROFS;
        goto out_unlock;
    }
    ret = e2_read_inode_locked(img, ino, &in);
    if (ret)
        goto out_unlock;
    if (in.i_blocks != 0 || (in.i_flags & EXT4_INLINE_DATA_FL)) {
        ret = -EINVAL;
        goto out_unlock;
    }
    memset(in.i_block, 0, sizeof(in.i_block));
    in.i_flags &= ~EXT4_EXTENTS_FL;
    in.i_flags |= EXT4_INLINE_DATA_FL;
    ret = e2_write_inode_locked(img, ino, &in);
    if (ret)
        goto out_unlock;
    ret = e2_errno(ext2fs_inline_data_init(img->fs, ino));
    if (ret) {
        /* Back to an empty extent file. */
        in.i_flags &= ~EXT4_INLINE_DATA_FL;
        if (ext2fs_has_feature_extents(img->fs->super)) {
            struct ext3_extent_header *eh = (struct ext3_extent_header *)in.i_block;
            eh->eh_magic = ext2fs_cpu_to_le16(EXT3_EXT_MAGIC);
            eh->eh_max = ext2fs_cpu_to_le16(4);
            in.i_flags |= EXT4_EXTENTS_FL;
        }
        e2_write_inode_locked(img, ino, &in);
    }
out_unlock:
    e2_unlock(img);
    return ret;
}

/* The raw on-disk inode, including its in-inode xattr area, for rollback. */
static int save_raw_locked(struct e2_image *img, uint32_t ino, char **raw)
{
    unsigned isize = EXT2_INODE_SIZE(img->fs->super);
    errcode_t err;

    *raw = malloc(isize);
    if (!*raw)
        return -ENOMEM;
    err = ext2fs_read_inode_full(img->fs, ino, (struct ext2_inode *)*raw, isize);
    if (err) {
        free(*raw);
        return e2_errno(err);
    }
    return 0;
}

static int convert_file_locked(struct e2_image *img, uint32_t ino)
{
    ext2_filsys fs = img->fs;
    struct ext2_inode_large in;
    char *data = NULL, *raw = NULL;
    blk64_t blk = 0;
    size_t isize;
    int ret;

    ret = load_locked(img, ino, &in, fs->blocksize, &data, &isize);
    if (ret)
        return ret;
    if (isize > fs->blocksize) {
        ret = -EUCLEAN; /* inline content larger than a block: not ours */
        goto out_free;
    }
    ret = save_raw_locked(img, ino, &raw);
    if (ret)
        goto out_free;
    if (isize) {
        ret = e2_errno(ext2fs_new_block2(fs, ext2fs_find_inode_goal(fs, ino, NULL, 0), NULL,
                                         &blk));
        if (ret)
            goto out_free;
        ret = e2_errno(io_channel_write_blk64(fs->io, blk, 1, data));
        if (ret)
            goto out_free;
    }
    ret = e2_errno(ext2fs_inline_data_ea_remove(fs, ino));
    if (ret)
        goto out_restore;
    ret = e2_read_inode_locked(img, ino, &in);
    if (ret)
        goto out_restore;
    memset(in.i_block, 0, sizeof(in.i_block));
    in.i_flags &= ~EXT4_INLINE_DATA_FL;
    if (ext2fs_has_feature_extents(fs->super)) {
        struct ext3_extent_header *eh = (struct ext3_extent_header *)in.i_block;
        eh->eh_magic = ext2fs_cpu_to_le16(EXT3_EXT_MAGIC);
        eh->eh_max = ext2fs_cpu_to_le16((sizeof(in.i_block) - sizeof(*eh)) /
                                        sizeof(struct ext3_extent));
        in.i_flags |= EXT4_EXTENTS_FL;
    }
    if (isize) {
        ret = e2_errno(ext2fs_iblk_add_blocks(fs, (struct ext2_inode *)&in, 1));
        if (!ret)
            ret = e2_errno(ext2fs_bmap2(fs, ino, (struct ext2_inode *)&in, NULL, BMAP_SET, 0,
                                        NULL, &blk));
        if (ret)
            goto out_restore;
        ext2fs_block_alloc_stats2(fs, blk, +1);
    }
    ret = e2_write_inode_locked(img, ino, &in);
    if (!ret)
        goto out_free;
out_restore:
    /* Put the inline inode back exactly as it was. */
    ext2fs_write_inode_full(fs, ino, (struct ext2_inode *)raw, EXT2_INODE_SIZE(fs->super));
out_free:
    free(raw);
    free(data);
    return ret;
}

int e2_inline_convert(struct e2_image *img, uint32_t ino)
{
    struct ext2_inode_large in;
    int ret;

    e2_lock(img);
    if (img->read_only) {
        ret = -EROFS;
        goto out_unlock;
    }
    ret = e2_read_inode_locked(img, ino, &in);
    if (ret)
        goto out_unlock;
    if (!(in.i_flags & EXT4_INLINE_DATA_FL)) {
        ret = 0; /* somebody converted it first */
        goto out_unlock;
    }
    if (LINUX_S_ISDIR(in.i_mode))
        ret = e2_errno(ext2fs_inline_data_expand(img->fs, ino));
    else
        ret = convert_file_locked(img, ino);
out_unlock:
    e2_unlock(img);
    return ret;
}
