/* fs-verity's metadata as ext4 keeps it (Linux fs/ext4/verity.c, read to
 * learn the layout): the Merkle tree and the descriptor live past EOF in
 * the file's own blocks, the tree from round_up(i_size, 64 KiB), the
 * descriptor from the next block boundary after it, and the descriptor's
 * size in the last 4 bytes of the file's last mapped block. The format of
 * what is stored there is the fs layer's (fs/verity.c); this file only
 * reads and writes bytes past i_size, which e2_data_read() and
 * e2_data_write() never do, and sets the flag. */
#include "e2/iomgr.h"
#include "e2/e2_internal.h"

#include <errno.h>

ssize_t e2_verity_read(struct e2_image *img, uint32_t ino, void *buf, size_t size, uint64_t off)
{
    struct ext2_inode_large in;
    ssize_t ret;

    e2_lock(img);
    ret = e2_read_inode_locked(img, ino, &in);
    if (!ret && !e2_extio_usable(&in))
        ret = -EUCLEAN; /* verity files are extent files (ext4 refuses others) */
    if (!ret && size)
        ret = e2_extio_read_locked(img, ino, &in, buf, size, off);
    e2_unlock(img);
    return ret;
}

int e2_verity_end(struct e2_image *img, uint32_t ino, uint64_t *end)
{
    struct ext2_inode_large in;
    ext2_extent_handle_t h;
    struct ext2fs_extent e;
    int ret;

    *end = 0;
    e2_lock(img);
    ret = e2_read_inode_locked(img, ino, &in);
    if (!ret && !e2_extio_usable(&in))
        ret = -EUCLEAN;
    if (!ret)
        ret = e2_errno(ext2fs_extent_open2(img->fs, ino, (struct ext2_inode *)&in, &h));
    if (ret)
        goto out_unlock;
    /* The last leaf's last extent; none (or an empty leaf) is damage. */
    ret = e2_errno(ext2fs_extent_get(h, EXT2_EXTENT_LAST_LEAF, &e));
    if (ret || e.e_len == 0)
        ret = -EUCLEAN;
    else
        *end = (e.e_lblk + (uint64_t)e.e_len) * img->fs->blocksize;
    ext2fs_extent_free(h);
out_unlock:
    e2_unlock(img);
    return ret;
}

/* Write @size bytes at @off (all past EOF, where the file maps nothing),
 * block by block (mapio.c: holes allocated, data straight home before the
 * metadata that maps it), then i_size back to what it was and
 * EXT4_VERITY_FL set, in the one inode write that ends the step. */
static int seal_locked(struct e2_image *img, uint32_t ino, struct ext2_inode_large *in,
                       const void *buf, size_t size, uint64_t off)
{
    uint64_t isize = EXT2_I_SIZE(in);
    bool unwritten = false;
    ssize_t n = e2_mapio_write_locked(img, ino, in, buf, size, off, &unwritten);

    if (n >= 0 && (unwritten || (size_t)n != size))
        n = unwritten ? -EUCLEAN : -ENOSPC;
    if (n < 0)
        return (int)n;
    in->i_size = (uint32_t)isize;
    in->i_size_high = (uint32_t)(isize >> 32);
    in->i_flags |= EXT4_VERITY_FL;
    return e2_write_inode_locked(img, ino, in);
}

int e2_verity_seal(struct e2_image *img, uint32_t ino, const void *buf, size_t size, uint64_t off)
{
    struct ext2_inode_large in;
    uint64_t last;
    int ret, rret;

    ret = e2_lock_for_change(img, ino, &in);
    if (!ret && !e2_extio_usable(&in))
        ret = -EOPNOTSUPP;
    if (!ret && off < EXT2_I_SIZE(&in))
        ret = -EINVAL;
    if (ret)
        goto out_unlock;
    /* Without a journal, the inode (the flag) goes home only once the
     * blocks it maps and the data in them are durable (iomgr.h): a crash
     * before leaves an ordinary file, with at most blocks past EOF that
     * the next enable truncates first. With one, the whole step is in the
     * running transaction, and the data is home before it commits. */
    last = e2_inode_block(img->fs, ino);
    e2_iom_hold(img->fs->io);
    ret = seal_locked(img, ino, &in, buf, size, off);
    rret = e2_errno(e2_iom_release_synced(img->fs->io, &last, 1));
    ret = ret ? ret : rret;
out_unlock:
    e2_step_end_locked(img);
    e2_unlock(img);
    return ret;
}
