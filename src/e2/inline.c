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

/* Every xattr handle libext2fs opens reads the inode's xattr block, and
 * its write rewrites it: a block of the system zone there is refused
 * first (sysz.c), as xattr.c does. By number: the inode is in libext2fs's
 * cache (the callers have just read it). */
static int xattr_block_ok_locked(struct e2_image *img, uint32_t ino)
{
    struct ext2_inode_large in;
    int ret = e2_read_inode_locked(img, ino, &in);

    return ret ? ret : e2_sysz_check_acl_locked(img, ino, &in);
}

/* Length of the current system.data value, 0 if absent. */
int e2_inline_get_ea_locked(struct e2_image *img, uint32_t ino, void **val, size_t *len)
{
    struct ext2_xattr_handle *h;
    errcode_t err;
    int ret;

    *val = NULL;
    *len = 0;
    ret = xattr_block_ok_locked(img, ino);
    if (ret)
        return ret;
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

#define XATTR_ROUND         3u
#define XATTR_SIZE(n)       (((n) + XATTR_ROUND) & ~XATTR_ROUND)
#define XATTR_LEN(name_len) XATTR_SIZE((name_len) + 16u)
#define XATTR_INDEX_SYSTEM  7

/* What system.data could hold in the in-inode xattr entries at @first
 * (@area bytes after the magic): its current value's room plus the free
 * space, less a new entry when there is none yet. -EUCLEAN for an entry
 * that runs past the area. */
static int ibody_room_for_data(const unsigned char *first, size_t area, long *room)
{
    size_t min_offs = area, inline_val = 0;
    const unsigned char *e;
    bool has_inline = false;
    long free_bytes;

    for (e = first; e + 4 <= first + area && *(const uint32_t *)e != 0;) {
        unsigned name_len = e[0], index = e[1];
        uint16_t offs;
        uint32_t inum, vsize;
        if (e + 16 > first + area || e + XATTR_LEN(name_len) > first + area)
            return -EUCLEAN;
        memcpy(&offs, e + 2, 2);
        memcpy(&inum, e + 4, 4);
        memcpy(&vsize, e + 8, 4);
        offs = ext2fs_le16_to_cpu(offs);
        vsize = ext2fs_le32_to_cpu(vsize);
        if (!inum && vsize && offs < min_offs)
            min_offs = offs;
        if (index == XATTR_INDEX_SYSTEM && name_len == 4 && !memcmp(e + 16, "data", 4)) {
            has_inline = true;
            inline_val = vsize;
        }
        e += XATTR_LEN(name_len);
    }
    free_bytes = (long)min_offs - (long)(e - first) - 4;
    if (has_inline) {
        free_bytes += (long)XATTR_SIZE(inline_val);
    } else {
        free_bytes -= (long)XATTR_LEN(4);
        free_bytes =
            free_bytes > (long)XATTR_ROUND ? (long)XATTR_SIZE((size_t)free_bytes - XATTR_ROUND) : 0;
    }
    *room = free_bytes;
    return 0;
}

/* The kernel's ext4_get_max_inline_size(), from the raw in-inode xattr
 * area: what system.data could hold (its current value included) plus the
 * 60 bytes of i_block. libext2fs's ext2fs_xattr_inode_max_size differs
 * (it ignores the entry a new system.data would need). */
int e2_inline_capacity_locked(struct e2_image *img, uint32_t ino, size_t *cap)
{
    unsigned isize = EXT2_INODE_SIZE(img->fs->super);
    struct ext2_inode_large *in;
    unsigned char *raw, *first;
    long free_bytes;
    uint32_t magic;
    size_t area;
    int ret = 0;

    *cap = 0;
    if (isize <= EXT2_GOOD_OLD_INODE_SIZE)
        return 0;
    raw = calloc(1, isize);
    if (!raw)
        return -ENOMEM;
    ret = e2_errno(ext2fs_read_inode_full(img->fs, ino, (struct ext2_inode *)raw, isize));
    if (ret)
        goto out_free;
    in = (struct ext2_inode_large *)raw;
    if (in->i_extra_isize == 0 || EXT2_GOOD_OLD_INODE_SIZE + in->i_extra_isize + 4u > isize)
        goto out_free;
    area = isize - EXT2_GOOD_OLD_INODE_SIZE - in->i_extra_isize - 4; /* after the magic */
    first = raw + EXT2_GOOD_OLD_INODE_SIZE + in->i_extra_isize + 4;
    memcpy(&magic, first - 4, 4);
    if (ext2fs_le32_to_cpu(magic) != EXT2_EXT_ATTR_MAGIC) {
        /* No in-inode xattrs yet: room for one new system.data entry. */
        free_bytes = (long)area - (long)XATTR_LEN(4) - (long)XATTR_ROUND - 4;
        *cap = EXT4_MIN_INLINE_DATA_SIZE + (free_bytes > 0 ? XATTR_SIZE((size_t)free_bytes) : 0);
        goto out_free;
    }
    ret = ibody_room_for_data(first, area, &free_bytes);
    if (!ret)
        *cap = EXT4_MIN_INLINE_DATA_SIZE + (free_bytes > 0 ? (size_t)free_bytes : 0);
out_free:
    free(raw);
    return ret;
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

/* Read inline inode @ino into @in, checked as an inline inode can be. */
static int load_inode_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in)
{
    int ret = e2_read_inode_locked(img, ino, in);

    if (ret)
        return ret;
    if (!(in->i_flags & EXT4_INLINE_DATA_FL))
        return -EUCLEAN;
    return e2_sysz_check_acl_locked(img, ino, in);
}

/* Read the inline content of @in that lies below i_size into a new buffer
 * of at least @min bytes, zero-filled past it; *@size is its length. The
 * kernel can leave i_size beyond the inline area (an empty file truncated
 * up and then written): those bytes read as zeros. */
static int load_data_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                            size_t min, char **out, size_t *size, size_t *allocated)
{
    size_t total = 0;
    char *buf;
    int ret;

    ret = e2_errno(ext2fs_inline_data_size(img->fs, ino, &total));
    if (ret)
        return ret;
    *size = EXT2_I_SIZE(in) < total ? EXT2_I_SIZE(in) : total;
    if (allocated)
        *allocated = total;
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

static int load_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in, size_t min,
                       char **out, size_t *size, size_t *allocated)
{
    int ret = load_inode_locked(img, ino, in);

    return ret ? ret : load_data_locked(img, ino, in, min, out, size, allocated);
}

/* Copy what [@off, @off+@size) holds of a file of @isize bytes whose first
 * @clen are @data (the rest zeros) to @buf; returns the count. */
static ssize_t copy_range(void *buf, size_t size, off_t off, uint64_t isize, const char *data,
                          size_t clen)
{
    uint64_t n;

    if ((uint64_t)off >= isize)
        return 0;
    n = isize - (uint64_t)off < size ? isize - (uint64_t)off : size;
    memset(buf, 0, n);
    if ((uint64_t)off < clen)
        memcpy(buf, data + off, clen - (size_t)off < n ? clen - (size_t)off : n);
    return (ssize_t)n;
}

/* A file of at most 60 bytes is all in i_block: read there without
 * parsing the in-inode xattrs for system.data (two libext2fs xattr
 * handles a read). The kernel reads it from i_block too
 * (ext4_read_inline_data). */
ssize_t e2_inline_read(struct e2_image *img, uint32_t ino, void *buf, size_t size, off_t off)
{
    struct ext2_inode_large in;
    char *data = NULL;
    size_t clen;
    ssize_t ret;

    e2_lock(img);
    ret = load_inode_locked(img, ino, &in);
    if (ret)
        goto out_unlock;
    if (EXT2_I_SIZE(&in) <= INLINE_IBLOCK) {
        ret = copy_range(buf, size, off, EXT2_I_SIZE(&in), (const char *)in.i_block,
                         (size_t)EXT2_I_SIZE(&in));
        goto out_unlock;
    }
    ret = load_data_locked(img, ino, &in, 0, &data, &clen, NULL);
    if (!ret)
        ret = copy_range(buf, size, off, EXT2_I_SIZE(&in), data, clen);
    free(data);
out_unlock:
    e2_unlock(img);
    return ret;
}

int e2_inline_set_ea_locked(struct e2_image *img, uint32_t ino, const void *val, size_t len)
{
    struct ext2_xattr_handle *h;
    errcode_t err;
    int ret = xattr_block_ok_locked(img, ino);

    if (ret)
        return ret;
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

/* @data as the inline content, i_size @isize, and @fields of @a (the
 * attributes a write changes; 0 for none), in one inode write. */
static int store_locked(struct e2_image *img, uint32_t ino, const void *data, size_t len,
                        uint64_t isize, const struct e2_attr *a, unsigned fields)
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
    if (fields)
        e2_attr_to_inode(a, fields, &in);
    return e2_write_inode_locked(img, ino, &in);
}

int e2_inline_write(struct e2_image *img, uint32_t ino, const void *buf, size_t len, uint64_t off,
                    uint64_t isize, const struct e2_attr *a, unsigned fields)
{
    struct ext2_inode_large in;
    char *data = NULL;
    size_t cap, clen;
    int ret;

    e2_lock(img);
    ret = img->read_only ? -EROFS : e2_inline_capacity_locked(img, ino, &cap);
    if (ret)
        goto out_unlock;
    /* Checked before the content is loaded: @off may be anything. */
    if (off > cap || len > cap - off) {
        ret = -ENOSPC;
        goto out_unlock;
    }
    ret = load_locked(img, ino, &in, (size_t)off + len, &data, &clen, NULL);
    if (ret)
        goto out_unlock;
    if (len)
        memcpy(data + off, buf, len);
    ret =
        store_locked(img, ino, data, clen > off + len ? clen : (size_t)off + len, isize, a, fields);
    free(data);
    e2_step_end_locked(img);
out_unlock:
    e2_unlock(img);
    return ret;
}

int e2_inline_truncate(struct e2_image *img, uint32_t ino, uint64_t size)
{
    struct ext2_inode_large in;
    char *data = NULL;
    size_t clen, allocated;
    int ret;

    e2_lock(img);
    ret = img->read_only ? -EROFS : load_locked(img, ino, &in, 0, &data, &clen, &allocated);
    if (ret)
        goto out_unlock;
    /* Growing stays inline only within the space the inode already gives
     * to inline data, as the kernel does; shrinking trims system.data. */
    if (size > EXT2_I_SIZE(&in) && size > allocated) {
        ret = -ENOSPC;
    } else {
        ret = store_locked(img, ino, data, size < clen ? (size_t)size : clen, size, NULL, 0);
        e2_step_end_locked(img);
    }
    free(data);
out_unlock:
    e2_unlock(img);
    return ret;
}

int e2_inline_begin(struct e2_image *img, uint32_t ino)
{
    struct ext2_inode_large in;
    int ret;

    ret = e2_lock_for_change(img, ino, &in);
    if (ret)
        goto out_unlock;
    if (ext2fs_inode_data_blocks2(img->fs, (struct ext2_inode *)&in) != 0 ||
        (in.i_flags & EXT4_INLINE_DATA_FL)) {
        ret = -EINVAL;
        goto out_unlock;
    }
    /* ext2fs_inline_data_init() writes the xattrs back. */
    ret = e2_sysz_check_acl_locked(img, ino, &in);
    if (ret)
        goto out_unlock;
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
    e2_step_end_locked(img);
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

/* @in, inline no more, with an empty block map: an extent tree root with
 * no entries where the file system has extents, else 15 null pointers. */
static void clear_to_block_map(ext2_filsys fs, struct ext2_inode_large *in)
{
    memset(in->i_block, 0, sizeof(in->i_block));
    in->i_flags &= ~EXT4_INLINE_DATA_FL;
    if (ext2fs_has_feature_extents(fs->super)) {
        struct ext3_extent_header *eh = (struct ext3_extent_header *)in->i_block;
        eh->eh_magic = ext2fs_cpu_to_le16(EXT3_EXT_MAGIC);
        eh->eh_max =
            ext2fs_cpu_to_le16((sizeof(in->i_block) - sizeof(*eh)) / sizeof(struct ext3_extent));
        in->i_flags |= EXT4_EXTENTS_FL;
    }
}

static int convert_file_locked(struct e2_image *img, uint32_t ino)
{
    ext2_filsys fs = img->fs;
    struct ext2_inode_large in;
    char *data = NULL, *raw = NULL;
    blk64_t blk = 0;
    size_t isize;
    int ret;

    ret = load_locked(img, ino, &in, fs->blocksize, &data, &isize, NULL);
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
        ret = e2_errno(ext2fs_new_block2(fs, ext2fs_find_inode_goal(fs, ino, NULL, 0), NULL, &blk));
        if (ret)
            goto out_free;
        ret = e2_data_write_blocks(img, blk, 1, data);
        if (ret)
            goto out_free;
    }
    ret = e2_errno(ext2fs_inline_data_ea_remove(fs, ino));
    if (ret)
        goto out_restore;
    ret = e2_read_inode_locked(img, ino, &in);
    if (ret)
        goto out_restore;
    clear_to_block_map(fs, &in);
    if (isize) {
        ret = e2_errno(ext2fs_iblk_add_blocks(fs, (struct ext2_inode *)&in, 1));
        if (!ret)
            ret = e2_errno(
                ext2fs_bmap2(fs, ino, (struct ext2_inode *)&in, NULL, BMAP_SET, 0, NULL, &blk));
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

    ret = e2_lock_for_change(img, ino, &in);
    if (ret)
        goto out_unlock;
    if (!(in.i_flags & EXT4_INLINE_DATA_FL)) {
        ret = 0; /* somebody converted it first */
        goto out_unlock;
    }
    /* Both ways remove system.data: the xattrs are written back. */
    ret = e2_sysz_check_acl_locked(img, ino, &in);
    if (ret)
        goto out_unlock;
    if (LINUX_S_ISDIR(in.i_mode))
        ret = e2_errno(ext2fs_inline_data_expand(img->fs, ino));
    else
        ret = convert_file_locked(img, ino);
out_unlock:
    e2_step_end_locked(img);
    e2_unlock(img);
    return ret;
}
