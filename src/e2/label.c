/* The volume label (s_volume_name): FS_IOC_GETFSLABEL / FS_IOC_SETFSLABEL.
 *
 * ext4 writes a new label into the backup superblocks too (its
 * ext4_update_superblocks_fn), so that e2fsck restoring a backup, or
 * blkid reading one, does not bring the old name back. uext4 otherwise
 * leaves the backups alone (EXT2_FLAG_MASTER_SB_ONLY, image.c), so they
 * are patched here, block by block, through the I/O manager: in the
 * running transaction like any metadata with a journal, straight to the
 * image without one. */
#include "e2/e2_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void e2_label_get(struct e2_image *img, char out[E2_LABEL_MAX + 1])
{
    e2_lock(img);
    memcpy(out, img->fs->super->s_volume_name, E2_LABEL_MAX);
    e2_unlock(img);
    out[E2_LABEL_MAX] = '\0';
}

/* The label of the backup superblock at the start of @blk, as ext4 updates
 * one: skipped (0) if the block holds no superblock (a backup the
 * kernel would not touch either), rewritten with its checksum if it does. */
static int set_backup_label_locked(ext2_filsys fs, blk64_t blk, const char *label, void *buf)
{
    struct ext2_super_block *sb = buf;
    errcode_t err = io_channel_read_blk64(fs->io, blk, 1, buf);

    if (err)
        return e2_errno(err);
    if (sb->s_magic != EXT2_SUPER_MAGIC)
        return 0;
    memcpy(sb->s_volume_name, label, E2_LABEL_MAX);
    ext2fs_superblock_csum_set(fs, sb);
    return e2_errno(io_channel_write_blk64(fs->io, blk, 1, buf));
}

static int set_backup_labels_locked(ext2_filsys fs, const char *label)
{
    void *buf = malloc(fs->blocksize);
    int ret = 0;

    if (!buf)
        return -ENOMEM;
    for (dgrp_t g = 1; g < fs->group_desc_count && !ret; g++)
        if (ext2fs_bg_has_super(fs, g))
            ret = set_backup_label_locked(fs, ext2fs_group_first_block2(fs, g), label, buf);
    free(buf);
    return ret;
}

int e2_label_set(struct e2_image *img, const char *label, size_t len)
{
    char padded[E2_LABEL_MAX];
    int ret;

    if (len > E2_LABEL_MAX)
        return -EINVAL;
    memset(padded, 0, sizeof(padded));
    memcpy(padded, label, len);
    e2_lock(img);
    ret = img->read_only ? -EROFS : 0;
    /* A backup that fails to be written leaves the primary's new label in
     * place: without a journal the failed write has latched the image's
     * failure (no more changes), with one the write only fills the cache. */
    if (!ret) {
        memcpy(img->fs->super->s_volume_name, padded, E2_LABEL_MAX);
        ext2fs_mark_super_dirty(img->fs);
        ret = set_backup_labels_locked(img->fs, padded);
    }
    e2_step_end_locked(img);
    e2_unlock(img);
    return ret;
}
